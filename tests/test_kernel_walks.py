"""The build walks of trackers.linux.KernelXArray (walk_store,
walk_reserve_then_store, walk_erase: one xas walk per range) leave the tree
their per-index twins leave (store_range_values, reserve_then_store,
erase_range: one xa_store / xa_reserve / xa_erase per index), node by node:
equal digests (every node's shift, offset, counts, marks and slots), after
every step of seeded histories of stores, reserves and erases.

The sizes put ranges where the walk's xas_next() leaves a node, climbs past
the top (the tree grows) and where erases free nodes and shrink the tree;
index 0 is where a reserved entry needs a node that a stored one does not.
"""

import numpy as np
import pytest

from trackers import kernel

#: top index of a history's ranges: one node, two levels, three, five
TOPS = [64, 4096, 1 << 18, 1 << 30]
HISTORIES_PER_TOP, STEPS = 40, 10
VALUE = kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE


def _ranges(rng, top):
    n = int(rng.integers(1, 5))
    s = np.sort(rng.integers(0, top, n))
    if rng.random() < 0.2:
        s[0] = 0
    e = np.minimum(s + rng.integers(0, min(top, 3000), n), top)
    return s, e


def _step(rng, a, b, top, stored):
    """One random operation on ``a`` by the per-index calls and on ``b`` by
    the walks; returns its name.  An erase takes, half the time, ranges
    stored before (``stored``), or every index: those free nodes and
    shrink the tree."""
    op = ("store", "values", "reserve", "erase")[int(rng.integers(0, 4))]
    s, e = _ranges(rng, top)
    if op == "erase" and stored and rng.random() < 0.5:
        s, e = stored[int(rng.integers(0, len(stored)))]
        if rng.random() < 0.2:
            s, e = np.array([0]), np.array([top])
    stored.append((s, e))
    if op == "store":
        a.store_range(s, e, VALUE)
        b.walk_store(s, e, VALUE)
    elif op == "values":
        v = rng.integers(0, 1 << 40, s.size)
        a.store_range_values(s, e, v)
        b.walk_store(s, e, v)
    elif op == "reserve":
        a.reserve_then_store(s, e, VALUE)
        b.walk_reserve_then_store(s, e, VALUE)
    else:
        a.erase_range(s, e)
        b.walk_erase(s, e)
    return f"{op} {list(zip(s.tolist(), e.tolist()))}"


@pytest.mark.parametrize("top", TOPS)
def test_walks_leave_the_per_index_tree(lib, top):
    rng = np.random.default_rng(top)
    for h in range(HISTORIES_PER_TOP):
        with lib.KernelXArray() as a, lib.KernelXArray() as b:
            done, stored = [], []
            for _ in range(STEPS):
                done.append(_step(rng, a, b, top, stored))
                assert a.digest() == b.digest(), f"history {h}: {done}"
            assert (a.levels() == b.levels()).all()
            assert [x.tolist() for x in np.concatenate(list(a.scan()) or [[[], []]], 1)] == \
                [x.tolist() for x in np.concatenate(list(b.scan()) or [[[], []]], 1)]


def test_the_digest_sees_the_reserved_node_at_index_0(lib):
    """xa_reserve(0) on an empty array needs a node (XA_ZERO_ENTRY cannot be
    xa_head); a stored value alone at index 0 is xa_head: the trees differ,
    and the digest says so, so equal digests above mean equal trees."""
    with lib.KernelXArray() as a, lib.KernelXArray() as b:
        a.reserve_then_store([0], [1], VALUE)
        b.store_range([0], [1], VALUE)
        assert a.levels().sum() == 1 and b.levels().sum() == 0
        assert a.digest() != b.digest()


def test_the_digest_is_the_trees_not_the_allocators(lib):
    """Two arrays built alike, after other trees freed nodes (stale offsets in
    recycled xa_nodes), digest alike."""
    with lib.KernelXArray() as a:
        a.store_range([1 << 20], [(1 << 20) + 5000], VALUE)
        a.erase_range([0], [1 << 21])
    with lib.KernelXArray() as a, lib.KernelXArray() as b:
        a.store_range([4096], [4097], VALUE)
        b.store_range([4096], [4097], VALUE)
        assert a.digest() == b.digest()
        b.store_range([4097], [4098], VALUE)
        assert a.digest() != b.digest()


def test_walks_check_their_input(lib):
    with lib.KernelXArray() as a:
        with pytest.raises(ValueError, match="start 5 > end 4"):
            a.walk_store([5], [4], 1)
        with pytest.raises(ValueError, match=r"does not fit xa_mk_value\(\)"):
            a.walk_store([0], [4], 1 << 63)
        with pytest.raises(ValueError, match="2 ranges but 3 values"):
            a.walk_store([0, 8], [4, 9], [1, 2, 3])
        assert a.levels().sum() == 0
