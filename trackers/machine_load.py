"""How busy this machine is: the load other tasks put on it while this
process measures something.

A snapshot (:func:`load_snapshot`) holds the load averages, the machine's CPU
clock ticks since boot from /proc/stat (busy and steal), this process's CPU
seconds (every thread) and the wall clock; :func:`machine_load` of two
snapshots is the share of the machine's CPU time that other tasks -- and the
hypervisor (steal) -- took between them.  A 1-minute load average is an
exponentially smoothed count of runnable tasks and lags a short window by
up to a minute; the share is of the window itself.

:class:`LoadWindow` measures one window around something timed (``with
LoadWindow() as w: ...``; then ``w.others_cpu_share``): the report puts it
beside each timed figure (column ``others_cpu_share``).  In a Dask worker
"this process" is the worker: its other threads (heartbeats) count as its
own, and every other worker, the scheduler and the client as others.
"""

from __future__ import annotations

import math
import os
import resource
import time

#: other tasks took at least this share of the machine's CPU time during the run
BUSY_CPU_SHARE = 0.10
#: without /proc/stat: a 1-minute load average before the run at least this high
BUSY_LOADAVG = 0.5


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, steal) clock ticks of the whole machine since boot, from /proc/stat;
    None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


def load_snapshot() -> dict:
    """What the machine is doing now: load averages, machine CPU ticks, this
    process's CPU seconds (every thread), wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"loadavg": _loadavg(), "jiffies": _cpu_jiffies(),
            "self_cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.monotonic()}


def machine_load(before: dict, after: dict, cpus_online: int) -> dict:
    """The load other tasks put on the machine between two snapshots.

    ``others_cpu_share``: CPU time other tasks and the hypervisor (steal) used,
    as a share of all the machine's CPU time over the run (None without
    /proc/stat); ``busy``: whether that share, or else the 1-minute load
    average before the run, says the figures were measured on a busy machine.
    """
    load = {"loadavg_before": before["loadavg"], "loadavg_after": after["loadavg"],
            "others_cpu_share": None, "steal_share": None}
    wall = after["wall_s"] - before["wall_s"]
    if before["jiffies"] and after["jiffies"] and wall > 0:
        hz = os.sysconf("SC_CLK_TCK")
        capacity = wall * cpus_online
        busy_s = (after["jiffies"][0] - before["jiffies"][0]) / hz
        steal_s = (after["jiffies"][1] - before["jiffies"][1]) / hz
        others = busy_s - (after["self_cpu_s"] - before["self_cpu_s"])
        load["others_cpu_share"] = min(max(others / capacity, 0.0), 1.0)
        load["steal_share"] = min(max(steal_s / capacity, 0.0), 1.0)
        load["busy"] = load["others_cpu_share"] >= BUSY_CPU_SHARE
    else:
        load["busy"] = bool(before["loadavg"]) and before["loadavg"][0] >= BUSY_LOADAVG
    return load


def _loadavg() -> list[float]:
    """1/5/15-minute load averages during the run: a busy machine skews figures."""
    try:
        return [float(x) for x in os.getloadavg()]
    except OSError:
        return []


class LoadWindow:
    """A window of time something is timed in: on exit, ``load`` is
    :func:`machine_load` over it, ``others_cpu_share`` its share (NaN
    without /proc/stat) and ``loadavg_1min`` the 1-minute load average at
    its end (NaN where the system has none)."""

    def __init__(self):
        self.load: dict = {}
        self.others_cpu_share = math.nan
        self.loadavg_1min = math.nan

    def __enter__(self) -> "LoadWindow":
        self._before = load_snapshot()
        return self

    def __exit__(self, *exc) -> None:
        after = load_snapshot()
        self.load = machine_load(self._before, after, os.cpu_count() or 1)
        share = self.load["others_cpu_share"]
        self.others_cpu_share = math.nan if share is None else share
        self.loadavg_1min = after["loadavg"][0] if after["loadavg"] else math.nan
