"""The tracker contract (docs/CONTRACT.md), input validation and scan streaming.

Every tracker is a :class:`Tracker`: a set of PFNs in ``[0, max_pfn)`` with
bulk mark/unmark, membership, a streaming scan and a memory model.  The public
methods here validate input *before* anything changes and then call the
subclass's underscored primitives with clean arrays:

* ranges arrive as two ``int64`` arrays, ``0 <= start <= end <= max_pfn``,
  empty ranges already dropped;
* PFNs arrive as one ``int64`` array, ``0 <= pfn < max_pfn``;
* ``max_pfn`` is an int in ``[1, kernel.MAX_PHYS_PFN]`` (2^40: what x86-64
  can address), so no PFN arithmetic overflows int64.

The same checks guard ``estimate()``: it validates ``max_pfn`` (by
:func:`validate_max_pfn`, the constructor's check) and then calls the
subclass's ``_estimate``, which hands its ranges to :func:`as_index_array`
(through :func:`estimate_input`, or its own fast path).

Subclasses implement ``_mark_ranges``, ``_unmark_ranges``, ``_contains``,
``_count``, ``_extent_batches``, ``memory``, ``_estimate`` and ``check``; they
may override ``_mark_pfns``/``_unmark_pfns`` (default: one-page ranges) and
``conversion_calls`` (default: the contract's own mark/unmark, one call per
conversion).

Scans stream: ``_extent_batches`` yields ascending, non-overlapping runs of at
most :data:`EXTENT_CHUNK` per batch (runs may touch); :meth:`Tracker.extents`
merges touching runs across batches, and :meth:`Tracker.pfns` expands runs
into uint64 chunks of at most :data:`PFN_CHUNK` pages.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterator

import numpy as np

from . import kernel
from .events import SEAMCALL_PRIVATE, SEAMCALL_RECLAIM, check_events, op_runs
from .extents import Extents, normalize_extents

EXTENT_CHUNK = 1 << 16   # runs per extents() batch
PFN_CHUNK = 1 << 20      # PFNs per pfns() chunk (8 MiB of uint64)



class MemoryBudgetError(ValueError):
    """A tracker would need more host memory than its budget allows."""


class NotRepresentable(ValueError):
    """The kernel structure a tracker models cannot hold the set at all, at
    any budget: e.g. the IDA's ids stop at INT_MAX, so it cannot track the
    PFNs of a host beyond 2^31 pages.  Raised by the constructor and by
    ``estimate()``; consumers show "not representable" instead of a number.

    ``limit_pfns``: the largest ``max_pfn`` the structure can hold (None if
    no host size can); ``summary``: one line for a table or a figure."""

    def __init__(self, message: str, *, limit_pfns: int | None = None, summary: str = ""):
        super().__init__(message)
        self.limit_pfns = limit_pfns
        self.summary = summary or message


@dataclass(frozen=True)
class MemoryReport:
    """What a tracker costs.

    modeled_bytes: bytes a kernel implementation would allocate for this set
        (sum of ``breakdown``), from :mod:`trackers.kernel` sizes.
    breakdown: kernel structure -> modeled bytes, e.g. ``{"xa_node L0": ...}``.
    host_bytes: bytes this Python emulation holds now (measured from arrays).
    scanned_bytes: bytes a kexec-time scan reads (modeled); equals
        modeled_bytes unless the scan reads something else (struct pages).
    scan_loads: dependent loads a kexec-time scan makes (modeled): one per
        node a pointer walk visits; 0 for a flat array read streaming.
    notes: one line on what is and is not faithful.
    """

    modeled_bytes: int
    breakdown: dict[str, int]
    host_bytes: int
    scanned_bytes: int
    scan_loads: int = 0
    notes: str = ""
    formula: dict[str, str] = field(default_factory=dict)


BUDGET_ENV = "TRACKERS_MEMORY_BUDGET"


def memory_budget() -> int:
    """The default host-memory budget: $TRACKERS_MEMORY_BUDGET bytes or 8 GiB.

    The variable holds a positive integer of bytes (digits only: ``1e9`` or
    ``8G`` are refused with an error naming the variable); unset or empty
    means :data:`kernel.DEFAULT_MEMORY_BUDGET`.
    """
    env = os.environ.get(BUDGET_ENV)
    if env is None or not env.strip():
        return kernel.DEFAULT_MEMORY_BUDGET
    if not re.fullmatch(r"[0-9]+", env.strip()) or int(env) <= 0:
        raise ValueError(
            f"${BUDGET_ENV}={env!r} is not a positive integer of bytes; set it to "
            f"digits only, e.g. {kernel.DEFAULT_MEMORY_BUDGET} for 8 GiB, or unset it "
            f"for that default")
    return int(env)


def positive_int(value, name: str, unit: str, why: str) -> int:
    """``value`` as a positive int (bool and float refused), named in the error;
    ``why`` says what a positive value means."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int of {unit}, got "
                        f"{type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} {int(value)} must be positive: {why}")
    return int(value)


def validate_budget(budget_bytes) -> int:
    """budget_bytes as a positive int (bool and float refused)."""
    return positive_int(budget_bytes, "budget_bytes", "bytes",
                        "a memory budget is an int of bytes >= 1")


def check_budget(what: str, need_bytes: int, budget_bytes: int) -> None:
    """Raise MemoryBudgetError naming the bytes needed and the budget."""
    if need_bytes > budget_bytes:
        raise MemoryBudgetError(
            f"{what} needs {need_bytes:,} host bytes ({need_bytes / 2**30:.2f} GiB), "
            f"over the memory budget of {budget_bytes:,} bytes "
            f"({budget_bytes / 2**30:.2f} GiB); raise it with budget_bytes= "
            f"or $TRACKERS_MEMORY_BUDGET")


# --------------------------------------------------------------------------
# validation

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def _check_int64(value: int, what: str) -> None:
    if value > INT64_MAX:
        raise ValueError(f"{what} value {value} exceeds the int64 limit {INT64_MAX}")
    if value < INT64_MIN:
        raise ValueError(f"{what} value {value} is below the int64 limit {INT64_MIN}")


def as_index_array(values, what: str) -> np.ndarray:
    """Integer array (or one int) -> 1-D int64 array; TypeError for other types.

    A 0-d array counts as one int; arrays of two or more dimensions raise
    ValueError naming the shape (flattening an (n, 2) array of ranges would
    mark the wrong pages).  Values that do not fit int64 (uint64 >= 2^63,
    Python ints beyond +-2^63) raise ValueError naming the value and limit.
    """
    if isinstance(values, (bool, np.bool_)):
        raise TypeError(f"{what} must be integers, got bool {values!r}")
    if isinstance(values, (int, np.integer)):
        _check_int64(int(values), what)
        return np.array([int(values)], np.int64)
    arr = np.asarray(values)
    if arr.ndim > 1:
        raise ValueError(f"{what} must be a 1-D array or one int, got an array of shape "
                         f"{arr.shape} ({arr.ndim} dimensions)")
    if arr.dtype == object:
        # np.asarray keeps Python ints beyond int64 as objects.  Object arrays
        # are refused anyway; this per-element look only chooses the message.
        flat = arr.reshape(-1)
        if flat.size and all(isinstance(x, (int, np.integer))
                             and not isinstance(x, (bool, np.bool_)) for x in flat):
            _check_int64(int(max(flat)), what)
            _check_int64(int(min(flat)), what)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            return np.empty(0, np.int64)          # np.asarray([]) is float64
        raise TypeError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype == np.uint64 and arr.size:
        _check_int64(int(arr.max()), what)
    return arr.astype(np.int64, copy=False)


def validate_max_pfn(max_pfn) -> int:
    """max_pfn as an int in [1, kernel.MAX_PHYS_PFN]; the constructor's and
    estimate()'s one check.  The bound keeps every PFN, extent end and
    ``pfn + 1`` far from int64 overflow."""
    if isinstance(max_pfn, (bool, np.bool_)) or not isinstance(max_pfn, (int, np.integer)):
        raise TypeError(f"max_pfn must be an int, got {type(max_pfn).__name__} {max_pfn!r}")
    max_pfn = int(max_pfn)
    if max_pfn <= 0:
        raise ValueError(f"max_pfn {max_pfn} must be positive: PFNs lie in [0, max_pfn), "
                         f"1 <= max_pfn <= {kernel.MAX_PHYS_PFN}")
    if max_pfn > kernel.MAX_PHYS_PFN:
        raise ValueError(
            f"max_pfn {max_pfn} is beyond what x86-64 can address: at most "
            f"{kernel.MAX_PHYS_PFN} PFNs (2^{kernel.MAX_PHYSMEM_BITS} bytes of physical "
            f"address, MAX_PHYSMEM_BITS {kernel.MAX_PHYSMEM_BITS}, 5-level paging)")
    return max_pfn


def validate_chunk(chunk) -> int:
    """A pfns() chunk size: a positive int of pages."""
    return positive_int(chunk, "chunk", "pages", "pfns() yields chunks of >= 1 page")


def validate_pfns(pfns, max_pfn: int, what: str = "pfn") -> np.ndarray:
    arr = as_index_array(pfns, what)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise ValueError(f"{what} {lo} is negative; PFNs must lie in [0, {max_pfn})")
        if hi >= max_pfn:
            raise ValueError(f"{what} {hi} is out of range: max_pfn is {max_pfn}, "
                             f"PFNs must lie in [0, {max_pfn})")
    return arr


def validate_ranges(starts, ends, max_pfn: int) -> Extents:
    """Half-open ranges -> (starts, ends) int64 arrays with empty ranges dropped."""
    s = as_index_array(starts, "start")
    e = as_index_array(ends, "end")
    if s.shape != e.shape:
        raise ValueError(f"starts and ends differ in length: {s.size} starts, {e.size} ends")
    if s.size:
        bad = np.flatnonzero(s > e)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"range {i} is reversed: start {int(s[i])} > end {int(e[i])}")
        if int(s.min()) < 0:
            raise ValueError(f"start {int(s.min())} is negative; PFNs must lie in [0, {max_pfn})")
        if int(e.max()) > max_pfn:
            raise ValueError(f"end {int(e.max())} is out of range: ends must be <= max_pfn "
                             f"{max_pfn}")
        keep = s < e
        if not keep.all():
            s, e = s[keep], e[keep]
    return s, e


# --------------------------------------------------------------------------
# streaming scans

def coalesce_batches(batches) -> Iterator[Extents]:
    """Merge touching runs within and across batches; hold back the last run.

    Input: batches of ascending, non-overlapping runs.  Output: maximal runs,
    ascending, no two touching, each batch no larger than its input batch.
    """
    carry: Extents | None = None
    for s, e in batches:
        if s.size == 0:
            continue
        if carry is not None:
            s = np.concatenate((carry[0], s))
            e = np.concatenate((carry[1], e))
        brk = np.empty(s.size, bool)
        brk[0] = True
        brk[1:] = s[1:] != e[:-1]
        first = np.flatnonzero(brk)
        ms = s[first]
        me = e[np.append(first[1:], s.size) - 1]
        carry = (ms[-1:], me[-1:])
        if ms.size > 1:
            yield ms[:-1], me[:-1]
    if carry is not None:
        yield carry


def expand_extents(batches, chunk: int = PFN_CHUNK) -> Iterator[np.ndarray]:
    """Runs -> ascending uint64 PFN arrays of at most ``chunk`` pages each."""
    for s, e in batches:
        lengths = e - s
        cum_end = np.cumsum(lengths)
        total = int(cum_end[-1]) if cum_end.size else 0
        cum_start = cum_end - lengths
        for w0 in range(0, total, chunk):            # one step per chunk
            w1 = min(w0 + chunk, total)
            lo = int(np.searchsorted(cum_end, w0, side="right"))
            hi = int(np.searchsorted(cum_start, w1, side="left"))
            rs = s[lo:hi] + np.maximum(0, w0 - cum_start[lo:hi])
            re = s[lo:hi] + np.minimum(lengths[lo:hi], w1 - cum_start[lo:hi])
            n = re - rs
            base = np.repeat(rs - (np.cumsum(n) - n), n)
            yield (base + np.arange(w1 - w0, dtype=np.int64)).astype(np.uint64)


# --------------------------------------------------------------------------
# the contract

#: the engine label of a Python/numba emulation's measurement
EMULATION = "emulation"


def _nothing_to_free() -> None:
    """The calls act on the tracker's own structure: nothing of their own to free."""


@dataclass(frozen=True)
class ConversionCalls:
    """How one conversion is made in a tracker's structure, which bench-core
    times: ``mark`` and ``unmark`` of (starts, ends) arrays, and ``calls``,
    what they call.  ``batched``: one call over every conversion (each range
    its own calls, the loop in C); otherwise one call per conversion, through
    Python, which bounds the structure's cost from above (``upper_bound``).
    ``extents()``: the set of the structure the calls change, as maximal runs
    (the tracker's own extents() unless its conversion changes one part of
    it, kvm@kernel's mem_attr_array, or another layout of it, pageflags'
    struct pages in C).  ``engine``: what runs the calls, the label of the
    row that times them; ``close()`` frees what the calls hold of their own.
    The calls skip the tracker's bookkeeping (budget checks, a twin's
    live-object count and cached runs): they are for timing, not for keeping
    a tracker up to date."""

    mark: Callable
    unmark: Callable
    calls: str
    batched: bool
    extents: Callable[[], Iterator[Extents]]
    engine: str = EMULATION
    close: Callable[[], None] = _nothing_to_free

    @property
    def upper_bound(self) -> bool:
        """Is a timing of these calls an upper bound of the structure's cost
        (one Python call per conversion, the interpreter's overhead in it)?"""
        return not self.batched


class Tracker(ABC):
    """A set of PFNs in [0, max_pfn) that a kexec-time scan can enumerate.

    Marking twice and unmarking an unmarked page change nothing.  Bad input
    raises before any change.  See docs/CONTRACT.md.
    """

    name: ClassVar[str]
    #: one line for tables: the kernel option this tracker stands for
    option: ClassVar[str] = ""
    #: the tracker follows KVM's own events (attributes, bindings) instead of
    #: SEAMCALL hooks, so it can miss what KVM does not know (the kvm walk)
    sees_events_only: ClassVar[bool] = False
    #: bytes of structure per dependent load of the scan (the node a walk
    #: follows a pointer to; 0: a flat array, read streaming).  Only for
    #: sets that are estimated, not built: a built tracker counts its loads
    #: exactly in ``memory().scan_loads``.
    scan_node_bytes: ClassVar[int] = 0
    #: ``memory()`` depends on the history of marks and unmarks, not only on
    #: the set: the kernel structure keeps what its history left (a grown
    #: XArray top, an ida_bitmap of low ids).  ``estimate()`` is always a
    #: fresh build of the set, which equals ``memory()`` of a tracker built
    #: by one ``mark_ranges`` into an empty one; without history shape the
    #: two agree after any history.
    history_shaped: ClassVar[bool] = False

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        max_pfn = validate_max_pfn(max_pfn)
        budget_bytes = memory_budget() if budget_bytes is None else validate_budget(budget_bytes)
        self.max_pfn = max_pfn
        self.budget_bytes = budget_bytes

    # --- public API: validate, then delegate -------------------------------
    def mark_ranges(self, starts, ends) -> None:
        s, e = validate_ranges(starts, ends, self.max_pfn)
        if s.size:
            self._mark_ranges(s, e)

    def unmark_ranges(self, starts, ends) -> None:
        s, e = validate_ranges(starts, ends, self.max_pfn)
        if s.size:
            self._unmark_ranges(s, e)

    def mark(self, pfns) -> None:
        p = validate_pfns(pfns, self.max_pfn)
        if p.size:
            self._mark_pfns(p)

    def unmark(self, pfns) -> None:
        p = validate_pfns(pfns, self.max_pfn)
        if p.size:
            self._unmark_pfns(p)

    def apply(self, events) -> None:
        """Replay an event batch (:data:`trackers.events.EVENT_DTYPE`).

        Generic trackers mark on SEAMCALL_PRIVATE and unmark on
        SEAMCALL_RECLAIM rows, in stream order: one mark_ranges/unmark_ranges
        call per maximal run of equal op; other ops are ignored.  Every row is
        validated before anything changes.
        """
        ev = check_events(events)
        ev = ev[(ev["op"] == SEAMCALL_PRIVATE) | (ev["op"] == SEAMCALL_RECLAIM)]
        validate_ranges(ev["pfn_start"], ev["pfn_end"], self.max_pfn)
        for i, j in zip(*op_runs(ev["op"])):          # one step per run of equal op
            if ev["op"][i] == SEAMCALL_PRIVATE:
                self.mark_ranges(ev["pfn_start"][i:j], ev["pfn_end"][i:j])
            else:
                self.unmark_ranges(ev["pfn_start"][i:j], ev["pfn_end"][i:j])

    def contains(self, pfns) -> np.ndarray:
        p = validate_pfns(pfns, self.max_pfn)
        if p.size == 0:
            return np.zeros(0, bool)
        return self._contains(p)

    def __contains__(self, pfn) -> bool:
        if isinstance(pfn, bool) or not isinstance(pfn, (int, np.integer)):
            return False
        if not 0 <= int(pfn) < self.max_pfn:
            return False
        return bool(self._contains(np.array([int(pfn)], np.int64))[0])

    def __len__(self) -> int:
        return int(self._count())

    def extents(self) -> Iterator[Extents]:
        """Maximal runs [start, end), ascending, in batches of <= EXTENT_CHUNK."""
        return coalesce_batches(self._extent_batches())

    def pfns(self, chunk: int = PFN_CHUNK) -> Iterator[np.ndarray]:
        """Every tracked PFN, ascending, as uint64 arrays of <= ``chunk`` pages."""
        return expand_extents(self.extents(), validate_chunk(chunk))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} max_pfn={self.max_pfn}>"

    def conversion_calls(self) -> ConversionCalls:
        """The calls one conversion makes in this tracker's structure: by
        default the contract's own mark_ranges/unmark_ranges, one call per
        conversion.  A tracker whose structure has a kernel form with its own
        calls (the @kernel twins) overrides this with them."""
        return ConversionCalls(self.mark_ranges, self.unmark_ranges,
                               "mark_ranges / unmark_ranges per call (the contract)", False,
                               self.extents)

    # --- primitives --------------------------------------------------------
    @abstractmethod
    def _mark_ranges(self, starts: np.ndarray, ends: np.ndarray) -> None: ...

    @abstractmethod
    def _unmark_ranges(self, starts: np.ndarray, ends: np.ndarray) -> None: ...

    def _mark_pfns(self, pfns: np.ndarray) -> None:
        self._mark_ranges(pfns, pfns + 1)

    def _unmark_pfns(self, pfns: np.ndarray) -> None:
        self._unmark_ranges(pfns, pfns + 1)

    @abstractmethod
    def _contains(self, pfns: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _extent_batches(self) -> Iterator[Extents]: ...

    @abstractmethod
    def memory(self) -> MemoryReport: ...

    @classmethod
    def estimate(cls, starts, ends, max_pfn: int) -> int:
        """modeled_bytes for the set, without building the structure."""
        return int(cls._estimate(starts, ends, validate_max_pfn(max_pfn)))

    @classmethod
    @abstractmethod
    def _estimate(cls, starts, ends, max_pfn: int) -> int:
        """estimate() with max_pfn validated; validates its own ranges."""

    @classmethod
    def estimate_scanned_bytes(cls, modeled_bytes: int, max_pfn: int) -> int:
        """Bytes a kexec-time scan reads, for a set whose structure is
        ``modeled_bytes`` (estimated): the structure itself, unless the scan
        reads something else (struct pages)."""
        validate_max_pfn(max_pfn)
        return int(modeled_bytes)

    @abstractmethod
    def check(self) -> None:
        """Verify internal invariants; raise AssertionError on a violation."""


def estimate_input(starts, ends, max_pfn: int) -> Extents:
    """Validate and normalise the set handed to ``estimate()``."""
    s, e = validate_ranges(starts, ends, validate_max_pfn(max_pfn))
    return normalize_extents(s, e)
