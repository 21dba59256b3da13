"""maple: extents and NULL gaps as ranges of the maple tree in-order stores grow."""

import numpy as np
import pytest

from trackers import MemoryBudgetError
from trackers.maple import Maple, internal_sizes, leaf_sizes, level_node_counts

NODE = 256


def extents(n, first, gap=3, length=2):
    """n extents of ``length`` pages, ``gap`` pages apart, the first at ``first``."""
    s = first + np.arange(n, dtype=np.int64) * (length + gap)
    return s, s + length


def test_empty_tree_has_no_node():
    t = Maple(100)
    m = t.memory()
    assert m.modeled_bytes == 0 and m.breakdown == {"maple_range_64 leaf": 0}
    assert Maple.estimate([], [], 100) == 0
    assert not t.contains([0, 99]).any()
    t.check()


@pytest.mark.parametrize("start, nodes", [(5, 1), (0, 1)])
def test_one_extent_one_leaf(start, nodes):
    # [gap] extent gap: 3 or 2 slots, one leaf that is the root
    t = Maple(100)
    t.mark_ranges([start], [10])
    assert t.memory().modeled_bytes == NODE * nodes
    assert t.memory().breakdown == {"maple_range_64 leaf": NODE}


def test_seventeen_slots_rebalance_the_last_leaf():
    # 8 extents after a leading gap: 17 slots; greedy 16 + 1, and the last
    # leaf (1 < 6 slots) takes from its left: split 8 is a NULL slot, so 9;
    # the left keeps 10 slots, the right 7; a root above them.
    assert leaf_sizes(17, True).tolist() == [10, 7]
    t = Maple(1000)
    t.mark_ranges(*extents(8, first=4))
    m = t.memory()
    assert m.breakdown == {"maple_range_64 leaf": 2 * NODE, "maple_range_64 L1": NODE}
    assert m.modeled_bytes == 768
    assert t.ends.tolist() == [10, 7, 2]
    t.check()


def test_leaf_may_not_end_in_null():
    # 8 extents from PFN 0: 16 slots, one leaf
    assert leaf_sizes(16, False).tolist() == [16]
    # 9 extents from PFN 0: 18 slots; slot 15 is NULL -> first leaf takes 15,
    # the last (3) rebalances: split 8 is an entry, left keeps 9, right 9
    assert leaf_sizes(18, False).tolist() == [9, 9]
    t = Maple(1000)
    t.mark_ranges(*extents(9, first=0))
    assert t.memory().modeled_bytes == 3 * NODE
    t.check()


def test_thousand_extents_hand_worked():
    # 2001 slots: 125 leaves of 16 + 1 slot -> rebalanced to 10 + 7: 126 leaves.
    # L1 as in-order growth leaves it (the kernel's own code: [126, 9, 1]):
    # 15 children per node but the last two, 1 + ceil((126 - 16) / 15) = 9
    # nodes (7 x 15, then 9 + 12); L2 = the root.  136 nodes.
    assert level_node_counts(1000, True) == [126, 9, 1]
    assert internal_sizes(126).tolist() == [15] * 7 + [9, 12]
    s, e = extents(1000, first=7)
    t = Maple(10_000)
    t.mark_ranges(s, e)
    m = t.memory()
    assert m.modeled_bytes == 136 * NODE == Maple.estimate(s, e, 10_000)
    assert m.breakdown == {"maple_range_64 leaf": 126 * NODE, "maple_range_64 L1": 9 * NODE,
                           "maple_range_64 L2": NODE}
    assert m.host_bytes == 136 * 257 <= 2 * m.modeled_bytes
    t.check()


def test_ten_thousand_extents_as_the_kernel():
    # measured with the kernel's lib/maple_tree.c (maple@kernel): [1251, 84, 6, 1]
    assert level_node_counts(10_000, True) == [1251, 84, 6, 1]
    s, e = extents(10_000, first=7)
    t = Maple(100_000)
    t.mark_ranges(s, e)
    assert t.memory().modeled_bytes == (1251 + 84 + 6 + 1) * NODE == Maple.estimate(s, e, 100_000)
    t.check()


@pytest.mark.parametrize("children, sizes", [
    (16, [16]), (17, [9, 8]), (25, [9, 16]), (26, [15, 11]), (31, [15, 16]),
    (32, [15, 9, 8]), (47, [15, 15, 9, 8])])
def test_internal_levels_grow_as_in_order_splits_leave_them(children, sizes):
    # 17 children: mab_calc_split halves them (9 + 8); the right fills to 16;
    # its 17th child is pushed into the left sibling (mas_push_data), which
    # re-splits the pair at mt_slots - 2: the left keeps 15
    assert internal_sizes(children).tolist() == sizes


def test_lone_entry_at_zero_is_ma_root():
    # mtree_store_range(mt, 0, 0, entry) into an empty tree keeps the entry
    # in ma_root: no node (the kernel's own code agrees)
    assert Maple.estimate([0], [1], 100) == 0
    t = Maple(100)
    t.mark([0])
    m = t.memory()
    assert m.modeled_bytes == 0 and m.scan_loads == 0
    assert t.contains([0, 1]).tolist() == [True, False] and len(t) == 1
    assert [(a.tolist(), b.tolist()) for a, b in t.extents()] == [([0], [1])]
    t.check()
    t.mark([5])                                   # [0,0] entry, NULL, [5,5] entry, NULL: a leaf
    assert t.memory().modeled_bytes == NODE == Maple.estimate([0, 5], [1, 6], 100)
    t.unmark([5])
    assert t.memory().modeled_bytes == 0
    t.check()
    t.unmark([0])
    assert len(t) == 0 and t.memory().modeled_bytes == 0
    t.check()


def test_walk_scan_and_unmark_split():
    t = Maple(1 << 20)
    s, e = extents(3000, first=1, gap=100, length=50)
    t.mark_ranges(s, e)
    t.unmark_ranges([s[10] + 20], [s[10] + 30])          # split one extent
    t.unmark([int(s[0])])
    ref = np.zeros(1 << 20, bool)
    for a, b in zip(s, e):
        ref[a:b] = True
    ref[s[10] + 20:s[10] + 30] = False
    ref[s[0]] = False
    q = np.arange(0, int(e[-1]) + 10)
    assert np.array_equal(t.contains(q), ref[q])
    runs = np.concatenate([x[0] for x in t.extents()])
    assert runs.size == 3001 and len(t) == int(ref.sum())
    assert np.array_equal(np.concatenate(list(t.pfns())), np.flatnonzero(ref))
    t.check()


@pytest.mark.parametrize("seed", range(4))
def test_estimate_equals_memory_random(seed):
    rng = np.random.default_rng(seed)
    t = Maple(1 << 24)
    for _ in range(5):
        s = rng.integers(0, 1 << 24, 2000)
        t.mark_ranges(s, np.minimum(s + rng.integers(1, 600, s.size), 1 << 24))
        s = rng.integers(0, 1 << 24, 500)
        t.unmark_ranges(s, np.minimum(s + rng.integers(1, 300, s.size), 1 << 24))
    all_s = np.concatenate([x[0] for x in t.extents()])
    all_e = np.concatenate([x[1] for x in t.extents()])
    assert Maple.estimate(all_s, all_e, 1 << 24) == t.memory().modeled_bytes
    t.check()


def test_budget_refusal_leaves_tree_unchanged():
    t = Maple(1 << 20, budget_bytes=10_000)
    t.mark_ranges([0], [5])
    with pytest.raises(MemoryBudgetError, match="budget of 10,000"):
        t.mark_ranges(*extents(5000, first=10))
    assert len(t) == 5 and t.memory().modeled_bytes == NODE
    t.check()


def test_check_catches_a_bad_pivot():
    t = Maple(1000)
    t.mark_ranges(*extents(40, first=3))
    t.pivots[0, 3] = t.pivots[0, 2]
    with pytest.raises(AssertionError, match="ascending"):
        t.check()
