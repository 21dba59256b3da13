"""Builds beside each other, timed sections alone: one machine's timing lock.

A timed unit of the kexec table builds a structure (untimed: the kernel
code's per-page work, seconds at 1 TiB) and then times its scan
(:func:`trackers.repeats.timed_runs`).  On a machine with cores and memory
for several builds at once, several such units may run in worker processes
side by side, as long as every timed section runs with nothing else
building: a reader-writer lock over the machine.  A unit holds it shared
while it runs (:func:`run_beside`); a timed section
(:func:`TimingLock.alone`) gives up its share and takes it exclusive, so
it starts once every other unit has left its build (or reached its own timed
section) and no unit starts a build until it ends.

The lock is ``flock(2)`` on two files of one directory on the machine
(``flock`` locks are the kernel's, shared or exclusive, and go with the
process: a killed worker holds nothing):

- ``main``: held shared by every running unit, exclusive by a timed section;
- ``turn``: a turnstile that gives a waiting timed section precedence over
  units that have not yet started -- a unit passes through it before taking
  ``main`` shared, and a timed section holds it from before it waits for
  ``main`` until it ends, so no new build starts meanwhile.

Deadlock-free: a timed section waits only for shares, and every holder of a
share either finishes or reaches its own timed section, which releases the
share before it waits for ``turn``.

How many units build at once is decided where they are started
(trackers.cluster.run_units, for trackers/kexec/evaluate.py): up to one per
core and one more (:func:`builds_at_once`: the one more builds while another
unit waits for its timed section), as far as their memory claims
(:func:`claim_bytes`: the modeled bytes of the structure, capped by the
trackers' memory budget, plus a worker's overhead) fit what the machine has
(:func:`capacity_bytes`).  On 1tib-churn, on the 2-core, 24 GiB machine:
89 s one structure at a time, 65 s (60-66, 3 runs) three at once.

What it changes: only the order in which builds and timed sections run.
Each timed section still runs alone among the units that take the lock (the
modeled units beside them, estimates of a few milliseconds, take none, as
before); a unit's build time (``populate_s``, not a column of the kexec
table) is then measured beside another build.
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from . import repeats
from .base import memory_budget

#: what a building unit holds beyond its structure: the worker's interpreter
#: and libraries (0.2-0.3 GiB), the host scattered to it, the harness's and
#: numpy's unmodeled bytes
BUILD_OVERHEAD_BYTES = 3 << 29            # 1.5 GiB
#: memory left to the command's own process, the scheduler and the nannies
RESERVE_BYTES = 1 << 30


def mem_available_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is none."""
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return None
    m = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def builds_at_once(cpus: int | None = None) -> int:
    """How many units may build at once: one per core (``cpus``, default
    os.cpu_count()) and one more, so that a unit waiting for its timed
    section leaves no core idle (memory bounds it further:
    :func:`capacity_bytes`)."""
    return ((os.cpu_count() or 1) if cpus is None else cpus) + 1


def capacity_bytes(available: int | None = None) -> int | None:
    """What the units building at once may claim between them: MemAvailable
    (``available``) less RESERVE_BYTES; None where MemAvailable is unknown."""
    available = mem_available_bytes() if available is None else available
    return None if available is None else max(0, available - RESERVE_BYTES)


def claim_bytes(structure_bytes: int, budget_bytes: int | None = None) -> int:
    """What a unit building a structure of ``structure_bytes`` (modeled) may
    hold: the structure, never past the trackers' memory budget (they refuse
    more), plus BUILD_OVERHEAD_BYTES."""
    budget = memory_budget() if budget_bytes is None else budget_bytes
    return min(int(structure_bytes), budget) + BUILD_OVERHEAD_BYTES


class TimingLock:
    """The machine's timing lock in directory ``where`` (module doc), as one
    process holds it."""

    def __init__(self, where: str | os.PathLike):
        where = Path(where)
        if not where.is_dir():
            raise ValueError(f"timing lock directory {where} does not exist")
        self._main = os.open(where / "main", os.O_RDWR | os.O_CREAT, 0o600)
        self._turn = os.open(where / "turn", os.O_RDWR | os.O_CREAT, 0o600)
        self.shared = False

    def close(self) -> None:
        for fd in (self._main, self._turn):
            os.close(fd)                 # releases what this process held

    def share(self) -> None:
        """Take ``main`` shared, through the turnstile (a build may start)."""
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._main, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)
        self.shared = True

    def unshare(self) -> None:
        fcntl.flock(self._main, fcntl.LOCK_UN)
        self.shared = False

    @contextmanager
    def alone(self) -> Iterator[None]:
        """A timed section: the machine's builds done, none started until it ends."""
        was_shared = self.shared
        if was_shared:
            self.unshare()
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._main, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._main, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)
        if was_shared:
            self.share()


def run_beside(where: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` holding the timing lock in ``where`` shared,
    each of its timed sections (repeats.timed_runs) alone."""
    lock = TimingLock(where)
    try:
        lock.share()
        with repeats.timed_sections(lock.alone):
            return fn(*args, **kwargs)
    finally:
        lock.close()
