import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import trackers.linux

# Deterministic by default: the same examples every run (CI and laptops alike).
settings.register_profile(
    "default", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The kernel's own code: build it (or find it built) at session start, before
# any test module imports trackers.registry, so that the registry's
# KERNEL_TRACKERS (the @kernel twins) are there for the contract,
# differential and kernel-code tests.  Where it cannot be built they skip,
# and the header says why.
try:
    trackers.linux.build()
    _ok, _why = trackers.linux.available()
    KERNEL_CODE = (f"kernel code: v{trackers.linux.version()} built" if _ok
                   else f"kernel code: unavailable: {_why}")
except trackers.linux.KernelCodeUnavailable as exc:
    KERNEL_CODE = f"kernel code: unavailable: {exc}"
    print(KERNEL_CODE)


# The this-machine platform: measured once per session, small and quick, into
# a file of the session's own.  The tests neither depend on nor overwrite a
# calibration the user keeps in ~/.cache (a fresh machine has none, and the
# measured rows -- model error, the measured CPU sweep -- need one).  After the
# build: its scan costs are timed on the @kernel twins where they load.
def _session_calibration() -> str:
    from trackers.kexec import calibrate
    path = os.path.join(tempfile.mkdtemp(prefix="trackers-tests-"), "calibration.json")
    doc = calibrate.measure(mib=16, chase_mib=16, chase_steps=1 << 16, repeat=1)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


os.environ["TRACKERS_CALIBRATION"] = _session_calibration()


def pytest_addoption(parser):
    parser.addoption("--report-dir", default=None, metavar="DIR",
                     help="run the answer's tests (tests/test_report_answer.py) on this "
                          "report directory, e.g. a default report's, instead of a quick one")


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    """One `tdx-trackers report --quick` per session, for every test that reads
    a report's files."""
    from trackers.__main__ import main
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def report_dir_for_answer(request):
    """--report-dir if given (no quick report is run then), else the
    session's quick report."""
    given = request.config.getoption("--report-dir")
    return Path(given) if given else request.getfixturevalue("quick_report")


@pytest.fixture(scope="module")
def lib():
    """trackers.linux with its library loaded (the glue's kernel code,
    pages.c and directmap.c), built here if it is not; the test skips,
    saying why, where it cannot be built or loaded."""
    ok, why = trackers.linux.available()
    if not ok:
        try:
            trackers.linux.build()
        except trackers.linux.KernelCodeUnavailable as exc:
            pytest.skip(f"the kernel-code library (trackers/linux/*.c) cannot be built here: "
                        f"{exc}")
        ok, why = trackers.linux.available()
        if not ok:
            pytest.skip(f"the kernel-code library does not load: {why}")
    return trackers.linux


@pytest.fixture(scope="session")
def cluster():
    """A two-worker local cluster (trackers.cluster.local_cluster: one timing
    worker) for the whole session: a cluster's start (two spawned workers,
    their imports) is seconds, and no test needs fresh workers -- a task that
    measures resets its worker's peak RSS (cluster.with_peak_rss)."""
    from trackers.cluster import local_cluster
    c = local_cluster(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def client(cluster):
    """A Client of the session's ``cluster``, both workers up."""
    from distributed import Client
    with Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


#: fixtures whose tests are slow, whatever else they do: a Dask cluster (a
#: task's round trips; the session's cluster is started once, still seconds)
#: and a whole `report --quick` run (test_report.py's report_dir, the
#: session's quick_report: 20 s here)
SLOW_FIXTURES = {"cluster", "client", "report_dir", "on_session_cluster", "quick_report",
                 "report_dir_for_answer"}


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` every test that uses a fixture of SLOW_FIXTURES; the
    others slow for their own reasons carry @pytest.mark.slow themselves
    (-m "not slow" deselects both: the fast subset)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def on_session_cluster(cluster, monkeypatch):
    """A command run in the test goes to the session's cluster
    ($TRACKERS_SCHEDULER, as a user's is given) instead of starting its own:
    for tests of what a command writes, not of how it starts a cluster."""
    from trackers.cluster import SCHEDULER_ENV
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    return cluster.scheduler_address


def pytest_report_header(config):
    return KERNEL_CODE


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The same line at the end, where -q still shows it: the CI log says
    whether the kernel-code tests ran and how many of them passed."""
    passed = terminalreporter.stats.get("passed", [])
    kernel = [r for r in passed if "@kernel" in r.nodeid or "kernel_code" in r.nodeid
              or "test_linux" in r.nodeid or "test_xa_history" in r.nodeid
              or "test_kernel_walks" in r.nodeid]
    terminalreporter.write_line(f"{KERNEL_CODE}; {len(kernel)} kernel-code tests passed")
