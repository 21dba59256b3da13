"""ida: 1024-bit chunks in an XArray, value entries below bit 63."""

import numpy as np
import pytest

from trackers import MemoryBudgetError, get_tracker, kernel
from trackers.ida import Ida

NODE, BITMAP = kernel.XA_NODE_BYTES, kernel.IDA_BITMAP_BYTES


def build(starts, ends, max_pfn=1 << 28):
    t = get_tracker("ida", max_pfn=max_pfn)
    t.mark_ranges(np.array(starts), np.array(ends))
    t.check()
    return t


def test_low_bits_are_a_value_entry():
    # chunk 0 with bits 0..62 only: xa_mk_value in xa_head, nothing allocated
    t = build([0], [63])
    assert t.memory().breakdown == {"xa_node L0": 0, "ida_bitmap": 0}
    assert len(t) == 63


def test_bit_63_needs_an_ida_bitmap():
    t = build([0], [64])
    assert t.memory().breakdown == {"xa_node L0": 0, "ida_bitmap": BITMAP}
    t.unmark([63])                 # back to bits < 63: modeled as a value entry
    t.check()
    assert t.memory().breakdown["ida_bitmap"] == 0 and len(t) == 63


def test_chunks_index_the_xarray():
    # chunks 0 and 64 (pfn 65536): top shift 6 + leaves 0 and 1; chunk 64 has
    # only bit 0 set (value entry), chunk 0 bit 100 (ida_bitmap)
    t = build([100, 65536], [101, 65537])
    assert t.memory().breakdown == {"xa_node L0": 2 * NODE, "xa_node L1": NODE,
                                    "ida_bitmap": BITMAP}
    assert Ida.estimate([100, 65536], [101, 65537], 1 << 28) == 3 * NODE + BITMAP


def test_all_pfns_estimate():
    # 2^28 PFNs = 2^18 chunks, all ida_bitmaps; XArray over 2^18 indices:
    # 4096 leaves + 64 + 1 (top shift 12)
    assert Ida.estimate([0], [1 << 28], 1 << 28) == (4096 + 64 + 1) * NODE + (1 << 18) * BITMAP


def test_2mib_extent():
    # [512000, 512512) lies in chunk 500 (bits 0..511): one ida_bitmap, one
    # xa_node (top shift 6 holds index 500 >> 6 = 7 < 64)... plus the leaf.
    t = build([512000], [512512])
    assert t.memory().breakdown == {"xa_node L0": NODE, "xa_node L1": NODE,
                                    "ida_bitmap": BITMAP}
    assert [x.tolist() for x in next(t.extents())] == [[512000], [512512]]


def test_estimate_matches_random_sets():
    rng = np.random.default_rng(3)
    starts = np.sort(rng.choice(1 << 22, 300, replace=False))
    ends = starts + rng.integers(1, 3000, 300)
    t = get_tracker("ida", max_pfn=1 << 23)
    t.mark_ranges(starts, ends)
    t.unmark(rng.integers(0, 1 << 23, 500))
    t.mark(rng.integers(0, 1 << 23, 500))
    t.check()
    runs = list(t.extents())
    s = np.concatenate([r[0] for r in runs])
    e = np.concatenate([r[1] for r in runs])
    assert Ida.estimate(s, e, 1 << 23) == t.memory().modeled_bytes
    ref = np.zeros(1 << 23, bool)
    for a, b in zip(s, e):
        ref[a:b] = True
    assert np.array_equal(t.contains(np.arange(1 << 23)), ref)


def test_budget_refusal_leaves_tracker_unchanged():
    t = get_tracker("ida", max_pfn=1 << 30, budget_bytes=1 << 20)
    t.mark_ranges([0], [1024 * 1000])
    before = t.memory().breakdown
    with pytest.raises(MemoryBudgetError, match="budget of 1,048,576"):
        t.mark_ranges([1 << 25], [(1 << 25) + 1024 * 20000])
    assert t.memory().breakdown == before and len(t) == 1024 * 1000
    t.check()
