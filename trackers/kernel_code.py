"""The kernel's own code behind the tracker contract: one ``@kernel`` twin per emulation.

Each class here keeps its set in a structure of the kernel's own
lib/xarray.c, lib/idr.c or lib/maple_tree.c (or scans with its find_bit),
built in userspace by :mod:`trackers.linux`, and answers the same contract
(docs/CONTRACT.md) as the emulation it is named after:

=================  =======================================================
``xarray@kernel``        one value entry per PFN: xa_store per index
``xarray-multi@kernel``  xa_store_range() per maximal extent
``ida@kernel``           ida_alloc_range(ida, pfn, pfn) per PFN; ids <= INT_MAX
``maple@kernel``         mtree_store_range() per maximal extent
``bitmap@kernel``        the ``bitmap`` tracker's uint64 bitmap, scanned with
                         the kernel's find_next_bit/find_next_zero_bit
``kvm@kernel``           per TD, KVM's mem_attr_array as
                         kvm_vm_set_mem_attributes() fills it (xa_reserve on
                         every GFN, then xa_store) and the guest_memfd page
                         cache, following the same events as ``kvm``
=================  =======================================================

What each reports is the kernel's, not a model's: ``memory()`` walks the
kernel structure for its xa_nodes / maple nodes per level (and ida_bitmaps),
times the struct sizes of :mod:`trackers.kernel`, under the twin's breakdown
labels; ``scan_loads`` is one per node walked (ida: and one per ida_bitmap);
``host_bytes`` is what the harness's allocators hold for this tracker (its
live objects, :func:`trackers.linux.live_objects`, counted across each of
its updates, times their sizes); ``notes`` name the kernel version.
``estimate()`` is the twin's: the analytic model of a fresh build, which
the differential tests hold equal to these counts for a set built at once
(after a history the counts are the structure's as it stands:
``history_shaped``, docs/CONTRACT.md).

Histories.  The XArray-family twins make the kernel calls a kernel user
would, and keep whatever shape those calls leave (the emulations follow the
same calls: tests/test_xa_history.py):

* ``xarray-multi@kernel``: the maximal extents an update touches are erased
  (xa_erase of every entry) and stored again whole (xa_store_range): a
  multi-index entry cannot be cut in place without xas_split;
* ``ida@kernel``: ida_alloc_range/ida_free per id, so a chunk that once held
  an id >= 63 keeps its ida_bitmap until it empties (ida_free never turns
  it back into a value entry);
* ``kvm@kernel``: KVM's own calls per row, so GFN 0 alone keeps the xa_node
  xa_reserve() made for it until an erase runs xas_shrink();
* ``maple@kernel`` is the exception: the tree in-order stores grow.  Extents
  stored above the last one are appended (mtree_store_range: exactly the
  in-order growth); any other update rebuilds the tree in order.  The
  kernel's tree after random-order stores holds 20-25 % more nodes
  (:mod:`trackers.maple`), which is where the twin's model differs from a
  tree grown by arbitrary conversions.

Budget: the structures are real mallocs.  Before an update that could grow
them, the twin's estimate of the resulting set is checked against
``budget_bytes`` (MemoryBudgetError naming the bytes and the budget); a
cheap upper bound (the structure now plus the update alone: node counts are
subadditive) settles most updates without the exact union.  Every bulk
operation is one engine call over whole arrays (the per-page loop runs in
C); Python steps are per update, per run of equal op, or, for guest_memfd
bindings, per run of rows with one GFN-to-PFN offset.

Live objects: the harness counts them process-wide, so each update reads
them before and after (after rcu_barrier(): the frees it queued are done)
and adds the difference to this tracker's.  An update that freed nodes
therefore waits for an RCU grace period (about 10 ms here); the structure's
own time is what :mod:`trackers.linux` callers time, not this.  Not safe for
concurrent use from several threads.  ``close()`` frees the kernel
structures (``__del__`` calls it); a closed tracker refuses further use.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Iterator

import numpy as np

from . import kernel, linux
from .base import EXTENT_CHUNK, MemoryReport, Tracker, check_budget, validate_max_pfn
from .bitmap import Bitmap
from .events import op_runs
from .extents import normalize_extents, subtract
from .ida import Ida, check_representable
from .kvm import KvmAttributes
from .maple import Maple, is_lone_zero, level_name, level_node_counts
from .xa import level_breakdown, level_formula, xa_node_counts
from .xarray import XArrayMultiTracker, XArrayTracker

#: bytes of one live object of each harness allocator (trackers.linux.LIVE_OBJECTS):
#: the ida_bitmaps are the only kmalloc'd objects of these engines
LIVE_OBJECT_BYTES = {"xa_node": kernel.XA_NODE_BYTES, "maple_node": kernel.MAPLE_NODE_BYTES,
                     "kmalloc": kernel.IDA_BITMAP_BYTES}

_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64))


def _concat(chunks) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(chunks)
    if not chunks:
        return _EMPTY
    return (np.concatenate([c[0] for c in chunks]).astype(np.int64, copy=False),
            np.concatenate([c[1] for c in chunks]).astype(np.int64, copy=False))


def _touching(cur, new) -> np.ndarray:
    """Mask of the maximal extents ``cur`` that overlap or touch an extent
    of ``new`` (both sorted, disjoint)."""
    cs, ce = cur
    ns, ne = new
    if cs.size == 0 or ns.size == 0:
        return np.zeros(cs.size, bool)
    k = np.searchsorted(ns, ce, side="right") - 1        # last new start <= cur end
    return (k >= 0) & (ne[np.maximum(k, 0)] >= cs)


def _overlapping(cur, cut) -> np.ndarray:
    """Mask of the extents ``cur`` that share a page with an extent of ``cut``."""
    cs, ce = cur
    us, ue = cut
    if cs.size == 0 or us.size == 0:
        return np.zeros(cs.size, bool)
    k = np.searchsorted(us, ce, side="left") - 1         # last cut start < cur end
    return (k >= 0) & (ue[np.maximum(k, 0)] > cs)


def _top_has_one_node(levels: np.ndarray, what: str) -> None:
    nz = np.flatnonzero(levels)
    if nz.size:
        assert levels[nz[-1]] == 1, f"{what}: {int(levels[nz[-1]])} nodes at the top level"


def _check_runs(batches, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The runs of a kernel scan, asserted ascending, non-empty, disjoint and
    maximal (no two touching), as one (starts, ends) pair."""
    s, e = _concat(batches)
    assert np.all(s < e), f"{what}: an empty or reversed run"
    assert np.all(s[1:] > e[:-1]), f"{what}: runs out of order, overlapping or touching"
    return s, e


# --------------------------------------------------------------------------
# what every twin shares

class KernelCode:
    """The machinery of every ``@kernel`` twin (a mixin before a Tracker base).

    ``twin_cls`` is the emulation; ``twin`` its registry name.  Subclasses
    create their engines after ``KernelCode.__init__`` and list them in
    :meth:`engines` for :meth:`close`.
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
        tracker's (outermost call only: updates nest, e.g. apply -> mark_ranges)."""
        self._open()
        if self._depth:
            self._runs = None            # a nested update sees the set as it is now
            try:
                return fn(*args)
            finally:
                self._runs = None
        before = linux.live_objects()
        self._depth += 1
        try:
            return fn(*args)
        finally:
            self._depth -= 1
            self._runs = None
            after = linux.live_objects()
            for k in self._live:
                self._live[k] += after[k] - before[k]

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
            self._runs = _concat(self._scan())
        return self._runs

    def _contains(self, pfns):
        s, e = self._all_runs()
        if s.size == 0:
            return np.zeros(pfns.size, bool)
        k = np.searchsorted(s, pfns, side="right") - 1
        return (k >= 0) & (pfns < e[np.maximum(k, 0)])

    def _count(self):
        s, e = self._all_runs()
        return int((e - s).sum())

    def _cache_bytes(self) -> int:
        return 0 if self._runs is None else self._runs[0].nbytes + self._runs[1].nbytes

    # --- budget -------------------------------------------------------------------
    def _refuse_over_budget(self, what: str, result, now_bytes: int | None = None,
                            update=None) -> None:
        """MemoryBudgetError if the twin's estimate of ``result`` (a callable
        giving the resulting set) exceeds the budget.  With ``now_bytes`` and
        ``update``: pass without the exact set when now + estimate(update)
        fits (node counts are subadditive)."""
        twin = self.twin_cls
        if now_bytes is not None and update is not None:
            if now_bytes + twin.estimate(*update, self.max_pfn) <= self.budget_bytes:
                return
        need = int(twin.estimate(*result(), self.max_pfn))
        check_budget(f"{self.name} tracker ({what})", need, self.budget_bytes)

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        return cls.twin_cls._estimate(starts, ends, max_pfn)


# --------------------------------------------------------------------------
# XArray

class XArrayKernel(KernelCode, Tracker):
    """``xarray`` in lib/xarray.c: xa_store(pfn, xa_mk_value(1)) per PFN,
    xa_erase per PFN unmarked."""

    twin_cls = XArrayTracker
    twin = twin_cls.name
    name = "xarray@kernel"
    option = twin_cls.option + " (kernel code)"
    scan_node_bytes = twin_cls.scan_node_bytes
    multi = False

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.xa = linux.KernelXArray()

    def engines(self):
        return [self.xa]

    def _levels(self) -> np.ndarray:
        return self.xa.levels()

    def _mark_ranges(self, starts, ends):
        self._refuse_over_budget("xa_store", lambda: normalize_extents(
            np.concatenate((self._all_runs()[0], starts)),
            np.concatenate((self._all_runs()[1], ends))),
            int(self._levels().sum()) * kernel.XA_NODE_BYTES, (starts, ends))
        self.xa.store_range(starts, ends)

    def _unmark_ranges(self, starts, ends):
        self.xa.erase_range(starts, ends)          # frees nodes only

    def _contains(self, pfns):
        self._open()
        return self.xa.load(pfns) >= 0

    def _scan(self):
        return self.xa.scan(cap=EXTENT_CHUNK)

    def memory(self):
        self._open()
        levels = self._levels()
        breakdown = level_breakdown(levels)
        total = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=total, breakdown=breakdown,
            host_bytes=self.live_bytes() + self._cache_bytes(), scanned_bytes=total,
            scan_loads=int(levels.sum()),
            notes=self._notes("xa_nodes per level walked in lib/xarray.c's own tree"
                              + ("; touched maximal extents erased and stored again "
                                 "with xa_store_range" if self.multi else "")),
            formula=level_formula(self.multi))

    def check(self):
        self._open()
        s, e = _check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == 0 or (s[0] >= 0 and e[-1] <= self.max_pfn), \
            f"{self.name}: a PFN past max_pfn {self.max_pfn}"
        levels = self._levels()
        _top_has_one_node(levels, self.name)
        assert self._live["xa_node"] == levels.sum(), \
            f"{self.name}: {self._live['xa_node']} live xa_nodes, {int(levels.sum())} walked"


class XArrayMultiKernel(XArrayKernel):
    """``xarray-multi`` in lib/xarray.c: xa_store_range() per maximal extent;
    an update erases the maximal extents it touches and stores the new ones
    whole (module docstring)."""

    twin_cls = XArrayMultiTracker
    twin = twin_cls.name
    name = "xarray-multi@kernel"
    option = twin_cls.option + " (kernel code)"
    multi = True

    def _mark_ranges(self, starts, ends):
        new = normalize_extents(starts, ends)
        cur = self._all_runs()
        hit = _touching(cur, new)
        merged = normalize_extents(np.concatenate((cur[0][hit], new[0])),
                                   np.concatenate((cur[1][hit], new[1])))
        if np.array_equal(merged[0], cur[0][hit]) and np.array_equal(merged[1], cur[1][hit]):
            return                                   # every page marked already
        self._refuse_over_budget("xa_store_range", lambda: normalize_extents(
            np.concatenate((cur[0], new[0])), np.concatenate((cur[1], new[1]))))
        self._restore(cur[0][hit], cur[1][hit], merged)

    def _unmark_ranges(self, starts, ends):
        cut = normalize_extents(starts, ends)
        cur = self._all_runs()
        hit = _overlapping(cur, cut)
        if not hit.any():
            return
        left = subtract((cur[0][hit], cur[1][hit]), cut)
        self._refuse_over_budget("xa_store_range of what is left",
                                 lambda: subtract(cur, cut))
        self._restore(cur[0][hit], cur[1][hit], left)

    def _restore(self, old_s, old_e, new) -> None:
        """xa_erase every entry of the old maximal extents, then
        xa_store_range() each new maximal extent."""
        self.xa.erase_range_multi(old_s, old_e)
        self.xa.store_range_multi(*new)


# --------------------------------------------------------------------------
# IDA

class IdaKernel(KernelCode, Tracker):
    """``ida`` in lib/idr.c: ida_alloc_range(ida, pfn, pfn) per PFN marked,
    ida_free per PFN unmarked.  Ids stop at INT_MAX: ``max_pfn > 2^31`` is
    refused (NotRepresentable), as the twin refuses it."""

    twin_cls = Ida
    twin = twin_cls.name
    name = "ida@kernel"
    option = twin_cls.option + " (kernel code)"
    scan_node_bytes = twin_cls.scan_node_bytes

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        check_representable(validate_max_pfn(max_pfn))
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.ida = linux.KernelIda()

    def engines(self):
        return [self.ida]

    def _bytes(self) -> int:
        return (int(self.ida.levels().sum()) * kernel.XA_NODE_BYTES
                + self.ida.bitmaps() * kernel.IDA_BITMAP_BYTES)

    def _mark_ranges(self, starts, ends):
        self._refuse_over_budget("ida_alloc_range", lambda: normalize_extents(
            np.concatenate((self._all_runs()[0], starts)),
            np.concatenate((self._all_runs()[1], ends))), self._bytes(), (starts, ends))
        self.ida.mark_range(starts, ends)

    def _unmark_ranges(self, starts, ends):
        self.ida.free_range(starts, ends)

    def _scan(self):
        return self.ida.scan(cap=EXTENT_CHUNK)

    def memory(self):
        self._open()
        levels = self.ida.levels()
        bitmaps = self.ida.bitmaps()
        breakdown = level_breakdown(levels)
        breakdown["ida_bitmap"] = bitmaps * kernel.IDA_BITMAP_BYTES
        total = sum(breakdown.values())
        formula = level_formula(False)
        formula["xa_node Lk"] += " (indices are chunks, pfn >> 10)"
        formula["ida_bitmap"] = (f"{kernel.IDA_BITMAP_BYTES} B x the IDA's struct ida_bitmap "
                                 f"leaves, counted in lib/idr.c's own XArray")
        return MemoryReport(
            modeled_bytes=total, breakdown=breakdown,
            host_bytes=self.live_bytes() + self._cache_bytes(), scanned_bytes=total,
            scan_loads=int(levels.sum()) + bitmaps,
            notes=self._notes("xa_nodes and ida_bitmaps walked in lib/idr.c's own IDA"),
            formula=formula)

    def check(self):
        self._open()
        s, e = _check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == 0 or e[-1] <= min(self.max_pfn, linux.kernel_int_max() + 1), \
            f"{self.name}: an id past max_pfn or INT_MAX"
        levels = self.ida.levels()
        _top_has_one_node(levels, self.name)
        assert self._live["xa_node"] == levels.sum(), f"{self.name}: live xa_nodes != walked"
        assert self._live["kmalloc"] == self.ida.bitmaps(), \
            f"{self.name}: live kmalloc'd objects != ida_bitmaps walked"


# --------------------------------------------------------------------------
# maple tree

class MapleKernel(KernelCode, Tracker):
    """``maple`` in lib/maple_tree.c: mtree_store_range() per maximal extent,
    the tree in-order stores grow (appended in place, otherwise rebuilt in
    order: module docstring).

    ``estimate()`` is the twin's model of that in-order tree, which equals
    this tree's counts.  Where the twin's model differs from the kernel: a
    tree grown by stores in any other order (random conversions) holds
    20-25 % more nodes than the model (trackers/maple.py gives the measured
    range), and the last two leaves may be filled differently (same count)."""

    twin_cls = Maple
    twin = twin_cls.name
    name = "maple@kernel"
    option = twin_cls.option + " (kernel code)"
    scan_node_bytes = twin_cls.scan_node_bytes

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.mt = linux.KernelMaple()
        self._n = 0                        # maximal extents stored
        self._first = self._last = -1      # first start, last end

    def engines(self):
        return [self.mt]

    def _mark_ranges(self, starts, ends):
        ns, ne = normalize_extents(starts, ends)
        if self._n == 0 or ns[0] > self._last:       # in order: append
            first = ns[0] if self._n == 0 else self._first
            n = self._n + ns.size
            counts = level_node_counts(n, bool(first > 0),
                                       n == 1 and is_lone_zero(ns, ne))
            check_budget(f"{self.name} tracker (mtree_store_range)",
                         kernel.MAPLE_NODE_BYTES * sum(counts), self.budget_bytes)
            self.mt.store_range(ns, ne)
            self._n, self._first, self._last = n, int(first), int(ne[-1])
            return
        cur = self._all_runs()
        ext = normalize_extents(np.concatenate((cur[0], ns)), np.concatenate((cur[1], ne)))
        if not (np.array_equal(ext[0], cur[0]) and np.array_equal(ext[1], cur[1])):
            self._rebuild(ext)

    def _unmark_ranges(self, starts, ends):
        cut = normalize_extents(starts, ends)
        cur = self._all_runs()
        if _overlapping(cur, cut).any():
            self._rebuild(subtract(cur, cut))

    def _rebuild(self, ext) -> None:
        """A new tree, the maximal extents stored in order; then the old one freed."""
        check_budget(f"{self.name} tracker (mtree_store_range, in order)",
                     int(self.twin_cls.estimate(*ext, self.max_pfn)), self.budget_bytes)
        mt = linux.KernelMaple()
        try:
            mt.store_range(*ext)
        except BaseException:
            mt.close()
            raise
        self.mt.close()
        self.mt = mt
        self._n = int(ext[0].size)
        self._first = int(ext[0][0]) if self._n else -1
        self._last = int(ext[1][-1]) if self._n else -1

    def _scan(self):
        return self.mt.scan(cap=EXTENT_CHUNK)

    def memory(self):
        self._open()
        levels = self.mt.levels()
        breakdown = ({level_name(i): kernel.MAPLE_NODE_BYTES * int(c)
                      for i, c in enumerate(levels)} or {level_name(0): 0})
        total = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=total, breakdown=breakdown,
            host_bytes=self.live_bytes() + self._cache_bytes(), scanned_bytes=total,
            scan_loads=int(levels.sum()),
            notes=self._notes(f"maple nodes per level walked in lib/maple_tree.c's own tree, "
                              f"{self._n:,} extents stored in order"),
            formula={"maple_range_64 L<k>": f"{kernel.MAPLE_NODE_BYTES} B x the nodes the "
                     f"kernel's tree holds at level k (0: leaves)"})

    def check(self):
        self._open()
        s, e = _check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == self._n, f"{self.name}: {s.size} runs, {self._n} extents stored"
        levels = self.mt.levels()
        assert levels.size == 0 or levels[-1] == 1, f"{self.name}: more than one root"
        assert self._live["maple_node"] == levels.sum(), \
            f"{self.name}: live maple nodes != walked"


# --------------------------------------------------------------------------
# bitmap

class BitmapKernel(KernelCode, Bitmap):
    """``bitmap``'s uint64 bitmap, scanned with the kernel's
    find_next_bit/find_next_zero_bit (for_each_set_bitrange)."""

    twin_cls = Bitmap
    twin = twin_cls.name
    name = "bitmap@kernel"
    option = twin_cls.option + " (kernel code)"

    def _scan(self):
        return linux.kernel_bitmap_runs(self.words, nbits=self.max_pfn, cap=EXTENT_CHUNK)

    def _contains(self, pfns):
        return Bitmap._contains(self, pfns)

    def _count(self):
        return Bitmap._count(self)

    def memory(self):
        m = Bitmap.memory(self)
        return replace(m, notes=self._notes("the bitmap is the kernel's; its scan is "
                                            "find_next_bit/find_next_zero_bit"),
                       host_bytes=self.words.nbytes)

    def check(self):
        Bitmap.check(self)
        s, e = _check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and popcount differ"


# --------------------------------------------------------------------------
# KVM

class KernelTd:
    """One TD's mem_attr_array and guest_memfd page cache as the kernel's own
    XArrays, with the interface of :class:`trackers.kvm.TdXArrays`.

    mem_attr_array: a private row is kvm_vm_set_mem_attributes() as KVM runs
    it, xa_reserve() of every GFN then xa_store() (one engine call per run
    of private rows); a shared row reserves and stores every GFN, then
    erases them (KVM stores NULL after the reserve: the same deletions and
    xas_shrink calls), skipped where KVM skips it: while GFN 0 alone sits in
    its reserved node, rows above GFN 0 change nothing.

    guest_memfd: an entry per bound GFN holding xa_mk_value(pfn - gfn +
    2^62), which gives the PFN back (the kernel's entry is the folio: the
    same slots, the same nodes); one engine call per run of rows with one
    offset.
    """

    #: bias of the PFN - GFN offset stored in a guest_memfd entry
    OFFSET_BIAS = 1 << 62

    def __init__(self, td: int):
        self.td = td
        self.attrs = linux.KernelXArray()
        self.gmem = linux.KernelXArray()

    def close(self) -> None:
        self.attrs.close()
        self.gmem.close()

    def release(self, budget=None) -> None:
        """Drop a TD that was never added."""
        self.close()

    # --- budget requests: (label, modeled bytes after the update) --------------
    def _after(self, engine, gfn_s, gfn_e) -> int:
        cur = _concat(engine.scan(cap=EXTENT_CHUNK))
        s, e = normalize_extents(np.concatenate((cur[0], gfn_s)), np.concatenate((cur[1], gfn_e)))
        return int(xa_node_counts(s, e).sum()) * kernel.XA_NODE_BYTES

    def attr_rows(self, gfn_s, gfn_e, private):
        return (self, "attrs", self._after(self.attrs, gfn_s[private], gfn_e[private]))

    def bind_rows(self, gfn_s, gfn_e, pfn_s=None):
        """The request for binding the rows; ValueError (before any change)
        if a row's PFN - GFN offset does not fit the entry's encoding."""
        if pfn_s is not None and pfn_s.size:
            low = int(np.argmin(pfn_s - gfn_s))
            if int(pfn_s[low]) - int(gfn_s[low]) < -self.OFFSET_BIAS:
                raise ValueError(f"GFN {int(gfn_s[low])} bound to PFN {int(pfn_s[low])}: "
                                 f"kvm@kernel stores pfn - gfn + 2^62 in a value entry, so "
                                 f"GFNs must lie below 2^62 + PFN")
        return (self, "gmem", self._after(self.gmem, gfn_s, gfn_e))

    def now_bytes(self) -> dict[str, int]:
        return {"attrs": int(self.attrs.levels().sum()) * kernel.XA_NODE_BYTES,
                "gmem": int(self.gmem.levels().sum()) * kernel.XA_NODE_BYTES}

    # --- updates --------------------------------------------------------------
    def _zero_alone_in_node(self) -> bool:
        """GFN 0 is the only private GFN and sits in an xa_node."""
        if self.attrs.load([0])[0] < 0:
            return False
        first = next(iter(self.attrs.scan(cap=2)), _EMPTY)
        if first[0].tolist() != [0] or first[1].tolist() != [1]:
            return False
        return int(self.attrs.levels().sum()) == 1

    def set_attrs(self, gfn_s, gfn_e, private):
        value = kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE
        for i, j in zip(*op_runs(private)):          # one step per run of equal op
            s, e = gfn_s[i:j], gfn_e[i:j]
            if private[i]:
                self.attrs.reserve_then_store(s, e, value=value)
                continue
            if self._zero_alone_in_node():           # rows above GFN 0 are no-ops
                at_zero = np.flatnonzero(s == 0)
                if at_zero.size == 0:
                    continue
                s, e = s[at_zero[0]:], e[at_zero[0]:]
            self.attrs.reserve_then_store(s, e, value=value)
            self.attrs.erase_range(s, e)

    def bind(self, gfn_s, gfn_e, pfn_s):
        offset = pfn_s - gfn_s + self.OFFSET_BIAS
        for i, j in zip(*op_runs(offset)):           # one step per run of equal offset
            self.gmem.store_range(gfn_s[i:j], gfn_e[i:j], value=int(offset[i]))

    def unbind(self, gfn_s, gfn_e):
        self.gmem.erase_range(gfn_s, gfn_e)

    # --- queries ----------------------------------------------------------------
    def attr_runs(self):
        return self.attrs.scan(cap=EXTENT_CHUNK)

    def bound_runs(self):
        return self.gmem.scan(cap=EXTENT_CHUNK)

    def pfn_plus1(self, gfns):
        v = self.gmem.load(gfns)
        return np.where(v >= 0, gfns + (v - self.OFFSET_BIAS) + 1, 0)

    def levels(self):
        return self.attrs.levels(), self.gmem.levels()

    def host_bytes(self) -> int:
        return 0                                     # counted by the tracker's live objects

    def nodes(self) -> int:
        a, g = self.levels()
        return int(a.sum() + g.sum())

    def check(self) -> None:
        for engine, what in ((self.attrs, "mem_attr_array"), (self.gmem, "guest_memfd")):
            _check_runs(engine.scan(cap=EXTENT_CHUNK), f"TD {self.td} {what}")
            _top_has_one_node(engine.levels(), f"TD {self.td} {what}")


class KvmKernel(KernelCode, KvmAttributes):
    """``kvm`` on the kernel's own XArrays: each TD's mem_attr_array filled as
    kvm_vm_set_mem_attributes() fills it and its guest_memfd page cache,
    following the same events as ``kvm`` (:class:`KernelTd`)."""

    twin_cls = KvmAttributes
    twin = twin_cls.name
    name = "kvm@kernel"
    option = twin_cls.option + " (kernel code)"

    def engines(self):
        return [e for td in self.tds.values() for e in (td.attrs, td.gmem)]

    def new_td(self, td: int):
        self._open()
        return KernelTd(td)

    def reserve(self, requests) -> None:
        """Refuse (MemoryBudgetError) when the TDs' XArrays after the update,
        as the twin counts them, would exceed the budget."""
        asked = {(id(td), part): nbytes for td, part, nbytes in requests}
        need = sum(asked.values())
        for td in self.tds.values():
            for part, nbytes in td.now_bytes().items():
                if (id(td), part) not in asked:
                    need += nbytes
        check_budget(f"{self.name} tracker (mem_attr_array and guest_memfd XArrays)", need,
                     self.budget_bytes)

    def _extent_batches(self):
        self._open()
        return KvmAttributes._extent_batches(self)

    def _contains(self, pfns):
        self._open()
        return KvmAttributes._contains(self, pfns)

    def _count(self):
        self._open()
        return KvmAttributes._count(self)

    def memory(self):
        self._open()
        m = KvmAttributes.memory(self)
        return replace(m, host_bytes=self.live_bytes() + self._cache_bytes(),
                       notes=self._notes("mem_attr_array and guest_memfd xa_nodes walked in "
                                         "lib/xarray.c's own trees, per TD; " + m.notes))

    def check(self):
        self._open()
        KvmAttributes.check(self)
        # no live-object equality here: this tracker's TD trees are created
        # and torn down as events come, and their call_rcu frees land in the
        # harness's global counters after other updates (seen as -4 live vs
        # 22 walked); host_bytes reports the live count, the walk is checked
        for td in self.tds.values():
            assert td.nodes() >= 0


#: every twin, by its emulation's registry name (the registry orders them)
TWINS: dict[str, type[Tracker]] = {cls.twin: cls for cls in (
    BitmapKernel, XArrayKernel, XArrayMultiKernel, IdaKernel, MapleKernel, KvmKernel)}
