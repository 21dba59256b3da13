"""The report's sharded points (trackers/report/sharded.py): `report --sharded`
builds give sharded.csv rows whose built bytes equal estimate() of the whole
set; a bench-core CSV of a sharded run reads back as the same rows; a bad
size or CSV is refused with its exact message before anything is written;
memory_vs_host and scan_time draw the rows as markers and say what they are.
Small hosts (2^18 PFNs in shards of 2^16), in this process; facts only."""

import argparse
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import trackers  # noqa: E402
from trackers.bench import rows as bench_rows, sharded as bench_sharded  # noqa: E402
from trackers.__main__ import main  # noqa: E402
from trackers.extents import normalize_extents  # noqa: E402
from trackers.kernel import MAPLE_NODE_BYTES  # noqa: E402
from trackers.output import write_csv_atomic  # noqa: E402
from trackers.report import cli, config, figures, sharded, steps, summary  # noqa: E402
from trackers.report.figures import memory_vs_host, scan_time, style  # noqa: E402
from trackers.sets import host_set  # noqa: E402

N, S = 1 << 18, 1 << 16              # a 1 GiB host in 4 shards of 256 MiB
NAMES = ["bitmap", "xarray"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def whole_set(pfns: int, shard: int, seed: int = 0):
    """The set a ReferenceShards build holds: shard i is the reference set of
    one shard with seed [seed, i], shifted to its base; maximal extents."""
    parts = [host_set("reference", shard, [seed, i]) for i in range(pfns // shard)]
    s = np.concatenate([a + i * shard for i, (a, _) in enumerate(parts)])
    e = np.concatenate([b + i * shard for i, (_, b) in enumerate(parts)])
    return normalize_extents(s, e)


@pytest.fixture(scope="module")
def report_rows() -> pd.DataFrame:
    """sharded.csv's rows as `report --sharded` makes them: the steps
    steps.plan adds, run here, combined by steps.add_sharded."""
    cfg = config.quick_config()
    cfg.trackers, cfg.sharded_pfns, cfg.shard_pfns = NAMES, [N], S
    cfg.kernel_code = bool(trackers.KERNEL_TRACKERS)
    shard_steps = steps.sharded_steps(cfg)
    assert [s for s in steps.plan(cfg) if s.table == steps.SHARD_STEPS] and \
        all(s.timed for s in shard_steps)
    rows = [r for s in shard_steps for r in s.run()]
    return steps.add_sharded(cfg, {steps.SHARD_STEPS: pd.DataFrame(rows)})["sharded"]


def test_no_sharded_option_adds_no_step_and_no_table():
    cfg = config.quick_config()
    assert steps.sharded_steps(cfg) == []
    assert steps.add_sharded(cfg, {"kexec": pd.DataFrame({"a": [1]})}).keys() == {"kexec"}


def test_sharded_rows_equal_estimate_of_the_whole_set(report_rows):
    df = report_rows
    twins = [f"{n}@kernel" for n in NAMES if f"{n}@kernel" in trackers.ALL_TRACKERS]
    assert set(df["tracker"]) == set(NAMES) | set(twins)
    assert list(df.columns) == list(sharded.COLUMNS)
    s, e = whole_set(N, S)
    pages = int((e - s).sum())
    for r in df.itertuples():
        exact = trackers.TRACKERS[r.option].estimate(s, e, N)
        assert r.modeled_bytes == r.estimate_bytes == exact, r.tracker
        assert r.added_bytes == exact and r.modeled_over_estimate == 1.0
        assert (r.private_pages, r.extents) == (pages, s.size)
        assert (r.pfns, r.shards, r.shard_pfns, r.runs) == (N, 4, S, 1)
        assert r.host_bytes == N * 4096 and r.source == "report --sharded"
        assert r.populate_measured_min_s == r.populate_measured_s > 0      # one run
        assert r.peak_rss_measured_bytes > 0 and r.set == "reference"
    assert (df["bitmap" == df["option"]]["modeled_bytes"] == N // 8).all()


def test_a_tracker_that_cannot_hold_the_set_is_a_row_that_says_so():
    rows = sharded.sharded_table(sharded.combine_steps(["ida"], [1 << 32], [], 1), "x")
    assert rows["tracker"].tolist() == ["ida"]
    assert rows["not_representable"].iloc[0] == \
        "IDA: not representable above 8 TiB (ids <= INT_MAX)"
    assert math.isnan(rows["modeled_bytes"].iloc[0])
    shard_steps = steps.sharded_steps(config.ReportConfig(
        sweep_hosts=[], sweep_shape="reference", fraction_host=0, fractions=[], scan_hosts=[],
        scan_shape="reference", scenarios=[], emulate_max_pfn=0, conversion_rates=[],
        trackers=["ida"], kernel_code=False, sharded_pfns=[1 << 32]))
    assert shard_steps == []               # nothing built for it


def test_sizes_parse_as_pfns_or_binary_units_and_bad_ones_are_refused():
    assert sharded.parse_sizes("64T,4T,16T,4T") == [1 << 30, 1 << 32, 1 << 34]
    assert sharded.parse_sizes("1048576,0x40000") == [1 << 18, 1 << 20]
    with pytest.raises(ValueError, match=r"--sharded size '8P' is not a size"):
        sharded.parse_sizes("8P")
    with pytest.raises(ValueError, match=r"'8192T' \(2,199,023,255,552 PFNs\) must be a multiple "
                                         r"of 512 PFNs \(whole 2 MiB\) in \[512, "
                                         r"1,099,511,627,776\] \(kernel.MAX_PHYS_PFN"):
        sharded.parse_sizes("8192T")
    with pytest.raises(ValueError, match="'1000' "):
        sharded.parse_sizes("1000")
    with pytest.raises(ValueError, match=r"--sharded 1 TiB \(268,435,456 PFNs\) is not above "
                                         r"the shard size 268,435,456 PFNs \(1 TiB\): a whole "
                                         r"build; the scan figure has it"):
        sharded.check_sizes([1 << 28, 1 << 30], 1 << 28)


def test_bad_sizes_exit_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", "--quick", "--no-progress", "--out", str(out),
                 "--sharded", "4T,1T"]) == 2
    assert capsys.readouterr().err == (
        "tdx-trackers report: error: --sharded 1 TiB (268,435,456 PFNs) is not above the "
        "shard size 268,435,456 PFNs (1 TiB): a whole build; the scan figure has it\n")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--quick", "--out", str(out), "--sharded", "8192T"])
    assert exc.value.code == 2
    assert "argument --sharded: --sharded size '8192T'" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------
# bench-core's CSV

@pytest.fixture(scope="module")
def bench_csv(tmp_path_factory):
    """The CSV `bench-core --pfns 2^18 --shard-pfns 2^16 --repeat 1 --csv`
    writes (trackers.bench.sharded.run_sharded's table, built here in this process), and one
    row the IDA cannot hold."""
    args = argparse.Namespace(pfns=N, shard_pfns=S, seed=0, repeat=1, scan_pfns=True)
    names = [*NAMES, *(f"{n}@kernel" for n in NAMES if f"{n}@kernel" in trackers.ALL_TRACKERS)]
    df = bench_rows.add_ratios(bench_sharded.sharded_table(None, names, args))
    ida = pd.DataFrame([{"tracker": "ida", "engine": "emulation", "not_representable":
                         "IDA: not representable above 8 TiB (ids <= INT_MAX)"}])
    path = tmp_path_factory.mktemp("bench") / "64t.csv"
    write_csv_atomic(pd.concat([df, ida], ignore_index=True), path)
    return path


def test_a_bench_core_csv_reads_back_as_the_same_rows(bench_csv, report_rows):
    df = sharded.sharded_table(sharded.load_csv(bench_csv), str(bench_csv))
    assert list(df.columns) == list(sharded.COLUMNS)
    assert (df["source"] == str(bench_csv)).all()
    built = df[df["not_representable"] == ""].set_index("tracker")
    mine = report_rows.set_index("tracker")
    same = ["option", "engine", "set", "pfns", "host_bytes", "shards", "shard_pfns",
            "private_pages", "extents", "modeled_bytes", "added_bytes", "estimate_bytes",
            "modeled_over_estimate", "bits_per_private_page"]
    pd.testing.assert_frame_equal(built.loc[mine.index, same], mine[same], check_dtype=False)
    assert built["runs"].isna().all()          # bench-core's CSV does not say
    assert (built["scan_extents_measured_s"] > 0).all()
    ida = df[df["tracker"] == "ida"].iloc[0]
    assert ida["not_representable"].startswith("IDA: not") and ida["pfns"] == N


def _bad(tmp_path, bench_csv, kind):
    path = tmp_path / f"{kind}.csv"
    df = pd.read_csv(bench_csv)
    if kind == "no-column":
        df.drop(columns=["scan_extents_max_shard_s"]).to_csv(path, index=False)
    elif kind == "whole":
        df.assign(shards=1).to_csv(path, index=False)
    elif kind == "empty":
        path.write_text("")
    elif kind in BAD_VALUES:
        col, value = BAD_VALUES[kind]
        df[col] = df[col].astype(object)
        df.loc[0, col] = value
        df.to_csv(path, index=False)
    return path


#: one bad value in the first row (bitmap's): kind -> (column, value)
BAD_VALUES = {
    "inf bytes": ("modeled_bytes", math.inf),
    "NaN bytes": ("modeled_bytes", "NaN"),
    "no estimate": ("estimate_bytes", 0),
    "negative seconds": ("scan_extents_s_median", -1.5),
    "pfns past 2^40": ("pfns", 1 << 62),
    "pfns 0": ("pfns", 0),
    "unknown tracker": ("tracker", "btree"),
    "NaN tracker": ("tracker", "nan"),
    "no engine": ("engine", ""),
    "shards past pfns": ("shards", 1 << 20),
}
_LIMIT = ("want a multiple of 512 in [512, 1,099,511,627,776] (whole 2 MiB, up to 2^40 PFNs: "
          "4 PiB, as --sharded)")
_TRACKER = ("want a tracker name (bitmap, xarray, xarray-multi, ida, roaring, maple, pageflags, "
            "kvm, or one of them with @kernel)")


@pytest.mark.parametrize("kind,message", [
    ("missing", "--sharded-csv {p}: no such file"),
    ("empty", "--sharded-csv {p}: not a CSV table (EmptyDataError: No columns to parse "
              "from file)"),
    ("no-column", "--sharded-csv {p}: lacks the column(s) scan_extents_max_shard_s of a "
                  "sharded bench-core table (bench-core --pfns N --csv FILE, N above "
                  "--shard-pfns)"),
    ("whole", "--sharded-csv {p}: row 2 (bitmap) was built in 1 shard(s), not sharded: its "
              "--pfns was not above --shard-pfns (a whole build; the scan figure has it)"),
    ("inf bytes", "--sharded-csv {p}: row 2 (bitmap) column modeled_bytes is inf: want a "
                  "finite number >= 0 (bytes)"),
    ("NaN bytes", "--sharded-csv {p}: row 2 (bitmap) column modeled_bytes is empty: want a "
                  "value (a built row fills it)"),
    ("no estimate", "--sharded-csv {p}: row 2 (bitmap) column estimate_bytes is 0 where "
                    "modeled_bytes is {modeled}: want estimate() of the same shards, 0 only "
                    "for a structure that adds nothing"),
    ("negative seconds", "--sharded-csv {p}: row 2 (bitmap) column scan_extents_s_median is "
                         "-1.5: want a finite number >= 0 (seconds)"),
    ("pfns past 2^40", "--sharded-csv {p}: row 2 (bitmap) column pfns is 4611686018427387904: "
                       + _LIMIT),
    ("pfns 0", "--sharded-csv {p}: row 2 (bitmap) column pfns is 0: " + _LIMIT),
    ("unknown tracker", "--sharded-csv {p}: row 2 column tracker is 'btree': " + _TRACKER),
    ("NaN tracker", "--sharded-csv {p}: row 2 column tracker is 'nan': " + _TRACKER),
    ("no engine", "--sharded-csv {p}: row 2 (bitmap) column engine is empty: want the engine "
                  "that measured the row (emulation, kernel code vX.Y.Z (userspace), ...)"),
    ("shards past pfns", "--sharded-csv {p}: row 2 (bitmap) column shards is 1048576: want a "
                         "whole number in [2, 512] (its pfns 262,144 in shards of whole 2 MiB)"),
])
def test_a_bad_csv_is_refused_with_its_reason_before_anything_is_written(
        tmp_path, capsys, bench_csv, kind, message):
    path = _bad(tmp_path, bench_csv, kind)
    out = tmp_path / "report"
    assert main(["report", "--quick", "--no-progress", "--out", str(out),
                 "--sharded-csv", str(bench_csv), str(path)]) == 2
    modeled = f"{pd.read_csv(bench_csv)['modeled_bytes'].iloc[0]:,.0f}"
    assert capsys.readouterr().err == \
        f"tdx-trackers report: error: {message.format(p=path, modeled=modeled)}\n"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == \
        sorted({path.name} - ({path.name} if kind == "missing" else set()))


def test_provenance_and_the_command_name_the_sharded_sources(bench_csv):
    meta = {"sharded": sharded.provenance([1 << 30], 1 << 28, {str(bench_csv): None}, 1)}
    prov = cli.provenance(meta)["sharded"]
    assert prov == {"sizes_pfns": [1 << 30], "shard_pfns": 1 << 28, "repeat": 1,
                    "set": "reference", "csv": [str(bench_csv.resolve())]}
    args = argparse.Namespace(quick=True, seed=0, trackers=None, sharded=[1 << 30, 1 << 34],
                              sharded_csv=[str(bench_csv)])
    assert cli.command_line(args).endswith(
        f"--quick --sharded {1 << 30},{1 << 34} --sharded-csv {bench_csv}")


# --------------------------------------------------------------------------
# figures and summary

def _table(sizes=(1 << 30, 1 << 34)) -> pd.DataFrame:
    """sharded.csv rows at 4 and 64 TiB: xarray (both engines) and maple
    (emulation, 1 node over estimate() per boundary at 64 TiB), and the IDA
    not representable."""
    rows = []
    for pfns in sizes:
        n = pfns >> 28
        for tracker, engine, nbytes, extra in (
                ("xarray", "emulation", 4.0e9 * n, 0),
                ("xarray@kernel", "kernel code v6.12.117 (userspace)", 4.0e9 * n, 0),
                ("maple", "emulation", 1.0e9 * n, (n - 1) * MAPLE_NODE_BYTES if n == 64 else 0)):
            rows.append({"tracker": tracker, "engine": engine, "pfns": pfns, "shards": n,
                         "shard_pfns": 1 << 28, "modeled_bytes": nbytes + extra,
                         "estimate_bytes": nbytes,
                         "modeled_over_estimate": (nbytes + extra) / nbytes,
                         "scan_extents_s_median": 2.0 * n, "scan_extents_s_min": 1.9 * n,
                         "scan_extents_s_max": 2.2 * n, "populate_s_median": 5.0 * n,
                         "scan_extents_max_shard_s": 2.2, "peak_rss_bytes": 3e9})
        if pfns > 1 << 31:
            rows.append({"tracker": "ida", "engine": "emulation", "pfns": pfns,
                         "not_representable": "IDA: not representable above 8 TiB "
                                              "(ids <= INT_MAX)"})
    return sharded.sharded_table(pd.DataFrame(rows), "64t.csv")


def memory_table() -> pd.DataFrame:
    hosts = [1 << 24, 1 << 28, 1 << 32]
    return pd.DataFrame([{"tracker": t, "option": t, "host_pfns": h, "host_bytes": h * 4096,
                          "host": "", "set": "reference-1pct", "added_bytes": h * b,
                          "modeled_bytes": h * b, "kind": "modeled", "not_representable": "",
                          "representable_max_pfns": math.nan}
                         for h in hosts for t, b in (("xarray", 15.0), ("maple", 4.0))])


def _hexagons(ax):
    return [(ln.get_color(), ln.get_xdata()[0], ln.get_ydata()[0], ln.get_markerfacecolor())
            for ln in ax.lines if ln.get_marker() == "h" and len(ln.get_xdata())]


def test_memory_vs_host_draws_each_sharded_build_on_its_estimate():
    df, mem = _table(), memory_table()
    plain = memory_vs_host.figure(mem)
    xlim = plain.axes[0].get_xlim()
    lines = [(ln.get_label(), list(ln.get_xdata())) for ln in plain.axes[0].lines]
    for none in (None, df.iloc[:0]):                # no --sharded: the figure as before
        fig = memory_vs_host.figure(mem, sharded=none)
        assert fig.axes[0].get_xlim() == xlim
        assert [(ln.get_label(), list(ln.get_xdata())) for ln in fig.axes[0].lines] == lines
    fig = memory_vs_host.figure(mem, sharded=df)
    ax = fig.axes[0]
    drawn = _hexagons(ax)
    built = df[df["not_representable"] == ""]
    assert sorted((x, y) for _, x, y, _ in drawn) == sorted(zip(built["host_bytes"],
                                                                built["added_bytes"]))
    xarray = style.color_for("xarray")
    assert {(x, fc == xarray) for c, x, _, fc in drawn if c == xarray} == \
        {(x, k) for x in (1 << 42, 1 << 46) for k in (True, False)}   # filled: kernel code
    ticks = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.lines
             if ln.get_marker() == "_" and len(ln.get_xdata())]
    assert sorted(ticks) == sorted(zip(built["host_bytes"], built["estimate_bytes"]))
    assert ax.get_xlim()[1] == pytest.approx((1 << 46) * 1.25)        # reaches 64 TiB
    assert 1 << 46 in list(ax.get_xticks())
    assert sorted(t.get_text() for t in ax.texts if t.get_text().startswith("built")) == \
        ["built in 4 shards", "built in 64 shards"]
    caption = " ".join(t.get_text() for t in fig.texts)
    assert ("Hexagons: sharded builds at 4 TiB, 64 TiB, built in 4/64 shards over the "
            "'reference' set" in caption)
    assert "engines: emulation; kernel code v6.12.117 (userspace); from 64t.csv" in caption
    assert "measured shard by shard" in caption
    assert "Their set is not the lines' ('reference-1pct')" in caption
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "estimate() of the same shards" in legend


def scan_table() -> pd.DataFrame:
    return pd.DataFrame([{"tracker": t, "host_bytes": h, "host_pfns": h // 4096,
                          "scan_modeled_s": h * 1e-12, "scan_measured_s": h * 1.1e-12,
                          "scan_measured_min_s": h * 1e-12, "scan_measured_max_s": h * 1.2e-12,
                          "scan_runs": 5, "platform": "this-machine", "platform_kind": "measured",
                          "platform_cpus": 2, "set": "reference", "engine": "emulation",
                          "engine_kind": "emulation", "model_ratio": 1 / 1.1, "model_note": ""}
                         for h in (1 << 32, 1 << 36) for t in ("xarray", "maple")])


def test_scan_time_draws_the_one_cpu_sharded_scans():
    df, scan = _table(), scan_table()
    plain = scan_time.figure(scan)
    assert not _hexagons(plain.axes[0])
    fig = scan_time.figure(scan, sharded=df)
    ax = fig.axes[0]
    built = df[df["not_representable"] == ""]
    assert sorted((x, y) for _, x, y, _ in _hexagons(ax)) == \
        sorted(zip(built["host_bytes"], built["scan_extents_measured_s"]))
    bars = [c for c in ax.containers if c.lines[0].get_marker() == "h"]
    assert len(bars) == len(built)
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "measured, sharded, sum over shards (1 CPU)" in legend
    caption = " ".join(t.get_text() for t in fig.texts)
    assert ("Hexagons: measured, sharded, sum over shards (1 CPU), the extents scan of "
            "sharded builds at 4 TiB, 64 TiB, built in 4/64 shards" in caption)
    assert "from 64t.csv (sharded.csv); bars min-max over the runs bench-core made" in caption


def test_scan_time_frame_holds_the_sharded_points_as_their_own_layer():
    df, scan = _table(), scan_table()
    f = scan_time.frame(scan, sharded=df)
    assert list(f.columns) == scan_time.COLUMNS
    assert set(f["layer"]) == {"model", "measured", "sharded"}          # no model_note
    built = df[df["not_representable"] == ""]
    pts = f[f["layer"] == "sharded"]
    assert sorted(zip(pts["tracker"], pts["host_bytes"], pts["seconds"])) == \
        sorted(zip(built["option"], built["host_bytes"], built["scan_extents_measured_s"]))
    assert f.attrs["sharded"].startswith("at 4 TiB, 64 TiB, built in 4/64 shards")


def test_figure_specs_pass_the_sharded_table():
    tables = {"memory_vs_host": memory_table(), "scan_time": scan_table(), "sharded": _table()}
    for name in ("memory_vs_host", "scan_time"):
        assert "sharded" in figures.FIGURES[name].extra
        assert _hexagons(figures.FIGURES[name].render(tables).axes[0])


def test_summary_states_the_largest_point_and_its_agreement():
    line = sharded.summary_line(_table())
    assert line.startswith("Sharded builds (sharded.csv): the largest measured point is "
                           "64 TiB (17,179,869,184 PFNs, 'reference' set) in 64 shards, "
                           "3 tracker rows from `64t.csv`; scan [measured, sum over shards, "
                           "1 CPU] 128 s (`xarray`) to 128 s")
    assert ("max |modeled/estimate - 1| per structure over every sharded row: `xarray` 0, "
            "`maple` 2.5e-07 (63 nodes over estimate(), bound 2 per boundary: 126 over 63 "
            "boundaries); not representable: `ida`: IDA: not representable above 8 TiB "
            "(ids <= INT_MAX).") in line
    assert line in summary.findings({"sharded": _table()})
    assert sharded.summary_line(None) == "" and summary.findings({}) == []
