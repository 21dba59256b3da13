"""How busy this machine is: the load other tasks put on it while this
process measures something.

A snapshot (:func:`load_snapshot`) holds the load averages, the machine's CPU
clock ticks since boot from /proc/stat (busy and steal), this process's CPU
seconds (every thread) and the wall clock; :func:`machine_load` of two
snapshots is the share of the machine's CPU time that other tasks -- and the
hypervisor (steal) -- took between them.  A 1-minute load average is an
exponentially smoothed count of runnable tasks and lags a short window by
up to a minute; the share is of the window itself.
"""

from __future__ import annotations

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
