"""`tdx-trackers kexec` as Dask tasks (trackers/kexec/evaluate.py): the table
from the tasks is the in-process evaluate()'s, row for row; a strategy that
builds a structure is a timed unit; the command runs on a scheduler given by
address, its race the in-process race().  Facts only, never a timing."""

import numpy as np
import pandas as pd
import pytest
from distributed import Client

from trackers.__main__ import main
from trackers.cluster import local_cluster
from trackers.kexec import STRATEGIES, evaluate, from_workload, get_platform, race
from trackers.kexec.evaluate import builds, evaluate_tasks, strategy_units
from trackers.kexec.race import chunk_sizes
from trackers.workloads import scenario

#: the columns a second run times again (everything else is counted or modeled;
#: the struct-page scan's provenance quotes its min and max)
TIMED_COLUMNS = ["scan_measured_s", "scan_measured_min_s", "scan_measured_max_s",
                 "scan_model_error", "provenance"]


@pytest.fixture(scope="module")
def cluster():
    c = local_cluster(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def tiny():
    wl = scenario("tiny", 0)
    return wl, from_workload(wl)


def test_the_tasks_give_the_in_process_table(client, tiny):
    _, host = tiny
    df, extra = evaluate_tasks(client, host, "spr-2s", emulate=False, cpus_at_reset=4,
                               progress=False)
    assert extra == []
    pd.testing.assert_frame_equal(df, evaluate(host, "spr-2s", emulate=False, cpus_at_reset=4))
    assert list(df["strategy"]) == list(STRATEGIES)


def test_built_strategies_are_timed_units_and_count_the_same(client, tiny):
    _, host = tiny
    names = ["bitmap", "pageflags", "gmem-maple", "kvm-sept", "clear-all", "dpamt-refcount"]
    chosen = [STRATEGIES[n] for n in names]
    plat = get_platform("this-machine")
    units = strategy_units(host, host, plat, chosen)
    assert [u.timed for u in units] == [True, True, True, True, False, False]
    assert [u.label for u in units] == names
    # past the build limit nothing is built, so nothing is timed; gmem-maple's
    # limit is on its inodes' pages (the TDs' memory), not on max_pfn
    below = host.max_pfn - 1
    assert [builds(s, host, build_limit_pfns=below) for s in chosen] == [
        False, False, True, False, False, False]
    assert not any(builds(s, host, build_limit_pfns=1 << 12) for s in chosen)
    assert not any(builds(s, host, emulate=False) for s in chosen)
    df, _ = evaluate_tasks(client, host, plat, strategies=names, progress=False)
    ref = evaluate(host, plat, strategies=names)
    assert (df["scan_runs"] == ref["scan_runs"]).all() and (df["scan_runs"].iloc[:4] > 0).all()
    pd.testing.assert_frame_equal(df.drop(columns=TIMED_COLUMNS),
                                  ref.drop(columns=TIMED_COLUMNS))
    assert [p.split(":")[0] for p in df["provenance"]] == \
        ["measured"] * 4 + ["modeled"] * 2 == [p.split(":")[0] for p in ref["provenance"]]


def test_the_command_runs_on_a_scheduler_by_address(cluster, tiny, tmp_path, capsys):
    wl, host = tiny
    out = tmp_path / "v.csv"
    assert main(["kexec", "tiny", "--no-emulate", "--race", "--platform", "spr-2s",
                 "--scheduler", cluster.scheduler_address, "--out", str(out)]) == 0
    ref = tmp_path / "ref.csv"
    evaluate(host, "spr-2s", emulate=False).to_csv(ref, index=False)
    assert out.read_text() == ref.read_text()
    got = pd.read_csv(tmp_path / "v-race.csv")
    want = race(platform="spr-2s", workload=wl, seed=0)
    want.to_csv(ref, index=False)
    assert (tmp_path / "v-race.csv").read_text() == ref.read_text()
    assert len(got) == len(STRATEGIES) * 2 * 4
    assert "written to" in capsys.readouterr().out


def test_the_race_task_draws_the_workload_s_conversions(tiny):
    wl, _ = tiny
    sizes = chunk_sizes(wl)
    assert sizes.size and (sizes > 0).all()
    pd.testing.assert_frame_equal(race(chunk_pages=sizes, seed=3, n_kexec=500),
                                  race(workload=wl, seed=3, n_kexec=500))
    assert np.array_equal(sizes, chunk_sizes(wl))
