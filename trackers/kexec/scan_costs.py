"""The scan model's per-item costs, measured on this machine: the CPU seconds a
kexec-time scan spends per entry tested, per run emitted, per lookup and per
call (``Platform.entry_s``, ``run_s``, ``lookup_s``, ``call_s``), and what a
dependent load costs in the one structure whose loads the prefetcher cannot
follow (the direct map's scattered split page tables); the model is
:meth:`trackers.kexec.platform.Platform.scan_s`.

What is timed is what the report times, structure by structure: a whole
scan of a tracker (:func:`trackers.extents.from_tracker`, the loop
``tdx-trackers report`` times in scan_time.csv) through the ``@kernel``
twins -- the kernel's own find_next_bit/find_next_zero_bit
(``bitmap@kernel``), xas_for_each (``xarray@kernel``,
``xarray-multi@kernel``, ``ida@kernel``'s XArray of ida_bitmaps, and
``kvm@kernel``'s attribute XArray, with an xa_load() per GFN in guest_memfd)
and mas_for_each (``maple@kernel``) -- where the kernel code is built and
loads here, and through the Python/numba emulations otherwise; and, where
the kernel code is built, the C layouts the report times for ``pageflags``
and ``pte-softbit`` (trackers/linux/pages.c: :data:`STRUCTURE_STRUCT_PAGES`;
trackers/linux/directmap.c: :data:`STRUCTURE_PAGE_TABLES`), each pass the
loop pages.time_scan() times.
The engine is recorded with every structure.  Entries, runs, lookups and
loads are counted as the report counts them: a tracker's
:func:`~trackers.kexec.strategy.scan_entries` of its ``memory()``, its
``scan_loads``, the runs the scan returned and one lookup per page found
where its strategy looks each page up (``kvm``); a struct page per PFN; a
page-table entry per 8 bytes of table pages and a load per table page.

Each microbenchmark is a pair of structures, A and B, that differ in ONE of
the model's terms; the cost is the difference of their scan times over the
difference of that term, so the fixed cost of a scan (the call, the chunk
buffers, the contract's merge) cancels.  Where a pair cannot hold another
term equal (``charged``), that term's difference is charged first at its
cost of the same round -- the structure's own where it has one, else the
generic figure -- so the model, charging every term, predicts B from A
exactly:

* per entry  -- E differs, R equal.  bitmap: 16 single-page runs over 2^22
  and 2^26 bits (find_next_bit skips the zero longs); xarray: 16 runs of
  2^12 and 2^14 pages (full leaves: xas_for_each visits every slot);
  xarray-multi: 1024 single pages over 2^16 and 2^22 (a multi-index entry
  per aligned run would hold the slots equal); ida: 16 runs of 2^12 and of
  2^16 pages (ida_bitmaps of 1024 IDs); struct pages: 16 flagged pages in
  2^12 and in 2^16 struct pages; page tables: 16 pages marked in a 16 GiB
  direct map, and the same with 1008 more 2 MiB mappings split (marked,
  then cleared: a split stays).
* per run    -- R differs.  [0, 2^17) marked whole (one run) against a
  random quarter of its pages (seeded: 24,648 runs of geometric lengths and
  gaps, the density of the reference set's scattered pages), in the same
  longs, xa_nodes, ida_bitmaps, struct pages and table pages; ``run_s =
  (T_B - T_A) / (R_B - R_A)``.  Runs a branch predictor could learn cost
  less: every other page gave bitmap@kernel 13 ns a run and ida@kernel 13 ns,
  a random quarter 22 and 28 (the thread's CPU time, at a load of 3-5).  A
  maple tree holds one entry per run and an XArray of multi-index entries a
  slot per aligned block, so their entries grow with the runs: charged at
  the per-entry figure first (the maple tree's is the generic one: its
  entries cannot be varied alone).  kvm: B finds a quarter of the pages, and
  so looks up a quarter as many: charged at kvm's per-lookup figure first.
* per lookup -- the kvm twin's guest_memfd XArray (``kvm@kernel``: the
  kernel's XArray, filled as kvm_gmem binds a TD's pages) holding GFNs
  [2^24, 2^24 + 2^17) -- the top of a 64 GiB file, a 5-level descent whose
  upper nodes stay cached, as trackers/kernel.py SCAN_LOOKUP_S describes its
  microbenchmark -- looked up through ``pfn_plus1`` (xa_load() per GFN, the
  call the kvm scan makes per private GFN) for the first 2^15 and for all
  2^17 GFNs, consecutive: ``lookup_s = (T_B - T_A) / (L_B - L_A)``.
* per call   -- one structure, not a pair: the scan of one page marked in a
  small structure (4096 PFNs; 64 struct pages; a 1 GiB direct map split
  down to its first 2 MiB), its entries, run and lookup charged at its own
  figures (else the generic ones): the fixed cost of one scan here (Python's
  call into the structure, its chunk buffers; 8-30 us, kvm@kernel's 100 us).
  The kernel's loop at kexec has none of it; it is modeled so that the model
  predicts what the report times.
* per load   -- the direct map's page tables only: every 2 MiB of a 16 GiB
  direct map split (8,192 PTE pages, 32 MiB), its split pages in the order
  the walk reads them and in a random order (directmap.c, ``split_placement``:
  pages the page allocator handed out over a host's life), the same counts:
  ``load_s = (T_scattered - T_in_order) / table pages``, what a table page
  the prefetcher cannot follow costs beyond the stream -- several misses
  (a 4 KiB page is 64 lines the prefetcher does not run ahead into), not the
  one the pointer-chase latency is.  It stands in the model for that
  structure's dependent-load cost (Platform.load_latency_s).

Every structure is built once and scanned once untimed; then each of
``repeat`` rounds times A and B of every pair, one after the other, each the
fastest of BEST_OF back-to-back scans (another task's time slice is no cost
of the scan), and gives one sample per structure.  A generic figure's sample
of a round is the median over the tracker structures that measured it (the
kernel's iterators, or the emulations; not the C layouts): what a structure
calibrate did not measure is modeled with.  A figure is the median over the
rounds, its spread the min and max over the rounds, and each structure's own
median and min-max is kept beside it; the platform models each structure's
scan with its own costs where it has them (Platform.for_structure).  The
structures are 16 KiB to 8 MiB, within this machine's last-level cache as
the report's smaller scans are (the per-load pair's tables, 32 MiB, are its
size); the streaming read the model overlaps with this work is calibrated
separately.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from .. import kernel, linux
from ..extents import from_tracker, normalize_extents
from ..linux.binding import SCAN_CHUNK
from ..registry import TRACKERS
from .directmap import DirectMap
from .strategies import TRACKER_STRATEGIES
from .strategy import (ENGINE_EMULATION, ENGINE_PAGE_TABLES, ENGINE_STRUCT_PAGES, kernel_engine,
                       kernel_twin, scan_entries)
from .platform import STRUCTURE_PAGE_TABLES, STRUCTURE_STRUCT_PAGES

#: the Platform fields measured for every structure, in the order they are
#: measured and printed; each has a generic figure (the median over the trackers)
COSTS = ("entry_s", "run_s", "lookup_s", "call_s")
#: the Platform field a structure's own per-load figure stands in for: no
#: generic figure (the pointer chase is the generic one)
LOAD = "load_latency_s"
#: the C layouts (pages.c, directmap.c), by structure name: their engines
C_LAYOUTS = {STRUCTURE_STRUCT_PAGES: ENGINE_STRUCT_PAGES,
             STRUCTURE_PAGE_TABLES: ENGINE_PAGE_TABLES}
#: the model's terms, by the cost that charges them
TERMS = {"entry_s": "entries", "run_s": "runs", "lookup_s": "lookups"}


@dataclass(frozen=True)
class ScanSet:
    """What one structure of a microbenchmark holds: [starts, ends) marked in
    [0, max_pfn).  Page tables only: ``split`` ranges marked and then
    cleared (their splits stay), and ``scattered`` split pages (directmap.c's
    random placement; else in walk order)."""

    max_pfn: int
    starts: np.ndarray
    ends: np.ndarray
    split: tuple[np.ndarray, np.ndarray] | None = None
    scattered: bool = False


@dataclass(frozen=True)
class ScanPair:
    """Two sets of one structure whose scans differ in the term ``cost``
    (module doc); ``charged``: the other terms the sets cannot hold equal,
    charged first at their cost of the same round.  ``structure``: a
    tracker's registry name (its @kernel twin is used where asked for and it
    loads) or a C layout (C_LAYOUTS)."""

    cost: str
    structure: str
    a: ScanSet
    b: ScanSet
    design: str
    charged: tuple[str, ...] = ()


def _spread(n: int, max_pfn: int, length: int) -> ScanSet:
    """``n`` runs of ``length`` pages, evenly spaced over [0, max_pfn)."""
    s = np.arange(n, dtype=np.int64) * (max_pfn // n)
    return ScanSet(max_pfn, s, s + length)


def _whole(pages: int, max_pfn: int | None = None) -> ScanSet:
    return ScanSet(max_pfn or pages, np.zeros(1, np.int64), np.full(1, pages, np.int64))


#: the share of pages a run pair's B marks: the density of the reference set's
#: scattered pages (trackers/sets.py: 10 % of PFNs in the 40 % of 2 MiB slots
#: left after the extents)
SCATTER_DENSITY = 0.25


def _scattered(pages: int, max_pfn: int | None = None, seed: int = 0) -> ScanSet:
    """Each page of [0, pages) marked with probability SCATTER_DENSITY
    (seeded): runs and gaps of geometric lengths, which an iterator's
    branches cannot learn, as they cannot in a real set (every other page
    would let them: bitmap@kernel's run then costs 13 ns, not 22 here)."""
    pfns = np.flatnonzero(np.random.default_rng(seed).random(pages) < SCATTER_DENSITY)
    s, e = normalize_extents(pfns, pfns + 1)
    return ScanSet(max_pfn or pages, s, e)


def _split_2m(max_pfn: int, count: int, *, scattered: bool = False, mark: ScanSet | None = None
              ) -> ScanSet:
    """A direct map of ``max_pfn`` PFNs with the first page of ``count`` evenly
    spaced 2 MiB mappings split (marked, then cleared), and ``mark``'s runs
    marked."""
    step = max_pfn // count
    s = np.arange(count, dtype=np.int64) * step
    starts = mark.starts if mark is not None else np.empty(0, np.int64)
    ends = mark.ends if mark is not None else np.empty(0, np.int64)
    return ScanSet(max_pfn, starts, ends, split=(s, s + 1), scattered=scattered)


_WHOLE = 1 << 17
#: a 16 GiB direct map: 16 x 1 GiB, 8,192 x 2 MiB
_DM_PFNS = 1 << 22
#: 16 single pages, one per GiB of the 16 GiB direct map
_DM_MARKS = _spread(16, _DM_PFNS, 1)
#: the microbenchmarks, in the order they are timed (module doc)
PAIRS = (
    ScanPair("entry_s", "bitmap", _spread(16, 1 << 22, 1), _spread(16, 1 << 26, 1),
             "16 single-page runs over 2^22 and 2^26 bits: longs tested differ, runs equal"),
    ScanPair("entry_s", "xarray", _spread(16, 1 << 22, 1 << 12), _spread(16, 1 << 22, 1 << 14),
             "16 runs of 2^12 and 2^14 pages: full leaves, slots differ, runs equal"),
    ScanPair("entry_s", "xarray-multi", _spread(1024, 1 << 16, 1), _spread(1024, 1 << 22, 1),
             "1024 single pages over 2^16 and 2^22: a leaf per page over 2^22, slots "
             "differ, runs equal"),
    ScanPair("entry_s", "ida", _spread(16, 1 << 22, 1 << 12), _spread(16, 1 << 24, 1 << 16),
             "16 runs of 2^12 and 2^16 pages: ida_bitmaps and slots differ, runs equal"),
    ScanPair("entry_s", STRUCTURE_STRUCT_PAGES, _spread(16, 1 << 12, 1), _spread(16, 1 << 16, 1),
             "16 flagged pages in 2^12 and 2^16 struct pages: struct pages differ, runs equal"),
    ScanPair("entry_s", STRUCTURE_PAGE_TABLES, _split_2m(_DM_PFNS, 16, mark=_DM_MARKS),
             _split_2m(_DM_PFNS, 1024, mark=_DM_MARKS),
             "16 pages marked in a 16 GiB direct map, 16 and 1024 2 MiB mappings split: "
             "PTE pages differ, runs equal"),
    ScanPair("run_s", "bitmap", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) whole and a random quarter of its pages: runs differ, longs equal"),
    ScanPair("run_s", "xarray", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) whole and a random quarter of its pages: runs differ, xa_nodes equal"),
    ScanPair("run_s", "xarray-multi", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) as multi-index entries and a random quarter of its pages: runs "
             "differ; the slots the scattered pages add are charged at its per-entry "
             "figure first",
             charged=("entry_s",)),
    ScanPair("run_s", "ida", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) whole and a random quarter of its pages: runs differ, ida_bitmaps "
             "equal"),
    ScanPair("run_s", "maple", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) as one range and a random quarter of its pages: runs differ; the "
             "entries the runs add are charged at the generic per-entry figure first",
             charged=("entry_s",)),
    ScanPair("run_s", "kvm", _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) private whole and a random quarter of its GFNs: runs differ, "
             "xa_nodes equal; the lookups B does not make are charged at kvm's per-lookup "
             "figure first", charged=("lookup_s",)),
    ScanPair("run_s", STRUCTURE_STRUCT_PAGES, _whole(_WHOLE), _scattered(_WHOLE),
             "[0, 2^17) flagged whole and a random quarter of its pages: runs differ, "
             "struct pages equal"),
    ScanPair("run_s", STRUCTURE_PAGE_TABLES, _whole(_WHOLE, 1 << 18),
             _scattered(_WHOLE, 1 << 18),
             "[0, 2^17) of a 1 GiB direct map marked whole and a random quarter of its "
             "pages: runs differ, PTE pages equal"),
)

#: the per-call structures: one page marked, the smallest scan that finds a run
#: (kvm@kernel holds a TD's XArrays only once a page is private)
_ONE = (np.zeros(1, np.int64), np.ones(1, np.int64))
CALLS = {name: ScanSet(4096, *_ONE)
         for name in ("bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm")}
CALLS[STRUCTURE_STRUCT_PAGES] = ScanSet(64, *_ONE)
CALLS[STRUCTURE_PAGE_TABLES] = ScanSet(1 << 18, *_ONE)
CALL_DESIGN = ("one page marked in a small structure (4096 PFNs; 64 struct pages; a 1 GiB "
               "direct map, split down to its first 2 MiB), its entries, run and lookup "
               "charged at its own figures (else the generic ones)")

#: the per-load pair: the same split page tables in walk order and scattered
LOAD_PAIR = ScanPair(LOAD, STRUCTURE_PAGE_TABLES, _split_2m(_DM_PFNS, _DM_PFNS >> 9),
                     _split_2m(_DM_PFNS, _DM_PFNS >> 9, scattered=True),
                     "every 2 MiB of a 16 GiB direct map split (8,192 PTE pages), split "
                     "pages in walk order and scattered: placement differs, counts equal")

#: the lookup microbenchmark: GFNs [LOOKUP_BASE, LOOKUP_BASE + LOOKUP_GFNS) of
#: the kvm twin's default TD, looked up for the first LOOKUP_A and all of them
LOOKUP_TRACKER = "kvm"
LOOKUP_BASE = 1 << 24
LOOKUP_GFNS = 1 << 17
LOOKUP_A = 1 << 15
LOOKUP_DESIGN = ("xa_load() through guest_memfd's XArray (pfn_plus1) of 2^15 and 2^17 "
                 "consecutive GFNs at 2^24 (the top of a 64 GiB file): lookups differ")


# --------------------------------------------------------------------------
# one structure, built and scanned as the report scans it

class _Scanned:
    """A structure built over a ScanSet; ``entries``, ``runs``, ``lookups``,
    ``loads`` as the report counts them (module doc); ``scan()`` one whole
    scan, the runs found."""

    structure: str
    engine: str

    def counts(self) -> dict[str, int]:
        return {"entries": self.entries, "runs": self.runs, "lookups": self.lookups,
                "loads": self.loads}

    def close(self) -> None:
        pass


class _TrackerScanned(_Scanned):
    def __init__(self, name: str, scan_set: ScanSet, kernel_code: bool):
        twin = kernel_twin(name) if kernel_code else None
        cls = twin or TRACKERS[name]
        self.structure = cls.name
        self.engine = kernel_engine() if twin is not None else ENGINE_EMULATION
        self.tracker = cls(scan_set.max_pfn)
        try:
            self.tracker.mark_ranges(scan_set.starts, scan_set.ends)
            m = self.tracker.memory()
            found = from_tracker(self.tracker)           # untimed: the warm-up scan
        except BaseException:
            self.close()
            raise
        self.entries = scan_entries(m.modeled_bytes, m.scanned_bytes)
        self.loads = int(m.scan_loads)
        self.runs = int(found[0].size)
        per_page = getattr(TRACKER_STRATEGIES.get(name), "lookups_per_page", 0)
        self.lookups = per_page * int((found[1] - found[0]).sum())

    def scan(self) -> int:
        return int(from_tracker(self.tracker)[0].size)

    def close(self) -> None:
        if hasattr(self.tracker, "close"):
            self.tracker.close()


class _LayoutScanned(_Scanned):
    """A C layout: struct pages (pages.c), or the direct map's page tables (directmap.c)."""

    def __init__(self, structure: str, scan_set: ScanSet):
        self.structure, self.engine = structure, C_LAYOUTS[structure]
        self.lookups = 0
        if structure == STRUCTURE_STRUCT_PAGES:
            self.layout = linux.KernelStructPages(scan_set.max_pfn)
        else:
            dm = DirectMap(np.zeros(1, np.int64), np.full(1, scan_set.max_pfn, np.int64))
            self.layout = linux.KernelDirectMap(
                dm.starts, dm.ends, dm.levels,
                split_placement="scattered" if scan_set.scattered else "in-order")
        try:
            if scan_set.split is not None:
                self.layout.mark_ranges(*scan_set.split)
                self.layout.unmark_ranges(*scan_set.split)
            self.layout.mark_ranges(scan_set.starts, scan_set.ends)
            self.runs = self.scan()                       # untimed: the warm-up scan
        except BaseException:
            self.close()
            raise
        if structure == STRUCTURE_STRUCT_PAGES:
            self.entries = scan_entries(0, scan_set.max_pfn * kernel.STRUCT_PAGE_BYTES)
            self.loads = 0
        else:
            tables = self.layout.tables()
            self.entries = tables.table_bytes // kernel.SCAN_ENTRY_BYTES
            self.loads = tables.table_pages

    def scan(self) -> int:
        """One pass as pages.time_scan() times it."""
        n = 0
        for s, _e in self.layout.scan(SCAN_CHUNK):
            n += s.size
        return n

    def close(self) -> None:
        self.layout.close()


def _scanned(structure: str, scan_set: ScanSet, kernel_code: bool) -> _Scanned:
    if structure in C_LAYOUTS:
        return _LayoutScanned(structure, scan_set)
    return _TrackerScanned(structure, scan_set, kernel_code)


def _layouts_run(kernel_code: bool) -> bool:
    """The C layouts are timed where the report times them: with the kernel code."""
    return kernel_code and linux.available()[0]


#: back-to-back scans of a structure per round; the fastest is its time
BEST_OF = 3


def _best_scan(s: _Scanned) -> float:
    """The fastest of BEST_OF scans: another task's time slice is no cost of the scan."""
    best = float("inf")
    for _ in range(BEST_OF):
        t0 = time.perf_counter()
        s.scan()
        best = min(best, time.perf_counter() - t0)
    return best


def _cost(costs: dict, generic: dict, structure: str, cost: str) -> float:
    """A cost of this round: the structure's own where it has one, else generic."""
    own = costs.get(cost, {}).get(structure)
    return own if own is not None else generic.get(cost, 0.0)


class _Built:
    """A pair's two structures, checked to differ as its design says."""

    def __init__(self, pair: ScanPair, kernel_code: bool):
        self.pair = pair
        self.scanned: list[_Scanned] = []
        try:
            for scan_set in (pair.a, pair.b):
                self.scanned.append(_scanned(pair.structure, scan_set, kernel_code))
        except BaseException:
            self.close()
            raise
        self.structure = self.scanned[0].structure
        self.engine = self.scanned[0].engine
        a, b = (s.counts() for s in self.scanned)
        self.delta = {k: b[k] - a[k] for k in a}
        if pair.cost == LOAD:
            ok = not any(self.delta.values()) and a["loads"] > 0
        else:
            own = TERMS[pair.cost]
            free = [t for c, t in TERMS.items() if c != pair.cost and c not in pair.charged]
            ok = self.delta[own] > 0 and not any(self.delta[t] for t in free)
        if not ok:
            raise RuntimeError(f"{self.structure}: the {pair.cost} microbenchmark's sets "
                               f"differ by {self.delta} ({pair.design})")

    def sample(self, costs: dict, generic: dict) -> float:
        """One round: A and B timed once each, their difference per item, the
        charged terms first (module doc)."""
        ta, tb = (_best_scan(s) for s in self.scanned)
        if self.pair.cost == LOAD:
            return (tb - ta) / self.scanned[1].loads
        rest = sum(self.delta[TERMS[c]] * _cost(costs, generic, self.structure, c)
                   for c in self.pair.charged)
        return (tb - ta - rest) / self.delta[TERMS[self.pair.cost]]

    def close(self) -> None:
        for s in self.scanned:
            s.close()


class _Call:
    """One empty structure: the fixed cost of a scan (module doc)."""

    def __init__(self, structure: str, scan_set: ScanSet, kernel_code: bool):
        self.scanned = _scanned(structure, scan_set, kernel_code)
        self.structure, self.engine = self.scanned.structure, self.scanned.engine

    def sample(self, costs: dict, generic: dict) -> float:
        t = _best_scan(self.scanned)
        c = self.scanned.counts()
        return t - sum(c[term] * _cost(costs, generic, self.structure, cost)
                       for cost, term in TERMS.items())

    def close(self) -> None:
        self.scanned.close()


class _Lookups:
    """The kvm twin's default TD, its guest_memfd XArray holding the GFNs."""

    def __init__(self, kernel_code: bool):
        twin = kernel_twin(LOOKUP_TRACKER) if kernel_code else None
        cls = twin or TRACKERS[LOOKUP_TRACKER]
        self.structure = cls.name
        self.engine = kernel_engine() if twin is not None else ENGINE_EMULATION
        end = LOOKUP_BASE + LOOKUP_GFNS
        # direct marks: the default TD, GFN = PFN
        self.tracker = cls(end)
        try:
            self.tracker.mark_ranges(np.full(1, LOOKUP_BASE, np.int64), np.full(1, end, np.int64))
            (self.td,) = self.tracker.tds.values()
            self.gfns = np.arange(LOOKUP_BASE, end, dtype=np.int64)
            got = self.td.pfn_plus1(self.gfns)                 # untimed: the warm-up
        except BaseException:
            self.close()
            raise
        if not np.array_equal(got, self.gfns + 1):
            self.close()
            raise RuntimeError(f"{self.structure}: guest_memfd does not give PFN = GFN for "
                               f"the default TD's direct marks")

    def sample(self, costs: dict, generic: dict) -> float:
        times = []
        for n in (LOOKUP_A, LOOKUP_GFNS):
            gfns = self.gfns[:n]
            best = float("inf")
            for _ in range(BEST_OF):
                t0 = time.perf_counter()
                self.td.pfn_plus1(gfns)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
        return (times[1] - times[0]) / (LOOKUP_GFNS - LOOKUP_A)

    def close(self) -> None:
        if hasattr(self.tracker, "close"):
            self.tracker.close()


def engine_of(engines) -> str:
    """The engine of a generic figure: the kernel's code where every tracker
    structure behind it ran the kernel's code (the strategies' engine names),
    else the emulation."""
    engines = list(engines)
    return engines[0] if engines and len(set(engines)) == 1 else ENGINE_EMULATION


#: the order of a round: each cost's structures after those whose costs it charges
ROUND = ("entry_s", "lookup_s", "run_s", "call_s", LOAD)


def measure_scan_costs(repeat: int = 5, kernel_code: bool = True) -> dict:
    """Time every microbenchmark ``repeat`` rounds (module doc); the @kernel
    twins and the C layouts where ``kernel_code`` and the kernel code loads
    here, else the emulations alone.  Returns ``samples`` (generic cost ->
    one value per round), ``engines`` (generic cost -> what ran),
    ``structures`` (cost -> structure -> its samples; LOAD: the page tables'
    alone), ``structure_engines`` (structure -> what ran) and ``method``
    (the designs and what was counted)."""
    if repeat < 1:
        raise ValueError(f"repeat {repeat} must be >= 1")
    layouts = _layouts_run(kernel_code)
    units: dict[str, list] = {c: [] for c in ROUND}
    try:
        for pair in PAIRS + (LOAD_PAIR,):
            if pair.structure in C_LAYOUTS and not layouts:
                continue
            units[pair.cost].append(_Built(pair, kernel_code))
        units["lookup_s"].append(_Lookups(kernel_code))
        for structure, scan_set in CALLS.items():
            if structure not in C_LAYOUTS or layouts:
                units["call_s"].append(_Call(structure, scan_set, kernel_code))
        per_structure = {c: {u.structure: [] for u in units[c]} for c in ROUND}
        samples = {c: [] for c in COSTS}
        for _ in range(repeat):
            costs: dict[str, dict[str, float]] = {c: {} for c in ROUND}
            generic: dict[str, float] = {}
            for cost in ROUND:
                for u in units[cost]:
                    costs[cost][u.structure] = u.sample(costs, generic)
                    per_structure[cost][u.structure].append(costs[cost][u.structure])
                if cost in COSTS:
                    generic[cost] = statistics.median(
                        costs[cost][u.structure] for u in units[cost]
                        if u.structure not in C_LAYOUTS)
                    samples[cost].append(generic[cost])
        engines = {u.structure: u.engine for c in ROUND for u in units[c]}
        method = {
            "timed": "whole scans (trackers.extents.from_tracker, as the report times "
                     "them; the C layouts' chunk loop, as pages.time_scan times them); a "
                     "cost is (T_B - T_A) / (items_B - items_A) of a pair of sets, other "
                     "terms that differ charged first",
            "counted": "entries: trackers.kexec.strategies.scan_entries of memory(), a "
                       "struct page per PFN, a page-table entry per 8 bytes of table pages; "
                       "runs: those the scan returned; lookups: pages found where the "
                       "strategy looks each up; loads: scan_loads, a table page each",
            "figure": "per round the median over the cost's tracker structures; the "
                      "figure is the median over the rounds, spread their min and max",
            "pairs": {f"{u.pair.cost} {u.structure}": {
                "design": u.pair.design, **{k: [s.counts()[k] for s in u.scanned]
                                            for k in ("entries", "runs", "lookups", "loads")}}
                for c in ROUND for u in units[c] if isinstance(u, _Built)},
            f"lookup_s {units['lookup_s'][0].structure}": {"design": LOOKUP_DESIGN,
                                                           "lookups": [LOOKUP_A, LOOKUP_GFNS]},
            "call_s": CALL_DESIGN,
            "scan_entry_bytes": kernel.SCAN_ENTRY_BYTES,
        }
    finally:
        for c in ROUND:
            for u in units[c]:
                u.close()
    return {"samples": samples,
            "engines": {c: engine_of(engines[s] for s in per_structure[c]
                                     if s not in C_LAYOUTS) for c in COSTS},
            "structures": {c: v for c, v in per_structure.items() if v},
            "structure_engines": engines, "method": method}

