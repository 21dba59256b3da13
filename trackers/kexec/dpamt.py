"""Dynamic PAMT's refcount array, read as a tracking structure at kexec.

Dynamic PAMT (Shutemov / Edgecombe, v6 25 May 2026; applied to tip x86/tdx
on 4 Sep 2026, 01a43c55ae5f..e61c837817ac, in linux-next) keeps one
``atomic_t`` per 2 MiB range over ``[0, max_pfn)`` in one vzalloc
(init_dpamt_refcounts(): ``DIV_ROUND_UP(max_pfn, PTRS_PER_PTE) * 4`` bytes,
"2MB for every 1TB of physical memory", up to 8 GiB for a 52-bit space; holes
are not skipped).  A count is the
number of 4 KiB pages of the range that hold PAMT_4K backing
(tdx_pamt_get()/tdx_pamt_put()): every control page (TDR, TDCS, TDVPR, TDCX:
tdx_alloc_control_page()), every S-EPT page (tdx_sept_map_nonleaf_spte()) and
every guest page mapped at 4 KiB (tdx_sept_map_leaf_spte()).  A page whose
reclaim failed keeps its reference (the put follows a successful reclaim).

As a tracking option (``dpamt-refcount``): scan the array, reset every RAM
page of each 2 MiB range with a non-zero count, and the PAMT the TDMR list
names.  It cannot see what takes no reference:

* guest memory mapped at 2 MiB (the TDX huge-page series; 0 in mainline:
  ``guest_2m_fraction``, ASSUMED range kernel.GUEST_2M_FRACTION_RANGE) -- a
  fully guest-owned 2 MiB block mapped at 2 MiB has count 0;
* the Dynamic PAMT page pairs themselves (tdh_phymem_pamt_add() pages), unless
  another referenced page shares their 2 MiB range;
* the TDX module extensions' memory (TDH.EXT.MEM.ADD): the module's own, no
  tdx_pamt_get() names it.

and it over-clears: every page of a counted range that is not private (host
pages, shared guest pages, free pages) is reset too -- harmless for their
owner after a normal kexec, but it zeroes their contents, which a kdump
vmcore then lacks.

All figures are modeled (numpy over 2 MiB block indices, no per-page loop).
The strategy is :class:`DpamtRefcount`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernel
from ..extents import (EMPTY, Extents, blocks_touched, count, intersect, normalize, subtract,
                       union)
from .host import KexecHost
from .platform import get_platform
from .states import NEEDS_RESET, PAMT_REF, STATE_FACTS
from .strategy import PROV_MODELED, Outcome, Strategy, bracket

PAGE = kernel.PAGE_SIZE

SHIFT = kernel.DPAMT_REFCOUNT_SHIFT
BLOCK = 1 << SHIFT


def refcount_array_bytes(max_pfn: int) -> int:
    """Bytes of pamt_refcounts for a host whose PFNs end at ``max_pfn``."""
    return -(-int(max_pfn) // BLOCK) * kernel.DPAMT_REFCOUNT_BYTES


def guest_2m_blocks(guest: Extents, fraction: float) -> Extents:
    """The guest pages mapped at 2 MiB when ``fraction`` of guest memory is:
    the first whole, aligned 2 MiB PFN blocks of ``guest`` in PFN order, as
    many as ``fraction`` of its pages fill (at most every such block).  A 2 MiB
    S-EPT leaf also needs its GFNs 2 MiB aligned: this counts PFN blocks only
    (an upper bound on what can be mapped at 2 MiB)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"guest_2m_fraction {fraction!r} must lie in [0, 1]")
    s, e = normalize(*guest)
    first = -(-s // BLOCK)
    last = e // BLOCK
    n = np.maximum(last - first, 0)
    want = int(fraction * count((s, e))) // BLOCK
    if want == 0 or not n.any():
        return EMPTY
    take = np.minimum(n, np.maximum(want - (np.cumsum(n) - n), 0))
    keep = take > 0
    return normalize(first[keep] * BLOCK, (first[keep] + take[keep]) * BLOCK)


@dataclass(frozen=True)
class RefcountScan:
    """What a scan of pamt_refcounts finds and resets on one host (modeled).

    referenced: private pages holding a PAMT_4K reference;
    counted_blocks: 2 MiB block indices with a non-zero count (ascending);
    reset: pages reset (RAM of the counted blocks, and the TDMR-listed PAMT);
    found / missed / overcleared: private pages reset, private pages not
        reset, reset pages that were not private.
    """

    array_bytes: int
    referenced: Extents
    counted_blocks: np.ndarray
    reset: Extents
    found: int
    missed: int
    overcleared: int
    missed_2m: int
    missed_dpamt: int
    missed_ext: int = 0

    @property
    def runs(self) -> int:
        """Runs of adjacent counted blocks the scan emits."""
        b = self.counted_blocks
        return int(b.size and 1 + np.count_nonzero(np.diff(b) > 1))

    def check(self, host: KexecHost) -> None:
        assert self.found + self.missed == host.private_pages
        assert self.found + self.overcleared == count(self.reset)
        assert count(subtract(self.referenced, self.reset)) == 0, \
            "a referenced page lies in a block that was not reset"


def refcount_scan(host: KexecHost, guest_2m_fraction: float = kernel.GUEST_2M_FRACTION
                  ) -> RefcountScan:
    """The scan of ``host``'s refcount array with ``guest_2m_fraction`` of
    guest memory mapped at 2 MiB.  Referenced: every private page but the PAMT
    (static levels and page pairs), the extension memory and the 2 MiB-mapped
    guest pages."""
    g2m = guest_2m_blocks(host.guest, guest_2m_fraction)
    referenced = subtract(host.private, union(host.pamt, host.ext, g2m))
    blocks = blocks_touched(referenced, SHIFT)
    counted = normalize(blocks * BLOCK, (blocks + 1) * BLOCK) if blocks.size else EMPTY
    reset = union(intersect(counted, host.ram), host.pamt_listed)
    found = count(intersect(host.private, reset))
    missed = host.private_pages - found
    return RefcountScan(
        array_bytes=refcount_array_bytes(host.max_pfn), referenced=referenced,
        counted_blocks=blocks, reset=reset, found=found, missed=missed,
        overcleared=count(reset) - found,
        missed_2m=count(subtract(g2m, reset)),
        missed_dpamt=count(subtract(host.dynamic_pamt, reset)),
        missed_ext=count(subtract(host.ext, reset)))


class DpamtRefcount(Strategy):
    """Dynamic PAMT (v6, May 2026) as a tracking option: scan the per-2 MiB
    refcount array over [0, max_pfn) and reset every RAM page of each range
    with a non-zero count, plus the PAMT the TDMR list names (the module doc).
    Free once Dynamic PAMT merges (the kernel keeps the array for it);
    ``added_bytes`` is the array.  Misses guest memory mapped at 2 MiB
    (``guest_2m_fraction``, 0 in mainline; ASSUMED range
    kernel.GUEST_2M_FRACTION_RANGE) and Dynamic PAMT page pairs alone in their
    range; over-clears the non-private pages of every counted range."""

    name = "dpamt-refcount"
    option = ("8: Dynamic PAMT refcounts: reset every 2 MiB range with a non-zero count "
              "(v6 2026)")
    sized_structure = True

    def __init__(self, guest_2m_fraction: float = kernel.GUEST_2M_FRACTION):
        lo, hi = kernel.GUEST_2M_FRACTION_RANGE
        if not lo <= guest_2m_fraction <= hi:
            raise ValueError(f"guest_2m_fraction {guest_2m_fraction!r} must lie in "
                             f"[{lo}, {hi}]")
        self.guest_2m_fraction = float(guest_2m_fraction)

    def finds(self, state: str) -> bool:
        return state in NEEDS_RESET and STATE_FACTS[state][PAMT_REF]

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        return refcount_array_bytes(max_pfn)

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        r = host.derived(("refcount_scan", self.guest_2m_fraction),
                         lambda: refcount_scan(host, self.guest_2m_fraction))
        r.check(host)
        top = kernel.GUEST_2M_FRACTION_RANGE[1]
        hi = host.derived(("refcount_scan", top), lambda: refcount_scan(host, top))
        scanned = r.array_bytes
        entries = scanned // kernel.SCAN_ENTRY_BYTES
        pages_reset = count(r.reset)

        def scan(p):
            return p.scan_s(scanned, 1, entries, r.runs, 0)

        scan_s, clear_s = scan(platform), platform.clear_s(pages_reset * PAGE)
        static = "" if count(host.dynamic_pamt) else (
            "; this host's PAMT is static: refcounts as Dynamic PAMT would keep them")
        out = Outcome(
            strategy=self.name, option=self.option, kexec_allowed=True,
            added_bytes=r.array_bytes, scanned_bytes=scanned, scan_loads=1,
            pages_reset=pages_reset, pages_missed=r.missed, scan_s=scan_s, clear_s=clear_s,
            downtime_s=scan_s + clear_s, scan_entries=entries, scan_extents=r.runs,
            pages_overcleared=r.overcleared,
            provenance=(PROV_MODELED + ", pages_overcleared; refcounts from the pages that "
                        "call tdx_pamt_get() (Dynamic PAMT v6 patches 03, 07, 09)"),
            notes=(f"{r.counted_blocks.size:,} counted 2 MiB ranges; over-clears "
                   f"{r.overcleared:,} pages (their contents lost: a kdump vmcore lacks "
                   f"them); misses {r.missed_2m:,} 2 MiB-mapped guest + {r.missed_dpamt:,} "
                   f"PAMT-pair + {r.missed_ext:,} extension-memory pages at guest_2m_fraction {self.guest_2m_fraction:g}; "
                   f"ASSUMED range {kernel.GUEST_2M_FRACTION_RANGE[0]:g}-"
                   f"{kernel.GUEST_2M_FRACTION_RANGE[1]:g}: at "
                   f"{kernel.GUEST_2M_FRACTION_RANGE[1]:g} misses {hi.missed:,}{static}"))
        return bracket(out, platform, lambda p: scan(p) + p.clear_s(pages_reset * PAGE))
