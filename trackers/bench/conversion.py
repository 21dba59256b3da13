"""The cost of one conversion: ns to mark and to unmark one 4 KiB and one
2 MiB conversion in a tracker that holds the reference set.

:func:`conversion_targets` picks the conversions (free 2 MiB slots and free
pages of the set, which the held set leaves out); each tracker says what one
conversion calls in its structure (``Tracker.conversion_calls()``);
:func:`measure_conversions` times them in one tracker, in this process;
:func:`conversion_cost` runs one timed task per tracker and adds the
emulation/kernel-code ratio; :func:`conversion_table` prints the rows.

Two kinds of timing, and each row says which (``engine``, ``calls``,
``upper_bound``):

* batched: a C engine (the kernel's code, or struct pages laid out in C)
  makes every conversion in one call; the time per conversion is that
  call's less its fixed cost (Python, ctypes, the engine's entry: the least
  of :data:`EMPTY_CALLS` calls over no conversion, ``fixed_call_ns``), over
  the conversions.  What is left is the C loop's, a few ns per conversion
  of numpy input checks included;
* one Python call per conversion (an emulation's contract, roaring): the
  interpreter's call overhead is in every conversion, so the time is an
  upper bound of the structure's cost (``upper_bound``).

Every repeat converts the same targets, so from the second on what they
touch (nodes, bitmap words, struct pages) may be in cache: the median is
a warm conversion, the first, cold pass is usually the max.
"""

from __future__ import annotations

import functools
import statistics
import time

import numpy as np
import pandas as pd

from ..cluster import Unit
from ..extents import normalize_extents, subtract
from ..kernel import PAGES_PER_2M
from ..registry import ALL_TRACKERS
from ..shard import close_tracker
from .rows import RATIO, engine_of, twin_of
from .timing import STATS, reference, run_outcomes, spread

#: conversions per timing of the conversion-cost table
CONVERSIONS = 2000
#: the most conversions per timing bench-core accepts: conversion_targets()
#: draws 16 candidate pages (int64) per conversion, 128 MB at this limit
MAX_CONVERSIONS = 1_000_000
#: an emulation's per-call conversion loop stops after this long (its maple
#: rebuilds the tree per call: seconds each at 1 TiB); the row says how many ran
CONVERSION_SECONDS = 5.0
#: conversion sizes: label -> pages (a 2 MiB conversion is 2 MiB aligned)
CONVERSION_SIZES = {"4KiB": 1, "2MiB": PAGES_PER_2M}
CONVERSION_OPS = ("mark", "unmark")
#: calls over no conversion before each batched timing; the least is its fixed cost
EMPTY_CALLS = 5
#: the ``timed`` column of the printed table: batched (C) or one Python call each
TIMED = {False: "C, one call of all", True: "Python call each (upper bound)"}


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


def _batched(fn, starts, ends) -> tuple[float, float]:
    """Seconds per conversion of one call of fn over every conversion, less
    the call's fixed cost; and that fixed cost: the least of EMPTY_CALLS
    calls over no conversion (the Python, ctypes and entry cost of a call,
    which a larger batch would spread thinner)."""
    empty = []
    for _ in range(EMPTY_CALLS):
        t0 = time.perf_counter()
        fn(starts[:0], ends[:0])
        empty.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    fn(starts, ends)
    total = time.perf_counter() - t0
    return (total - min(empty)) / starts.size, min(empty)


def measure_conversions(name: str, max_pfn: int, held, targets, repeat: int,
                        seconds: float = CONVERSION_SECONDS) -> list[dict]:
    """One tracker's conversion-cost rows (size x op), in this process: the
    tracker holds ``held``; each repeat marks every target of a size, then
    unmarks them (the structure ends as it began), timing each op (module
    doc: batched or one call per conversion)."""
    t = ALL_TRACKERS[name](max_pfn)
    t.mark_ranges(*held)
    held_pages = int((held[1] - held[0]).sum())
    calls = t.conversion_calls()
    rows = []
    try:
        for size, (s, e) in targets.items():
            if s.size == 0:
                continue
            calls.mark(s[:1], e[:1])                 # warm-up: compile, first touch
            calls.unmark(s[:1], e[:1])
            samples = {op: [] for op in CONVERSION_OPS}
            fixed = {op: [] for op in CONVERSION_OPS}
            counts = []
            for _ in range(repeat):
                if calls.batched:
                    for op, fn in (("mark", calls.mark), ("unmark", calls.unmark)):
                        per, call_s = _batched(fn, s, e)
                        samples[op].append(per)
                        fixed[op].append(call_s)
                    counts.append(s.size)
                else:
                    per, k = _per_call(calls.mark, s, e, None, seconds)
                    samples["mark"].append(per)
                    samples["unmark"].append(_per_call(calls.unmark, s, e, k, seconds)[0])
                    counts.append(k)
            for op in CONVERSION_OPS:
                ns_spread = spread("ns_per_conversion", [x * 1e9 for x in samples[op]])
                rows.append({"tracker": name, "engine": calls.engine, "size": size,
                             "pages": CONVERSION_SIZES[size], "op": op,
                             "conversions": min(counts), **ns_spread,
                             "ns_per_page": ns_spread["ns_per_conversion_median"]
                             / CONVERSION_SIZES[size],
                             "held_pages": held_pages, "pfns": max_pfn, "calls": calls.calls,
                             "upper_bound": calls.upper_bound,
                             "fixed_call_ns": (statistics.median(fixed[op]) * 1e9
                                               if fixed[op] else np.nan)})
        got = sum(int((b - a).sum()) for a, b in calls.extents())
        assert got == held_pages, \
            f"{name}: {got:,} pages after the conversions, {held_pages:,} before"
    finally:
        calls.close()
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
    (the tracker's ``conversion_calls()`` says what a call is: a C engine is
    timed in one call over all conversions less its fixed cost, an emulation
    one contract call per conversion, an upper bound, within ``seconds`` per
    timing: module doc).  Each tracker in its own process.  One row per tracker x size x op; a kernel-code row also has
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
            twin = twin_of(name)
            ratio.append(key.get((twin, size, op), np.nan) / ns
                         if twin is not None and ns > 0 else np.nan)
        df["ns_per_conversion" + RATIO] = ratio
    return df


def conversion_table(df: pd.DataFrame) -> pd.DataFrame:
    """The conversion-cost rows as one line per tracker, every tracker asked
    for (in ``df``'s order): the engine that timed it and how (``timed``: C,
    one call of all conversions, or one Python call each, an upper bound),
    then "median (min-max)" ns per conversion under each size and op; a
    tracker that failed shows "-" and, in ``error``, why."""
    names = list(dict.fromkeys(df["tracker"]))
    engine = df.drop_duplicates("tracker").set_index("tracker")["engine"]
    out = pd.DataFrame({"tracker": names, "engine": [engine[n] for n in names]})
    out = out.set_index("tracker")
    ok = (df.dropna(subset=["ns_per_conversion_median"]) if "ns_per_conversion_median" in df
          else pd.DataFrame(columns=["tracker", "size", "op", "conversions", "upper_bound",
                                     *(f"ns_per_conversion_{k}" for k in STATS)]))
    bound = ok.groupby("tracker")["upper_bound"].first()
    out["timed"] = [TIMED[bool(bound[n])] if n in bound else "-" for n in out.index]
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
    if "error" in df:
        why = df.dropna(subset=["error"]).drop_duplicates("tracker").set_index("tracker")
        out["error"] = [why.at[n, "error"] if n in why.index else "" for n in out.index]
    return out.reset_index()
