"""bench-core: every tracker on the 1 TiB reference set, measured and modeled,
the emulations beside their ``@kernel`` twins on the kernel's own code.

Builds the reference set (trackers/sets.py: 2^28 PFNs, 60 % in random
2 MiB extents, ~10 % scattered 4 KiB pages; seeded) and, for each tracker,
times populate (mark_ranges), a full extents() scan and a full pfns() scan,
--repeat runs each.  Prints measured times and peak RSS beside the kernel
bytes, bits per private page and ns per page.

Every measurement is a Dask task (trackers/cluster.py: a local cluster of one
worker process per core, or --scheduler / $TRACKERS_SCHEDULER), and every
one is *timed*: it runs alone in its worker on the one timing worker, one
at a time (the timing policy of trackers/cluster.py).  Each task generates
the reference set where it runs (deterministic; once per worker), resets the
worker's peak RSS (VmHWM, via /proc/self/clear_refs) and reports its own
peak; it frees its structures before it returns.

A --pfns above --shard-pfns (default 2^28) is built shard by shard
(trackers/shard.py): each shard a timed task over its own reference-shaped
set, every tracker built in it in turn (populate and the extents() scan
timed, once: the shards are the repeats, ``*_shard_*`` their spread; the
pfns() scan with --scan-pfns), the shards' node counts combined exactly into the
whole structure's (the maple tree within its stated bound), times summed
over the shards, the peak RSS the largest shard task's (with
``baseline_rss_bytes``, the largest resident size of the worker when a shard
began: its libraries and the shard's generated set), and beside it
``estimate_bytes``: estimate() of the same shards, combined the same way
(``modeled_over_estimate``).  64 TiB (--pfns 2^34) is 64 shards.  The maple
order, conversion-cost, estimate()-timing and kvm-loop tables need one
structure over the whole set and are left out there.

Two engines (--engine, default both):

* ``emulation``: the Python/numba trackers; their bytes are modeled (node
  counts from the model times kernel struct sizes);
* ``kernel code vX.Y.Z (userspace)``: the ``@kernel`` twins
  (trackers/kernel_code.py) store through the kernel's own lib/xarray.c,
  lib/idr.c and lib/maple_tree.c and scan with its iterators (xas_for_each,
  mas_for_each, find_next_bit); their bytes are the kernel's own node
  counts walked in its tree, times the same struct sizes.  Each row records
  the kernel version it ran.  A twin's populate is its contract call
  (mark_ranges) as the emulation's is: the kernel's stores plus the twin's
  budget check and live-object count.  Where the kernel code is not built,
  bench-core says why once and runs the emulation rows only.

Each kernel-code row carries the emulation/kernel-code ratio of every
median time and of the bytes (``NAME_emulation_over_kernel``); they are
printed as a table of their own.

Then, for the kernel code: the maple order effect (node counts of the
kernel's maple tree holding the reference set's extents stored in order
against stored in --maple-seeds random orders, :func:`maple_order`); and, for
every tracker, the cost of one conversion (:func:`conversion_cost`): ns to
mark and to unmark one 4 KiB and one 2 MiB conversion in a tracker that
holds the reference set.  With ``--csv X.csv`` they go to
``X-maple-order.csv`` and ``X-conversion-cost.csv`` beside it.

For the emulations only: estimate() at --estimate-pfns (default 2^32,
16 TiB) for every tracker (a tracker whose structure cannot hold that many
PFNs, the IDA beyond 2^31, gets a row saying "not representable" instead of
a number), and the kvm per-GFN attribute store loop against the real-world
anchor (a 1 TB+ guest spent >= 26 s in kvm_vm_set_mem_attributes: ~100 ns
per GFN; Liam Merwick, Jun 2025), each --repeat times too.

Every measured time is reported as its median and its spread over the
repeats: printed as "median (min-max)", and in the --csv tables as three
columns, NAME_median, NAME_min and NAME_max (populate_s, scan_extents_s,
scan_pfns_s, ns_per_conversion, ...); ns-per-page figures derive from the
medians.

Columns: [measured] times and RSS on this machine; [modeled] kernel bytes
(kernel-code rows: counted in the kernel's own structure).
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import linux
from .base import NotRepresentable, Tracker, memory_budget
from .cluster import (Unit, add_scheduler_argument, connect, peak_rss_bytes, reset_peak_rss, run_units,
                      scheduler_address)
from .extents import normalize_extents, subtract
from .kernel import MAPLE_NODE_BYTES, MAX_PHYS_PFN, PAGES_PER_2M
from .kernel_code import (TWINS, BitmapKernel, IdaKernel, KvmKernel, MapleKernel,
                          XArrayKernel, XArrayMultiKernel)
from .kvm import DIRECT_TD, xa_store_per_gfn
from .maple import Maple
from .options import int_option, output_file
from .output import write_csv_atomic
from .registry import ALL_TRACKERS, KERNEL_TRACKERS, KERNEL_UNAVAILABLE, TRACKERS
from .sets import reference_set
from .shard import (DEFAULT_SHARD_PFNS, MIN_SHARD_PFNS, ReferenceShards, check_shards,
                    close_tracker, drain, not_representable, sharded_build)
from .xa import XaTree, xa_node_counts

HELP = ("time every tracker on the 1 TiB reference set (measured) beside its modeled bytes, "
        "the emulations beside the kernel's own code")

ANCHOR_NS_PER_GFN = 26e9 / (1 << 28)   # >= 26 s for a 1 TB guest: ~97 ns/GFN

#: --engine choices: both engines, or one
ENGINES = ("all", "emulation", "kernel")
#: the engine label of an emulation row
EMULATION = "emulation"

#: random store orders of the maple order table (seeds 1..N)
MAPLE_SEEDS = 5
#: conversions per timing of the conversion-cost table
CONVERSIONS = 2000
#: an emulation's per-call conversion loop stops after this long (its maple
#: rebuilds the tree per call: seconds each at 1 TiB); the row says how many ran
CONVERSION_SECONDS = 5.0
#: conversion sizes: label -> pages (a 2 MiB conversion is 2 MiB aligned)
CONVERSION_SIZES = {"4KiB": 1, "2MiB": PAGES_PER_2M}
CONVERSION_OPS = ("mark", "unmark")

#: what every kernel-code tracker must meet at 1 TiB (issue 9)
KERNEL_LIMIT_SECONDS = 60.0
KERNEL_LIMIT_RSS_BYTES = 8 << 30


def add_arguments(p):
    pfns = int_option(PAGES_PER_2M, MAX_PHYS_PFN, multiple_of=PAGES_PER_2M, base=0,
                      why="whole 2 MiB extents, up to 2^40 PFNs")
    p.add_argument("--pfns", type=pfns, default=1 << 28,
                   help="PFN space of the reference set (default 2^28 = 1 TiB)")
    p.add_argument("--repeat", type=int_option(1), default=None,
                   help="timed runs per figure; median and min-max reported (default 3; "
                        "1 for a sharded --pfns, whose shards are the repeats: its rows "
                        "also give the shards' spread, *_shard_min/_max)")
    p.add_argument("--estimate-pfns", type=pfns, default=1 << 32,
                   help="PFN space for the estimate() timing (default 2^32 = 16 TiB)")
    p.add_argument("--trackers", nargs="+", default=None, metavar="NAME",
                   help="subset of tracker names (default: every registered tracker); "
                        "NAME selects the emulation and its @kernel twin, NAME@kernel "
                        "the twin alone")
    p.add_argument("--engine", choices=ENGINES, default="all",
                   help="emulation rows, kernel-code (@kernel) rows, or both beside each "
                        "other with their ratios (default all)")
    p.add_argument("--maple-seeds", type=int_option(1), default=MAPLE_SEEDS,
                   help=f"random store orders of the maple order table "
                        f"(default {MAPLE_SEEDS})")
    p.add_argument("--conversions", type=int_option(1), default=CONVERSIONS,
                   help=f"conversions per timing of the conversion-cost table "
                        f"(default {CONVERSIONS:,})")
    p.add_argument("--seed", type=int_option(0), default=0, help="reference-set seed")
    p.add_argument("--shard-pfns", type=int_option(MIN_SHARD_PFNS, MAX_PHYS_PFN, base=0),
                   default=DEFAULT_SHARD_PFNS,
                   help="a --pfns above this is built shard by shard, each shard a task "
                        "(trackers/shard.py; power of two, default 2^28 = 1 TiB)")
    add_scheduler_argument(p)
    p.add_argument("--scan-pfns", action="store_true",
                   help="also time the pfns() scan of a sharded --pfns (a whole build always "
                        "does; a sharded one skips it by default: the kexec reset reads "
                        "extents(), and the per-PFN stream is a fifth of a 64 TiB sweep)")
    p.add_argument("--timed-workers", type=int_option(1), default=1, metavar="N",
                   help="timed tasks at once on the local cluster (default 1: each alone "
                        "on this machine). N > 1 runs a long sharded sweep N times faster "
                        "on N cores, each task beside N - 1 others (their caches and "
                        "memory bandwidth), and the output says so; with --scheduler the "
                        "cluster's workers started with --resources timing=1 decide")
    p.add_argument("--csv", type=output_file, default=None,
                   help="also write the table here (atomically); X.csv also writes "
                        "X-maple-order.csv and X-conversion-cost.csv beside it")


#: each measured time is reported as its median and its spread over --repeat runs
STATS = ("median", "min", "max")
#: the measured times of a bench-core row
TIMES = ("populate_s", "scan_extents_s", "scan_pfns_s")
#: suffix of the emulation/kernel-code ratio columns of a kernel-code row
RATIO = "_emulation_over_kernel"
#: the figures a kernel-code row is compared on: its median times and its bytes
RATIO_OF = (*(f"{t}_median" for t in TIMES), "modeled_bytes", "peak_rss_bytes")


def _timed(fn, repeat) -> list[float]:
    """Seconds of ``repeat`` calls of fn, one sample per call."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _spread(name: str, samples: list[float]) -> dict:
    """{name_median, name_min, name_max} of the samples."""
    return {f"{name}_median": statistics.median(samples), f"{name}_min": min(samples),
            f"{name}_max": max(samples)}




# --------------------------------------------------------------------------
# which rows: the emulations and their @kernel twins

def engine_of(name: str) -> str:
    """The ``engine`` column of a row: "emulation", or "kernel code vX.Y.Z
    (userspace)" with the version of the kernel source the library was built from."""
    if name in KERNEL_TRACKERS:
        return f"kernel code v{linux.version()} (userspace)"
    return EMULATION


def select_rows(names, engine: str = "all") -> tuple[list[str], str]:
    """The trackers bench-core measures, in registry order, each emulation
    before its @kernel twin; and why kernel-code rows asked for are missing
    ("" when none are).

    ``names`` (None: every emulation) are registry names: an emulation's name
    selects it and its twin, ``NAME@kernel`` the twin alone; ``engine``
    ("all", "emulation", "kernel") keeps one engine or both.  ValueError
    for a name that is neither."""
    twin_names = {cls.name: twin for twin, cls in TWINS.items()}
    emulations, twins = set(), set()
    for n in names or TRACKERS:
        if n in TRACKERS:
            emulations.add(n)
            twins.add(n)
        elif n in twin_names:
            twins.add(twin_names[n])
        else:
            raise ValueError(f"unknown tracker {n!r}; known: {', '.join(TRACKERS)}")
    rows, missing = [], ""
    for base in TRACKERS:
        if base in emulations and engine in ("all", "emulation"):
            rows.append(base)
        if base in twins and base in TWINS and engine in ("all", "kernel"):
            name = TWINS[base].name
            if name in KERNEL_TRACKERS:
                rows.append(name)
            else:
                missing = KERNEL_UNAVAILABLE or f"{name} is not registered"
    return rows, missing


# --------------------------------------------------------------------------
# one Dask task per measurement (trackers/cluster.py)

def outcome(fn: Callable, *args) -> tuple[str, object]:
    """fn(*args) in this process, its peak RSS reset first (so a
    measurement's ``peak_rss_bytes`` is its own): ("ok", result),
    ("not_representable", why) or ("error", what).  A bench-core task."""
    reset_peak_rss()
    try:
        return "ok", fn(*args)
    except NotRepresentable as exc:   # not an error: the option does not exist here
        return "not_representable", exc.summary
    except Exception as exc:          # report it as a row, never lose the others
        return "error", f"{type(exc).__name__}: {exc}"


def run_outcomes(client, units: list[Unit], desc: str, progress: bool = True) -> list:
    """Each unit (its fn wrapped by :func:`outcome`) as a task on ``client``,
    or, with no client, one after another in this process; the outcomes in
    order.  A worker that dies (out of memory) is an ("error", ...) outcome."""
    wrapped = [Unit(outcome, (u.fn, *u.args), timed=u.timed, label=u.label) for u in units]
    if client is None:
        return [outcome(u.fn, *u.args) for u in units]
    return [("error", f"the measuring worker died: {type(r).__name__}: {r}")
            if isinstance(r, BaseException) else r
            for r in run_units(client, wrapped, desc=desc, progress=progress,
                               errors="return")]


@functools.lru_cache(maxsize=1)
def reference(max_pfn: int, seed: int):
    """The reference set, generated once per worker process (deterministic,
    so every worker holds the same set; nothing crosses the network)."""
    return reference_set(max_pfn, seed)


# --------------------------------------------------------------------------
# populate and scan

def measure_tracker(name: str, max_pfn: int, starts, ends, repeat: int) -> dict:
    """Populate and scan one tracker (any of ALL_TRACKERS); return its
    measured and modeled row."""
    pages = int((ends - starts).sum())
    cls = ALL_TRACKERS[name]
    holder = {}

    def populate():
        close_tracker(holder.pop("t", None))            # one tracker alive at a time
        t = cls(max_pfn)
        t.mark_ranges(starts, ends)
        holder["t"] = t
    warm = cls(max_pfn)                          # warm-up: numba compile, small set
    warm.mark_ranges(starts[:1000], ends[:1000])
    drain(warm.extents()), drain(warm.pfns())
    close_tracker(warm)
    del warm
    populate_s = _spread("populate_s", _timed(populate, repeat))
    t = holder["t"]
    extents_s = _spread("scan_extents_s", _timed(lambda: drain(t.extents()), repeat))
    pfns_s = _spread("scan_pfns_s", _timed(lambda: drain(t.pfns()), repeat))
    n_ext = drain(t.extents())
    assert len(t) == pages and n_ext == starts.size, f"{name}: scan disagrees with the set"
    m = t.memory()
    row = {
        "tracker": name,
        "engine": engine_of(name),
        **populate_s, **extents_s, **pfns_s,
        "populate_ns_per_page": populate_s["populate_s_median"] / pages * 1e9,
        "scan_pfns_ns_per_page": pfns_s["scan_pfns_s_median"] / pages * 1e9,
        "modeled_bytes": m.modeled_bytes,
        "scanned_bytes": m.scanned_bytes,
        "bits_per_private_page": m.modeled_bytes * 8 / pages,
        "host_bytes": m.host_bytes,
        "peak_rss_bytes": peak_rss_bytes(),   # VmHWM since the task's reset (cluster.py)
    }
    close_tracker(t)
    return row


def measure_reference(name: str, max_pfn: int, seed: int, repeat: int) -> dict:
    """measure_tracker on the reference set (:func:`reference`): a bench-core task."""
    starts, ends = reference(max_pfn, seed)
    reset_peak_rss()                  # the set is generated (cached): the peak is the tracker's
    return measure_tracker(name, max_pfn, starts, ends, repeat)


def measure_all(client, names, max_pfn: int, seed: int, repeat: int,
                progress: bool = True) -> list[dict]:
    """One row per tracker, each measured as a timed task (module doc)."""
    units = [Unit(measure_reference, (n, max_pfn, seed, repeat), timed=True, label=n)
             for n in names]
    rows = []
    for name, (status, value) in zip(names, run_outcomes(client, units, "trackers",
                                                          progress)):
        rows.append(value if status == "ok" else
                    {"tracker": name, "engine": engine_of(name), status: value})
    return rows


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Each kernel-code row's emulation/kernel-code ratio of every RATIO_OF
    figure (its twin's median over its own), as NAME_emulation_over_kernel
    columns; NaN on emulation rows and where the twin was not measured."""
    out = df.copy()
    by_name = out.set_index("tracker")
    for col in RATIO_OF:
        ratios = []
        for name in out["tracker"]:
            cls = KERNEL_TRACKERS.get(name)
            twin = getattr(cls, "twin", None)
            if (cls is None or twin not in by_name.index or col not in by_name
                    or pd.isna(by_name.at[twin, col]) or pd.isna(by_name.at[name, col])
                    or by_name.at[name, col] == 0):
                ratios.append(np.nan)
            else:
                ratios.append(by_name.at[twin, col] / by_name.at[name, col])
        out[col.removesuffix("_median") + RATIO] = ratios
    return out


def ratio_table(df: pd.DataFrame) -> pd.DataFrame:
    """The ratio columns of the kernel-code rows that have them, one row per structure."""
    cols = [c for c in df if c.endswith(RATIO)]
    if not cols:
        return pd.DataFrame()
    rows = df[df[cols].notna().any(axis=1)]
    return rows[["tracker", *cols]].rename(columns={c: c.removesuffix(RATIO) for c in cols})


# --------------------------------------------------------------------------
# the maple order effect, on the kernel's own tree

def maple_order(max_pfn: int, seed: int = 0, seeds: int = MAPLE_SEEDS) -> pd.DataFrame:
    """Node counts of the kernel's maple tree (lib/maple_tree.c,
    :class:`trackers.linux.KernelMaple`) holding the reference set's maximal
    extents, each stored with mtree_store_range(): once in ascending order,
    and in ``seeds`` random orders (permutations seeded 1..seeds).

    One row per order: nodes, leaves and height (random: median and min-max
    over the seeds), kernel-counted bytes, the store time per extent, and
    the ratio of nodes to the in-order tree's (median, min, max).  The
    in-order row also gives the ``maple`` model's node count
    (:meth:`trackers.maple.Maple.estimate`), which it equals.  Runs in this
    process: bench-core runs it as a timed task."""
    starts, ends = reference_set(max_pfn, seed)

    def store(order):
        mt = linux.KernelMaple()
        try:
            s, e = (starts, ends) if order is None else (starts[order], ends[order])
            t0 = time.perf_counter()
            mt.store_range(s, e)
            seconds = time.perf_counter() - t0
            levels = mt.levels()
        finally:
            mt.close()
        return int(levels.sum()), int(levels[0]) if levels.size else 0, int(levels.size), seconds

    nodes, leaves, height, seconds = store(None)
    version = linux.version()
    common = {"engine": f"kernel code v{version} (userspace)", "pfns": max_pfn,
              "extents": int(starts.size)}
    rows = [{**common, "order": "in order", "seeds": "-", "runs": 1,
             **_spread("nodes", [nodes]), **_spread("leaves", [leaves]),
             **_spread("height", [height]),
             **_spread("kernel_bytes", [nodes * MAPLE_NODE_BYTES]),
             **_spread("store_ns_per_extent", [seconds / max(starts.size, 1) * 1e9]),
             **_spread("ratio", [1.0]),
             "model_nodes": int(Maple.estimate(starts, ends, max_pfn)) // MAPLE_NODE_BYTES}]
    got = [store(np.random.default_rng(s).permutation(starts.size))
           for s in range(1, seeds + 1)]
    rn, rl, rh, rs = (list(x) for x in zip(*got))
    rows.append({**common, "order": "random", "seeds": f"1-{seeds}" if seeds > 1 else "1",
                 "runs": seeds, **_spread("nodes", rn), **_spread("leaves", rl),
                 **_spread("height", rh),
                 **_spread("kernel_bytes", [n * MAPLE_NODE_BYTES for n in rn]),
                 **_spread("store_ns_per_extent", [x / max(starts.size, 1) * 1e9 for x in rs]),
                 **_spread("ratio", [n / nodes if nodes else np.nan for n in rn]),
                 "model_nodes": np.nan})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# the cost of one conversion

def _pages_below(starts, ends, x) -> np.ndarray:
    """Pages of the sorted, disjoint extents below each PFN of ``x``."""
    cum = np.concatenate(([0], np.cumsum(ends - starts)))
    i = np.searchsorted(starts, x, side="left")          # extents starting below x
    beyond = np.where(i > 0, np.maximum(ends[np.maximum(i - 1, 0)] - x, 0), 0)
    return cum[i] - beyond


def conversion_targets(starts, ends, max_pfn: int, n: int = CONVERSIONS, seed: int = 0):
    """The set a conversion-cost tracker holds, and the conversions into it.

    Returns ``(held, targets)``: ``held`` the (starts, ends) of the set with
    the target 2 MiB slots emptied; ``targets`` maps each CONVERSION_SIZES
    label to (starts, ends) of up to ``n`` distinct conversions in random
    order, each into free PFNs of ``held``: 2 MiB-aligned slots not wholly in
    the set (in the reference set every such slot holds a few scattered
    pages, which ``held`` leaves out, about 128 per slot), and 4 KiB pages
    outside the set and those slots.  Fewer than ``n`` where the set has
    fewer such slots or pages (tiny sets: at most half the slots not wholly
    in the set become 2 MiB targets, the 4 KiB ones lie in the rest)."""
    rng = np.random.default_rng(seed + 7)
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    n_slots = max_pfn // PAGES_PER_2M
    cand = rng.choice(n_slots, min(n_slots, 8 * n + 64), replace=False)
    cs = np.sort(cand) * PAGES_PER_2M
    covered = _pages_below(starts, ends, cs + PAGES_PER_2M) - _pages_below(starts, ends, cs)
    free = cs[covered < PAGES_PER_2M]
    # at most half of them: the 4 KiB conversions' free pages lie in the others
    slots = free[rng.permutation(free.size)[:min(n, free.size // 2)]]    # random order
    held = subtract((starts, ends), normalize_extents(np.sort(slots), np.sort(slots)
                                                       + PAGES_PER_2M))
    draw = np.sort(rng.integers(0, max_pfn, size=16 * n + 4096, dtype=np.int64))
    draw = draw[np.r_[True, draw[1:] != draw[:-1]]]             # distinct (sort and mask)
    k = np.searchsorted(held[0], draw, side="right") - 1
    in_held = (k >= 0) & (draw < held[1][np.maximum(k, 0)])
    in_slot = np.isin(draw // PAGES_PER_2M, slots // PAGES_PER_2M)
    pages = draw[~in_held & ~in_slot]
    pages = pages[rng.permutation(pages.size)[:n]]
    targets = {"4KiB": (pages, pages + 1), "2MiB": (slots, slots + PAGES_PER_2M)}
    return held, targets


@dataclass(frozen=True)
class ConversionCalls:
    """How one conversion is made in a tracker's structure: ``mark`` and
    ``unmark`` of (starts, ends) arrays, and what they call.  ``batched``:
    one call over every conversion (each range its own kernel calls, the
    loop in C); otherwise one call per conversion."""

    mark: Callable
    unmark: Callable
    calls: str
    batched: bool


def conversion_calls(t: Tracker) -> ConversionCalls:
    """The calls one conversion makes in ``t``.

    A kernel-code twin's conversion is the kernel's own calls on the
    structure it holds, one engine call over all conversions (the per-range
    loop runs in C), without the twin's bookkeeping (its budget check,
    live-object count with rcu_barrier, and the canonical-state rebuilds of
    maple@kernel and xarray-multi@kernel, each O(set) per update).  kvm@kernel:
    the TD's mem_attr_array as kvm_vm_set_mem_attributes() updates it on
    KVM_SET_MEMORY_ATTRIBUTES (guest_memfd fills its page cache on fault,
    not at conversion); the shared direction stores NULL, which is
    xa_erase (KVM's xa_reserve pass over present entries, a walk each that
    changes nothing, is left out).  bitmap@kernel has no kernel store code
    (the library builds find_bit, not bitmap_set): its rows time the
    bitmap's own store, one call per conversion, as the emulation's.
    An emulation: its contract, one mark_ranges/unmark_ranges per conversion."""
    if isinstance(t, XArrayMultiKernel):
        return ConversionCalls(t.xa.store_range_multi, t.xa.erase_range_multi,
                               "xa_store_range / xa_erase of the entry", True)
    if isinstance(t, XArrayKernel):
        return ConversionCalls(t.xa.store_range, t.xa.erase_range,
                               "xa_store / xa_erase per page", True)
    if isinstance(t, IdaKernel):
        return ConversionCalls(t.ida.mark_range, t.ida.free_range,
                               "ida_alloc_range(id, id) / ida_free per page", True)
    if isinstance(t, MapleKernel):
        return ConversionCalls(t.mt.store_range, t.mt.erase_range,
                               "mtree_store_range / mtree_store_range(NULL)", True)
    if isinstance(t, KvmKernel):
        attrs = t.tds[DIRECT_TD].attrs
        return ConversionCalls(attrs.reserve_then_store, attrs.erase_range,
                               "mem_attr_array: xa_reserve + xa_store / xa_erase per GFN",
                               True)
    if isinstance(t, BitmapKernel):
        return ConversionCalls(lambda s, e: t.twin_cls.mark_ranges(t, s, e),
                               lambda s, e: t.twin_cls.unmark_ranges(t, s, e),
                               "the bitmap's own store per call (no kernel store code)", False)
    return ConversionCalls(t.mark_ranges, t.unmark_ranges,
                           "mark_ranges / unmark_ranges per call (the contract)", False)


def _per_call(fn, starts, ends, count: int | None, seconds: float) -> tuple[float, int]:
    """Seconds per call of fn over single conversions: ``count`` of them, or
    (None) as many as run within ``seconds`` (at least one)."""
    n = starts.size if count is None else count
    done = 0
    t0 = time.perf_counter()
    for i in range(n):
        fn(starts[i:i + 1], ends[i:i + 1])
        done += 1
        if count is None and time.perf_counter() - t0 > seconds:
            break
    return (time.perf_counter() - t0) / done, done


def measure_conversions(name: str, max_pfn: int, held, targets, repeat: int,
                        seconds: float = CONVERSION_SECONDS) -> list[dict]:
    """One tracker's conversion-cost rows (size x op), in this process: the
    tracker holds ``held``; each repeat marks every target of a size, then
    unmarks them (the tracker ends as it began), timing each op."""
    t = ALL_TRACKERS[name](max_pfn)
    t.mark_ranges(*held)
    held_pages = int((held[1] - held[0]).sum())
    calls = conversion_calls(t)
    rows = []
    for size, (s, e) in targets.items():
        if s.size == 0:
            continue
        calls.mark(s[:1], e[:1])                     # warm-up: compile, first touch
        calls.unmark(s[:1], e[:1])
        samples = {op: [] for op in CONVERSION_OPS}
        counts = []
        for _ in range(repeat):
            if calls.batched:
                t0 = time.perf_counter()
                calls.mark(s, e)
                samples["mark"].append((time.perf_counter() - t0) / s.size)
                t0 = time.perf_counter()
                calls.unmark(s, e)
                samples["unmark"].append((time.perf_counter() - t0) / s.size)
                counts.append(s.size)
            else:
                per, k = _per_call(calls.mark, s, e, None, seconds)
                samples["mark"].append(per)
                samples["unmark"].append(_per_call(calls.unmark, s, e, k, seconds)[0])
                counts.append(k)
        for op in CONVERSION_OPS:
            ns = [x * 1e9 for x in samples[op]]
            spread = _spread("ns_per_conversion", ns)
            rows.append({"tracker": name, "engine": engine_of(name), "size": size,
                         "pages": CONVERSION_SIZES[size], "op": op,
                         "conversions": min(counts), **spread,
                         "ns_per_page": spread["ns_per_conversion_median"]
                         / CONVERSION_SIZES[size],
                         "held_pages": held_pages, "pfns": max_pfn, "calls": calls.calls})
    got = sum(int((b - a).sum()) for a, b in t.extents())
    assert got == held_pages, f"{name}: {got:,} pages after the conversions, {held_pages:,} before"
    close_tracker(t)
    return rows


@functools.lru_cache(maxsize=1)
def _conversion_set(max_pfn: int, seed: int, conversions: int):
    starts, ends = reference(max_pfn, seed)
    return conversion_targets(starts, ends, max_pfn, conversions, seed)


def measure_conversions_reference(name: str, max_pfn: int, seed: int, conversions: int,
                                  repeat: int, seconds: float) -> list[dict]:
    """measure_conversions on the reference set's conversion targets, computed
    (once per worker) where it runs: a bench-core task."""
    held, targets = _conversion_set(max_pfn, seed, conversions)
    return measure_conversions(name, max_pfn, held, targets, repeat, seconds)


def conversion_cost(names, max_pfn: int, repeat: int = 3, *, conversions: int = CONVERSIONS,
                    seed: int = 0, seconds: float = CONVERSION_SECONDS,
                    progress: bool = False, client=None) -> pd.DataFrame:
    """ns to mark and to unmark one 4 KiB and one 2 MiB (2 MiB-aligned)
    conversion in each tracker of ``names`` (emulations and @kernel twins)
    holding the reference set over ``max_pfn`` PFNs (:func:`conversion_targets`:
    the target slots emptied), so each conversion walks a tree of realistic
    depth.  ``conversions`` distinct random conversions per timing, into
    free slots; median and min-max of ``repeat`` timings per call
    (:func:`conversion_calls` says what a call is: kernel code is timed in
    one engine call over all conversions, an emulation one contract call
    per conversion, within ``seconds`` per timing).  Each tracker in its own
    process.  One row per tracker x size x op; a kernel-code row also has
    the emulation/kernel-code ratio of the median (``ns_per_conversion``
    + RATIO) where its twin was measured."""
    for n in names:
        if n not in ALL_TRACKERS:
            raise ValueError(f"unknown tracker {n!r}; known: {', '.join(ALL_TRACKERS)}")
    units = [Unit(measure_conversions_reference, (n, max_pfn, seed, conversions, repeat,
                                                  seconds), timed=True, label=n)
             for n in names]
    rows = []
    for name, (status, value) in zip(names, run_outcomes(client, units, "conversions",
                                                          progress)):
        if status == "ok":
            rows.extend(value)
        else:
            rows.append({"tracker": name, "engine": engine_of(name), status: value})
    df = pd.DataFrame(rows)
    if "ns_per_conversion_median" in df:
        key = df.set_index(["tracker", "size", "op"])["ns_per_conversion_median"]
        ratio = []
        for name, size, op, ns in zip(df["tracker"], df.get("size"), df.get("op"),
                                      df["ns_per_conversion_median"]):
            twin = getattr(KERNEL_TRACKERS.get(name), "twin", None)
            ratio.append(key.get((twin, size, op), np.nan) / ns
                         if twin is not None and ns > 0 else np.nan)
        df["ns_per_conversion" + RATIO] = ratio
    return df


def conversion_table(df: pd.DataFrame) -> pd.DataFrame:
    """The conversion-cost rows as one line per tracker: "median (min-max)"
    ns per conversion under each size and op."""
    if "ns_per_conversion_median" not in df:
        return df
    ok = df.dropna(subset=["ns_per_conversion_median"])
    out = ok[["tracker", "engine"]].drop_duplicates().set_index("tracker")
    for size in CONVERSION_SIZES:
        for op in CONVERSION_OPS:
            sel = ok[(ok["size"] == size) & (ok["op"] == op)].set_index("tracker")
            out[f"{size} {op}"] = [
                f"{sel.at[n, 'ns_per_conversion_median']:,.0f} "
                f"({sel.at[n, 'ns_per_conversion_min']:,.0f}\u2013"
                f"{sel.at[n, 'ns_per_conversion_max']:,.0f})" if n in sel.index else "-"
                for n in out.index]
    for size in CONVERSION_SIZES:
        n = ok[ok["size"] == size].groupby("tracker")["conversions"].min()
        out[f"n {size}"] = [int(n[t]) if t in n.index else 0 for t in out.index]
    return out.reset_index()


# --------------------------------------------------------------------------
# estimate() and the kvm store loop (emulations)

def time_estimates(names, max_pfn, seed, repeat: int = 1) -> pd.DataFrame:
    """estimate() at max_pfn on the reference shape with 1 % scattered pages,
    timed ``repeat`` times per tracker (median, min, max).

    At 16 TiB the 10 % scatter of the 1 TiB set would be 4.3e8 single-page
    extents (3.4 GB per index array); 1 % keeps the input realistic and in
    memory while the 2 MiB extents still cover 60 % of the host.
    """
    starts, ends = reference_set(max_pfn, seed, scatter_fraction=0.01)
    rows = []
    for name in names:
        cls = TRACKERS[name]
        try:
            cls.estimate(starts[:1000], ends[:1000], max_pfn)  # warm-up: numba compile
        except NotRepresentable as exc:
            rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                         **{f"estimate_s_{k}": np.nan for k in STATS},
                         "modeled_bytes": np.nan, "not_representable": exc.summary})
            continue
        nbytes = []
        times = _timed(lambda: nbytes.append(cls.estimate(starts, ends, max_pfn)), repeat)
        rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                     **_spread("estimate_s", times), "modeled_bytes": nbytes[-1]})
    return pd.DataFrame(rows)


def time_kvm_store_loop(n_gfns: int, repeat: int = 1) -> dict:
    """ns per GFN of kvm_vm_set_mem_attributes' loop -- one xa_store() walk
    from xa_head per GFN -- over one TD of n_gfns private GFNs; ``repeat``
    runs, each into a fresh mem_attr_array (median, min, max)."""
    s, e = np.array([0]), np.array([n_gfns])
    times = []
    for i in range(repeat):
        tree = None                                  # one mem_attr_array alive at a time
        tree = XaTree(budget_bytes=memory_budget(), what="mem_attr_array")
        if i == 0:
            xa_store_per_gfn(*tree.arrays, np.array([0]), np.array([0]))      # compile
        tree.reserve(int(xa_node_counts(s, e).sum()))
        t0 = time.perf_counter()
        xa_store_per_gfn(*tree.arrays, s, e)
        times.append(time.perf_counter() - t0)
        assert len(tree) == n_gfns
    row = {"gfns": n_gfns, **_spread("seconds", times)}
    row.update({f"ns_per_gfn_{k}": row[f"seconds_{k}"] / n_gfns * 1e9 for k in STATS})
    row["anchor_ns_per_gfn"] = ANCHOR_NS_PER_GFN
    return row


# --------------------------------------------------------------------------
# output

def _range(lo: float, hi: float) -> str:
    return f"{lo:.3g}\u2013{hi:.3g}"


def format_table(df: pd.DataFrame) -> str:
    """Bytes in MiB; each measured time as "median (min\u2013max)" under its name;
    a row that is not representable shows "-" for its numbers and says why."""
    out = df.copy()
    for col in [c for c in out if c.endswith("_median")]:
        name = col[:-len("_median")]
        out[name] = ["-" if pd.isna(m) else f"{m:.3g} ({_range(lo, hi)})" for m, lo, hi in
                     zip(out[col], out[f"{name}_min"], out[f"{name}_max"])]
        out = out.drop(columns=[col, f"{name}_min", f"{name}_max"])
    for col in ("modeled_bytes", "scanned_bytes", "host_bytes", "peak_rss_bytes"):
        if col in out:
            out[col] = (out[col] / 2**20).map(lambda x: "-" if pd.isna(x) else f"{x:,.1f}")
            out = out.rename(columns={col: col.replace("_bytes", "_MiB")})
    for col in ("not_representable", "error"):
        if col in out:
            out[col] = out[col].fillna("")
    return out.to_string(index=False, float_format=lambda x: f"{x:.3g}")


def format_maple_order(df: pd.DataFrame) -> str:
    """The maple order table: node counts in full, the ratio to 4 places,
    each as "median (min\u2013max)" over the seeds."""
    out = df[["order", "seeds", "extents", "model_nodes"]].copy()
    out["model_nodes"] = out["model_nodes"].map(lambda x: "-" if pd.isna(x) else f"{x:,.0f}")
    for name, fmt in (("nodes", ",.0f"), ("leaves", ",.0f"), ("height", ".0f"),
                      ("kernel_bytes", ",.0f"), ("store_ns_per_extent", ",.0f"),
                      ("ratio", ".4f")):
        out[name] = [f"{m:{fmt}} ({lo:{fmt}}\u2013{hi:{fmt}})" for m, lo, hi in
                     zip(df[f"{name}_median"], df[f"{name}_min"], df[f"{name}_max"])]
    return out.to_string(index=False)


def beside(csv, what: str):
    """X.csv -> X-WHAT.csv: the file name only, beside X."""
    return None if csv is None else csv.with_name(f"{csv.stem}-{what}{csv.suffix}")


def _limits(df: pd.DataFrame) -> str:
    """One line: whether every kernel-code row populated and scanned (extents)
    within KERNEL_LIMIT_SECONDS and KERNEL_LIMIT_RSS_BYTES (medians)."""
    k = df[df["tracker"].isin(KERNEL_TRACKERS)]
    if k.empty or "populate_s_median" not in k:
        return ""
    over = [f"{n} ({p + s:.3g} s, {r / 2**30:.2f} GiB)" for n, p, s, r in
            zip(k["tracker"], k["populate_s_median"], k["scan_extents_s_median"],
                k["peak_rss_bytes"])
            if not (p + s <= KERNEL_LIMIT_SECONDS and r <= KERNEL_LIMIT_RSS_BYTES)]
    limit = (f"populate + scan <= {KERNEL_LIMIT_SECONDS:g} s and peak RSS <= "
             f"{KERNEL_LIMIT_RSS_BYTES / 2**30:g} GiB")
    return (f"kernel code: every tracker within {limit}" if not over
            else f"kernel code: over {limit}: {', '.join(over)}")


def run(args) -> int:
    rows_wanted, missing = select_rows(args.trackers, args.engine)
    # options are checked before any work
    for path in (beside(args.csv, w) for w in ("maple-order", "conversion-cost")):
        if path is not None:
            try:
                output_file(str(path))
            except Exception as exc:
                raise ValueError(f"--csv {args.csv}: {exc}") from None
    if missing:
        only = "no rows" if args.engine == "kernel" else "emulation rows only"
        print(f"kernel code unavailable, {only}: {missing}", flush=True)
    if not rows_wanted:
        if missing:
            return 0
        raise ValueError(f"--engine {args.engine}: none of the trackers given runs on it")
    check_shards(args.pfns, args.shard_pfns)        # a power of two, before any work
    if args.timed_workers > 1 and scheduler_address(args.scheduler) is not None:
        raise ValueError(f"--timed-workers {args.timed_workers} sizes the local cluster; on "
                         f"the cluster at {scheduler_address(args.scheduler)} start workers "
                         f"with --resources timing=1 instead")
    if args.repeat is None:
        args.repeat = 1 if args.pfns > args.shard_pfns else 3
    if args.pfns > args.shard_pfns:
        ReferenceShards("reference", args.seed).check(args.shard_pfns)
    t0 = time.perf_counter()
    if args.timed_workers > 1:
        print(f"timed tasks: {args.timed_workers} at a time on this machine "
              f"(--timed-workers): each timed beside {args.timed_workers - 1} other(s), "
              f"sharing caches and memory bandwidth", flush=True)
    with connect(args.scheduler, timed_workers=args.timed_workers) as client:
        if args.pfns > args.shard_pfns:
            status = run_sharded(client, args, rows_wanted)
        else:
            status = run_whole(client, args, rows_wanted)
    print(f"\nbench-core: {time.perf_counter() - t0:.0f} s wall", flush=True)
    return status


def sharded_table(client, names, args) -> pd.DataFrame:
    """bench-core's rows for a --pfns built shard by shard (trackers/shard.py),
    each beside estimate() of the same shards, combined the same way."""
    why = {n: not_representable(n, args.pfns) for n in names}
    built = iter(sharded_build(client, [n for n in names if not why[n]], args.pfns,
                               args.shard_pfns, ReferenceShards("reference", args.seed),
                               args.repeat, scan_pfns=args.scan_pfns))
    rows = []
    for name in names:
        if why[name]:
            rows.append({"tracker": name, "engine": engine_of(name),
                         "not_representable": why[name]})
            continue
        row = next(built).row()
        rows.append({"tracker": row.pop("tracker"), "engine": engine_of(name), **row})
    return pd.DataFrame(rows)


def run_sharded(client, args, rows_wanted) -> int:
    n = check_shards(args.pfns, args.shard_pfns)
    print(f"reference set: {args.pfns:,} PFNs ({args.pfns * 4096 / 2**40:.3g} TiB) built in "
          f"{n} shards of {args.shard_pfns:,} PFNs, each shard's set generated where it is "
          f"built (reference_set(shard, seed=[{args.seed}, i]); trackers/shard.py)",
          flush=True)
    df = add_ratios(sharded_table(client, rows_wanted, args))
    runs = f"median (min\u2013max) of {args.repeat} run{'s' if args.repeat > 1 else ''}"
    print(f"\n[measured] times in s, each the sum over the shards (one CPU), {runs}, and "
          f"the largest peak RSS of a shard's task (*_shard: one shard's time, median "
          f"(min\u2013max) over the {n} shards, each a sample of the same shape); [modeled] kernel bytes of the whole "
          f"structure combined from its shards (kernel-code rows: the kernel's own node "
          f"counts), beside estimate() of the same shards (modeled_over_estimate)")
    shown = df.drop(columns=[c for c in df if c.endswith(RATIO) or c in ("pfns", "shard_pfns")])
    print(format_table(shown))
    ratios = ratio_table(df)
    if not ratios.empty:
        print("\nemulation / kernel code, per structure (ratio of the median times; of bytes)")
        print(ratios.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if not args.scan_pfns:
        print("\nthe pfns() scan was not timed (scan_pfns_*: NaN); --scan-pfns times it")
    print(f"\nnot at {args.pfns:,} PFNs (one structure over the whole set): the maple "
          f"order table, the conversion cost, estimate() timing and the kvm store loop; "
          f"run bench-core at --pfns <= {args.shard_pfns:,} for them")
    if args.csv:
        write_csv_atomic(df, args.csv)
    return 1 if "error" in df else 0


def run_whole(client, args, rows_wanted) -> int:
    t0 = time.perf_counter()
    starts, ends = reference_set(args.pfns, args.seed)
    pages = int((ends - starts).sum())
    print(f"reference set: {args.pfns:,} PFNs ({args.pfns * 4096 / 2**40:.3g} TiB), "
          f"{pages:,} private pages in {starts.size:,} extents "
          f"(generated in {time.perf_counter() - t0:.1f} s)", flush=True)
    del starts, ends                             # each task generates its own (reference())
    side = {w: beside(args.csv, w) for w in ("maple-order", "conversion-cost")}
    rows = measure_all(client, rows_wanted, args.pfns, args.seed, args.repeat)
    df = add_ratios(pd.DataFrame(rows))
    runs = f"median (min\u2013max) of {args.repeat} run{'s' if args.repeat > 1 else ''}"
    print(f"\n[measured] times in s, {runs}, and peak RSS on this machine; "
          f"[modeled] kernel bytes (kernel-code rows: the kernel's own node counts)")
    print(format_table(df.drop(columns=[c for c in df if c.endswith(RATIO)])))
    ratios = ratio_table(df)
    if not ratios.empty:
        print("\nemulation / kernel code, per structure (ratio of the median times; of bytes)")
        print(ratios.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if _limits(df):
        print(_limits(df))
    emulations = [n for n in rows_wanted if n in TRACKERS]
    kernel_rows = [n for n in rows_wanted if n in KERNEL_TRACKERS]
    if MapleKernel.name in kernel_rows:
        [(status, order)] = run_outcomes(client, [Unit(maple_order, (args.pfns, args.seed,
                                                                    args.maple_seeds),
                                                       timed=True)], "maple order")
        if status != "ok":
            raise RuntimeError(f"maple order table: {order}")
        print(f"\nmaple order effect [measured on the kernel's lib/maple_tree.c]: the "
              f"reference set's {order['extents'].iloc[0]:,} extents stored in order vs in "
              f"{args.maple_seeds} random order{'s' if args.maple_seeds > 1 else ''} "
              f"(median (min\u2013max) over the seeds)")
        print(f"engine: {order['engine'].iloc[0]}; ratio: nodes over the in-order tree's")
        print(format_maple_order(order))
        if side["maple-order"] is not None:
            write_csv_atomic(order, side["maple-order"])
    conv = conversion_cost(rows_wanted, args.pfns, args.repeat, conversions=args.conversions,
                           seed=args.seed, progress=True, client=client)
    print(f"\nconversion cost [measured] in ns per conversion, {runs}, into a tracker "
          f"holding the reference set: kernel code timed over one engine call of all "
          f"conversions, emulations (and bitmap@kernel) one call per conversion")
    print(conversion_table(conv).to_string(index=False))
    if side["conversion-cost"] is not None:
        write_csv_atomic(conv, side["conversion-cost"])
    if emulations:
        [(status, est)] = run_outcomes(client, [Unit(time_estimates, (
            emulations, args.estimate_pfns, args.seed, args.repeat), timed=True)], "estimate()")
        if status != "ok":
            raise RuntimeError(f"estimate() timing: {est}")
        print(f"\nestimate() at {args.estimate_pfns:,} PFNs [measured time in s, {runs}; "
              f"modeled bytes]")
        print(format_table(est))
    if "kvm" in emulations:
        [(status, kvm)] = run_outcomes(client, [Unit(time_kvm_store_loop, (
            args.pfns, args.repeat), timed=True)], "kvm store loop")
        if status != "ok":
            raise RuntimeError(f"kvm store loop: {kvm}")
        print(f"\nkvm per-GFN attribute store over {kvm['gfns']:,} GFNs [measured, {runs}]: "
              f"{kvm['seconds_median']:.3g} s "
              f"({_range(kvm['seconds_min'], kvm['seconds_max'])}), "
              f"{kvm['ns_per_gfn_median']:.1f} ns/GFN "
              f"({_range(kvm['ns_per_gfn_min'], kvm['ns_per_gfn_max'])}) "
              f"(real-world anchor: >= {kvm['anchor_ns_per_gfn']:.0f} ns/GFN, 26 s soft "
              f"lockup on a 1 TB+ guest)")
    if args.csv:
        write_csv_atomic(df, args.csv)
    failed = "error" in df or ("error" in conv)
    return 1 if failed else 0
