"""How bench-core times: samples and their spread, each measurement a Dask task.

Every measured time is ``repeat`` samples reported as median, min and max
(:data:`STATS`, :func:`spread`).  Every measurement runs as a task
(:func:`run_outcomes`, trackers/cluster.py), its worker's peak RSS reset
first, its failure a row instead of a lost run (:func:`outcome`); each task
generates the reference set where it runs (:func:`reference`).
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

from ..base import NotRepresentable
from ..cluster import Unit, WorkerLost, reset_peak_rss, run_units
from ..sets import reference_set

#: each measured time is reported as its median and its spread over --repeat runs
STATS = ("median", "min", "max")


def timed(fn, repeat) -> list[float]:
    """Seconds of ``repeat`` calls of fn, one sample per call."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def spread(name: str, samples: list[float]) -> dict:
    """{name_median, name_min, name_max} of the samples."""
    return {f"{name}_median": statistics.median(samples), f"{name}_min": min(samples),
            f"{name}_max": max(samples)}


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
    order.  A worker that dies (out of memory, killed) is an ("error", why)
    outcome, ``why`` naming the unit (its label, else ``desc``); a cluster
    left without a timing worker raises WorkerLost (trackers/cluster.py)."""
    wrapped = [Unit(outcome, (u.fn, *u.args), timed=u.timed, label=u.label or desc)
               for u in units]
    if client is None:
        return [outcome(u.fn, *u.args) for u in units]
    return [("error", r.why if isinstance(r, WorkerLost) else
             f"the measuring worker died: {type(r).__name__}: {r}")
            if isinstance(r, BaseException) else r
            for r in run_units(client, wrapped, desc=desc, progress=progress,
                               errors="return")]


@functools.lru_cache(maxsize=1)
def reference(max_pfn: int, seed: int):
    """The reference set, generated once per worker process (deterministic,
    so every worker holds the same set; nothing crosses the network)."""
    return reference_set(max_pfn, seed)
