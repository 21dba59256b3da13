"""The scan model's per-item costs, measured on this machine: the CPU seconds a
kexec-time scan spends per entry tested, per run emitted and per lookup
(``Platform.entry_s``, ``run_s``, ``lookup_s``; the model is
:meth:`trackers.kexec.platform.Platform.scan_s`).

What is timed is what the report times: a whole scan of a tracker
(:func:`trackers.extents.from_tracker`, the loop ``tdx-trackers report``
times in scan_time.csv), through the ``@kernel`` twins -- the kernel's own
find_next_bit/find_next_zero_bit (``bitmap@kernel``), xas_for_each
(``xarray@kernel``) and mas_for_each (``maple@kernel``) -- where the kernel
code is built and loads here, and through the Python/numba emulations
otherwise; the engine is recorded with every figure.  Entries, runs and
lookups are counted as the report counts them
(:func:`trackers.kexec.strategies.scan_entries` of the structure's
``memory()``, the runs the scan returned, one lookup per GFN translated).

Each microbenchmark is a pair of structures, A and B, that differ in ONE of
the model's terms; the cost is the difference of their scan times over the
difference of that term, so the fixed cost of a scan (the call, the chunk
buffers, the contract's merge) cancels:

* per entry  -- E differs, R equal.  bitmap: 16 single-page runs spread over
  2^22 and over 2^26 bits (64 Ki and 1 Mi longs tested; find_next_bit skips
  the zero longs); xarray: 16 runs of 2^12 and of 2^14 pages (full 64-slot
  leaves: xas_for_each visits every slot);
  ``entry_s = (T_B - T_A) / (E_B - E_A)``.
* per run    -- R differs, E equal where the structure allows.  bitmap and
  xarray: [0, 2^17) marked whole (one run) against every other page of it
  (2^16 single-page runs): the same longs, the same xa_nodes;
  ``run_s = (T_B - T_A) / (R_B - R_A)``, which is exactly the cost the model
  must charge a run to predict B from A.  maple: a maple tree holds one
  entry per run, so E grows with R; its run cost is what is left after the
  entries: ``(T_B - T_A - (E_B - E_A) * entry_s) / (R_B - R_A)``, with the
  per-entry figure of the same repeat.
* per lookup -- the kvm twin's guest_memfd XArray (``kvm@kernel``: the
  kernel's XArray, filled as kvm_gmem binds a TD's pages) holding GFNs
  [2^24, 2^24 + 2^17) -- the top of a 64 GiB file, a 5-level descent whose
  upper nodes stay cached, as trackers/kernel.py SCAN_LOOKUP_S describes its
  microbenchmark -- looked up through ``pfn_plus1`` (xa_load() per GFN, the
  call the kvm scan makes per private GFN) for the first 2^15 and for all
  2^17 GFNs, consecutive: ``lookup_s = (T_B - T_A) / (L_B - L_A)``.

Every structure is built once and scanned once untimed; then each of
``repeat`` rounds times A and B of every pair, one after the other, each the
fastest of BEST_OF back-to-back scans (another task's time slice is no cost
of the scan), and gives one sample per structure.  A figure's sample of a round is the median
over its structures (entry: bitmap, xarray; run: bitmap, xarray, maple;
lookup: kvm); the figure is the median over the rounds, its spread the min
and max over the rounds, and each structure's own median and min-max is
kept beside it.  The structures are 16 KiB to 8 MiB, within a last-level
cache, as the report's smaller scans are; the streaming read the model
overlaps with this work is calibrated separately.  One cost per entry (and
per run) for every structure is the model's simplification: the
per-structure figures show how far apart the kernel's iterators are.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from .. import kernel
from ..extents import from_tracker
from ..registry import KERNEL_SUFFIX, TRACKERS
from .strategy import ENGINE_EMULATION, kernel_engine, kernel_twin, scan_entries

#: the Platform fields measured here, in the order they are measured and printed
COSTS = ("entry_s", "run_s", "lookup_s")


#: one structure of a pair: (max_pfn, starts, ends)
ScanSet = tuple[int, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ScanPair:
    """Two sets of one tracker whose scans differ in the term ``cost`` (module
    doc); ``charges_entries``: a run pair whose entries differ too (maple),
    so its runs are charged what is left after the entries."""

    cost: str
    tracker: str                 # the emulation's registry name; its @kernel twin is used
    a: ScanSet
    b: ScanSet
    design: str
    charges_entries: bool = False


def _spread(n: int, max_pfn: int, length: int) -> ScanSet:
    """``n`` runs of ``length`` pages, evenly spaced over [0, max_pfn)."""
    s = np.arange(n, dtype=np.int64) * (max_pfn // n)
    return max_pfn, s, s + length


def _whole(pages: int) -> ScanSet:
    return pages, np.zeros(1, np.int64), np.full(1, pages, np.int64)


def _every_other(pages: int) -> ScanSet:
    s = np.arange(0, pages, 2, dtype=np.int64)
    return pages, s, s + 1


_WHOLE = 1 << 17
#: the microbenchmarks, in the order they are timed (module doc)
PAIRS = (
    ScanPair("entry_s", "bitmap", _spread(16, 1 << 22, 1), _spread(16, 1 << 26, 1),
             "16 single-page runs over 2^22 and 2^26 bits: longs tested differ, runs equal"),
    ScanPair("entry_s", "xarray", _spread(16, 1 << 22, 1 << 12), _spread(16, 1 << 22, 1 << 14),
             "16 runs of 2^12 and 2^14 pages: full leaves, slots differ, runs equal"),
    ScanPair("run_s", "bitmap", _whole(_WHOLE), _every_other(_WHOLE),
             "[0, 2^17) whole and every other page of it: runs differ, longs equal"),
    ScanPair("run_s", "xarray", _whole(_WHOLE), _every_other(_WHOLE),
             "[0, 2^17) whole and every other page of it: runs differ, xa_nodes equal"),
    ScanPair("run_s", "maple", _whole(_WHOLE), _every_other(_WHOLE),
             "[0, 2^17) as one range and as 2^16 single pages: runs differ; the entries "
             "the runs add are charged at the per-entry figure first", charges_entries=True),
)

#: the lookup microbenchmark: GFNs [LOOKUP_BASE, LOOKUP_BASE + LOOKUP_GFNS) of
#: the kvm twin's default TD, looked up for the first LOOKUP_A and all of them
LOOKUP_TRACKER = "kvm"
LOOKUP_BASE = 1 << 24
LOOKUP_GFNS = 1 << 17
LOOKUP_A = 1 << 15
LOOKUP_DESIGN = ("xa_load() through guest_memfd's XArray (pfn_plus1) of 2^15 and 2^17 "
                 "consecutive GFNs at 2^24 (the top of a 64 GiB file): lookups differ")


def _tracker_class(name: str, kernel_code: bool):
    """(class, label): the @kernel twin where asked for and the kernel code
    loads here, else the emulation."""
    twin = kernel_twin(name) if kernel_code else None
    cls = twin or TRACKERS[name]
    return cls, cls.name


def _build(cls, scan_set: ScanSet) -> object:
    max_pfn, starts, ends = scan_set
    t = cls(max_pfn)
    try:
        t.mark_ranges(starts, ends)
    except BaseException:
        _close(t)
        raise
    return t


def _close(t) -> None:
    if hasattr(t, "close"):
        t.close()


#: back-to-back scans of a structure per round; the fastest is its time
BEST_OF = 3


def _timed_scan(t) -> tuple[float, int]:
    t0 = time.perf_counter()
    found = from_tracker(t)
    return time.perf_counter() - t0, int(found[0].size)


def _best_scan(t) -> float:
    """The fastest of BEST_OF scans: another task's time slice is no cost of the scan."""
    return min(_timed_scan(t)[0] for _ in range(BEST_OF))


class _Built:
    """A pair's two structures, their entries and runs as the report counts them."""

    def __init__(self, pair: ScanPair, kernel_code: bool):
        self.pair = pair
        cls, self.structure = _tracker_class(pair.tracker, kernel_code)
        self.trackers = []
        try:
            for scan_set in (pair.a, pair.b):
                self.trackers.append(_build(cls, scan_set))
        except BaseException:
            self.close()
            raise
        self.entries, self.runs = [], []
        for t in self.trackers:
            m = t.memory()
            self.entries.append(scan_entries(m.modeled_bytes, m.scanned_bytes))
            self.runs.append(_timed_scan(t)[1])          # untimed: the warm-up scan
        d_entries, d_runs = self.entries[1] - self.entries[0], self.runs[1] - self.runs[0]
        if pair.cost == "entry_s":
            ok = d_entries > 0 and d_runs == 0
        else:
            ok = d_runs > 0 and (d_entries > 0 if pair.charges_entries else d_entries == 0)
        if not ok:
            raise RuntimeError(f"{self.structure}: the {pair.cost} microbenchmark's sets "
                               f"differ by {d_entries} entries and {d_runs} runs "
                               f"({pair.design})")

    def sample(self, entry_s: float | None) -> float:
        """One round: A and B timed once each, their difference per item."""
        ta, tb = (_best_scan(t) for t in self.trackers)
        d_entries = self.entries[1] - self.entries[0]
        if self.pair.cost == "entry_s":
            return (tb - ta) / d_entries
        return (tb - ta - d_entries * (entry_s or 0.0)) / (self.runs[1] - self.runs[0])

    def close(self) -> None:
        for t in self.trackers:
            _close(t)


class _Lookups:
    """The kvm twin's default TD, its guest_memfd XArray holding the GFNs."""

    def __init__(self, kernel_code: bool):
        cls, self.structure = _tracker_class(LOOKUP_TRACKER, kernel_code)
        end = LOOKUP_BASE + LOOKUP_GFNS
        # direct marks: the default TD, GFN = PFN
        self.tracker = _build(cls, (end, np.full(1, LOOKUP_BASE, np.int64),
                                    np.full(1, end, np.int64)))
        (self.td,) = self.tracker.tds.values()
        self.gfns = np.arange(LOOKUP_BASE, end, dtype=np.int64)
        got = self.td.pfn_plus1(self.gfns)                     # untimed: the warm-up
        if not np.array_equal(got, self.gfns + 1):
            raise RuntimeError(f"{self.structure}: guest_memfd does not give PFN = GFN for "
                               f"the default TD's direct marks")

    def sample(self) -> float:
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
        _close(self.tracker)


def engine_of(structures) -> str:
    """The engine of a cost: the kernel's code where its structures are the
    @kernel twins (the strategies' engine names), else the emulation."""
    return kernel_engine() if all(s.endswith(KERNEL_SUFFIX) for s in structures) \
        else ENGINE_EMULATION


def measure_scan_costs(repeat: int = 5, kernel_code: bool = True) -> dict:
    """Time every microbenchmark ``repeat`` rounds (module doc); the @kernel
    twins where ``kernel_code`` and the kernel code loads here, else the
    emulations.  Returns ``samples`` (cost -> one value per round),
    ``engines`` (cost -> what ran), ``structures`` (cost -> structure -> its
    samples) and ``method`` (the designs and what was counted)."""
    if repeat < 1:
        raise ValueError(f"repeat {repeat} must be >= 1")
    built: list[_Built] = []
    lookups = None
    try:
        for pair in PAIRS:
            built.append(_Built(pair, kernel_code))
        lookups = _Lookups(kernel_code)
        per_structure = {c: {} for c in COSTS}
        for b in built:
            per_structure[b.pair.cost][b.structure] = []
        per_structure["lookup_s"][lookups.structure] = []
        samples = {c: [] for c in COSTS}
        for _ in range(repeat):
            for cost in ("entry_s", "run_s"):       # entries first: maple's runs use them
                entry = samples["entry_s"][-1] if cost == "run_s" else None
                for b in (b for b in built if b.pair.cost == cost):
                    per_structure[cost][b.structure].append(b.sample(entry))
                samples[cost].append(statistics.median(
                    v[-1] for v in per_structure[cost].values()))
            per_structure["lookup_s"][lookups.structure].append(lookups.sample())
            samples["lookup_s"].append(per_structure["lookup_s"][lookups.structure][-1])
        method = {
            "timed": "whole scans (trackers.extents.from_tracker, as the report times "
                     "them); a cost is (T_B - T_A) / (items_B - items_A) of a pair of sets",
            "counted": "entries: trackers.kexec.strategies.scan_entries of memory(); runs: "
                       "those the scan returned; lookups: GFNs translated",
            "figure": "per round the median over the cost's structures; the figure is the "
                      "median over the rounds, spread their min and max",
            "pairs": {f"{b.pair.cost} {b.structure}": {
                "design": b.pair.design, "entries": b.entries, "runs": b.runs}
                for b in built},
            f"lookup_s {lookups.structure}": {"design": LOOKUP_DESIGN,
                                              "lookups": [LOOKUP_A, LOOKUP_GFNS]},
            "scan_entry_bytes": kernel.SCAN_ENTRY_BYTES,
        }
    finally:
        for b in built:
            b.close()
        if lookups is not None:
            lookups.close()
    return {"samples": samples,
            "engines": {c: engine_of(per_structure[c]) for c in COSTS},
            "structures": per_structure, "method": method}
