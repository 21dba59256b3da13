"""Measured: what each tracker's operations cost in this Python/numba emulation.

Parameterized tracker x host size x set shape.  Times are of the emulation on
this machine, not of a kernel; they rank implementations and catch
regressions.  Kernel cost lives in the modeled benchmarks (bench_model.py).
"""

from .common import (HOST_SIZES, OP_PAGES, TIME_HOSTS, TIME_SHAPES, TRACKER_NAMES,
                     build_tracker, drain, load_set, planned, random_pfns, timed_plan)

import trackers

try:                                   # asv >= 0.6: skip from inside a benchmark
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:                    # pragma: no cover
    SkipNotImplemented = NotImplementedError

PARAMS = ([n for n in TRACKER_NAMES], TIME_HOSTS, TIME_SHAPES)
PARAM_NAMES = ["tracker", "host", "set"]


def setup_cache():
    """Shared by every class (one asv cache key): the sets generated and which
    parameters run (common.timed_plan), decided once per run."""
    return timed_plan(TRACKER_NAMES, TIME_SHAPES, TIME_HOSTS)


setup_cache.timeout = 900


def _built(tracker, host, starts, ends):
    """common.build_tracker; a tracker whose structure cannot hold the host's
    PFNs (NotRepresentable: the IDA beyond 2^31) skips, saying so."""
    try:
        return build_tracker(tracker, host, starts, ends)
    except trackers.NotRepresentable as exc:
        raise NotImplementedError(f"not representable: {exc}") from None


class Populate:
    """mark_ranges() of the whole set into an empty tracker.

    A tracker's memory budget refuses a set only while it grows, inside the
    timed mark_ranges(): the benchmark then skips (n/a) rather than fails.
    """

    params = PARAMS
    param_names = PARAM_NAMES
    number = 1              # each sample marks into a fresh tracker (setup re-runs)
    repeat = (1, 5, 60.0)
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, plan, tracker, host, shape):
        planned(plan, tracker, host, shape)
        self.starts, self.ends = load_set(shape, host)
        try:
            self.t = trackers.get_tracker(tracker, max_pfn=HOST_SIZES[host])
        except trackers.MemoryBudgetError as exc:
            raise NotImplementedError(str(exc)) from None
        except trackers.NotRepresentable as exc:
            raise NotImplementedError(f"not representable: {exc}") from None
        _built(tracker, host, self.starts[:1], self.ends[:1])  # budget, compile

    def time_populate(self, _cache, tracker, host, shape):
        try:
            self.t.mark_ranges(self.starts, self.ends)
        except trackers.MemoryBudgetError as exc:
            raise SkipNotImplemented(str(exc)) from None


class Scan:
    """The kexec-time scan: extents() as maximal runs, pfns() page by page."""

    params = PARAMS
    param_names = PARAM_NAMES
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, plan, tracker, host, shape):
        planned(plan, tracker, host, shape)
        starts, ends = load_set(shape, host)
        self.t = _built(tracker, host, starts, ends)

    def time_scan_extents(self, _cache, tracker, host, shape):
        drain(self.t.extents())

    def time_scan_pfns(self, _cache, tracker, host, shape):
        drain(self.t.pfns())


class PageOps:
    """Per-page hooks on a populated tracker: 2^16 PFNs per call.

    mark then unmark of PFNs outside the set (the tracker ends as it began),
    and contains() of random PFNs (about 70 % hits on the reference set).
    """

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, plan, tracker, host, shape):
        planned(plan, tracker, host, shape)
        starts, ends = load_set(shape, host)
        self.t = _built(tracker, host, starts, ends)
        self.probe = random_pfns(HOST_SIZES[host], OP_PAGES)
        self.outside = self.probe[~self.t.contains(self.probe)]
        self.t.mark(self.outside[:1])                   # compile before timing
        self.t.unmark(self.outside[:1])
        self.t.contains(self.probe[:1])     # last: kvm's walk cache is built here

    def time_mark_unmark(self, _cache, tracker, host, shape):
        self.t.mark(self.outside)
        self.t.unmark(self.outside)

    def time_contains(self, _cache, tracker, host, shape):
        self.t.contains(self.probe)
