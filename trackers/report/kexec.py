"""The report's kexec tables: every strategy on each scenario and platform
preset (trackers.kexec on trackers.workloads scenarios), the sensitivity of
its downtime, and the conversion race.

Tables (file stem -> content):

* ``kexec``           strategy x scenario x platform: trackers.kexec.evaluate;
  with --memmap the user's host is one more scenario, named after its file;
  a row whose scan was timed here has ``others_cpu_share`` (the share of
  this machine's CPU time other tasks took while its scenario's structures
  were built and timed, trackers/machine_load.py) and ``load_1min``;
* ``sensitivity``     strategy x scenario x platform x CPUs at reset: the
  modeled downtime at the central values and its band over the ASSUMED
  parameter ranges, and the rank among the strategies that allow kexec
  (trackers.kexec.sensitivity.sweep, on the verdict's own measurements);
  a row with ``scan_measured_s`` has the ``others_cpu_share`` and
  ``load_1min`` of the window its sharded scans were timed in;
* ``tornado``         strategy x scenario x platform x ASSUMED parameter (at 1
  CPU and at all CPUs): the downtime with that parameter at each end;
* ``race``            strategy x kexec kind x conversion rate x SEAMCALL cost
  (low/base/high): P(>= 1 page missed per kexec) and the mean with 95 %
  intervals (trackers.kexec.race.race_band), in the attributes-first order
  (Isaku Yamahata's premise);
* ``race_order``      the same at central SEAMCALL costs in mainline's order,
  the zap before the attribute store (race.ZAP_FIRST).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..extents import union
from ..kexec import PLATFORMS, STRATEGIES, KexecHost, evaluate, from_workload
from ..kexec.race import race, race_band
from ..kexec.sensitivity import cpu_counts, measured_scans, sweep
from ..machine_load import LoadWindow
from ..workloads import scenario


def _chosen(cfg):
    """Every option; of those that scan a hooked tracker only those whose
    tracker was asked for (fallback-bitmap and parallel-reset with bitmap)."""
    return [s for s in STRATEGIES.values()
            if not s.seamcall_hooked or s.tracker_cls is None
            or s.tracker_cls.name in cfg.trackers]


#: the suffix of a scenario judged after its TDs are destroyed
NO_TD = "/no-td"


def idle_host(host: KexecHost) -> KexecHost:
    """``host`` after every TD is destroyed: still private are the PAMT (the
    TDMR list names it) and the leaked pages; no TD runs, none holds memory."""
    return KexecHost(max_pfn=host.max_pfn, ram=host.ram, private=union(host.pamt, host.leaked),
                     pamt=host.pamt, leaked=host.leaked, td_pages=0, tds_running=0,
                     name=f"{host.name}{NO_TD}")


@dataclass
class HeldHost:
    """A scenario's host as its chain holds it: ``emulate``: its structures
    are built and timed (else estimate()); ``measured``: trackers.kexec.evaluate's
    measurement cache of this host, filled by the kexec step, re-costed by
    the sensitivity step."""

    host: KexecHost
    emulate: bool
    measured: dict = field(default_factory=dict)


class ScenarioHosts:
    """The host of one scenario's chain of steps, built once: the chain's
    kexec step builds it and measures its structures; its sensitivity step
    re-costs the same host and measurements; the sensitivity step of its
    variant without TDs (NAME + NO_TD) derives that host from it.

    One host held at a time (a 16 TiB host is large): asking for another
    drops the one held.  kexec_steps (steps.py) makes one per chain and
    passes it to each of the chain's steps; the chain runs in order in one
    task (steps.run_steps), which unpickles the steps together, so they
    share it.  A step run alone builds its own host (the counts it costs
    are deterministic)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.held: dict[str, HeldHost] = {}

    def get(self, name: str) -> HeldHost:
        """Scenario ``name``'s host (or ``cfg.user_host``'s, by its name; or,
        for NAME + NO_TD, NAME's after its TDs are destroyed)."""
        if name in self.held:
            return self.held[name]
        cfg = self.cfg
        base = name[:-len(NO_TD)] if name.endswith(NO_TD) else name
        kept = self.held.get(base)
        self.held.clear()
        own = (cfg.user_host if cfg.user_host is not None and base == cfg.user_host.name
               else None)
        if kept is not None:
            host = kept.host
        else:
            host = from_workload(own.build(cfg.seed) if own is not None
                                 else scenario(base, cfg.seed))
        if base != name:
            host = idle_host(host)
        # the user's host is built and timed up to the strategies' build limit,
        # not cfg.emulate_max_pfn: its measured scan and model error are the point
        emulate = own is not None or host.max_pfn <= cfg.emulate_max_pfn and (
            cfg.emulate_scenarios is None or base in cfg.emulate_scenarios)
        self.held[name] = HeldHost(host, emulate)
        return self.held[name]


def kexec_rows(cfg, name: str, hosts: ScenarioHosts) -> list[dict]:
    """A step of kexec: every chosen strategy on scenario ``name``'s host, on
    each platform preset; its structures are built and timed once, in
    ``hosts``'s measurement cache."""
    held = hosts.get(name)
    host, emulate, measured = held.host, held.emulate, held.measured
    chosen = _chosen(cfg)
    rows = []
    with LoadWindow() as window:               # the first platform builds and times
        frames = [(pname, plat, evaluate(host, plat, strategies=chosen, emulate=emulate,
                                         kernel_code=cfg.kernel_code, cache=measured))
                  for pname, plat in PLATFORMS.items()]   # each structure built once
    for pname, plat, df in frames:
        timed = df["scan_runs"] > 0
        df["others_cpu_share"] = np.where(timed, window.others_cpu_share, np.nan)
        df["load_1min"] = np.where(timed, window.loadavg_1min, np.nan)
        df["scenario"] = name
        df["platform_name"] = pname
        df["platform_kind"] = plat.kind
        df["platform_cpus"] = plat.cpus_at_reset
        df["emulated"] = emulate
        df["seed"] = cfg.seed
        rows.extend(df.to_dict("records"))
    return rows


def sensitivity_rows(cfg, name: str, hosts: ScenarioHosts) -> list[dict]:
    """The CPU sweep and the tornado of every option on one scenario, each
    platform; rows of both tables, told apart by ``_table`` (split by
    steps.split_tables).  Where the scenario's trackers are built here
    (``emulate``), the measured platform's rows get the sharded scan
    measured at each CPU count (sensitivity.measured_scans)."""
    held = hosts.get(name)
    host, emulate, measured = held.host, held.emulate, held.measured
    rows = []
    checked: dict = {}                         # re-costing verified once per strategy
    here = [c for p in PLATFORMS.values() if p.kind == "measured"
            for c in cpu_counts(p, cfg.sensitivity_cpus)]
    with LoadWindow() as window:
        scans = (measured_scans(host, _chosen(cfg), here, kernel_code=cfg.kernel_code,
                                repeat=cfg.scan_repeat) if emulate and here else None)
    for pname, plat in PLATFORMS.items():
        sens, torn = sweep(host, plat, _chosen(cfg), scenario=name, platform_name=pname,
                           assess_kw={"emulate": emulate, "kernel_code": cfg.kernel_code,
                                      "cache": measured},
                           counts=cfg.sensitivity_cpus, checked=checked, measured=scans)
        for r in sens:                         # the load beside each scan timed here
            timed = math.isfinite(r["scan_measured_s"])
            r["others_cpu_share"] = window.others_cpu_share if timed else math.nan
            r["load_1min"] = window.loadavg_1min if timed else math.nan
        rows.extend({**r, "_table": "sensitivity"} for r in sens)
        rows.extend({**r, "_table": "tornado"} for r in torn)
    return rows


def race_rows(cfg, order: str | None = None) -> list[dict]:
    """A step of race (or race_order): the race on every platform, at the
    low, central and high ASSUMED SEAMCALL costs in the attributes-first order
    (``order`` None: race_band), or at the central costs in ``order``
    (race.ZAP_FIRST: kvm_vm_set_mem_attributes() zaps before its xa_store
    loop -- which options' misses rest on the premise)."""
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
