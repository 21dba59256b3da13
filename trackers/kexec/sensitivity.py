"""How far the downtime answer moves: CPUs at reset and every ASSUMED parameter.

Two tables, both modeled (the platform's time model on each strategy's
counts), one row set per scenario and platform:

* :func:`cpu_sweep` -> ``sensitivity`` rows: strategy x CPUs at reset (1, 2,
  4, ... 64 and all of the platform, :func:`cpu_counts`): downtime_s,
  scan_s, clear_s at the central values, and downtime_low_s / downtime_high_s
  with every ASSUMED parameter at the end of its range that lowers / raises
  this strategy's downtime (each end chosen one parameter at a time, then set
  together); ``rank`` orders the strategies that allow kexec by downtime_s
  (1 = least) at each CPU count.
* :func:`tornado` -> ``tornado`` rows: strategy x ASSUMED parameter at one CPU
  count: the downtime with that one parameter at the low and at the high end
  of its range, the others central.

The ASSUMED parameters are the Platform fields a platform names with
``Platform.assumed_ranges()`` (field -> (low, high, source)), or else those of
``trackers.kexec.platform.ASSUMED_RANGES``, or, where a platform module has
neither, its ``SCAN_COST_RANGES`` (field -> (low, high), sources in
``SCAN_COST_SOURCES``): :func:`assumed_ranges`.  A
parameter is varied with ``dataclasses.replace(platform, field=value)``; the
measured or estimated rates of a preset are its central values.

Cost: a strategy is costed by its own ``assess()``.  Where its downtime is the
platform's scan + clear model of its outcome's counts -- ``Platform.scan_s``
of scanned_bytes, scan_loads, scan_entries, scan_extents and scan_lookups,
plus ``Platform.clear_s`` of pages_reset pages -- checked against its own
``assess()`` on three platforms (central on 1 CPU; every parameter low on all
CPUs; every parameter high on half of them), once per host (``checked``: a
later platform checks its central row and its all-CPU row), the sweep re-costs those
counts instead of assessing again (a 16 TiB host's assess() spends 40-800 ms
on its extent sets); any other strategy (TDH.SYS.DISABLE, whose rate is its
own) is assessed at every point.

:func:`crossovers` finds the CPU counts where the order of the leading
strategies changes; the report's summary states them.

Measured beside the model: where the host's trackers are
built on this machine, :func:`measured_scans` builds each tracker strategy's
structure over the pages its scan finds in aligned PFN shards
(:mod:`trackers.shard`, an :class:`~trackers.shard.Extents` source; at least
SHARDS_PER_CPU shards per CPU of the largest count swept on this machine,
each >= shard.MIN_SHARD_PFNS) and times each shard's whole extents() scan
``repeat`` times; :func:`sweep` puts ``scan_measured_s`` =
:meth:`Sharded.scan_s(cpus) <trackers.shard.Sharded.scan_s>` (the shards'
medians dealt longest-first to the CPUs) on the rows of the platform whose
kind is "measured" (this-machine), NaN elsewhere, with
``scan_measured_note`` (:data:`MEASURED_NOTE`: a lower bound; the model's
all-core cap is the other side); ``others_cpu_share`` and ``load_1min``, how
busy the machine was meanwhile, are NaN here and the caller's to fill (the
report measures its window: trackers/machine_load.py).  The engine is the verdict's own (the
``@kernel`` twin where it runs, else the emulation).  Cost, on iomem-64g
(the default report's one built scenario; 9 shards of 2^21 PFNs, 5 scans
each): each shard is built once and its pfns() stream is not timed
(shard.sharded_build with builds=1, scan_pfns=False: 10.2 s for the seven
tracker strategies, one run, against 34.5 s building it ``repeat`` times
and timing pfns() too); of those 10.2 s kvm-attr took 5.6 s (and
the option misses pages), so only the hooked trackers are sharded, and
pageflags' measured scan is the C struct-page layout, which shards do not
split (:data:`MEASURED_SKIPPED`): measured_scans() then adds 3.58 s
(3.27-4.39, median of 5) to the report's iomem-64g chain.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from .. import kernel
from ..shard import MIN_SHARD_PFNS, Extents, Sharded, sharded_build
from . import platform as platform_mod
from .host import KexecHost
from .platform import Platform
from .strategy import kernel_twin
from .tracked import reads_struct_pages

#: CPU counts of the sweep besides the platform's total (capped at it)
CPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)
#: the sensitivity table's columns (a contract with the figures); scan_measured_s
#: and its note only on the measured platform's rows of a host built here
SENSITIVITY_COLUMNS = ["strategy", "scenario", "platform", "cpus_at_reset", "downtime_s",
                       "downtime_low_s", "downtime_high_s", "scan_s", "clear_s", "rank",
                       "kind", "scan_measured_s", "scan_measured_note", "others_cpu_share",
                       "load_1min"]
#: shards per CPU of the largest count measured: dealt longest first, the
#: busiest CPU's load is within one shard of the mean (LPT)
SHARDS_PER_CPU = 4
#: what scan_measured_s is, and which side of the truth it lies on
MEASURED_NOTE = ("each shard's scan measured alone on one CPU, dealt longest-first to N "
                 "CPUs: no memory-bandwidth contention, so a lower bound; the model's "
                 "all-core cap is the other side")
#: strategies with a tracker that measured_scans() leaves out, and why (module doc)
MEASURED_SKIPPED = {
    "parallel-reset": "its scan runs on every CPU whatever the sweep's count: the bitmap "
                      "rows hold the measured sweep",
    "kvm-attr": "not sharded: its build and scans cost 5.6 s on iomem-64g, more than the "
                "hooked trackers together, and the option misses pages",
    "pageflags": "not sharded: its measured scan is the C struct-page layout "
                 "(trackers/linux/pages.c), not a tracker the shards split",
}
#: the tornado table's columns (a contract with the figures)
TORNADO_COLUMNS = ["strategy", "scenario", "platform", "cpus_at_reset", "param", "source",
                   "value_low", "value_base", "value_high", "downtime_base_s",
                   "downtime_at_low_s", "downtime_at_high_s"]
#: relative agreement under which re-costing an outcome's counts stands for assess()
RECOST_RTOL = 1e-9


def assumed_ranges(module=platform_mod, platform: Platform | None = None
                   ) -> dict[str, tuple[float, float, str]]:
    """ASSUMED Platform field -> (low, high, source): ``platform.assumed_ranges()``
    where the Platform names its own (the module's ranges and a preset's
    estimated rates), else the platform module's ``ASSUMED_RANGES``, else its
    ``SCAN_COST_RANGES`` (module doc)."""
    own = getattr(platform, "assumed_ranges", None)
    ranges = own() if callable(own) else getattr(module, "ASSUMED_RANGES", None)
    if ranges is None:
        ranges = module.SCAN_COST_RANGES
    sources = getattr(module, "SCAN_COST_SOURCES", {})
    fields = {f.name for f in dataclasses.fields(Platform)}
    out = {}
    for name, r in ranges.items():
        if name not in fields:
            raise ValueError(f"assumed parameter {name!r} is not a Platform field "
                             f"({', '.join(sorted(fields))})")
        low, high = float(r[0]), float(r[1])
        if not 0 < low <= high:
            raise ValueError(f"assumed parameter {name!r}: range ({low}, {high}) must have "
                             f"0 < low <= high")
        src = r[2] if len(r) > 2 else sources.get(name, "ASSUMED")
        out[name] = (low, high, str(src))
    return out


def cpu_counts(platform: Platform, counts=CPU_COUNTS) -> list[int]:
    """The sweep's CPU counts on ``platform``: ``counts`` up to its CPUs, and all."""
    return sorted({c for c in counts if c <= platform.cpus_total} | {platform.cpus_total})


def _vary(platform: Platform, **values) -> Platform:
    return dataclasses.replace(platform, **values)


def _recost(o, platform: Platform) -> tuple[float, float]:
    """(scan_s, clear_s) of an outcome's counts on ``platform`` (the scan + clear model)."""
    scan = platform.scan_s(o.scanned_bytes, o.scan_loads, o.scan_entries, o.scan_extents,
                           o.scan_lookups)
    return scan, platform.clear_s(o.pages_reset * kernel.PAGE_SIZE)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RECOST_RTOL, abs_tol=1e-15)


class _Costing:
    """One strategy on one host: (scan_s, clear_s, downtime_s) on any platform,
    re-costed from its counts where that reproduces its own assess() (module doc)."""

    def __init__(self, strategy, host: KexecHost, platform: Platform, ranges, assess_kw,
                 checked: dict | None = None):
        self.strategy, self.host, self.kw = strategy, host, assess_kw
        self.base = strategy.assess(host, platform, **assess_kw)
        # the structure whose measured costs assess() models its scan with
        self.structure = strategy.scan_structure(self.base.engine)
        self.usable = bool(self.base.kexec_allowed) and bool(
            getattr(self.base, "representable", True)) and math.isfinite(self.base.downtime_s)
        self.recost = False
        key = (strategy.name, id(host))
        if self.usable and checked is not None and key in checked:
            # checked on another platform of this host (whose CPUs may not have
            # mattered): here its central row and its all-CPU row must agree too
            everyone = _vary(platform.with_cpus(platform.cpus_total),
                             **{f: r[1] for f, r in ranges.items()})
            self.recost = (checked[key] and self._agrees(self.base, platform)
                           and self._agrees(strategy.assess(host, everyone, **assess_kw),
                                            everyone))
        elif self.usable:
            probes = [_vary(platform.with_cpus(platform.cpus_total),
                            **{f: r[0] for f, r in ranges.items()}),
                      _vary(platform.with_cpus(max(platform.cpus_total // 2, 1)),
                            **{f: r[1] for f, r in ranges.items()})]
            self.recost = self._agrees(self.base, platform) and all(
                self._agrees(strategy.assess(host, p, **assess_kw), p) for p in probes)
            if checked is not None:
                checked[key] = self.recost

    def _agrees(self, o, p: Platform) -> bool:
        scan, clear = _recost(self.base, self._costed_on(p))
        return _close(scan, o.scan_s) and _close(clear, o.clear_s) and \
            _close(scan + clear, o.downtime_s)

    def times(self, p: Platform) -> tuple[float, float, float]:
        if not self.usable:
            return math.nan, math.nan, math.nan
        if self.recost:
            scan, clear = _recost(self.base, self._costed_on(p))
            return scan, clear, scan + clear
        o = self.strategy.assess(self.host, p, **self.kw)
        return float(o.scan_s), float(o.clear_s), float(o.downtime_s)

    def downtime(self, p: Platform) -> float:
        return self.times(p)[2]

    def _costed_on(self, p: Platform) -> Platform:
        return p.for_structure(self.structure)


def _ends(costing: _Costing, p: Platform, ranges) -> tuple[dict, dict, dict]:
    """Per parameter: downtime at its low and high end (others central) on
    ``p``, and the values that lower / raise the downtime."""
    at = {f: (costing.downtime(_vary(p, **{f: lo})), costing.downtime(_vary(p, **{f: hi})))
          for f, (lo, hi, _) in ranges.items()}
    lower = {f: (ranges[f][0] if d_lo <= d_hi else ranges[f][1]) for f, (d_lo, d_hi) in at.items()}
    upper = {f: (ranges[f][1] if d_lo <= d_hi else ranges[f][0]) for f, (d_lo, d_hi) in at.items()}
    return at, lower, upper


def measured_shard_pfns(max_pfn: int, cpus: int) -> int:
    """The shard size of :func:`measured_scans`: the largest power of two
    >= MIN_SHARD_PFNS cutting [0, max_pfn) into >= SHARDS_PER_CPU * ``cpus``
    shards (MIN_SHARD_PFNS where even that many would be fewer)."""
    want = SHARDS_PER_CPU * max(int(cpus), 1)
    size = 1 << max(int(max_pfn - 1).bit_length(), MIN_SHARD_PFNS.bit_length() - 1)
    while size > MIN_SHARD_PFNS and -(-max_pfn // size) < want:
        size >>= 1
    return size


def sharded_scan(tracker: str, max_pfn: int, found, shard_pfns: int,
                 repeat: int = 5) -> Sharded:
    """Tracker ``tracker`` (a name of ALL_TRACKERS) over the extent set ``found``
    in [0, max_pfn), built once per aligned shard of ``shard_pfns`` here
    (shard.sharded_build in this process, an Extents source), each shard's
    whole extents() scan timed ``repeat`` times, the structure dropped
    before the next shard."""
    [sh] = sharded_build(None, [tracker], max_pfn, shard_pfns, Extents(*found), repeat,
                         scan_pfns=False, builds=1)
    return sh


def measured_scans(host: KexecHost, strategies, cpus, *, kernel_code: bool = True,
                   repeat: int = 5) -> dict[str, tuple[dict[int, float], str]]:
    """strategy name -> ({CPU count: scan_measured_s}, note) for each hooked
    tracker strategy of ``strategies`` (module doc; the others:
    MEASURED_SKIPPED), its structure built over ``host`` in shards
    (:func:`measured_shard_pfns` of the largest of ``cpus``) on the engine
    the verdict timed: the ``@kernel`` twin where ``kernel_code`` and it
    runs, else the emulation."""
    cpus = sorted({int(c) for c in cpus})
    shard_pfns = measured_shard_pfns(host.max_pfn, cpus[-1])
    out, built = {}, {}
    for s in strategies:
        cls = s.tracker_cls
        if cls is None or s.name in MEASURED_SKIPPED or reads_struct_pages(cls):
            continue
        if s.measure_key not in built:           # fallback-bitmap shares bitmap's shards
            twin = kernel_twin(cls.name) if kernel_code else None
            name = (twin or cls).name
            sh = sharded_scan(name, host.max_pfn, s.fallback_found(host), shard_pfns, repeat)
            # the engine last, in parentheses: a caption common to every option drops it
            note = (f"{MEASURED_NOTE}; {len(sh.shards)} shards of {shard_pfns:,} PFNs, "
                    f"median of {repeat} scans each ({name})")
            built[s.measure_key] = ({c: sh.scan_s(c) for c in cpus}, note)
        out[s.name] = built[s.measure_key]
    return out


def sweep(host: KexecHost, platform: Platform, strategies, *, scenario: str,
          platform_name: str | None = None, assess_kw: dict | None = None,
          counts=CPU_COUNTS, tornado_cpus=None, ranges=None, checked: dict | None = None,
          measured: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(sensitivity rows, tornado rows) of ``strategies`` on ``host`` (module doc).

    ``assess_kw``: what the verdict table passed to ``assess()`` (emulate,
    kernel_code, cache), so each structure's measurement is the one the
    verdict used.  ``tornado_cpus``: CPU counts of the tornado rows (default:
    1 and all of the platform).  ``checked``: a dict kept across the platforms
    of one host (re-costing is then verified once per strategy).
    ``measured``: :func:`measured_scans` of this host, put on the rows of a
    platform whose kind is "measured" (scan_measured_s NaN elsewhere)."""
    ranges = assumed_ranges(platform=platform) if ranges is None else ranges
    kw = dict(assess_kw or {})
    pname = platform_name or platform.name
    base_plat = platform.with_cpus(1)
    cpus = cpu_counts(platform, counts)
    tornado_at = set(tornado_cpus if tornado_cpus is not None else (1, platform.cpus_total))
    here = (measured or {}) if platform.kind == "measured" else {}
    sens, torn = [], []
    for s in strategies:
        c = _Costing(s, host, base_plat, ranges, kw, checked)
        by_cpus, note = here.get(s.name, ({}, ""))
        for k in cpus:
            p = platform.with_cpus(k)
            scan, clear, down = c.times(p)
            row = {"strategy": s.name, "scenario": scenario, "platform": pname,
                   "cpus_at_reset": k, "downtime_s": down, "downtime_low_s": math.nan,
                   "downtime_high_s": math.nan, "scan_s": scan, "clear_s": clear,
                   "rank": math.nan, "kind": "modeled",
                   "scan_measured_s": by_cpus.get(k, math.nan),
                   "scan_measured_note": note if k in by_cpus else "",
                   # how busy the machine was while scan_measured_s was timed: the caller's
                   "others_cpu_share": math.nan, "load_1min": math.nan}
            if c.usable:
                at, lower, upper = _ends(c, p, ranges)
                row["downtime_low_s"] = c.downtime(_vary(p, **lower))
                row["downtime_high_s"] = c.downtime(_vary(p, **upper))
                if k in tornado_at:
                    for f, (lo, hi, src) in ranges.items():
                        torn.append({"strategy": s.name, "scenario": scenario,
                                     "platform": pname, "cpus_at_reset": k, "param": f,
                                     "source": src, "value_low": lo,
                                     "value_base": float(getattr(p, f)), "value_high": hi,
                                     "downtime_base_s": down, "downtime_at_low_s": at[f][0],
                                     "downtime_at_high_s": at[f][1]})
            sens.append(row)
    _rank(sens)
    return sens, torn


def _rank(rows: list[dict]) -> None:
    """rank = 1 + the strategies with less downtime at the same scenario,
    platform and CPU count (ties share a rank); NaN where kexec is refused."""
    df = pd.DataFrame(rows)
    if df.empty:
        return
    r = df.groupby(["scenario", "platform", "cpus_at_reset"])["downtime_s"].rank(method="min")
    for row, x in zip(rows, r):
        row["rank"] = x


def crossovers(sensitivity: pd.DataFrame, *, top: int = 2, among=None) -> pd.DataFrame:
    """CPU counts where the order of the ``top`` least-downtime strategies
    changes, per scenario and platform.  ``among``: the strategy names that
    compete (default every one with a downtime).  One row per change:
    scenario, platform, cpus_before, cpus_at (the CPU count where the new
    order first holds), order_before, order_after (names joined by " < "),
    leader_before, leader_after, leader_changed."""
    df = sensitivity.dropna(subset=["downtime_s"])
    if among is not None:
        df = df[df["strategy"].isin(list(among))]
    rows = []
    for (sc, plat), g in df.groupby(["scenario", "platform"], sort=False):
        prev = prev_k = None
        for k, at in g.groupby("cpus_at_reset", sort=True):
            order = tuple(at.sort_values(["downtime_s", "strategy"])["strategy"].head(top))
            if prev is not None and order != prev:
                rows.append({"scenario": sc, "platform": plat, "cpus_before": int(prev_k),
                             "cpus_at": int(k), "order_before": " < ".join(prev),
                             "order_after": " < ".join(order), "leader_before": prev[0],
                             "leader_after": order[0], "leader_changed": prev[0] != order[0]})
            prev, prev_k = order, k
    return pd.DataFrame(rows, columns=["scenario", "platform", "cpus_before", "cpus_at",
                                       "order_before", "order_after", "leader_before",
                                       "leader_after", "leader_changed"])


def largest_swings(tornado: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` (strategy, parameter) pairs of a tornado table whose range
    moves the downtime most, relative to its central value: columns of the
    table plus ``swing`` = (max - min of the two ends) / downtime_base_s."""
    t = tornado.dropna(subset=["downtime_base_s"])
    t = t[t["downtime_base_s"] > 0].copy()
    ends = t[["downtime_at_low_s", "downtime_at_high_s"]]
    t["swing"] = (ends.max(axis=1) - ends.min(axis=1)) / t["downtime_base_s"]
    return t.sort_values("swing", ascending=False).head(n)
