"""How busy the machine was (trackers/machine_load.py): other tasks' share of
the CPU time over a window, from injected snapshots.  Facts only."""

import math
import os

import pytest

from trackers import machine_load


def test_machine_load_counts_other_tasks_cpu_time():
    hz = os.sysconf("SC_CLK_TCK")
    before = {"loadavg": [1.5, 1.0, 0.5], "jiffies": (1000, 10), "self_cpu_s": 2.0,
              "wall_s": 100.0}
    # 10 s on 2 CPUs: 20 CPU-seconds; this process used 8, the machine 18 (2 of them steal)
    after = {"loadavg": [2.5, 1.2, 0.6], "jiffies": (1000 + 18 * hz, 10 + 2 * hz),
             "self_cpu_s": 10.0, "wall_s": 110.0}
    load = machine_load.machine_load(before, after, cpus_online=2)
    assert load == {"loadavg_before": [1.5, 1.0, 0.5], "loadavg_after": [2.5, 1.2, 0.6],
                    "others_cpu_share": pytest.approx(0.5), "steal_share": pytest.approx(0.1),
                    "busy": True}
    quiet = dict(after, jiffies=(1000 + 9 * hz, 10))             # others: 1 of 20 s
    assert machine_load.machine_load(before, quiet, cpus_online=2)["busy"] is False
    # without /proc/stat the 1-minute load average before the run decides
    no_stat = machine_load.machine_load(dict(before, jiffies=None), after, cpus_online=2)
    assert no_stat["others_cpu_share"] is None and no_stat["busy"] is True


def test_a_window_measures_the_others_share_over_itself(monkeypatch):
    hz = os.sysconf("SC_CLK_TCK")
    cpus = os.cpu_count()
    snaps = iter([{"loadavg": [0.3, 0.2, 0.1], "jiffies": (0, 0), "self_cpu_s": 0.0,
                   "wall_s": 0.0},
                  {"loadavg": [0.4, 0.2, 0.1], "jiffies": (int(0.25 * cpus * hz) + hz, 0),
                   "self_cpu_s": 1.0, "wall_s": 1.0}])
    monkeypatch.setattr(machine_load, "load_snapshot", lambda: next(snaps))
    with machine_load.LoadWindow() as w:
        assert math.isnan(w.others_cpu_share)
    assert w.others_cpu_share == pytest.approx(0.25, abs=1 / (cpus * hz))
    assert w.loadavg_1min == 0.4 and w.load["busy"] is True


def test_a_window_without_proc_stat_has_no_share(monkeypatch):
    snaps = iter([{"loadavg": [], "jiffies": None, "self_cpu_s": 0.0, "wall_s": 0.0},
                  {"loadavg": [], "jiffies": None, "self_cpu_s": 1.0, "wall_s": 1.0}])
    monkeypatch.setattr(machine_load, "load_snapshot", lambda: next(snaps))
    with machine_load.LoadWindow() as w:
        pass
    assert math.isnan(w.others_cpu_share) and math.isnan(w.loadavg_1min)
    assert w.load["busy"] is False
