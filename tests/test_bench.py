"""bench-core reports every measured time as its median and spread; the asv
Populate benchmark skips what a tracker's memory budget refuses.  Facts only:
which columns, which order of statistics, which exception -- never a timing."""

import numpy as np
import pandas as pd
import pytest

from trackers.__main__ import main
from trackers.bench import _spread, time_estimates, time_kvm_store_loop

TIMES = ["populate_s", "scan_extents_s", "scan_pfns_s"]


def test_spread_is_median_min_max():
    assert _spread("populate_s", [3.0, 1.0, 2.0, 10.0]) == {
        "populate_s_median": 2.5, "populate_s_min": 1.0, "populate_s_max": 10.0}


def test_bench_core_csv_has_median_and_spread_of_every_time(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["bench-core", "--pfns", "65536", "--repeat", "3", "--estimate-pfns", "1048576",
                 "--trackers", "bitmap", "kvm", "--csv", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["tracker"]) == ["bitmap", "kvm"]
    stats = [f"{t}_{s}" for t in TIMES for s in ("median", "min", "max")]
    assert list(df.columns[1:1 + len(stats)]) == stats
    assert not {"populate_s", "scan_extents_s", "scan_pfns_s"} & set(df.columns)
    for t in TIMES:
        assert (df[f"{t}_min"] <= df[f"{t}_median"]).all()
        assert (df[f"{t}_median"] <= df[f"{t}_max"]).all()
    pages = 46004                                   # the 2^16-PFN reference set, seed 0
    assert np.allclose(df["populate_ns_per_page"], df["populate_s_median"] / pages * 1e9)
    printed = capsys.readouterr().out
    assert "[measured] times in s, median (min\u2013max) of 3 runs" in printed
    assert "estimate() at 1,048,576 PFNs [measured time in s, median (min\u2013max) of 3 runs" \
        in printed
    assert "kvm per-GFN attribute store over 65,536 GFNs [measured, median (min\u2013max) " \
           "of 3 runs]" in printed


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


def test_asv_populate_skips_when_the_budget_refuses():
    """Populate builds inside the timed call; a budget refusal there is a skip
    (asv's SkipNotImplemented, a NotImplementedError), not a failure."""
    import trackers
    from benchmarks.bench_trackers import Populate, SkipNotImplemented
    assert issubclass(SkipNotImplemented, NotImplementedError)
    bench = Populate()
    bench.t = trackers.get_tracker("xarray", max_pfn=1 << 32, budget_bytes=1 << 16)
    bench.starts = np.arange(0, 1 << 30, 1 << 20, dtype=np.int64)
    bench.ends = bench.starts + 1
    with pytest.raises(SkipNotImplemented, match="over the memory budget of 65,536 bytes"):
        bench.time_populate(None, "xarray", "16T", "reference")
