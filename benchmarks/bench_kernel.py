"""Measured: the kernel's own code, through the ``@kernel`` twins.

The twins (trackers/kernel_code/) keep their set in the kernel's own
lib/xarray.c, lib/idr.c and lib/maple_tree.c, built in userspace on this
machine (``tdx-trackers kernel-build``), and scan with its iterators.
Parameterized @kernel tracker x host (64 GiB, 1 TiB) on the reference set:

* ``KernelPopulate.time_populate``: mark_ranges() of the whole set into an
  empty twin: the kernel's stores (xa_store, xa_store_range,
  ida_alloc_range, mtree_store_range, KVM's xa_reserve + xa_store) plus
  the twin's budget check and live-object count;
* ``KernelScan.time_scan_extents``: extents(), the kernel's iterators
  (xas_for_each, mas_for_each, find_next_bit) over the whole set;
* ``KernelMark.time_mark`` / ``KernelUnmark.time_unmark`` (64 GiB only: each
  process builds its own tree; bench-core has the 1 TiB figure): one engine
  call of CONVERSIONS_PER_CALL distinct random 4 KiB or 2 MiB conversions
  into free slots of a twin holding the set (the twin's conversion_calls()
  says what a conversion calls), so the time in ms is the cost of one
  conversion in us;
* ``KernelBytes.track_kernel_counted_bytes``: memory().modeled_bytes, the
  kernel's own nodes walked in its tree times the struct sizes (built once,
  in setup_cache).

Where the kernel code is not built, the one parameter
``KERNEL_CODE_UNAVAILABLE`` is skipped (n/a) with the reason
(trackers.registry.KERNEL_UNAVAILABLE).  1 TiB builds predicted over the
suite's time limit are skipped as in bench_trackers.py (common.check_build_time).
"""

from .common import HOST_SIZES, SEED, check_build_time, drain, load_set, warm_sets

import trackers
from trackers.bench.conversion import CONVERSION_SIZES, conversion_targets
from trackers.registry import KERNEL_TRACKERS, KERNEL_UNAVAILABLE

#: the parameter that stands for every @kernel tracker where none can run
KERNEL_CODE_UNAVAILABLE = "kernel-code-unavailable"
KERNEL_NAMES = list(KERNEL_TRACKERS) or [KERNEL_CODE_UNAVAILABLE]
#: one host: each benchmark and parameter builds its own twin (asv forks a
#: process per parameter); bench-core and the report have 1 TiB
HOSTS = ["64G"]
CONVERSION_HOSTS = ["64G"]          # a subset of HOSTS (the shared setup_cache)
SHAPE = "reference"
#: conversions per timed call: milliseconds per call read as microseconds per conversion
CONVERSIONS_PER_CALL = 1000


def setup_cache():
    """Shared by the timed classes (one asv cache key): the reference sets,
    generated once per run."""
    return warm_sets([SHAPE], HOSTS)


setup_cache.timeout = 900


def _runnable(tracker: str) -> None:
    """NotImplementedError (asv: skipped, n/a) with the reason the kernel
    code cannot run here."""
    if tracker not in KERNEL_TRACKERS:
        raise NotImplementedError(f"kernel code unavailable: {KERNEL_UNAVAILABLE}")


#: twins built in this process, (tracker, host) -> (twin, conversion targets):
#: asv re-runs setup before every sample, in one process per parameter
_BUILT: dict = {}


def _held(tracker: str, host: str):
    """A twin holding the reference set less the conversion slots, and the
    conversions (trackers.bench.conversion.conversion_targets); built once per process."""
    key = (tracker, host)
    if key not in _BUILT:
        starts, ends = load_set(SHAPE, host)
        max_pfn = HOST_SIZES[host]
        held, targets = conversion_targets(starts, ends, max_pfn, CONVERSIONS_PER_CALL, SEED)
        check_build_time(tracker, host, SHAPE, int(held[0].size))
        t = trackers.get_tracker(tracker, max_pfn=max_pfn)
        t.mark_ranges(*held)
        _BUILT[key] = (t, targets)
    return _BUILT[key]


def _convert(calls, op: str, starts, ends) -> None:
    fn = calls.mark if op == "mark" else calls.unmark
    if calls.batched:
        fn(starts, ends)
    else:
        for i in range(starts.size):
            fn(starts[i:i + 1], ends[i:i + 1])


class KernelPopulate:
    """mark_ranges() of the whole reference set into an empty @kernel twin."""

    params = (KERNEL_NAMES, HOSTS)
    param_names = ["tracker", "host"]
    number = 1              # each sample stores into a fresh twin (setup re-runs)
    repeat = (1, 5, 60.0)
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, _cache, tracker, host):
        _runnable(tracker)
        self.starts, self.ends = load_set(SHAPE, host)
        check_build_time(tracker, host, SHAPE, int(self.starts.size))
        self.t = trackers.get_tracker(tracker, max_pfn=HOST_SIZES[host])

    def teardown(self, _cache, tracker, host):
        t = getattr(self, "t", None)
        if t is not None:
            t.close()                   # free the kernel structure before the next sample

    def time_populate(self, _cache, tracker, host):
        self.t.mark_ranges(self.starts, self.ends)


class KernelScan:
    """extents() of a twin holding the reference set: the kernel's iterators."""

    params = (KERNEL_NAMES, HOSTS)
    param_names = ["tracker", "host"]
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, _cache, tracker, host):
        _runnable(tracker)
        self.t = _held(tracker, host)[0]

    def time_scan_extents(self, _cache, tracker, host):
        drain(self.t.extents())


class _Conversion:
    """CONVERSIONS_PER_CALL conversions of one size into a twin holding the
    reference set: the kernel's own calls (the twin's conversion_calls()).
    Each sample's setup puts the twin in the state its timed op starts from."""

    params = (KERNEL_NAMES, CONVERSION_HOSTS, list(CONVERSION_SIZES))
    param_names = ["tracker", "host", "size"]
    number = 1              # the timed op changes the tree; setup restores it
    repeat = (1, 10, 20.0)
    timeout = 600

    setup_cache = staticmethod(setup_cache)

    def setup(self, _cache, tracker, host, size):
        _runnable(tracker)
        t, targets = _held(tracker, host)
        self.calls = t.conversion_calls()
        self.starts, self.ends = targets[size]


class KernelMark(_Conversion):
    """Mark the conversions into their free slots."""

    def setup(self, _cache, tracker, host, size):
        super().setup(_cache, tracker, host, size)
        _convert(self.calls, "unmark", self.starts, self.ends)     # free again, untimed

    def time_mark(self, _cache, tracker, host, size):
        _convert(self.calls, "mark", self.starts, self.ends)


class KernelUnmark(_Conversion):
    """Unmark the conversions again."""

    def setup(self, _cache, tracker, host, size):
        super().setup(_cache, tracker, host, size)
        _convert(self.calls, "mark", self.starts, self.ends)       # marked, untimed

    def time_unmark(self, _cache, tracker, host, size):
        _convert(self.calls, "unmark", self.starts, self.ends)


class KernelBytes:
    """Kernel-counted bytes of the reference set in each twin."""

    params = (KERNEL_NAMES, HOSTS)
    param_names = ["tracker", "host"]
    unit = "bytes"
    timeout = 900

    def setup_cache(self):
        counted = {}
        for host in HOSTS:
            starts, ends = load_set(SHAPE, host)
            for name in KERNEL_TRACKERS:
                t = trackers.get_tracker(name, max_pfn=HOST_SIZES[host])
                try:
                    t.mark_ranges(starts, ends)
                    counted[name, host] = t.memory().modeled_bytes
                except trackers.MemoryBudgetError as exc:
                    counted[name, host] = str(exc)
                finally:
                    t.close()
        return counted

    setup_cache.timeout = 900

    def setup(self, counted, tracker, host):
        _runnable(tracker)
        if isinstance(counted[tracker, host], str):
            raise NotImplementedError(counted[tracker, host])

    def track_kernel_counted_bytes(self, counted, tracker, host):
        return counted[tracker, host]
