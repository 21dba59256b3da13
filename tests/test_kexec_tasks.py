"""`tdx-trackers kexec` as Dask tasks (trackers/kexec/evaluate.py): the table
from the tasks is the in-process evaluate()'s, row for row; a strategy that
builds a structure is a timed unit; the command runs on a scheduler given by
address, its race the in-process race().  And the CPU sweep's measured scan
(trackers/kexec/sensitivity.py measured_scans): shards enough for the CPUs,
the set held exactly, the makespan on the this-machine rows only, drawn on
the figure.  Facts only, never a timing."""

import re

import numpy as np
import pandas as pd
import pytest

from trackers.__main__ import main
from trackers.kexec import PLATFORMS, STRATEGIES, evaluate, from_workload, get_platform, race
from trackers.kexec.evaluate import (builds, evaluate_tasks, format_measured, strategy_units,
                                     structure_groups)
from trackers.kexec.race import chunk_sizes
from trackers.kexec.sensitivity import (MEASURED_NOTE, MEASURED_SKIPPED, SENSITIVITY_COLUMNS,
                                        SHARDS_PER_CPU, measured_scans, measured_shard_pfns,
                                        sharded_scan, sweep)
from trackers.kexec.strategy import kernel_twin
from trackers.repeats import DEFAULT, FULL
from trackers.report.figures import downtime_vs_cpus
from trackers.shard import MIN_SHARD_PFNS, makespan
from trackers.workloads import scenario

#: the columns a second run times again (everything else is counted or modeled;
#: the runs are as many as the spread needs, trackers/repeats.py; the provenance
#: quotes the runs, and the struct-page scan's its min and max)
TIMED_COLUMNS = ["scan_measured_s", "scan_measured_min_s", "scan_measured_max_s",
                 "scan_runs", "scan_model_error", "provenance"]


def _untimed(provenance: str) -> str:
    """A provenance with the numbers it quotes (runs, seconds, sizes) blanked."""
    return re.sub(r"\d[\d,]*(\.\d+)?(e[-+]?\d+)?", "#", provenance)


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
    units, where = strategy_units(host, host, plat, chosen)
    assert [u.timed for u in units] == [True, True, True, True, False, False]
    assert [u.label for u in units] == names and where == [[i] for i in range(6)]
    # past the build limit nothing is built, so nothing is timed; gmem-maple's
    # limit is on its inodes' pages (the TDs' memory), not on max_pfn
    below = host.max_pfn - 1
    assert [builds(s, host, build_limit_pfns=below) for s in chosen] == [
        False, False, True, False, False, False]
    assert not any(builds(s, host, build_limit_pfns=1 << 12) for s in chosen)
    assert not any(builds(s, host, emulate=False) for s in chosen)
    df, _ = evaluate_tasks(client, host, plat, strategies=names, progress=False)
    ref = evaluate(host, plat, strategies=names)
    assert (df["scan_runs"].iloc[:4] > 0).all() and (ref["scan_runs"].iloc[:4] > 0).all()
    assert (df["scan_runs"].iloc[4:] == 0).all() and (ref["scan_runs"].iloc[4:] == 0).all()
    pd.testing.assert_frame_equal(df.drop(columns=TIMED_COLUMNS),
                                  ref.drop(columns=TIMED_COLUMNS))
    assert [p.split(":")[0] for p in df["provenance"]] == \
        ["measured"] * 4 + ["modeled"] * 2 == [p.split(":")[0] for p in ref["provenance"]]


def test_strategies_that_read_one_structure_are_one_timed_task_and_one_build(client, tiny):
    _, host = tiny
    names = ["fallback-bitmap", "parallel-reset", "bitmap", "xarray", "clear-all"]
    chosen = [STRATEGIES[n] for n in names]
    assert [s.name for g in structure_groups(chosen) for s in g] == names
    units, where = strategy_units(host, host, get_platform("spr-2s"), chosen)
    assert [u.label for u in units] == ["fallback-bitmap, parallel-reset, bitmap", "xarray",
                                        "clear-all"]
    assert where == [[0, 1, 2], [3], [4]] and [u.timed for u in units] == [True, True, False]
    df, _ = evaluate_tasks(client, host, "spr-2s", strategies=names, progress=False,
                           repeat=FULL)
    ref = evaluate(host, "spr-2s", strategies=names, repeat=FULL)
    for table in (df, ref):
        # one build, one measurement: the three bitmap rows carry the same runs
        bitmaps = table.iloc[:3]
        for col in ("scan_measured_s", "scan_measured_min_s", "scan_measured_max_s"):
            assert bitmaps[col].nunique() == 1, col
        assert list(table["scan_runs"]) == [FULL.least] * 4 + [0]
    pd.testing.assert_frame_equal(df.drop(columns=TIMED_COLUMNS),
                                  ref.drop(columns=TIMED_COLUMNS))
    # below the table: one line per structure, its engine and its runs
    lines = format_measured(df, FULL).splitlines()
    assert lines[0] == "measured scans, each the median of its runs (5 runs):"
    engine = df["engine"].iloc[0]
    assert [ln.split()[-2:] for ln in lines[1:]] == [["5", "runs"]] * 2
    assert lines[1].startswith("  fallback-bitmap, parallel-reset, bitmap  ")
    assert lines[1].endswith(f"  {engine}, 5 runs") and len(lines) == 3


@pytest.mark.slow
def test_the_default_repeats_change_only_the_timed_columns(tiny):
    """The adaptive rule (trackers/repeats.py) against the full repeats on every
    strategy: the same table but for what a second run times again, and the
    provenance differs only in the numbers it quotes."""
    _, host = tiny
    full = evaluate(host, repeat=FULL)
    fast = evaluate(host)
    built = full["scan_runs"] > 0
    assert built.sum() == 13 and built.equals(fast["scan_runs"] > 0)
    assert (full.loc[built, "scan_runs"] == FULL.least).all()
    assert fast.loc[built, "scan_runs"].between(DEFAULT.least_long, DEFAULT.most).all()
    pd.testing.assert_frame_equal(fast.drop(columns=TIMED_COLUMNS),
                                  full.drop(columns=TIMED_COLUMNS))
    assert list(map(_untimed, fast["provenance"])) == list(map(_untimed, full["provenance"]))
    assert (fast["scan_model_error"].isna() == full["scan_model_error"].isna()).all()


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


def test_builds_at_once_sizes_only_the_local_cluster(cluster, capsys):
    assert main(["kexec", "tiny", "--builds-at-once", "2",
                 "--scheduler", cluster.scheduler_address]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tdx-trackers kexec: error: --builds-at-once 2 sizes the local cluster; the cluster "
        f"at {cluster.scheduler_address} builds one structure at a time per timing worker "
        f"(--resources timing=1)")


def test_the_race_task_draws_the_workload_s_conversions(tiny):
    wl, _ = tiny
    sizes = chunk_sizes(wl)
    assert sizes.size and (sizes > 0).all()
    pd.testing.assert_frame_equal(race(chunk_pages=sizes, seed=3, n_kexec=500),
                                  race(workload=wl, seed=3, n_kexec=500))
    assert np.array_equal(sizes, chunk_sizes(wl))


# --- the CPU sweep's measured scan (sensitivity.measured_scans) -----------------

@pytest.fixture(scope="module")
def swept(tiny):
    _, host = tiny
    chosen = [s for s in STRATEGIES.values()]
    measured = measured_scans(host, chosen, [1, 2], repeat=2)
    rows = []
    for pname, plat in PLATFORMS.items():
        sens, _ = sweep(host, plat, chosen, scenario="tiny", platform_name=pname,
                        assess_kw={"emulate": False}, counts=(1, 2, 8), measured=measured)
        rows += sens
    return host, measured, pd.DataFrame(rows)


def test_shards_are_at_least_four_per_cpu_and_never_below_the_minimum():
    for max_pfn, cpus in [(0x340060, 2), (1 << 24, 64), (1 << 20, 1), (0x1040000, 2)]:
        size = measured_shard_pfns(max_pfn, cpus)
        assert size & (size - 1) == 0 and size >= MIN_SHARD_PFNS
        assert -(-max_pfn // size) >= SHARDS_PER_CPU * cpus
        assert size == MIN_SHARD_PFNS or -(-max_pfn // (2 * size)) < SHARDS_PER_CPU * cpus
    assert measured_shard_pfns(1 << 16, 64) == MIN_SHARD_PFNS        # fewer shards than asked
    assert measured_shard_pfns(0x340060, 2) == 1 << 18                # tiny: 14 shards of 2^18
    assert measured_shard_pfns(0x1040000, 2) == 1 << 21               # iomem-64g: 9 of 2^21


@pytest.mark.slow
def test_the_sharded_scan_holds_the_set_and_its_makespan_is_lpt(tiny):
    _, host = tiny
    sh = sharded_scan("xarray", host.max_pfn, host.private, 1 << 18, repeat=2)
    assert len(sh.shards) == 14 and sh.pages == host.private_pages
    assert sh.extents == host.private[0].size            # extents re-join at the boundaries
    medians = sh.shard_medians("scan_extents_s")
    assert sh.scan_s(1) == pytest.approx(sum(medians))
    assert sh.scan_s(64) == max(medians)
    assert sh.scan_s(2) == makespan(medians, 2) >= sh.scan_s(1) / 2


@pytest.mark.slow
def test_measured_scans_fill_the_this_machine_rows_only(swept):
    host, measured, df = swept
    assert set(measured) == {"bitmap", "xarray", "xarray-multi", "ida", "roaring", "maple",
                             "fallback-bitmap"}
    assert measured["fallback-bitmap"] == measured["bitmap"]          # one build, shared
    assert set(MEASURED_SKIPPED) == {"kvm-attr", "pageflags", "parallel-reset"}
    assert list(df.columns) == SENSITIVITY_COLUMNS
    mine = df[df["scan_measured_s"].notna()]
    assert set(mine["platform"]) == {"this-machine"} and set(mine["cpus_at_reset"]) == {1, 2}
    assert set(mine["strategy"]) == set(measured) and len(mine) == 2 * len(measured)
    for _, r in mine.iterrows():
        assert r["scan_measured_s"] == measured[r["strategy"]][0][r["cpus_at_reset"]]
        assert r["scan_measured_note"].startswith(MEASURED_NOTE)
    assert (df.loc[df["scan_measured_s"].isna(), "scan_measured_note"] == "").all()
    one = mine.set_index(["strategy", "cpus_at_reset"])["scan_measured_s"]
    assert all(one[(n, 2)] <= one[(n, 1)] for n in measured)   # LPT over the same medians
    # the engine the verdict timed: the @kernel twin where the kernel's code runs
    notes = dict(zip(mine["strategy"], mine["scan_measured_note"]))
    assert notes["roaring"].endswith("(roaring)")
    twin = kernel_twin("xarray")
    assert notes["xarray"].endswith(f"({twin.name if twin else 'xarray'})")


@pytest.mark.slow
def test_the_figure_draws_the_measured_scan_part(swept):
    _, measured, df = swept
    fig = downtime_vs_cpus.figure(df)
    # the first line of each title (a second says what a line holds there beyond the legend)
    axes = {a.get_title().split("\n")[0]: a for a in fig.axes if a.get_visible() and a.lines}
    assert set(axes) == {"tiny on spr-2s [modeled]",
                         "tiny on this-machine [modeled; scan part measured]"}
    ax = axes["tiny on this-machine [modeled; scan part measured]"]
    diamonds = [ln for ln in ax.lines if ln.get_marker() == "D" and ln.get_linestyle() == "None"]
    assert len(diamonds) == len(measured)
    assert sorted(float(y) for ln in diamonds for y in ln.get_ydata()) == sorted(
        v for by_cpus, _ in measured.values() for v in by_cpus.values())
    assert not [ln for ln in axes["tiny on spr-2s [modeled]"].lines if ln.get_marker() == "D"
                and ln.get_linestyle() == "None"]
    caption = " ".join(t.get_text() for t in fig.texts)
    assert f"Scan part on tiny on this-machine (◇ measured, ··· modeled): {MEASURED_NOTE}" \
        in caption
