"""calibrate: measure this machine for the ``this-machine`` platform -- its
streaming read and write, its clear of TDX memory (MOVDIR64B, or the
non-temporal-store stand-in where the CPU has none), its dependent-load
latency, and the scan model's CPU cost per entry tested, per run emitted and
per lookup.

Method (all measured, each the median of --repeat runs after one warm-up):

* streaming read   -- sum of a --mib buffer of uint64 (numba, one core), and
                      the same kernel on one contiguous slice per CPU (numba
                      prange over --cpus slices, on --cpus numba threads);
* streaming write  -- memset of the buffer (ndarray.fill(0)), one core, and
                      one slice per CPU (slice assignment);
* clear            -- the buffer cleared as tdx_quirk_reset_paddr() clears:
                      64-byte stores, then one MFENCE per target -- a 4 KiB
                      target is one page (tdx_quirk_reset_page(): 64 MOVDIR64B
                      and mb()), a 2 MiB target one call over 2 MiB -- one core
                      and one slice per CPU (threads).  The stores are
                      MOVDIR64B where the CPU has it (CPUID.7.0:ECX[28] and
                      /proc/cpuinfo's movdir64b), and 16-byte non-temporal
                      stores (_mm_stream_si128) otherwise: a stand-in, and the
                      JSON, this output and the platform's sources say so.
                      trackers/linux/clear.c, compiled on first use; where it
                      cannot be (no C compiler) the clear is not timed and the
                      platform clears at the streaming-write rate;
* load latency     -- a pointer chase around one random cycle (Sattolo) of
                      --chase-mib, one dependent load per step, so each step
                      misses the caches (and mostly the TLB: 4 KiB pages);
* scan work        -- per entry, per run, per lookup and per call, for every
                      structure the report times: pairs of structures
                      differing in one term, their whole scans timed, the
                      cost the difference per item; a call is the scan of a
                      one-page structure (trackers/kexec/scan_costs.py says
                      how): through the kernel's own iterators where the
                      kernel code is built (bitmap@kernel's find_bit,
                      xarray@kernel's xas_for_each, maple@kernel's
                      mas_for_each, ...; a lookup is xa_load() in
                      kvm@kernel's guest_memfd XArray) and the C layouts of
                      struct pages and page tables, else through the emulations; the
                      engine is recorded with each structure.  Each figure is
                      the median over the tracker structures, and each
                      structure's own is kept (``scan_costs``), as is the
                      page tables' cost per scattered table page (under
                      ``load_latency_s``).

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
repeats, every sample and its engine -- and printed with its spread and
engine; nothing is substituted.  Other tenants skew the figures (3x on a
shared machine), so the run records the machine's load -- the 1-minute load
average before and after, and the share of CPU time other tasks (and the
hypervisor: steal) took during the run, from /proc/stat -- and warns on
stderr when the machine was busy, when a figure's repeats spread by more than
SPREAD_WARN, and when an all-core figure is below its one-core one.

The figures are written as JSON atomically (tempfile + os.replace) to --out
or $XDG_CACHE_HOME/tdx-trackers/calibration.json.  The file is reproducible
within ~20 % run to run on a quiet machine (the scan costs, differences of
short scans, spread more).  The default run takes 5-8 s on a shared 2-CPU
machine (4.9 s of CPU) and 8-11 s at a load of 3-4 (6.6 s of CPU, as before
the per-structure scan costs, within the noise); the scan costs of every
structure take 0.6 s of CPU of it after the builds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as pyplatform
import statistics
import sys
import time

import numba
import numpy as np
from numba import njit, prange

from ..linux import clear as clear_c
from ..machine_load import load_snapshot, machine_load
from ..options import MAX_RUNS, int_option, output_file
from ..output import write_text_atomic
from . import scan_costs
from .platform import SCAN_COST_FIGURES, calibration_path

HELP = ("measure this machine's read/write bandwidth, clear rate (MOVDIR64B or its "
        "stand-in), load latency and scan cost per entry, run, lookup and call "
        "(the this-machine platform)")

#: the figures, in the order they are measured and printed: key -> label, unit
FIGURES = {
    "read_bps_core": ("read, one core", "GB/s"),
    "read_bps_all": ("read, all cores", "GB/s"),
    "write_bps_core": ("write, one core", "GB/s"),
    "write_bps_all": ("write, all cores", "GB/s"),
    "clear_4k_bps_core": ("clear 4 KiB, one core", "GB/s"),
    "clear_4k_bps_all": ("clear 4 KiB, all cores", "GB/s"),
    "clear_2m_bps_core": ("clear 2 MiB, one core", "GB/s"),
    "clear_2m_bps_all": ("clear 2 MiB, all cores", "GB/s"),
    "load_latency_s": ("load latency", "ns"),
    **{key: (f"scan, per {cost.removesuffix('_s')}", "µs" if cost == "call_s" else "ns")
       for cost, key in SCAN_COST_FIGURES.items()},
}
#: the clear figures: key -> (target, all cores?)
CLEAR_FIGURES = {f"clear_{t}_bps_{w}": (t, w == "all") for t in clear_c.TARGETS
                 for w in ("core", "all")}
#: the engines of the bandwidth and latency figures (the clear's and the scan
#: costs' are found at run time)
ENGINES = {
    "read_bps_core": "numba: sum of uint64, one core",
    "read_bps_all": "numba: sum of uint64, one slice per thread",
    "write_bps_core": "memset (ndarray.fill)",
    "write_bps_all": "numba: slice assignment, one slice per thread",
    "load_latency_s": "numba: pointer chase around one Sattolo cycle",
}

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


def _spread(samples) -> dict:
    return {"min": min(samples), "max": max(samples)}


def max_cpus() -> int:
    """The most CPUs an all-core figure can use: numba's thread pool size
    (NUMBA_NUM_THREADS, by default this machine's CPUs)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def measure(mib: int = 256, chase_mib: int = 128, chase_steps: int = 1 << 20,
            repeat: int = 5, cpus: int | None = None, seed: int = 0,
            kernel_code: bool = True, movdir64b: clear_c.Movdir64b | None = None) -> dict:
    """Run the calibration; return the JSON document (see module doc).
    ``kernel_code=False`` times the scan costs on the emulations even where
    the kernel code is built; ``movdir64b`` replaces the detection (tests:
    the clear then runs on the engine it implies, never an instruction the
    CPU lacks, which clear.c refuses)."""
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
    # the scan costs first: for a second after the clear's 256 MiB of
    # non-temporal stores (and, briefly, after the chase) a scan here ran at
    # half speed -- 6-7 ns per xa_node slot instead of 3.6, other tasks idle
    scan = scan_costs.measure_scan_costs(repeat, kernel_code)
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
    clear_samples, clear = measure_clear(a, cpus, repeat, movdir64b)
    samples.update(clear_samples)
    del a
    nxt = _sattolo_cycle((chase_mib << 20) // 8, seed)
    samples["load_latency_s"] = _samples(lambda: _chase(nxt, chase_steps), repeat,
                                         lambda sec: sec / chase_steps)
    del nxt
    for cost, key in SCAN_COST_FIGURES.items():
        samples[key] = scan["samples"][cost]
    after = load_snapshot()
    load = machine_load(before, after, os.cpu_count() or 1)
    samples = {k: samples[k] for k in FIGURES if k in samples}       # FIGURES order
    figures = {k: statistics.median(v) for k, v in samples.items()}
    engines = {**ENGINES, **{k: clear["engine"] for k in clear_samples},
               **{key: scan["engines"][cost] for cost, key in SCAN_COST_FIGURES.items()}}
    engines = {k: engines[k] for k in samples}
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
                   "clear": "64-byte stores then one MFENCE per target (4k: a page, 2m: "
                            "2 MiB), one core; one slice per thread (trackers/linux/clear.c)",
                   "latency": "pointer chase around one Sattolo cycle",
                   "scan_costs": scan["method"]},
        # the median of the repeats
        "figures": figures,
        # the spread of the repeats: min and max of every figure
        "spread": {k: _spread(v) for k, v in samples.items()},
        # best of the repeats: the least disturbed by other tenants
        "best": {k: (min if _is_cost(k) else max)(v) for k, v in samples.items()},
        # what produced each figure: the code that ran
        "engines": engines,
        # the clear: which engine and why (MOVDIR64B detection), or why not timed
        "clear": clear,
        # the scan costs per structure, by the figure each refines: each one's
        # samples (a scan figure is the median over the trackers'); under
        # load_latency_s, a structure's own cost per dependent load
        "scan_costs": {SCAN_COST_FIGURES.get(c, c): v for c, v in scan["structures"].items()},
        # what ran each structure's scans
        "scan_engines": scan["structure_engines"],
        "load": load,
        "warnings": warnings_for(figures, samples, load, clear),
        "samples": samples,
    }


def _is_cost(key: str) -> bool:
    """A figure in seconds (lower is better), not a rate."""
    return key.endswith("_s")


def measure_clear(a: np.ndarray, cpus: int, repeat: int,
                  movdir64b: clear_c.Movdir64b | None = None) -> tuple[dict, dict]:
    """The clear figures over buffer ``a`` (``CLEAR_FIGURES``: rates per
    repeat) and the record of how: ``engine`` (MOVDIR64B, or the stand-in),
    ``stand_in``, the MOVDIR64B detection, the bytes cleared; no figures and
    ``engine`` None, with the ``reason``, where clear.c cannot be built."""
    support = clear_c.detect() if movdir64b is None else movdir64b
    record = {"movdir64b": {"cpuid": support.cpuid, "cpuinfo": support.cpuinfo,
                            "present": support.present},
              "detection": support.describe(), "targets": dict(clear_c.TARGETS)}
    try:
        clear_c.clear_library()
    except clear_c.ClearCodeUnavailable as exc:
        return {}, {**record, "engine": None, "stand_in": None,
                    "reason": f"not timed: {exc}"}
    engine = clear_c.engine_for(support)
    samples, cleared = {}, {}
    for key, (target, all_cores) in CLEAR_FIGURES.items():
        k = cpus if all_cores else 1
        buf = clear_c.aligned_bytes(a, clear_c.TARGETS[target] * k)
        samples[key] = clear_c.time_clear(buf, target, engine, support, cpus=k, repeat=repeat)
        cleared[key] = int(buf.size)
    return samples, {**record, "engine": engine, "stand_in": engine != clear_c.ENGINE_MOVDIR64B,
                     "bytes": cleared, "reason": ""}


def warnings_for(figures: dict, samples: dict, load: dict,
                 clear: dict | None = None) -> list[str]:
    """What makes these figures doubtful, one sentence each (empty: none)."""
    out = []
    if clear and clear.get("engine") is None and clear.get("reason"):
        out.append(f"the clear was {clear['reason']}: the platform clears at the streaming-"
                   f"write rate")
    if load.get("busy"):
        if load.get("others_cpu_share") is not None:
            what = (f"other tasks used {load['others_cpu_share']:.0%} of its CPU time during "
                    f"the run")
        else:
            what = f"its 1-minute load average was {load['loadavg_before'][0]:.2f} before the run"
        out.append(f"the machine was busy ({what}): the figures may be off by several times; "
                   f"calibrate again on a quiet machine")
    for key, (label, _) in FIGURES.items():
        if key not in figures:
            continue
        lo, hi, med = min(samples[key]), max(samples[key]), figures[key]
        if med <= 0:
            out.append(f"{label} measured {med * 1e9:.2f} ns, not a cost: other tasks "
                       f"disturbed the scans; the platform keeps the ASSUMED scan costs")
        elif (hi - lo) / med > SPREAD_WARN:
            out.append(f"{label} varied by {(hi - lo) / med:.0%} of its median over "
                       f"{len(samples[key])} repeats (over {SPREAD_WARN:.0%}): the machine "
                       f"was not steady")
    for what, label in (("read", "read"), ("write", "write"), ("clear_4k", "clear 4 KiB"),
                        ("clear_2m", "clear 2 MiB")):
        if f"{what}_bps_core" not in figures:
            continue
        core, every = figures[f"{what}_bps_core"], figures[f"{what}_bps_all"]
        if every < core:
            out.append(f"all-core {label} ({every / 1e9:.1f} GB/s) measured below one-core "
                       f"({core / 1e9:.1f} GB/s): other tasks held CPUs during the run")
    return out


def _number(value: float, unit: str) -> str:
    """A figure as printed: GB/s to 0.1, ns and µs to 0.1 below 10, else to 1."""
    if unit == "GB/s":
        return f"{value / 1e9:.1f}"
    x = value * (1e6 if unit == "µs" else 1e9)
    return f"{x:.1f}" if abs(x) < 10 else f"{x:.0f}"


def _figure_line(label: str, unit: str, med: float, lo: float, hi: float,
                 engine: str = "") -> str:
    spread = f"({_number(lo, unit)}–{_number(hi, unit)})"
    return f"  {label:27s} {_number(med, unit):>6} {unit:4s} {spread:13s} {engine}".rstrip()


def format_figures(doc: dict) -> str:
    """The measurement as printed: every figure with its min-max and engine
    (a scan cost's structures below it), the clear's engine, and the load.
    A document of an older format prints the figures it has."""
    lines = [f"[measured] this machine ({doc['cpu']}), median (min\u2013max) of "
             f"{doc['repeat']} runs; all cores = {doc['cpus_total']} CPUs:"]
    engines = doc.get("engines", {})
    per_structure = doc.get("scan_costs", {})
    for key, (label, unit) in FIGURES.items():
        if key not in doc["figures"]:
            continue
        spread = doc["spread"][key]
        lines.append(_figure_line(label, unit, doc["figures"][key], spread["min"],
                                  spread["max"], engines.get(key, "")))
        for structure, samples in per_structure.get(key, {}).items():
            lines.append(_figure_line(f"  {structure}", unit, statistics.median(samples),
                                      min(samples), max(samples)))
    clear = doc.get("clear")
    if clear:
        if clear["engine"] is None:
            lines.append(f"  clear: {clear['reason']}")
        elif clear["stand_in"]:
            lines.append(f"  clear: {clear['detection']}: timed with {clear['engine']}")
        else:
            lines.append(f"  clear: {clear['detection']}: timed with MOVDIR64B, as the "
                         f"kernel clears")
    load = doc["load"]
    text = "  machine load: 1-minute load average " + " -> ".join(
        f"{x[0]:.2f}" for x in (load["loadavg_before"], load["loadavg_after"]) if x)
    if load["others_cpu_share"] is not None:
        text += (f"; other tasks used {load['others_cpu_share']:.0%} of the CPU time during "
                 f"the run (steal {load['steal_share']:.0%})")
    lines.append(text)
    return "\n".join(lines)


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
    p.add_argument("--repeat", type=int_option(1, MAX_RUNS, why="timed runs per figure"),
                   default=5,
                   help="timed runs; median and min-max kept (default 5)")
    p.add_argument("--cpus", type=int_option(1, max_cpus(), why="numba's threads"),
                   default=None, help=f"CPUs for all-core figures (default {max_cpus()})")
    p.add_argument("--no-kernel-code", action="store_true",
                   help="time the scan costs on the Python/numba emulations even where the "
                        "kernel's own code is built (tdx-trackers kernel-build)")


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
                          repeat=args.repeat, cpus=args.cpus,
                          kernel_code=not getattr(args, "no_kernel_code", False))
    print(format_figures(doc))
    print(f"[measured] written to {path}")
    print_warnings(doc)
    return 0
