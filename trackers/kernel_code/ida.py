"""``ida@kernel``: the set in lib/idr.c's own IDA (ida_alloc_range(ida, pfn, pfn)
per PFN; touched chunks of low ids re-allocated as value entries: package
docstring)."""

from __future__ import annotations

import numpy as np

from .. import kernel, linux
from ..base import EXTENT_CHUNK, ConversionCalls, MemoryReport, Tracker, validate_max_pfn
from ..extents import normalize_extents
from ..ida import Ida, check_representable
from ..xa import level_breakdown, level_formula
from .base import KernelCode, check_one_top_node, check_runs


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

    def conversion_calls(self) -> ConversionCalls:
        return self.kernel_calls(self.ida.mark_range, self.ida.free_range,
                                 "ida_alloc_range(id, id) / ida_free per page")

    def _bytes(self) -> int:
        return (int(self.ida.levels().sum()) * kernel.XA_NODE_BYTES
                + self.ida.bitmaps() * kernel.IDA_BITMAP_BYTES)

    def _mark_ranges(self, starts, ends):
        self._refuse_over_budget("ida_alloc_range", lambda: normalize_extents(
            np.concatenate((self._all_runs()[0], starts)),
            np.concatenate((self._all_runs()[1], ends))), self._bytes, (starts, ends))
        self.ida.mark_range(starts, ends)

    def _unmark_ranges(self, starts, ends):
        self.ida.free_range(starts, ends)
        self._runs = None

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
        s, e = check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and count differ"
        assert s.size == 0 or e[-1] <= min(self.max_pfn, linux.kernel_int_max() + 1), \
            f"{self.name}: an id past max_pfn or INT_MAX"
        levels = self.ida.levels()
        check_one_top_node(levels, self.name)
        assert self._live["xa_node"] == levels.sum(), f"{self.name}: live xa_nodes != walked"
        assert self._live["kmalloc"] == self.ida.bitmaps(), \
            f"{self.name}: live kmalloc'd objects != ida_bitmaps walked"
