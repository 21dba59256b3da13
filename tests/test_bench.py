"""bench-core reports every measured time as its median and spread, the
emulations beside their @kernel twins (engine labels with the kernel
version, emulation/kernel-code ratios), the maple order table and the
per-conversion cost table; the asv Populate benchmark skips what a tracker's
memory budget refuses.  Facts only: which columns, which rows, which
order of statistics, which ratio, which exception -- never a timing."""

import os
import re

import numpy as np
import pandas as pd
import pytest

import trackers
import trackers.bench.rows as bench_rows
import trackers.linux as linux
from trackers.__main__ import main
from trackers.bench.conversion import conversion_cost, conversion_table, conversion_targets
from trackers.bench.maple_order import maple_order
from trackers.bench.measure import time_estimates, time_kvm_store_loop
from trackers.bench.rows import add_ratios, engine_of, ratio_table, select_rows
from trackers.bench.timing import run_outcomes, spread
from trackers.cluster import Unit
from trackers.kernel import MAPLE_NODE_BYTES, PAGES_PER_2M
from trackers.kernel_code import TWINS
from trackers.pageflags import STRUCT_PAGES_ENGINE
from trackers.sets import reference_set

TIMES = ["populate_s", "scan_extents_s", "scan_pfns_s"]
STATS = ("median", "min", "max")
TINY = 1 << 16                  # the 2^16-PFN reference set, seed 0: 46,004 pages
TINY_PAGES = 46004

pytestmark = pytest.mark.slow          # bench-core runs, on a cluster of their own
needs_kernel = pytest.mark.skipif(not trackers.KERNEL_TRACKERS,
                                  reason=f"kernel code unavailable: {trackers.KERNEL_UNAVAILABLE}")


@pytest.fixture(scope="module", autouse=True)
def scheduler():
    """One two-worker local cluster for every bench-core run of this file, by
    address ($TRACKERS_SCHEDULER), as a user's cluster is given."""
    from trackers.cluster import SCHEDULER_ENV, local_cluster
    cluster = local_cluster(2)
    old = os.environ.get(SCHEDULER_ENV)
    os.environ[SCHEDULER_ENV] = cluster.scheduler_address
    try:
        yield cluster.scheduler_address
    finally:
        if old is None:
            os.environ.pop(SCHEDULER_ENV, None)
        else:
            os.environ[SCHEDULER_ENV] = old
        cluster.close()


def _label():
    return f"kernel code v{linux.version()} (userspace)"


@pytest.fixture
def no_kernel(monkeypatch):
    """bench-core as it runs where the kernel code is not built."""
    monkeypatch.setattr(bench_rows, "KERNEL_TRACKERS", {})
    monkeypatch.setattr(bench_rows, "KERNEL_UNAVAILABLE", "no kernel library here (test)")


def test_spread_is_median_min_max():
    assert spread("populate_s", [3.0, 1.0, 2.0, 10.0]) == {
        "populate_s_median": 2.5, "populate_s_min": 1.0, "populate_s_max": 10.0}


def test_bench_core_csv_has_median_and_spread_of_every_time(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["bench-core", "--pfns", "65536", "--repeat", "3", "--estimate-pfns", "1048576",
                 "--trackers", "bitmap", "kvm", "--engine", "emulation",
                 "--conversions", "20", "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["tracker"]) == ["bitmap", "kvm"]
    assert list(df["engine"]) == ["emulation", "emulation"]
    stats = [f"{t}_{s}" for t in TIMES for s in STATS]
    assert list(df.columns[2:2 + len(stats)]) == stats
    assert not {"populate_s", "scan_extents_s", "scan_pfns_s"} & set(df.columns)
    for t in TIMES:
        assert (df[f"{t}_min"] <= df[f"{t}_median"]).all()
        assert (df[f"{t}_median"] <= df[f"{t}_max"]).all()
        assert df[f"{t}_emulation_over_kernel"].isna().all()     # no kernel row to compare
    assert np.allclose(df["populate_ns_per_page"], df["populate_s_median"] / TINY_PAGES * 1e9)
    assert not (tmp_path / "bench-maple-order.csv").exists()     # no maple@kernel row
    conv = pd.read_csv(tmp_path / "bench-conversion-cost.csv")
    assert set(conv["tracker"]) == {"bitmap", "kvm"}
    printed = capsys.readouterr().out
    assert "[measured] times in s, median (min\u2013max) of 3 runs" in printed
    assert "estimate() at 1,048,576 PFNs [measured time in s, median (min\u2013max) of 3 runs" \
        in printed
    assert "kvm per-GFN attribute store over 65,536 GFNs [measured, median (min\u2013max) " \
           "of 3 runs]" in printed


def _kill_own_worker():
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_measurement_whose_worker_dies_is_an_error_row_naming_it(scheduler):
    """run_outcomes: the unit whose worker dies is ("error", why), the others
    measured (the worker's nanny restarts it)."""
    from distributed import Client
    with Client(scheduler) as client:
        got = run_outcomes(client, [Unit(_kill_own_worker, timed=True, label="maple@kernel"),
                                    Unit(spread, ("x", [1.0, 3.0, 2.0]), timed=True,
                                         label="bitmap")], "trackers", progress=False)
    assert got[1] == ("ok", {"x_median": 2.0, "x_min": 1.0, "x_max": 3.0})
    assert got[0][0] == "error" and re.fullmatch(
        r"its worker \(tcp://127\.0\.0\.1:\d+\) died while running it \(killed, or out of "
        r"memory\)", got[0][1])


def test_a_tracker_lost_in_a_table_is_printed_and_named_on_stderr(monkeypatch, capsys):
    """A tracker whose conversion-cost task failed keeps its line in the
    printed table (its error beside "-") and is one stderr line; status 1."""
    import trackers.bench.cli as bench_cli
    real = bench_cli.conversion_cost
    why = "its worker (tcp://127.0.0.1:1) died while running it (killed, or out of memory)"

    def losing_kvm(names, *args, **kwargs):
        df = real(names, *args, **kwargs)
        return pd.concat([df[df["tracker"] != "kvm"],
                          pd.DataFrame([{"tracker": "kvm", "engine": "emulation",
                                         "error": why}])], ignore_index=True)

    monkeypatch.setattr(bench_cli, "conversion_cost", losing_kvm)
    assert main(["bench-core", "--pfns", "65536", "--repeat", "1", "--estimate-pfns", "65536",
                 "--trackers", "bitmap", "kvm", "--engine", "emulation",
                 "--conversions", "5"]) == 1
    out, err = capsys.readouterr()
    table = out.split("conversion cost [measured]")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in table[1:]] == ["bitmap", "kvm"]
    assert table[2].split() == ["kvm", "emulation", "-", "-", "-", "-", "-", "0", "0",
                                *why.split()]
    assert err.splitlines()[-1] == f"tdx-trackers bench-core: error: conversion cost of kvm: {why}"


def test_estimate_and_kvm_loop_times_have_spread():
    est = time_estimates(["bitmap"], 1 << 20, seed=0, repeat=3)
    assert list(est.columns) == ["tracker", "estimate_pfns", "extents", "estimate_s_median",
                                 "estimate_s_min", "estimate_s_max", "modeled_bytes"]
    assert est["modeled_bytes"].iloc[0] == (1 << 20) // 8
    kvm = time_kvm_store_loop(1 << 12, repeat=2)
    assert set(kvm) == {"gfns", "anchor_ns_per_gfn",
                        *(f"{k}_{s}" for k in ("seconds", "ns_per_gfn")
                          for s in ("median", "min", "max"))}
    assert kvm["seconds_min"] <= kvm["seconds_median"] <= kvm["seconds_max"]


# --------------------------------------------------------------------------
# rows: the emulations and their @kernel twins

def test_select_rows_puts_each_twin_after_its_emulation():
    twins = [TWINS[n].name for n in trackers.TRACKERS if n in TWINS
             and TWINS[n].name in trackers.KERNEL_TRACKERS]
    rows, missing = select_rows(None, "all")
    assert [r for r in rows if r in trackers.TRACKERS] == list(trackers.TRACKERS)
    assert [r for r in rows if r not in trackers.TRACKERS] == twins
    for twin in twins:
        assert rows[rows.index(twin) - 1] == trackers.KERNEL_TRACKERS[twin].twin
    assert select_rows(None, "emulation") == (list(trackers.TRACKERS), "")
    assert select_rows(["roaring", "xarray"], "emulation")[0] == ["xarray", "roaring"]
    assert select_rows(None, "kernel")[0] == twins
    assert select_rows(["xarray@kernel"], "emulation")[0] == []
    with pytest.raises(ValueError, match="unknown tracker 'btree'; known: bitmap, xarray"):
        select_rows(["btree"])
    with pytest.raises(ValueError, match="unknown tracker 'roaring@kernel'"):
        select_rows(["roaring@kernel"])               # roaring has no kernel-code twin


@needs_kernel
def test_select_rows_with_the_kernel_code():
    assert select_rows(["xarray"], "all") == (["xarray", "xarray@kernel"], "")
    assert select_rows(["maple@kernel"], "all") == (["maple@kernel"], "")
    assert select_rows(["xarray", "maple"], "kernel") == (["xarray@kernel", "maple@kernel"], "")


def test_select_rows_without_the_kernel_code(no_kernel):
    assert select_rows(["xarray", "maple"], "all") == (["xarray", "maple"],
                                                       "no kernel library here (test)")
    assert select_rows(["xarray@kernel"], "kernel") == ([], "no kernel library here (test)")
    assert select_rows(["roaring"], "kernel") == ([], "")     # no twin: nothing is missing


def test_engine_label_is_emulation_or_the_kernel_version():
    for name in trackers.TRACKERS:
        assert engine_of(name) == "emulation"
    for name in trackers.KERNEL_TRACKERS:
        assert engine_of(name) == _label()
        assert _label() == f"kernel code v{linux.version()} (userspace)"


def test_ratios_are_emulation_over_kernel(monkeypatch):
    """Each kernel-code row: its twin's figure over its own; emulation rows
    and rows without a measured twin: NaN."""
    monkeypatch.setattr(bench_rows, "KERNEL_TRACKERS",
                        {TWINS[n].name: TWINS[n] for n in ("xarray", "maple")})
    cols = {f"{t}_{s}": [] for t in TIMES for s in STATS}
    df = pd.DataFrame({"tracker": ["xarray", "xarray@kernel", "maple@kernel"],
                       "engine": ["emulation", "kernel code v6.1.0 (userspace)",
                                  "kernel code v6.1.0 (userspace)"],
                       **{c: [6.0, 2.0, 4.0] for c in cols},
                       "modeled_bytes": [100, 100, 50], "peak_rss_bytes": [300, 100, 100]})
    out = add_ratios(df)
    for t in TIMES:
        assert out[f"{t}_emulation_over_kernel"].tolist()[1] == 3.0
        assert out[f"{t}_emulation_over_kernel"].isna().tolist() == [True, False, True]
    assert out["modeled_bytes_emulation_over_kernel"].tolist()[1] == 1.0
    assert out["peak_rss_bytes_emulation_over_kernel"].tolist()[1] == 3.0
    table = ratio_table(out)
    assert table["tracker"].tolist() == ["xarray@kernel"]
    assert list(table.columns) == ["tracker", *TIMES, "modeled_bytes", "peak_rss_bytes"]


@needs_kernel
def test_bench_core_kernel_engine_on_a_tiny_set(tmp_path, capsys):
    """--engine kernel: the @kernel rows alone, labelled with the kernel
    version; the maple order and conversion-cost tables beside the CSV."""
    out = tmp_path / "k.csv"
    assert main(["bench-core", "--pfns", str(TINY), "--repeat", "2", "--engine", "kernel",
                 "--trackers", "xarray", "maple", "--maple-seeds", "2",
                 "--conversions", "20", "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["tracker"]) == ["xarray@kernel", "maple@kernel"]
    assert set(df["engine"]) == {_label()}
    for t in TIMES:
        assert (df[f"{t}_min"] <= df[f"{t}_median"]).all()
        assert (df[f"{t}_median"] <= df[f"{t}_max"]).all()
        assert df[f"{t}_emulation_over_kernel"].isna().all()     # twins not measured
    # the kernel's own counts: equal to the model's (tests/test_kernel_code.py)
    s, e = reference_set(TINY, 0)
    for name, cls in (("xarray@kernel", trackers.TRACKERS["xarray"]),
                      ("maple@kernel", trackers.TRACKERS["maple"])):
        assert df.set_index("tracker").at[name, "modeled_bytes"] == cls.estimate(s, e, TINY)
    order = pd.read_csv(tmp_path / "k-maple-order.csv")
    assert order["order"].tolist() == ["in order", "random"]
    assert order["runs"].tolist() == [1, 2]
    conv = pd.read_csv(tmp_path / "k-conversion-cost.csv")
    assert set(conv["tracker"]) == {"xarray@kernel", "maple@kernel"}
    assert "kernel code unavailable" not in capsys.readouterr().out


@needs_kernel
def test_bench_core_all_engines_print_and_write_the_ratios(tmp_path, capsys):
    out = tmp_path / "a.csv"
    assert main(["bench-core", "--pfns", str(TINY), "--repeat", "2", "--trackers", "ida",
                 "--conversions", "10", "--estimate-pfns", str(TINY), "--csv", str(out)]) == 0
    df = pd.read_csv(out).set_index("tracker")
    assert list(df.index) == ["ida", "ida@kernel"]
    assert df["engine"].tolist() == ["emulation", _label()]
    for t in TIMES:
        want = df.at["ida", f"{t}_median"] / df.at["ida@kernel", f"{t}_median"]
        assert df.at["ida@kernel", f"{t}_emulation_over_kernel"] == pytest.approx(want, rel=1e-12)
        assert np.isnan(df.at["ida", f"{t}_emulation_over_kernel"])
    assert df.at["ida@kernel", "modeled_bytes_emulation_over_kernel"] == 1.0
    printed = capsys.readouterr().out
    assert "emulation / kernel code, per structure" in printed
    assert "kernel code: every tracker within populate + scan <= 60 s" in printed or \
           "kernel code: over populate + scan <= 60 s" in printed


def test_bench_core_without_the_kernel_code_says_why_once(no_kernel, tmp_path, capsys):
    assert main(["bench-core", "--pfns", str(TINY), "--repeat", "1", "--engine", "kernel",
                 "--csv", str(tmp_path / "k.csv")]) == 0
    printed = capsys.readouterr().out
    assert printed == "kernel code unavailable, no rows: no kernel library here (test)\n"
    assert not (tmp_path / "k.csv").exists()
    out = tmp_path / "a.csv"
    assert main(["bench-core", "--pfns", str(TINY), "--repeat", "1", "--trackers", "bitmap",
                 "--conversions", "5", "--estimate-pfns", str(TINY), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("no kernel library here (test)") == 1
    assert "kernel code unavailable, emulation rows only" in printed
    assert pd.read_csv(out)["engine"].tolist() == ["emulation"]


def test_bench_core_engine_with_no_tracker_on_it_is_a_usage_error(capsys):
    assert main(["bench-core", "--pfns", str(TINY), "--engine", "kernel",
                 "--trackers", "roaring"]) == 2
    assert capsys.readouterr().err.strip() == (
        "tdx-trackers bench-core: error: --engine kernel: none of the trackers given runs on it")


# --------------------------------------------------------------------------
# the maple order effect and the cost of one conversion

@needs_kernel
def test_maple_order_counts_the_kernels_tree_in_order_and_at_random():
    df = maple_order(TINY, seed=0, seeds=3)
    s, e = reference_set(TINY, 0)
    assert df["order"].tolist() == ["in order", "random"]
    assert set(df["engine"]) == {_label()}
    assert df["extents"].tolist() == [s.size, s.size]
    first, rand = df.iloc[0], df.iloc[1]
    assert first["nodes_median"] == first["model_nodes"] == \
        trackers.TRACKERS["maple"].estimate(s, e, TINY) // MAPLE_NODE_BYTES
    assert first["kernel_bytes_median"] == first["nodes_median"] * MAPLE_NODE_BYTES
    assert first["ratio_median"] == 1.0 and rand["runs"] == 3 and rand["seeds"] == "1-3"
    for k in ("nodes", "ratio", "leaves", "store_ns_per_extent"):
        assert rand[f"{k}_min"] <= rand[f"{k}_median"] <= rand[f"{k}_max"]
    assert rand["ratio_min"] == rand["nodes_min"] / first["nodes_median"]
    assert rand["ratio_max"] == rand["nodes_max"] / first["nodes_median"]


def test_conversion_targets_are_free_slots_of_the_held_set():
    s, e = reference_set(TINY, 0)
    held, targets = conversion_targets(s, e, TINY, n=20, seed=0)
    assert list(targets) == ["4KiB", "2MiB"]
    slots, slot_ends = targets["2MiB"]
    pages, page_ends = targets["4KiB"]
    assert slots.size == pages.size == 20
    assert conversion_targets(s, e, TINY, n=2000)[1]["2MiB"][0].size == 51 // 2   # of 51 slots
    assert np.all(slots % PAGES_PER_2M == 0) and np.all(slot_ends - slots == PAGES_PER_2M)
    assert np.all(page_ends - pages == 1)
    assert np.unique(slots).size == 20 and np.unique(pages).size == 20
    assert not np.all(np.diff(slots) > 0)                  # random order, not sorted
    # held: the set less the slots, and no target page is in it
    t = trackers.get_tracker("bitmap", max_pfn=TINY)
    t.mark_ranges(*held)
    ref = trackers.get_tracker("bitmap", max_pfn=TINY)
    ref.mark_ranges(s, e)
    every_slot_page = (slots[:, None] + np.arange(PAGES_PER_2M)).ravel()
    assert not t.contains(every_slot_page).any() and not t.contains(pages).any()
    assert len(ref) - len(t) == int(ref.contains(every_slot_page).sum())
    assert not np.isin(pages // PAGES_PER_2M, slots // PAGES_PER_2M).any()


def test_conversion_cost_has_a_row_per_structure_size_and_op():
    names = ["xarray", "maple", *(n for n in ("xarray@kernel", "maple@kernel")
                                  if n in trackers.KERNEL_TRACKERS)]
    df = conversion_cost(names, TINY, repeat=2, conversions=15)
    assert list(df.columns[-4:]) == ["calls", "upper_bound", "fixed_call_ns",
                                     "ns_per_conversion_emulation_over_kernel"]
    assert len(df) == len(names) * 2 * 2
    assert list(zip(df["tracker"], df["size"], df["op"])) == [
        (n, size, op) for n in names for size in ("4KiB", "2MiB") for op in ("mark", "unmark")]
    assert df["pages"].tolist() == [1, 1, 512, 512] * len(names)
    assert (df["ns_per_conversion_min"] <= df["ns_per_conversion_median"]).all()
    assert (df["ns_per_conversion_median"] <= df["ns_per_conversion_max"]).all()
    assert (df["ns_per_page"] == df["ns_per_conversion_median"] / df["pages"]).all()
    assert df.groupby("tracker")["engine"].first().to_dict() == {n: engine_of(n) for n in names}
    kernel = df["tracker"].isin(list(trackers.KERNEL_TRACKERS))
    assert (df.loc[kernel, "conversions"] == 15).all()     # one engine call of all of them
    assert df["upper_bound"].tolist() == (~kernel).tolist()
    assert df.loc[kernel, "fixed_call_ns"].notna().all()       # subtracted, and said
    assert df.loc[~kernel, "fixed_call_ns"].isna().all()
    assert df.loc[~kernel, "ns_per_conversion_emulation_over_kernel"].isna().all()
    by = df.set_index(["tracker", "size", "op"])["ns_per_conversion_median"]
    for i in np.flatnonzero(kernel):
        row = df.iloc[i]
        twin = trackers.KERNEL_TRACKERS[row["tracker"]].twin
        assert row["ns_per_conversion_emulation_over_kernel"] == \
            by[twin, row["size"], row["op"]] / row["ns_per_conversion_median"]
    with pytest.raises(ValueError, match="unknown tracker 'btree'"):
        conversion_cost(["btree"], TINY)


@needs_kernel
def test_the_conversion_table_says_which_engine_timed_each_row():
    """bitmap@kernel in the kernel's bitmap_set/bitmap_clear and pageflags
    in struct pages laid out in C, one call of all conversions; roaring one
    Python call each, an upper bound; each printed row names its engine."""
    names = ["bitmap@kernel", "roaring", "pageflags"]
    df = conversion_cost(names, TINY, repeat=1, conversions=10)
    by = df.groupby("tracker")[["engine", "calls", "upper_bound"]].first()
    assert by.loc["bitmap@kernel"].tolist() == [
        _label(), "bitmap_set / bitmap_clear (__bitmap_set, __bitmap_clear) per range", False]
    assert by.loc["pageflags"].tolist() == [
        STRUCT_PAGES_ENGINE, "set_bit / clear_bit of PG_tdx_private in page->flags per page",
        False]
    assert by.loc["roaring", "upper_bound"] and by.loc["roaring", "engine"] == "emulation"
    table = conversion_table(df).set_index("tracker")
    assert list(table.columns[:2]) == ["engine", "timed"]
    assert table["timed"].to_dict() == {"bitmap@kernel": "C, one call of all",
                                        "roaring": "Python call each (upper bound)",
                                        "pageflags": "C, one call of all"}
    assert table["engine"].to_dict() == by["engine"].to_dict()


def test_asv_populate_skips_when_the_budget_refuses():
    """Populate builds inside the timed call; a budget refusal there is a skip
    (asv's SkipNotImplemented, a NotImplementedError), not a failure."""
    from benchmarks.bench_trackers import Populate, SkipNotImplemented
    assert issubclass(SkipNotImplemented, NotImplementedError)
    b = Populate()
    b.t = trackers.get_tracker("xarray", max_pfn=1 << 32, budget_bytes=1 << 16)
    b.starts = np.arange(0, 1 << 30, 1 << 20, dtype=np.int64)
    b.ends = b.starts + 1
    with pytest.raises(SkipNotImplemented, match="over the memory budget of 65,536 bytes"):
        b.time_populate(None, "xarray", "16T", "reference")


def test_bench_core_builds_a_large_space_in_shards(tmp_path, capsys):
    """--pfns above --shard-pfns: each tracker built shard by shard, its bytes
    combined and beside estimate() of the same shards (equal: the ratio is 1)."""
    out = tmp_path / "sharded.csv"
    assert main(["bench-core", "--pfns", str(1 << 19), "--shard-pfns", str(1 << 17),
                 "--repeat", "2", "--trackers", "xarray-multi", "roaring", "--engine",
                 "emulation", "--scan-pfns", "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["tracker"].tolist() == ["xarray-multi", "roaring"]
    assert (df["shards"] == 4).all() and (df["shard_pfns"] == 1 << 17).all()
    assert (df["modeled_over_estimate"] == 1.0).all()
    assert (df["modeled_bytes"] == df["estimate_bytes"]).all()
    for t in TIMES:
        assert (df[f"{t}_min"] <= df[f"{t}_median"]).all()
    assert (df["scan_extents_max_shard_s"] <= df["scan_extents_s_max"]).all()
    assert (df["peak_rss_bytes"] > 0).all()
    printed = capsys.readouterr().out
    assert "built in 4 shards of 131,072 PFNs" in printed
    assert "not at 524,288 PFNs" in printed


def test_sharded_bench_core_says_the_ida_cannot_hold_the_whole_space(tmp_path):
    """Beyond 2^31 PFNs the IDA's shards would build, but the whole IDA
    would not exist: its row says so instead of numbers."""
    out = tmp_path / "ida.csv"
    assert main(["bench-core", "--pfns", str(1 << 32), "--trackers", "ida",
                 "--engine", "emulation", "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["tracker"].tolist() == ["ida"]
    assert df["not_representable"].iloc[0] == "IDA: not representable above 8 TiB (ids <= INT_MAX)"
