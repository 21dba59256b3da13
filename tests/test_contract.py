"""The contract's rules that hold for every tracker: bad input, budgets, streaming."""

import numpy as np
import pytest

import trackers
from trackers.base import MemoryBudgetError, coalesce_batches, expand_extents
from trackers.extents import normalize_extents

NAMES = list(trackers.TRACKERS)
MAX_PFN = 5000


def built(name):
    t = trackers.get_tracker(name, max_pfn=MAX_PFN)
    t.mark_ranges([10, 600, 4096], [20, 1700, 4100])
    t.mark([3000, 4999])
    return t


def snapshot(t):
    return [(s.tolist(), e.tolist()) for s, e in t.extents()], len(t)


BAD = [
    ("mark", ([-1],), ValueError, r"pfn -1 is negative"),
    ("mark", ([MAX_PFN],), ValueError, rf"pfn {MAX_PFN} is out of range: max_pfn is {MAX_PFN}"),
    ("mark", (np.array([1.0, 2.0]),), TypeError, r"integer array, got dtype float64"),
    ("mark", (np.array([1, "x"], dtype=object),), TypeError, r"got dtype object"),
    ("unmark", (True,), TypeError, r"got bool"),
    ("mark_ranges", ([5], [4]), ValueError, r"range 0 is reversed: start 5 > end 4"),
    ("mark_ranges", ([0, 1], [2]), ValueError, r"differ in length: 2 starts, 1 ends"),
    ("mark_ranges", ([0], [MAX_PFN + 1]), ValueError,
     rf"end {MAX_PFN + 1} is out of range: ends must be <= max_pfn {MAX_PFN}"),
    ("unmark_ranges", ([-3], [2]), ValueError, r"start -3 is negative"),
    ("unmark_ranges", (np.array([0.5]), np.array([2.5])), TypeError, r"float64"),
    ("contains", ([MAX_PFN + 7],), ValueError, rf"pfn {MAX_PFN + 7} is out of range"),
    ("mark", (np.array([2**63 + 5], np.uint64),), ValueError, r"exceeds the int64 limit"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method,args,exc,msg", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_raises_and_changes_nothing(name, method, args, exc, msg):
    t = built(name)
    before = snapshot(t)
    with pytest.raises(exc, match=msg):
        getattr(t, method)(*args)
    assert snapshot(t) == before
    t.check()


@pytest.mark.parametrize("name", NAMES)
def test_idempotent_and_membership(name):
    t = built(name)
    before = snapshot(t)
    t.mark_ranges([10, 600], [20, 1700])        # marking twice changes nothing
    t.unmark([0, 1, 2])                         # unmarking unmarked pages too
    t.mark_ranges([7], [7])                     # empty range
    assert snapshot(t) == before
    assert 3000 in t and 2999 not in t and -1 not in t and MAX_PFN not in t
    assert len(t) == 10 + 1100 + 4 + 2


@pytest.mark.parametrize("name", NAMES)
def test_bad_max_pfn(name):
    cls = trackers.TRACKERS[name]
    with pytest.raises(ValueError, match="max_pfn 0 must be positive"):
        cls(0)
    with pytest.raises(TypeError, match="max_pfn must be an int"):
        cls(12.0)


@pytest.mark.parametrize("name", NAMES)
def test_estimate_rejects_bad_sets(name):
    cls = trackers.TRACKERS[name]
    with pytest.raises(ValueError, match="end 101 is out of range"):
        cls.estimate([0], [101], 100)


@pytest.mark.parametrize("name", NAMES)
def test_extents_are_maximal_across_batches(name):
    # 70,000 alternating pages: more runs than one EXTENT_CHUNK batch holds
    t = trackers.get_tracker(name, max_pfn=1 << 18)
    t.mark(np.arange(0, 140_000, 2))
    t.mark_ranges([200_000], [250_000])
    batches = list(t.extents())
    s = np.concatenate([b[0] for b in batches])
    e = np.concatenate([b[1] for b in batches])
    assert s.size == 70_001 and np.all(s[1:] > e[:-1])
    assert all(b[0].size <= trackers.base.EXTENT_CHUNK for b in batches)
    assert (s[-1], e[-1]) == (200_000, 250_000)


def test_unknown_tracker():
    with pytest.raises(ValueError, match=r"unknown tracker 'btree'; known: bitmap"):
        trackers.get_tracker("btree", max_pfn=10)


def test_budget_refusal_names_bytes_and_budget():
    with pytest.raises(MemoryBudgetError,
                       match=r"needs 536,870,912 host bytes .* budget of 1,048,576 bytes"):
        trackers.get_tracker("bitmap", max_pfn=1 << 32, budget_bytes=1 << 20)


def test_coalesce_merges_touching_runs_across_batches():
    batches = [(np.array([0, 5]), np.array([3, 8])), (np.array([8, 20]), np.array([9, 21])),
               (np.array([21]), np.array([30]))]
    out = list(coalesce_batches(batches))
    s = np.concatenate([b[0] for b in out]).tolist()
    e = np.concatenate([b[1] for b in out]).tolist()
    assert (s, e) == ([0, 5, 20], [3, 9, 30])


def test_expand_bounds_chunks():
    batches = [(np.array([0, 10]), np.array([5, 12])), (np.array([100]), np.array([107]))]
    chunks = list(expand_extents(batches, chunk=3))
    assert [c.tolist() for c in chunks] == [[0, 1, 2], [3, 4, 10], [11], [100, 101, 102],
                                            [103, 104, 105], [106]]


def test_normalize_extents_merges_overlaps():
    s, e = normalize_extents(np.array([10, 0, 4, 30]), np.array([20, 5, 12, 31]))
    assert (s.tolist(), e.tolist()) == ([0, 30], [20, 31])
