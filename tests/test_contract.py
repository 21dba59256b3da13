"""The contract's rules that hold for every tracker -- the emulations and their
@kernel twins (ALL_TRACKERS; the twins only where the kernel's code is built):
bad input, budgets, streaming."""

import re

import numpy as np
import pytest

import trackers
import trackers.linux as linux
from trackers import kernel
from trackers.base import EMULATION, MemoryBudgetError, coalesce_batches, expand_extents
from trackers.pageflags import STRUCT_PAGES_ENGINE
from trackers.extents import normalize_extents

NAMES = list(trackers.ALL_TRACKERS)
#: NAMES for the input checks, which live in trackers.base.Tracker and which a
#: twin reaches through super(): the twins' runs are slow (each twin waits for
#: RCU frees), the fast subset checks the emulations
INPUT_NAMES = [n if n in trackers.TRACKERS else pytest.param(n, marks=pytest.mark.slow)
               for n in NAMES]
MAX_PFN = 5000


def twin(name):
    """The emulation a tracker is (itself) or is the @kernel twin of."""
    return getattr(trackers.ALL_TRACKERS[name], "twin", name)


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


@pytest.mark.parametrize("name", INPUT_NAMES)
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
    cls = trackers.ALL_TRACKERS[name]
    with pytest.raises(ValueError, match="max_pfn 0 must be positive"):
        cls(0)
    with pytest.raises(TypeError, match="max_pfn must be an int"):
        cls(12.0)


@pytest.mark.parametrize("name", NAMES)
def test_estimate_rejects_bad_sets(name):
    cls = trackers.ALL_TRACKERS[name]
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


# --------------------------------------------------------------------------
# Bad input that used to pass silently.  Every entry point,
# estimate() included, raises naming the value and the limit, before any change.

LIMIT = kernel.MAX_PHYS_PFN                     # 2^40 PFNs = 2^52 bytes
def runs(t):
    """All extents, whatever the batching."""
    got = list(t.extents())
    return ([int(x) for b in got for x in b[0]], [int(x) for b in got for x in b[1]])


SHAPED = {"2d": np.array([[10, 20], [30, 40]]), "3d": np.arange(8).reshape(2, 2, 2)}


@pytest.mark.parametrize("name", INPUT_NAMES)
@pytest.mark.parametrize("method", ["mark", "unmark", "contains", "mark_ranges",
                                    "unmark_ranges", "estimate"])
@pytest.mark.parametrize("dims", SHAPED)
def test_arrays_of_two_or_more_dimensions_are_refused(name, method, dims):
    # an (n, 2) array of ranges handed to mark() used to mark its flattened PFNs
    arr = SHAPED[dims]
    t = built(name)
    before = snapshot(t)
    msg = re.escape(f"must be a 1-D array or one int, got an array of shape {arr.shape}")
    with pytest.raises(ValueError, match=msg):
        if method == "estimate":
            type(t).estimate(arr, arr + 1, MAX_PFN)
        elif method.endswith("ranges"):
            getattr(t, method)(arr, arr + 1)
        else:
            getattr(t, method)(arr)
    assert snapshot(t) == before


@pytest.mark.parametrize("name", NAMES)
def test_zero_dimensional_arrays_are_one_pfn(name):
    t = trackers.get_tracker(name, max_pfn=MAX_PFN)
    t.mark(np.array(7))
    t.mark_ranges(np.array(100), np.array(103))
    assert t.contains(np.array(7)).tolist() == [True]
    assert runs(t) == ([7, 100], [8, 103]) and len(t) == 4


BAD_MAX_PFN = [
    (0, ValueError, rf"max_pfn 0 must be positive: .* 1 <= max_pfn <= {LIMIT}"),
    (-1, ValueError, rf"max_pfn -1 must be positive: .* 1 <= max_pfn <= {LIMIT}"),
    (1.5, TypeError, r"max_pfn must be an int, got float 1\.5"),
    (True, TypeError, r"max_pfn must be an int, got bool True"),
    ("4096", TypeError, r"max_pfn must be an int, got str '4096'"),
    (2**64, ValueError, rf"max_pfn {2**64} is beyond what x86-64 can address: at most {LIMIT}"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("max_pfn,exc,msg", BAD_MAX_PFN, ids=[repr(b[0]) for b in BAD_MAX_PFN])
def test_estimate_validates_max_pfn_like_the_constructor(name, max_pfn, exc, msg):
    cls = trackers.ALL_TRACKERS[name]
    with pytest.raises(exc, match=msg):
        cls.estimate([0], [1], max_pfn)
    with pytest.raises(exc, match=msg):
        cls(max_pfn)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("max_pfn", [2**63 - 1, 2**63 - 8, LIMIT + 1])
def test_max_pfn_is_bounded_by_what_x86_64_addresses(name, max_pfn):
    # near 2^63, int64 PFN arithmetic overflowed (xarray segfaulted, xarray-multi hung)
    cls = trackers.ALL_TRACKERS[name]
    msg = (rf"max_pfn {max_pfn} is beyond what x86-64 can address: at most {LIMIT} PFNs "
           r"\(2\^52 bytes of physical address, MAX_PHYSMEM_BITS 52")
    with pytest.raises(ValueError, match=msg):
        cls(max_pfn)
    with pytest.raises(ValueError, match=msg):
        cls.estimate([0], [1], max_pfn)


#: why a tracker cannot be built or estimated over 2^32 PFNs and more
NOT_REPRESENTABLE_BEYOND_2_31 = {
    "ida": "the IDA's ids stop at INT_MAX: it refuses hosts beyond 2^31 PFNs (8 TiB), "
           "NotRepresentable (test_ida_refuses_hosts_beyond_2_31_pfns)"}


def representable_at(names, max_pfn):
    """``names`` as parameters, those whose structure cannot hold ``max_pfn``
    PFNs skipped with the reason."""
    return [pytest.param(n, marks=pytest.mark.skip(
                reason=f"{n}: {NOT_REPRESENTABLE_BEYOND_2_31[twin(n)]}"))
            if twin(n) in NOT_REPRESENTABLE_BEYOND_2_31 and max_pfn > 2**31 else n
            for n in names]


@pytest.mark.parametrize("name", [n for n in NAMES if twin(n) in NOT_REPRESENTABLE_BEYOND_2_31])
def test_ida_refuses_hosts_beyond_2_31_pfns(name):
    cls = trackers.ALL_TRACKERS[name]
    msg = (r"max_pfn 2147483649 is over INT_MAX \+ 1 = 2147483648: .* cannot track PFNs of "
           r"hosts beyond 8 TiB")
    for refused in (lambda: cls(2**31 + 1), lambda: cls.estimate([0], [1], 2**31 + 1),
                    lambda: cls.estimate([LIMIT - 8], [LIMIT], LIMIT)):
        with pytest.raises(trackers.NotRepresentable, match=msg.replace("2147483649", r"\d+")):
            refused()
    t = cls(2**31)                                  # PFNs up to INT_MAX: held
    t.mark_ranges([2**31 - 8], [2**31])
    assert runs(t) == ([2**31 - 8], [2**31])
    assert t.memory().modeled_bytes == cls.estimate([2**31 - 8], [2**31], 2**31)


@pytest.mark.parametrize("name", representable_at(NAMES, LIMIT))
def test_the_last_pfn_x86_64_addresses(name):
    assert LIMIT == 1 << 40 == (1 << 52) >> 12
    cls = trackers.ALL_TRACKERS[name]
    est = cls.estimate([LIMIT - 8], [LIMIT], LIMIT)
    try:
        t = cls(LIMIT)
    except MemoryBudgetError:                  # bitmap, pageflags: dense over 2^40 PFNs
        return
    t.mark_ranges([LIMIT - 8], [LIMIT])
    assert runs(t) == ([LIMIT - 8], [LIMIT]) and len(t) == 8
    assert [c.tolist() for c in t.pfns(chunk=5)] == [list(range(LIMIT - 8, LIMIT - 3)),
                                                     list(range(LIMIT - 3, LIMIT))]
    assert t.memory().modeled_bytes == est
    t.check()


BAD_BUDGET = [
    (1.5, TypeError, r"budget_bytes must be a positive int of bytes, got float 1\.5"),
    (True, TypeError, r"budget_bytes must be a positive int of bytes, got bool True"),
    (0, ValueError, r"budget_bytes 0 must be positive: a memory budget is an int of bytes >= 1"),
    (-5, ValueError, r"budget_bytes -5 must be positive: a memory budget is an int of bytes >= 1"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget,exc,msg", BAD_BUDGET, ids=[repr(b[0]) for b in BAD_BUDGET])
def test_budget_must_be_a_positive_int(name, budget, exc, msg):
    with pytest.raises(exc, match=msg):
        trackers.get_tracker(name, max_pfn=MAX_PFN, budget_bytes=budget)


@pytest.mark.parametrize("value", ["1e9", "8G", "0", "-5", "1.5", "lots"])
def test_budget_variable_is_named_when_malformed(monkeypatch, value):
    monkeypatch.setenv("TRACKERS_MEMORY_BUDGET", value)
    msg = (rf"\$TRACKERS_MEMORY_BUDGET={re.escape(repr(value))} is not a positive integer "
           rf"of bytes; set it to digits only, e\.g\. 8589934592 for 8 GiB")
    with pytest.raises(ValueError, match=msg):
        trackers.get_tracker("xarray", max_pfn=MAX_PFN)


def test_budget_variable_in_bytes(monkeypatch):
    monkeypatch.setenv("TRACKERS_MEMORY_BUDGET", "123456789")
    assert trackers.get_tracker("xarray", max_pfn=MAX_PFN).budget_bytes == 123_456_789
    monkeypatch.setenv("TRACKERS_MEMORY_BUDGET", "")
    assert trackers.get_tracker("xarray", max_pfn=MAX_PFN).budget_bytes == 8 << 30


BAD_CHUNK = [
    (-1, ValueError, r"chunk -1 must be positive: pfns\(\) yields chunks of >= 1 page"),
    (0, ValueError, r"chunk 0 must be positive: pfns\(\) yields chunks of >= 1 page"),
    (2.5, TypeError, r"chunk must be a positive int of pages, got float 2\.5"),
    (True, TypeError, r"chunk must be a positive int of pages, got bool True"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk,exc,msg", BAD_CHUNK, ids=[repr(b[0]) for b in BAD_CHUNK])
def test_pfns_validates_chunk_when_called(name, chunk, exc, msg):
    t = built(name)
    with pytest.raises(exc, match=msg):
        t.pfns(chunk=chunk)                    # at the call, not at the first next()


I64 = r"the int64 limit 9223372036854775807"
HUGE = [
    ("mark", (2**64,), rf"pfn value {2**64} exceeds {I64}"),
    ("mark", ([5, 2**64],), rf"pfn value {2**64} exceeds {I64}"),
    ("mark", (np.uint64(2**64 - 1),), rf"pfn value {2**64 - 1} exceeds {I64}"),
    ("mark", (np.array([3, 2**63 + 5], np.uint64),), rf"pfn value {2**63 + 5} exceeds {I64}"),
    ("unmark", (-2**63 - 1,),
     rf"pfn value {-2**63 - 1} is below the int64 limit -9223372036854775808"),
    ("contains", ([3, -2**64],),
     rf"pfn value {-2**64} is below the int64 limit -9223372036854775808"),
    ("mark_ranges", ([0], [2**64]), rf"end value {2**64} exceeds {I64}"),
    ("unmark_ranges", ([2**70], [2**71]), rf"start value {2**70} exceeds {I64}"),
]


@pytest.mark.parametrize("name", INPUT_NAMES)
@pytest.mark.parametrize("method,args,msg", HUGE, ids=[f"{h[0]}-{i}" for i, h in enumerate(HUGE)])
def test_ints_beyond_int64_are_named(name, method, args, msg):
    t = built(name)
    before = snapshot(t)
    with pytest.raises(ValueError, match=msg):
        getattr(t, method)(*args)
    assert snapshot(t) == before


def _loads_from_breakdown(name, mem):
    """The scan's dependent loads counted from the breakdown: one per node."""
    name = twin(name)
    if name in ("bitmap", "pageflags"):
        return 0                                   # flat arrays, read streaming
    if name == "roaring":
        return mem.breakdown["container structs"] // kernel.ROARING_CONTAINER_STRUCT_BYTES
    if name == "maple":
        return mem.modeled_bytes // kernel.MAPLE_NODE_BYTES
    bitmaps = mem.breakdown.get("ida_bitmap", 0)
    return (mem.modeled_bytes - bitmaps) // kernel.XA_NODE_BYTES \
        + bitmaps // kernel.IDA_BITMAP_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_scan_loads_count_one_load_per_node(name):
    t = trackers.get_tracker(name, max_pfn=1 << 22)
    t.mark_ranges([0, 5000, 1 << 20], [3, 9000, (1 << 20) + 4096])
    t.mark(np.arange(1 << 21, (1 << 21) + 64 * 300, 300))
    mem = t.memory()
    assert mem.scan_loads == _loads_from_breakdown(name, mem)
    assert (mem.scan_loads > 0) == (twin(name) not in ("bitmap", "pageflags"))


#: conversions into free PFNs of built()'s set: 4 KiB pages and free 2 MiB-aligned slots
CONVERSIONS = {"4KiB": ([30, 2000, 4500], [31, 2001, 4501]),
               "2MiB": ([2048, 3584], [2560, 4096])}


def run_list(batches):
    return [(s.tolist(), e.tolist()) for s, e in batches]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", list(CONVERSIONS))
def test_conversion_calls_change_the_set_as_the_contract_does(name, size):
    """conversion_calls(), what bench-core times, mark and unmark exactly the
    pages mark_ranges/unmark_ranges would in the structure they change (its
    extents()), one call over every conversion or one per conversion."""
    s, e = (np.array(x, np.int64) for x in CONVERSIONS[size])
    t, ref = built(name), built(name)
    held = run_list(t.extents())
    calls = t.conversion_calls()
    assert isinstance(calls.calls, str) and calls.calls
    ref.mark_ranges(s, e)
    if calls.batched:
        calls.mark(s, e)
    else:
        for i in range(s.size):
            calls.mark(s[i:i + 1], e[i:i + 1])
    assert run_list(calls.extents()) == run_list(ref.extents()) != held
    calls.unmark(s, e)
    assert run_list(calls.extents()) == held
    calls.close()


@pytest.mark.parametrize("name", NAMES)
def test_conversion_calls_name_their_engine_and_whether_they_bound(name):
    """The @kernel twins and pageflags convert in C, one call of every
    conversion (the kernel's code; struct pages laid out in C); the other
    emulations one Python call per conversion, an upper bound, roaring
    saying why it cannot batch."""
    calls = built(name).conversion_calls()
    try:
        if name in trackers.KERNEL_TRACKERS:
            assert calls.batched and calls.engine == linux.engine_label()
        elif name == "pageflags" and linux.available()[0]:
            assert calls.batched and calls.engine == STRUCT_PAGES_ENGINE
        else:
            assert calls.upper_bound and calls.engine == EMULATION == "emulation"
        if name == "roaring":
            assert calls.calls == ("mark_ranges / unmark_ranges per call (the contract): "
                                   "pyroaring has no batch call of add_range / remove_range")
    finally:
        calls.close()
