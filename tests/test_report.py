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
from trackers.report import collect, figures, summary
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
                  "scanned_bytes", "scan_loads", "platform", "platform_kind"},
    "kexec": {"strategy", "scenario", "platform_name", "kexec_allowed", "added_bytes",
              "scanned_bytes", "scan_loads", "pages_reset", "pages_missed", "scan_s",
              "clear_s", "downtime_s"},
    "race": {"strategy", "kexec", "rate_mib_s", "missed_mean", "missed_expected",
             "platform_name"},
    "verdict": {"verdict"},
}
FIGURE_TABLE = {name: spec.table for name, spec in figures.FIGURES.items()}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def expected_tables():
    return ["memory_vs_host", "bits_per_page", "scan_time", "verdict", "kexec", "race"]


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
    refused = df[df["strategy"] == "refuse"]
    assert not refused["kexec_allowed"].any()


def test_atomic_write_replaces_files_and_leaves_no_temp(tmp_path, report_dir):
    (tmp_path / "memory_vs_host.csv").write_text("stale")
    (tmp_path / "keep.txt").write_text("mine")
    tables = {p.stem: pd.read_csv(p) for p in report_dir.glob("*.csv") if p.stem != "verdict"}
    write_report(tables, tmp_path, {"command": "tdx-trackers report"})
    assert (tmp_path / "memory_vs_host.csv").read_text().startswith("tracker,")
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "memory_vs_host.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report-")]


def test_information_bounds():
    assert collect.log2_binomial(10, 3) == pytest.approx(math.log2(120))
    assert collect.log2_binomial(5, 0) == 0
    assert math.isnan(collect.log2_binomial(5, 6))
    # every page private: nothing to say
    assert collect.bound_bits_per_page(1 << 20, 1 << 20) == pytest.approx(0, abs=1e-6)
    # one run of n pages among N: 2 boundaries, log2 C(N+1, 2) bits
    n, big = 4096, 1 << 20
    assert collect.run_bound_bits_per_page(big, n, 1) * n == pytest.approx(
        math.log2((big + 1) * big / 2))


def test_verdict_rules():
    rows = []
    for name, allowed, missed, down, added in [("a", True, 0, 2.0, 100), ("b", True, 5, 1.0, 0),
                                               ("c", False, 0, math.nan, 0),
                                               ("d", True, 0, 3.0, 10)]:
        rows.append({"strategy": name, "option": name, "kexec_allowed": allowed,
                     "pages_missed": missed, "downtime_s": down, "added_bytes": added,
                     "scenario": "s", "platform_name": "spr-2s"})
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
    import trackers.kexec.calibrate as cal
    from trackers.report.cli import _calibrate_once
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("TRACKERS_CALIBRATION", str(path))
    calls = []
    monkeypatch.setattr(cal, "calibrate", lambda: (calls.append(1), path.write_text("{}")))
    _calibrate_once()
    _calibrate_once()                    # the file exists now: no second measurement
    assert calls == [1]
