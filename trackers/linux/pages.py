"""ctypes binding to pages.c and directmap.c: the layouts options 2 and 3
would scan at kexec, built for real in C and scanned on this machine.

Options 2 (``pte-softbit``) and 3 (``pageflags``) have no kernel library to
build: the kernel structure each one scans is a layout the kernel keeps
anyway.  ``pages.c`` (struct pages) and ``directmap.c`` (the direct map's
page tables), MIT and no kernel code, lay them out as the kernel does so
that their scans read the bytes the kernel's would, and can be timed:

* :class:`KernelStructPages` -- one ``STRUCT_PAGE_BYTES`` (64-B) stand-in
  per PFN, the flags word at offset 0 as ``page->flags`` is, 2 MiB aligned
  and madvised to huge pages as the vmemmap is PMD-mapped; the flag tested is
  :data:`PG_TDX_PRIVATE`.  The scan reads every struct page's first cache
  line: ``max_pfn * 64`` bytes, the model's ``scanned_bytes``.
* :class:`KernelDirectMap` -- the direct map's page tables: 4 KiB PUD, PMD
  and PTE pages of 512 eight-byte entries with the x86 bits (present, PSE
  for a 2 MiB or 1 GiB leaf, :data:`PTE_BIT_TDX_PRIVATE` the soft bit),
  built from the mappings ``split_mem_range()`` gives
  (``trackers.kexec.directmap``); marking a page splits the large mapping
  that holds it as ``split_large_page()`` does, the new table pages
  scattered in memory (or in walk order: ``split_placement``).  The walk
  reads every entry of every table page: its bytes read equal
  ``SoftbitSplit.scanned_bytes``.

pages.h, pages.c and directmap.c say where every size and bit comes from.
Nothing is timed in C: :func:`time_scan` times a whole scan from Python
(``time.perf_counter``), and :func:`struct_page_scan_time` measures the
largest struct-page array the memory budget allows and scales it linearly
to a larger host, saying so in its provenance.

These are engines, not trackers: no Tracker contract here (the ``@kernel``
trackers put one on top).  Conventions as in :mod:`.binding`: PFNs are
integers in ``[0, 2^40)`` (``kernel.MAX_PHYS_PFN``); ranges are half-open;
a scan yields ascending maximal runs as ``(starts, ends)`` int64 arrays of
at most ``cap`` runs, resuming from a cursor between chunks.  Each engine
refuses, before allocating, to go beyond its ``budget_bytes`` (default
:func:`trackers.base.memory_budget`: ``$TRACKERS_MEMORY_BUDGET`` or 8 GiB),
raising :class:`trackers.base.MemoryBudgetError` naming the bytes and the
budget.  The library is the one :func:`trackers.linux.build` makes (pages.c
and directmap.c are compiled into it), so these engines are available where
the kernel-code engines are.

This module does not import ``trackers.kexec``: the direct map's mappings
come in as arrays (or any object with ``starts``, ``ends`` and ``levels``,
as ``DirectMap`` has them), so the kexec layer may build on these engines.
"""

from __future__ import annotations

import ctypes
import statistics
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .. import kernel
from ..base import (MemoryBudgetError, check_budget, memory_budget, validate_budget,
                    validate_max_pfn, validate_pfns, validate_ranges)
from ..extents import normalize
from ..repeats import as_repeats, timed_runs
from .binding import REBUILD_HINT, SCAN_CHUNK, Handle, library
from .build import KernelCodeUnavailable
from .dlopen import typed_library

# --- what pages.h lays out (each checked against the library at load) ------
#: the struct page flag tested: a new PG_tdx_private appended to enum
#: pageflags (include/linux/page-flags.h) is bit 24 with Debian's 6.12 amd64
#: config, where __NR_PAGEFLAGS is 24 (PG_arch_2, bit 23, is x86 PAT's).
PG_TDX_PRIVATE = 24
#: the direct-map PTE soft bit: _PAGE_BIT_SOFTW2 (bit 10,
#: arch/x86/include/asm/pgtable_types.h), the kernel's _PAGE_BIT_UFFD_WP,
#: used only in user PTEs; SOFTW1 is _PAGE_BIT_CPA_TEST in the direct map.
PTE_BIT_TDX_PRIVATE = 10
#: mapping levels of the direct map (pages.h TDX_LEVEL_*), as
#: trackers.kexec.directmap's split_mem_range() labels its mappings
LEVEL_4K, LEVEL_2M, LEVEL_1G = 0, 1, 2
#: where a mark's split table pages sit (KernelDirectMap split_placement)
SPLIT_PLACEMENTS = ("scattered", "in-order")
#: PFNs per top-level (PGD/P4D) entry: 512 GiB
_SHIFT_512G = 27

_DONE = (1 << 64) - 1                           # runs.h TDX_SCAN_DONE
_EINVAL = 22
_ENOMEM = 12

_P_U64 = ctypes.POINTER(ctypes.c_uint64)
_P_I64 = ctypes.POINTER(ctypes.c_int64)
_P_I8 = ctypes.POINTER(ctypes.c_int8)
_P_U8 = ctypes.POINTER(ctypes.c_uint8)
_P_INT = ctypes.POINTER(ctypes.c_int)
_I64 = ctypes.c_int64
_VP = ctypes.c_void_p

_SIGNATURES = {
    "tdx_pages_fact": (ctypes.c_int, [ctypes.c_int]),
    "tdx_sp_create": (_VP, [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int, _P_INT]),
    "tdx_sp_destroy": (None, [_VP]),
    "tdx_sp_set_ranges": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_int]),
    "tdx_sp_set_bit_ranges": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_int]),
    "tdx_sp_test": (ctypes.c_int, [_VP, _P_U64, _I64, _P_U8]),
    "tdx_sp_count": (_I64, [_VP]),
    "tdx_sp_check": (_I64, [_VP]),
    "tdx_sp_bytes": (ctypes.c_uint64, [_VP]),
    "tdx_sp_scan": (_I64, [_VP, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_dm_plan": (ctypes.c_int, [_P_U64, _P_U64, _P_I8, _I64, _P_I64]),
    "tdx_dm_create": (_VP, [ctypes.c_uint64, _P_U64, _P_U64, _P_I8, _I64, _P_INT]),
    "tdx_dm_destroy": (None, [_VP]),
    "tdx_dm_mark": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_int, _P_I64, _I64]),
    "tdx_dm_unmark": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_dm_test": (ctypes.c_int, [_VP, _P_U64, _I64, _P_U8]),
    "tdx_dm_scan": (_I64, [_VP, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_dm_read": (None, [_VP, _P_I64, ctypes.c_int]),
    "tdx_dm_counts": (None, [_VP, _P_I64]),
    "tdx_dm_check": (_I64, [_VP]),
}

#: tdx_pages_fact(i) and the value the Python side uses
_FACTS = (("PG_tdx_private", PG_TDX_PRIVATE), ("_PAGE_BIT_SOFTW2", PTE_BIT_TDX_PRIVATE),
          ("table page bytes", kernel.PAGE_TABLE_PAGE_BYTES),
          ("entries per table page", kernel.PTRS_PER_PTE))

_pages_lib: ctypes.CDLL | None = None


def pages_library() -> ctypes.CDLL:
    """The library with pages.c's and directmap.c's functions typed; never
    builds (as :func:`trackers.linux.library`).  Raises :class:`KernelCodeUnavailable`
    if it is not built, lacks their functions, or lays out other bits or sizes
    than this module's."""
    global _pages_lib
    if _pages_lib is not None:
        return _pages_lib
    lib = typed_library(library(), _SIGNATURES, unavailable=KernelCodeUnavailable,
                        what="the kernel library's pages.c and directmap.c", hint=REBUILD_HINT)
    for i, (what, want) in enumerate(_FACTS):
        got = lib.tdx_pages_fact(i)
        if got != want:
            raise KernelCodeUnavailable(f"the kernel library's pages.c has {what} = {got}, "
                                        f"this module uses {want}{REBUILD_HINT}")
    _pages_lib = lib
    return lib


# --------------------------------------------------------------------------
# input and scans

def _u64(arr: np.ndarray):
    return np.ascontiguousarray(arr, np.uint64)


def _ptr(arr: np.ndarray, ptype):
    return arr.ctypes.data_as(ptype)


def _budget(budget_bytes) -> int:
    return memory_budget() if budget_bytes is None else validate_budget(budget_bytes)


def _test(fn, handle, pfns, limit: int) -> np.ndarray:
    """``fn(handle, pfns, n, out)`` over PFNs checked against ``limit``: one
    byte per PFN, as a bool array."""
    p = _u64(validate_pfns(pfns, limit))
    out = np.zeros(p.size, np.uint8)
    fn(handle(), _ptr(p, _P_U64), p.size, _ptr(out, _P_U8))
    return out.astype(bool)


def _chunked_scan(fn, handle, cap, start: int, limit: int
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Drive ``fn(handle, &cursor, starts, ends, cap)`` until the cursor says
    done: (starts, ends) int64 arrays of <= cap runs each.  Arguments are
    checked now; the walk runs as the generator is consumed."""
    if isinstance(cap, (bool, np.bool_)) or not isinstance(cap, (int, np.integer)):
        raise TypeError(f"cap must be a positive int of runs, got {type(cap).__name__} {cap!r}")
    if cap < 1:
        raise ValueError(f"cap {int(cap)} must be >= 1: a scan yields chunks of >= 1 run")
    first = int(validate_pfns([start], limit, "start")[0]) if start else 0
    cap = int(cap)

    def chunks():
        cursor = ctypes.c_uint64(first)
        while cursor.value != _DONE:
            s = np.empty(cap, np.int64)
            e = np.empty(cap, np.int64)
            n = fn(handle(), ctypes.byref(cursor), _ptr(s, _P_I64), _ptr(e, _P_I64), cap)
            if n:
                yield s[:n], e[:n]

    return chunks()


# --------------------------------------------------------------------------
# option 3: a flag bit in struct page

class KernelStructPages(Handle):
    """``max_pfn`` struct pages of ``kernel.STRUCT_PAGE_BYTES`` each, in C.

    ``nbytes`` is exactly ``max_pfn * STRUCT_PAGE_BYTES`` (the array, all of
    it written at construction so the memory is committed); refused before
    allocating when that exceeds ``budget_bytes``.  The flag is
    :data:`PG_TDX_PRIVATE` in the flags word at offset 0; every other bit of
    that word is set, so nothing but the one bit counts.
    """

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        self.max_pfn = validate_max_pfn(max_pfn)
        self.struct_page_bytes = kernel.STRUCT_PAGE_BYTES
        need = self.max_pfn * self.struct_page_bytes
        self.budget_bytes = _budget(budget_bytes)
        check_budget(f"{self.max_pfn:,} struct pages of {self.struct_page_bytes} B",
                     need, self.budget_bytes)
        lib = pages_library()
        err = ctypes.c_int(0)
        h = lib.tdx_sp_create(self.max_pfn, self.struct_page_bytes, PG_TDX_PRIVATE,
                              ctypes.byref(err))
        if not h:
            if err.value == _ENOMEM:
                raise MemoryError(f"{need:,} bytes of struct pages: out of memory")
            raise OSError(err.value, f"tdx_sp_create({self.max_pfn}) failed")
        self._own(lib, h, "tdx_sp_destroy")

    @property
    def nbytes(self) -> int:
        """Bytes of the struct page array (max_pfn x STRUCT_PAGE_BYTES)."""
        return int(self._lib.tdx_sp_bytes(self._handle()))

    def _set(self, fn: str, starts, ends, value: int) -> None:
        s, e = validate_ranges(starts, ends, self.max_pfn)
        s, e = _u64(s), _u64(e)
        ret = getattr(self._lib, fn)(self._handle(), _ptr(s, _P_U64), _ptr(e, _P_U64),
                                     s.size, value)
        if ret:
            raise OSError(-ret, f"{fn} failed")

    def mark_ranges(self, starts, ends) -> None:
        """The flag set on every page of every ``[start, end)``, a plain store
        per flags word (building the array; :meth:`set_bit_ranges` is the
        kernel's atomic SetPageTdxPrivate())."""
        self._set("tdx_sp_set_ranges", starts, ends, 1)

    def unmark_ranges(self, starts, ends) -> None:
        """The flag cleared on every page of every ``[start, end)``, a plain store."""
        self._set("tdx_sp_set_ranges", starts, ends, 0)

    def set_bit_ranges(self, starts, ends) -> None:
        """SetPageTdxPrivate() on every page of every ``[start, end)``:
        set_bit() of the flag in page->flags, an atomic read-modify-write (x86:
        LOCK OR), one C call over every range."""
        self._set("tdx_sp_set_bit_ranges", starts, ends, 1)

    def clear_bit_ranges(self, starts, ends) -> None:
        """ClearPageTdxPrivate(): clear_bit() (x86: LOCK AND), as :meth:`set_bit_ranges`."""
        self._set("tdx_sp_set_bit_ranges", starts, ends, 0)

    def contains(self, pfns) -> np.ndarray:
        """PageTdxPrivate() per PFN, as a bool array."""
        return _test(self._lib.tdx_sp_test, self._handle, pfns, self.max_pfn)

    def count(self) -> int:
        """Pages flagged (a pass over every struct page)."""
        return int(self._lib.tdx_sp_count(self._handle()))

    def scan(self, cap: int = SCAN_CHUNK, start: int = 0
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Maximal runs of flagged PFNs >= start, ascending, <= cap per chunk:
        the kexec-time loop over every struct page's flags word."""
        return _chunked_scan(self._lib.tdx_sp_scan, self._handle, cap, start, self.max_pfn)

    @property
    def scanned_bytes(self) -> int:
        """Bytes a whole scan reads: one cache line per struct page, i.e.
        every byte of the array (64-B struct pages, 64-B lines)."""
        return self.nbytes

    def check(self) -> None:
        """Every flags word has all its bits but PG_TDX_PRIVATE set."""
        bad = int(self._lib.tdx_sp_check(self._handle()))
        assert bad == 0, f"{bad} struct pages have a flags word this engine did not write"


# --------------------------------------------------------------------------
# option 2: a software bit in the direct map's PTEs

@dataclass(frozen=True)
class DirectMapCounts:
    """One state of the direct map, counted: what the model of
    ``trackers.kexec.directmap`` (``DirectMap.counts()``, ``split_for()``)
    says and what :class:`KernelDirectMap` holds (:class:`DirectMapTables`).

    pud_pages / pmd_pages / pte_pages: 4 KiB page-table pages per level;
    pages_4k / mappings_2m / mappings_1g: present leaves, what
    ``/proc/meminfo`` calls DirectMap4k (x 4 kB), DirectMap2M (x 2048 kB),
    DirectMap1G (x 1 GiB).
    """

    pud_pages: int
    pmd_pages: int
    pte_pages: int
    pages_4k: int
    mappings_2m: int
    mappings_1g: int

    @property
    def table_pages(self) -> int:
        return self.pud_pages + self.pmd_pages + self.pte_pages

    @property
    def table_bytes(self) -> int:
        return self.table_pages * kernel.PAGE_TABLE_PAGE_BYTES

    def meminfo_kb(self) -> dict[str, int]:
        """DirectMap4k/2M/1G lines of /proc/meminfo, in kB."""
        return {"DirectMap4k": self.pages_4k * 4,
                "DirectMap2M": self.mappings_2m * 2048,
                "DirectMap1G": self.mappings_1g * (1 << 20)}


@dataclass(frozen=True)
class DirectMapTables(DirectMapCounts):
    """One state of a :class:`KernelDirectMap`, counted in its tables: the
    :class:`DirectMapCounts`, and marked_pages: PTEs with the soft bit;
    host_bytes: what the C side holds (table pages come from 2 MiB chunks,
    plus one 8-B top-level entry per 512 GiB).  Fields in tdx_dm_counts()'s
    order.
    """

    marked_pages: int
    host_bytes: int


def _mappings(starts, ends, levels):
    s = np.asarray(starts, np.int64).ravel()
    e = np.asarray(ends, np.int64).ravel()
    lv = np.asarray(levels).ravel()
    if not (s.size == e.size == lv.size):
        raise ValueError(f"{s.size} starts, {e.size} ends and {lv.size} levels: one each "
                         f"per mapping")
    bad = ~np.isin(lv, (LEVEL_4K, LEVEL_2M, LEVEL_1G))
    if bad.any():
        raise ValueError(f"mapping level {lv[bad][0]!r} is not LEVEL_4K (0), LEVEL_2M (1) "
                         f"or LEVEL_1G (2)")
    if s.size and (int(s.min()) < 0 or int(e.max()) > kernel.MAX_PHYS_PFN):
        raise ValueError(f"mappings must lie in [0, {kernel.MAX_PHYS_PFN}) PFNs")
    return _u64(s), _u64(e), np.ascontiguousarray(lv, np.int8)


class KernelDirectMap(Handle):
    """The x86-64 direct map's page tables, in C, for option 2.

    Built from the boot mappings ``(starts, ends, levels)`` as
    ``split_mem_range()`` gives them (sorted, disjoint, each aligned to its
    level: ``DirectMap.starts/.ends/.levels``); :meth:`from_directmap` takes
    a ``DirectMap`` and a private set.  :meth:`mark_ranges` sets the soft bit,
    splitting 1 GiB and 2 MiB mappings as set_memory.c does (one 4 KiB table
    page each, one-way); :meth:`unmark_ranges` clears it and keeps the
    splits.  ``table_bytes`` (table pages x 4 KiB) is what
    ``DirectMap.split_for(private).after.table_bytes`` models for the same
    pages; a whole :meth:`scan` reads exactly those bytes
    (:attr:`scanned_bytes`).  The budget bounds ``table_bytes``, checked
    before the boot build and before every mark, from an exact count of the
    pages it would allocate.

    Where table pages sit changes the walk's time several-fold (a cold
    4 KiB page costs far more than one the prefetcher streams), so it is a
    parameter: boot tables are laid out in the order they are built (as
    alloc_low_pages() hands them out); ``split_placement="scattered"`` (the
    default) gives each mark's split pages a random order within one region
    (``seed``), as pages the page allocator handed out over a host's life
    would be; ``"in-order"`` lays them out in walk order, the best case.
    """

    def __init__(self, starts, ends, levels, *, split_placement: str = "scattered",
                 seed: int = 0, budget_bytes: int | None = None):
        s, e, lv = _mappings(starts, ends, levels)
        if split_placement not in SPLIT_PLACEMENTS:
            raise ValueError(f"split_placement {split_placement!r} is not one of "
                             f"{', '.join(SPLIT_PLACEMENTS)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed {seed!r} must be an int >= 0")
        self.split_placement = split_placement
        self.seed = int(seed)
        self.budget_bytes = _budget(budget_bytes)
        lib = pages_library()
        plan = np.zeros(3, np.int64)
        ret = lib.tdx_dm_plan(_ptr(s, _P_U64), _ptr(e, _P_U64), _ptr(lv, _P_I8), s.size,
                              _ptr(plan, _P_I64))
        if ret:
            raise ValueError("mappings must be sorted, disjoint, non-empty and aligned to "
                             "their level (2 MiB: 512 PFNs, 1 GiB: 262144 PFNs), as "
                             "split_mem_range() gives them")
        need = int(plan.sum()) * kernel.PAGE_TABLE_PAGE_BYTES
        check_budget(f"the direct map's page tables ({int(plan[0]):,} PUD, {int(plan[1]):,} "
                     f"PMD, {int(plan[2]):,} PTE pages of 4 KiB)", need, self.budget_bytes)
        #: one past the highest PFN mapped (0 for an empty map)
        self.max_pfn = int(e.max()) if e.size else 0
        top = max(1, -(-self.max_pfn >> _SHIFT_512G))   # top-level entries, 512 GiB each
        err = ctypes.c_int(0)
        h = lib.tdx_dm_create(top, _ptr(s, _P_U64), _ptr(e, _P_U64), _ptr(lv, _P_I8), s.size,
                              ctypes.byref(err))
        if not h:
            if err.value == _ENOMEM:
                raise MemoryError(f"{need:,} bytes of page tables: out of memory")
            raise OSError(err.value, "tdx_dm_create failed")
        self._own(lib, h, "tdx_dm_destroy")

    @classmethod
    def from_directmap(cls, directmap, private=None, *, split_placement: str = "scattered",
                       seed: int = 0, budget_bytes: int | None = None) -> "KernelDirectMap":
        """The direct map of a ``trackers.kexec.directmap.DirectMap`` (its
        ``starts``, ``ends``, ``levels``), with ``private`` (an extent pair,
        or None) marked in one mark: the splits of
        ``directmap.split_for(private)``."""
        dm = cls(directmap.starts, directmap.ends, directmap.levels,
                 split_placement=split_placement, seed=seed, budget_bytes=budget_bytes)
        if private is not None:
            dm.mark_ranges(*private)
        return dm

    def _ranges(self, starts, ends):
        s, e = validate_ranges(starts, ends, kernel.MAX_PHYS_PFN)
        s, e = normalize(s, e)
        return _u64(s), _u64(e)

    def mark_ranges(self, starts, ends) -> int:
        """Set the soft bit on every page of the ranges, splitting the large
        mappings that hold them; returns the pages that have no PTE (outside
        the direct map: the bit has nowhere to live).  Refused before any
        change if the splits would take ``table_bytes`` over the budget."""
        s, e = self._ranges(starts, ends)
        out = np.zeros(3, np.int64)
        h = self._handle()
        self._lib.tdx_dm_mark(h, _ptr(s, _P_U64), _ptr(e, _P_U64), s.size, 1,
                              _ptr(out, _P_I64), -1)
        added = int(out[0] + out[1])
        if added:
            need = self.table_bytes + added * kernel.PAGE_TABLE_PAGE_BYTES
            check_budget(f"the direct map's page tables after {int(out[0]):,} 1G->2M and "
                         f"{int(out[1]):,} 2M->4K splits", need, self.budget_bytes)
        seed = self.seed if self.split_placement == "scattered" else -1
        ret = self._lib.tdx_dm_mark(h, _ptr(s, _P_U64), _ptr(e, _P_U64), s.size, 0,
                                    _ptr(out, _P_I64), seed)
        if ret == -_ENOMEM:
            raise MemoryError("splitting the direct map: out of memory (the splits made "
                              "so far stay)")
        if ret:
            raise OSError(-ret, "tdx_dm_mark failed")
        return int(out[2])

    def unmark_ranges(self, starts, ends) -> None:
        """Clear the soft bit on every page of the ranges; splits stay (no
        cpa_collapse_large_pages())."""
        s, e = self._ranges(starts, ends)
        self._lib.tdx_dm_unmark(self._handle(), _ptr(s, _P_U64), _ptr(e, _P_U64), s.size)

    def contains(self, pfns) -> np.ndarray:
        """The soft bit of each PFN's 4 KiB PTE (False without one), as bools."""
        return _test(self._lib.tdx_dm_test, self._handle, pfns, kernel.MAX_PHYS_PFN)

    def count(self) -> int:
        """PTEs with the soft bit (a count, not a walk: scanned_bytes is unchanged)."""
        return self.tables().marked_pages

    def scan(self, cap: int = SCAN_CHUNK, start: int = 0
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Maximal runs of PFNs whose PTE has the soft bit, >= start,
        ascending, <= cap per chunk: the walk of every PUD page, every PMD
        page under a split 1 GiB region and every PTE page under a split
        2 MiB region.  Each resumed chunk re-reads the 3 entries it stopped
        at (24 B more in :attr:`scanned_bytes`)."""
        return _chunked_scan(self._lib.tdx_dm_scan, self._handle, cap, start,
                             kernel.MAX_PHYS_PFN)

    def tables(self) -> DirectMapTables:
        """Table pages, mappings and marked PTEs now (counts every entry of
        every table; not a scan: :attr:`scanned_bytes` is unchanged)."""
        out = np.zeros(8, np.int64)
        self._lib.tdx_dm_counts(self._handle(), _ptr(out, _P_I64))
        return DirectMapTables(*(int(v) for v in out))

    def _counters(self, reset: bool = False) -> np.ndarray:
        out = np.zeros(7, np.int64)
        self._lib.tdx_dm_read(self._handle(), _ptr(out, _P_I64), 1 if reset else 0)
        return out

    @property
    def table_bytes(self) -> int:
        """Table pages x 4 KiB: the model's DirectMapCounts.table_bytes."""
        return int(self._counters()[3:6].sum()) * kernel.PAGE_TABLE_PAGE_BYTES

    @property
    def nbytes(self) -> int:
        """Host bytes the C side holds (table pages in 2 MiB chunks, top level)."""
        return int(self._counters()[6])

    def entries_read(self) -> tuple[int, int, int]:
        """PUD, PMD and PTE entries the scans read since construction or
        :meth:`reset_scanned`."""
        out = self._counters()
        return int(out[0]), int(out[1]), int(out[2])

    @property
    def scanned_bytes(self) -> int:
        """Bytes the scans read since construction or :meth:`reset_scanned`:
        entries read x 8 (a whole scan: every table page, 4 KiB each)."""
        return sum(self.entries_read()) * 8

    def reset_scanned(self) -> None:
        """Zero the entries-read counters (:attr:`scanned_bytes`)."""
        self._counters(reset=True)

    def check(self) -> None:
        """Every leaf maps the PFN of its position; PSE only in PUD/PMD
        leaves; the soft bit only in present 4 KiB PTEs."""
        bad = int(self._lib.tdx_dm_check(self._handle()))
        assert bad < 0, f"the direct map's entry for pfn {bad} breaks an invariant"


# --------------------------------------------------------------------------
# timing (measured here, from Python)

@dataclass(frozen=True)
class ScanTime:
    """A whole scan's time on this machine.

    seconds: the median of ``repeat`` whole scans (``seconds_min`` and
    ``seconds_max`` the spread), times ``scale``; ``measured_pfns`` PFNs were
    scanned for it and the figure is for ``max_pfn`` (``scale`` =
    max_pfn / measured_pfns, 1 when measured whole); ``bytes_read`` by one
    measured scan; ``runs`` it found; ``provenance`` says all of this in
    words, including "extrapolated" when scale != 1.
    """

    seconds: float
    seconds_min: float
    seconds_max: float
    max_pfn: int
    measured_pfns: int
    repeat: int
    bytes_read: int
    runs: int
    provenance: str

    @property
    def scale(self) -> float:
        return self.max_pfn / self.measured_pfns

    @property
    def ns_per_pfn(self) -> float:
        return self.seconds / self.max_pfn * 1e9

    @property
    def bytes_per_s(self) -> float:
        """Read rate of the measured scans (bytes_read / unscaled median)."""
        return self.bytes_read * self.scale / self.seconds


def time_scan(engine, *, repeat=5, cap: int = SCAN_CHUNK
              ) -> tuple[float, float, float, int, int]:
    """(median, min, max) seconds of whole ``engine.scan(cap)`` passes, the
    runs one pass finds, and the passes timed: ``repeat`` of them (an int),
    or as many as a :class:`trackers.repeats.Repeats` rule asks.  Measured
    with time.perf_counter around the Python loop that consumes the chunks."""
    rule = as_repeats(repeat)

    def one_pass() -> int:
        n = 0
        for s, _e in engine.scan(cap):
            n += s.size
        return n

    times, runs = timed_runs(one_pass, rule)
    return statistics.median(times), min(times), max(times), runs, len(times)


def struct_page_scan_time(max_pfn: int, starts=None, ends=None, *,
                          budget_bytes: int | None = None, repeat=5,
                          cap: int = SCAN_CHUNK) -> ScanTime:
    """The struct-page scan over ``max_pfn`` PFNs with ``[starts, ends)``
    flagged, measured -- or, past the budget, extrapolated.

    Measures the largest array the budget allows, ``min(max_pfn, budget //
    STRUCT_PAGE_BYTES)`` PFNs, with the part of the set below that size
    flagged, and scales the times linearly by PFNs (the scan reads every
    struct page, flagged or not, so its time is linear in PFNs; the runs
    found add little).  The provenance says "measured" or "extrapolated"
    and from what size."""
    max_pfn = validate_max_pfn(max_pfn)
    budget = _budget(budget_bytes)
    stride = kernel.STRUCT_PAGE_BYTES
    n = min(max_pfn, budget // stride)
    if n < 1:
        raise MemoryBudgetError(f"one struct page needs {stride} host bytes, over the memory "
                                f"budget of {budget:,} bytes: nothing to measure")
    with KernelStructPages(n, budget_bytes=budget) as sp:
        if starts is not None:
            s, e = validate_ranges(starts, ends, max_pfn)
            keep = s < n
            sp.mark_ranges(s[keep], np.minimum(e[keep], n))
        med, lo, hi, runs, repeat = time_scan(sp, repeat=repeat, cap=cap)
        nbytes = sp.nbytes
    scale = max_pfn / n
    what = (f"C scan of {n:,} struct pages ({nbytes / 2**30:.2f} GiB, "
            f"{stride} B each), median of {repeat} (min {lo:.3g} s, max {hi:.3g} s)")
    if n == max_pfn:
        prov = f"measured: {what}"
    else:
        prov = (f"extrapolated: {what}, the largest the budget of {budget:,} bytes allows, "
                f"scaled linearly x{scale:.4g} to {max_pfn:,} PFNs "
                f"({max_pfn * stride / 2**30:.2f} GiB)")
    return ScanTime(med * scale, lo * scale, hi * scale, max_pfn, n, repeat, nbytes, runs, prov)


def direct_map_scan_time(engine: KernelDirectMap, *, repeat=5,
                         cap: int = SCAN_CHUNK) -> ScanTime:
    """The page-table walk of a built :class:`KernelDirectMap`, measured whole
    (no extrapolation: build it within the budget).  ``max_pfn`` is the
    engine's (one past the highest PFN mapped); ``bytes_read`` that of one
    walk (table pages x 4 KiB, plus 24 B per resumed chunk)."""
    engine.reset_scanned()
    med, lo, hi, runs, repeat = time_scan(engine, repeat=repeat, cap=cap)
    nbytes = engine.scanned_bytes // repeat
    engine.reset_scanned()
    prov = (f"measured: C walk of {nbytes / 2**20:,.1f} MiB of direct-map page tables "
            f"(split pages {engine.split_placement}), median of {repeat} "
            f"(min {lo:.3g} s, max {hi:.3g} s)")
    pfns = max(engine.max_pfn, 1)
    return ScanTime(med, lo, hi, pfns, pfns, repeat, nbytes, runs, prov)
