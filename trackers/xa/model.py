"""The XArray's node count without a tree: how many 576-B xa_nodes, per
level, lib/xarray.c holds for a set of indices.

Geometry (include/linux/xarray.h, lib/xarray.c; kernel.XA_CHUNK_SHIFT = 6):
an xa_node with shift s has 64 slots and covers 2^(s+6) indices; shifts are
0, 6, ..., 60 (:data:`XA_LEVELS` levels cover a 64-bit index).  The top
node has the least shift s with ``M >> s < 64`` (:func:`top_shift`,
xas_expand), ``M`` the largest index, and no node exists if ``M == 0`` (the
entry lives in xa_head).

The count, level by level (index k: shift 6k), for a set of extents:

* one entry per index (``xa_store`` per index): a node for each
  2^(6k+6)-aligned block holding a stored index, below the top;
* ``xa_store_range()`` of each maximal extent (CONFIG_XARRAY_MULTI): a node
  for each such block holding a stored *and* an unstored index (a block
  inside one extent is a slot of a larger multi-index entry), below the
  top, and ``M`` is :func:`multi_max` of the last index (xas_max() asks for
  room for ``last + 1`` when that is a power of two).

This is the count of a *fresh build*: the set stored into an empty array
at once, in index order -- what ``estimate()`` reports.  A single-index tree
holds it after any history (per-index erases shrink the tree back; the
engine's ``XaTree.check()`` asserts it level by level); a multi-index tree
holds it after one store into an empty array, and after a history whatever
its xas_expand/xas_shrink calls left (:mod:`trackers.xa.multi`).  What it
leaves out is the engine's: marks, xa_lock, slab overhead.  Every count
runs in one compiled pass over the extents, never over indices, so
``estimate()`` works at 2^40 PFNs in seconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import kernel
from ..base import as_index_array, estimate_input

XA_LEVELS = 11                 # shifts 0, 6, ..., 60 cover a 64-bit index

_I64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------
# index arithmetic

@njit(cache=True)
def max_index(shift):
    """Largest index a top node of this shift can hold (lib/xarray.c max_index)."""
    if shift + 6 >= 63:
        return _I64_MAX
    return (np.int64(64) << shift) - 1


@njit(cache=True)
def top_shift(max_idx):
    """Shift of the top node that holds index max_idx (> 0): the least s
    (a multiple of 6) with ``max_idx >> s < 64`` (xas_expand)."""
    s = 0
    while (max_idx >> s) >= 64:
        s += 6
    return s


@njit(cache=True)
def multi_max(last):
    """xas_max() of xa_store_range's first xas_create for an extent ending at
    ``last``: ``last + 1`` if that is a power of two >= 2, else ``last``."""
    if last >= 1 and ((last + 1) & last) == 0:
        return last + 1
    return last


# --------------------------------------------------------------------------
# the count

@njit(cache=True)
def _node_counts(starts, ends, multi, ishift, out):
    """xa_nodes per level (out[k]: shift 6k) for extents sorted by start
    (they may overlap or touch: they are merged into maximal extents here).

    single: a node with shift s exists for each 2^(s+6)-aligned block holding
    a stored index, at shifts up to the top.  multi: below the top only
    blocks that hold a stored index *and* an unstored one (a block inside one
    maximal extent is a slot of a larger piece).  Indices are
    ``pfn >> ishift`` (10 for the IDA's chunks).
    """
    for k in range(XA_LEVELS):
        out[k] = 0
    prev = np.full(XA_LEVELS, -1, np.int64)
    last = np.int64(-1)
    r = 0
    nr = starts.size
    while r < nr:
        if ends[r] <= starts[r]:
            r += 1
            continue
        f = starts[r] >> ishift
        l = (ends[r] - 1) >> ishift
        r += 1
        while r < nr and (starts[r] >> ishift) <= l + 1:   # one maximal extent
            if ends[r] > starts[r]:
                l = max(l, (ends[r] - 1) >> ishift)
            r += 1
        last = l
        for k in range(XA_LEVELS):
            b = 6 * k + 6
            if b >= 63:
                lo = np.int64(0)
                hi = np.int64(0)
            else:
                lo = f >> b
                hi = l >> b
            if multi:
                if b < 63:
                    mask = (np.int64(1) << b) - 1
                    if (f & mask) != 0 or hi == lo and ((l + 1) & mask) != 0:
                        if lo != prev[k]:
                            out[k] += 1
                            prev[k] = lo
                    if hi != lo and ((l + 1) & mask) != 0:
                        out[k] += 1
                        prev[k] = hi
            else:
                if lo == prev[k]:
                    lo += 1
                out[k] += hi - lo + 1 if hi >= lo else 0
                prev[k] = hi
    if last < 0:
        return
    m = multi_max(last) if multi else last
    if m == 0:
        for k in range(XA_LEVELS):
            out[k] = 0
        return
    top = top_shift(m) // 6
    for k in range(top, XA_LEVELS):
        out[k] = 0
    out[top] = 1


@njit(cache=True)
def _fast_valid(starts, ends, max_pfn):
    """True if ranges are in [0, max_pfn], start <= end, sorted, non-overlapping."""
    prev = np.int64(0)
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if s < 0 or e > max_pfn or s > e:
            return False
        if s == e:
            continue
        if s < prev:
            return False
        prev = e
    return True


def xa_node_counts(starts, ends, multi: bool = False, ishift: int = 0) -> np.ndarray:
    """xa_nodes per level (index k: shift 6k) for a set of [start, end)
    extents sorted by start, without building the tree.

    ``multi=False``: one entry per index (xa_store per index);
    ``multi=True``: xa_store_range of each maximal extent.  ``ishift``: the
    XArray index is ``pfn >> ishift`` (one entry per 2^ishift PFNs).
    """
    out = np.zeros(XA_LEVELS, np.int64)
    _node_counts(np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                 bool(multi), int(ishift), out)
    return out


def estimate_extents(starts, ends, max_pfn: int) -> tuple[np.ndarray, np.ndarray]:
    """The set handed to ``estimate()`` as sorted, disjoint int64 extents:
    already-valid sorted input passes in one compiled check, anything else
    through :func:`trackers.base.estimate_input` (which raises on bad input)."""
    s = as_index_array(starts, "start")
    e = as_index_array(ends, "end")
    if s.shape != e.shape or not _fast_valid(s, e, int(max_pfn)):
        s, e = estimate_input(starts, ends, max_pfn)
    return s, e


def estimate_levels(starts, ends, max_pfn: int, multi: bool = False,
                    ishift: int = 0) -> np.ndarray:
    """Validated xa_node counts per level for ``estimate()`` (see
    :func:`estimate_extents` and :func:`xa_node_counts`)."""
    s, e = estimate_extents(starts, ends, max_pfn)
    return xa_node_counts(s, e, multi, ishift)


def level_breakdown(levels: np.ndarray, label: str = "xa_node") -> dict[str, int]:
    """{"<label> L0": bytes, ...}: 576 B per xa_node, up to the top level
    (L0 alone if there is no node)."""
    nz = np.flatnonzero(levels)
    top = int(nz[-1]) if nz.size else 0
    return {f"{label} L{k}": int(levels[k]) * kernel.XA_NODE_BYTES for k in range(top + 1)}


def level_formula(multi: bool) -> dict[str, str]:
    """The breakdown's formula, in words, for MemoryReport.formula."""
    what = ("a 2^(6k+6)-aligned block holding both a stored and an unstored PFN "
            "(blocks inside one extent are slots of a larger entry)" if multi else
            "a 2^(6k+6)-aligned block holding a stored PFN")
    return {"xa_node Lk": f"{kernel.XA_NODE_BYTES} B (include/linux/xarray.h struct xa_node) x "
                          f"xa_nodes with shift 6k, one per {what}, below the top; the top "
                          f"has the least shift s with M >> s < 64 (lib/xarray.c xas_expand), "
                          f"no node if M == 0"}
