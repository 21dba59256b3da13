"""Option 1b: an XArray (include/linux/xarray.h, lib/xarray.c) indexed by PFN.

Two registry entries, both trackers on the XArray engine
(:class:`trackers.xa.XaTree`; the tree, its kernel quirks and its host
layout are described in :mod:`trackers.xa.tree`):

``xarray``
    one value entry per PFN, what ``xa_store(xa, pfn, xa_mk_value(..))`` per
    page gives (and what KVM's ``mem_attr_array`` holds per GFN).
``xarray-multi``
    each *maximal* extent of the set stored as ``xa_store_range()`` stores it
    (CONFIG_XARRAY_MULTI): ``xas_set_range()`` cuts [first, last] into
    aligned pieces of ``(sibs + 1) << shift`` indices, shift a multiple of 6;
    a piece is a value entry in slot ``offset`` of the node with that shift,
    followed by ``sibs`` sibling entries.  A 2^(shift+6)-aligned block wholly
    inside one extent is therefore a slot of its parent, not a node.  An
    update xa_erase()s the entries of the maximal extents it touches and
    stores the resulting extents anew (a multi-index entry cannot be cut in
    place without xas_split), as ``xarray-multi@kernel`` does.

Faithful: 576-B xa_nodes (kernel.XA_NODE_BYTES), counted per level as
lib/xarray.c holds them after the same calls in the same order: xas_expand,
xas_create, xas_store over multi-index entries, xas_delete_node and
xas_shrink, as :mod:`trackers.xa.multi` follows them.  ``memory()`` is the
tree as its history left it: ``xarray``'s per-page xa_store/xa_erase leave
a tree that depends only on its set, but ``xarray-multi``'s top can stay
higher than its set needs (the xa_store_range of an extent ending at
2^k - 1 asks for index 2^k, and an erase below the top does not shrink it)
or sit lower (an erase that reaches the top pops it below what a fresh
xa_store_range grows).  ``estimate()`` is a fresh build: the analytic count
of :mod:`trackers.xa.model`, which a tracker built by one ``mark_ranges``
holds exactly.  tests/test_xa_history.py holds both emulations to their
``@kernel`` twins after random histories.

Not faithful: marks, xa_lock and slab overhead (7 nodes per 4 KiB page) are
not modeled.  Host bytes: 519 per xa_node against 576 modeled.

Budget: the tree's nodes are reserved within the tracker's budget before
each update; an update that surely cannot fit is refused before it sorts its
input (XaTree.refuse_early).
"""

from __future__ import annotations

from . import kernel
from .base import MemoryReport, Tracker
from .pool import HostBudget
from .xa import XaTree, estimate_levels, level_breakdown, level_formula


class XArrayTracker(Tracker):
    """One xa_store(pfn, xa_mk_value(1)) per private page; modeled bytes are
    576 B per xa_node, counted per level as lib/xarray.c would hold them."""

    name = "xarray"
    option = "1: XArray, one value entry per PFN"
    scan_node_bytes = kernel.XA_NODE_BYTES     # an estimated scan: one load per xa_node
    multi = False

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.host_budget = HostBudget(self.budget_bytes, f"{self.name} tracker")
        self.tree = XaTree(multi=self.multi, budget=self.host_budget, what=f"{self.name} tracker")

    def _mark_ranges(self, starts, ends):
        self.tree.store_range(starts, ends)

    def _unmark_ranges(self, starts, ends):
        self.tree.erase_range(starts, ends)

    def _contains(self, pfns):
        return self.tree.load(pfns) != 0

    def _count(self):
        return len(self.tree)

    def _extent_batches(self):
        return self.tree.walk()

    def memory(self):
        breakdown = level_breakdown(self.tree.node_counts_by_level())
        total = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=total,
            breakdown=breakdown,
            host_bytes=self.tree.host_bytes(),
            scanned_bytes=total,
            scan_loads=self.tree.nodes(),       # xas_find visits every node once
            notes=("xa_node counts as lib/xarray.c holds them after this tracker's history; "
                   "marks, xa_lock and slab overhead (7 nodes per 4 KiB page) not modeled"
                   + ("; touched maximal extents erased and stored again with "
                      "xa_store_range" if self.multi else "")),
            formula=level_formula(self.multi),
        )

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        levels = estimate_levels(starts, ends, max_pfn, multi=cls.multi)
        return int(levels.sum()) * kernel.XA_NODE_BYTES

    def check(self):
        self.tree.check()
        assert len(self.tree) <= self.max_pfn


class XArrayMultiTracker(XArrayTracker):
    """Each maximal extent stored with xa_store_range() (multi-index entries)."""

    name = "xarray-multi"
    option = "1: XArray, xa_store_range per extent"
    multi = True
    history_shaped = True
