"""``xarray@kernel`` and ``xarray-multi@kernel``: the set in lib/xarray.c's own
XArray (xa_store per PFN; xa_store_range per maximal extent, its touched
extents erased and stored again: package docstring)."""

from __future__ import annotations

import numpy as np

from .. import kernel, linux
from ..base import EXTENT_CHUNK, ConversionCalls, MemoryReport, Tracker
from ..extents import normalize_extents, subtract
from ..xa import level_breakdown, level_formula
from ..xarray import XArrayMultiTracker, XArrayTracker
from .base import KernelCode, check_one_top_node, check_runs, overlapping, touching


class XArrayKernel(KernelCode, Tracker):
    """``xarray`` in lib/xarray.c: xa_store(pfn, xa_mk_value(1)) per PFN,
    xa_erase per PFN unmarked.  A mark or unmark builds that tree by one xas
    walk per range (KernelXArray.walk_store, walk_erase: the same tree,
    node by node); conversion_calls() are the per-PFN calls."""

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

    def conversion_calls(self) -> ConversionCalls:
        return self.kernel_calls(self.xa.store_range, self.xa.erase_range,
                                 "xa_store / xa_erase per page")

    def _levels(self) -> np.ndarray:
        return self.xa.levels()

    def _mark_ranges(self, starts, ends):
        self._refuse_over_budget("xa_store", lambda: normalize_extents(
            np.concatenate((self._all_runs()[0], starts)),
            np.concatenate((self._all_runs()[1], ends))),
            lambda: int(self._levels().sum()) * kernel.XA_NODE_BYTES, (starts, ends))
        self.xa.walk_store(starts, ends, 1)

    def _unmark_ranges(self, starts, ends):
        self.xa.walk_erase(starts, ends)           # frees nodes only

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
        s, e = check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == 0 or (s[0] >= 0 and e[-1] <= self.max_pfn), \
            f"{self.name}: a PFN past max_pfn {self.max_pfn}"
        levels = self._levels()
        check_one_top_node(levels, self.name)
        assert self._live["xa_node"] == levels.sum(), \
            f"{self.name}: {self._live['xa_node']} live xa_nodes, {int(levels.sum())} walked"


class XArrayMultiKernel(XArrayKernel):
    """``xarray-multi`` in lib/xarray.c: xa_store_range() per maximal extent;
    an update erases the maximal extents it touches and stores the new ones
    whole (package docstring)."""

    twin_cls = XArrayMultiTracker
    twin = twin_cls.name
    name = "xarray-multi@kernel"
    option = twin_cls.option + " (kernel code)"
    multi = True

    def _mark_ranges(self, starts, ends):
        new = normalize_extents(starts, ends)
        cur = self._all_runs()
        hit = touching(cur, new)
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
        hit = overlapping(cur, cut)
        if not hit.any():
            return
        left = subtract((cur[0][hit], cur[1][hit]), cut)
        self._refuse_over_budget("xa_store_range of what is left",
                                 lambda: subtract(cur, cut))
        self._restore(cur[0][hit], cur[1][hit], left)

    def conversion_calls(self) -> ConversionCalls:
        return self.kernel_calls(self.xa.store_range_multi, self.xa.erase_range_multi,
                                 "xa_store_range / xa_erase of the entry")

    def _restore(self, old_s, old_e, new) -> None:
        """xa_erase every entry of the old maximal extents, then
        xa_store_range() each new maximal extent."""
        self.xa.erase_range_multi(old_s, old_e)
        self.xa.store_range_multi(*new)
