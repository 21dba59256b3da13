"""kvm: each TD's mem_attr_array + guest_memfd binding, walked and translated."""

import numpy as np
import pytest

import trackers
from trackers import MemoryBudgetError
from trackers.kernel import XA_NODE_BYTES
from trackers.kvm import KvmAttributes
from trackers.events import (EVENT_DTYPE, GMEM_BIND, GMEM_UNBIND, KVM_SET_ATTR_PRIVATE,
                             KVM_SET_ATTR_SHARED, SEAMCALL_PRIVATE)


def rows(*spec):
    ev = np.zeros(len(spec), EVENT_DTYPE)
    for i, (op, td, gs, ge, ps) in enumerate(spec):
        ev[i] = (op, 7, td, ps, -1 if ps < 0 else ps + ge - gs, gs, ge)
    return ev


def extents(t):
    return [(int(a), int(b)) for s, e in t.extents() for a, b in zip(s, e)]


def test_direct_marks_cost_two_xarrays():
    # GFN == PFN in the default TD: mem_attr_array and i_pages hold the same
    # 64 indices 0..63 -> one xa_node each
    t = trackers.get_tracker("kvm", max_pfn=1 << 20)
    t.mark_ranges([0], [64])
    m = t.memory()
    assert m.modeled_bytes == 2 * XA_NODE_BYTES
    assert m.breakdown == {"mem_attr_array xa_node L0": XA_NODE_BYTES,
                           "guest_memfd i_pages xa_node L0": XA_NODE_BYTES}
    assert KvmAttributes.estimate([0], [64], 1 << 20) == 2 * XA_NODE_BYTES


def test_all_2_28_gfns_is_twice_the_xarray():
    x = trackers.TRACKERS["xarray"].estimate([0], [1 << 28], 1 << 28)
    assert x == (4_194_304 + 65_536 + 1_024 + 16 + 1) * XA_NODE_BYTES
    assert KvmAttributes.estimate([0], [1 << 28], 1 << 28) == 2 * x


def test_walk_translates_gfns_through_the_binding():
    t = trackers.get_tracker("kvm", max_pfn=10_000)
    t.apply(rows(
        (KVM_SET_ATTR_PRIVATE, 3, 0, 100, -1),
        (GMEM_BIND, 3, 0, 50, 5000),          # GFN 0..49 -> PFN 5000..5049
        (GMEM_BIND, 3, 50, 100, 1000),        # GFN 50..99 -> PFN 1000..1049
        (KVM_SET_ATTR_SHARED, 3, 40, 60, -1),  # converted: no longer private
        (SEAMCALL_PRIVATE, 3, 0, 0, 9000),    # invisible to KVM
    ))
    assert extents(t) == [(1010, 1050), (5000, 5040)]
    assert len(t) == 80 and 1010 in t and 1009 not in t and 9000 not in t
    t.apply(rows((GMEM_UNBIND, 3, 0, 10, -1)))   # unbound GFNs have no PFN
    assert extents(t) == [(1010, 1050), (5010, 5040)]
    t.check()


def test_two_tds_merge_in_pfn_order():
    t = trackers.get_tracker("kvm", max_pfn=10_000)
    t.apply(rows((KVM_SET_ATTR_PRIVATE, 0, 0, 10, -1), (GMEM_BIND, 0, 0, 10, 20),
                 (KVM_SET_ATTR_PRIVATE, 1, 0, 10, -1), (GMEM_BIND, 1, 0, 10, 10)))
    assert extents(t) == [(10, 30)]
    assert set(t.tds) == {0, 1}


def test_direct_marks_may_not_steal_a_td_pfn():
    t = trackers.get_tracker("kvm", max_pfn=10_000)
    t.apply(rows((KVM_SET_ATTR_PRIVATE, 0, 0, 10, -1), (GMEM_BIND, 0, 0, 10, 20)))
    with pytest.raises(ValueError, match="bound to TD 0"):
        t.mark_ranges([25], [26])
    assert extents(t) == [(20, 30)]


def test_unmark_reaches_workload_tds():
    t = trackers.get_tracker("kvm", max_pfn=10_000)
    t.apply(rows((KVM_SET_ATTR_PRIVATE, 0, 0, 10, -1), (GMEM_BIND, 0, 0, 10, 20)))
    t.unmark_ranges([22], [25])
    assert extents(t) == [(20, 22), (25, 30)]
    t.check()


def test_kvm_event_without_td_is_rejected_unchanged():
    t = trackers.get_tracker("kvm", max_pfn=1000)
    with pytest.raises(ValueError, match="KVM event without a TD"):
        t.apply(rows((KVM_SET_ATTR_PRIVATE, 0, 0, 10, -1), (KVM_SET_ATTR_PRIVATE, -1, 0, 5, -1)))
    assert len(t) == 0 and not t.tds


def test_one_budget_for_every_xarray_of_the_tracker():
    # 78,000 pages 64 apart in the default TD: mem_attr_array and the page
    # cache each need 78,000 + 1,219 + 20 + 1 xa_nodes (41 MB of host rows).
    # Each tree alone fits 64 MiB, the two together (82 MB) do not: the
    # tracker must refuse before either tree grows (it used to give each tree
    # the whole budget and hold 104.6 MB).
    budget = 64 << 20
    t = trackers.get_tracker("kvm", max_pfn=1 << 24, budget_bytes=budget)
    pfns = np.arange(0, 64 * 78_000, 64)
    with pytest.raises(MemoryBudgetError,
                       match=r"kvm tracker with 79,240 xa_nodes in TD -1 mem_attr_array and "
                             r"79,240 xa_nodes in TD -1 guest_memfd i_pages needs 82,251,392 "
                             r"host bytes .* budget of 67,108,864 bytes"):
        t.mark(pfns)
    assert t.memory().host_bytes == 0 and not t.tds and len(t) == 0
    # half of it fits; the rest then would not, and is refused as a whole
    t.mark(pfns[:39_000])
    assert t.memory().host_bytes <= budget
    held = t.memory().host_bytes
    with pytest.raises(MemoryBudgetError, match="budget of 67,108,864"):
        t.mark(pfns[39_000:])
    assert t.memory().host_bytes == held <= budget and len(t) == 39_000
    t.check()


def test_events_of_two_tds_share_the_budget():
    # two TDs of 40,000 private, bound GFNs 64 apart (disjoint PFNs): four
    # XArrays of 40,636 xa_nodes (21 MB) each, 84 MB in all; any three fit
    # 64 MiB.  The batch is refused before any TD is added or any tree grows.
    t = trackers.get_tracker("kvm", max_pfn=1 << 24, budget_bytes=64 << 20)
    gfn = np.arange(0, 64 * 40_000, 64)
    ev = np.concatenate([_batch(op, td, gfn, base) for td, base in ((1, 0), (2, 1 << 23))
                         for op in (KVM_SET_ATTR_PRIVATE, GMEM_BIND)])
    with pytest.raises(MemoryBudgetError, match=r"40,636 xa_nodes in TD 1 mem_attr_array and "
                                                r".* in TD 2 guest_memfd i_pages needs"):
        t.apply(ev)
    assert not t.tds and t.memory().host_bytes == 0
    t.apply(ev[ev["td"] == 1])                # one TD fits: 42 MB
    assert len(t) == 40_000 and t.memory().host_bytes <= 64 << 20
    t.check()


def _batch(op, td, gfn, pfn_base):
    """One row per GFN of ``gfn`` (one page each), bound from pfn_base on."""
    ev = np.zeros(gfn.size, EVENT_DTYPE)
    ev["op"] = op
    ev["td"] = td
    ev["gfn_start"] = gfn
    ev["gfn_end"] = gfn + 1
    if op == GMEM_BIND:
        ev["pfn_start"] = pfn_base + np.arange(gfn.size)
        ev["pfn_end"] = ev["pfn_start"] + 1
    else:
        ev["pfn_start"] = -1
        ev["pfn_end"] = -1
    return ev


# --------------------------------------------------------------------------
# xa_reserve's node for GFN 0 alone (found by building lib/xarray.c; the
# @kernel twin holds the same counts: tests/test_kernel_code.py)

def attr_nodes(t):
    return sum(v for k, v in t.memory().breakdown.items()
               if k.startswith("mem_attr_array")) // XA_NODE_BYTES


def test_gfn_0_alone_keeps_the_reserved_node():
    # xa_reserve(0) stores XA_ZERO_ENTRY, never kept in xa_head: a node, kept
    # by the xa_store that follows.  A plain XArray holds index 0 in xa_head.
    assert trackers.TRACKERS["xarray"].estimate([0], [1], 100) == 0
    assert KvmAttributes.estimate([0], [1], 100) == XA_NODE_BYTES
    t = trackers.get_tracker("kvm", max_pfn=100)
    t.mark([0])
    assert t.memory().breakdown == {"mem_attr_array xa_node L0": XA_NODE_BYTES,
                                    "guest_memfd i_pages xa_node L0": 0}
    t.mark([1])
    t.unmark([1])                         # the erase runs xas_shrink: GFN 0 into xa_head
    assert t.memory().modeled_bytes == 0
    assert KvmAttributes.estimate([0], [1], 100) == XA_NODE_BYTES    # a fresh build
    t.unmark([0])
    t.mark([0])                           # alone into an empty array: the node again
    assert t.memory().modeled_bytes == XA_NODE_BYTES
    t.check()


@pytest.mark.parametrize("history, nodes", [
    ([(KVM_SET_ATTR_PRIVATE, 0, 1)], 1),                     # reserved into an empty array
    ([(KVM_SET_ATTR_PRIVATE, 0, 1), (KVM_SET_ATTR_SHARED, 5, 9)], 1),   # no-op in KVM
    ([(KVM_SET_ATTR_PRIVATE, 0, 1), (KVM_SET_ATTR_PRIVATE, 0, 1)], 1),  # no-op in KVM
    ([(KVM_SET_ATTR_PRIVATE, 0, 2), (KVM_SET_ATTR_SHARED, 1, 2)], 0),   # xas_shrink: xa_head
    ([(KVM_SET_ATTR_PRIVATE, 0, 1), (KVM_SET_ATTR_PRIVATE, 5, 6),
      (KVM_SET_ATTR_SHARED, 5, 6)], 0),
    ([(KVM_SET_ATTR_PRIVATE, 7, 8), (KVM_SET_ATTR_PRIVATE, 0, 1),
      (KVM_SET_ATTR_SHARED, 7, 8)], 0),                      # 0 joined a non-empty array
    ([(KVM_SET_ATTR_PRIVATE, 0, 1), (KVM_SET_ATTR_SHARED, 0, 1),
      (KVM_SET_ATTR_PRIVATE, 0, 1)], 1),
    ([(KVM_SET_ATTR_PRIVATE, 0, 3), (KVM_SET_ATTR_SHARED, 0, 3),
      (KVM_SET_ATTR_PRIVATE, 0, 1)], 1),
])
def test_gfn_0_alone_follows_kvms_rows(history, nodes):
    t = trackers.get_tracker("kvm", max_pfn=100)
    t.apply(rows(*[(op, 3, gs, ge, -1) for op, gs, ge in history]))
    assert attr_nodes(t) == nodes
    t.check()
    one_by_one = trackers.get_tracker("kvm", max_pfn=100)
    for op, gs, ge in history:                 # the same rows, one batch each
        one_by_one.apply(rows((op, 3, gs, ge, -1)))
    assert attr_nodes(one_by_one) == nodes
