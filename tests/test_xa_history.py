"""Histories: every XArray-family emulation keeps its ``@kernel`` twin's
shape after any sequence of marks and unmarks, level by level.

A differential fuzz of seeded numpy histories (mark, unmark, mark_ranges,
unmark_ranges; single pages, multi-page ranges, aligned blocks, pages near
the top, repeats of earlier steps) for ``xarray``, ``xarray-multi``,
``ida`` and ``kvm`` (direct marks, and KVM attribute and guest_memfd rows
for two TDs), at small sizes (1 to 4,096 PFNs, where the height and the
xas_shrink decisions are closest to the edges) and at 2^20: per tracker 10
histories of 12 steps at each of 17 small sizes and 10 of 10 steps at 2^20,
and 40 histories of 8 KVM event batches.  After every step the emulation's
per-level breakdown, its scan and its count equal the twin's (lib/xarray.c,
lib/idr.c built in userspace).

The twins' updates count the harness's live objects, which waits an RCU
grace period per update (trackers.kernel_code); the fuzz compares shapes,
not host bytes, so it counts none (``no_live_count``) and runs in seconds.
"""

import numpy as np
import pytest

import trackers
import trackers.linux as linux
from trackers.events import (GMEM_BIND, GMEM_UNBIND, KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED,
                             make_rows)
from trackers.extents import from_tracker

needs_kernel = pytest.mark.skipif(not trackers.KERNEL_TRACKERS,
                                  reason=f"kernel code unavailable: {trackers.KERNEL_UNAVAILABLE}")

FAMILY = ["xarray", "xarray-multi", "ida", "kvm"]
SMALL = [1, 2, 3, 5, 63, 64, 65, 100, 127, 128, 129, 1000, 1023, 1024, 1025, 4095, 4096]
LARGE = 1 << 20
#: histories per (tracker, size) and steps per history
SMALL_HISTORIES, SMALL_STEPS = 10, 12
LARGE_HISTORIES, LARGE_STEPS = 10, 10
#: the alignments where xa_node and ida_bitmap boundaries lie
ALIGNS = np.array([64, 512, 1024, 4096, 1 << 18], np.int64)


@pytest.fixture
def no_live_count(monkeypatch):
    zero = dict.fromkeys(linux.live_objects(), 0)
    monkeypatch.setattr(linux, "live_objects", lambda: zero)


# --------------------------------------------------------------------------
# histories

def _pfn(rng, max_pfn, used):
    """A PFN: uniform, next to an alignment, at the top, or next to one used before."""
    kind = rng.choice(4, p=[0.4, 0.2, 0.15, 0.25])
    if kind == 3 and used:
        p = used[rng.integers(len(used))] + rng.integers(-1, 2)
    elif kind == 1:
        a = ALIGNS[rng.integers(ALIGNS.size)]
        p = (rng.integers(max_pfn) // a) * a + rng.integers(-2, 3)
    elif kind == 2:
        p = max_pfn - 1 - rng.integers(4)
    else:
        p = rng.integers(max_pfn)
    return int(min(max(p, 0), max_pfn - 1))


def _length(rng, max_pfn):
    """A range's length: mostly short against max_pfn, sometimes a node or a block."""
    kind = rng.choice(6, p=[0.3, 0.25, 0.1, 0.1, 0.2, 0.05])
    if kind == 0:
        return 1
    if kind == 1:
        return int(rng.integers(2, 9))
    if kind == 2:
        return int(rng.integers(56, 72))            # about one L0 node
    if kind == 3:
        return int(ALIGNS[rng.integers(ALIGNS.size)])
    if kind == 4:
        return int(rng.integers(1, max(2, min(max_pfn, 1 << 17) // 8)))
    return int(rng.integers(1, max(2, min(max_pfn, 1 << 17))))


def random_history(rng, max_pfn: int, steps: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``steps`` updates (op, starts, ends): ``mark``/``unmark`` take the
    starts as PFNs, ``mark_ranges``/``unmark_ranges`` the ranges.  A step
    repeats an earlier one, or part of it, one time in five."""
    used: list[int] = []
    done: list[tuple[np.ndarray, np.ndarray]] = []
    out = []
    for k in range(steps):
        op = ["mark", "unmark", "mark_ranges", "unmark_ranges"][
            rng.choice(4, p=[0.3, 0.2, 0.3, 0.2] if k else [0.5, 0, 0.5, 0])]
        if done and rng.random() < 0.2:            # a repeat: the same or a cut of it
            s, e = done[rng.integers(len(done))]
            if rng.random() < 0.5:
                e = np.maximum(s, e - rng.integers(0, 3, e.size))
        else:
            n = int(rng.integers(1, 9 if op in ("mark", "unmark") else 5))
            s = np.array([_pfn(rng, max_pfn, used) for _ in range(n)], np.int64)
            if op in ("mark", "unmark"):
                e = s + 1
            else:
                e = np.minimum(s + [_length(rng, max_pfn) for _ in range(n)], max_pfn)
        done.append((s, e))
        used.extend(int(x) for x in np.r_[s, e - 1] if 0 <= x < max_pfn)
        out.append((op, s, e))
    return out


def apply_step(t, op, s, e):
    if op in ("mark", "unmark"):
        getattr(t, op)(s)
    else:
        getattr(t, op)(s, e)


def _shape(t):
    m = t.memory()
    s, e = from_tracker(t)
    return m.breakdown, m.scan_loads, s.tolist(), e.tolist(), len(t)


def first_difference(name: str, max_pfn: int, history):
    """None if emulation and twin agree after every step of ``history``,
    else (step, emulation's shape, twin's shape)."""
    emu = trackers.get_tracker(name, max_pfn=max_pfn)
    twin = trackers.get_tracker(f"{name}@kernel", max_pfn=max_pfn)
    try:
        for k, step in enumerate(history):
            apply_step(emu, *step)
            apply_step(twin, *step)
            a, b = _shape(emu), _shape(twin)
            if a != b:
                return k, a, b
        emu.check()
        return None
    finally:
        twin.close()


def _show(history, k):
    return "\n".join(f"  {i}: {op} {s.tolist()} {e.tolist()}"
                     for i, (op, s, e) in enumerate(history[:k + 1]))


# --------------------------------------------------------------------------
# the fuzz

@needs_kernel
@pytest.mark.parametrize("name", FAMILY)
def test_histories_keep_the_kernels_shape(name, no_live_count):
    rng = np.random.default_rng(20_240_601 + FAMILY.index(name))
    cases = [(n, SMALL_STEPS) for n in SMALL for _ in range(SMALL_HISTORIES)]
    cases += [(LARGE, LARGE_STEPS)] * LARGE_HISTORIES
    for max_pfn, steps in cases:
        history = random_history(rng, max_pfn, steps)
        diff = first_difference(name, max_pfn, history)
        assert diff is None, (f"{name}, max_pfn {max_pfn}, step {diff[0]}:\n"
                              f"{_show(history, diff[0])}\nemulation {diff[1][:2]}\n"
                              f"twin      {diff[2][:2]}")


def random_kvm_rows(rng, steps: int):
    """Batches of KVM attribute and guest_memfd rows for TDs 3 and 4, GFN 0 often."""
    batches = []
    for _ in range(steps):
        n = int(rng.integers(1, 6))
        td = rng.choice([3, 4], n)
        top = [70, 5000, 70_000][rng.integers(3)]
        g = np.where(rng.random(n) < 0.3, 0, rng.integers(0, top, n))
        ln = np.where(rng.random(n) < 0.4, 1, rng.integers(1, 200, n))
        op = rng.choice([KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED, GMEM_BIND, GMEM_UNBIND], n)
        pfn = np.where(op == GMEM_BIND, (td - 3) * 100_000 + g, -1)
        batches.append(make_rows(op, 7, td, pfn, np.where(pfn >= 0, pfn + ln, -1), g, g + ln))
    return batches


@needs_kernel
def test_kvm_event_histories_keep_the_kernels_shape(no_live_count):
    rng = np.random.default_rng(7)
    for _ in range(40):
        emu, twin = (trackers.get_tracker(n, max_pfn=LARGE) for n in ("kvm", "kvm@kernel"))
        try:
            for k, batch in enumerate(random_kvm_rows(rng, 8)):
                emu.apply(batch)
                twin.apply(batch)
                assert _shape(emu) == _shape(twin), (k, batch)
            emu.check()
        finally:
            twin.close()


# --------------------------------------------------------------------------
# histories where the kernel keeps what a fresh build lacks

def _pages(op, *pfns):
    p = np.array(pfns, np.int64)
    return op, p, p + 1


def _ranges(op, *pairs):
    s, e = zip(*pairs)
    return op, np.array(s, np.int64), np.array(e, np.int64)


NODE = trackers.kernel.XA_NODE_BYTES

KEPT = {
    # the L1 that xa_store_range's xas_max() grew for index 63 stays when 63
    # is erased below the top (no xas_shrink): 2 xa_nodes, a fresh build 1
    "multi-l1-at-64": ("xarray-multi", 64, [
        _pages("mark", 62, 41, 46),
        _pages("mark", 13, 57, 24, 17, 25, 63, 10, 24, 54),
        _ranges("unmark_ranges", (11, 17)),
        _pages("mark", 2, 44, 54, 13, 6, 22),
        _ranges("unmark_ranges", (25, 26), (15, 21)),
        _pages("unmark", 60, 63, 14, 12, 10, 6)],
        {"xa_node L0": NODE, "xa_node L1": NODE}, NODE),
    # the same at 4,096 PFNs: 4095 grows an L2 (xas_max 4096) that stays
    "multi-l2-at-4096": ("xarray-multi", 4096, [
        _pages("mark", 100), _pages("mark", 4095), _pages("unmark", 4095)],
        {"xa_node L0": NODE, "xa_node L1": NODE, "xa_node L2": NODE}, 2 * NODE),
    # ida_free never turns an ida_bitmap back into a value entry
    "ida-bitmap-kept": ("ida", 4096, [_ranges("mark_ranges", (0, 64)), _pages("unmark", 63)],
                        {"xa_node L0": 0, "ida_bitmap": 128}, 0),
    # GFN 0 alone: xa_reserve's node for a fresh build, xa_head after an erase
    "kvm-gfn-0-in-xa-head": ("kvm", 100, [_pages("mark", 0, 1), _pages("unmark", 1)],
                             {"mem_attr_array xa_node L0": 0,
                              "guest_memfd i_pages xa_node L0": 0}, NODE),
}


@needs_kernel
@pytest.mark.parametrize("case", list(KEPT))
def test_history_shapes_the_kernels_structure(case, no_live_count):
    name, max_pfn, history, breakdown, fresh = KEPT[case]
    assert first_difference(name, max_pfn, history) is None
    t = trackers.get_tracker(name, max_pfn=max_pfn)
    for step in history:
        apply_step(t, *step)
    assert t.memory().breakdown == breakdown
    s, e = from_tracker(t)
    assert type(t).history_shaped and type(t).estimate(s, e, max_pfn) == fresh
