"""TDX layout: TDMRs, PAMT, TD control pages, S-EPT, SWIOTLB, placement."""

import numpy as np
import pytest

from trackers.workloads import (GMEM_UNBIND, KVM_SET_ATTR_SHARED, SEAMCALL_RECLAIM, Policy,
                                TdConfig, Tdmrs, build_workload, load_memory_map, scenario,
                                synthetic_host)
from trackers import extents as X
from trackers.workloads.memmap import bundled_memmaps
from trackers.workloads.tdx import sept_pages, swiotlb_pages, td_gfn_layout

GIB = 1 << 30


@pytest.mark.parametrize("host", [synthetic_host(1 << 40), synthetic_host(8 * GIB),
                                  *[load_memory_map(p) for p in bundled_memmaps().values()]],
                         ids=lambda m: m.name)
def test_pamt_is_within_1_percent_of_1_256(host):
    t = Tdmrs.build(host)
    assert (t.base % (1 << 18) == 0).all() and (t.end % (1 << 18) == 0).all()
    ratio = int(t.pamt_pages().sum()) * 4096 / (t.pages * 4096)
    assert abs(ratio * 256 - 1) < 0.01
    # every TDX-usable RAM page (>= 1 MiB) lies in a TDMR
    usable = X.intersect(host.ram_ranges, (np.array([256]), np.array([host.max_pfn])))
    assert X.count(X.intersect(usable, X.normalize(t.base, t.end))) == X.count(usable)


def test_pamt_of_one_gib_tdmr_exactly():
    t = Tdmrs(np.array([1 << 18]), np.array([2 << 18]), np.array([0]), (16, 16, 16))
    # 4K: 262144 entries x 16 B = 4 MiB = 1024 pages; 2M: 512 x 16 B = 2 pages;
    # 1G: 1 x 16 B, rounded up to 1 page
    assert t.pamt_pages().tolist() == [1024 + 2 + 1]
    # Dynamic PAMT: 262144 bits = 32 KiB = 8 pages, plus the 2M and 1G levels
    assert t.dynamic_pamt_static_pages().tolist() == [8 + 2 + 1]
    assert Tdmrs.dynamic_pamt_pages((np.array([0, 1000]), np.array([1, 1001]))) == 2 * 2


def test_td_layout_swiotlb_and_sept_by_hand():
    g16 = 16 * GIB // 4096
    s, e = td_gfn_layout(g16)
    assert list(zip(s.tolist(), e.tolist())) == [(0, 0x80000), (0x100000, 0x480000)]
    # 6 % of 16 GiB = 983.04 MiB -> 491 whole 2 MiB chunks; clamps at 64 MiB and 1 GiB
    assert swiotlb_pages(g16) == 491 * 512
    assert swiotlb_pages(512 * (1 << 20) // 4096) == 64 * (1 << 20) // 4096
    assert swiotlb_pages(64 * GIB // 4096) == GIB // 4096
    # leaves: 4 Mi pages / 512 = 8192; 1 GiB tables: 2 low + 14 high = 16; 512 GiB: 1
    assert sept_pages((s, e)) == 8192 + 16 + 1


def test_tiny_control_pages_and_disjoint_kinds():
    w = scenario("tiny")
    by = w.pages_by_kind()
    vcpus = sum(t.config.vcpus for t in w.tds)
    assert by["tdr"] == len(w.tds) and by["tdcs"] == 6 * len(w.tds)
    assert by["tdvpr"] == vcpus and by["tdcx"] == 5 * vcpus
    assert by["sept"] == sum(sept_pages(t.layout) for t in w.tds)
    assert by["pamt"] == int(w.tdmrs.pamt_pages().sum())
    kinds = list(w.final_private().values())
    assert sum(X.count(k) for k in kinds) == X.count(w.final_private_all())   # disjoint
    allp = w.final_private_all()
    assert X.count(X.intersect(allp, w.memmap.ram_ranges)) == X.count(allp)   # all in RAM
    assert X.count(X.intersect(allp, w.host_held)) == 0


def test_fragmented_policy_fragments_and_contiguous_does_not():
    host = synthetic_host(8 * GIB, numa_nodes=1)
    cont = build_workload("c", host, [TdConfig(2 * GIB, vcpus=1)], 0)
    frag = build_workload("f", host, [TdConfig(2 * GIB, vcpus=1,
                                                policy=Policy("fragmented", 0.5))], 0)
    assert cont.final_kvm()[0].size <= 2
    assert frag.final_kvm()[0].size > 100
    assert X.count(cont.final_kvm()) == X.count(frag.final_kvm())


def test_td_that_does_not_fit_names_both_sizes():
    host = synthetic_host(8 * GIB, numa_nodes=1)
    with pytest.raises(ValueError, match=r"need [\d,]+ bytes \(.*GiB\).*only [\d,]+ bytes"):
        build_workload("x", host, [TdConfig(6 * GIB)], 0)


def test_private_to_shared_order_attr_then_remove_then_unbind():
    w = scenario("tiny")
    b = w.batches[w.labels.index("td0-build")]
    ops = b["op"]
    first_attr = int(np.flatnonzero(ops == KVM_SET_ATTR_SHARED)[0])
    seg = ops[first_attr:]
    # the first SWIOTLB chunk: attribute, then its removal, then its unbind
    assert seg[1] == SEAMCALL_RECLAIM and GMEM_UNBIND in seg[2:4]
    assert int(np.flatnonzero(seg == GMEM_UNBIND)[0]) > int(np.flatnonzero(seg == SEAMCALL_RECLAIM)[0])
