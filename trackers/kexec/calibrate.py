"""calibrate: measure this machine's streaming read, streaming write and
dependent-load latency, and store them as the ``this-machine`` platform.

Method (all measured, each the median of --repeat runs after one warm-up):

* streaming read   -- sum of a --mib buffer of uint64 (numba, one core), and
                      the same split over every CPU (numba prange);
* streaming write  -- memset of the buffer (ndarray.fill(0): glibc uses
                      non-temporal stores at this size, the closest stand-in
                      for the kernel's MOVDIR64B clear, which this CPU lacks),
                      one core and all cores;
* load latency     -- a pointer chase around one random cycle (Sattolo) of
                      --chase-mib, one dependent load per step, so each step
                      misses the caches (and mostly the TLB: 4 KiB pages).

The figures are written as JSON atomically (tempfile + os.replace) to --out
or $XDG_CACHE_HOME/tdx-trackers/calibration.json; every run's per-repeat
samples are kept so the spread can be checked.  The file is reproducible
within ~20 % run to run on a quiet machine; a shared machine adds noise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform as pyplatform
import statistics
import time

import numpy as np
from numba import njit, prange

from ..output import write_text_atomic
from .platform import calibration_path, platform_from_calibration

HELP = "measure this machine's read/write bandwidth and load latency (the this-machine platform)"


@njit(cache=True)
def _read_sum(a):
    s = np.uint64(0)
    for i in range(a.size):
        s += a[i]
    return s


@njit(cache=True, parallel=True)
def _read_sum_parallel(a, nthreads):
    chunk = (a.size + nthreads - 1) // nthreads
    out = np.zeros(nthreads, np.uint64)
    for t in prange(nthreads):
        lo = t * chunk
        hi = min(a.size, lo + chunk)
        s = np.uint64(0)
        for i in range(lo, hi):
            s += a[i]
        out[t] = s
    return out.sum()


@njit(cache=True, parallel=True)
def _write_parallel(a, nthreads):
    chunk = (a.size + nthreads - 1) // nthreads
    for t in prange(nthreads):
        lo = t * chunk
        hi = min(a.size, lo + chunk)
        a[lo:hi] = 0


@njit(cache=True)
def _sattolo_cycle(n, seed):
    """next[] forming ONE cycle through all n slots (Sattolo's algorithm)."""
    np.random.seed(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.random.randint(0, i)          # j < i: a single cycle
        perm[i], perm[j] = perm[j], perm[i]
    nxt = np.empty(n, np.int64)
    for i in range(n):
        nxt[perm[i]] = perm[(i + 1) % n]
    return nxt


@njit(cache=True)
def _chase(nxt, steps):
    p = 0
    for _ in range(steps):
        p = nxt[p]
    return p


def _median_rate(fn, nbytes, repeat):
    """(median bytes/s, samples) over ``repeat`` timed calls after a warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(nbytes / (time.perf_counter() - t0))
    return statistics.median(samples), samples


def measure(mib: int = 256, chase_mib: int = 128, chase_steps: int = 1 << 21,
            repeat: int = 5, cpus: int | None = None, seed: int = 0) -> dict:
    """Run the calibration; return the JSON document (see module doc)."""
    if mib < 16 or chase_mib < 16:
        raise ValueError(f"buffers must be >= 16 MiB to leave the caches; got --mib {mib}, "
                         f"--chase-mib {chase_mib}")
    if repeat < 1:
        raise ValueError(f"--repeat {repeat} must be >= 1")
    cpus = cpus or os.cpu_count() or 1
    nbytes = mib << 20
    a = np.ones(nbytes // 8, np.uint64)              # touched: pages committed
    read_core, s_rc = _median_rate(lambda: _read_sum(a), nbytes, repeat)
    read_all, s_ra = _median_rate(lambda: _read_sum_parallel(a, cpus), nbytes, repeat)
    write_core, s_wc = _median_rate(lambda: a.fill(0), nbytes, repeat)
    write_all, s_wa = _median_rate(lambda: _write_parallel(a, cpus), nbytes, repeat)
    del a
    nxt = _sattolo_cycle((chase_mib << 20) // 8, seed)
    lat_samples = []
    _chase(nxt, chase_steps)
    for _ in range(repeat):
        t0 = time.perf_counter()
        _chase(nxt, chase_steps)
        lat_samples.append((time.perf_counter() - t0) / chase_steps)
    return {
        "name": "this-machine",
        "kind": "measured",
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": pyplatform.node(),
        "cpu": _cpu_model(),
        "cpus_total": cpus,
        "repeat": repeat,
        "method": {"buffer_mib": mib, "chase_mib": chase_mib, "chase_steps": chase_steps,
                   "read": "numba sum of uint64", "write": "ndarray.fill(0) (memset)",
                   "latency": "pointer chase around one Sattolo cycle"},
        "figures": {
            "read_bps_core": read_core, "read_bps_all": read_all,
            "write_bps_core": write_core, "write_bps_all": write_all,
            "load_latency_s": statistics.median(lat_samples),
        },
        # best of the repeats: the least disturbed by other tenants
        "best": {
            "read_bps_core": max(s_rc), "read_bps_all": max(s_ra),
            "write_bps_core": max(s_wc), "write_bps_all": max(s_wa),
            "load_latency_s": min(lat_samples),
        },
        "load_average": _loadavg(),
        "samples": {
            "read_bps_core": s_rc, "read_bps_all": s_ra,
            "write_bps_core": s_wc, "write_bps_all": s_wa,
            "load_latency_s": lat_samples,
        },
    }


def _loadavg() -> list[float]:
    """1/5/15-minute load averages during the run: a busy machine skews figures."""
    try:
        return [float(x) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or "unknown"


def add_arguments(p):
    p.add_argument("--out", default=None,
                   help=f"JSON file to write (default {calibration_path()}, "
                        "or $TRACKERS_CALIBRATION)")
    p.add_argument("--mib", type=int, default=256, help="bandwidth buffer, MiB (default 256)")
    p.add_argument("--chase-mib", type=int, default=128,
                   help="pointer-chase buffer, MiB (default 128)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs; median kept (default 5)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs for all-core figures")


def calibrate(path=None, **measure_kw) -> tuple[dict, str]:
    """Measure this machine and store it (atomically) where this-machine reads it."""
    doc = measure(**measure_kw)
    path = path or calibration_path()
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return doc, str(path)


def run(args) -> int:
    doc, path = calibrate(args.out, mib=args.mib, chase_mib=args.chase_mib,
                          repeat=args.repeat, cpus=args.cpus)
    print(platform_from_calibration(doc).describe())
    print(f"[measured] written to {path}")
    return 0
