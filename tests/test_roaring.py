"""roaring: CRoaring containers in canonical kinds, bytes from the set alone."""

import array

import numpy as np
import pytest
from pyroaring import BitMap

from trackers import MemoryBudgetError
from trackers.base import EXTENT_CHUNK
from trackers.roaring import Roaring, container_table, runs_to_bitmap

HEAD = 11 + 16          # key + pointer + typecode, plus the container struct


def kinds(t):
    m = t.memory()
    st = [bm.get_statistics() for bm in t.blocks.values()]
    return (m.modeled_bytes,
            tuple(sum(s[f"n_{k}_containers"] for s in st) for k in ("array", "bitset", "run")))


@pytest.mark.parametrize("build, bytes_, counts", [
    # one page: run 2+4 = 6 >= array 2 -> array, 2 B
    (lambda t: t.mark([5]), HEAD + 2, (1, 0, 0)),
    # 100 pages in one run: 6 < 200 -> run, 4 B
    (lambda t: t.mark_ranges([0], [100]), HEAD + 4, (0, 0, 1)),
    # tie c = 2r + 1 (3 pages, 1 run: 6 == 6) -> array, even when built as a range
    (lambda t: t.mark_ranges([7], [10]), HEAD + 6, (1, 0, 0)),
    (lambda t: t.mark([7, 8, 9]), HEAD + 6, (1, 0, 0)),
    # tie with 2 runs: {0..3, 10}: 10 == 10 -> array, 10 B
    (lambda t: t.mark_ranges([0, 10], [4, 11]), HEAD + 10, (1, 0, 0)),
    # 4096 scattered pages: array at its limit, 8192 B
    (lambda t: t.mark(np.arange(0, 8192, 2)), HEAD + 8192, (1, 0, 0)),
    # 4097 scattered pages: bitset, 8192 B
    (lambda t: t.mark(np.arange(0, 8194, 2)), HEAD + 8192, (0, 1, 0)),
    # 2047 runs of 3 pages: 2 + 4*2047 = 8190 < 8192 -> run
    (lambda t: t.mark_ranges(np.arange(2047) * 8, np.arange(2047) * 8 + 3),
     HEAD + 4 * 2047, (0, 0, 1)),
    # 2048 runs of 3 pages: 8194 >= 8192 and 6144 pages -> bitset
    (lambda t: t.mark_ranges(np.arange(2048) * 8, np.arange(2048) * 8 + 3),
     HEAD + 8192, (0, 1, 0)),
    # a whole chunk: one run
    (lambda t: t.mark_ranges([65536], [131072]), HEAD + 4, (0, 0, 1)),
])
def test_exact_container_choice(build, bytes_, counts):
    t = Roaring(1 << 20)
    build(t)
    assert kinds(t) == (bytes_, counts)
    t.check()


def test_kind_follows_the_set_not_the_history():
    # the same 3-run set reached three ways has the same containers
    want = None
    for build in (
        lambda t: t.mark_ranges([0, 10, 20], [5, 15, 27]),
        lambda t: t.mark(np.r_[0:5, 10:15, 20:27]),
        lambda t: (t.mark_ranges([0], [27]), t.unmark(np.r_[5:10, 15:20])),
    ):
        t = Roaring(1000)
        build(t)
        got = (kinds(t), t.memory().breakdown)
        assert want is None or got == want
        want = got
    assert want[0] == (HEAD + 12, (0, 0, 1))


def test_breakdown_sums_and_serialized_size_is_apart():
    t = Roaring(1 << 20)
    t.mark([1, 3, 5])                                  # array: 6 B
    t.mark_ranges([70_000], [80_000])                  # run: 4 B
    t.mark(np.arange(131_072, 131_072 + 20_000, 3))    # 6667 pages scattered: bitset
    m = t.memory()
    assert m.breakdown == {"container index (key, pointer, typecode)": 33,
                           "container structs": 48, "array container": 6,
                           "bitset container": 8192, "run container": 4}
    assert m.modeled_bytes == sum(m.breakdown.values()) == 8283
    blob = sum(len(bm.serialize()) for bm in t.blocks.values())
    assert t.serialized_bytes == blob and f"{blob:,} B (not part of modeled)" in m.notes
    assert "kind" in m.formula


def test_pfns_above_2_32_use_one_bitmap_per_block():
    M = (1 << 33) + 5
    t = Roaring(M)
    t.mark_ranges([(1 << 32) - 10], [(1 << 32) + 10])  # crosses a block boundary
    t.mark([M - 1])
    assert sorted(t.blocks) == [0, 1, 2]
    batches = list(t.extents())
    s = np.concatenate([b[0] for b in batches])
    e = np.concatenate([b[1] for b in batches])
    assert s.tolist() == [(1 << 32) - 10, M - 1] and e.tolist() == [(1 << 32) + 10, M]
    assert t.contains([(1 << 32) - 11, (1 << 32) - 10, (1 << 32) + 9, M - 1]).tolist() == \
        [False, True, True, True]
    # keys 65535 and 65536 hold 10-page runs, the last page an array of 1
    assert t.memory().modeled_bytes == 2 * (HEAD + 4) + HEAD + 2 == Roaring.estimate(s, e, M)
    t.check()


@pytest.mark.parametrize("seed", range(4))
def test_estimate_equals_memory_random(seed):
    rng = np.random.default_rng(seed)
    M = [1 << 22, 3 << 20, (1 << 32) + (1 << 20), 1 << 24][seed]
    t = Roaring(M)
    for _ in range(4):
        s = rng.integers(0, M, 3000)
        t.mark_ranges(s, np.minimum(s + rng.choice([1, 2, 3, 40, 900], s.size), M))
        t.mark(rng.integers(0, M, 5000))
        s = rng.integers(0, M, 800)
        t.unmark_ranges(s, np.minimum(s + rng.integers(1, 200, s.size), M))
        t.unmark(rng.integers(0, M, 2000))
    batches = list(t.extents())
    s = np.concatenate([b[0] for b in batches])
    e = np.concatenate([b[1] for b in batches])
    assert Roaring.estimate(s, e, M) == t.memory().modeled_bytes
    assert len(t) == int((e - s).sum())
    t.check()


def test_runs_to_bitmap_matches_add_range():
    rng = np.random.default_rng(7)
    cuts = np.unique(rng.integers(0, 1 << 22, 4000))
    lo, hi = cuts[0:-1:2], cuts[1::2]
    ref = BitMap()
    for a, b in zip(lo.tolist(), hi.tolist()):
        ref.add_range(a, b)
    got = runs_to_bitmap(lo, hi)
    assert got == ref
    keys, cards, kinds_, _ = container_table(got)
    assert (kinds_ == 2).all() and cards.sum() == len(ref)


def test_scan_batches_are_bounded():
    t = Roaring(1 << 20)
    t.mark(np.arange(0, 1 << 20, 2))                  # 2^19 one-page runs
    sizes = [s.size for s, _ in t._extent_batches()]
    assert max(sizes) <= EXTENT_CHUNK and sum(sizes) == 1 << 19


def test_budget_refusal_leaves_bitmap_unchanged():
    t = Roaring(1 << 24, budget_bytes=100_000)
    t.mark_ranges([0], [10])
    with pytest.raises(MemoryBudgetError, match="budget of 100,000"):
        t.mark_ranges(np.arange(0, 1 << 24, 1 << 16), np.arange(0, 1 << 24, 1 << 16) + 3)
    assert len(t) == 10 and t.memory().modeled_bytes == HEAD + 4


def test_check_catches_a_non_canonical_container():
    t = Roaring(1000)
    t.mark_ranges([0], [500])
    t.canonicalize = lambda: None                        # skip the repair
    t.blocks[0] = BitMap(array.array("I", range(500)), optimize=False)  # 1-run array
    with pytest.raises(AssertionError, match="non-canonical"):
        t.check()


def _bitmap_state(t):
    """What check() and memory() must not change: serialized bytes and container stats."""
    return ({h: bm.serialize() for h, bm in t.blocks.items()},
            {h: bm.get_statistics() for h, bm in t.blocks.items()})


@pytest.mark.parametrize("build", [
    lambda t: t.mark_ranges([7], [10]),                  # run built, tie: canonical array
    lambda t: t.mark(np.arange(100, 400)),               # array built, canonical run
    lambda t: t.mark(np.arange(0, 20_000)),              # bitset built, canonical run
    lambda t: (t.mark_ranges([(1 << 32) - 5], [(1 << 32) + 3]),   # two 2^32 blocks
               t.mark(np.arange(1 << 33, (1 << 33) + 300))),
    lambda t: (t.mark_ranges([0], [100]), t.unmark_ranges([0], [100])),  # emptied
], ids=["tie", "array-to-run", "bitset-to-run", "blocks", "emptied"])
def test_check_and_memory_are_read_only(build):
    # check() and memory() used to run run_optimize on the live bitmap
    t = Roaring((1 << 33) + (1 << 20))
    build(t)
    before = _bitmap_state(t)
    runs = [(s.tolist(), e.tolist()) for s, e in t.extents()]
    s = np.array([x for r in runs for x in r[0]], np.int64)
    e = np.array([x for r in runs for x in r[1]], np.int64)
    t.check()
    assert _bitmap_state(t) == before
    m = t.memory()
    assert _bitmap_state(t) == before
    assert m.modeled_bytes == t.memory().modeled_bytes == Roaring.estimate(s, e, t.max_pfn)
    assert _bitmap_state(t) == before
