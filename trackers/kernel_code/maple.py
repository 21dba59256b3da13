"""``maple@kernel``: the set in lib/maple_tree.c's own maple tree
(mtree_store_range per maximal extent, the tree in-order stores grow:
package docstring)."""

from __future__ import annotations

import numpy as np

from .. import kernel, linux
from ..base import EXTENT_CHUNK, ConversionCalls, MemoryReport, Tracker, check_budget
from ..extents import normalize_extents, subtract
from ..maple import Maple, is_lone_zero, level_name, level_node_counts
from .base import KernelCode, check_runs, overlapping


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

    def conversion_calls(self) -> ConversionCalls:
        return self.kernel_calls(self.mt.store_range, self.mt.erase_range,
                                 "mtree_store_range / mtree_store_range(NULL)")

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
        if overlapping(cur, cut).any():
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
        s, e = check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == self._n, f"{self.name}: {s.size} runs, {self._n} extents stored"
        levels = self.mt.levels()
        assert levels.size == 0 or levels[-1] == 1, f"{self.name}: more than one root"
        assert self._live["maple_node"] == levels.sum(), \
            f"{self.name}: live maple nodes != walked"
