"""Multi-index entries (CONFIG_XARRAY_MULTI): xa_store_range() of maximal extents.

each *maximal* extent of the set stored as ``xa_store_range()`` stores
it: ``xas_set_range()`` cuts [first, last] into aligned pieces of
``(sibs + 1) << shift`` indices, shift a multiple of 6; a piece is a
value entry in slot ``offset`` of the node with that shift, followed by
``sibs`` sibling entries.  A 2^(shift+6)-aligned block wholly inside one
extent is therefore a slot of its parent, not a node.

History independence (a deviation): the kernel's state after a partial
erase of a multi-index entry depends on history (it needs xas_split), so
this model defines the *canonical* state as what the kernel holds after
``xa_store_range()`` of each maximal extent into an empty array, in any
order.  Every store/erase re-stores the maximal extents it touches so
that the tree is always canonical.  Two kernel quirks are kept: xas_max()
asks for room for index ``last + 1`` when ``last + 1`` is a power of two
(an order-aligned entry at index 0 cannot sit in xa_head), and
xas_shrink() never pops a top node whose only entry is a multi-index
value in slot 0.  So the top shift is that of ``M = last + 1`` if
``last + 1`` is a power of two >= 2, else ``M = last``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .model import max_index, multi_max, top_shift
from .xas import (M_HEAD, M_HEAD_ENTRY, M_NR, XA_SIBLING, XA_VALUE, xa_last_index,
                  xa_node_free, xas_create, xas_delete_node, xas_expand, xas_free_nodes,
                  xas_pop_top, xas_set_range)


# --------------------------------------------------------------------------
# multi-index entries (xa_store_range of maximal extents)

@njit(cache=True)
def _store_extent_multi(slots, hdr, parent, meta, levels, first, last):
    """xa_store_range(first, last, XA_VALUE) into slots that are all NULL."""
    xas_expand(slots, hdr, parent, meta, levels, multi_max(last))
    i = first
    while i <= last:
        shift, sibs = xas_set_range(i, last)
        if meta[M_HEAD] < 0:                       # [0, 0]: the entry is xa_head
            meta[M_HEAD_ENTRY] = XA_VALUE
        else:
            n = xas_create(slots, hdr, parent, meta, levels, i, shift)
            off = (i >> shift) & 63
            for k in range(off, off + sibs + 1):
                v = slots[n, k]
                if v > 0 and shift > 0:
                    xas_free_nodes(slots, hdr, parent, meta, levels, v - 1)
                elif v == 0:
                    hdr[n, 2] += 1
                slots[n, k] = XA_VALUE if k == off else XA_SIBLING - off
        i += (sibs + 1) << shift
    meta[M_NR] += last - first + 1


@njit(cache=True)
def _erase_extent_multi(slots, hdr, parent, meta, levels, first, last):
    """Store NULL over every piece xa_store_range(first, last) stored; no shrink."""
    i = first
    while i <= last:
        shift, sibs = xas_set_range(i, last)
        n = meta[M_HEAD]
        if n < 0:
            meta[M_HEAD_ENTRY] = 0
        else:
            while np.int64(hdr[n, 0]) > shift:
                n = slots[n, (i >> np.int64(hdr[n, 0])) & 63] - 1
            off = (i >> shift) & 63
            for k in range(off, off + sibs + 1):
                slots[n, k] = 0
            hdr[n, 2] -= sibs + 1
            xas_delete_node(slots, hdr, parent, meta, levels, n, False)
        i += (sibs + 1) << shift
    meta[M_NR] -= last - first + 1


@njit(cache=True)
def _canonical_height(slots, hdr, parent, meta, levels):
    """Make the top the one xa_store_range into an empty array gives."""
    last = xa_last_index(slots, hdr, meta)
    if last < 0:
        return
    m = multi_max(last)
    if m == 0:                                     # only index 0: xa_head holds it
        while meta[M_HEAD] >= 0:
            n = meta[M_HEAD]
            v = slots[n, 0]
            xa_node_free(slots, hdr, parent, meta, levels, n)
            if hdr[n, 0] == 0:
                meta[M_HEAD] = -1
                meta[M_HEAD_ENTRY] = v
            else:
                meta[M_HEAD] = v - 1
                parent[v - 1] = -1
        return
    target = top_shift(m)
    xas_expand(slots, hdr, parent, meta, levels, m)
    n = meta[M_HEAD]
    while np.int64(hdr[n, 0]) > target:            # all entries lie under slot 0
        n = xas_pop_top(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def xa_replace_extents(slots, hdr, parent, meta, levels, old_s, old_e, new_s, new_e):
    """Erase maximal extents old_*, store maximal extents new_*, fix the top."""
    for r in range(old_s.size):
        _erase_extent_multi(slots, hdr, parent, meta, levels, old_s[r], old_e[r] - 1)
    for r in range(new_s.size):
        _store_extent_multi(slots, hdr, parent, meta, levels, new_s[r], new_e[r] - 1)
    _canonical_height(slots, hdr, parent, meta, levels)


@njit(cache=True)
def _entry_span(slots, hdr, meta, index):
    """[start, end) of the (multi-index) entry covering index; (0, 0) if none."""
    n = meta[M_HEAD]
    if n < 0:
        if index == 0 and meta[M_HEAD_ENTRY] != 0:
            return np.int64(0), np.int64(1)
        return np.int64(0), np.int64(0)
    if index > max_index(np.int64(hdr[n, 0])):
        return np.int64(0), np.int64(0)
    base = np.int64(0)
    while True:
        sh = np.int64(hdr[n, 0])
        off = (index >> sh) & 63
        v = slots[n, off]
        if v == 0:
            return np.int64(0), np.int64(0)
        if v > 0 and sh > 0:
            base += off << sh
            n = v - 1
            continue
        c = off if v >= XA_VALUE else XA_SIBLING - v
        k = c + 1
        while k < 64 and slots[n, k] == XA_SIBLING - c:
            k += 1
        return base + (c << sh), base + (np.int64(k) << sh)


@njit(cache=True)
def xa_extent_regions(slots, hdr, meta, starts, ends, out_s, out_e):
    """Each op range widened to the maximal extents that touch or overlap it."""
    for r in range(starts.size):
        j = starts[r] - 1
        while j >= 0:
            a, b = _entry_span(slots, hdr, meta, j)
            if a == b:
                break
            j = a - 1
        out_s[r] = j + 1
        j = ends[r]
        while True:
            a, b = _entry_span(slots, hdr, meta, j)
            if a == b:
                break
            j = b
        out_e[r] = j


