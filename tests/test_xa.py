"""The XArray engine (trackers.xa), the node pool and budget (trackers.pool),
and the rule that keeps them an API: no trackers module imports another
module's underscore names."""

import ast
from pathlib import Path

import numpy as np
import pytest

import trackers.xa
from trackers.base import MemoryBudgetError
from trackers.pool import HostBudget, NodePool
from trackers.xa import (XA_VALUE, XaTree, xa_node_counts, xa_nodes_lower_bound,
                         xas_set_range)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trackers"


# --------------------------------------------------------------------------
# one declared API: no module reaches for another's underscore names

def _private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``from X import _name`` lines of ``path`` where X is a trackers module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level == 0 and module != "trackers" and not module.startswith("trackers."):
            continue                                  # numpy, numba, __future__, ...
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                out.append(f"{path.relative_to(root)}:{node.lineno}: from "
                           f"{'.' * node.level}{module} import {alias.name}")
    return out


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_underscore_names(path):
    assert _private_imports(path) == []


def test_the_private_import_check_sees_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .model import _node_counts\nfrom numpy import _globals\n"
                   "from trackers.xa.tree import _walk_runs, XaTree\nfrom . import kernel\n")
    assert _private_imports(bad, tmp_path) == [
        "bad.py:1: from .model import _node_counts",
        "bad.py:3: from trackers.xa.tree import _walk_runs"]


def test_engine_exports_resolve():
    for name in trackers.xa.__all__:
        assert getattr(trackers.xa, name) is not None, name


# --------------------------------------------------------------------------
# the node pool: refused before it grows, the message names bytes and budget

def pool_of(budget, rows_fixed=0, node="test_node", what=""):
    # 8 + 8 * 3 = 32 bytes per row
    return NodePool(budget, node, {"a": (np.int64, (), -1), "b": (np.int64, (3,), 0)},
                    what=what, fixed_bytes=rows_fixed)


def test_pool_refuses_before_growing_and_names_bytes_and_budget():
    budget = HostBudget(10_000, "test tracker")
    pool = pool_of(budget, rows_fixed=16)
    assert pool.row_bytes == 32 and pool.host_bytes() == 16
    pool.reserve(100)
    assert pool.capacity >= 100 and budget.held_bytes() <= 10_000
    pool["a"][:100] = np.arange(100)
    arrays = dict(pool.arrays)
    cap = pool.capacity
    # 400 rows: 16 + 400 * 32 = 12,816 bytes > 10,000
    with pytest.raises(MemoryBudgetError,
                       match=r"test tracker with 400 test_nodes needs 12,816 host bytes .* "
                             r"budget of 10,000 bytes"):
        pool.reserve(400)
    assert pool.capacity == cap and all(pool.arrays[k] is arrays[k] for k in arrays)
    assert pool["a"][:100].tolist() == list(range(100))


def test_pool_growth_keeps_rows_and_stays_in_budget():
    budget = HostBudget(10_000, "test tracker")
    pool = pool_of(budget)
    pool.reserve(10)
    pool["a"][:10] = np.arange(10)
    pool.reserve(300)                       # 9,600 B: the quarter of slack would not fit
    assert pool.capacity >= 300 and pool.host_bytes() <= 10_000
    assert pool["a"][:10].tolist() == list(range(10))
    assert (pool["a"][10:] == -1).all() and (pool["b"] == 0).all()
    pool.reserve(5)                         # enough room: nothing changes
    assert pool.capacity >= 300


def test_pools_of_one_tracker_share_the_budget():
    budget = HostBudget(10_000, "test tracker")
    a = pool_of(budget, what="tree A")
    b = pool_of(budget, what="tree B")
    # each fits alone (200 * 32 = 6,400 B), both do not (12,800 B)
    with pytest.raises(MemoryBudgetError, match=r"200 test_nodes in tree A and 200 test_nodes "
                                                r"in tree B needs 12,800 host bytes"):
        budget.reserve([(a, 200), (b, 200)])
    assert a.capacity == b.capacity == 0            # all or nothing
    a.reserve(200)
    with pytest.raises(MemoryBudgetError, match="budget of 10,000"):
        b.reserve(200)
    assert b.capacity == 0 and budget.held_bytes() <= 10_000
    b.reserve(100)
    assert budget.held_bytes() <= 10_000
    assert budget.rows_left(b) == (10_000 - a.host_bytes()) // 32
    budget.release(b)
    assert budget.held_bytes() == a.host_bytes()


def test_check_grows_nothing_and_says_at_least():
    budget = HostBudget(1_000, "test tracker")
    pool = pool_of(budget)
    budget.check([(pool, 31)])
    with pytest.raises(MemoryBudgetError, match="with at least 40 test_nodes needs 1,280"):
        budget.check([(pool, 40)], at_least=True)
    assert pool.capacity == 0


def test_replace_counts_old_rows_and_build_buffers():
    budget = HostBudget(10_000, "test tracker")
    pool = pool_of(budget)
    pool.replace(100)                                 # 3,200 B
    assert pool.capacity == 100 and pool.host_bytes() == 3_200
    # 3,200 old + 3,200 new + 4,000 buffers > 10,000
    with pytest.raises(MemoryBudgetError, match=r"rebuild needs 10,400 host bytes"):
        pool.replace(100, transient_bytes=4_000, what="rebuild")
    assert pool.capacity == 100
    pool.replace(150)
    assert pool.capacity == 150 and (pool["a"] == -1).all()


# --------------------------------------------------------------------------
# the engine's API (moved here from test_xarray.py)

def test_xas_set_range_pieces():
    # lib/xarray.c xas_set_range: (shift, sibs) of the first piece
    assert xas_set_range(512, 1023) == (6, 7)          # 8 slots of 64 in a shift-6 node
    assert xas_set_range(0, 4095) == (12, 0)           # one slot of 4096
    assert xas_set_range(0, 4094) == (6, 62)           # 63 slots of 64, then the tail
    assert xas_set_range(5, 63) == (0, 58)
    assert xas_set_range(64, 4223) == (6, 62)          # stops at the node's last slot


def test_xatree_payloads_for_kvm():
    tree = XaTree(budget_bytes=1 << 30)
    tree.store_range(np.array([10]), np.array([20]), payload=8)   # KVM_MEMORY_ATTRIBUTE_PRIVATE
    tree.store(np.array([15]), payload=9)
    assert tree.load(np.array([9, 10, 15, 19, 20])).tolist() == [0, 8, 9, 8, 0]
    tree.erase(np.array([10]))
    assert len(tree) == 9 and tree.node_counts_by_level()[0] == 1
    assert [r.tolist() for r in next(tree.walk())] == [[11], [20]]
    tree.check()
    with pytest.raises(ValueError, match="sibling"):
        tree.store(np.array([1]), payload=-3)


def test_store_mapped_and_nodes_missing():
    tree = XaTree(budget_bytes=1 << 30)
    s, e = np.array([4096, 0]), np.array([4100, 70])          # unsorted on purpose
    # 4099 >> 6 = 64: a shift-12 top over shift-6 nodes 0 and 1, over leaves 0, 1 and 64
    assert tree.nodes_missing(s, e) == 6
    tree.store_mapped(s, e, np.array([1000, 7]), 1)            # entry = base + index
    assert tree.load(np.array([0, 69, 4096, 4099, 4100])).tolist() == [7, 76, 5096, 5099, 0]
    assert tree.node_counts_by_level()[:3].tolist() == [3, 2, 1]
    assert tree.nodes() == 6 and tree.nodes_missing(s, e) == 0
    tree.check()


def test_trees_on_one_budget_refuse_together():
    budget = HostBudget(200_000, "test tracker")
    a = XaTree(budget=budget, what="tree A")
    b = XaTree(budget=budget, what="tree B")
    pages = np.arange(0, 64 * 250, 64)                  # 250 leaves + 4 + 1: ~132 kB
    a.store(pages)
    with pytest.raises(MemoryBudgetError, match="in tree B needs"):
        b.store(pages)
    assert len(b) == 0 and b.nodes() == 0 and budget.held_bytes() <= 200_000
    b.check()


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("store", [True, False])
def test_lower_bound_never_exceeds_the_nodes_after(multi, store):
    # random sets and updates in a small index space, with few counters per
    # level so that the sampling is exercised: bound <= nodes after the update
    rng = np.random.default_rng(11 + 2 * multi + store)
    for _ in range(60):
        tree = XaTree(multi=multi, budget_bytes=1 << 30)
        space = int(rng.choice([300, 5000, 1 << 16, 1 << 20]))
        n0 = int(rng.integers(0, 40))
        s0 = rng.integers(0, space, n0)
        tree.store_range(s0, np.minimum(s0 + rng.integers(1, 3000, n0), space))
        n = int(rng.integers(1, 200))
        s = rng.integers(0, space, n)
        e = np.minimum(s + rng.choice([1, 1, 5, 70, 4000], n), space)
        bounds = [xa_nodes_lower_bound(*tree.arrays[:4], s, e, multi, store, -1, cap)
                  for cap in (4, 64, 1 << 20)]
        (tree.store_range if store else tree.erase_range)(s, e)
        tree.check()
        for bound in bounds:
            if not store and not multi:
                assert bound == 0
            assert bound <= tree.nodes(), (space, bounds, tree.nodes())


def test_lower_bound_is_exact_for_scattered_pages_into_an_empty_tree():
    # one page per 64-slot block, blocks 1..999: 999 leaves (block 0 is never
    # counted), 16 shift-6 nodes above them less block 0's; the top is not
    # counted either
    pages = np.arange(1, 1000, dtype=np.int64) * 64 + 5
    tree = XaTree(multi=True, budget_bytes=1 << 30)
    s, e = pages[::-1].copy(), pages[::-1] + 1

    def bound(limit):
        return xa_nodes_lower_bound(*tree.arrays[:4], s, e, True, True, limit, 1 << 20)
    levels = xa_node_counts(pages, pages + 1, True)
    assert levels[:2].tolist() == [999, 16] and levels[2] == 1
    assert bound(-1) == bound(1013) == 999 + 15      # every level
    assert bound(998) == 999                         # over the limit after L0: stops there
    assert bound(1014) == 0                          # 999 + 15 sampled blocks cannot exceed it


def test_refuse_early_leaves_the_tree_unchanged():
    # one order-20 entry (a single xa_node); 8192 holes punched in it would
    # need an xa_node per 64-block they hit, ~6,400 of them: over 1 MiB
    tree = XaTree(multi=True, budget_bytes=1 << 20)
    tree.store_range(np.array([0]), np.array([1 << 20]))
    before = [r.tolist() for r in next(tree.walk())], tree.nodes(), tree.capacity
    holes = np.random.default_rng(5).integers(64, 1 << 20, 8192)
    with pytest.raises(MemoryBudgetError, match=r"with at least [\d,]+ xa_nodes needs"):
        tree.erase(holes)
    assert ([r.tolist() for r in next(tree.walk())], tree.nodes(), tree.capacity) == before
    assert tree.load(np.array([0, 100, (1 << 20) - 1])).tolist()[0] == XA_VALUE
    tree.check()
