"""calibrate: measure this machine's streaming read, streaming write and
dependent-load latency, and store them as the ``this-machine`` platform.

Method (all measured, each the median of --repeat runs after one warm-up):

* streaming read   -- sum of a --mib buffer of uint64 (numba, one core), and
                      the same kernel on one contiguous slice per CPU (numba
                      prange over --cpus slices, on --cpus numba threads);
* streaming write  -- memset of the buffer (ndarray.fill(0): glibc uses
                      non-temporal stores at this size, the closest stand-in
                      for the kernel's MOVDIR64B clear, which this CPU lacks),
                      one core, and one slice per CPU (slice assignment);
* load latency     -- a pointer chase around one random cycle (Sattolo) of
                      --chase-mib, one dependent load per step, so each step
                      misses the caches (and mostly the TLB: 4 KiB pages).

The buffer is first written by the threads that later read and write it,
slice by slice (first touch: on a NUMA machine each slice's pages then sit on
its thread's node, as the kernel's per-CPU clear would find them).

The all-core read once ran at a tenth of the one-core read (2.6-3.9 GB/s
against 30-37 GB/s): each thread summed ``a[i] for i in range(lo, hi)``, and
numba cannot prove such an ``i`` non-negative, so every load carried the
negative-index wrap-around check and LLVM left the loop scalar (~5 GB/s per
thread, an instruction bound, not a memory one).  Each thread now runs the
one-core kernel on its slice, indexed from 0, as the parallel write
(``a[lo:hi] = 0``) always did: 28-34 GB/s all-core on the same 2-CPU machine,
where one core reaches 28-30 GB/s.  tests/test_kexec_platform.py checks that
the compiled per-thread read loads the buffer in vectors.

Every figure is stored as measured -- its median, min and max over the
repeats and every sample -- and printed with its spread; nothing is
substituted.  Other tenants skew the figures (3x on a shared machine), so the
run records the machine's load -- the 1-minute load average before and after,
and the share of CPU time other tasks (and the hypervisor: steal) took during
the run, from /proc/stat -- and warns on stderr when the machine was busy,
when a figure's repeats spread by more than SPREAD_WARN, and when an all-core
figure is below its one-core one.

The figures are written as JSON atomically (tempfile + os.replace) to --out
or $XDG_CACHE_HOME/tdx-trackers/calibration.json.  The file is reproducible
within ~20 % run to run on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as pyplatform
import resource
import statistics
import sys
import time

import numba
import numpy as np
from numba import njit, prange

from ..options import int_option, output_file
from ..output import write_text_atomic
from .platform import calibration_path

HELP = "measure this machine's read/write bandwidth and load latency (the this-machine platform)"

#: the figures, in the order they are measured and printed: key -> label, unit
FIGURES = {
    "read_bps_core": ("read, one core", "GB/s"),
    "read_bps_all": ("read, all cores", "GB/s"),
    "write_bps_core": ("write, one core", "GB/s"),
    "write_bps_all": ("write, all cores", "GB/s"),
    "load_latency_s": ("load latency", "ns"),
}

#: other tasks took at least this share of the machine's CPU time during the run
BUSY_CPU_SHARE = 0.10
#: without /proc/stat: a 1-minute load average before the run at least this high
BUSY_LOADAVG = 0.5
#: a figure whose repeats spread (max - min) by more than this share of its median
SPREAD_WARN = 0.25


@njit(cache=True)
def _read_sum(a):
    s = np.uint64(0)
    for i in range(a.size):
        s += a[i]
    return s


@njit(cache=True, parallel=True)
def _read_sum_parallel(a, sums):
    """sums[t] = _read_sum of the t-th of sums.size contiguous slices of a, one
    slice per prange iteration: the one-core kernel, indexed from 0, so its
    loop vectorizes (see module doc)."""
    chunk = (a.size + sums.size - 1) // sums.size
    for t in prange(sums.size):
        lo = t * chunk
        hi = min(a.size, lo + chunk)
        sums[t] = _read_sum(a[lo:hi])


@njit(cache=True, parallel=True)
def _write_parallel(a, nthreads, value):
    """a[:] = value in nthreads contiguous slices, one per prange iteration."""
    chunk = (a.size + nthreads - 1) // nthreads
    for t in prange(nthreads):
        lo = t * chunk
        hi = min(a.size, lo + chunk)
        a[lo:hi] = value


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


def _samples(fn, repeat, per_call):
    """``repeat`` samples of per_call(seconds) over timed calls, after a warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(per_call(time.perf_counter() - t0))
    return samples


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, steal) clock ticks of the whole machine since boot, from /proc/stat;
    None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


def load_snapshot() -> dict:
    """What the machine is doing now: load averages, machine CPU ticks, this
    process's CPU seconds (every thread), wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"loadavg": _loadavg(), "jiffies": _cpu_jiffies(),
            "self_cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.monotonic()}


def machine_load(before: dict, after: dict, cpus_online: int) -> dict:
    """The load other tasks put on the machine between two snapshots.

    ``others_cpu_share``: CPU time other tasks and the hypervisor (steal) used,
    as a share of all the machine's CPU time over the run (None without
    /proc/stat); ``busy``: whether that share, or else the 1-minute load
    average before the run, says the figures were measured on a busy machine.
    """
    load = {"loadavg_before": before["loadavg"], "loadavg_after": after["loadavg"],
            "others_cpu_share": None, "steal_share": None}
    wall = after["wall_s"] - before["wall_s"]
    if before["jiffies"] and after["jiffies"] and wall > 0:
        hz = os.sysconf("SC_CLK_TCK")
        capacity = wall * cpus_online
        busy_s = (after["jiffies"][0] - before["jiffies"][0]) / hz
        steal_s = (after["jiffies"][1] - before["jiffies"][1]) / hz
        others = busy_s - (after["self_cpu_s"] - before["self_cpu_s"])
        load["others_cpu_share"] = min(max(others / capacity, 0.0), 1.0)
        load["steal_share"] = min(max(steal_s / capacity, 0.0), 1.0)
        load["busy"] = load["others_cpu_share"] >= BUSY_CPU_SHARE
    else:
        load["busy"] = bool(before["loadavg"]) and before["loadavg"][0] >= BUSY_LOADAVG
    return load


def _spread(samples) -> dict:
    return {"min": min(samples), "max": max(samples)}


def max_cpus() -> int:
    """The most CPUs an all-core figure can use: numba's thread pool size
    (NUMBA_NUM_THREADS, by default this machine's CPUs)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def measure(mib: int = 256, chase_mib: int = 128, chase_steps: int = 1 << 21,
            repeat: int = 5, cpus: int | None = None, seed: int = 0) -> dict:
    """Run the calibration; return the JSON document (see module doc)."""
    if mib < 16 or chase_mib < 16:
        raise ValueError(f"buffers must be >= 16 MiB to leave the caches; got --mib {mib}, "
                         f"--chase-mib {chase_mib}")
    if repeat < 1:
        raise ValueError(f"--repeat {repeat} must be >= 1")
    cpus = max_cpus() if cpus is None else cpus
    if not 1 <= cpus <= max_cpus():
        raise ValueError(f"--cpus {cpus} must be in [1, {max_cpus()}] (numba's threads)")
    nbytes = mib << 20
    rate = lambda sec: nbytes / sec                                      # noqa: E731
    before = load_snapshot()
    threads = numba.get_num_threads()
    numba.set_num_threads(cpus)
    try:
        a = np.empty(nbytes // 8, np.uint64)
        _write_parallel(a, cpus, 1)                  # first touch, slice by slice
        sums = np.zeros(cpus, np.uint64)
        samples = {"read_bps_core": _samples(lambda: _read_sum(a), repeat, rate),
                   "read_bps_all": _samples(lambda: _read_sum_parallel(a, sums), repeat, rate),
                   "write_bps_core": _samples(lambda: a.fill(0), repeat, rate),
                   "write_bps_all": _samples(lambda: _write_parallel(a, cpus, 0), repeat, rate)}
    finally:
        numba.set_num_threads(threads)
    del a
    nxt = _sattolo_cycle((chase_mib << 20) // 8, seed)
    samples["load_latency_s"] = _samples(lambda: _chase(nxt, chase_steps), repeat,
                                         lambda sec: sec / chase_steps)
    del nxt
    after = load_snapshot()
    load = machine_load(before, after, os.cpu_count() or 1)
    figures = {k: statistics.median(samples[k]) for k in FIGURES}
    return {
        "name": "this-machine",
        "kind": "measured",
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": pyplatform.node(),
        "cpu": _cpu_model(),
        "cpus_total": cpus,
        "repeat": repeat,
        "method": {"buffer_mib": mib, "chase_mib": chase_mib, "chase_steps": chase_steps,
                   "read": "numba sum of uint64, one slice per thread",
                   "write": "ndarray.fill(0) (memset) one core; slice assignment per thread",
                   "latency": "pointer chase around one Sattolo cycle"},
        # the median of the repeats
        "figures": figures,
        # the spread of the repeats: min and max of every figure
        "spread": {k: _spread(v) for k, v in samples.items()},
        # best of the repeats: the least disturbed by other tenants
        "best": {k: (min if k == "load_latency_s" else max)(v) for k, v in samples.items()},
        "load": load,
        "warnings": warnings_for(figures, samples, load),
        "samples": samples,
    }


def warnings_for(figures: dict, samples: dict, load: dict) -> list[str]:
    """What makes these figures doubtful, one sentence each (empty: none)."""
    out = []
    if load.get("busy"):
        if load.get("others_cpu_share") is not None:
            what = (f"other tasks used {load['others_cpu_share']:.0%} of its CPU time during "
                    f"the run")
        else:
            what = f"its 1-minute load average was {load['loadavg_before'][0]:.2f} before the run"
        out.append(f"the machine was busy ({what}): the figures may be off by several times; "
                   f"calibrate again on a quiet machine")
    for key, (label, _) in FIGURES.items():
        lo, hi, med = min(samples[key]), max(samples[key]), figures[key]
        if med > 0 and (hi - lo) / med > SPREAD_WARN:
            out.append(f"{label} varied by {(hi - lo) / med:.0%} of its median over "
                       f"{len(samples[key])} repeats (over {SPREAD_WARN:.0%}): the machine "
                       f"was not steady")
    for what in ("read", "write"):
        core, every = figures[f"{what}_bps_core"], figures[f"{what}_bps_all"]
        if every < core:
            out.append(f"all-core {what} ({every / 1e9:.1f} GB/s) measured below one-core "
                       f"({core / 1e9:.1f} GB/s): other tasks held CPUs during the run")
    return out


def format_figures(doc: dict) -> str:
    """The measurement as printed: every figure with its min-max, and the load."""
    lines = [f"[measured] this machine ({doc['cpu']}), median (min\u2013max) of "
             f"{doc['repeat']} runs; all cores = {doc['cpus_total']} CPUs:"]
    for key, (label, unit) in FIGURES.items():
        scale = 1e9
        med, lo, hi = (doc["figures"][key], doc["spread"][key]["min"],
                       doc["spread"][key]["max"])
        if unit == "GB/s":
            med, lo, hi = med / scale, lo / scale, hi / scale
            lines.append(f"  {label:17s} {med:6.1f} {unit} ({lo:.1f}\u2013{hi:.1f})")
        else:
            med, lo, hi = med * scale, lo * scale, hi * scale
            lines.append(f"  {label:17s} {med:6.0f} {unit}   ({lo:.0f}\u2013{hi:.0f})")
    load = doc["load"]
    text = "  machine load: 1-minute load average " + " -> ".join(
        f"{x[0]:.2f}" for x in (load["loadavg_before"], load["loadavg_after"]) if x)
    if load["others_cpu_share"] is not None:
        text += (f"; other tasks used {load['others_cpu_share']:.0%} of the CPU time during "
                 f"the run (steal {load['steal_share']:.0%})")
    lines.append(text)
    return "\n".join(lines)


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


def _ram_mib() -> int:
    """This machine's physical memory, MiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20


def add_arguments(p):
    ram = _ram_mib()
    p.add_argument("--out", type=output_file, default=None,
                   help=f"JSON file to write (default {calibration_path()}, "
                        "or $TRACKERS_CALIBRATION)")
    p.add_argument("--mib", type=int_option(16, ram // 2, why="out of the caches, at most "
                                            "half this machine's RAM"),
                   default=256, help="bandwidth buffer, MiB (default 256)")
    p.add_argument("--chase-mib", type=int_option(16, ram // 4, why="out of the caches, at "
                                                  "most a quarter of this machine's RAM: "
                                                  "the chase builds two arrays"),
                   default=128, help="pointer-chase buffer, MiB (default 128)")
    p.add_argument("--repeat", type=int_option(1), default=5,
                   help="timed runs; median and min-max kept (default 5)")
    p.add_argument("--cpus", type=int_option(1, max_cpus(), why="numba's threads"),
                   default=None, help=f"CPUs for all-core figures (default {max_cpus()})")


def calibrate(path=None, **measure_kw) -> tuple[dict, str]:
    """Measure this machine and store it (atomically) where this-machine reads it."""
    doc = measure(**measure_kw)
    path = path or calibration_path()
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return doc, str(path)


def print_warnings(doc: dict, prog: str = "tdx-trackers calibrate") -> None:
    """The calibration's warnings on stderr, one line each."""
    for w in doc["warnings"]:
        print(f"{prog}: warning: {w}", file=sys.stderr)


def run(args) -> int:
    if args.out is None:                 # the default path is checked like --out
        try:
            output_file(str(calibration_path()))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"the calibration file (set --out or $TRACKERS_CALIBRATION): "
                             f"{exc}") from None
    doc, path = calibrate(args.out, mib=args.mib, chase_mib=args.chase_mib,
                          repeat=args.repeat, cpus=args.cpus)
    print(format_figures(doc))
    print(f"[measured] written to {path}")
    print_warnings(doc)
    return 0
