"""Run the report's measurements and models; one DataFrame per table.

Every table is plain columns a notebook can reload from CSV.  Each row says
whether its figures are ``measured`` (timed on this machine; the ``engine``
column names what ran: the kernel's own code, a C layout of a structure the
kernel keeps, or a Python/numba emulation) or ``modeled`` (kernel struct
sizes and platform rates) in its column names or in a ``kind`` column.

Tables (file stem -> content):

* ``memory_vs_host``  tracker x host size: modeled bytes, bytes added to a
  running kernel, bits per private page, with a row per option that has a
  structure of its own (``Strategy.sized_structure``: pte-softbit's split
  tables, dpamt-refcount's array, gmem-maple's tree); the set is ``reference-1pct``
  (see :mod:`trackers.sets`) so 16 TiB fits this machine;
  plus, per sparse host (``host_kind="sparse"``: r7625-sparse, max_pfn 7.1 TiB
  over 770 GiB of RAM), the same shape at its RAM laid over its RAM blocks,
  beside a dense host of that RAM (:func:`sparse_host_rows`);
* ``bits_per_page``   tracker x private fraction at one host size, with the
  information bounds log2 C(N, n) and log2 C(N+1, 2r) per private page;
  in both, a tracker whose structure cannot hold the set at that host size
  (the IDA beyond 2^31 PFNs: ids <= INT_MAX) has NaN bytes, says why in
  ``not_representable`` (empty where the number stands) and gives the
  largest host it can hold in ``representable_max_pfns``;
* ``scan_time``       option x host size x platform: the measured kexec-time
  scan (median and min-max over the repeats) beside the modeled one, and
  ``model_ratio`` = modeled / measured on this machine.  ``engine`` says what
  was timed: a tracker's ``@kernel`` twin through the kernel's own iterators
  wherever one exists and the kernel's code is available; for ``pageflags``
  and ``pte-softbit`` the C layouts of struct pages and of the direct map's
  page tables (trackers/linux/pages.c; the struct-page array is measured up
  to the memory budget and scaled past it, ``scan_extrapolated``); the
  Python/numba emulation where no twin exists (``roaring``) or the kernel's
  code is unavailable.  The model's counts (``scan_entries``,
  ``scan_extents``, ``scan_lookups``, ``scanned_bytes``, ``scan_loads``)
  come from the structure built, ``model_note`` says where and why the model
  lies outside 2x of the measurement;
* ``kexec``           strategy x scenario x platform: trackers.kexec.evaluate;
  with --memmap the user's host is one more scenario, named after its file;
* ``sensitivity``     strategy x scenario x platform x CPUs at reset: the
  modeled downtime at the central values and its band over the ASSUMED
  parameter ranges, and the rank among the strategies that allow kexec
  (trackers.kexec.sensitivity.sweep, on the verdict's own measurements);
* ``tornado``         strategy x scenario x platform x ASSUMED parameter (at 1
  CPU and at all CPUs): the downtime with that parameter at each end;
* ``race``            strategy x kexec kind x conversion rate x SEAMCALL cost
  (low/base/high): P(>= 1 page missed per kexec) and the mean with 95 %
  intervals (trackers.kexec.race.race_band), in the attributes-first order
  (Isaku Yamahata's premise);
* ``race_order``      the same at central SEAMCALL costs in mainline's order,
  the zap before the attribute store (race.ZAP_FIRST);
* ``conversion_cost`` tracker x size (4 KiB, 2 MiB) x op (mark, unmark): the
  measured ns of one conversion, median and min-max of ``conversion_repeat``
  timings (trackers.bench.conversion_cost), for the tracker each hooked
  option would use: its ``@kernel`` twin where the kernel's code is built.

* ``sharded``         tracker x host size, only with --sharded or --sharded-csv:
  each tracker built in aligned PFN shards (trackers/shard.py) at 4-64 TiB,
  its measured populate and scan (sums over the shards: one CPU) and peak
  RSS beside its built bytes and estimate() of the same shards (modeled);
  from the report's own shard steps or bench-core's CSVs (trackers/report/sharded.py).

``plan(config)`` lists the steps so a progress bar knows the total work.
"""

from __future__ import annotations

import math
import os
import platform as platform_mod
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import bench
from ..base import NotRepresentable, memory_budget
from .. import extents as X
from ..cluster import Unit, connect, run_units
from ..extents import union
from ..kernel import PAGE_SIZE, STRUCT_PAGE_BYTES
from ..kexec import PLATFORMS, STRATEGIES, KexecHost, evaluate, from_workload
from ..kexec.race import ZAP_FIRST, race, race_band
from ..kexec.sensitivity import CPU_COUNTS, cpu_counts, measured_scans, sweep
from ..kexec.strategies import (ENGINE_PAGE_TABLES, ENGINE_STRUCT_PAGES, TRACKER_STRATEGIES,
                                engine_kind, strategy_for_tracker)
from ..registry import ALL_TRACKERS, KERNEL_SUFFIX, TRACKERS
from ..sets import fraction_set, host_label, host_set, reference_set
from ..shard import DEFAULT_SHARD_PFNS
from ..workloads import SCENARIOS, UserHost, scenario
from . import sharded
from .format import fmt_seconds


@dataclass
class ReportConfig:
    """What a report run covers; DEFAULT takes under 3 minutes on 2 cores (its
    scan figure builds the kernel-code twins up to 256 GiB), QUICK seconds."""

    sweep_hosts: list[int]                 # memory_vs_host sizes (PFNs)
    sweep_shape: str
    fraction_host: int                     # bits_per_page host (PFNs)
    fractions: list[float]
    scan_hosts: list[int]                  # scan_time sizes (PFNs), built and timed
    scan_shape: str
    scenarios: list[str]                   # trackers.workloads scenario names
    emulate_max_pfn: int                   # kexec: build trackers up to this host size
    conversion_rates: list[float]          # race: MiB converted private->shared per second
    race_kexecs: int = 20000               # simulated kexecs per rate (and kexec kind)
    scan_repeat: int = 5                   # timed scans per built structure
    scan_time_budget_s: float = 25.0       # build + scans a tracker may take at one size
    #: kexec: scenarios whose trackers are built and timed (within emulate_max_pfn);
    #: None: every scenario within emulate_max_pfn
    emulate_scenarios: list[str] | None = None
    #: sensitivity: CPU counts at reset (besides each platform's total)
    sensitivity_cpus: tuple[int, ...] = CPU_COUNTS
    #: conversion_cost: the reference set's host (PFNs), timings per figure,
    #: conversions per timing, and the longest one timing of per-call trackers runs
    conversion_pfns: int = 1 << 22
    conversion_repeat: int = 5
    conversions: int = 200
    conversion_seconds: float = 0.02
    #: scenarios also judged after every TD is destroyed (scenario NAME + NO_TD:
    #: PAMT and leaked pages private, no TD running), for the answer's "no TD" case
    idle_scenarios: list[str] = field(default_factory=lambda: ["1tib-4td"])
    seed: int = 0
    quick: bool = False
    trackers: list[str] = field(default_factory=lambda: list(TRACKERS))
    #: time the kernel's own code (@kernel twins) and the pages.c layouts where
    #: the library loads; False: the emulations only (--no-kernel-code, or no library)
    kernel_code: bool = True
    #: host memory one structure of the scan figure may take (and the largest
    #: struct-page array measured: past it the scan is scaled, and says so); every
    #: structure at 1 TiB fits (xarray@kernel 2.3 GiB, the split page tables 2.0 GiB)
    #: but kvm@kernel, which the time budget stops first.  None: the memory budget
    scan_budget_bytes: int | None = 3 << 30
    #: memory_vs_host: scenarios whose host's max_pfn far exceeds its RAM, one
    #: set of rows each (``host_kind="sparse"``, :func:`sparse_host_rows`)
    sparse_hosts: list[str] = field(default_factory=list)
    #: the user's own host (--memmap/--trace/--tds): one more kexec scenario,
    #: built and timed up to the strategies' build limit
    user_host: UserHost | None = None
    #: sharded points (--sharded, trackers/report/sharded.py): hosts (PFNs) whose
    #: trackers are built in shards of shard_pfns, sharded_repeat timed runs each
    sharded_pfns: list[int] = field(default_factory=list)
    shard_pfns: int = DEFAULT_SHARD_PFNS
    sharded_repeat: int = 1


def default_config(seed: int = 0) -> ReportConfig:
    """The default run, fitted to 3 minutes on 2 shared cores: the scan figure
    stops at 256 GiB (building the twins at 1 TiB took 1-3 minutes alone) and
    a tracker predicted over 10 s at one size keeps its model only; trackers
    are built and timed in the kexec table on iomem-64g only (every other
    scenario: estimate())."""
    return ReportConfig(
        sweep_hosts=[1 << 24, 1 << 26, 1 << 28, 1 << 30, 1 << 32],   # 64 GiB .. 16 TiB
        sweep_shape="reference-1pct",
        fraction_host=1 << 24,                                       # 64 GiB
        fractions=[0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9],
        scan_hosts=[1 << 20, 1 << 22, 1 << 24, 1 << 26],             # 4 GiB .. 256 GiB
        scan_shape="reference",
        scenarios=default_scenarios(),
        emulate_max_pfn=1 << 25,                                     # 128 GiB: iomem-64g
        emulate_scenarios=["iomem-64g"],
        conversion_rates=[1, 4, 16, 64, 256, 1024, 4096],
        scan_time_budget_s=10.0,
        seed=seed,
        sparse_hosts=["r7625-sparse"],
    )


def quick_config(seed: int = 0) -> ReportConfig:
    return ReportConfig(
        sweep_hosts=[1 << 18, 1 << 20, 1 << 22],                     # 1 GiB .. 16 GiB
        sweep_shape="reference-1pct",
        fraction_host=1 << 18,
        fractions=[0.01, 0.1, 0.5, 0.9],
        scan_hosts=[1 << 16, 1 << 18, 1 << 20],
        scan_shape="reference",
        scenarios=["tiny"],
        emulate_max_pfn=1 << 22,
        conversion_rates=[16, 1024],
        race_kexecs=2000,
        scan_time_budget_s=5.0,
        sensitivity_cpus=(1, 2, 8, 32),
        idle_scenarios=["tiny"],
        conversion_pfns=1 << 18,
        conversions=50,
        seed=seed,
        quick=True,
    )


def quick_covers() -> str:
    """What ``--quick`` covers, for the summary (from quick_config itself)."""
    q = quick_config()
    return (f"`--quick` covers hosts of {host_label(q.sweep_hosts[0])}-"
            f"{host_label(q.sweep_hosts[-1])} (memory) and {host_label(q.scan_hosts[0])}-"
            f"{host_label(q.scan_hosts[-1])} (scans), the scenario(s) "
            f"{', '.join(f'`{x}`' for x in q.scenarios)}, {q.race_kexecs:,} simulated kexecs "
            f"per race point at {', '.join(f'{r:g}' for r in q.conversion_rates)} MiB/s, "
            f"CPUs at reset {', '.join(map(str, q.sensitivity_cpus))} and all, and "
            f"conversions into a {host_label(q.conversion_pfns)} set: the same computation "
            f"on small inputs, seconds")


@dataclass
class Step:
    """One unit of the report: ``run()`` returns rows of ``table``.  ``timed``:
    it times something on this machine, so it runs alone on the timing worker
    (trackers/cluster.py); ``chain``: steps of one chain share state (the scan
    figure's cost of the previous size) and run in order in one task."""

    table: str
    label: str
    run: Callable[[], list[dict]]
    timed: bool = False
    chain: str = ""


# --------------------------------------------------------------------------
# information bounds

def log2_binomial(n: int, k: int) -> float:
    """log2 C(n, k) via lgamma (no scipy)."""
    if k < 0 or k > n:
        return math.nan
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def bound_bits_per_page(max_pfn: int, pages: int) -> float:
    """log2 C(N, n) / n: bits per page any structure needs for an arbitrary set."""
    return log2_binomial(max_pfn, pages) / pages if pages else math.nan


def run_bound_bits_per_page(max_pfn: int, pages: int, runs: int) -> float:
    """log2 C(N+1, 2r) / n: bits per page to name a set of ``runs`` runs (its 2r boundaries)."""
    return log2_binomial(max_pfn + 1, 2 * runs) / pages if pages else math.nan


# --------------------------------------------------------------------------
# steps

def _set_cache():
    cache = {}

    def get(kind, max_pfn, arg, seed):
        key = (kind, max_pfn, arg, seed)
        if key not in cache:
            cache.clear()               # hold one set at a time: 16 TiB sets are large
            if kind == "shape":
                cache[key] = host_set(arg, max_pfn, seed)
            else:
                cache[key] = fraction_set(arg, max_pfn, seed)
        return cache[key]
    return get


#: the not-representable columns of a row whose number stands
REPRESENTABLE = {"not_representable": "", "representable_max_pfns": math.nan}


def _memory_rows(cfg, max_pfn, get_set) -> list[dict]:
    starts, ends = get_set("shape", max_pfn, cfg.sweep_shape, cfg.seed)
    pages = int((ends - starts).sum())
    rows = []
    for name in cfg.trackers:
        cls = TRACKERS[name]
        nbytes, why = _estimate_or_why(cls, starts, ends, max_pfn)
        rows.append({
            "tracker": name, "option": cls.option, "host_pfns": max_pfn,
            "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
            "set": cfg.sweep_shape, "private_pages": pages, "extents": int(starts.size),
            "modeled_bytes": nbytes,
            "added_bytes": (strategy_for_tracker(name).added_bytes(nbytes) if not why
                            else math.nan),
            "bits_per_private_page": nbytes * 8 / pages,
            "kind": "modeled", **REPRESENTABLE, **why,
        })
    rows.extend(_strategy_rows(cfg, max_pfn, starts, ends, pages))
    return rows


def split_sparse_hosts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the dense sweep, the rows of hosts whose max_pfn far exceeds their RAM:
    ``host_kind == "sparse"``, collect.sparse_host_rows)."""
    if "host_kind" not in df:
        return df, df.iloc[:0]
    mask = df["host_kind"].astype(str) == "sparse"
    return df[~mask], df[mask]


def sparse_host_rows(cfg, name: str) -> list[dict]:
    """memory_vs_host rows for scenario ``name``'s host, whose max_pfn far
    exceeds its RAM (``host_kind="sparse"``).

    The sweep's set shape at the host's RAM: the set over [0, n) for n = the
    host's RAM in whole 2 MiB, laid over its RAM blocks in address order (the
    2 MiB aligned part of each block, so 2 MiB extents stay aligned).  Every
    row of :func:`_memory_rows` at the host's max_pfn, beside the same set on
    a dense host of max_pfn n (``dense_modeled_bytes``, ``dense_added_bytes``):
    ``vs_dense`` near max_pfn / RAM marks a structure sized by max_pfn, near 1
    one sized by the set (``sized_by``).  ``vmemmap_bytes``: the struct pages
    of the present 128 MiB sections (SPARSEMEM_VMEMMAP backs no hole section),
    sized by RAM, beside ``flat_struct_pages_bytes`` over [0, max_pfn).
    Modeled (estimate()), no structure built: about 2 s at 770 GiB.
    """
    host = SCENARIOS[name].host()
    n = X.count(host.ram_blocks_2m())
    dense = host_set(cfg.sweep_shape, n, cfg.seed)
    sparse = host.lay_over_ram(dense)
    at = {r["tracker"]: r for r in _memory_rows(cfg, n, lambda *_: dense)}
    rows = []
    for r in _memory_rows(cfg, host.max_pfn, lambda *_: sparse):
        d = at[r["tracker"]]
        ratio = (r["modeled_bytes"] / d["modeled_bytes"] if d["modeled_bytes"] > 0
                 else math.nan)
        rows.append({**r, "host": f"{name} ({host_label(host.ram_pages)} RAM, max_pfn "
                                  f"{host_label(host.max_pfn)})",
                     "host_kind": "sparse", "scenario": name, "ram_pages": host.ram_pages,
                     "ram_bytes": host.ram_bytes, "set_pages_host": n,
                     "dense_modeled_bytes": d["modeled_bytes"],
                     "dense_added_bytes": d["added_bytes"], "vs_dense": ratio,
                     "sized_by": ("nothing added" if not r["modeled_bytes"] > 0 else
                                  "max_pfn" if ratio > 2 else "set"),
                     "vmemmap_bytes": host.vmemmap_bytes,
                     "flat_struct_pages_bytes": host.max_pfn * STRUCT_PAGE_BYTES})
    return rows


def _estimate_or_why(cls, starts, ends, max_pfn) -> tuple[float, dict]:
    """(estimate() bytes, {}) or, where the structure cannot hold the set at
    this host size (NotRepresentable), (NaN, the columns that say why)."""
    try:
        return int(cls.estimate(starts, ends, max_pfn)), {}
    except NotRepresentable as exc:
        return math.nan, {"not_representable": exc.summary,
                          "representable_max_pfns": (math.nan if exc.limit_pfns is None
                                                     else exc.limit_pfns)}


def _strategy_rows(cfg, max_pfn, starts, ends, pages) -> list[dict]:
    """The structures of the options that are not trackers, for this private
    set over RAM [0, max_pfn) (``Strategy.sized_structure``): option 2's
    split page-table pages, Dynamic PAMT's refcount array, guest_memfd's
    maple tree (one inode, GFN = PFN) -- each strategy's
    ``added_bytes_for_set`` (no KexecHost: building one costs ~40 s at 16 TiB
    and adds nothing here)."""
    rows = []
    for strategy in STRATEGIES.values():
        if not strategy.sized_structure:
            continue
        added = strategy.added_bytes_for_set(max_pfn, starts, ends)
        rows.append({
            "tracker": strategy.name, "option": strategy.option, "host_pfns": max_pfn,
            "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
            "set": cfg.sweep_shape, "private_pages": pages, "extents": int(starts.size),
            "modeled_bytes": added, "added_bytes": added,
            "bits_per_private_page": added * 8 / pages,
            "kind": "modeled", **REPRESENTABLE,
        })
    return rows


def _fraction_rows(cfg, fraction, get_set) -> list[dict]:
    max_pfn = cfg.fraction_host
    starts, ends = get_set("fraction", max_pfn, fraction, cfg.seed)
    pages = int((ends - starts).sum())
    runs = int(starts.size)
    bound = bound_bits_per_page(max_pfn, pages)
    run_bound = run_bound_bits_per_page(max_pfn, pages, runs)
    rows = []
    for name in cfg.trackers:
        nbytes, why = _estimate_or_why(TRACKERS[name], starts, ends, max_pfn)
        rows.append({
            "tracker": name, "host_pfns": max_pfn, "host": host_label(max_pfn),
            "target_fraction": fraction, "private_fraction": pages / max_pfn,
            "private_pages": pages, "extents": runs, "modeled_bytes": nbytes,
            "bits_per_private_page": nbytes * 8 / pages,
            "bound_bits_per_page": bound, "run_bound_bits_per_page": run_bound,
            "kind": "modeled", **REPRESENTABLE, **why,
        })
    return rows


def last_level_cache_bytes() -> int:
    """This machine's largest CPU cache (sysfs), 0 where it cannot be read."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        m = re.fullmatch(r"(\d+)([KMG]?)", f.read_text().strip())
        if m:
            sizes.append(int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)])
    return max(sizes, default=0)


def cpu_model() -> str:
    """This machine's CPU model name (/proc/cpuinfo), else what Python knows."""
    cpu = platform_mod.processor() or platform_mod.machine() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine() -> str:
    """One line naming this machine: CPU model, CPUs, last-level cache."""
    cpu = cpu_model()
    llc = last_level_cache_bytes()
    return (f"{cpu}, {os.cpu_count()} CPUs" + (f", {llc >> 20} MiB last-level cache"
                                                if llc else ""))


#: the option whose kexec scan walks the direct map (no tracker: a strategy)
PTE_SOFTBIT = STRATEGIES["pte-softbit"].name
#: the model lies within this factor of a measurement, or model_note says why not
MODEL_WITHIN = 2.0


def model_note(m, plat, ratio: float, llc: int, load: float = 0.0) -> str:
    """Why a modeled scan lies outside MODEL_WITHIN of its measurement on this
    machine ("" within): the model's largest term, and what the measured scan
    did differently where its spread, the engine or the cache says so
    (``load``: the 1-min load average while it ran)."""
    if not (ratio > MODEL_WITHIN or ratio < 1 / MODEL_WITHIN):
        return ""
    terms = {"dependent loads": (plat.chase_s(m.scan_loads),
                                 f"{m.scan_loads:,} x {fmt_seconds(plat.load_latency_s)}"),
             "streaming read": (plat.read_s(m.scanned_bytes),
                                f"{m.scanned_bytes / 2**20:,.0f} MiB at "
                                f"{plat.read_bps() / 1e9:.1f} GB/s"),
             "runs": (plat.work_s(runs=m.extents), f"{m.extents:,} x {fmt_seconds(plat.run_s)}"),
             "entries": (plat.work_s(entries=m.entries),
                         f"{m.entries:,} x {fmt_seconds(plat.entry_s)}"),
             "lookups": (plat.work_s(lookups=m.lookups),
                         f"{m.lookups:,} x {fmt_seconds(plat.lookup_s)}")}
    top, (_, how) = max(terms.items(), key=lambda kv: kv[1][0])
    why = [f"model {ratio:.2g}x the measurement, largest term {top} ({how})"]
    if ratio > MODEL_WITHIN:
        if llc and m.scanned_bytes <= llc:
            why.append(f"what it reads fits this machine's {llc >> 20} MiB cache: the "
                       f"repeated scans read cache, not DRAM")
        if m.engine in (ENGINE_PAGE_TABLES, ENGINE_STRUCT_PAGES):
            why.append("pages.c tests 64 entries a word, one branch a run: cheaper than "
                       "the kernel iterators the per-entry and per-run costs assume")
    else:
        fastest = ratio * m.seconds / m.seconds_min
        if 1 / MODEL_WITHIN <= fastest <= MODEL_WITHIN:
            why.append(f"its fastest scan is within {MODEL_WITHIN:g}x (model/min "
                       f"{fastest:.2g}): other tasks slowed the median (1-min load "
                       f"{load:.1f} on {os.cpu_count()} CPUs)")
        if m.engine == ENGINE_PAGE_TABLES:
            why.append("scattered split table pages cost several DRAM and TLB misses "
                       "each, not the one load the model charges (trackers/linux/pages.py)")
    return "; ".join(why)


def _scan_budget(cfg) -> int:
    """The memory budget of the scan figure's structures: the report's cap, never
    above $TRACKERS_MEMORY_BUDGET."""
    return (memory_budget() if cfg.scan_budget_bytes is None
            else min(cfg.scan_budget_bytes, memory_budget()))


def _scan_rows(cfg, max_pfn, get_set, cost: dict) -> list[dict]:
    """Build and time every option's kexec-time scan at ``max_pfn`` (the
    measurement of :meth:`trackers.kexec.strategies.TrackerStrategy.measure`
    and ``PteSoftbit.measure``: the @kernel twin, the pages.c layout or the
    emulation); ``cost`` carries, per option, the (seconds, PFNs measured) of its last
    size, so one predicted (linearly in the PFNs it measures) to take over
    ``scan_time_budget_s`` here is not built -- its model still is (estimate())."""
    starts, ends = get_set("shape", max_pfn, cfg.scan_shape, cfg.seed)
    pages = int((ends - starts).sum())
    # every option scans the same set: the hooks mark it, and KVM's walk finds it
    # (one default TD, GFN = PFN, as the kvm tracker's contract has it)
    host = KexecHost(max_pfn=max_pfn, ram=([0], [max_pfn]), private=(starts, ends),
                     kvm_visible=(starts, ends), name=f"{cfg.scan_shape} {host_label(max_pfn)}")
    llc = last_level_cache_bytes()
    where = machine()
    rows = []
    for name in [*cfg.trackers, PTE_SOFTBIT]:
        strategy = (strategy_for_tracker(name) if name in TRACKER_STRATEGIES
                    else STRATEGIES[name])
        base = {"tracker": name, "option": strategy.option, "host_pfns": max_pfn,
                "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
                "set": cfg.scan_shape, "private_pages": pages, "extents": int(starts.size),
                "machine": where}
        skipped = ""
        if name in cost:
            spent, measured = cost[name]
            predicted = spent * strategy.measured_pfns(
                max_pfn, cfg.kernel_code, _scan_budget(cfg)) / measured
            if predicted > cfg.scan_time_budget_s:
                skipped = (f"not built: predicted {fmt_seconds(predicted)}, over the "
                           f"{fmt_seconds(cfg.scan_time_budget_s)} budget of one size")
        try:
            m = strategy.measure(host, emulate=not skipped, build_limit_pfns=max_pfn,
                                 kernel_code=cfg.kernel_code, repeat=cfg.scan_repeat,
                                 budget_bytes=_scan_budget(cfg))
        except NotRepresentable as exc:
            rows.append({**base, "skipped": f"not representable: {exc}"})
            continue
        if m.repeat:
            assert m.extents == starts.size, \
                f"{name}: scan returned {m.extents} extents, set has {starts.size}"
            cost[name] = (m.populate_s + m.seconds / m.max_pfn * m.measured_pfns * m.repeat,
                          m.measured_pfns)
        else:
            skipped = skipped or m.notes or "not built"
        load = os.getloadavg()[0]                # how busy the machine was meanwhile
        for pname, plat in PLATFORMS.items():
            modeled = plat.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents,
                                  m.lookups)
            low, high = plat.scan_s_range(m.scanned_bytes, m.scan_loads, m.entries,
                                          m.extents, m.lookups)
            here = pname == "this-machine" and m.repeat > 0
            ratio = modeled / m.seconds if here else math.nan
            rows.append({**base,
                         "engine": m.engine, "engine_kind": engine_kind(m.engine),
                         "scan_measured_s": m.seconds,
                         "scan_measured_min_s": m.seconds_min,
                         "scan_measured_max_s": m.seconds_max,
                         "scan_runs": m.repeat,
                         "scan_measured_pfns": m.measured_pfns,
                         "scan_extrapolated": m.extrapolated,
                         "scan_provenance": m.provenance,
                         "modeled_bytes": m.modeled_bytes,
                         "scanned_bytes": m.scanned_bytes, "scan_loads": m.scan_loads,
                         "scan_entries": m.entries, "scan_extents": m.extents,
                         "scan_lookups": m.lookups,
                         "platform": pname, "platform_kind": plat.kind,
                         "platform_cpus": plat.cpus_at_reset,
                         "scan_modeled_s": modeled, "scan_modeled_low_s": low,
                         "scan_modeled_high_s": high, "model_ratio": ratio,
                         "model_note": model_note(m, plat, ratio, llc, load) if here else "",
                         "load_1min": load if m.repeat else math.nan,
                         "skipped": skipped})
    return rows


def plan(cfg: ReportConfig) -> list[Step]:
    """Every step of a run, in order (tables: memory_vs_host, bits_per_page, scan_time,
    kexec, sensitivity and tornado, race, conversion_cost)."""
    get_set = _set_cache()
    cost: dict[str, tuple[float, int]] = {}
    steps = []
    for n in cfg.sweep_hosts:
        steps.append(Step("memory_vs_host", f"memory {host_label(n)}",
                          lambda n=n: _memory_rows(cfg, n, get_set)))
    for name in cfg.sparse_hosts:
        steps.append(Step("memory_vs_host", f"memory {name}",
                          lambda name=name: sparse_host_rows(cfg, name)))
    for f in cfg.fractions:
        steps.append(Step("bits_per_page", f"bits/page at {f:g}",
                          lambda f=f: _fraction_rows(cfg, f, get_set)))
    for n in cfg.scan_hosts:
        steps.append(Step("scan_time", f"scan {host_label(n)}",
                          lambda n=n: _scan_rows(cfg, n, get_set, cost), timed=True,
                          chain="scan_time"))
    steps.extend(kexec_steps(cfg))
    steps.append(Step("conversion_cost", "conversion cost", lambda: _conversion_rows(cfg),
                      timed=True))
    steps.extend(sharded_steps(cfg))
    return steps


# --------------------------------------------------------------------------
# sharded points (--sharded, --sharded-csv): trackers/report/sharded.py

#: the shard steps' rows, combined into the ``sharded`` table by add_sharded
SHARD_STEPS = "_shards"


def sharded_steps(cfg: ReportConfig) -> list[Step]:
    """One timed step per shard at each of ``cfg.sharded_pfns``, every
    tracker (and @kernel twin) built in it in turn, after every other step
    (none by default)."""
    names = sharded.sharded_names(cfg.trackers, cfg.kernel_code)
    return [Step(SHARD_STEPS, label, run, timed=True) for pfns in cfg.sharded_pfns
            for label, run in sharded.shard_runs(names, pfns, cfg.shard_pfns, cfg.seed,
                                                 cfg.sharded_repeat)]


def add_sharded(cfg: ReportConfig, tables: dict[str, pd.DataFrame],
                csvs: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    """``tables`` with the ``sharded`` table: the shard steps' results
    combined per tracker and size (trackers.shard.combine), then the rows of
    each bench-core CSV of ``csvs`` (path -> its rows, sharded.load_csv)."""
    out = dict(tables)
    raw = out.pop(SHARD_STEPS, None)
    parts = []
    if cfg.sharded_pfns:
        results = [] if raw is None else raw.to_dict("records")
        names = sharded.sharded_names(cfg.trackers, cfg.kernel_code)
        rows = sharded.combine_steps(names, cfg.sharded_pfns, results, cfg.sharded_repeat)
        parts.append(sharded.sharded_table(rows, sharded.SOURCE_REPORT))
    for path, df in (csvs or {}).items():
        parts.append(sharded.sharded_table(df, str(path)))
    if parts:
        out[sharded.TABLE] = pd.concat(parts, ignore_index=True)
    return out


# --------------------------------------------------------------------------
# kexec and race: trackers.kexec on trackers.workloads scenarios

#: scenarios the default run leaves out, and why (the summary names them)
LEFT_OUT = {"tiny": "an 8 GiB test fixture (the --quick run and the tests use it)"}


def default_scenarios() -> list[str]:
    """Every named scenario but those of LEFT_OUT: the 1 TiB and 16 TiB hosts
    first (the verdict's columns), then the rest in registry order."""
    first = ["1tib-4td", "16tib-dense"]
    return first + [k for k in SCENARIOS if k not in first and k not in LEFT_OUT]


def left_out(cfg: ReportConfig) -> dict[str, str]:
    """Named scenarios this run does not cover -> why."""
    why = "not in the --quick run (run without --quick)" if cfg.quick else \
        "not in this run's scenarios"
    return {k: ("" if cfg.quick else LEFT_OUT.get(k, "")) or why
            for k in SCENARIOS if k not in cfg.scenarios}


def _chosen(cfg):
    """Every option; of the hooked trackers only those asked for."""
    return [s for s in STRATEGIES.values()
            if not s.seamcall_hooked or s.tracker_cls is None or s.name in cfg.trackers]


#: the suffix of a scenario judged after its TDs are destroyed
NO_TD = "/no-td"


def idle_host(host: KexecHost) -> KexecHost:
    """``host`` after every TD is destroyed: still private are the PAMT (the
    TDMR list names it) and the leaked pages; no TD runs, none holds memory."""
    return KexecHost(max_pfn=host.max_pfn, ram=host.ram, private=union(host.pamt, host.leaked),
                     pamt=host.pamt, leaked=host.leaked, td_pages=0, tds_running=0,
                     name=f"{host.name}{NO_TD}")


def _host_cache():
    """scenario -> (host, build seconds, emulate, measurement cache), one at a time
    (a 16 TiB host is large): the kexec step builds and measures, the
    sensitivity step after it re-costs the same measurements.  A step run in
    another process builds its own (the counts it costs are deterministic)."""
    held: dict = {}

    def get(cfg, name):
        if name not in held:
            base = name[:-len(NO_TD)] if name.endswith(NO_TD) else name
            kept = held.get(base)
            held.clear()
            t0 = time.perf_counter()
            own = (cfg.user_host if cfg.user_host is not None and base == cfg.user_host.name
                   else None)
            wl = None if kept else (own.build(cfg.seed) if own is not None
                                    else scenario(base, cfg.seed))
            host = kept[0] if kept else from_workload(wl)
            if base != name:
                host = idle_host(host)
            # the user's host is built and timed up to the strategies' build limit,
            # not cfg.emulate_max_pfn: its measured scan and model error are the point
            emulate = own is not None or host.max_pfn <= cfg.emulate_max_pfn and (
                cfg.emulate_scenarios is None or base in cfg.emulate_scenarios)
            held[name] = (host, time.perf_counter() - t0, emulate, {})
        return held[name]
    return get


def _kexec_rows(cfg, name: str, get_host) -> list[dict]:
    host, _, emulate, measured = get_host(cfg, name)
    chosen = _chosen(cfg)
    rows = []
    for pname, plat in PLATFORMS.items():       # each structure built and timed once
        df = evaluate(host, plat, strategies=chosen, emulate=emulate,
                      kernel_code=cfg.kernel_code, cache=measured)
        df["scenario"] = name
        df["platform_name"] = pname
        df["platform_kind"] = plat.kind
        df["platform_cpus"] = plat.cpus_at_reset
        df["emulated"] = emulate
        df["seed"] = cfg.seed
        rows.extend(df.to_dict("records"))
    return rows


def _sensitivity_rows(cfg, name: str, get_host) -> list[dict]:
    """The CPU sweep and the tornado of every option on one scenario, each
    platform; rows of both tables, told apart by ``_table`` (split by
    :func:`split_tables`).  Where the scenario's trackers are built here
    (``emulate``), the measured platform's rows get the sharded scan
    measured at each CPU count (sensitivity.measured_scans)."""
    host, _, emulate, measured = get_host(cfg, name)
    rows = []
    checked: dict = {}                         # re-costing verified once per strategy
    here = [c for p in PLATFORMS.values() if p.kind == "measured"
            for c in cpu_counts(p, cfg.sensitivity_cpus)]
    scans = (measured_scans(host, _chosen(cfg), here, kernel_code=cfg.kernel_code,
                            repeat=cfg.scan_repeat) if emulate and here else None)
    for pname, plat in PLATFORMS.items():
        sens, torn = sweep(host, plat, _chosen(cfg), scenario=name, platform_name=pname,
                           assess_kw={"emulate": emulate, "kernel_code": cfg.kernel_code,
                                      "cache": measured},
                           counts=cfg.sensitivity_cpus, checked=checked, measured=scans)
        rows.extend({**r, "_table": "sensitivity"} for r in sens)
        rows.extend({**r, "_table": "tornado"} for r in torn)
    return rows


def _race_rows(cfg, order: str | None = None) -> list[dict]:
    """The race on every platform: at the low, central and high ASSUMED SEAMCALL
    costs in the attributes-first order (``order`` None: race_band), or at the
    central costs in ``order`` (race.ZAP_FIRST: kvm_vm_set_mem_attributes()
    zaps before its xa_store loop -- which options' misses rest on the premise)."""
    rows = []
    for pname, plat in PLATFORMS.items():
        kw = dict(rates_mib_s=cfg.conversion_rates, platform=plat, seed=cfg.seed,
                  n_kexec=cfg.race_kexecs)
        df = race_band(**kw) if order is None else race(order=order, **kw)
        df["platform_name"] = pname
        df["platform_kind"] = plat.kind
        df["kind"] = "modeled"
        rows.extend(df.to_dict("records"))
    return rows


def conversion_trackers(cfg) -> list[str]:
    """The tracker each hooked option would use, timed: its @kernel twin where
    the kernel's code runs (and was loaded when the registry was imported),
    else the emulation."""
    return [f"{n}{KERNEL_SUFFIX}" if cfg.kernel_code and f"{n}{KERNEL_SUFFIX}" in ALL_TRACKERS
            else n for n in cfg.trackers]


def _conversion_rows(cfg) -> list[dict]:
    """bench-core's conversion cost (trackers.bench.measure_conversions: mark and
    unmark of each 4 KiB and 2 MiB conversion into a tracker holding the
    reference set, median and min-max of ``conversion_repeat`` timings), in
    this process: a forked child of a process whose kernel library runs RCU
    threads can deadlock, so nothing here forks."""
    starts, ends = reference_set(cfg.conversion_pfns, cfg.seed)
    held, targets = bench.conversion_targets(starts, ends, cfg.conversion_pfns,
                                             cfg.conversions, cfg.seed)
    rows = []
    for name in conversion_trackers(cfg):
        base = {"option": name.split(KERNEL_SUFFIX)[0], "kind": "measured"}
        try:
            got = bench.measure_conversions(name, cfg.conversion_pfns, held, targets,
                                            cfg.conversion_repeat, cfg.conversion_seconds)
        except NotRepresentable as exc:
            rows.append({"tracker": name, **base, "not_representable": exc.summary})
            continue
        rows.extend({**r, **base} for r in got)
    return rows


def kexec_steps(cfg: ReportConfig) -> list[Step]:
    """Every strategy on each scenario and platform preset, then its sensitivity;
    the conversion race."""
    get_host = _host_cache()
    steps = []
    idle = [f"{n}{NO_TD}" for n in cfg.idle_scenarios if n in cfg.scenarios]
    own = [] if cfg.user_host is None else [cfg.user_host.name]
    # one chain (one task) per scenario: the sensitivity re-costs the kexec's
    # host and measurements, and the variant without TDs reuses its host; a
    # chain is timed where its kexec step builds and times structures
    for name in [*cfg.scenarios, *own]:
        timed = name in own or cfg.emulate_scenarios is None or name in cfg.emulate_scenarios
        steps.append(Step("kexec", f"kexec {name}",
                          lambda name=name: _kexec_rows(cfg, name, get_host),
                          timed=timed, chain=f"scenario {name}"))
        steps.append(Step("sensitivity", f"sensitivity {name}",
                          lambda name=name: _sensitivity_rows(cfg, name, get_host),
                          chain=f"scenario {name}"))
    # the variants without TDs are not named scenarios: sensitivity rows only
    for name in idle:
        base = name[:-len(NO_TD)]
        steps.append(Step("sensitivity", f"sensitivity {name}",
                          lambda name=name: _sensitivity_rows(cfg, name, get_host),
                          chain=f"scenario {base}"))
    steps.append(Step("race", "race", lambda: _race_rows(cfg)))
    steps.append(Step("race_order", "race (zap-first)", lambda: _race_rows(cfg, ZAP_FIRST)))
    return steps



def split_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The sensitivity step's rows as two tables, ``sensitivity`` and ``tornado``
    (their ``_table`` column), each with the columns of its contract
    (trackers.kexec.sensitivity); other tables as they are."""
    from ..kexec.sensitivity import SENSITIVITY_COLUMNS, TORNADO_COLUMNS
    df = tables.get("sensitivity")
    if df is None or "_table" not in df:
        return dict(tables)                   # split already (or no sensitivity)
    out = {k: v for k, v in tables.items() if k != "sensitivity"}
    if not df.empty:
        for name, cols in (("sensitivity", SENSITIVITY_COLUMNS), ("tornado", TORNADO_COLUMNS)):
            part = df[df["_table"] == name]
            if not part.empty:
                out[name] = part[cols].reset_index(drop=True)
    return out



def _run_chain(runs: list[Callable[[], list[dict]]]) -> list[list[dict]]:
    """The rows of each step of a chain, run in order in this process (a task)."""
    return [run() for run in runs]



def run_steps(steps: list[Step], progress=None, scheduler: str | None = None
              ) -> dict[str, pd.DataFrame]:
    """Run ``steps`` as Dask tasks (trackers/cluster.py: a local cluster, or
    the scheduler at ``scheduler`` / $TRACKERS_SCHEDULER): each step, or each
    chain of steps, one task, timed ones on the timing worker one at a time,
    the others beside them.  Return table name -> DataFrame, rows in the order
    of ``steps`` (tables with no rows omitted); ``progress`` (a tqdm bar)
    advances by one per step as tasks finish."""
    groups: list[list[Step]] = []
    chains: dict[str, list[Step]] = {}
    for step in steps:
        if step.chain and step.chain in chains:
            chains[step.chain].append(step)
            continue
        groups.append([step])
        if step.chain:
            chains[step.chain] = groups[-1]
    # the timed groups first: they queue on the one timing worker (the critical
    # path), the modeled ones fill the other workers meanwhile
    groups.sort(key=lambda g: not any(s.timed for s in g))
    units = [Unit(_run_chain, ([s.run for s in g],), timed=any(s.timed for s in g),
                  label=g[0].label) for g in groups]
    done: dict[int, list[dict]] = {}
    if units:
        with connect(scheduler) as client:
            results = run_units(client, units, bar=progress, weights=[len(g) for g in groups],
                                progress=progress is not None)
        for g, rows in zip(groups, results):
            for step, r in zip(g, rows):
                done[id(step)] = r
    tables: dict[str, list[dict]] = {}
    for step in steps:
        tables.setdefault(step.table, []).extend(done[id(step)])
    return {name: pd.DataFrame(r) for name, r in tables.items() if r}
