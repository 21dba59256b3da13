"""The asv suite imports, and every benchmark's signature fits its parameters.

`asv check` discovers benchmarks/ in the current Python (environment_type
"existing") without running any; the timed and modeled runs are
`asv run --python=same --quick` (benchmarks/README.md).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _asv() -> list[str]:
    exe = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if exe is None:
        pytest.skip("asv is not installed (pip install -e '.[dev]')")
    return [exe]


@pytest.mark.slow
def test_asv_check():
    proc = subprocess.run(_asv() + ["check", "--python=same"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "No problems found" in out, out


def test_asv_conf_dirs_are_ignored():
    """asv writes results, html and cached sets under .asv/, which git ignores."""
    conf = (ROOT / "asv.conf.json").read_text()
    for key in ('"results_dir": ".asv/results"', '"html_dir": ".asv/html"',
                '"env_dir": ".asv/env"', '"benchmark_dir": "benchmarks"',
                '"environment_type": "existing"'):
        assert key in conf
    assert ".asv/" in (ROOT / ".gitignore").read_text().split()


def test_bench_kernel_parameters_are_the_kernel_trackers_or_one_skipped():
    """bench_kernel.py runs every @kernel tracker of the registry; where the
    kernel code is not built, its one parameter is skipped (NotImplementedError,
    asv's n/a) with the registry's reason."""
    import trackers
    from benchmarks import bench_kernel as bk

    classes = (bk.KernelPopulate, bk.KernelScan, bk.KernelMark, bk.KernelUnmark,
               bk.KernelBytes)
    want = list(trackers.KERNEL_TRACKERS) or [bk.KERNEL_CODE_UNAVAILABLE]
    for cls in classes:
        assert cls.params[0] == want
        assert cls.param_names[0] == "tracker"
        assert set(cls.params[1]) <= {"64G", "1T"}              # cheap under --quick
    with pytest.raises(NotImplementedError, match="kernel code unavailable: "):
        bk._runnable(bk.KERNEL_CODE_UNAVAILABLE)
    with pytest.raises(NotImplementedError, match="kernel code unavailable: "):
        bk.KernelScan().setup(None, bk.KERNEL_CODE_UNAVAILABLE, "64G")


#: every benchmark of the suite (asv names); a faster quick run drops none
BENCHMARKS = {
    "bench_kernel.KernelBytes.track_kernel_counted_bytes",
    "bench_kernel.KernelMark.time_mark",
    "bench_kernel.KernelPopulate.time_populate",
    "bench_kernel.KernelScan.time_scan_extents",
    "bench_kernel.KernelUnmark.time_unmark",
    "bench_kexec.Downtime.track_downtime_s",
    "bench_kexec.Kexec.track_added_bytes",
    "bench_kexec.Kexec.track_pages_missed",
    "bench_kexec.Kexec.track_scanned_bytes",
    "bench_kexec.Race.track_race_pages_missed",
    "bench_model.Modeled.track_bits_per_private_page",
    "bench_model.Modeled.track_modeled_bytes",
    "bench_model.Modeled.track_scanned_bytes",
    "bench_trackers.PageOps.time_contains",
    "bench_trackers.PageOps.time_mark_unmark",
    "bench_trackers.Populate.time_populate",
    "bench_trackers.Scan.time_scan_extents",
    "bench_trackers.Scan.time_scan_pfns",
}


def test_asv_discovers_every_benchmark():
    from asv_runner.discovery import disc_benchmarks

    found = {b.name for b in disc_benchmarks(str(ROOT / "benchmarks"))}
    assert found == BENCHMARKS


def test_asv_runs_from_a_fork_server_that_compiles_once(monkeypatch):
    """asv forks every benchmark process from one server that imported the
    suite; only that server warms (compiles) the trackers' numba code."""
    from benchmarks import common

    conf = (ROOT / "asv.conf.json").read_text()
    assert '"launch_method": "forkserver"' in conf
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "run_server", "benchmarks", "sock"])
    assert common.in_asv_forkserver()
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "discover", "benchmarks", "out"])
    assert not common.in_asv_forkserver()
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert not common.in_asv_forkserver()


def test_timed_builds_predicted_over_a_limit_are_na(monkeypatch, tmp_path):
    """A timed parameter whose build the probe (64 GiB, scaled by extent count)
    predicts over the time or memory limit is n/a, with both numbers named."""
    import json

    from benchmarks import common

    monkeypatch.setattr(common, "CACHE_DIR", tmp_path)
    path = tmp_path / f"probe-xarray-extents-2m-0-{common._source_digest()}.json"
    path.write_text(json.dumps({"seconds": 0.01, "extents": 100, "host_bytes": 1 << 24}))
    common.check_build_time("xarray", "1T", "extents-2m", 6_400)     # 0.64 s, 1 GiB: runs
    with pytest.raises(NotImplementedError, match=r"predicted to hold 2\.0 GiB .* 1 GiB limit"):
        common.check_build_time("xarray", "1T", "extents-2m", 12_800)
    with pytest.raises(NotImplementedError, match=r"predicted 6 s .* 5 s limit"):
        common.check_build_time("xarray", "1T", "extents-2m", 60_000)
    common.check_build_time("xarray", "64G", "extents-2m", 1 << 21)  # the probe host runs
    with pytest.raises(NotImplementedError, match=r"2,097,153 extents, over the 2,097,152"):
        common.check_build_time("xarray", "64G", "extents-2m", (1 << 21) + 1)
    plan = {("xarray", "1T", "extents-2m"): "why", ("xarray", "64G", "extents-2m"): None}
    common.planned(plan, "xarray", "64G", "extents-2m")
    with pytest.raises(NotImplementedError, match="why"):
        common.planned(plan, "xarray", "1T", "extents-2m")
