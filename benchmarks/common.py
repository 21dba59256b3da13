"""Seeded, cached inputs shared by every benchmark file.

Sets come from :mod:`trackers.sets` (the one reference-set generator and its
named shapes) and are cached on disk in
``.asv/sets/`` (gitignored): asv runs each benchmark in its own process, and
the 1 TiB reference set takes seconds to generate.  The ``setup_cache`` a
benchmark file shares calls :func:`warm_sets` (or :func:`timed_plan`) once;
``setup`` then only loads.

Parameters that cannot run here raise ``NotImplementedError`` in ``setup``,
which asv records as skipped (n/a):

* the set is too large to generate (:class:`trackers.sets.SetTooLarge`);
* the tracker refuses to build it within its memory budget
  (:class:`trackers.MemoryBudgetError`);
* for timed builds (:func:`timed_plan`, decided once per run): the host is
  larger than :data:`BUILD_MAX_PFN`, the set may hold more than
  :data:`BUILD_MAX_EXTENTS` extents, or building and scanning it would take
  longer than :data:`BUILD_SECONDS_LIMIT` or hold more than
  :data:`BUILD_HOST_BYTES_LIMIT`, predicted from a probe: the same tracker
  built and scanned on the 64 GiB set of the same shape, scaled by the
  extent count (:func:`check_build_time`; probes cached on disk).

asv runs the suite from one fork server (``"launch_method": "forkserver"`` in
asv.conf.json): it imports these modules once and forks a child per benchmark
and parameter.  In that server this module compiles every tracker's numba
code once (:func:`warm_up`; numba's ``cache=True`` writes it to
``__pycache__``), so no child pays the interpreter start, the imports or the
compilation; a timed benchmark measures the same call either way, after its
setup.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import trackers
from trackers.output import write_text_atomic
from trackers.sets import HOST_SIZES, SET_SHAPES, SetTooLarge, expected_runs, host_set

SEED = 0
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("TRACKERS_BENCH_CACHE", ROOT / ".asv" / "sets"))

#: registry order; every tracker that has landed
TRACKER_NAMES = list(trackers.TRACKERS)

#: timed benchmarks build the structure once per benchmark and parameter (asv
#: forks a process for each): 64 GiB, and 1 TiB within the timed-build
#: limits below (extents-2m runs; the reference set, 2e7 extents, is n/a)
TIME_HOSTS = ["64G", "1T"]
#: track (modeled) benchmarks only call estimate(): every size
TRACK_HOSTS = list(HOST_SIZES)
#: set shapes the timed benchmarks run on
TIME_SHAPES = ["reference", "extents-2m"]
TRACK_SHAPES = ["reference", "reference-1pct"]

#: the largest PFN space a timed benchmark builds (16 TiB = 2^32: a bitmap is
#: 512 MiB; radix trees of the 1 % set hold tens of millions of entries)
BUILD_MAX_PFN = 1 << 32

#: per-page operations (mark/unmark, contains) touch this many PFNs per call
OP_PAGES = 1 << 16

#: the longest predicted build + one scan a timed benchmark's setup may take.
#: Every timed benchmark and parameter builds its own structure (5 per
#: tracker, host and set), so this bounds a quick run: 5 s keeps
#: `asv run --quick` from a fresh clone under 5 minutes on this 2-core machine
#: (benchmarks/README.md); 64 GiB (the probe itself) always runs.
BUILD_SECONDS_LIMIT = 5.0
#: the most memory a timed build's emulation may hold (memory().host_bytes,
#: predicted from the probe): the page-granular XArray of the 1 TiB
#: extents-2m set holds ~1.7 GiB and takes 5-7 s to build here, per process
BUILD_HOST_BYTES_LIMIT = 1 << 30
#: the most extents a timed build marks: the 64 GiB reference set (1.3e6)
#: and the 1 TiB extents-2m set (1.1e5) run, the 1 TiB reference set (2.0e7,
#: 323 MB of input each process loads) is n/a.  Load-independent, unlike the
#: predicted seconds, so a quick run's length does not depend on the load
BUILD_MAX_EXTENTS = 1 << 21
PROBE_HOST = "64G"


def _cache_path(shape: str, max_pfn: int, seed: int) -> Path:
    return CACHE_DIR / f"{shape}-{max_pfn:x}-{seed}.npz"


def load_set(shape: str, host: str, seed: int = SEED):
    """(starts, ends) of ``shape`` on host ``host`` ("1T"), from the disk cache.

    Raises NotImplementedError when the set is too large for this machine.
    """
    max_pfn = HOST_SIZES[host]
    path = _cache_path(shape, max_pfn, seed)
    if path.exists():
        with np.load(path) as z:
            return z["starts"], z["ends"]
    try:
        starts, ends = host_set(shape, max_pfn, seed)
    except SetTooLarge as exc:
        raise NotImplementedError(str(exc)) from None
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.npz")
    np.savez(tmp, starts=starts, ends=ends)
    os.replace(tmp, path)           # atomic: a concurrent reader sees all or nothing
    return starts, ends


def warm_sets(shapes, hosts, seed: int = SEED, keep=None) -> dict:
    """Generate and cache every feasible (shape, host) set; skip the rest, and
    those ``keep(shape, host)`` (default: all) leaves out.

    Returns (shape, host) -> extent count, or the reason it is skipped; asv
    passes a non-None setup_cache value to setup and the benchmark.
    """
    cached = {}
    for shape in shapes:
        for host in hosts:
            if keep is not None and not keep(shape, host):
                cached[shape, host] = f"{shape}@{host} not generated"
                continue
            try:
                cached[shape, host] = load_set(shape, host, seed)[0].size
            except NotImplementedError as exc:
                cached[shape, host] = str(exc)
    return cached


@functools.lru_cache(maxsize=None)
def _source_digest() -> str:
    """sha1 of the trackers package's sources: a probe is redone when any changes."""
    h = hashlib.sha1()
    root = Path(inspect.getsourcefile(trackers)).parent
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.c")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _probe(name: str, shape: str, seed: int = SEED) -> dict:
    """Seconds to build and scan ``name`` on the PROBE_HOST set of ``shape``, and
    the bytes the emulation then holds (memory().host_bytes); cached on disk."""
    path = CACHE_DIR / f"probe-{name}-{shape}-{seed}-{_source_digest()}.json"
    if path.exists():
        return json.loads(path.read_text())
    starts, ends = load_set(shape, PROBE_HOST, seed)
    warm = trackers.get_tracker(name, max_pfn=1 << 12)       # compile outside the probe
    warm.mark_ranges([1, 64], [3, 200])
    drain(warm.extents())
    t0 = time.perf_counter()
    t = trackers.get_tracker(name, max_pfn=HOST_SIZES[PROBE_HOST])
    t.mark_ranges(starts, ends)
    drain(t.extents())
    probe = {"seconds": time.perf_counter() - t0, "extents": int(starts.size),
             "host_bytes": int(t.memory().host_bytes)}
    write_text_atomic(path, json.dumps(probe))
    return probe


def check_build_time(name: str, host: str, shape: str, extents: int) -> None:
    """NotImplementedError if building + scanning ``extents`` is predicted over
    BUILD_SECONDS_LIMIT, or the built emulation over BUILD_HOST_BYTES_LIMIT
    (both scaled from the probe by extent count), or ``extents`` over
    BUILD_MAX_EXTENTS."""
    if extents > BUILD_MAX_EXTENTS:
        raise NotImplementedError(
            f"{name} on {shape}@{host}: {extents:,} extents, over the {BUILD_MAX_EXTENTS:,} "
            f"extents of a timed build")
    if host == PROBE_HOST:
        return
    probe = _probe(name, shape)
    scale = extents / max(probe["extents"], 1)
    predicted = probe["seconds"] * scale
    if predicted > BUILD_SECONDS_LIMIT:
        raise NotImplementedError(
            f"{name} on {shape}@{host}: build + scan predicted {predicted:.0f} s "
            f"({probe['seconds']:.2f} s for {probe['extents']:,} extents at {PROBE_HOST}), "
            f"over the {BUILD_SECONDS_LIMIT:g} s limit for this machine")
    held = probe.get("host_bytes", 0) * scale
    if held > BUILD_HOST_BYTES_LIMIT:
        raise NotImplementedError(
            f"{name} on {shape}@{host}: emulation predicted to hold {held / 2**30:.1f} GiB "
            f"({probe['host_bytes'] / 2**20:.0f} MiB for {probe['extents']:,} extents at "
            f"{PROBE_HOST}), over the {BUILD_HOST_BYTES_LIMIT / 2**30:g} GiB limit of a timed build")


def timed_plan(names, shapes, hosts, seed: int = SEED) -> dict:
    """Decide once (in a setup_cache) which timed parameters run.

    Returns (tracker, host, shape) -> None (build it) or the reason it is n/a:
    a set that may hold over BUILD_MAX_EXTENTS extents (:func:`expected_runs`,
    decided before generating it) or is too large to generate, the host over
    BUILD_MAX_PFN, or a build predicted over the limits
    (:func:`check_build_time`).  Every set that runs is generated and cached
    on disk here, so a benchmark's setup only loads.
    """
    bound = {(shape, host): expected_runs(shape, HOST_SIZES[host])
             for shape in shapes for host in hosts}
    counts = warm_sets(shapes, hosts, seed,
                       keep=lambda shape, host: bound[shape, host] <= BUILD_MAX_EXTENTS)
    plan = {}
    for shape in shapes:
        for host in hosts:
            for name in names:
                try:
                    if bound[shape, host] > BUILD_MAX_EXTENTS:     # not even generated
                        raise NotImplementedError(
                            f"{name} on {shape}@{host}: up to {bound[shape, host]:,} extents, "
                            f"over the {BUILD_MAX_EXTENTS:,} extents of a timed build")
                    if isinstance(counts[shape, host], str):
                        raise NotImplementedError(counts[shape, host])
                    if HOST_SIZES[host] > BUILD_MAX_PFN:
                        raise NotImplementedError(
                            f"{host} is over the timed-build limit {BUILD_MAX_PFN:,} PFNs")
                    check_build_time(name, host, shape, counts[shape, host])
                    plan[name, host, shape] = None
                except NotImplementedError as exc:
                    plan[name, host, shape] = str(exc)
    return plan


def planned(plan: dict, name: str, host: str, shape: str) -> None:
    """NotImplementedError (asv: n/a) with the reason :func:`timed_plan` gave."""
    reason = plan[name, host, shape]
    if reason is not None:
        raise NotImplementedError(reason)


def build_tracker(name: str, host: str, starts, ends, shape: str | None = None):
    """A tracker over ``host`` with the set marked; NotImplementedError if refused
    by its budget or predicted too slow to build here (needs ``shape``)."""
    max_pfn = HOST_SIZES[host]
    if max_pfn > BUILD_MAX_PFN:
        raise NotImplementedError(f"{host} is over the timed-build limit {BUILD_MAX_PFN:,} PFNs")
    if shape is not None:
        check_build_time(name, host, shape, int(starts.size))
    try:
        t = trackers.get_tracker(name, max_pfn=max_pfn)
        t.mark_ranges(starts, ends)
    except trackers.MemoryBudgetError as exc:
        raise NotImplementedError(str(exc)) from None
    return t


def random_pfns(max_pfn: int, n: int = OP_PAGES, seed: int = SEED) -> np.ndarray:
    """``n`` distinct PFNs in [0, max_pfn), sorted, seeded."""
    rng = np.random.default_rng(seed + 1)
    pfns = np.sort(rng.integers(0, max_pfn, size=n, dtype=np.int64))
    keep = np.empty(pfns.size, bool)
    keep[0] = True
    keep[1:] = pfns[1:] != pfns[:-1]
    return pfns[keep]


def drain(batches) -> int:
    """Consume a scan; return how many items (runs or PFNs) it yielded."""
    n = 0
    for b in batches:
        n += len(b[0]) if isinstance(b, tuple) else len(b)
    return n


#: the PFN space of the warm-up's sets (4 GiB): every path compiles in a few
#: milliseconds of work each, on the same dtypes the benchmarks pass
WARM_MAX_PFN = 1 << 20


def warm_up(names=None) -> None:
    """Compile (or load from numba's disk cache) every path a benchmark times:
    mark_ranges, extents, pfns, contains, mark, unmark, memory and estimate of
    each tracker in ``names`` (default: TRACKER_NAMES) on small sets of every
    timed shape."""
    for name in TRACKER_NAMES if names is None else names:
        for shape in TIME_SHAPES:
            starts, ends = host_set(shape, WARM_MAX_PFN, SEED)
            try:
                t = trackers.get_tracker(name, max_pfn=WARM_MAX_PFN)
                t.mark_ranges(starts, ends)
            except (trackers.MemoryBudgetError, trackers.NotRepresentable):
                continue            # refused here: its benchmarks say so (n/a)
            drain(t.extents())
            drain(t.pfns())
            probe = random_pfns(WARM_MAX_PFN, 1 << 10)
            outside = probe[~t.contains(probe)]
            t.mark(outside)
            t.unmark(outside)
            t.memory()
            type(t).estimate(starts, ends, WARM_MAX_PFN)


def in_asv_forkserver() -> bool:
    """True in asv's fork server (``benchmark.py run_server DIR SOCKET``),
    whose imports every benchmark process inherits."""
    return len(sys.argv) > 1 and sys.argv[1] == "run_server"


if in_asv_forkserver():
    warm_up()


__all__ = ["SEED", "TRACKER_NAMES", "TIME_HOSTS", "TRACK_HOSTS", "TIME_SHAPES",
           "TRACK_SHAPES", "SET_SHAPES", "HOST_SIZES", "load_set", "warm_sets",
           "build_tracker", "check_build_time", "timed_plan", "planned", "random_pfns",
           "drain", "warm_up"]
