"""Sorted extent sets: the one algebra of PFN/GFN runs the project uses.

An *extent set* is two int64 arrays ``(starts, ends)`` of half-open ranges,
ascending, disjoint and non-touching (maximal runs).  A *sequence* is a list
of extents in a given order (not necessarily sorted) whose pages are counted
one after another: an allocation hands out a PFN sequence, a TD's memory is a
GFN sequence, and :func:`zip_sequences` pairs two of equal length page by page.

Workload generators, the kexec model and the tests all count pages with it.
Every operation is vectorized: its cost is a few sorts over the extent
boundaries, never a Python step per page or per extent.  ``np.unique`` is
avoided (slow in numpy 2.4, docs/kernel-facts.md "Measured on these machines"): sort
and a neighbour mask instead.
"""

from __future__ import annotations

import numpy as np

Extents = tuple[np.ndarray, np.ndarray]

_EMPTY = np.empty(0, np.int64)
EMPTY: Extents = (_EMPTY, _EMPTY)       # a shared default; never mutate it


def normalize_extents(starts: np.ndarray, ends: np.ndarray) -> Extents:
    """Sort ranges and merge overlapping or touching ones into maximal runs."""
    if starts.size == 0:
        return starts.astype(np.int64), ends.astype(np.int64)
    if np.all(starts[1:] >= ends[:-1]):
        # already sorted and disjoint (the common case): merge touching, O(n)
        first = np.flatnonzero(np.concatenate(([True], starts[1:] != ends[:-1])))
        if first.size == starts.size:
            return starts.astype(np.int64, copy=False), ends.astype(np.int64, copy=False)
        last = np.append(first[1:], starts.size) - 1
        return (starts[first].astype(np.int64, copy=False),    # fancy indexing copied
                ends[last].astype(np.int64, copy=False))
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    # a new run starts where the start lies beyond every earlier end
    new = np.empty(s.size, bool)
    new[0] = True
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], s.size) - 1
    return s[first].astype(np.int64, copy=False), run_end[last].astype(np.int64, copy=False)


def empty() -> Extents:
    return _EMPTY.copy(), _EMPTY.copy()


def count(ext: Extents) -> int:
    """Pages in a set or sequence."""
    return int((ext[1] - ext[0]).sum())


def normalize(starts, ends) -> Extents:
    """Any ranges (unsorted, overlapping, touching, empty) -> maximal runs."""
    s = np.asarray(starts, np.int64).ravel()
    e = np.asarray(ends, np.int64).ravel()
    keep = s < e
    if not keep.all():
        s, e = s[keep], e[keep]
    if s.size == 0:
        return empty()
    return normalize_extents(s, e)


def union(*sets: Extents) -> Extents:
    if not sets:
        return empty()
    return normalize(np.concatenate([x[0] for x in sets]),
                     np.concatenate([x[1] for x in sets]))


def _coverage(a: Extents, b: Extents, keep) -> Extents:
    """Boundary sweep over two normalized sets; keep(in_a, in_b) picks regions."""
    pts = np.concatenate((a[0], a[1], b[0], b[1]))
    da = np.concatenate((np.ones(a[0].size, np.int8), -np.ones(a[1].size, np.int8),
                         np.zeros(b[0].size * 2, np.int8)))
    db = np.concatenate((np.zeros(a[0].size * 2, np.int8),
                         np.ones(b[0].size, np.int8), -np.ones(b[1].size, np.int8)))
    if pts.size == 0:
        return empty()
    order = np.argsort(pts, kind="stable")
    pts, da, db = pts[order], da[order], db[order]
    # collapse equal points: coverage after the last event at each point
    last = np.empty(pts.size, bool)
    last[:-1] = pts[1:] != pts[:-1]
    last[-1] = True
    ca = np.cumsum(da, dtype=np.int64)[last]
    cb = np.cumsum(db, dtype=np.int64)[last]
    p = pts[last]
    inside = keep(ca > 0, cb > 0)
    # region [p[i], p[i+1]) has coverage state inside[i]
    idx = np.flatnonzero(inside[:-1])
    return normalize(p[idx], p[idx + 1])


def subtract(a: Extents, b: Extents) -> Extents:
    """Pages in ``a`` and not in ``b`` (both normalized)."""
    if a[0].size == 0 or b[0].size == 0:
        return a[0].copy(), a[1].copy()
    return _coverage(a, b, lambda x, y: x & ~y)


def intersect(a: Extents, b: Extents) -> Extents:
    if a[0].size == 0 or b[0].size == 0:
        return empty()
    return _coverage(a, b, lambda x, y: x & y)


def overlaps(a_s: np.ndarray, a_e: np.ndarray, b_s: np.ndarray, b_e: np.ndarray):
    """Every overlapping pair between two sorted lists of disjoint ranges.

    Ranges within a list may touch (binding rows do).  Returns
    ``(ia, ib, start, end)``: a[ia] and b[ib] share [start, end), ordered by b
    then a.
    """
    if a_s.size == 0 or b_s.size == 0:
        return _EMPTY.copy(), _EMPTY.copy(), _EMPTY.copy(), _EMPTY.copy()
    lo = np.searchsorted(a_e, b_s, side="right")     # first a ending after b starts
    hi = np.searchsorted(a_s, b_e, side="left")      # a starting before b ends
    n = np.maximum(hi - lo, 0)
    total = int(n.sum())
    ib = np.repeat(np.arange(b_s.size, dtype=np.int64), n)
    ia = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(total, dtype=np.int64)
    s = np.maximum(a_s[ia], b_s[ib])
    e = np.minimum(a_e[ia], b_e[ib])
    return ia, ib, s, e


def contains_points(ext: Extents, points: np.ndarray) -> np.ndarray:
    """Bool array: which points lie in the normalized set."""
    i = np.searchsorted(ext[0], points, side="right") - 1
    ok = i >= 0
    out = np.zeros(points.size, bool)
    out[ok] = points[ok] < ext[1][i[ok]]
    return out


def take_first(ext: Extents, n: int) -> tuple[Extents, Extents]:
    """Split a sequence after its first ``n`` pages: (taken, rest)."""
    s, e = ext
    if n <= 0:
        return empty(), (s, e)
    cum = np.cumsum(e - s)
    if cum.size == 0 or int(cum[-1]) < n:
        raise ValueError(f"cannot take {n} pages from {int(cum[-1]) if cum.size else 0}")
    k = int(np.searchsorted(cum, n, side="left"))     # extent holding page n-1
    cut = int(e[k] - (cum[k] - n))
    taken = (np.append(s[:k], s[k]), np.append(e[:k], cut))
    rest_s = np.concatenate(([cut], s[k + 1:])) if cut < e[k] else s[k + 1:]
    rest_e = e[k:] if cut < e[k] else e[k + 1:]
    return taken, (rest_s.astype(np.int64), rest_e.astype(np.int64))


def zip_sequences(a: Extents, b: Extents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair two sequences of equal length page by page.

    Returns ``(a_pos, b_pos, length)``: piece i maps a-pages
    [a_pos, a_pos+length) onto b-pages [b_pos, b_pos+length), in sequence order.
    """
    la, lb = a[1] - a[0], b[1] - b[0]
    ca, cb = np.cumsum(la), np.cumsum(lb)
    total = int(ca[-1]) if ca.size else 0
    if total != (int(cb[-1]) if cb.size else 0):
        raise ValueError(f"sequences differ in length: {total} and "
                         f"{int(cb[-1]) if cb.size else 0} pages")
    if total == 0:
        return _EMPTY.copy(), _EMPTY.copy(), _EMPTY.copy()
    cuts = np.sort(np.concatenate(([0], ca[:-1], cb[:-1])))
    keep = np.empty(cuts.size, bool)
    keep[0] = True
    keep[1:] = cuts[1:] != cuts[:-1]
    off = cuts[keep]
    length = np.diff(np.append(off, total))
    ia = np.searchsorted(ca, off, side="right")
    ib = np.searchsorted(cb, off, side="right")
    a_pos = a[0][ia] + (off - (ca[ia] - la[ia]))
    b_pos = b[0][ib] + (off - (cb[ib] - lb[ib]))
    return a_pos, b_pos, length


def blocks_touched(ext: Extents, shift: int) -> np.ndarray:
    """Sorted distinct indices of the 2^shift-aligned blocks a set touches."""
    s, e = ext
    if s.size == 0:
        return _EMPTY.copy()
    first = s >> shift
    last = (e - 1) >> shift
    n = last - first + 1
    total = int(n.sum())
    base = np.repeat(first - (np.cumsum(n) - n), n)
    idx = base + np.arange(total, dtype=np.int64)
    idx.sort()
    keep = np.empty(idx.size, bool)
    keep[0] = True
    keep[1:] = idx[1:] != idx[:-1]
    return idx[keep]


def count_blocks_touched(ext: Extents, shift: int) -> int:
    """len(blocks_touched(ext, shift)) without expanding (ext normalized)."""
    s, e = ext
    if s.size == 0:
        return 0
    first = s >> shift
    last = (e - 1) >> shift
    total = int((last - first + 1).sum())
    # consecutive extents sharing a block count it once
    shared = int((first[1:] == last[:-1]).sum())
    return total - shared


def covered_below(ext: Extents, x: np.ndarray) -> np.ndarray:
    """Pages of ``ext`` below each x: |ext ∩ [0, x)|.  ext must be disjoint."""
    s, e = ext
    x = np.asarray(x, np.int64)
    if s.size == 0:
        return np.zeros(x.shape, np.int64)
    lengths = e - s
    before = np.concatenate(([0], np.cumsum(lengths)))       # pages in runs < j
    k = np.searchsorted(s, x, side="right")                  # runs starting <= x
    j = np.maximum(k - 1, 0)
    partial = np.clip(x - s[j], 0, lengths[j])
    return np.where(k > 0, before[j] + partial, 0)


def overlap_pages(a: Extents, b: Extents) -> int:
    """|a ∩ b| for two disjoint extent sets, without building the intersection."""
    if a[0].size == 0 or b[0].size == 0:
        return 0
    return int((covered_below(b, a[1]) - covered_below(b, a[0])).sum())


def slot_extents(ext: Extents, shift: int) -> Extents:
    """The 2^shift-page slots an extent set touches, as runs of slot indices."""
    s, e = ext
    if s.size == 0:
        return empty()
    return normalize(s >> shift, ((e - 1) >> shift) + 1)


def from_tracker(tracker) -> Extents:
    """A tracker's scan (its extents() batches) as one extent set."""
    parts = list(tracker.extents())
    if not parts:
        return empty()
    return (np.concatenate([p[0] for p in parts]).astype(np.int64),
            np.concatenate([p[1] for p in parts]).astype(np.int64))
