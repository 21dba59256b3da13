"""The report's steps: which steps a run takes (:func:`plan`), and how they
run as Dask tasks (:func:`run_steps`); one DataFrame per table.

Every table is plain columns a notebook can reload from CSV.  Each row says
whether its figures are ``measured`` (timed on this machine; the ``engine``
column names what ran: the kernel's own code, a C layout of a structure the
kernel keeps, or a Python/numba emulation) or ``modeled`` (kernel struct
sizes and platform rates) in its column names or in a ``kind`` column.

Tables (file stem -> the module whose docstring says what it holds):

* ``memory_vs_host``, ``bits_per_page``: memory.py;
* ``scan_time``: scan.py;
* ``kexec``, ``sensitivity``, ``tornado``, ``race``, ``race_order``: kexec.py;
* ``conversion_cost``: conversion.py;
* ``validation``, ``wait``: validation.py;
* ``sharded`` (only with --sharded or --sharded-csv): sharded.py, from the
  report's own shard steps (:func:`sharded_steps`, combined by
  :func:`add_sharded`) or bench-core's CSVs.

``plan(config)`` lists the steps so a progress bar knows the total work.
Each step is a module-level function of the table's module and its
arguments (:class:`Step`); what steps share is an argument too, made here
and owned by one chain: the scan chain's :class:`~trackers.report.scan.ScanCosts`
(each size predicts the next from the last) and each scenario chain's
:class:`~trackers.report.kexec.ScenarioHosts` (its kexec step builds and
measures the host, its sensitivity steps re-cost it).  Each memory, bits
per page and scan step generates its own set and drops it on return.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ..cluster import Unit, connect, run_units
from ..kexec.race import ZAP_FIRST
from ..sets import host_label
from . import sharded
from .config import ReportConfig
from .conversion import conversion_rows
from .kexec import NO_TD, ScenarioHosts, kexec_rows, race_rows, sensitivity_rows
from .memory import fraction_rows, memory_rows, sparse_host_rows
from .scan import ScanCosts, scan_rows
from .validation import validation_rows, wait_rows


@dataclass
class Step:
    """One unit of the report: ``run()`` returns rows of ``table``, as
    ``fn(*args)``.  ``fn`` is a module-level function, so a Step pickles by
    name with its arguments (a task, trackers/cluster.py) and a reader finds
    what it runs.  ``timed``: it times something on this machine, so it runs
    alone on the timing worker; ``chain``: steps of one chain run in order in
    one task, so an object in the args of several of them is one object there
    (scan.ScanCosts, kexec.ScenarioHosts)."""

    table: str
    label: str
    fn: Callable[..., list[dict]]
    args: tuple = ()
    timed: bool = False
    chain: str = ""

    def __post_init__(self):
        where = getattr(self.fn, "__qualname__", "")
        if not where or "<" in where:
            raise TypeError(f"step {self.label!r}: {self.fn!r} is not a module-level "
                            f"function (a lambda or closure hides what it runs)")

    def run(self) -> list[dict]:
        return self.fn(*self.args)


def plan(cfg: ReportConfig) -> list[Step]:
    """Every step of a run, in order (tables: memory_vs_host, bits_per_page, scan_time,
    kexec, sensitivity and tornado, race, conversion_cost, validation, wait)."""
    steps = []
    for n in cfg.sweep_hosts:
        steps.append(Step("memory_vs_host", f"memory {host_label(n)}", memory_rows, (cfg, n)))
    for name in cfg.sparse_hosts:
        steps.append(Step("memory_vs_host", f"memory {name}", sparse_host_rows, (cfg, name)))
    for f in cfg.fractions:
        steps.append(Step("bits_per_page", f"bits/page at {f:g}", fraction_rows, (cfg, f)))
    costs = ScanCosts()                        # the scan chain's: each size predicts the next
    for n in cfg.scan_hosts:
        steps.append(Step("scan_time", f"scan {host_label(n)}", scan_rows, (cfg, n, costs),
                          timed=True, chain="scan_time"))
    steps.extend(kexec_steps(cfg))
    steps.append(Step("conversion_cost", "conversion cost", conversion_rows, (cfg,),
                      timed=True))
    steps.append(Step("validation", "validation", validation_rows, (cfg,), timed=True))
    steps.append(Step("wait", "wait before the next kernel", wait_rows, (cfg,)))
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
    return [Step(SHARD_STEPS, label, fn, args, timed=True) for pfns in cfg.sharded_pfns
            for label, fn, args in sharded.shard_runs(names, pfns, cfg.shard_pfns, cfg.seed,
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


def kexec_steps(cfg: ReportConfig) -> list[Step]:
    """Every strategy on each scenario and platform preset, then its sensitivity;
    the conversion race."""
    steps = []
    idle = [f"{n}{NO_TD}" for n in cfg.idle_scenarios if n in cfg.scenarios]
    own = [] if cfg.user_host is None else [cfg.user_host.name]
    # one chain (one task) per scenario, sharing one ScenarioHosts: the
    # sensitivity re-costs the kexec's host and measurements, and the variant
    # without TDs reuses its host; a chain is timed where its kexec step builds
    # and times structures
    hosts: dict[str, ScenarioHosts] = {}
    for name in [*cfg.scenarios, *own]:
        hosts[name] = ScenarioHosts(cfg)
        timed = name in own or cfg.emulate_scenarios is None or name in cfg.emulate_scenarios
        steps.append(Step("kexec", f"kexec {name}", kexec_rows, (cfg, name, hosts[name]),
                          timed=timed, chain=f"scenario {name}"))
        steps.append(Step("sensitivity", f"sensitivity {name}", sensitivity_rows,
                          (cfg, name, hosts[name]), chain=f"scenario {name}"))
    # the variants without TDs are not named scenarios: sensitivity rows only
    for name in idle:
        base = name[:-len(NO_TD)]
        steps.append(Step("sensitivity", f"sensitivity {name}", sensitivity_rows,
                          (cfg, name, hosts[base]), chain=f"scenario {base}"))
    steps.append(Step("race", "race", race_rows, (cfg,)))
    steps.append(Step("race_order", "race (zap-first)", race_rows, (cfg, ZAP_FIRST)))
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


def _run_chain(chain: list[Step]) -> list[tuple[list[dict], float]]:
    """The rows of each step of a chain, run in order in this process (a
    task), each with the seconds it took (perf_counter around ``run()``)."""
    out = []
    for step in chain:
        t0 = time.perf_counter()
        rows = step.run()
        out.append((rows, time.perf_counter() - t0))
    return out


def run_steps(steps: list[Step], progress=None, scheduler: str | None = None,
              step_times: list | None = None) -> dict[str, pd.DataFrame]:
    """Run ``steps`` as Dask tasks (trackers/cluster.py: a local cluster, or
    the scheduler at ``scheduler`` / $TRACKERS_SCHEDULER): each step, or each
    chain of steps, one task.  The timed ones first, on the timing worker one
    at a time and alone: no other step runs meanwhile, so a timed figure
    shares the machine with nothing of the report's own (its
    ``others_cpu_share`` measures the rest); then the others, on every
    worker.  Return table name -> DataFrame, rows in the order of ``steps``
    (tables with no rows omitted); ``progress`` (a tqdm bar) advances by one
    per step as tasks finish.  ``step_times``: a list that gets one dict per
    step, in the order of ``steps``: its label, table, whether it is timed,
    and the seconds it ran in its worker."""
    groups: list[list[Step]] = []
    chains: dict[str, list[Step]] = {}
    for step in steps:
        if step.chain and step.chain in chains:
            chains[step.chain].append(step)
            continue
        groups.append([step])
        if step.chain:
            chains[step.chain] = groups[-1]
    # the timed groups first, alone on the machine; then the modeled ones
    groups.sort(key=lambda g: not any(s.timed for s in g))
    units = [Unit(_run_chain, (g,), timed=any(s.timed for s in g),
                  label=g[0].label) for g in groups]
    done: dict[int, tuple[list[dict], float]] = {}
    if units:
        timed = sum(u.timed for u in units)
        weights = [len(g) for g in groups]
        with connect(scheduler) as client:
            results = [r for part in (slice(0, timed), slice(timed, None)) if units[part]
                       for r in run_units(client, units[part], bar=progress,
                                          weights=weights[part],
                                          progress=progress is not None)]
        for g, ran in zip(groups, results):
            for step, r in zip(g, ran):
                done[id(step)] = r
    tables: dict[str, list[dict]] = {}
    for step in steps:
        rows, seconds = done[id(step)]
        tables.setdefault(step.table, []).extend(rows)
        if step_times is not None:
            step_times.append({"step": step.label, "table": step.table, "timed": step.timed,
                               "seconds": round(seconds, 3)})
    return {name: pd.DataFrame(r) for name, r in tables.items() if r}
