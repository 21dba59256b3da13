"""xarray and xarray-multi: exact xa_node counts as lib/xarray.c holds them."""

import numpy as np
import pytest

from trackers import MemoryBudgetError, get_tracker, kernel
from trackers.xa import XA_VALUE, xa_node_counts
from trackers.xarray import XArrayMultiTracker, XArrayTracker

NODE = kernel.XA_NODE_BYTES


def build(name, starts, ends, max_pfn=1 << 28):
    t = get_tracker(name, max_pfn=max_pfn)
    t.mark_ranges(np.array(starts), np.array(ends))
    t.check()
    return t


@pytest.mark.parametrize("starts, ends, levels", [
    ([0], [1], {}),                        # index 0 lives in xa_head: no xa_node
    ([0], [64], {0: 1}),                   # one shift-0 node
    ([64], [65], {0: 1, 1: 1}),            # top shift 6 (64 >> 0 >= 64) + leaf 1
    ([0, 4095], [1, 4096], {0: 2, 1: 1}),  # top shift 6, leaves 0 and 63
    ([4096], [4097], {0: 1, 1: 1, 2: 1}),
])
def test_xarray_node_counts(starts, ends, levels):
    t = build("xarray", starts, ends)
    bd = t.memory().breakdown
    got = {int(k.split("L")[1]): v // NODE for k, v in bd.items() if v}
    assert got == levels
    assert t.memory().modeled_bytes == NODE * sum(levels.values())
    assert XArrayTracker.estimate(starts, ends, 1 << 28) == t.memory().modeled_bytes


def test_xarray_all_pfns_estimate():
    # 2^28 indices: 2^22 leaves, 2^16 + 2^10 + 2^4 inner nodes, top shift 24.
    nodes = 4_194_304 + 65_536 + 1_024 + 16 + 1
    assert XArrayTracker.estimate([0], [1 << 28], 1 << 28) == nodes * NODE
    assert xa_node_counts([0], [1 << 28]).tolist()[:6] == [4_194_304, 65_536, 1_024, 16, 1, 0]


def test_xarray_breakdown_keys_and_formula():
    m = build("xarray", [64], [65]).memory()
    assert m.breakdown == {"xa_node L0": NODE, "xa_node L1": NODE}
    assert "576" in m.formula["xa_node Lk"]


def test_xarray_shrinks_on_erase():
    # {0, 64}: top shift 6 over leaves 0 and 1; erasing 64 frees leaf 1, and
    # xas_shrink pops the top and leaf 0, the entry going back to xa_head
    t = build("xarray", [0, 64], [1, 65])
    assert t.memory().modeled_bytes == 3 * NODE
    t.unmark([64])
    t.check()
    assert t.memory().modeled_bytes == 0 and 0 in t and len(t) == 1
    t.unmark([0])
    t.check()
    assert len(t) == 0 and t.memory().modeled_bytes == 0


def test_multi_2mib_extent_hand_derived():
    # [512*k, 512*(k+1)) with k = 1000, i.e. indices [512000, 512511].
    # xa_store_range: order = __ffs(512512) = 9, so xas_set_order(512511, 9)
    # gives index 512000, shift 6, sibs 7; xas_max = 512000 | 511 = 512511,
    # and xas_expand makes the top shift 18 (512511 >> 12 = 125 >= 64,
    # 512511 >> 18 = 1 < 64).  xas_create descends: top (shift 18) slot 1,
    # a shift-12 node, slot 125 & 63 = 61, a shift-6 node, slot 8000 & 63 = 0.
    # xas_set_range(512000, 512511): 512000 & 63 == 0 and sibs 511 > 63, so
    # shift 6, sibs 511 >> 6 = 7; 8000 & 63 == 0 but sibs 7 < 63 stops: one
    # piece, slots 0..7 of the shift-6 node (value + 7 siblings).  No shift-0
    # node.  Total 3 xa_nodes, one per level L1..L3.
    k = 1000
    t = build("xarray-multi", [512 * k], [512 * (k + 1)])
    assert t.memory().breakdown == {"xa_node L0": 0, "xa_node L1": NODE,
                                    "xa_node L2": NODE, "xa_node L3": NODE}
    assert t.tree.load(np.array([512000, 512063, 512064, 512511, 512512])).tolist() == \
        [XA_VALUE, XA_VALUE, -2, -2, 0]                  # -2: sibling of slot 0
    # the same extent one value entry per page: 8 leaves under the same 3 nodes
    assert build("xarray", [512 * k], [512 * (k + 1)]).memory().modeled_bytes == 11 * NODE


def test_multi_quirks_at_index_zero():
    # [0, 63]: xas_max asks for index 64 (an order-6 entry cannot sit in
    # xa_head), top shift 6 holds the entry in slot 0 and xas_shrink keeps it.
    assert build("xarray-multi", [0], [64]).memory().breakdown == {"xa_node L0": 0,
                                                                   "xa_node L1": NODE}
    # [5, 63]: last + 1 = 64 again: top shift 6 over a shift-0 leaf = 2 nodes
    assert build("xarray-multi", [5], [64]).memory().modeled_bytes == 2 * NODE
    assert build("xarray", [5], [64]).memory().modeled_bytes == NODE
    # [0, 4095]: one order-12 entry in slot 0 of a shift-12 top
    assert build("xarray-multi", [0], [4096]).memory().breakdown["xa_node L2"] == NODE
    assert build("xarray-multi", [0], [1]).memory().modeled_bytes == 0


def test_multi_keeps_the_entries_of_a_fresh_build():
    # an update erases the maximal extents it touches and stores them anew:
    # the entries are a fresh build's, whatever the history
    a = get_tracker("xarray-multi", max_pfn=1 << 20)
    a.mark_ranges([0], [1 << 18])
    a.unmark_ranges([1000, 70000], [1001, 70002])
    a.mark([1000])
    a.check()
    b = build("xarray-multi", [0, 70002], [70000, 1 << 18], 1 << 20)
    assert a.memory().breakdown == b.memory().breakdown
    runs = list(a.extents())
    assert np.concatenate([r[0] for r in runs]).tolist() == [0, 70002]
    assert np.concatenate([r[1] for r in runs]).tolist() == [70000, 1 << 18]
    # all 2^18 pages: one order-18 entry; xas_max = 2^18 needs a shift-18 top
    c = build("xarray-multi", [0], [1 << 18], 1 << 20)
    assert c.memory().breakdown == {"xa_node L0": 0, "xa_node L1": 0, "xa_node L2": 0,
                                    "xa_node L3": NODE}


def test_multi_height_follows_the_history():
    # [62, 63] grows an L1 (xas_max asks for index 64); erasing 63 below
    # the top does not run xas_shrink, so the L1 stays: 2 nodes where a
    # fresh build of {5, 62} holds 1
    t = build("xarray-multi", [5, 62], [6, 64], 64)
    t.unmark([63])
    t.check()
    assert t.memory().breakdown == {"xa_node L0": NODE, "xa_node L1": NODE}
    assert XArrayMultiTracker.estimate([5, 62], [6, 63], 64) == NODE
    # and lower: [1, 63] under an L1 that 100 needed; erasing 100 empties
    # the L1's other child, so xas_shrink pops it, where a fresh build of
    # [1, 63] has the L1 (xas_max: 64)
    t = build("xarray-multi", [1, 100], [64, 101], 4096)
    t.unmark([100])
    t.check()
    assert t.memory().breakdown == {"xa_node L0": NODE}
    assert XArrayMultiTracker.estimate([1], [64], 4096) == 2 * NODE
    # the single-index tree has no such history: per-index erases shrink
    x = build("xarray", [5, 62], [6, 64], 64)
    x.unmark([63])
    assert x.memory().modeled_bytes == XArrayTracker.estimate([5, 62], [6, 63], 64) == NODE


def test_estimate_matches_random_sets():
    rng = np.random.default_rng(7)
    for name, cls in (("xarray", XArrayTracker), ("xarray-multi", XArrayMultiTracker)):
        starts = np.sort(rng.choice(1 << 22, 300, replace=False))
        ends = starts + rng.integers(1, 5000, 300)
        t = get_tracker(name, max_pfn=1 << 23)
        t.mark_ranges(starts, ends)
        t.unmark(rng.integers(0, 1 << 23, 200))
        t.check()
        runs = list(t.extents())
        s = np.concatenate([r[0] for r in runs])
        e = np.concatenate([r[1] for r in runs])
        fresh = build(name, s[::-1], e[::-1], 1 << 23)     # the set built at once
        assert cls.estimate(s, e, 1 << 23) == fresh.memory().modeled_bytes
        assert cls.estimate(s[::-1], e[::-1], 1 << 23) == fresh.memory().modeled_bytes
        if not cls.history_shaped:
            assert t.memory().modeled_bytes == fresh.memory().modeled_bytes


def test_budget_refusal_leaves_tracker_unchanged():
    t = get_tracker("xarray", max_pfn=1 << 24, budget_bytes=2 << 20)
    t.mark_ranges([0], [64 * 1000])                      # ~1000 nodes, ~0.5 MB
    before = t.memory().breakdown
    with pytest.raises(MemoryBudgetError, match="budget of 2,097,152"):
        t.mark_ranges([1 << 20], [(1 << 20) + 64 * 5000])
    assert t.memory().breakdown == before and len(t) == 64 * 1000
    t.check()


def test_host_bytes_track_modeled_bytes():
    t = build("xarray", [0], [1 << 20], 1 << 20)
    m = t.memory()
    assert m.modeled_bytes == (16384 + 256 + 4 + 1) * NODE
    assert m.modeled_bytes / 2 <= m.host_bytes <= 2 * m.modeled_bytes


@pytest.mark.parametrize("name", ["xarray-multi", "xarray"])
def test_scattered_pages_over_budget_are_refused_before_the_work(name, monkeypatch):
    # 2^19 scattered pages of a 1 TiB host (unsorted, as hooks would report
    # them) need ~200,000 xa_nodes (~100 MB) either way; under 64 MiB the
    # tracker must refuse before it sorts the pages or walks the tree: the
    # lower bound on xa_nodes decides it, computed without a sort.
    import trackers.xa.tree as engine
    t = get_tracker(name, max_pfn=1 << 28, budget_bytes=64 << 20)
    t.mark_ranges([1 << 20], [(1 << 20) + 4096])
    before = [(s.tolist(), e.tolist()) for s, e in t.extents()], t.memory().host_bytes
    pfns = np.random.default_rng(8).integers(0, 1 << 28, 1 << 19)

    def no_work(*args):
        raise AssertionError("the update started before the budget was checked")
    monkeypatch.setattr(engine, "normalize_extents", no_work)
    monkeypatch.setattr(engine, "_sorted_ranges", no_work)
    with pytest.raises(MemoryBudgetError,
                       match=r"tracker with at least [\d,]+ xa_nodes needs [\d,]+ host bytes "
                             r".*budget of 67,108,864 bytes"):
        t.mark(pfns)
    monkeypatch.undo()
    assert ([(s.tolist(), e.tolist()) for s, e in t.extents()],
            t.memory().host_bytes) == before
    assert t.memory().host_bytes <= 64 << 20
    t.check()
