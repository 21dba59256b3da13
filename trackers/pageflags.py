"""Option 3: one flag bit in every struct page (Kai Huang, Apr 2024).

The kernel form is a new page flag (say ``PG_tdx_private``) in ``page->flags``,
set with SetPageTdxPrivate() where a page becomes TDX-private and cleared where
it is reclaimed.  It allocates nothing: the bit lives in the struct page the
kernel keeps anyway (``modeled_bytes`` = 0).  What it costs is the scan: kexec
has no list of flagged pages, so it walks every PFN and reads every struct
page, 64 B each (kernel.STRUCT_PAGE_BYTES, 1.56 % of RAM: 16 GiB per TiB) —
reported as ``scanned_bytes``.  Page flags are also scarce ("We're always
running out of page flags", Wilcox 2022): the cost a table cannot show.

Emulation, NOT byte-faithful: ``page_flags`` is one uint8 per PFN standing in
for ``page->flags`` (bit :data:`PG_TDX_PRIVATE`), not a 64-B struct page.  The
64-B stride is modeled through ``scanned_bytes`` only; host bytes are
``max_pfn`` bytes.  The scan is a compiled walk that visits every page's flag
in order, as the kernel's pfn walk (pfn_to_page for every PFN) would.

A conversion, as bench-core times it (``conversion_calls``), is the kernel
form's: set_bit()/clear_bit() in page->flags of the host's struct page
array laid out in C (trackers/linux/pages.c), holding this tracker's set.

Invariant: every byte of ``page_flags`` is 0 or PG_TDX_PRIVATE_MASK.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from . import kernel
from .base import (EXTENT_CHUNK, ConversionCalls, MemoryBudgetError, MemoryReport, Tracker,
                   check_budget, coalesce_batches, estimate_input, validate_max_pfn)
from .linux import KernelCodeUnavailable, KernelStructPages

PG_TDX_PRIVATE = 0                       # the emulated flag's bit number
PG_TDX_PRIVATE_MASK = 1 << PG_TDX_PRIVATE
#: the engine of pageflags' conversions: struct pages laid out in C
STRUCT_PAGES_ENGINE = "C struct pages (trackers/linux/pages.c)"


@njit(cache=True)
def _set_flag_ranges(page_flags, starts, ends, value):
    """page->flags bit set (value=1) or cleared (value=0) over every [start, end)."""
    for i in range(starts.size):
        page_flags[starts[i]:ends[i]] = value


@njit(cache=True)
def _pfn_walk(page_flags, pfn, out_s, out_e):
    """Walk struct pages from ``pfn`` on; collect flagged runs into out_s/out_e.

    Visits every page's flag in PFN order, as a kexec-time pfn walk reads
    every struct page.  Stops when the output is full, ending the open run at
    the stop point (runs of consecutive batches may touch; the caller merges).
    Returns (runs found, next pfn to visit).
    """
    n = 0
    cap = out_s.size
    npages = page_flags.size
    in_run = False
    while pfn < npages:
        flagged = page_flags[pfn] != 0
        if flagged and not in_run:
            if n == cap:
                return n, pfn
            out_s[n] = pfn
            in_run = True
        elif not flagged and in_run:
            out_e[n] = pfn
            n += 1
            in_run = False
        pfn += 1
    if in_run:
        out_e[n] = npages
        n += 1
    return n, pfn


class PageFlags(Tracker):
    """A flag bit per struct page: modeled bytes 0, scanned bytes 64 * max_pfn."""

    name = "pageflags"
    option = "3: flag bit in struct page"

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        # host cost: one uint8 stand-in for page->flags per PFN
        check_budget(f"pageflags emulation over {self.max_pfn:,} PFNs (1 B per page)",
                     self.max_pfn, self.budget_bytes)
        self.page_flags = np.zeros(self.max_pfn, np.uint8)

    def _mark_ranges(self, starts, ends):
        _set_flag_ranges(self.page_flags, starts, ends, np.uint8(PG_TDX_PRIVATE_MASK))

    def _unmark_ranges(self, starts, ends):
        _set_flag_ranges(self.page_flags, starts, ends, np.uint8(0))

    def _mark_pfns(self, pfns):
        self.page_flags[pfns] = PG_TDX_PRIVATE_MASK

    def _unmark_pfns(self, pfns):
        self.page_flags[pfns] = 0

    def _contains(self, pfns):
        return (self.page_flags[pfns] & PG_TDX_PRIVATE_MASK) != 0

    def _count(self):
        return int(np.count_nonzero(self.page_flags))

    def _extent_batches(self):
        out_s = np.empty(EXTENT_CHUNK, np.int64)
        out_e = np.empty(EXTENT_CHUNK, np.int64)
        pfn = 0
        while pfn < self.max_pfn:                  # one step per EXTENT_CHUNK runs
            n, pfn = _pfn_walk(self.page_flags, pfn, out_s, out_e)
            if n:
                yield out_s[:n].copy(), out_e[:n].copy()

    def memory(self):
        return MemoryReport(
            modeled_bytes=0,
            breakdown={"struct page flag bit": 0},
            host_bytes=self.page_flags.nbytes,
            scanned_bytes=self.estimate_scanned_bytes(0, self.max_pfn),
            notes=("adds 0 bytes: the bit lives in page->flags; a kexec scan reads "
                   f"every {kernel.STRUCT_PAGE_BYTES}-B struct page (scanned_bytes). "
                   "Host array is 1 B per PFN, a stand-in for page->flags, "
                   "not the 64-B struct page"),
            formula={"struct page flag bit": "0",
                     "scanned_bytes": f"{kernel.STRUCT_PAGE_BYTES} * max_pfn"},
        )

    def conversion_calls(self) -> ConversionCalls:
        """SetPageTdxPrivate()/ClearPageTdxPrivate() of each conversion:
        set_bit()/clear_bit() of PG_tdx_private in page->flags, an atomic
        read-modify-write per page, on this host's struct page array laid out
        in C (:class:`trackers.linux.KernelStructPages`, 64 B per page)
        holding this tracker's set; one C call over every conversion.  Where
        that array cannot be laid out here (over the memory budget, out of
        memory, the library not built), the contract's own calls, one per
        conversion, saying why."""
        try:
            sp = KernelStructPages(self.max_pfn, budget_bytes=self.budget_bytes)
        except (MemoryBudgetError, MemoryError, KernelCodeUnavailable) as exc:
            contract = super().conversion_calls()
            return replace(contract, calls=f"{contract.calls}; no struct page array in C "
                                           f"here: {exc}")
        try:
            for s, e in self.extents():
                sp.mark_ranges(s, e)
        except BaseException:
            sp.close()
            raise
        return ConversionCalls(sp.set_bit_ranges, sp.clear_bit_ranges,
                               "set_bit / clear_bit of PG_tdx_private in page->flags per page",
                               True, lambda: coalesce_batches(sp.scan(cap=EXTENT_CHUNK)),
                               engine=STRUCT_PAGES_ENGINE, close=sp.close)

    @classmethod
    def estimate_scanned_bytes(cls, modeled_bytes, max_pfn):
        """A scan reads every struct page, private or not (64 B per PFN)."""
        return kernel.STRUCT_PAGE_BYTES * validate_max_pfn(max_pfn)

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        estimate_input(starts, ends, max_pfn)
        return 0

    def check(self):
        assert self.page_flags.size == self.max_pfn, (
            f"{self.page_flags.size} page flags for max_pfn {self.max_pfn}")
        stray = np.flatnonzero(self.page_flags & ~np.uint8(PG_TDX_PRIVATE_MASK))
        assert stray.size == 0, f"pfn {int(stray[0])} has flag bits other than PG_tdx_private"
