"""How often a timed scan is repeated: as often as its spread needs.

A whole scan of a built structure is timed again and again until its median
is steady: until the median's relative spread -- the median absolute
deviation of the runs over their median, robust to the one cold first run
that min-max is not -- is at most ``spread``, or until ``budget_s`` seconds of
runs are spent; never fewer than ``least`` runs nor more than ``most``
(:class:`Repeats`).  A long scan -- one whose runs have spent the budget
-- may stop at ``least_long`` runs where they agree (their spread is at
most ``spread``), and stops at ``least`` whatever: a 1 TiB scan of seconds
runs twice where its two runs agree, three times where they do not (a cold
first run); a millisecond scan on a busy machine runs until it settles or
reaches ``most``.  The median and min-max reported are those of
the runs made; how many is reported beside them (``scan_runs``,
``repeat``).

The runs of :func:`timed_runs` are one *timed section*: in a plain process
nothing surrounds it; a unit that builds beside others on a cluster
(:mod:`trackers.machine_lock`) runs it alone on the machine, through
:func:`timed_sections`.

``Repeats.fixed(n)`` is exactly ``n`` runs whatever their spread: the full
repeats (``tdx-trackers kexec --full-repeats``, :data:`FULL`), and the
repeat counts of ``--repeat N`` options.  :func:`as_repeats` turns what a
caller passes (None, an int, a Repeats) into a Repeats.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Sequence

#: runs of a fixed-count scan timing: the count every built structure's
#: scan was timed before the adaptive rule (kexec --full-repeats)
FULL_RUNS = 5


@dataclass(frozen=True)
class Repeats:
    """The stop rule of a repeated timing (module doc): at least ``least``
    runs, at most ``most``; in between, stop once the relative spread of the
    runs is at most ``spread`` or their sum reaches ``budget_s``; runs whose
    sum reaches ``budget_s`` may stop at ``least_long`` where their spread is
    at most ``spread``."""

    least: int = 3
    most: int = 9
    spread: float = 0.05
    budget_s: float = 1.0
    least_long: int = 2

    def __post_init__(self):
        for name in ("least", "most", "least_long"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Repeats.{name} {v!r} must be an int >= 1")
        if self.most < self.least:
            raise ValueError(f"Repeats.most {self.most} must be >= least {self.least}")
        if self.least_long > self.least:
            raise ValueError(f"Repeats.least_long {self.least_long} must be <= least "
                             f"{self.least}")
        if not (self.spread >= 0 and self.budget_s >= 0):
            raise ValueError(f"Repeats.spread {self.spread!r} and budget_s {self.budget_s!r} "
                             f"must be >= 0")

    @classmethod
    def fixed(cls, runs: int) -> "Repeats":
        """Exactly ``runs`` runs, whatever their spread."""
        return cls(least=runs, most=runs, least_long=runs)

    @property
    def is_fixed(self) -> bool:
        return self.least == self.most

    def enough(self, times: Sequence[float]) -> bool:
        """Whether the runs ``times`` (seconds, in order) may stop here."""
        n = len(times)
        if n >= self.most:
            return True
        if n < self.least_long:
            return False
        steady = median_spread(times) <= self.spread
        spent = sum(times) >= self.budget_s
        return (steady or spent) if n >= self.least else (steady and spent)

    def describe(self) -> str:
        """The rule in words, for provenance and --help."""
        if self.is_fixed:
            return f"{self.least} runs"
        return (f"{self.least}-{self.most} runs: until the median absolute deviation "
                f"is <= {self.spread * 100:g} percent of the median, or {self.budget_s:g} s "
                f"of runs; {self.least_long} runs suffice once they took {self.budget_s:g} s "
                f"and agree within {self.spread * 100:g} percent")


#: the default rule of a timed scan (module doc)
DEFAULT = Repeats()
#: the full repeats: FULL_RUNS runs, as before the adaptive rule
FULL = Repeats.fixed(FULL_RUNS)


def median_spread(times: Sequence[float]) -> float:
    """The median's relative spread: median(|t - median|) / median of
    ``times``; inf where the median is 0."""
    med = statistics.median(times)
    if med <= 0:
        return float("inf")
    return statistics.median(abs(t - med) for t in times) / med


def as_repeats(repeat) -> Repeats:
    """None -> DEFAULT; an int n -> exactly n runs; a Repeats as it is."""
    if repeat is None:
        return DEFAULT
    if isinstance(repeat, Repeats):
        return repeat
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat {repeat!r} must be an int >= 1 or a Repeats")
    return Repeats.fixed(repeat)


#: what every timed section runs inside (module doc): a context-manager factory
_section: Callable[[], ContextManager] = contextlib.nullcontext


@contextlib.contextmanager
def timed_sections(section: Callable[[], ContextManager]) -> Iterator[None]:
    """Within the block, every :func:`timed_runs` runs inside ``section()``."""
    global _section
    before, _section = _section, section
    try:
        yield
    finally:
        _section = before


def timed_runs(run: Callable[[], Any], repeat=None) -> tuple[list[float], Any]:
    """``run()`` timed (time.perf_counter around the call) until
    ``as_repeats(repeat)`` has enough runs: (the seconds of each run, what the
    last run returned).  The runs are one timed section (module doc)."""
    rule = as_repeats(repeat)
    times: list[float] = []
    with _section():
        while True:
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
            if rule.enough(times):
                return times, out
