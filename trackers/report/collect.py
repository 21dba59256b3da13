"""Run the report's measurements and models; one DataFrame per table.

Every table is plain columns a notebook can reload from CSV.  Each row says
whether its figures are ``measured`` (timed on this machine, of the
Python/numba emulation) or ``modeled`` (kernel struct sizes and platform
rates) in its column names or in a ``kind`` column.

Tables (file stem -> content):

* ``memory_vs_host``  tracker x host size: modeled bytes, bytes added to a
  running kernel, bits per private page; the set is ``reference-1pct``
  (see :mod:`trackers.sets`) so 16 TiB fits this machine;
* ``bits_per_page``   tracker x private fraction at one host size, with the
  information bounds log2 C(N, n) and log2 C(N+1, 2r) per private page;
  in both, a tracker whose structure cannot hold the set at that host size
  (the IDA beyond 2^31 PFNs: ids <= INT_MAX) has NaN bytes, says why in
  ``not_representable`` (empty where the number stands) and gives the
  largest host it can hold in ``representable_max_pfns``;
* ``scan_time``       tracker x host size x platform: measured extents() scan
  of the built emulation (median and min-max over the repeats) beside the
  modeled kernel scan;
* ``kexec``           strategy x scenario x platform: trackers.kexec.evaluate;
* ``race``            strategy x conversion rate: trackers.kexec.race.

``plan(config)`` lists the steps so a progress bar knows the total work.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from ..base import MemoryBudgetError, NotRepresentable
from ..kernel import PAGE_SIZE
from ..kexec import PLATFORMS, STRATEGIES, evaluate, from_workload, race
from ..registry import TRACKERS
from ..sets import fraction_set, host_label, host_set
from ..workloads import SCENARIOS, bundled_memmaps, scenario


@dataclass
class ReportConfig:
    """What a report run covers; DEFAULT fits 3 minutes on 2 cores, QUICK seconds."""

    sweep_hosts: list[int]                 # memory_vs_host sizes (PFNs)
    sweep_shape: str
    fraction_host: int                     # bits_per_page host (PFNs)
    fractions: list[float]
    scan_hosts: list[int]                  # scan_time sizes (PFNs), built and timed
    scan_shape: str
    scenarios: list[str]                   # trackers.workloads scenario names
    emulate_max_pfn: int                   # kexec: build trackers up to this host size
    conversion_rates: list[float]          # race: MiB converted private->shared per second
    race_kexecs: int = 20000               # simulated kexecs per rate
    scan_repeat: int = 3
    scan_time_budget_s: float = 20.0       # build + scans a tracker may take at one size
    seed: int = 0
    quick: bool = False
    trackers: list[str] = field(default_factory=lambda: list(TRACKERS))


def default_config(seed: int = 0) -> ReportConfig:
    return ReportConfig(
        sweep_hosts=[1 << 24, 1 << 26, 1 << 28, 1 << 30, 1 << 32],   # 64 GiB .. 16 TiB
        sweep_shape="reference-1pct",
        fraction_host=1 << 24,                                       # 64 GiB
        fractions=[0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9],
        scan_hosts=[1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28],    # 4 GiB .. 1 TiB
        scan_shape="reference",
        scenarios=default_scenarios(),
        emulate_max_pfn=1 << 25,                                     # 128 GiB: iomem-64g
        conversion_rates=[1, 4, 16, 64, 256, 1024, 4096],
        seed=seed,
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
        scan_repeat=1,
        scan_time_budget_s=5.0,
        seed=seed,
        quick=True,
    )


@dataclass
class Step:
    table: str
    label: str
    run: Callable[[], list[dict]]


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
            "added_bytes": STRATEGIES[name].added_bytes(nbytes) if not why else math.nan,
            "bits_per_private_page": nbytes * 8 / pages,
            "kind": "modeled", **REPRESENTABLE, **why,
        })
    rows.extend(_pte_softbit_rows(cfg, max_pfn, starts, ends, pages))
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


def _pte_softbit_rows(cfg, max_pfn, starts, ends, pages) -> list[dict]:
    """Option 2's added page-table pages: the direct map over RAM [0, max_pfn)
    split for this private set (no KexecHost: building one costs ~40 s at
    16 TiB and adds nothing here)."""
    strategy = STRATEGIES["pte-softbit"]
    added = strategy.added_bytes_for_set(max_pfn, starts, ends)
    return [{
        "tracker": strategy.name, "option": strategy.option, "host_pfns": max_pfn,
        "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
        "set": cfg.sweep_shape, "private_pages": pages, "extents": int(starts.size),
        "modeled_bytes": added, "added_bytes": added,
        "bits_per_private_page": added * 8 / pages,
        "kind": "modeled", **REPRESENTABLE,
    }]


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


def _drain(batches) -> int:
    n = 0
    for s, _ in batches:
        n += s.size
    return n


def _scan_rows(cfg, max_pfn, get_set, cost: dict) -> list[dict]:
    """Build and scan every tracker at ``max_pfn``; ``cost`` carries, per tracker, the
    (seconds, extents) of its last size, so a tracker predicted (linearly in extents)
    to take over ``scan_time_budget_s`` here is skipped rather than run."""
    starts, ends = get_set("shape", max_pfn, cfg.scan_shape, cfg.seed)
    pages = int((ends - starts).sum())
    rows = []
    for name in cfg.trackers:
        base = {"tracker": name, "host_pfns": max_pfn, "host_bytes": max_pfn * PAGE_SIZE,
                "host": host_label(max_pfn), "set": cfg.scan_shape, "private_pages": pages,
                "extents": int(starts.size)}
        if name in cost:
            spent, extents = cost[name]
            predicted = spent * starts.size / max(extents, 1)
            if predicted > cfg.scan_time_budget_s:
                rows.append({**base, "skipped": f"predicted {predicted:.0f} s, over the "
                                                f"{cfg.scan_time_budget_s:g} s budget"})
                continue
        cls = TRACKERS[name]
        try:
            warm = cls(1 << 12)                         # compile before timing
            warm.mark_ranges([1, 64], [3, 200])
            _drain(warm.extents())
            t0 = time.perf_counter()
            t = cls(max_pfn)
            t.mark_ranges(starts, ends)
            populate_s = time.perf_counter() - t0
        except MemoryBudgetError as exc:
            rows.append({**base, "skipped": str(exc)})
            continue
        except NotRepresentable as exc:
            rows.append({**base, "skipped": f"not representable: {exc}"})
            continue
        times = []
        while len(times) < cfg.scan_repeat and (not times or populate_s + sum(times)
                                                < cfg.scan_time_budget_s):
            t0 = time.perf_counter()
            n = _drain(t.extents())
            times.append(time.perf_counter() - t0)
        assert n == starts.size, f"{name}: scan returned {n} extents, set has {starts.size}"
        cost[name] = (populate_s + statistics.median(times) * cfg.scan_repeat, int(starts.size))
        mem = t.memory()
        for pname, plat in PLATFORMS.items():
            rows.append({**base,
                         "populate_measured_s": populate_s,   # one build: no spread
                         "populate_runs": 1,
                         "scan_measured_s": statistics.median(times),
                         "scan_measured_min_s": min(times),
                         "scan_measured_max_s": max(times),
                         "scan_runs": len(times),
                         "modeled_bytes": mem.modeled_bytes,
                         "scanned_bytes": mem.scanned_bytes, "scan_loads": mem.scan_loads,
                         "platform": pname, "platform_kind": plat.kind,
                         "platform_cpus": plat.cpus_at_reset,
                         "scan_modeled_s": plat.scan_s(mem.scanned_bytes, mem.scan_loads)})
        del t
    return rows


def plan(cfg: ReportConfig) -> list[Step]:
    """Every step of a run, in order (tables: memory_vs_host, bits_per_page, scan_time,
    kexec, race)."""
    get_set = _set_cache()
    cost: dict[str, tuple[float, int]] = {}
    steps = []
    for n in cfg.sweep_hosts:
        steps.append(Step("memory_vs_host", f"memory {host_label(n)}",
                          lambda n=n: _memory_rows(cfg, n, get_set)))
    for f in cfg.fractions:
        steps.append(Step("bits_per_page", f"bits/page at {f:g}",
                          lambda f=f: _fraction_rows(cfg, f, get_set)))
    for n in cfg.scan_hosts:
        steps.append(Step("scan_time", f"scan {host_label(n)}",
                          lambda n=n: _scan_rows(cfg, n, get_set, cost)))
    steps.extend(kexec_steps(cfg))
    return steps


# --------------------------------------------------------------------------
# kexec and race: trackers.kexec on trackers.workloads scenarios

def default_scenarios() -> list[str]:
    """1 TiB and 16 TiB hosts and one scenario per bundled real memory map."""
    return ["1tib-4td", "16tib-dense"] + [k for k in SCENARIOS if k in bundled_memmaps()]


def _kexec_rows(cfg, name: str) -> list[dict]:
    t0 = time.perf_counter()
    wl = scenario(name, cfg.seed)
    host = from_workload(wl)
    build_s = time.perf_counter() - t0
    emulate = host.max_pfn <= cfg.emulate_max_pfn
    # every option; of the hooked trackers only those asked for
    chosen = [s for s in STRATEGIES.values()
              if not s.seamcall_hooked or s.tracker_cls is None or s.name in cfg.trackers]
    rows = []
    for pname, plat in PLATFORMS.items():
        df = evaluate(host, plat, strategies=chosen, emulate=emulate)
        df["scenario"] = name
        df["platform_name"] = pname
        df["platform_kind"] = plat.kind
        df["platform_cpus"] = plat.cpus_at_reset
        df["emulated"] = emulate
        df["seed"] = cfg.seed
        df["scenario_build_s"] = build_s
        rows.extend(df.to_dict("records"))
    return rows


def _race_rows(cfg) -> list[dict]:
    rows = []
    for pname, plat in PLATFORMS.items():
        df = race(rates_mib_s=cfg.conversion_rates, platform=plat, seed=cfg.seed,
                  n_kexec=cfg.race_kexecs)
        df["platform_name"] = pname
        df["platform_kind"] = plat.kind
        df["kind"] = "modeled"
        rows.extend(df.to_dict("records"))
    return rows


def kexec_steps(cfg: ReportConfig) -> list[Step]:
    """Every strategy on each scenario and platform preset; the conversion race."""
    steps = [Step("kexec", f"kexec {name}", lambda name=name: _kexec_rows(cfg, name))
             for name in cfg.scenarios]
    steps.append(Step("race", "race", lambda: _race_rows(cfg)))
    return steps


def run_steps(steps: list[Step], progress=None) -> dict[str, pd.DataFrame]:
    """Run ``steps``; return table name -> DataFrame (tables with no rows omitted)."""
    rows: dict[str, list[dict]] = {}
    for step in steps:
        if progress is not None:
            progress.set_description(step.label)
        rows.setdefault(step.table, []).extend(step.run())
        if progress is not None:
            progress.update(1)
    return {name: pd.DataFrame(r) for name, r in rows.items() if r}
