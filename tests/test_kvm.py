"""kvm: each TD's mem_attr_array + guest_memfd binding, walked and translated."""

import numpy as np
import pytest

import trackers
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
