"""pageflags: a flag per struct page — 0 modeled bytes, 64 B per page scanned."""

import numpy as np
import pytest

from trackers import MemoryBudgetError
from trackers.base import EXTENT_CHUNK
from trackers.pageflags import PageFlags


def test_adds_nothing_but_scans_every_struct_page():
    t = PageFlags(1000)
    t.mark_ranges([3, 10], [7, 11])
    m = t.memory()
    assert m.modeled_bytes == 0
    assert m.breakdown == {"struct page flag bit": 0}
    assert m.scanned_bytes == 64 * 1000          # every struct page, set or not
    assert m.host_bytes == 1000                  # one uint8 stand-in per PFN
    assert "not the 64-B struct page" in m.notes


def test_exact_extents_and_pfns():
    t = PageFlags(100)
    t.mark_ranges([3, 10, 7], [7, 11, 8])
    t.mark([99, 0])
    t.unmark([4])
    batches = list(t.extents())
    assert np.concatenate([s for s, _ in batches]).tolist() == [0, 3, 5, 10, 99]
    assert np.concatenate([e for _, e in batches]).tolist() == [1, 4, 8, 11, 100]
    assert np.concatenate(list(t.pfns())).tolist() == [0, 3, 5, 6, 7, 10, 99]
    assert len(t) == 7
    assert t.contains([3, 4, 99]).tolist() == [True, False, True]
    t.check()


def test_scan_batches_are_bounded_and_merge():
    t = PageFlags(1 << 18)
    t.mark(np.arange(0, 1 << 18, 2))             # 2^17 one-page runs
    t.mark_ranges([100_001], [100_003])          # join three runs into one
    sizes = [s.size for s, _ in t._extent_batches()]
    assert max(sizes) <= EXTENT_CHUNK and len(sizes) >= 2
    total = sum(s.size for s, _ in t.extents())
    assert total == (1 << 17) - 1


def test_estimate_is_zero_even_at_16_tib():
    s = np.arange(0, 1 << 32, 1 << 20, dtype=np.int64)
    assert PageFlags.estimate(s, s + 512, 1 << 32) == 0
    with pytest.raises(ValueError, match="out of range"):
        PageFlags.estimate([0], [(1 << 32) + 1], 1 << 32)


def test_budget_refusal_names_bytes_and_budget():
    with pytest.raises(MemoryBudgetError, match=r"1,048,576 host bytes.*budget of 1,000"):
        PageFlags(1 << 20, budget_bytes=1000)


def test_check_catches_a_stray_flag_bit():
    t = PageFlags(64)
    t.page_flags[5] = 2
    with pytest.raises(AssertionError, match="pfn 5"):
        t.check()


def test_bad_input_changes_nothing():
    t = PageFlags(64)
    t.mark_ranges([1], [4])
    with pytest.raises(ValueError):
        t.mark_ranges([10, 70], [12, 71])
    with pytest.raises(TypeError):
        t.mark(np.array([1.0]))
    assert len(t) == 3 and not t.contains([10])[0]


def test_conversions_over_the_budget_go_through_the_contract_and_say_why():
    """Where the struct page array in C would not fit the budget, a
    conversion is the contract's own call, an upper bound, saying why."""
    t = PageFlags(1 << 16, budget_bytes=1 << 18)
    calls = t.conversion_calls()
    assert calls.upper_bound and calls.engine == "emulation"
    assert calls.calls.startswith("mark_ranges / unmark_ranges per call (the contract); "
                                  "no struct page array in C here: 65,536 struct pages of "
                                  "64 B needs 4,194,304 host bytes")
    calls.mark([5], [6])
    assert t.contains([5])[0]
