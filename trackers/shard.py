"""Sharded builds: a set over [0, max_pfn) built, scanned and measured one
aligned PFN shard at a time, each shard a Dask task (trackers/cluster.py),
and the shards' numbers combined into the whole structure's.

Shards.  [0, max_pfn) is cut into shards of ``shard_pfns`` PFNs (default
2^28, 1 TiB; a power of two >= 2^16, so every structure's natural boundary
divides it: an XArray node's 64^(k+1) indices below the shard size, the IDA's
1024-id ida_bitmap leaves and its XArray over them, roaring's 2^16-value
chunks, bitmap words).  A worker builds shard i from its own PFNs shifted to
shard-local PFNs [0, shard_pfns), times populate and scans, counts its
structure, and drops it before the next: one shard alive per worker.

Combining, exactly (:func:`combine`), per structure:

* bitmap, roaring, pageflags: every breakdown part adds (a roaring chunk or a
  bitmap word never spans two shards);
* the XArray trackers (xarray, xarray-multi, both XArrays of kvm, the IDA's
  XArray over id >> 10; ida_bitmaps add): an xa_node of level k exists, below
  the top, for each 2^(6k+6)-aligned block holding a stored index (multi:
  a stored *and* an unstored one; trackers/xa/model.py).  A block no larger
  than a shard lies in one shard: below a shard's own top its nodes are the
  shard's; from a shard's top up to the shard size its PFNs lie in block 0,
  one node per level.  Blocks larger than a shard: one node per block that
  holds an occupied shard (multi: not every index of it stored).  The top is
  the whole set's largest index's (xas_expand; multi: multi_max).  A set
  only in shard 0 is shard 0's tree as built;
* maple: the tree packs ranges, not aligned blocks, so it does not combine
  exactly: leaves add, and each level above is the in-order growth over the
  level below (:func:`trackers.maple.internal_count`); a shard holding only
  its PFN 0 (kept in ma_root, no node) counts one leaf.  Bound: each boundary
  adds at most one leaf (the shard's own partly filled, rebalanced last leaf
  and its extra NULL gap), so the combined tree has at most
  :data:`MAPLE_NODES_PER_BOUNDARY` = 2 more nodes per shard boundary than the
  unsharded one (one leaf and at most one node above it), never fewer
  (the fill rule's leaf count grows with the slots, and a shard only adds
  slots: its own leading and trailing NULL gaps, an extent split in two).
  Checked on the model over 3,000 random splits of 2-40 shards (0 to 2.0
  extra nodes per boundary) and by tests/test_shard.py against the
  unsharded tree, emulation and kernel code.  The ``maple`` estimate is exact (its model
  depends on the number of maximal extents and a leading gap only);
* pages and extents add, less one extent for each boundary an extent
  crosses (it ends at one shard's end and the next begins at its PFN 0);
* populate and scan times: the sum over shards (one CPU, each repeat's
  samples summed; median and min-max over repeats), and per shard, so a scan
  on N CPUs at reset takes the largest CPU's share (:meth:`Sharded.scan_s`,
  shards dealt longest first); ``scan_extents_max_shard_s`` is the slowest
  shard (as many CPUs as shards).

Sets (:class:`ReferenceShards`, :class:`Extents`): a set too large for one
machine (64 TiB: ~1.7e9 scattered pages) is generated shard by shard in the
worker: shard i of ``ReferenceShards(shape, seed)`` is
``sets.reference_set(shard_pfns, seed=[seed, i])`` with the shape's fractions
(the 1 TiB reference set's statistics, repeated per shard; not the same
PFNs as ``reference_set(max_pfn)``).  A set that fits is split
(:class:`Extents`).  ``estimate()`` runs per shard on the shard's set and
combines the same way (the XArray levels through
:func:`trackers.xa.estimate_levels`), never on the whole set.

What is measured: times and peak RSS (per shard task, trackers/cluster.py);
modeled: bytes from node counts (the kernel's own counts on the @kernel
twins) times the struct sizes.
"""

from __future__ import annotations

import functools
import gc
import math
import re
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from . import kernel
from .base import NotRepresentable
from .cluster import Unit, peak_rss_bytes, reset_peak_rss, run_units
from .maple import internal_count, level_name, level_node_counts
from .registry import ALL_TRACKERS
from .sets import MAX_SET_RUNS, expected_runs, host_set
from .xa import XA_LEVELS, estimate_levels, level_breakdown, multi_max, top_shift

#: default shard: 2^28 PFNs (1 TiB), one reference-set build per worker at a time
DEFAULT_SHARD_PFNS = 1 << 28
#: the smallest shard: a roaring chunk, an XArray leaf of IDA chunks (64 x 1024)
MIN_SHARD_PFNS = 1 << 16
#: the maple bound (module doc): extra nodes per shard boundary, at most
MAPLE_NODES_PER_BOUNDARY = 2

#: structure -> (breakdown label prefix, index shift, multi) of each XArray it holds
XARRAYS = {
    "xarray": [("xa_node", 0, False)],
    "xarray-multi": [("xa_node", 0, True)],
    "ida": [("xa_node", kernel.IDA_CHUNK_SHIFT, False)],
    "kvm": [("mem_attr_array xa_node", 0, False), ("guest_memfd i_pages xa_node", 0, False)],
}
#: structures whose every breakdown part adds over shards
ADDITIVE = ("bitmap", "roaring", "pageflags")
MAPLE = "maple"
TIMES = ("populate_s", "scan_extents_s", "scan_pfns_s")


def structure(name: str) -> str:
    """The emulation a tracker is or twins: "xarray@kernel" -> "xarray"."""
    cls = ALL_TRACKERS[name]
    return getattr(cls, "twin", None) or cls.name


def check_shards(max_pfn: int, shard_pfns: int) -> int:
    """The number of shards; ValueError naming the value and the limit."""
    if shard_pfns < MIN_SHARD_PFNS or shard_pfns & (shard_pfns - 1):
        raise ValueError(f"shard size {shard_pfns:,} PFNs must be a power of two >= "
                         f"{MIN_SHARD_PFNS:,} (2^16: every structure's boundary divides it)")
    if max_pfn <= 0:
        raise ValueError(f"max_pfn {max_pfn} must be positive")
    return -(-max_pfn // shard_pfns)


# --------------------------------------------------------------------------
# sets, shard by shard

@dataclass(frozen=True)
class ReferenceShards:
    """Shard i: ``reference_set(size, [seed, i])`` in ``shape``'s fractions
    (module doc), generated where it is built."""

    shape: str = "reference"
    seed: int = 0

    def local(self, i: int, base: int, size: int):
        return _reference_shard(self.shape, self.seed, i, size)

    def check(self, shard_pfns: int) -> None:
        """ValueError, before any work, where a shard's set would hold more
        extents than sets.MAX_SET_RUNS (the worker's host_set would refuse it)."""
        runs = expected_runs(self.shape, shard_pfns)
        if runs > MAX_SET_RUNS:
            raise ValueError(f"shard size {shard_pfns:,} PFNs: a shard's {self.shape!r} set "
                             f"would hold ~{runs:,} extents, over the limit of "
                             f"{MAX_SET_RUNS:,} (shards of <= 2^28 PFNs fit)")


@functools.lru_cache(maxsize=1)
def _reference_shard(shape, seed, i, size):
    return host_set(shape, size, [seed, i])        # SetTooLarge past MAX_SET_RUNS extents


@dataclass(frozen=True)
class LocalExtents:
    """One shard's extents, already shard-local."""

    starts: np.ndarray
    ends: np.ndarray

    def local(self, i: int, base: int, size: int):
        return self.starts, self.ends


@dataclass(frozen=True)
class Extents:
    """A whole set that fits, split at the shard boundaries (an extent that
    crosses one becomes one extent in each shard)."""

    starts: np.ndarray
    ends: np.ndarray

    def shard(self, base: int, size: int) -> LocalExtents:
        s = np.asarray(self.starts, np.int64)
        e = np.asarray(self.ends, np.int64)
        lo = np.searchsorted(e, base, side="right")
        hi = np.searchsorted(s, base + size, side="left")
        ls = np.maximum(s[lo:hi], base) - base
        le = np.minimum(e[lo:hi], base + size) - base
        return LocalExtents(ls, le)


# --------------------------------------------------------------------------
# one shard, in a worker

def drain(it) -> int:
    """Consume a tracker's extents() or pfns() stream; the runs (or PFNs) it gave."""
    n = 0
    for chunk in it:
        n += len(chunk[0]) if isinstance(chunk, tuple) else len(chunk)
    return n


def close_tracker(t) -> None:
    """Free a kernel-code tracker's structures now (an emulation: nothing to do)."""
    close = getattr(t, "close", None)
    if close is not None:
        close()


def _levels(breakdown: dict, prefix: str, node_bytes: int) -> np.ndarray:
    out = np.zeros(XA_LEVELS, np.int64)
    for key, nbytes in breakdown.items():
        m = re.fullmatch(rf"{re.escape(prefix)} L(\d+)", key)
        if m:
            out[int(m.group(1))] = nbytes // node_bytes
    return out


def _estimate_levels(name: str, s, e, size: int) -> dict:
    """Per XArray of the structure, its modeled levels for the shard's set
    (trackers.xa.estimate_levels: the model estimate() counts with)."""
    return {prefix: estimate_levels(s, e, size, multi=multi, ishift=ishift)
            for prefix, ishift, multi in XARRAYS.get(structure(name), [])}


_warm: set[str] = set()
#: a shard whose structure held more than this is collected (gc) before the
#: next: its tracker sits in reference cycles, and a full collection costs
#: ~0.1 s, too much for every small shard
GC_AFTER_BYTES = 64 << 20


def measure_shard(name: str, i: int, base: int, size: int, source, repeat: int,
                  keep_runs: bool = False, scan_pfns: bool = True,
                  builds: int | None = None) -> dict:
    """Build shard ``i`` ([base, base + size), shard-local PFNs) of ``source``
    in tracker ``name``; time populate ``builds`` times (default ``repeat``)
    and the extents() scan (and, with ``scan_pfns``, the pfns() scan)
    ``repeat`` times; count it; drop it."""
    start = time.perf_counter()
    s, e = source.local(i, base, size)
    cls = ALL_TRACKERS[name]
    if name not in _warm:                          # numba compile, first touch: once a worker
        warm = cls(size)
        warm.mark_ranges(s[:100], e[:100])
        drain(warm.extents()), drain(warm.pfns())
        close_tracker(warm)
        del warm
        _warm.add(name)
    reset_peak_rss(collect=False)                  # the set is generated: the peak is the build's
    baseline = peak_rss_bytes()                    # what the worker held at the reset
    pages = int((e - s).sum())
    samples = {k: [] for k in TIMES if scan_pfns or k != "scan_pfns_s"}
    t = None
    for _ in range(repeat if builds is None else max(1, builds)):
        close_tracker(t)
        t = None
        t0 = time.perf_counter()
        t = cls(size)
        t.mark_ranges(s, e)
        samples["populate_s"].append(time.perf_counter() - t0)
    found = {"scan_pfns_s": pages}
    for k, fn in (("scan_extents_s", t.extents), ("scan_pfns_s", t.pfns)):
        for _ in range(repeat if k in samples else 0):
            t0 = time.perf_counter()
            found[k] = drain(fn())
            samples[k].append(time.perf_counter() - t0)
    runs = [(a.copy(), b.copy()) for a, b in t.extents()] if keep_runs else None
    n_ext = sum(a.size for a, _ in runs) if keep_runs else found["scan_extents_s"]
    assert found["scan_pfns_s"] == pages, f"{name} shard {i}: pfns() disagrees with the set"
    assert len(t) == pages and n_ext == s.size, f"{name} shard {i}: scan disagrees with the set"
    m = t.memory()
    try:
        est = int(cls.estimate(s, e, size))
    except NotRepresentable:
        est = math.nan
    out = {"shard": i, "base": base, "size": size, "pages": pages, "extents": int(s.size),
           "first_start": int(s[0]) if s.size else -1, "last_end": int(e[-1]) if s.size else -1,
           "breakdown": dict(m.breakdown), "modeled_bytes": int(m.modeled_bytes),
           "scanned_bytes": int(m.scanned_bytes), "host_bytes": int(m.host_bytes),
           "estimate_bytes": est, "estimate_levels": _estimate_levels(name, s, e, size),
           **samples, "peak_rss_bytes": peak_rss_bytes(), "baseline_rss_bytes": baseline}
    out["task_s"] = time.perf_counter() - start     # with the set and the counting
    if keep_runs:
        cat = (np.concatenate([a for a, _ in runs]) if runs else np.zeros(0, np.int64),
               np.concatenate([b for _, b in runs]) if runs else np.zeros(0, np.int64))
        out["runs"] = (cat[0] + base, cat[1] + base)
    close_tracker(t)
    del t, fn                               # fn: a bound method of t
    if m.host_bytes > GC_AFTER_BYTES:       # a tracker sits in reference cycles: free it now
        gc.collect()
    return out


def measure_shard_all(names, i: int, base: int, size: int, source, repeat: int,
                      keep_runs: bool = False, scan_pfns: bool = True,
                      builds: int | None = None) -> list[dict]:
    """Shard ``i`` in every tracker of ``names``, one after the other
    (:func:`measure_shard`; each its own peak RSS): a sharded-build task, one
    per shard, so the shard's set is generated once whatever the workers."""
    return [measure_shard(n, i, base, size, source, repeat, keep_runs, scan_pfns, builds)
            for n in names]


# --------------------------------------------------------------------------
# combining

def _height(last: int, multi: bool) -> int:
    """Levels of an XArray whose largest index is ``last`` (0: no node)."""
    m = int(multi_max(last)) if multi else last
    return int(top_shift(m)) // 6 + 1 if m > 0 else 0


def combine_xarray(shards: list[dict], levels: list[np.ndarray], ishift: int, multi: bool,
                   shard_pfns: int) -> np.ndarray:
    """The whole XArray's xa_nodes per level from each occupied shard's
    levels (module doc).  ``shards``: the occupied shards (base, size,
    pages, last_end), in order; ``levels``: theirs, shard-local."""
    out = np.zeros(XA_LEVELS, np.int64)
    if not shards:
        return out
    size_idx = shard_pfns >> ishift
    bases = [sh["base"] >> ishift for sh in shards]
    lasts = [(sh["last_end"] - 1) >> ishift for sh in shards]
    height = _height(max(b + x for b, x in zip(bases, lasts)), multi)
    own = [_height(x, multi) for x in lasts]
    full = [sh["pages"] == shard_pfns for sh in shards]
    for k in range(height):
        block = 1 << (6 * (k + 1))
        if block <= size_idx:
            out[k] = sum(int(lv[k]) if k < h else 1 for lv, h in zip(levels, own))
        else:
            ids = {}
            for b, f in zip(bases, full):
                n_full, n = ids.get(b // block, (0, 0))
                ids[b // block] = (n_full + f, n + 1)
            out[k] = sum(1 for n_full, _ in ids.values()
                         if not (multi and n_full * size_idx == block))
    return out


def _joins(shards: list[dict]) -> int:
    """Extents that cross a shard boundary (split in two shards)."""
    return sum(1 for a, b in zip(shards, shards[1:])
               if a["last_end"] == a["size"] and b["first_start"] == 0
               and b["base"] == a["base"] + a["size"])


def combine(name: str, shards: list[dict], max_pfn: int, shard_pfns: int,
            estimate: bool = False) -> dict[str, int]:
    """The whole structure's breakdown (bytes per part) from its shards'
    (module doc); ``estimate``: from the shards' estimate() models instead."""
    kind = structure(name)
    occupied = [sh for sh in shards if sh["pages"]]
    if kind in ADDITIVE:
        out: dict[str, int] = {}
        for sh in shards:
            for k, v in (sh["breakdown"] if not estimate
                         else {"estimate": sh["estimate_bytes"]}).items():
                out[k] = out.get(k, 0) + v
        return out
    if not occupied or (len(occupied) == 1 and occupied[0]["base"] == 0):
        only = occupied[0] if occupied else shards[0]     # the whole tree is this shard's
        return dict(only["breakdown"]) if not estimate else {"estimate": only["estimate_bytes"]}
    if kind == MAPLE:
        if estimate:
            n = sum(sh["extents"] for sh in occupied) - _joins(occupied)
            first = occupied[0]["base"] + occupied[0]["first_start"]
            lone = n == 1 and first == 0 and occupied[0]["last_end"] == 1
            counts = level_node_counts(n, first > 0, lone)
        else:
            # a shard holding [0, 1) alone keeps it in ma_root (no node); in
            # the whole tree it sits in a leaf, so it counts one
            lone = sum(1 for sh in occupied if sh["extents"] == 1 and sh["first_start"] == 0
                       and sh["last_end"] == 1)
            leaves = sum(sh["breakdown"].get(level_name(0), 0) for sh in occupied)
            counts = [leaves // kernel.MAPLE_NODE_BYTES + lone]
            while counts[-1] > 1:
                counts.append(int(internal_count(counts[-1])))
        return {level_name(k): c * kernel.MAPLE_NODE_BYTES for k, c in enumerate(counts)}
    out = {}
    for prefix, ishift, multi in XARRAYS[kind]:
        lv = [sh["estimate_levels"][prefix] if estimate else
              _levels(sh["breakdown"], prefix, kernel.XA_NODE_BYTES) for sh in occupied]
        out.update(level_breakdown(combine_xarray(occupied, lv, ishift, multi, shard_pfns),
                                   prefix))
    if kind == "ida":
        if estimate:        # the shard's estimate less its XArray part: its ida_bitmaps
            bitmaps = sum(sh["estimate_bytes"] - int(sh["estimate_levels"]["xa_node"].sum())
                          * kernel.XA_NODE_BYTES for sh in occupied)
        else:
            bitmaps = sum(sh["breakdown"].get("ida_bitmap", 0) for sh in occupied)
        out["ida_bitmap"] = bitmaps
    return out


# --------------------------------------------------------------------------
# a whole sharded build

def _spread(name: str, samples) -> dict:
    return {f"{name}_median": statistics.median(samples), f"{name}_min": min(samples),
            f"{name}_max": max(samples)}


def makespan(seconds, cpus: int) -> float:
    """Wall time of independent shard scans dealt to ``cpus`` CPUs, longest
    first, each to the least loaded CPU (LPT)."""
    load = [0.0] * max(1, cpus)
    for x in sorted(seconds, reverse=True):
        j = load.index(min(load))
        load[j] += x
    return max(load)


@dataclass
class Sharded:
    """A structure built shard by shard, combined (module doc)."""

    tracker: str
    max_pfn: int
    shard_pfns: int
    shards: list[dict]
    breakdown: dict[str, int] = field(default_factory=dict)
    estimate_breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def modeled_bytes(self) -> int:
        return sum(self.breakdown.values())

    @property
    def estimate_bytes(self) -> float:
        if any(isinstance(sh["estimate_bytes"], float) and math.isnan(sh["estimate_bytes"])
               for sh in self.shards):
            return math.nan
        return sum(self.estimate_breakdown.values())

    @property
    def pages(self) -> int:
        return sum(sh["pages"] for sh in self.shards)

    @property
    def extents(self) -> int:
        occupied = [sh for sh in self.shards if sh["pages"]]
        return sum(sh["extents"] for sh in occupied) - _joins(occupied)

    def runs(self):
        """The found set as maximal (starts, ends), re-joined at the
        boundaries (only for builds with keep_runs)."""
        s = np.concatenate([sh["runs"][0] for sh in self.shards])
        e = np.concatenate([sh["runs"][1] for sh in self.shards])
        if s.size < 2:
            return s, e
        keep = np.r_[True, s[1:] != e[:-1]]            # a start that is the previous end joins
        return s[keep], np.r_[e[:-1][keep[1:]], e[-1]]

    def times(self, what: str) -> list[float]:
        """Each repeat's total over the shards (one CPU); [NaN] where not timed."""
        if what not in self.shards[0]:
            return [math.nan]
        return [sum(x) for x in zip(*(sh[what] for sh in self.shards))]

    def shard_medians(self, what: str) -> list[float]:
        if what not in self.shards[0]:
            return [math.nan]
        return [statistics.median(sh[what]) for sh in self.shards]

    def scan_s(self, cpus: int = 1, what: str = "scan_extents_s") -> float:
        """The scan's wall time with ``cpus`` CPUs at reset: shards' median
        scans dealt to the CPUs (:func:`makespan`); 1 CPU: their sum."""
        return makespan(self.shard_medians(what), cpus)

    def row(self) -> dict:
        """bench-core's columns, summed over shards, and the sharding's own."""
        pages = self.pages
        spreads, per_shard = {}, {}
        for k in TIMES:
            spreads.update(_spread(k, self.times(k)))
            # each shard one more sample of the same shape: their spread
            per_shard.update(_spread(f"{k}_shard", self.shard_medians(k)))
        modeled = self.modeled_bytes
        scanned = sum(sh["scanned_bytes"] - sh["modeled_bytes"] for sh in self.shards) + modeled
        est = self.estimate_bytes
        return {
            "tracker": self.tracker, **spreads,
            "populate_ns_per_page": spreads["populate_s_median"] / pages * 1e9,
            "scan_pfns_ns_per_page": spreads["scan_pfns_s_median"] / pages * 1e9,
            "modeled_bytes": modeled, "scanned_bytes": scanned,
            "bits_per_private_page": modeled * 8 / pages,
            "host_bytes": max(sh["host_bytes"] for sh in self.shards),
            "peak_rss_bytes": max(sh["peak_rss_bytes"] for sh in self.shards),
            # the worker's resident memory at the reset before the shard (its
            # libraries, the shard's set, heap earlier tasks left): peak minus
            # this is the build's own
            "baseline_rss_bytes": max(sh.get("baseline_rss_bytes", math.nan)
                                      for sh in self.shards),
            "pfns": self.max_pfn, "shards": len(self.shards), "shard_pfns": self.shard_pfns,
            "private_pages": pages, "extents": self.extents,
            **per_shard,
            "scan_extents_max_shard_s": max(self.shard_medians("scan_extents_s")),
            "shard_tasks_s": sum(sh.get("task_s", 0.0) for sh in self.shards),
            "estimate_bytes": est,
            "modeled_over_estimate": modeled / est if est else math.nan,
        }


def not_representable(name: str, max_pfn: int) -> str:
    """Why tracker ``name`` cannot hold a set over [0, max_pfn) as one
    structure ("" when it can): its shards would build, but the whole would
    not exist (the IDA's ids stop at INT_MAX)."""
    try:
        ALL_TRACKERS[name].estimate(np.array([0]), np.array([1]), max_pfn)
    except NotRepresentable as exc:
        return exc.summary
    return ""


def shard_units(names, max_pfn: int, shard_pfns: int, source, repeat: int,
                keep_runs: bool = False, timed: bool = True,
                scan_pfns: bool = True, builds: int | None = None) -> list[Unit]:
    """The units of a sharded build: one per shard, every tracker in it
    (:func:`measure_shard_all`); ``timed`` (default) unless only the counts
    matter (tests)."""
    n = check_shards(max_pfn, shard_pfns)
    units = []
    for i in range(n):
        base = i * shard_pfns
        size = min(shard_pfns, max_pfn - base)
        src = source.shard(base, size) if isinstance(source, Extents) else source
        units.append(Unit(measure_shard_all, (list(names), i, base, size, src, repeat,
                                              keep_runs, scan_pfns, builds),
                          timed=timed, label=f"shard {i + 1}/{n}"))
    return units


def sharded_build(client, names, max_pfn: int, shard_pfns: int = DEFAULT_SHARD_PFNS,
                  source=None, repeat: int = 1, keep_runs: bool = False,
                  progress: bool = True, timed: bool = True,
                  scan_pfns: bool = True, builds: int | None = None) -> list[Sharded]:
    """Every tracker of ``names`` built over ``source`` (default: the
    reference set shard by shard, :class:`ReferenceShards`) in shards of
    ``shard_pfns``, each shard a task on ``client`` (None: in this process;
    ``timed``: on the timing worker, one at a time, so its times stand);
    one :class:`Sharded` per tracker, in order.  ``keep_runs``: each shard
    also returns its extents (:meth:`Sharded.runs`; small sets only);
    ``scan_pfns=False``: the pfns() scan is not timed (its columns are NaN);
    ``builds``: populates timed per shard (default ``repeat``; the scans of
    the last build are timed ``repeat`` times)."""
    for name in names:
        if name not in ALL_TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; known: {', '.join(ALL_TRACKERS)}")
        why = not_representable(name, max_pfn)
        if why:
            raise NotRepresentable(why)
    source = ReferenceShards() if source is None else source
    units = shard_units(names, max_pfn, shard_pfns, source, repeat, keep_runs, timed,
                        scan_pfns, builds)
    if client is None:
        results = [u.fn(*u.args) for u in units]
    else:
        results = run_units(client, units, desc="shards", progress=progress)
    out = []
    for j, name in enumerate(names):
        shards = [per_shard[j] for per_shard in results]
        out.append(Sharded(name, max_pfn, shard_pfns, shards,
                           combine(name, shards, max_pfn, shard_pfns),
                           combine(name, shards, max_pfn, shard_pfns, estimate=True)))
    return out

