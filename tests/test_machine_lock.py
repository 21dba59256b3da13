"""Builds beside each other, timed sections alone (trackers/machine_lock.py):
the lock's states, read with non-blocking flock probes of its files (a
second open file description conflicts as another process would); a killed
holder holds nothing; how many builds may run at once and what each claims;
and the kexec table of builds at once is the one-at-a-time table but for the
timed columns."""

import fcntl
import multiprocessing
import os

import pandas as pd
import pytest

from trackers.machine_lock import (BUILD_OVERHEAD_BYTES, RESERVE_BYTES, TimingLock,
                                   builds_at_once, capacity_bytes, claim_bytes,
                                   mem_available_bytes, run_beside)
from trackers.repeats import timed_runs

GiB = 1 << 30


def _can(path, how) -> bool:
    """Whether another holder could take ``path``'s flock ``how`` now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_unit_shares_and_a_timed_section_is_alone(tmp_path):
    lock = TimingLock(tmp_path)
    main, turn = tmp_path / "main", tmp_path / "turn"
    try:
        lock.share()
        # another build may start beside it, a timed section may not
        assert _can(main, fcntl.LOCK_SH) and not _can(main, fcntl.LOCK_EX)
        assert _can(turn, fcntl.LOCK_EX)                  # the turnstile is free
        with lock.alone():
            # no build starts (turnstile held) and none runs (main exclusive)
            assert not _can(main, fcntl.LOCK_SH) and not _can(turn, fcntl.LOCK_EX)
        assert lock.shared                                 # back to building
        assert _can(main, fcntl.LOCK_SH) and not _can(main, fcntl.LOCK_EX)
    finally:
        lock.close()
    assert _can(main, fcntl.LOCK_EX) and _can(turn, fcntl.LOCK_EX)


def test_timed_runs_inside_run_beside_run_alone(tmp_path):
    main = tmp_path / "main"
    seen = {}

    def unit():
        seen["building"] = (_can(main, fcntl.LOCK_SH), _can(main, fcntl.LOCK_EX))
        timed_runs(lambda: seen.setdefault("timed", _can(main, fcntl.LOCK_SH)), 1)
        return "done"

    assert run_beside(str(tmp_path), unit) == "done"
    assert seen == {"building": (True, False), "timed": False}
    assert _can(main, fcntl.LOCK_EX)                      # released at the end
    # outside run_beside a timed section takes no lock
    timed_runs(lambda: seen.update(outside=_can(main, fcntl.LOCK_EX)), 1)
    assert seen["outside"]


def _hold_share(where, ready):
    lock = TimingLock(where)
    lock.share()
    ready.set()
    multiprocessing.Event().wait()                        # until killed


def test_a_killed_unit_holds_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_share, args=(str(tmp_path), ready))
    p.start()
    try:
        assert ready.wait(60)
        assert not _can(tmp_path / "main", fcntl.LOCK_EX)  # its build holds the machine
    finally:
        p.kill()
        p.join()
    lock = TimingLock(tmp_path)
    try:
        with lock.alone():                                 # does not wait for the dead
            pass
    finally:
        lock.close()


def test_a_missing_lock_directory_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"timing lock directory {tmp_path / 'no'} does not"):
        TimingLock(tmp_path / "no")


def test_builds_at_once_is_one_per_core_and_one_more():
    assert [builds_at_once(c) for c in (1, 2, 8)] == [2, 3, 9]
    assert builds_at_once() == (os.cpu_count() or 1) + 1


def test_capacity_and_claims_are_memory_less_what_is_kept_back():
    assert capacity_bytes(22 * GiB) == 22 * GiB - RESERVE_BYTES == 21 * GiB
    assert capacity_bytes(GiB // 2) == 0
    # a structure's modeled bytes, capped by the memory budget, plus a worker
    assert claim_bytes(4 * GiB, budget_bytes=8 * GiB) == 4 * GiB + BUILD_OVERHEAD_BYTES
    assert claim_bytes(16 * GiB, budget_bytes=8 * GiB) == 8 * GiB + BUILD_OVERHEAD_BYTES
    assert BUILD_OVERHEAD_BYTES == 3 * GiB // 2


def test_no_meminfo_is_no_capacity(monkeypatch):
    import trackers.machine_lock as ml
    monkeypatch.setattr(ml, "mem_available_bytes", lambda: None)
    assert capacity_bytes() is None


def test_mem_available_is_read_from_meminfo(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       24576000 kB\nMemAvailable:   23000000 kB\n")
    assert mem_available_bytes(f) == 23000000 * 1024
    f.write_text("MemTotal:       24576000 kB\n")
    assert mem_available_bytes(f) is None
    assert mem_available_bytes(tmp_path / "none") is None


@pytest.mark.slow
def test_builds_at_once_give_the_one_at_a_time_table():
    from distributed import Client

    from trackers.cluster import local_cluster
    from trackers.kexec import evaluate, from_workload
    from trackers.kexec.evaluate import evaluate_tasks
    from trackers.workloads import scenario
    from test_kexec_tasks import TIMED_COLUMNS

    host = from_workload(scenario("tiny", 0))
    names = ["bitmap", "xarray", "ida", "pageflags", "kvm-attr", "kvm-sept", "clear-all"]
    cluster = local_cluster(3, timed_workers=3)
    try:
        with Client(cluster) as client:
            client.wait_for_workers(3)
            df, _ = evaluate_tasks(client, host, "this-machine", strategies=names,
                                   progress=False, builds_at_once=3, capacity_bytes=20 * GiB)
    finally:
        cluster.close()
    ref = evaluate(host, "this-machine", strategies=names)
    assert (df["scan_runs"].iloc[:6] > 0).all()
    pd.testing.assert_frame_equal(df.drop(columns=TIMED_COLUMNS),
                                  ref.drop(columns=TIMED_COLUMNS))
