"""The Dask client of every sweep (trackers/cluster.py): a local cluster has
one timing worker and timed units run there; results come back in the given
order; each task's peak RSS is its own; bench-core and the report's steps run
on a scheduler given by address; a cluster without a timing worker is
refused.  Facts only, never a timing."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster, get_worker

import trackers.cluster as cluster_module
from trackers.__main__ import main
from trackers.cluster import (TIMING, Unit, WorkerLost, connect, local_cluster, run_units,
                              with_peak_rss)
from trackers.report.steps import Step, run_steps


def _where(i):
    return i, get_worker().address


def test_local_cluster_has_one_timing_worker_and_timed_units_run_there(client):
    workers = client.scheduler_info()["workers"]
    timing = [a for a, w in workers.items() if w["resources"].get(TIMING)]
    assert len(workers) == 2 and len(timing) == 1
    got = run_units(client, [Unit(_where, (i,), timed=i % 2 == 0) for i in range(8)],
                    progress=False)
    assert [i for i, _ in got] == list(range(8))
    assert {w for i, w in got if i % 2 == 0} == set(timing)


def _touch(nbytes):
    a = np.ones(nbytes // 8)
    return float(a[-1])


def test_each_task_reports_its_own_peak_rss(client):
    big, small = run_units(client, [Unit(with_peak_rss, (_touch, 256 << 20), timed=True),
                                    Unit(with_peak_rss, (_touch, 8), timed=True)],
                           progress=False)
    assert big[0] == small[0] == 1.0
    assert big[1] - small[1] >= 200 << 20        # the second is not charged the first's peak


def test_bench_core_runs_on_a_scheduler_by_address(cluster, tmp_path):
    out = tmp_path / "bench.csv"
    assert main(["bench-core", "--pfns", "65536", "--repeat", "1", "--trackers", "bitmap",
                 "--engine", "emulation", "--conversions", "5", "--estimate-pfns", "65536",
                 "--scheduler", cluster.scheduler_address, "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["tracker"]) == ["bitmap"] and df["peak_rss_bytes"].iloc[0] > 0


def _rows(x):
    return [{"x": x}]


def _record(seen, x):
    seen.append(x)
    return [{"x": x, "seen": len(seen)}]


def test_report_steps_run_as_tasks_in_order_chains_sharing_state(cluster, monkeypatch):
    monkeypatch.setenv("TRACKERS_SCHEDULER", cluster.scheduler_address)
    chained = []
    steps = [Step("a", "one", _rows, (1,)),
             Step("b", "c1", _record, (chained, 10), timed=True, chain="c"),
             Step("a", "two", _rows, (2,)),
             Step("b", "c2", _record, (chained, 20), timed=True, chain="c")]
    tables = run_steps(steps)
    assert tables["a"]["x"].tolist() == [1, 2]
    assert tables["b"].to_dict("records") == [{"x": 10, "seen": 1}, {"x": 20, "seen": 2}]


def test_the_scan_chain_shares_its_costs_within_its_task(cluster, monkeypatch):
    """The scan figure's second size is predicted from the first's cost, kept
    in the chain's one ScanCosts: over a budget nothing meets, it is not built."""
    from trackers.report import config, steps
    monkeypatch.setenv("TRACKERS_SCHEDULER", cluster.scheduler_address)
    cfg = config.quick_config()
    cfg.trackers, cfg.kernel_code = ["bitmap"], False
    cfg.scan_hosts, cfg.scan_time_budget_s = [1 << 16, 1 << 18], 1e-9
    chain = [s for s in steps.plan(cfg) if s.chain == "scan_time"]
    df = run_steps(chain)["scan_time"]
    here = df[(df["tracker"] == "bitmap") & (df["platform"] == "this-machine")]
    assert here["host_pfns"].tolist() == [1 << 16, 1 << 18]
    assert here["scan_runs"].tolist()[0] > 0 and here["scan_runs"].tolist()[1] == 0
    assert here["skipped"].iloc[1].startswith("not built: predicted ")


def test_a_cluster_without_a_timing_worker_is_refused():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as plain:
        with pytest.raises(ValueError, match=f"none with the resource '{TIMING}'"):
            with connect(plain.scheduler_address):
                pass


@pytest.mark.slow
def test_timed_workers_each_declare_timing():
    c = local_cluster(2, timed_workers=2)
    try:
        with Client(c) as client:
            client.wait_for_workers(2)
            workers = client.scheduler_info()["workers"].values()
            assert [w["resources"].get(TIMING) for w in workers] == [1, 1]
    finally:
        c.close()


def _interval(seconds):
    import time
    t0 = time.monotonic()
    time.sleep(seconds)
    return t0, time.monotonic()


@pytest.mark.slow
def test_timed_units_run_at_once_only_as_far_as_their_claims_fit():
    """Two timing workers; units claiming 6 of a 10-byte capacity never
    overlap, and one claiming more than all of it still runs (alone)."""
    c = local_cluster(2, timed_workers=2)
    try:
        with Client(c) as client:
            client.wait_for_workers(2)
            units = [Unit(_interval, (0.3,), timed=True, claim_bytes=6) for _ in range(3)]
            units.append(Unit(_interval, (0.1,), timed=True, claim_bytes=11))
            got = sorted(run_units(client, units, progress=False, capacity_bytes=10))
    finally:
        c.close()
    assert all(a[1] <= b[0] for a, b in zip(got, got[1:]))     # one after another


def test_timed_workers_size_only_the_local_cluster(cluster, capsys):
    assert main(["bench-core", "--pfns", "65536", "--timed-workers", "2",
                 "--scheduler", cluster.scheduler_address]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tdx-trackers bench-core: error: --timed-workers 2 sizes the local cluster; on the "
        f"cluster at {cluster.scheduler_address} start workers with --resources timing=1 "
        f"instead")


@pytest.mark.parametrize("scan_pfns", [False, True])
def test_a_sharded_bench_core_runs_once_and_gives_the_shards_spread(cluster, tmp_path,
                                                                   scan_pfns):
    out = tmp_path / "sharded.csv"
    assert main(["bench-core", "--pfns", str(1 << 18), "--shard-pfns", str(1 << 16),
                 "--trackers", "bitmap", "--engine", "emulation",
                 "--scheduler", cluster.scheduler_address, "--csv", str(out)]
                + ["--scan-pfns"] * scan_pfns) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["shards"] == 4
    timed = ("populate_s", "scan_extents_s") + ("scan_pfns_s",) * scan_pfns
    if not scan_pfns:                 # not timed by default in a sharded run
        assert all(pd.isna(row[f"scan_pfns_s_{x}"]) for x in ("median", "shard_max"))
    for t in timed:
        assert row[f"{t}_min"] == row[f"{t}_median"] == row[f"{t}_max"]   # one run
        assert row[f"{t}_shard_min"] <= row[f"{t}_shard_median"] <= row[f"{t}_shard_max"]
        assert row[f"{t}_shard_max"] <= row[f"{t}_median"]                 # a shard of the sum


# --- a lost worker is one line naming what it took, never a hang ------------

def _kill_own_worker():
    import os
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


def _square(x):
    return x * x


@pytest.mark.slow
def test_a_worker_that_dies_takes_only_its_own_unit():
    """The timing worker dies running one unit: that unit is a WorkerLost
    naming it; the timed units behind it run on the worker its nanny
    restarts (they were not queued on the dead one)."""
    c = local_cluster(2)
    try:
        with Client(c) as client:
            client.wait_for_workers(2)
            units = [Unit(_square, (2,), timed=True, label="first"),
                     Unit(_kill_own_worker, timed=True, label="bitmap@kernel"),
                     *(Unit(_square, (i,), timed=True, label=f"after {i}") for i in range(3)),
                     Unit(_square, (5,), label="modeled")]
            got = run_units(client, units, progress=False, errors="return")
            assert got[0] == 4 and got[2:] == [0, 1, 4, 25]
            lost = got[1]
            assert isinstance(lost, WorkerLost) and lost.what == "bitmap@kernel"
            assert re.fullmatch(r"its worker \(tcp://127\.0\.0\.1:\d+\) died while running it "
                                r"\(killed, or out of memory\)", lost.why)
            with pytest.raises(WorkerLost, match=r"^bitmap@kernel: its worker \(tcp://"):
                run_units(client, units[1:2], progress=False)
    finally:
        c.close()


def _kill_own_nanny():
    import os
    import signal
    os.kill(os.getppid(), signal.SIGKILL)          # the `dask worker` process: its nanny
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_losing_the_only_timing_worker_stops_the_run_naming_it(monkeypatch):
    """The cluster's only timing worker is lost for good (its nanny killed,
    as `kill` of a `dask worker`): the run stops after TIMING_GRACE_S with
    one line naming the worker and the timed units that cannot run."""
    monkeypatch.setattr(cluster_module, "TIMING_GRACE_S", 2.0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as plain:
        address = plain.scheduler_address
        timing = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                   "--nthreads", "1", "--resources", f"{TIMING}=1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            with Client(address) as client:
                client.wait_for_workers(2, timeout=120)
                [lost] = cluster_module.timing_workers(client)
                units = [Unit(_kill_own_nanny, timed=True, label="maple@kernel"),
                         Unit(_square, (3,), timed=True, label="pageflags"),
                         Unit(_square, (4,), label="modeled")]
                with pytest.raises(WorkerLost) as exc:
                    run_units(client, units, progress=False, errors="return")
            assert str(exc.value) == (
                f"the cluster at {address} lost its timing worker ({lost}) and has had none "
                f"for 2 s: 2 timed task(s) cannot run (maple@kernel, pageflags); start one "
                f"with `dask worker {address} --nthreads 1 --resources timing=1`")
        finally:
            timing.kill()
            timing.wait()


def test_a_lost_worker_is_one_line_and_status_1(monkeypatch, capsys):
    import trackers.workloads.cli as scenarios_cli

    def run(args):
        raise WorkerLost("shard 3/64", "its worker (tcp://127.0.0.1:1) died while running "
                                       "it (killed, or out of memory)")

    monkeypatch.setattr(scenarios_cli, "run", run)
    assert main(["scenarios"]) == 1
    assert capsys.readouterr().err == (
        "tdx-trackers scenarios: error: shard 3/64: its worker (tcp://127.0.0.1:1) died while "
        "running it (killed, or out of memory)\n")


def _out_of_memory():
    raise MemoryError("Unable to allocate 8.00 GiB for an array")


@pytest.mark.slow
def test_out_of_memory_in_a_task_is_one_line(monkeypatch, capfd):
    """A task that runs out of memory: the command's one line, and nothing
    from the workers (distributed logs a failed task's traceback; silenced,
    as the command says what failed)."""
    import trackers.workloads.cli as scenarios_cli

    def run(args):
        with connect(n_workers=1) as client:
            run_units(client, [Unit(_out_of_memory, label="kexec tiny")], progress=False)

    monkeypatch.setattr(scenarios_cli, "run", run)
    capfd.readouterr()
    assert main(["scenarios"]) == 1
    assert capfd.readouterr().err == ("tdx-trackers scenarios: error: out of memory: Unable to "
                                      "allocate 8.00 GiB for an array\n")
