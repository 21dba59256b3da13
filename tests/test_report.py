"""`tdx-trackers report --quick`: files, tables, verdict rules, the notebook.

The report runs once per session (seconds: small hosts, the tiny scenario);
the tests check facts about what it wrote, never timings.
"""

import math
from pathlib import Path

import pandas as pd
import pytest

from trackers.__main__ import main
from trackers.kexec import PLATFORMS
from trackers.report import cli, config, figures, memory, scan, steps, summary
from trackers.report.figures import scan_time
from trackers.report.cli import write_report
from trackers.sets import SetTooLarge, host_set

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "design_review.ipynb"

COLUMNS = {
    "memory_vs_host": {"tracker", "host_bytes", "private_pages", "modeled_bytes",
                       "added_bytes", "bits_per_private_page", "kind"},
    "bits_per_page": {"tracker", "private_fraction", "private_pages", "extents",
                      "bits_per_private_page", "bound_bits_per_page",
                      "run_bound_bits_per_page"},
    "scan_time": {"tracker", "host_bytes", "scan_measured_s", "scan_modeled_s",
                  "scanned_bytes", "scan_loads", "platform", "platform_kind", "engine",
                  "engine_kind", "scan_measured_min_s", "scan_measured_max_s", "scan_runs",
                  "scan_entries", "scan_extents", "scan_lookups", "model_ratio",
                  "model_note", "scan_extrapolated", "scan_modeled_low_s",
                  "scan_modeled_high_s", "scan_costs", "others_cpu_share", "load_1min"},
    "kexec": {"strategy", "scenario", "platform_name", "kexec_allowed", "added_bytes",
              "scanned_bytes", "scan_loads", "pages_reset", "pages_missed", "scan_s",
              "clear_s", "downtime_s", "engine", "provenance", "scan_entries",
              "scan_extents", "scan_lookups", "others_cpu_share", "load_1min"},
    "race": {"strategy", "kexec", "rate_mib_s", "missed_mean", "missed_expected",
             "platform_name", "seamcall_cost", "p_miss", "p_miss_low", "p_miss_high",
             "missed_mean_low", "missed_mean_high", "n_kexec"},
    "race_order": {"strategy", "kexec", "rate_mib_s", "order", "missed_mean",
                   "missed_expected", "p_miss", "p_miss_low", "p_miss_high", "platform_name"},
    "verdict": {"verdict"},
    "conversion_cost": {"tracker", "option", "engine", "size", "op", "ns_per_conversion_median",
                        "ns_per_conversion_min", "ns_per_conversion_max", "kind",
                        "others_cpu_share", "load_1min"},
    "recommendation": {"strategy", "pages_missed_worst", "pages_missed_worst_scenario",
                       "p_miss_rate_mib_s", "p_miss", "p_miss_low", "p_miss_high",
                       "added_bytes_1tib", "added_bytes_4tib", "added_bytes_16tib",
                       "added_bytes_64tib", "hot_ns_4k", "hot_ns_4k_min", "hot_ns_4k_max",
                       "hot_ns_2m", "allocation", "allocation_source", "crash_context",
                       "crash_context_source", "downtime_min_s", "downtime_max_s",
                       "touch_points", "touch_points_source", "costs_not_in_bytes",
                       "costs_not_in_bytes_source", "safe"},
}
FIGURE_TABLE = {name: spec.table for name, spec in figures.FIGURES.items()}


@pytest.fixture(scope="module")
def report_dir(quick_report):
    return quick_report


def expected_tables():
    return ["memory_vs_host", "bits_per_page", "scan_time", "verdict", "kexec", "race",
            "race_order", "conversion_cost", "recommendation"]


def test_race_order_runs_in_mainline_order_and_the_attribute_walk_misses_nothing(report_dir):
    zap = pd.read_csv(report_dir / "race_order.csv")
    assert set(zap["order"]) == {"zap-first"}
    assert (zap[zap.strategy == "kvm-attr"]["missed_expected"] == 0).all()
    assert (zap[zap.strategy == "kvm-sept"]["missed_expected"] > 0).all()


def test_report_writes_tables_figures_and_summary(report_dir):
    names = expected_tables()
    for name in names:
        assert (report_dir / f"{name}.csv").is_file(), name
    for fig, table in FIGURE_TABLE.items():
        if table in names:
            for ext in ("png", "svg"):
                path = report_dir / f"{fig}.{ext}"
                assert path.is_file() and path.stat().st_size > 1000, path
    text = (report_dir / "summary.md").read_text()
    assert "## Verdict" in text
    for fig, table in FIGURE_TABLE.items():
        if table in names:
            assert f"]({fig}.png)" in text
    assert not [p for p in report_dir.iterdir() if p.name.startswith(".report-")]


def test_csvs_load_with_expected_columns(report_dir):
    import trackers
    for name in expected_tables():
        df = pd.read_csv(report_dir / f"{name}.csv")
        assert len(df) > 0, name
        missing = COLUMNS[name] - set(df.columns)
        assert not missing, f"{name}.csv lacks {missing}"
    mem = pd.read_csv(report_dir / "memory_vs_host.csv")
    assert set(trackers.TRACKERS) <= set(mem["tracker"])
    assert (mem["kind"] == "modeled").all()
    bitmap = mem[mem["tracker"] == "bitmap"]
    assert (bitmap["modeled_bytes"] == bitmap["host_bytes"] // 4096 // 8).all()


def test_kexec_table_covers_every_strategy_and_platform(report_dir):
    from trackers.kexec.strategies import STRATEGIES
    df = pd.read_csv(report_dir / "kexec.csv")
    assert set(STRATEGIES) == set(df["strategy"])
    assert set(PLATFORMS) == set(df["platform_name"])
    refused = df[df["strategy"] == "refuse-6.18"]
    assert len(refused) == len(PLATFORMS) * df["scenario"].nunique()
    assert not refused["kexec_allowed"].any()


def test_atomic_write_replaces_files_and_leaves_no_temp(tmp_path, report_dir, figures_stubbed):
    (tmp_path / "memory_vs_host.csv").write_text("stale")
    (tmp_path / "keep.txt").write_text("mine")
    tables = {p.stem: pd.read_csv(p) for p in report_dir.glob("*.csv") if p.stem != "verdict"}
    write_report(tables, tmp_path, {"command": "tdx-trackers report"})
    assert (tmp_path / "memory_vs_host.csv").read_text().startswith("tracker,")
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "memory_vs_host.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]


def test_information_bounds():
    assert memory.log2_binomial(10, 3) == pytest.approx(math.log2(120))
    assert memory.log2_binomial(5, 0) == 0
    assert math.isnan(memory.log2_binomial(5, 6))
    # every page private: nothing to say
    assert memory.bound_bits_per_page(1 << 20, 1 << 20) == pytest.approx(0, abs=1e-6)
    # one run of n pages among N: 2 boundaries, log2 C(N+1, 2) bits
    n, big = 4096, 1 << 20
    assert memory.run_bound_bits_per_page(big, n, 1) * n == pytest.approx(
        math.log2((big + 1) * big / 2))


def test_the_decision_rule_never_ranks_on_an_upper_bound():
    """Of options equal on everything but the hot path, a measured one beats
    one known only as an upper bound (one Python call per conversion), even
    a smaller bound: the bound is unknown, as an unmeasured hot path is."""
    from trackers.report import recommend
    names = ["bound", "measured", "unmeasured"]
    sens = pd.DataFrame({"strategy": names, "scenario": "s", "platform": "p",
                         "cpus_at_reset": 1, "downtime_s": 1.0})
    rec = pd.DataFrame({"strategy": names, "safe": True, "crash_context": "yes",
                        "allocation": "none", "added_bytes_64tib": 0.0,
                        "hot_ns_4k": [100.0, 500.0, math.nan],
                        "hot_upper_bound": [True, False, False]})
    pick, order = recommend.choose(sens, rec, scenario="s", platform="p", cpus=1)
    assert (pick, order) == ("measured", ["measured", "bound", "unmeasured"])
    row = {"hot_ns_4k": 100.0, "hot_upper_bound": True}
    assert recommend.hot_4k(row) == "100 ns (Python call, an upper bound)"
    conv = pd.DataFrame({"option": "bound", "tracker": "bound", "size": ["4KiB", "4KiB"],
                         "op": ["mark", "unmark"], "ns_per_conversion_median": 50.0,
                         "ns_per_conversion_min": 40.0, "ns_per_conversion_max": 60.0,
                         "engine": "emulation", "upper_bound": True,
                         "calls": "mark_ranges / unmark_ranges per call (the contract): "
                                  "pyroaring has no batch call of add_range / remove_range"})
    cells = recommend.conversion_cells(conv, "bound", hooked=True)
    assert cells["hot_upper_bound"] and cells["hot_ns_4k"] == 100.0
    assert cells["hot_kind"] == ("measured: one Python call per conversion, an upper bound "
                                 "(mark_ranges / unmark_ranges per call (the contract): "
                                 "pyroaring has no batch call of add_range / remove_range)")
    cells = recommend.conversion_cells(conv.assign(upper_bound=False), "bound", hooked=True)
    assert not cells["hot_upper_bound"] and cells["hot_kind"] == "measured"


def test_verdict_rules():
    rows = []
    for name, allowed, missed, down, added in [("a", True, 0, 2.0, 100), ("b", True, 5, 1.0, 0),
                                               ("c", False, 0, math.nan, 0),
                                               ("d", True, 0, 3.0, 10)]:
        rows.append({"strategy": name, "option": name, "kexec_allowed": allowed,
                     "pages_missed": missed, "downtime_s": down, "added_bytes": added,
                     "scenario": "s", "platform_name": "spr-2s", "representable": True})
    rows.append({"strategy": "e", "option": "e", "kexec_allowed": True, "pages_missed": math.nan,
                 "downtime_s": math.nan, "added_bytes": math.nan, "scenario": "s",
                 "platform_name": "spr-2s", "representable": False})
    table = summary.verdict_table({"kexec": pd.DataFrame(rows)}).set_index("strategy")
    v = table["verdict"]
    # numbers with units in the column names, not display strings
    assert table.loc["a", "added_bytes [modeled] s"] == 100
    assert table.loc["a", "downtime_s [modeled] s"] == 2.0
    assert math.isnan(table.loc["c", "downtime_s [modeled] s"])
    assert table.loc["b", "pages_missed_max [modeled] all scenarios"] == 5
    assert table["kexec_allowed"].dtype == bool
    shown = summary.format_verdict(table.reset_index()).set_index("strategy")
    assert shown.loc["c", "downtime [modeled] s"] == "refused"
    assert v["e"] == "not an option on s (not representable)"
    assert shown.loc["e", "added [modeled] s"] == "n/a"
    assert v["a"] == "safe, fastest"
    assert v["b"] == "UNSAFE: misses pages"
    assert v["c"] == "refuses kexec"
    assert v["d"] == "safe, adds least"


def test_sets_are_seeded_and_refuse_what_this_machine_cannot_build():
    a = host_set("reference", 1 << 20, seed=3)
    b = host_set("reference", 1 << 20, seed=3)
    assert all((x == y).all() for x, y in zip(a, b))
    with pytest.raises(SetTooLarge, match="extents"):
        host_set("reference", 1 << 32)


def test_notebook_executes_on_quick_report(report_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("TRACKERS_REPORT_DIR", str(report_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 3 + ("kexec" in expected_tables()) * 2 + ("race" in expected_tables()) * 2


def test_default_report_calibrates_a_new_machine_once(tmp_path, monkeypatch):
    import trackers.report.cli as cli
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("TRACKERS_CALIBRATION", str(path))
    calls = []

    def fake_calibrate():
        calls.append(1)
        path.write_text("{}")
        return {"warnings": []}, str(path)

    monkeypatch.setattr(cli, "calibrate", fake_calibrate)
    cli._calibrate_once()
    cli._calibrate_once()                # the file exists now: no second measurement
    assert calls == [1]


# --- a report is published whole --------------------------------------------

def _dead_pid() -> int:
    """A PID no process can have: above the kernel's pid_max."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        return (1 << 22) + 1


def _contents(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture
def figures_stubbed(monkeypatch):
    """write_report's figures as empty files: the publishing tests test where
    files go, not what matplotlib draws (3 s a report here;
    test_figures.py and the report fixture draw them)."""
    from trackers.report import cli

    def stub(tables, names, where):
        for name in names:
            (Path(where) / f"{name}.png").write_bytes(b"")
        return [(name, 0.0) for name in names]
    monkeypatch.setattr(cli, "draw_figures", stub)


def _old_report(out: Path) -> dict:
    """A previous report, by hand: its files, its MANIFEST, and a file of the user's."""
    out.mkdir()
    for name in ("kexec.csv", "memory_vs_host.csv", "old_figure.png", "summary.md"):
        (out / name).write_text(f"old {name}\n")
    (out / "MANIFEST").write_text("kexec.csv\nmemory_vs_host.csv\nold_figure.png\nsummary.md\n")
    (out / "keep.txt").write_text("mine")
    return _contents(out)


def _tables(report_dir, names=("memory_vs_host", "kexec")):
    return {n: pd.read_csv(report_dir / f"{n}.csv") for n in names}


def _assert_new(out: Path, tables):
    """``out`` holds the new report whole: exactly its files, the user's file, and
    nothing of the previous report's."""
    manifest = (out / "MANIFEST").read_text().split()
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest + ["MANIFEST", "keep.txt"])
    assert {f"{n}.csv" for n in tables} | {"verdict.csv", "summary.md"} <= set(manifest)
    assert "old_figure.png" not in manifest
    assert "NEW" in (out / "summary.md").read_text()
    for name in tables:
        assert (out / f"{name}.csv").read_text().startswith(tables[name].columns[0])
    assert (out / "keep.txt").read_text() == "mine"


def test_report_replaces_the_previous_one_whole_and_keeps_user_files(tmp_path, report_dir,
                                                                     figures_stubbed):
    out = tmp_path / "report"
    _old_report(out)
    (out / "notes").mkdir()
    (out / "notes" / "n.txt").write_text("my notes")
    tables = _tables(report_dir)
    written = write_report(tables, out, {"command": "NEW"})
    manifest = (out / "MANIFEST").read_text().split()
    assert sorted(p.name for p in written) == manifest
    assert sorted(p.name for p in out.iterdir()) == sorted(
        manifest + ["MANIFEST", "keep.txt", "notes"])
    assert (out / "notes" / "n.txt").read_text() == "my notes"
    assert not (out / "old_figure.png").exists()            # the previous report's, gone
    assert [p.name for p in tmp_path.iterdir()] == ["report"]    # no temporary left


def test_report_into_a_new_directory_tree(tmp_path, report_dir, figures_stubbed):
    out = tmp_path / "a" / "b" / "report"
    tables = _tables(report_dir)
    written = write_report(tables, out, {"command": "NEW"})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in written] + ["MANIFEST"])
    assert [p.name for p in out.parent.iterdir()] == ["report"]


def test_report_files_get_the_umask_mode(tmp_path, report_dir, figures_stubbed):
    import os
    import stat
    out = tmp_path / "report"
    old = os.umask(0o027)
    try:
        write_report(_tables(report_dir), out, {"command": "NEW"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == \
        {p.name: 0o640 for p in out.iterdir()}


def test_stale_temp_dirs_of_killed_runs_are_removed_by_the_next_run(tmp_path, report_dir,
                                                                     monkeypatch):
    """What killed runs left -- OUT.new-<pid>, OUT.old-<pid> of dead processes, the
    .report-* directories of the per-file writer -- goes before any work; the
    directories of a live run (pid 1 here) stay."""
    out = tmp_path / "report"
    old = _old_report(out)
    dead = _dead_pid()
    for kind in ("new", "old"):
        (tmp_path / f"report.{kind}-{dead}").mkdir()
        (tmp_path / f"report.{kind}-{dead}" / "kexec.csv").write_text("partial")
    (tmp_path / "report.new-1").mkdir()
    (out / ".report-x1y2z3").mkdir()
    (out / ".report-x1y2z3" / "verdict.csv").write_text("partial")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(steps, "run_steps", interrupted)   # no work: only the start
    assert main(["report", "--quick", "--no-progress", "--out", str(out)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "report.new-1"]
    assert _contents(out) == old


def test_report_killed_between_the_two_renames_comes_back(tmp_path):
    """Without RENAME_EXCHANGE a kill between 'OUT -> OUT.old-<pid>' and
    'OUT.new-<pid> -> OUT' leaves no OUT: the next run puts the old one back."""
    from trackers.report.cli import clean_stale
    out = tmp_path / "report"
    old = _old_report(out)
    dead = _dead_pid()
    out.rename(tmp_path / f"report.old-{dead}")
    (tmp_path / f"report.new-{dead}").mkdir()
    (tmp_path / f"report.new-{dead}" / "summary.md").write_text("NEW, never published")
    clean_stale(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert _contents(out) == old


def test_report_killed_while_writing_leaves_the_old_one_whole(tmp_path, report_dir):
    """SIGKILL (no cleanup can run) after the new report's files are written:
    OUT is the old report, byte for byte; the next run removes the leftover."""
    import subprocess
    import sys

    from trackers.report.cli import clean_stale
    out = tmp_path / "report"
    old = _old_report(out)
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, pandas as pd\n"
         "from pathlib import Path\n"
         "from trackers.report import summary\n"
         "from trackers.report.cli import write_report\n"
         "src, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
         "def stop(*args):\n"
         "    print('written', flush=True)\n"
         "    sys.stdin.read()\n"
         "summary.summary_markdown = stop\n"
         "write_report({n: pd.read_csv(src / f'{n}.csv') for n in ('memory_vs_host', "
         "'kexec')}, out, {'command': 'NEW'})\n",
         str(report_dir), str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    try:
        assert child.stdout.readline() == "written\n"
        staged = tmp_path / f"report.new-{child.pid}"
        assert {"kexec.csv", "memory_vs_host.csv", "verdict.csv"} <= \
            {p.name for p in staged.iterdir()}
    finally:
        child.kill()
        child.wait()
    assert _contents(out) == old
    clean_stale(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert _contents(out) == old


def _crash_at(point, monkeypatch):
    """Make write_report fail at ``point``; return what OUT must then hold."""
    import os
    import shutil

    from trackers.report import cli

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    def on_call(n, real):
        calls = []

        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return wrapper

    if point == "drawing":                 # a Ctrl-C while the figures are drawn
        monkeypatch.setattr(cli, "draw_figures", fail)
        return "old"
    if point == "keeping user files":
        monkeypatch.setattr(cli, "_keep_user_files", fail)
        return "old"
    if point == "exchange":
        monkeypatch.setattr(cli, "exchange", fail)
        return "old"
    if point == "removing the old report":
        monkeypatch.setattr(shutil, "rmtree", fail)
        return "new"
    monkeypatch.setattr(cli, "exchange", lambda a, b: False)      # the two-rename path
    if point == "second rename":
        monkeypatch.setattr(os, "rename", on_call(2, os.rename))
        return "old"
    assert point == "removing the old report, two renames"
    monkeypatch.setattr(shutil, "rmtree", fail)
    return "new"


@pytest.mark.parametrize("point", ["drawing", "keeping user files", "exchange",
                                   "removing the old report", "second rename",
                                   "removing the old report, two renames"])
def test_crash_mid_publish_leaves_the_old_report_or_the_new_whole(point, tmp_path, report_dir,
                                                                  monkeypatch, figures_stubbed):
    from trackers.report.cli import clean_stale
    out = tmp_path / "report"
    old = _old_report(out)
    tables = _tables(report_dir)
    expect = _crash_at(point, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write_report(tables, out, {"command": "NEW"})
    monkeypatch.undo()
    if expect == "old":
        assert _contents(out) == old
    else:
        _assert_new(out, tables)
    clean_stale(out)                         # what the next run does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_publish_without_rename_exchange(tmp_path, report_dir, monkeypatch, figures_stubbed):
    from trackers.report import cli
    out = tmp_path / "report"
    _old_report(out)
    monkeypatch.setattr(cli, "exchange", lambda a, b: False)
    tables = _tables(report_dir)
    write_report(tables, out, {"command": "NEW"})
    _assert_new(out, tables)
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_report_names_the_tdx_trackers_command(report_dir):
    import argparse

    from trackers.report.cli import command_line
    text = (report_dir / "summary.md").read_text()
    assert "`tdx-trackers report --quick`" in text
    assert "python -m trackers" not in text
    args = argparse.Namespace(quick=False, seed=3, trackers=["bitmap", "kvm"])
    assert command_line(args) == "tdx-trackers report --seed 3 --trackers bitmap kvm"


# --- measured by the kernel's own code ----------------------------------------

def _kernel_code_here() -> bool:
    from trackers.registry import KERNEL_TRACKERS
    return bool(KERNEL_TRACKERS)


def test_scan_time_names_its_engine_and_the_model_ratio(report_dir):
    from trackers.kexec.strategy import ENGINE_PAGE_TABLES, ENGINE_STRUCT_PAGES
    df = pd.read_csv(report_dir / "scan_time.csv", keep_default_na=False,
                     na_values=[""])
    timed = df[df["scan_runs"] > 0]
    assert not timed.empty
    assert (timed["scan_runs"] >= 5).all()
    assert (timed["scan_measured_min_s"] <= timed["scan_measured_s"]).all()
    assert (timed["scan_measured_s"] <= timed["scan_measured_max_s"]).all()
    assert (timed["scan_modeled_low_s"] <= timed["scan_modeled_s"]).all()
    assert (timed["scan_modeled_s"] <= timed["scan_modeled_high_s"]).all()
    # model_ratio: modeled / measured, on this machine only
    here = timed[timed["platform"] == "this-machine"]
    assert here["model_ratio"].to_numpy() == pytest.approx(
        (here["scan_modeled_s"] / here["scan_measured_s"]).to_numpy())
    assert timed.loc[timed["platform"] != "this-machine", "model_ratio"].isna().all()
    # a point outside 2x says why; a point inside says nothing
    outside = ~here["model_ratio"].between(0.5, 2.0)
    notes = here["model_note"].astype(object).fillna("")    # all-NaN (float) when all inside
    assert (notes[outside] != "").all() and (notes[~outside] == "").all()
    # the scan emits the set's runs
    assert (timed["scan_extents"] == timed["extents"]).all()
    engines = dict(zip(here["tracker"], here["engine"]))
    assert engines["roaring"] == "emulation (Python/numba)"       # no @kernel twin
    if _kernel_code_here():
        assert engines["pageflags"] == ENGINE_STRUCT_PAGES
        assert engines["pte-softbit"] == ENGINE_PAGE_TABLES


def test_every_timed_number_has_the_load_it_was_timed_under(report_dir):
    """Beside every number timed here, the share of the CPU time other tasks
    took meanwhile (a share: 0-1) and the 1-minute load; NaN beside the
    modeled ones.  summary.md says it in one sentence."""
    def read(name):
        return pd.read_csv(report_dir / f"{name}.csv", keep_default_na=False, na_values=[""])

    timed = {"scan_time": lambda d: d["scan_runs"] > 0, "kexec": lambda d: d["scan_runs"] > 0,
             "sensitivity": lambda d: d["scan_measured_s"].notna(),
             "conversion_cost": lambda d: d["ns_per_conversion_median"].notna(),
             "validation": lambda d: d["key"].str.startswith("attr")}
    for name, rule in timed.items():
        d = read(name)
        t = rule(d)
        assert t.any(), name
        assert d.loc[t, "others_cpu_share"].between(0, 1).all(), name
        assert (d.loc[t, "load_1min"] >= 0).all(), name
        assert d.loc[~t, "others_cpu_share"].isna().all(), name
    summary = (report_dir / "summary.md").read_text()
    assert "Every timed step ran with no other step of the report beside it; other tasks " \
           "took " in summary


def test_every_twin_is_timed_through_the_kernel_code(report_dir):
    """When the kernel code is available, every tracker with a @kernel twin has
    kernel-code rows at every scan size, and the figure draws them with error bars."""
    from matplotlib.container import ErrorbarContainer

    from trackers import linux
    from trackers.registry import KERNEL_TRACKERS, TWINS
    if not _kernel_code_here():
        pytest.skip("kernel code unavailable here")
    df = pd.read_csv(report_dir / "scan_time.csv")
    here = df[df["platform"] == "this-machine"]
    sizes = set(config.quick_config().scan_hosts)
    engine = f"kernel code v{linux.version()} (userspace)"
    assert len(TWINS) == len(KERNEL_TRACKERS) > 0
    for twin in TWINS:
        rows = here[(here["tracker"] == twin) & (here["engine"] == engine)]
        assert set(rows["host_pfns"]) == sizes, twin
        assert (rows["engine_kind"] == "kernel code").all() and (rows["scan_runs"] >= 5).all()
    fig = scan_time.figure(df)
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert sum(c.has_yerr and len(c.lines[0].get_xdata()) for c in bars) >= \
        len(TWINS) * len(sizes)


def test_kexec_provenance_names_the_kernel_code_where_a_twin_ran(report_dir):
    from trackers import linux
    from trackers.registry import TWINS
    df = pd.read_csv(report_dir / "kexec.csv", keep_default_na=False, na_values=[""])
    timed = df[df["scan_runs"] > 0]
    assert not timed.empty
    roaring = timed[timed["strategy"] == "roaring"]
    assert (roaring["engine"] == "emulation (Python/numba)").all()
    assert roaring["provenance"].str.contains("emulated").all()
    if not _kernel_code_here():
        assert (timed["engine"] != "").all()
        return
    from trackers.kexec.strategies import strategy_for_tracker
    names = {strategy_for_tracker(n).name for n in TWINS}    # kvm's is kvm-attr
    twins = timed[timed["strategy"].isin(names)]
    assert set(twins["strategy"]) == names
    assert (twins["engine"] == f"kernel code v{linux.version()} (userspace)").all()
    assert twins["provenance"].str.startswith(
        f"measured: kernel code (v{linux.version()}, userspace)").all()


def test_summary_first_line_names_the_engine(report_dir):
    from trackers import linux
    first = (report_dir / "summary.md").read_text().split("\n", 1)[0]
    if _kernel_code_here():
        assert first.startswith(f"**Measured numbers come from the kernel's own code, "
                                f"Linux v{linux.version()}**")
        assert "roaring" in first and "emulation" in first      # the one without a twin
    else:
        assert "emulations" in first and "apt-get install" in first


def test_report_falls_back_to_the_emulations_and_says_why(tmp_path, report_dir,
                                                          monkeypatch):
    """Where the kernel code cannot be built, the report measures the emulations and
    summary.md's first line gives the reason and the apt command."""
    from trackers import linux
    from trackers.linux.build import INSTALL_HINT
    from trackers.report import cli

    def no_source(*args, **kwargs):
        raise linux.KernelCodeUnavailable("no kernel source (test)")

    monkeypatch.setattr(cli.linux, "build", no_source)
    seen = {}

    def steps_of(cfg):
        seen["kernel_code"] = cfg.kernel_code
        return []

    monkeypatch.setattr(steps, "plan", steps_of)
    monkeypatch.setattr(steps, "run_steps", lambda planned, bar=None, **kw: _tables(
        report_dir, ("memory_vs_host", "kexec")))
    out = tmp_path / "report"
    assert main(["report", "--quick", "--no-progress", "--out", str(out)]) == 0
    assert seen == {"kernel_code": False}
    first = (out / "summary.md").read_text().split("\n", 1)[0]
    assert "no kernel source (test)" in first and INSTALL_HINT in first
    assert first.startswith("**Measured numbers come from the Python/numba emulations")
    # --no-kernel-code: the same, without trying to build
    monkeypatch.setattr(cli.linux, "build", lambda *a, **k: pytest.fail("built"))
    assert main(["report", "--quick", "--no-progress", "--no-kernel-code", "--out",
                 str(out)]) == 0
    first = (out / "summary.md").read_text().split("\n", 1)[0]
    assert "--no-kernel-code" in first and seen == {"kernel_code": False}


def test_scan_rows_without_kernel_code_time_the_emulations():
    """cfg.kernel_code False: every tracker's emulation is timed; pte-softbit,
    which has no emulation, is modeled only."""
    cfg = config.quick_config()
    cfg.kernel_code = False
    cfg.trackers = ["bitmap", "pageflags", "kvm"]
    rows = pd.DataFrame(scan.scan_rows(cfg, 1 << 16, scan.ScanCosts()))
    here = rows[rows["platform"] == "this-machine"].set_index("tracker")
    assert (here.loc[["bitmap", "pageflags", "kvm"], "engine"]
            == "emulation (Python/numba)").all()
    assert here.loc["pte-softbit", "engine"] == "none (modeled)"
    assert here.loc["pte-softbit", "scan_runs"] == 0
    assert math.isnan(here.loc["pte-softbit", "model_ratio"])
    assert here.loc["pte-softbit", "scan_modeled_s"] > 0


# --- the answer ---------------------------------------------------------------

def _named(*names):
    """The first of ``names`` that is a strategy (a strategy's older name last)."""
    from trackers.kexec.strategies import STRATEGIES
    return next(n for n in names if n in STRATEGIES)


def test_sensitivity_and_tornado_tables_keep_their_contract(report_dir):
    from trackers.kexec.sensitivity import SENSITIVITY_COLUMNS, TORNADO_COLUMNS, assumed_ranges
    sens = pd.read_csv(report_dir / "sensitivity.csv")
    torn = pd.read_csv(report_dir / "tornado.csv")
    assert list(sens.columns) == SENSITIVITY_COLUMNS
    assert list(torn.columns) == TORNADO_COLUMNS
    kexec = pd.read_csv(report_dir / "kexec.csv")
    # every option on the scenario run, and on it with its TDs destroyed
    assert set(sens["scenario"]) == {"tiny", "tiny/no-td"}
    assert set(sens["strategy"]) == set(kexec["strategy"])
    assert set(sens["platform"]) == set(PLATFORMS)
    spr = sens[sens["platform"] == "spr-2s"]
    assert sorted(set(spr["cpus_at_reset"])) == [1, 2, 8, 32, 224]
    assert (sens["kind"] == "modeled").all()
    # the 1-CPU column is the verdict's downtime
    one = spr[(spr.cpus_at_reset == 1) & (spr.scenario == "tiny")].set_index("strategy")
    k = kexec[kexec.platform_name == "spr-2s"].set_index("strategy")
    allowed = k.index[k["kexec_allowed"]]
    for n in allowed:
        assert one.loc[n, "downtime_s"] == pytest.approx(k.loc[n, "downtime_s"], rel=1e-9)
    assert one.loc[~one.index.isin(allowed), "rank"].isna().all()
    for plat, t in torn.groupby("platform"):
        assert set(t["param"]) == set(assumed_ranges(platform=PLATFORMS[plat]))
    assert (torn["value_low"] <= torn["value_base"]).all()
    assert (torn["value_base"] <= torn["value_high"]).all()


def test_recommendation_table_facts(report_dir):
    from trackers.report.qualities import QUALITIES
    rec = pd.read_csv(report_dir / "recommendation.csv").set_index("strategy")
    kexec = pd.read_csv(report_dir / "kexec.csv")
    kvm, refuse = _named("kvm-attr", "kvm"), _named("refuse-6.18", "upstream-refuse")
    assert list(rec.index) == list(dict.fromkeys(kexec["strategy"]))
    worst = kexec.groupby("strategy")["pages_missed"].max()
    assert (rec["pages_missed_worst"] == worst.reindex(rec.index).fillna(0)).all()
    assert rec.loc[kvm, "pages_missed_worst"] > 0 and not rec.loc[kvm, "safe"]
    assert rec.loc["bitmap", "safe"] and rec.loc["mainline-7.2", "safe"]
    assert not rec.loc[refuse, "kexec_allowed"]
    # P(miss) at the stated rate, with its interval; the hooked bitmap misses none
    assert (rec["p_miss_rate_mib_s"] == 1024).all()
    assert rec.loc[kvm, "p_miss_low"] > 0
    assert rec.loc["bitmap", "p_miss"] == 0 and 0 < rec.loc["bitmap", "p_miss_high"] < 0.01
    # a bitmap adds one bit per PFN at every size (extrapolated in --quick)
    assert rec.loc["bitmap", "added_bytes_1tib"] == (1 << 28) // 8
    assert rec.loc["bitmap", "added_bytes_64tib"] == (1 << 34) // 8
    assert (rec.loc[["mainline-7.2", "clear-all", kvm], "added_bytes_16tib"] == 0).all()
    # the fixes that keep a bitmap pay the bitmap's memory and hot path
    for fix in ("fallback-bitmap", "parallel-reset"):
        assert rec.loc[fix, "added_bytes_16tib"] == rec.loc["bitmap", "added_bytes_16tib"]
        assert rec.loc[fix, "hot_ns_4k"] == rec.loc["bitmap", "hot_ns_4k"]
    # the hot path is measured where a structure is marked, zero where no hook runs
    assert rec.loc["xarray", "hot_kind"] == "measured"
    assert rec.loc["xarray", "hot_ns_4k_min"] <= rec.loc["xarray", "hot_ns_4k"] \
        <= rec.loc["xarray", "hot_ns_4k_max"]
    assert rec.loc["mainline-7.2", "hot_ns_4k"] == 0
    # roaring is timed one Python call per conversion: an upper bound, said so
    assert rec.loc["roaring", "hot_upper_bound"]
    assert rec.loc["roaring", "hot_kind"].startswith(
        "measured: one Python call per conversion, an upper bound (")
    assert "pyroaring has no batch call" in rec.loc["roaring", "hot_kind"]
    if _kernel_code_here():                  # bitmap@kernel and struct pages in C
        assert not rec.loc[["bitmap", "pageflags"], "hot_upper_bound"].any()
    # every qualitative cell has a source; every option is described
    assert set(rec.index) <= set(QUALITIES)
    for col in ("allocation", "crash_context", "touch_points", "costs_not_in_bytes"):
        assert rec[col].notna().all() and rec[f"{col}_source"].notna().all()
    assert rec.loc["bitmap", "crash_context"].startswith("yes")
    assert rec.loc[kvm, "crash_context"].startswith("no")
    ok = rec.dropna(subset=["downtime_1cpu_s"])
    assert (ok["downtime_min_s"] <= ok["downtime_1cpu_s"]).all()
    assert (ok["downtime_all_cpus_s"] <= ok["downtime_max_s"]).all()
    # recommendation.md: a table of numbers, one short row per option, then
    # each option's qualities with every source once
    md = (report_dir / "recommendation.md").read_text()
    table = [line for line in md.split("\n") if line.startswith("|")]
    assert len(table) == len(rec) + 2                               # header, rule, rows
    assert {line.count(" | ") for line in table[2:]} == {10}         # 11 cells a row
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| `{n}`" for n in rec.index]
    assert max(len(line) for line in table) < 200
    roaring = next(line for line in table if line.startswith("| `roaring`"))
    assert roaring.split(" | ")[7].endswith(" (upper bound)")
    blocks = {b.split("`", 1)[0]: b for b in md.split("\n**`")[1:]}
    assert list(blocks) == list(rec.index)
    assert "- hot path: measured, an upper bound (one Python call per conversion)" \
        in blocks["roaring"]
    for name, block in blocks.items():
        assert f"- allocation on the conversion path: {rec.loc[name, 'allocation']}\n" in block
        srcs = next(line for line in block.split("\n") if line.startswith("- sources: "))
        parts = srcs.removeprefix("- sources: ").split("; ")
        assert len(parts) == len(set(parts)), name
    mainline = blocks["mainline-7.2"]
    assert mainline.count("arch/x86/virt/vmx/tdx/tdx.c tdx_sys_disable(), tdx_shutdown()") == 1


def test_summary_opens_with_the_answer(report_dir):
    lines = (report_dir / "summary.md").read_text().split("\n")
    assert lines[0].startswith("**Measured numbers")
    assert lines[1] == "## The answer"
    end = lines.index("")
    assert end <= 10
    answer = "\n".join(lines[1:end])
    for phrase in ("Mainline today (Linux 7.2)", "It fails on an old TDX module",
                   "Better", "Parts without the erratum", "No TD running",
                   "What would change it", "Measured, published, assumed",
                   "published TDX timings"):
        assert phrase in answer
    text = "\n".join(lines)
    assert "## Recommendation" in text and "## Provenance" in text
    # every scenario the run left out is named, with why
    from trackers.workloads import SCENARIOS
    for name in SCENARIOS:
        if name != "tiny":
            assert f"`{name}`" in text.split("## Scenarios", 1)[1].split("##", 1)[0]


def test_summary_txt_fits_80_columns(report_dir):
    text = (report_dir / "summary.txt").read_text()
    assert max(len(line) for line in text.split("\n")) <= 80
    assert "Parts without the erratum" in text
    kexec = pd.read_csv(report_dir / "kexec.csv")
    for name in set(kexec["strategy"]):
        assert f"\n{name}" in text


def test_provenance_names_what_produced_the_report(report_dir):
    import json
    prov = json.loads((report_dir / "provenance.json").read_text())
    assert {"git_commit", "git_dirty", "seed", "command", "packages", "python", "cpu_model",
            "cpu_count", "kernel_code", "platforms", "config", "left_out"} <= set(prov)
    assert prov["seed"] == 0 and prov["config"]["quick"] is True
    assert prov["git_commit"] == "unknown" or len(prov["git_commit"]) == 40
    assert {"numpy", "pandas"} <= set(prov["packages"])
    assert set(prov["platforms"]) == set(PLATFORMS)
    assert prov["platforms"]["spr-2s"]["sources"]["clear_bps_core"]
    assert set(prov["calibration"]["engines"]) == set(prov["calibration"]["figures"])
    assert "provenance.json" in (report_dir / "MANIFEST").read_text()


def test_provenance_says_where_the_time_went(report_dir):
    """step_times: the run's phases, every planned step (label and table, in
    plan order) and every figure drawn, each with its seconds."""
    import json
    prov = json.loads((report_dir / "provenance.json").read_text())
    times = prov["step_times"]
    assert all(t["seconds"] >= 0 and set(t) == {"step", "table", "timed", "seconds"}
               for t in times)
    phases = [t["step"] for t in times if not t["table"]]
    assert phases == ["kernel code (build or find it built)",
                      "steps (wall: the cluster's start, every task, its stop)"]
    planned = steps.plan(config.quick_config())
    ran = [t for t in times if t["table"] and not t["step"].startswith("figure ")]
    assert [(t["step"], t["table"], t["timed"]) for t in ran] == \
        [(s.label, s.table, s.timed) for s in planned]
    drawn = sorted(t["step"][len("figure "):] for t in times if t["step"].startswith("figure "))
    assert drawn == sorted(p.stem for p in report_dir.glob("*.png"))


def test_the_end_of_the_run_names_the_slowest_steps():
    times = [{"step": "kernel code", "table": "", "timed": False, "seconds": 0.5},
             {"step": "scan 4 GiB", "table": "scan_time", "timed": True, "seconds": 3.0},
             {"step": "race", "table": "race", "timed": False, "seconds": 1.25},
             {"step": "kexec tiny", "table": "kexec", "timed": True, "seconds": 2.0}]
    lines = cli.format_step_times(times, 9.4, slowest=2).split("\n")
    assert lines == [
        "where the time went (9.4 s in all; every step in provenance.json step_times):",
        "  kernel code 500 ms",
        "  timed steps, one at a time on the timing worker: 5 s; the slowest:",
        "        3 s  scan 4 GiB [timed]",
        "        2 s  kexec tiny [timed]"]
    assert max(len(x) for x in lines) <= 80


def test_provenance_records_the_calibration_engines_and_scan_costs(tmp_path, monkeypatch):
    """provenance.json's calibration: every figure with its spread and engine,
    the clear's engine and detection, the scan costs per structure and their
    method; what an older calibration file lacks is None."""
    import json

    from trackers.report.cli import provenance
    figures = {"read_bps_core": 2e10, "read_bps_all": 3e10, "write_bps_core": 2e10,
               "write_bps_all": 3e10, "load_latency_s": 1e-7, "scan_run_s": 4e-8}
    new = {"measured_at": "now", "repeat": 3, "cpu": "CPU X", "cpus_total": 2,
           "figures": figures, "spread": {k: {"min": v, "max": v} for k, v in figures.items()},
           "engines": {k: "numba" for k in figures},
           "clear": {"engine": "MOVDIR64B", "stand_in": False},
           "scan_costs": {"scan_run_s": {"bitmap@kernel": [4e-8]}},
           "method": {"scan_costs": {"figure": "median"}}, "load": {}, "warnings": [],
           "samples": {"scan_run_s": [4e-8]}}
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("TRACKERS_CALIBRATION", str(path))
    path.write_text(json.dumps(new))
    assert provenance({})["calibration"] == {k: v for k, v in new.items() if k != "samples"}
    old = {k: v for k, v in new.items() if k not in ("engines", "clear", "scan_costs", "method")}
    path.write_text(json.dumps(old))
    got = provenance({})["calibration"]
    assert got["engines"] is got["clear"] is got["scan_costs"] is got["method"] is None
    assert got["figures"] == new["figures"]


def test_memory_at_64_tib_extrapolates_from_the_host_sweep_not_the_sparse_host():
    """r7625-sparse's rows (host_kind "sparse", max_pfn 7.1 TiB) are no point
    of the host sweep: 64 TiB is 16 TiB times the 4 -> 16 TiB growth."""
    from trackers.report import recommend
    sweep = pd.DataFrame({"tracker": "x", "host_pfns": [1 << 28, 1 << 30, 1 << 32],
                          "added_bytes": [1.0, 4.0, 16.0], "host_kind": None})
    sparse = pd.DataFrame({"tracker": ["x"], "host_pfns": [1906311168], "added_bytes": [2.0],
                           "host_kind": ["sparse"]})
    cells = recommend._memory_cells(pd.concat([sweep, sparse], ignore_index=True), "x")
    assert cells["added_bytes_16tib"] == 16.0 and cells["added_bytes_64tib"] == 64.0
    assert "extrapolated from 16 TiB and 4 TiB" in cells["memory_note"]
