"""The report's steps (trackers/report/steps.py): each names a module-level
function and its arguments, pickles with them, and the objects a chain's
steps share (the scan chain's ScanCosts, a scenario's ScenarioHosts) are one
object after the chain is pickled as one task; the plan's labels and order."""

import pickle
import sys

import numpy as np
import pytest

from trackers.extents import union
from trackers.report import config, kexec, scan, steps
from trackers.report.kexec import NO_TD, ScenarioHosts
from trackers.report.scan import ScanCosts


def _plans():
    default = config.default_config()
    quick = config.quick_config()
    sharded = config.quick_config()
    sharded.sharded_pfns = [1 << 30]            # four 1 TiB shards: shard_step
    return {"default": steps.plan(default), "quick": steps.plan(quick),
            "sharded": steps.plan(sharded)}


@pytest.fixture(scope="module")
def plans():
    return _plans()


def test_every_step_names_a_module_level_function(plans):
    for which, plan in plans.items():
        for step in plan:
            where = step.fn.__qualname__
            assert "<lambda>" not in where and "<locals>" not in where, (which, step.label)
            # found by its name where pickle looks for it
            assert getattr(sys.modules[step.fn.__module__], where) is step.fn, step.label
            assert isinstance(step.args, tuple), step.label
    assert {s.fn for s in plans["sharded"] if s.table == steps.SHARD_STEPS} == \
        {steps.sharded.shard_step}


def test_a_step_refuses_a_lambda_a_closure_and_a_partial():
    import functools

    def inner():
        return []
    for fn in (lambda: [], inner, functools.partial(kexec.race_rows, None)):
        with pytest.raises(TypeError, match="not a module-level function"):
            steps.Step("race", "race", fn)


def test_quick_plan_labels_order_tables_and_chains():
    got = [(s.table, s.label, s.fn.__name__, s.timed, s.chain)
           for s in steps.plan(config.quick_config())]
    assert got == [
        ("memory_vs_host", "memory 1 GiB", "memory_rows", False, ""),
        ("memory_vs_host", "memory 4 GiB", "memory_rows", False, ""),
        ("memory_vs_host", "memory 16 GiB", "memory_rows", False, ""),
        ("bits_per_page", "bits/page at 0.01", "fraction_rows", False, ""),
        ("bits_per_page", "bits/page at 0.1", "fraction_rows", False, ""),
        ("bits_per_page", "bits/page at 0.5", "fraction_rows", False, ""),
        ("bits_per_page", "bits/page at 0.9", "fraction_rows", False, ""),
        ("scan_time", "scan 256 MiB", "scan_rows", True, "scan_time"),
        ("scan_time", "scan 1 GiB", "scan_rows", True, "scan_time"),
        ("scan_time", "scan 4 GiB", "scan_rows", True, "scan_time"),
        ("kexec", "kexec tiny", "kexec_rows", True, "scenario tiny"),
        ("sensitivity", "sensitivity tiny", "sensitivity_rows", False, "scenario tiny"),
        ("sensitivity", "sensitivity tiny/no-td", "sensitivity_rows", False, "scenario tiny"),
        ("race", "race", "race_rows", False, ""),
        ("race_order", "race (zap-first)", "race_rows", False, ""),
        ("conversion_cost", "conversion cost", "conversion_rows", True, ""),
        ("validation", "validation", "validation_rows", True, ""),
        ("wait", "wait before the next kernel", "wait_rows", False, ""),
    ]


def test_default_plan_labels_and_order():
    cfg = config.default_config()
    labels = [s.label for s in steps.plan(cfg)]
    scenarios = [f"{kind} {name}" for name in cfg.scenarios
                 for kind in ("kexec", "sensitivity")]
    assert labels == [
        "memory 64 GiB", "memory 256 GiB", "memory 1 TiB", "memory 4 TiB", "memory 16 TiB",
        "memory r7625-sparse",
        *(f"bits/page at {f:g}" for f in cfg.fractions),
        "scan 4 GiB", "scan 16 GiB", "scan 64 GiB", "scan 256 GiB",
        *scenarios, "sensitivity 1tib-4td/no-td",
        "race", "race (zap-first)", "conversion cost", "validation",
        "wait before the next kernel"]
    assert scenarios[:4] == ["kexec 1tib-4td", "sensitivity 1tib-4td",
                             "kexec 16tib-dense", "sensitivity 16tib-dense"]


def test_steps_pickle_and_a_chain_shares_its_objects_after_pickling(plans):
    for which, plan in plans.items():
        back = pickle.loads(pickle.dumps(plan))
        assert [(s.table, s.label, s.fn, s.timed, s.chain) for s in back] == \
            [(s.table, s.label, s.fn, s.timed, s.chain) for s in plan], which
    plan = plans["default"]
    chain = [s for s in plan if s.chain == "scenario 1tib-4td"]
    assert [s.label for s in chain] == ["kexec 1tib-4td", "sensitivity 1tib-4td",
                                        "sensitivity 1tib-4td/no-td"]
    # a chain is one task: its steps are pickled together, and share one ScenarioHosts
    task = pickle.loads(pickle.dumps(chain))
    assert isinstance(task[0].args[2], ScenarioHosts)
    assert task[0].args[2] is task[1].args[2] is task[2].args[2]
    # each scenario's chain its own
    kexecs = [s for s in plan if s.table == "kexec"]
    assert len({id(s.args[2]) for s in kexecs}) == len(kexecs)
    scans = pickle.loads(pickle.dumps([s for s in plan if s.chain == "scan_time"]))
    assert len(scans) == 4 and isinstance(scans[0].args[2], ScanCosts)
    assert all(s.args[2] is scans[0].args[2] for s in scans)


def test_scenario_hosts_builds_once_per_chain_and_derives_the_variant_without_tds(
        monkeypatch):
    built = []

    def counted(name, seed):
        built.append(name)
        return real(name, seed)
    real = kexec.scenario
    monkeypatch.setattr(kexec, "scenario", counted)
    cfg = config.quick_config()
    hosts = ScenarioHosts(cfg)
    held = hosts.get("tiny")
    assert hosts.get("tiny") is held and built == ["tiny"]
    assert held.emulate and held.measured == {}
    idle = hosts.get(f"tiny{NO_TD}")
    assert built == ["tiny"]                         # derived from the host held
    assert idle.host.name == f"{held.host.name}{NO_TD}" and idle.host.tds_running == 0
    want = union(held.host.pamt, held.host.leaked)
    assert all(np.array_equal(a, b) for a, b in zip(idle.host.private, want))
    assert list(hosts.held) == [f"tiny{NO_TD}"]      # one host held at a time
    hosts.get("tiny")
    assert built == ["tiny", "tiny"]


def test_scan_costs_predict_linearly_in_the_pfns_measured():
    costs = ScanCosts()
    assert costs.predicted_s("bitmap", 1 << 20) is None
    costs.record("bitmap", 1.5, 1 << 18)
    assert costs.predicted_s("bitmap", 1 << 20) == 6.0
    assert costs.predicted_s("xarray", 1 << 20) is None


def test_a_scan_over_budget_is_not_built(monkeypatch):
    """An option its ScanCosts predicts over scan_time_budget_s keeps its model only."""
    cfg = config.quick_config()
    cfg.trackers = ["bitmap"]
    cfg.kernel_code = False
    costs = ScanCosts()
    costs.record("bitmap", 10.0, 1 << 10)
    rows = scan.scan_rows(cfg, 1 << 16, costs)
    here = [r for r in rows if r["tracker"] == "bitmap" and r["platform"] == "this-machine"]
    assert len(here) == 1 and here[0]["scan_runs"] == 0
    assert here[0]["skipped"] == "not built: predicted 10.7 min, over the 5 s budget of one size"
    assert costs.last["bitmap"] == (10.0, 1 << 10)   # nothing built: nothing recorded


def test_the_timed_steps_run_alone_before_the_others(monkeypatch):
    """run_steps hands the cluster the timed steps (chains) first, by
    themselves, and the others only once those are done: no step of the
    report runs beside a timed one."""
    from contextlib import contextmanager
    calls = []

    @contextmanager
    def fake_connect(scheduler=None):
        yield "client"

    def fake_run_units(client, units, **kw):
        calls.append([(u.label, u.timed) for u in units])
        return [steps._run_chain(*u.args) for u in units]

    monkeypatch.setattr(steps, "connect", fake_connect)
    monkeypatch.setattr(steps, "run_units", fake_run_units)
    plan = [steps.Step("race", "modeled one", _rows, ("a",)),
            steps.Step("scan_time", "timed one", _rows, ("b",), timed=True),
            steps.Step("kexec", "chain head", _rows, ("c",), timed=True, chain="x"),
            steps.Step("sensitivity", "chain tail", _rows, ("d",), chain="x"),
            steps.Step("wait", "modeled two", _rows, ("e",))]
    tables = steps.run_steps(plan)
    assert calls == [[("timed one", True), ("chain head", True)],
                     [("modeled one", False), ("modeled two", False)]]
    assert {t: list(df["x"]) for t, df in tables.items()} == {
        "race": ["a"], "scan_time": ["b"], "kexec": ["c"], "sensitivity": ["d"], "wait": ["e"]}


def _rows(x):
    return [{"x": x}]


def test_a_scan_row_carries_its_load_and_the_costs_it_was_modeled_with():
    cfg = config.quick_config()
    cfg.trackers = ["bitmap"]
    cfg.kernel_code = False
    rows = scan.scan_rows(cfg, 1 << 16, ScanCosts())
    timed = [r for r in rows if r["scan_runs"] > 0]
    assert {r["tracker"] for r in timed} == {"bitmap"}       # pte-softbit: the C walk only
    for r in timed:
        assert 0 <= r["others_cpu_share"] <= 1 and r["load_1min"] >= 0
    spr = [r for r in rows if r["platform"] == "spr-2s"]
    assert {r["scan_costs"] for r in spr} == {"generic"}
