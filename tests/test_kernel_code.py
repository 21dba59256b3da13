"""The emulations answer to the kernel's own code: per-level node counts of
``xarray``, ``xarray-multi``, ``ida``, ``kvm`` (both XArrays) and, for
in-order stores, ``maple`` equal those of their ``@kernel`` twins
(trackers.kernel_code), which run lib/xarray.c, lib/idr.c and
lib/maple_tree.c themselves.

The twins' breakdowns carry the emulations' labels, so equal breakdowns are
equal node counts level by level.  Skipped, with the reason, where the
kernel's code is not built (tests/conftest.py builds it when it can).
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trackers
import trackers.linux as linux
from trackers import kernel, registry
from trackers.events import (GMEM_BIND, GMEM_UNBIND, KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED,
                             make_rows)
from trackers.maple import level_node_counts

needs_kernel = pytest.mark.skipif(not trackers.KERNEL_TRACKERS,
                                  reason=f"kernel code unavailable: {trackers.KERNEL_UNAVAILABLE}")

TWINS = ["xarray", "xarray-multi", "ida", "kvm"]
EXAMPLES = 30                    # per twin: every update of a twin waits for RCU frees
#: the fast subset's examples of the same properties (-m "not slow"); the
#: full EXAMPLES run is slow
EXAMPLE_RUNS = [pytest.param(EXAMPLES, marks=pytest.mark.slow, id="full"),
                pytest.param(5, id="smoke")]


def pair(name, max_pfn):
    return (trackers.get_tracker(name, max_pfn=max_pfn),
            trackers.get_tracker(f"{name}@kernel", max_pfn=max_pfn))


def runs(t):
    return [(int(a), int(b)) for s, e in t.extents() for a, b in zip(s, e)]


def assert_same(emu, twin):
    m, k = emu.memory(), twin.memory()
    assert k.breakdown == m.breakdown, (k.breakdown, m.breakdown)
    assert k.modeled_bytes == m.modeled_bytes and k.scan_loads == m.scan_loads
    assert runs(twin) == runs(emu) and len(twin) == len(emu)
    twin.check()
    emu.check()


# --------------------------------------------------------------------------
# the shapes: (max_pfn, [(mark?, starts, ends), ...])

def _ranges(pairs):
    return (np.array([a for a, _ in pairs], np.int64), np.array([b for _, b in pairs], np.int64))


def shapes(max_pfn: int):
    """Sets of small size over [0, max_pfn) in the shapes where the node
    count has its edges."""
    hi = max_pfn
    at = st.integers(0, hi - 1)
    length = st.integers(1, 300)

    def clip(pairs):
        return [(min(a, hi - 1), min(a + n, hi)) for a, n in pairs]

    return st.one_of(
        st.just([(0, 1)]),                                           # lone index 0
        st.just([(0, 64)]), st.just([(64, 65)]), st.just([(4095, 4098)]),
        st.integers(1, 5000).map(lambda n: [(0, min(n, hi))]),       # dense from 0
        st.lists(at, min_size=1, max_size=40).map(
            lambda ps: [(p, p + 1) for p in ps]),                    # scattered pages
        st.lists(st.integers(0, hi // 512 - 1), min_size=1, max_size=6).map(
            lambda ks: [(k * 512, k * 512 + 512) for k in ks]),      # 2 MiB-aligned
        st.lists(st.tuples(at, length), min_size=1, max_size=8).map(clip),   # unaligned
        st.lists(st.tuples(st.integers(1, 5000), length), min_size=1, max_size=5).map(
            lambda ps: clip([(hi - d, n) for d, n in ps])),          # near the top: 2^31, 2^32
    )


def histories(max_pfn: int):
    """A mark of one shape, then partial unmarks and marks of others."""
    step = st.tuples(st.booleans(), shapes(max_pfn))
    return st.tuples(shapes(max_pfn), st.lists(step, max_size=3)).map(
        lambda h: [(True, h[0])] + list(h[1]))


def replay(name, max_pfn, history):
    emu, twin = pair(name, max_pfn)
    for mark, pairs in history:
        for t in (emu, twin):
            (t.mark_ranges if mark else t.unmark_ranges)(*_ranges(pairs))
    return emu, twin


SPACES = {"xarray": [1 << 20, 1 << 31, (1 << 32) + 4096],
          "xarray-multi": [1 << 20, 1 << 31, (1 << 32) + 4096],
          "ida": [1 << 20, 1 << 31],                  # ids stop at INT_MAX
          "kvm": [1 << 20, 1 << 31, (1 << 32) + 4096]}


@needs_kernel
@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("examples", EXAMPLE_RUNS)
def test_node_counts_equal_the_kernels(name, examples):
    @settings(max_examples=examples, deadline=None)
    @given(data=st.data())
    def check(data):
        max_pfn = data.draw(st.sampled_from(SPACES[name]))
        emu, twin = replay(name, max_pfn, data.draw(histories(max_pfn)))
        assert_same(emu, twin)
        s, e = (np.array(x, np.int64) for x in zip(*runs(emu))) if len(emu) else \
            (np.empty(0, np.int64),) * 2
        fresh = trackers.get_tracker(f"{name}@kernel", max_pfn=max_pfn)
        fresh.mark_ranges(s, e)                # estimate(): the set built at once
        assert type(twin).estimate(s, e, max_pfn) == fresh.memory().modeled_bytes
        twin.close()
        fresh.close()
    check()


@needs_kernel
@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("history", [
    [(True, [(0, 1)])],                                   # index 0 alone
    [(True, [(0, 64)])], [(True, [(64, 65)])], [(True, [(4095, 4098)])],
    [(True, [(0, 1 << 16)])],                             # dense: 1024 + 16 + 1 xa_nodes
    [(True, [(512 * 7, 512 * 8), (512 * 900, 512 * 901)])],   # 2 MiB-aligned
    [(True, [(5, 700)]), (False, [(6, 699)])],           # mark, then unmark the middle
    [(True, [(0, 2)]), (False, [(1, 2)])],               # back to index 0 alone
    [(True, [(0, 1), (5000, 5001)]), (False, [(5000, 5001)])],
    [(True, [(60, 1100)]), (False, [(63, 64), (100, 1024)]), (True, [(64, 70)])],
    [(True, [((1 << 31) - 9, 1 << 31)])],                # the last ids below INT_MAX + 1
])
def test_hand_picked_histories(name, history):
    emu, twin = replay(name, 1 << 31, history)
    assert_same(emu, twin)


@needs_kernel
@pytest.mark.parametrize("name", ["xarray", "xarray-multi", "kvm"])
def test_near_2_32(name):
    top = 1 << 32
    emu, twin = replay(name, top + 512, [(True, [(top - 3, top + 2), (top - 4100, top - 4000)]),
                                         (False, [(top - 1, top)])])
    assert_same(emu, twin)


# --------------------------------------------------------------------------
# kvm: the same events

def _events(rows):
    op, td, gs, ge, ps = (np.array(c) for c in zip(*rows))
    pe = np.where(ps >= 0, ps + (ge - gs), -1)
    return make_rows(op, 7, td, ps, pe, gs, ge)


@st.composite
def kvm_batches(draw):
    """Batches of KVM attribute and guest_memfd rows for two TDs, GFN 0 often."""
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        td = draw(st.sampled_from([3, 4]))
        g = draw(st.one_of(st.just(0), st.integers(0, 70), st.integers(0, 5000)))
        n = draw(st.one_of(st.just(1), st.integers(1, 100)))
        op = draw(st.sampled_from([KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED, GMEM_BIND,
                                   GMEM_UNBIND]))
        pfn = (td - 3) * 10_000 + g if op == GMEM_BIND else -1
        rows.append((op, td, g, g + n, pfn))
    return _events(rows)


@needs_kernel
@pytest.mark.parametrize("examples", EXAMPLE_RUNS)
def test_kvm_follows_the_same_events(examples):
    @settings(max_examples=examples, deadline=None)
    @given(batches=st.lists(kvm_batches(), min_size=1, max_size=3))
    def check(batches):
        emu, twin = pair("kvm", 1 << 20)
        for ev in batches:
            emu.apply(ev)
            twin.apply(ev)
        assert_same(emu, twin)
        twin.close()
    check()


@needs_kernel
@pytest.mark.parametrize("rows, attr_nodes", [
    ([(KVM_SET_ATTR_PRIVATE, 3, 0, 1, -1)], 1),              # xa_reserve's node
    ([(KVM_SET_ATTR_PRIVATE, 3, 0, 1, -1), (KVM_SET_ATTR_SHARED, 3, 5, 9, -1)], 1),
    ([(KVM_SET_ATTR_PRIVATE, 3, 0, 2, -1), (KVM_SET_ATTR_SHARED, 3, 1, 2, -1)], 0),
    ([(KVM_SET_ATTR_PRIVATE, 3, 7, 8, -1), (KVM_SET_ATTR_PRIVATE, 3, 0, 1, -1),
      (KVM_SET_ATTR_SHARED, 3, 7, 8, -1)], 0),
])
def test_kvm_gfn_0_alone(rows, attr_nodes):
    emu, twin = pair("kvm", 1 << 20)
    for t in (emu, twin):
        t.apply(_events(rows))
    assert_same(emu, twin)
    assert twin.memory().breakdown["mem_attr_array xa_node L0"] == attr_nodes * kernel.XA_NODE_BYTES


# --------------------------------------------------------------------------
# maple: in-order stores

@needs_kernel
@pytest.mark.parametrize("lead", [True, False])
def test_maple_model_is_the_kernels_in_order_growth(lead):
    # every n in 1..1500 appended one extent at a time to the kernel's tree
    rng = np.random.default_rng(3)
    n_max = 1500
    lens, gaps = rng.integers(1, 8, n_max), rng.integers(1, 8, n_max)
    s = np.cumsum(lens + gaps) - lens - gaps + (9 if lead else 0)
    e = s + lens
    with linux.KernelMaple() as mt:
        for n in range(1, n_max + 1):
            mt.store_range(s[n - 1:n], e[n - 1:n])
            assert mt.levels().tolist() == level_node_counts(n, lead), n


@needs_kernel
@pytest.mark.parametrize("n, levels", [(1000, [126, 9, 1]), (10_000, [1251, 84, 6, 1]),
                                       (65_536, [8193, 547, 37, 3, 1]),
                                       (100_000, [12501, 834, 56, 4, 1])])
def test_maple_in_order_counts_equal_the_kernels(n, levels):
    s = 7 + 5 * np.arange(n, dtype=np.int64)
    emu, twin = pair("maple", 1 << 22)
    for t in (emu, twin):
        t.mark_ranges(s, s + 2)
    assert level_node_counts(n, True) == levels
    assert_same(emu, twin)
    assert twin.memory().breakdown == {
        ("maple_range_64 leaf" if i == 0 else f"maple_range_64 L{i}"): c * kernel.MAPLE_NODE_BYTES
        for i, c in enumerate(levels)}


@needs_kernel
def test_maple_lone_zero_is_ma_root():
    emu, twin = replay("maple", 100, [(True, [(0, 1)])])
    assert twin.memory().modeled_bytes == 0
    assert_same(emu, twin)


@needs_kernel
def test_maple_differential_updates_stay_in_order():
    # out-of-order marks and unmarks: the twin rebuilds in order, so its
    # counts stay the model's
    emu, twin = replay("maple", 1 << 20, [(True, [(5000, 6000), (100, 200)]),
                                          (True, [(10, 20), (7000, 7001)]),
                                          (False, [(150, 160), (5500, 5501)]),
                                          (True, [(6000, 6001)])])
    assert_same(emu, twin)


@needs_kernel
def test_maple_random_order_holds_more_nodes():
    # trackers/maple.py's figure: random-order stores of the same extents
    # leave 1.18-1.26x the in-order nodes at 1000 extents
    n = 1000
    for seed in range(4):
        rng = np.random.default_rng(seed)
        s = 10 + 4 * np.sort(rng.choice(1 << 30, n, replace=False))
        e = s + rng.integers(1, 4, n)
        order = rng.permutation(n)
        with linux.KernelMaple() as mt:
            mt.store_range(s[order], e[order])
            assert 1.18 <= mt.nodes() / sum(level_node_counts(n, True)) <= 1.26


# --------------------------------------------------------------------------
# IDA: ids stop at INT_MAX

@needs_kernel
def test_ida_refuses_pfns_from_2_31():
    msg = r"max_pfn 2147483649 is over INT_MAX \+ 1 = 2147483648: .* beyond 8 TiB"
    with pytest.raises(trackers.NotRepresentable, match=msg):
        trackers.get_tracker("ida@kernel", max_pfn=2**31 + 1)
    with pytest.raises(trackers.NotRepresentable, match=msg):
        trackers.ALL_TRACKERS["ida@kernel"].estimate([0], [1], 2**31 + 1)
    t = trackers.get_tracker("ida@kernel", max_pfn=2**31)
    with pytest.raises(ValueError, match="pfn 2147483648 is out of range"):
        t.mark([2**31])
    t.mark([2**31 - 1])                                 # INT_MAX: the last id
    assert runs(t) == [(2**31 - 1, 2**31)]
    with linux.KernelIda() as ida:                      # the kernel's own answer
        with pytest.raises(ValueError, match=r"id 2147483648 is above INT_MAX \(2147483647\)"):
            ida.mark([2**31])


# --------------------------------------------------------------------------
# what the twins report

@needs_kernel
@pytest.mark.parametrize("name", list(trackers.KERNEL_TRACKERS))
def test_twin_reports_the_kernels_own_counts(name):
    cls = trackers.ALL_TRACKERS[name]
    assert name == f"{cls.twin}@kernel" and cls.twin in trackers.TRACKERS
    assert cls.option == trackers.TRACKERS[cls.twin].option + " (kernel code)"
    before = linux.live_objects()
    t = cls(1 << 20)
    t.mark_ranges([0, 5000, 70_000], [3, 9000, 70_100])
    m = t.memory()
    assert re.match(rf"kernel code v{re.escape(linux.version())} \(userspace\)", m.notes)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", linux.version())
    live = {k: v - before[k] for k, v in linux.live_objects().items()}
    nodes = m.scan_loads - m.breakdown.get("ida_bitmap", 0) // kernel.IDA_BITMAP_BYTES
    if cls.twin == "bitmap":
        assert m.host_bytes == m.modeled_bytes and m.scan_loads == 0
    elif cls.twin == "maple":
        assert live["maple_node"] == nodes == m.modeled_bytes // kernel.MAPLE_NODE_BYTES
    else:
        assert live["xa_node"] == nodes
        assert live["kmalloc"] == m.breakdown.get("ida_bitmap", 0) // kernel.IDA_BITMAP_BYTES
    if cls.twin != "bitmap":                     # the harness's objects times their sizes
        assert m.host_bytes == sum(n * b for n, b in (
            (live["xa_node"], kernel.XA_NODE_BYTES), (live["maple_node"],
             kernel.MAPLE_NODE_BYTES), (live["kmalloc"], kernel.IDA_BITMAP_BYTES)))
        assert m.host_bytes == m.modeled_bytes    # a node is a malloc of its struct
    t.close()
    assert linux.live_objects() == before        # close() frees the kernel structure
    with pytest.raises(ValueError, match="closed"):
        t.mark([1])
    t.close()                                    # idempotent


@needs_kernel
@pytest.mark.parametrize("name", list(trackers.KERNEL_TRACKERS))
def test_twin_refuses_a_set_over_its_budget(name):
    cls = trackers.ALL_TRACKERS[name]
    if cls.twin == "bitmap":
        with pytest.raises(trackers.MemoryBudgetError, match=r"budget of 4,096 bytes"):
            cls(1 << 20, budget_bytes=4096)
        return
    t = cls(1 << 20, budget_bytes=20_000)
    t.mark_ranges([0], [5])
    before = (runs(t), t.memory().modeled_bytes)
    s = np.arange(1024, 1 << 20, 1024) + 100       # a page per 4 MiB: a node, a leaf each
    need = cls.estimate(np.r_[0, s], np.r_[5, s + 1], 1 << 20)
    with pytest.raises(trackers.MemoryBudgetError,
                       match=rf"needs {need:,} host bytes .* budget of 20,000 bytes"):
        t.mark_ranges(s, s + 1)
    assert (runs(t), t.memory().modeled_bytes) == before
    t.check()


# --------------------------------------------------------------------------
# the registry (runs with or without the kernel's code)

def test_registry_lists_the_twins_in_the_emulations_order():
    assert list(trackers.ALL_TRACKERS) == [*trackers.TRACKERS, *trackers.KERNEL_TRACKERS]
    if trackers.KERNEL_TRACKERS:
        assert trackers.KERNEL_UNAVAILABLE == ""
        twins = [c.twin for c in trackers.KERNEL_TRACKERS.values()]
        assert twins == [n for n in trackers.TRACKERS if n in twins]
        assert twins == ["bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm"]
    else:
        assert trackers.KERNEL_UNAVAILABLE


def test_an_unavailable_twin_names_the_reason(monkeypatch):
    monkeypatch.setattr(registry, "ALL_TRACKERS", dict(registry.TRACKERS))
    monkeypatch.setattr(registry, "KERNEL_UNAVAILABLE", "no kernel source at /nowhere")
    with pytest.raises(ValueError, match=r"tracker 'xarray@kernel' runs the kernel's own "
                                         r"code, which is not available here: no kernel "
                                         r"source at /nowhere"):
        trackers.get_tracker("xarray@kernel", max_pfn=10)
    with pytest.raises(ValueError, match=r"unknown tracker 'roaring@kernel'; known: bitmap"):
        trackers.get_tracker("roaring@kernel", max_pfn=10)


@needs_kernel
@pytest.mark.parametrize("name", ["xarray-multi", "maple", "xarray", "ida"])
def test_twin_replays_a_scenario_to_the_emulations_set(name):
    """apply() nests mark/unmark calls: each must see the set as it is then
    (a stale cached scan once left 16,384 extra pages in the twins)."""
    from trackers.extents import from_tracker
    from trackers.workloads import scenario
    wl = scenario("tiny", 0)
    emu = trackers.get_tracker(name, wl.max_pfn)
    twin = trackers.get_tracker(f"{name}@kernel", wl.max_pfn)
    for batch in wl.batches:
        emu.apply(batch)
        twin.apply(batch)
    a, b = from_tracker(emu), from_tracker(twin)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@needs_kernel
@pytest.mark.parametrize("collector", ["allocations", "another thread"])
@pytest.mark.parametrize("name", ["xarray@kernel", "ida@kernel", "kvm@kernel"])
def test_live_objects_are_the_trackers_own_while_garbage_is_collected(name, collector):
    """A tracker's live objects are the harness's counts before and after
    each update; other trackers dropped in reference cycles free their kernel
    objects when Python's collector runs -- started by an update's own
    allocations, or by another thread's gc.collect() (a Dask worker's event
    loop) while this one is in a kernel call.  Their frees are not the
    update's: every check() still finds live == walked."""
    import gc
    import threading
    rng = np.random.default_rng(9)
    threshold = gc.get_threshold()
    stop = threading.Event()
    other = threading.Thread(target=lambda: [gc.collect(0) or stop.wait(0.0005)
                                             for _ in iter(stop.is_set, True)])
    if collector == "allocations":
        gc.set_threshold(50)
    else:
        other.start()
    try:
        for _ in range(10):
            dropped = trackers.get_tracker(name, max_pfn=1 << 16)
            dropped.mark_ranges([0], [5000])
            dropped.cycle = dropped                  # freed by the collector only
            del dropped
            t = trackers.get_tracker(name, max_pfn=1 << 16)
            for _ in range(4):
                s = np.sort(rng.integers(0, 60000, 3))
                t.mark_ranges(s, s + 300)
                s = np.sort(rng.integers(0, 60000, 3))
                t.unmark_ranges(s, s + 200)
                t.check()
            t.close()
    finally:
        stop.set()
        if other.is_alive():
            other.join()
        gc.set_threshold(*threshold)
        gc.collect()
