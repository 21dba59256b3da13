"""What every ``@kernel`` twin shares: :class:`KernelCode` (engines, close,
live-object counting, the kernel's scan as the set, the budget check) and
the run algebra and invariant checks the twins use (package docstring)."""

from __future__ import annotations

from typing import ClassVar, Iterator

import numpy as np

from .. import kernel, linux
from ..base import ConversionCalls, Tracker, check_budget
from ..extents import contains_points, count

#: bytes of one live object of each harness allocator (trackers.linux.LIVE_OBJECTS):
#: the ida_bitmaps are the only kmalloc'd objects of these engines
LIVE_OBJECT_BYTES = {"xa_node": kernel.XA_NODE_BYTES, "maple_node": kernel.MAPLE_NODE_BYTES,
                     "kmalloc": kernel.IDA_BITMAP_BYTES}

EMPTY_RUNS = (np.empty(0, np.int64), np.empty(0, np.int64))


def concat_runs(chunks) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(chunks)
    if not chunks:
        return EMPTY_RUNS
    return (np.concatenate([c[0] for c in chunks]).astype(np.int64, copy=False),
            np.concatenate([c[1] for c in chunks]).astype(np.int64, copy=False))


def touching(cur, new) -> np.ndarray:
    """Mask of the maximal extents ``cur`` that overlap or touch an extent
    of ``new`` (both sorted, disjoint)."""
    cs, ce = cur
    ns, ne = new
    if cs.size == 0 or ns.size == 0:
        return np.zeros(cs.size, bool)
    k = np.searchsorted(ns, ce, side="right") - 1        # last new start <= cur end
    return (k >= 0) & (ne[np.maximum(k, 0)] >= cs)


def overlapping(cur, cut) -> np.ndarray:
    """Mask of the extents ``cur`` that share a page with an extent of ``cut``."""
    cs, ce = cur
    us, ue = cut
    if cs.size == 0 or us.size == 0:
        return np.zeros(cs.size, bool)
    k = np.searchsorted(us, ce, side="left") - 1         # last cut start < cur end
    return (k >= 0) & (ue[np.maximum(k, 0)] > cs)


def check_one_top_node(levels: np.ndarray, what: str) -> None:
    nz = np.flatnonzero(levels)
    if nz.size:
        assert levels[nz[-1]] == 1, f"{what}: {int(levels[nz[-1]])} nodes at the top level"


def check_runs(batches, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The runs of a kernel scan, asserted ascending, non-empty, disjoint and
    maximal (no two touching), as one (starts, ends) pair."""
    s, e = concat_runs(batches)
    assert np.all(s < e), f"{what}: an empty or reversed run"
    assert np.all(s[1:] > e[:-1]), f"{what}: runs out of order, overlapping or touching"
    return s, e


class KernelCode:
    """The machinery of every ``@kernel`` twin (a mixin before a Tracker base).

    ``twin_cls`` is the emulation; ``twin`` its registry name.  Subclasses
    create their engines after ``KernelCode.__init__`` and list them in
    :meth:`engines` for :meth:`close`.

    Each twin's ``conversion_calls()`` (the contract's, trackers/base.py) are
    the kernel's own calls on the structure it holds, one engine call over
    every conversion (the per-range loop runs in C), without the twin's
    bookkeeping: its budget check, its live-object count (rcu_barrier), and
    the rebuilds of maple@kernel (in-order) and the erase-and-restore of
    xarray-multi@kernel's touched extents, each O(set) per update.
    """

    twin_cls: ClassVar[type[Tracker]]
    twin: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "twin_cls" in cls.__dict__:            # the emulation declares it
            cls.history_shaped = cls.twin_cls.history_shaped

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        linux.library()                    # KernelCodeUnavailable: it says what to install
        self.kernel_version = linux.version()
        self._live = dict.fromkeys(LIVE_OBJECT_BYTES, 0)
        #: an upper bound of the structure's modeled bytes (None: unknown),
        #: kept across updates so a budget check need not walk the tree
        self._bytes_bound: int | None = None
        self._depth = 0
        self._runs = None                  # cached scan for contains() and len()
        self._closed = False

    # --- engines and their objects -------------------------------------------
    def engines(self) -> list:
        return []

    def close(self) -> None:
        """Free the kernel structures now; idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for engine in self.engines():
            engine.close()
        self._live = dict.fromkeys(LIVE_OBJECT_BYTES, 0)
        self._runs = None

    def __del__(self):
        try:
            self.close()
        except Exception:                  # interpreter shutdown: the finalizers free them
            pass

    def _open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.name} tracker is closed")

    def _counted(self, fn, *args):
        """Run an update, adding the harness's live objects it leaves to this
        tracker's (outermost call only: updates nest, e.g. apply -> mark_ranges),
        counted in a window where no other structure is destroyed
        (linux.counted_objects)."""
        self._open()
        if self._depth:
            self._runs = None            # a nested update sees the set as it is now
            try:
                return fn(*args)
            finally:
                self._runs = None
        added: dict[str, int] = {}
        try:
            with linux.counted_objects() as added:
                self._depth += 1
                try:
                    return fn(*args)
                finally:
                    self._depth -= 1
                    self._runs = None
        finally:                         # the window's exit has filled ``added``
            for k in self._live:
                self._live[k] += added.get(k, 0)

    def mark_ranges(self, starts, ends) -> None:
        self._counted(super().mark_ranges, starts, ends)

    def unmark_ranges(self, starts, ends) -> None:
        self._counted(super().unmark_ranges, starts, ends)

    def mark(self, pfns) -> None:
        self._counted(super().mark, pfns)

    def unmark(self, pfns) -> None:
        self._counted(super().unmark, pfns)

    def apply(self, events) -> None:
        self._counted(super().apply, events)

    def live_bytes(self) -> int:
        """Bytes the harness's allocators hold for this tracker: its live
        objects times their sizes."""
        return sum(n * LIVE_OBJECT_BYTES[k] for k, n in self._live.items())

    def kernel_calls(self, mark, unmark, calls: str, extents=None) -> ConversionCalls:
        """The twin's conversion_calls(): the kernel's own ``mark`` and
        ``unmark``, each one engine call over every conversion, changing
        ``extents`` (default the twin's own set)."""
        return ConversionCalls(mark, unmark, calls, True, extents or self.extents,
                               engine=linux.engine_label())

    def _notes(self, what: str) -> str:
        return (f"kernel code v{self.kernel_version} (userspace): {what}; host bytes are "
                f"the harness's live objects for this tracker")

    # --- the set, from the kernel's scan ----------------------------------------
    def _scan(self) -> Iterator:
        """The kernel's scan, (starts, ends) batches of maximal runs."""
        raise NotImplementedError

    def _extent_batches(self):
        self._open()
        return self._scan()

    def _all_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every run, cached until the next update (contains, len)."""
        self._open()
        if self._runs is None:
            self._runs = concat_runs(self._scan())
        return self._runs

    def _contains(self, pfns):
        return contains_points(self._all_runs(), pfns)

    def _count(self):
        return count(self._all_runs())

    def _cache_bytes(self) -> int:
        return 0 if self._runs is None else self._runs[0].nbytes + self._runs[1].nbytes

    # --- budget -------------------------------------------------------------------
    def _refuse_over_budget(self, what: str, result, now_bytes=None, update=None) -> None:
        """MemoryBudgetError if the twin's estimate of ``result`` (a callable
        giving the resulting set) exceeds the budget.

        With ``now_bytes`` (a callable: the structure's bytes now, a walk of
        every node) and the ``update`` alone, the check passes on a bound:
        node counts are subadditive, so the bytes after the update are at
        most the bytes before plus estimate(update).  The bound is kept
        across updates (an erase never allocates), and the tree is walked
        only when the bound would cross the budget: a replay of thousands of
        updates into a 1 TiB tree walked it once per update before."""
        twin = self.twin_cls
        if now_bytes is not None and update is not None:
            grow = int(twin.estimate(*update, self.max_pfn))
            if self._bytes_bound is None or self._bytes_bound + grow > self.budget_bytes:
                self._bytes_bound = int(now_bytes())         # exact: walk the structure
            if self._bytes_bound + grow <= self.budget_bytes:
                self._bytes_bound += grow
                return
        need = int(twin.estimate(*result(), self.max_pfn))
        check_budget(f"{self.name} tracker ({what})", need, self.budget_bytes)
        self._bytes_bound = None                 # a rebuild: walk again next time

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        return cls.twin_cls._estimate(starts, ends, max_pfn)
