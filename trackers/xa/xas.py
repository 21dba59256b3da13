"""The xa_state operations of lib/xarray.c on the engine's arrays: the
xa_node pool, growing (xas_expand, xas_create), freeing (xas_delete_node,
xas_free_nodes) and shrinking (xas_shrink) the tree, loads and the
xas_find cursor.  Everything here takes ``*tree.arrays`` (trackers.xa.tree
describes them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .model import XA_LEVELS, max_index, top_shift

XA_VALUE = -1                  # xa_mk_value(): the entry every index maps to
XA_SIBLING = -2                # XA_SIBLING - c: xa_mk_sibling(c)
NODE_HOST_BYTES = 64 * 8 + 3 + 4

# meta[] fields: xa_head (node id or -1), xa_head's entry when no node,
# free-list head, high mark, nodes in use, entries (indices) stored
M_HEAD, M_HEAD_ENTRY, M_FREE, M_HIGH, M_USED, M_NR = range(6)
META_LEN = 6


# --------------------------------------------------------------------------
# index arithmetic

@njit(cache=True)
def xas_set_range(first, last):
    """(shift, sibs) of the first piece xa_store_range() stores for [first, last].

    The piece covers ``(sibs + 1) << shift`` indices from ``first``: a value
    entry in slot ``(first >> shift) & 63`` of the node with that shift and
    ``sibs`` siblings after it.

    Same decision as lib/xarray.c xas_set_range(): the largest shift (a
    multiple of 6) with ``first`` aligned to 2^(shift+6)... and a whole
    2^(shift+6) block still inside the range, then as many 2^shift slots as
    fit in the range and in the node.
    """
    shift = 0
    sibs = last - first
    full = True                     # every lower 6-bit digit of last-first is 63
    f = first
    while (f & 63) == 0:
        if sibs < 63:
            break
        if sibs == 63 and not full:
            break
        if full and (sibs & 63) != 63:
            full = False
        shift += 6
        sibs >>= 6
        f >>= 6
    off = f & 63
    if off + sibs > 63:
        sibs = 63 - off
    if ((f + sibs + 1) << shift) - 1 > last:
        sibs -= 1
    return shift, sibs


# --------------------------------------------------------------------------
# xa_node pool

@njit(cache=True)
def xas_alloc(slots, hdr, parent, meta, levels, shift, par, off):
    """xas_alloc(): a zeroed xa_node linked into slot ``off`` of ``par``."""
    n = meta[M_FREE]
    if n >= 0:
        meta[M_FREE] = parent[n]
    else:
        n = meta[M_HIGH]
        meta[M_HIGH] = n + 1
    for k in range(64):
        slots[n, k] = 0
    hdr[n, 0] = shift
    hdr[n, 1] = off
    hdr[n, 2] = 0
    parent[n] = par
    if par >= 0:
        slots[par, off] = n + 1
        hdr[par, 2] += 1
    levels[shift // 6] += 1
    meta[M_USED] += 1
    return n


@njit(cache=True)
def xa_node_free(slots, hdr, parent, meta, levels, n):
    levels[np.int64(hdr[n, 0]) // 6] -= 1
    meta[M_USED] -= 1
    hdr[n, 2] = 0
    parent[n] = meta[M_FREE]
    meta[M_FREE] = n


@njit(cache=True)
def xas_free_nodes(slots, hdr, parent, meta, levels, top):
    """xas_free_nodes(): free ``top`` and every xa_node below it."""
    stack = np.empty(XA_LEVELS * 64, np.int64)
    sp = 0
    stack[sp] = top
    sp += 1
    while sp:
        sp -= 1
        n = stack[sp]
        if hdr[n, 0] > 0:
            for k in range(64):
                if slots[n, k] > 0:
                    stack[sp] = slots[n, k] - 1
                    sp += 1
        xa_node_free(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def xas_expand(slots, hdr, parent, meta, levels, want):
    """Add xa_nodes above the head until the tree can hold index ``want``
    (xas_expand); a lone entry at index 0 stays in xa_head."""
    head = meta[M_HEAD]
    if head < 0:
        if want == 0:
            return
        if meta[M_HEAD_ENTRY] == 0:
            meta[M_HEAD] = xas_alloc(slots, hdr, parent, meta, levels,
                                       top_shift(want), -1, 0)
            return
        head = xas_alloc(slots, hdr, parent, meta, levels, 0, -1, 0)
        slots[head, 0] = meta[M_HEAD_ENTRY]
        hdr[head, 2] = 1
        meta[M_HEAD_ENTRY] = 0
        meta[M_HEAD] = head
    while want > max_index(np.int64(hdr[head, 0])):
        n = xas_alloc(slots, hdr, parent, meta, levels, np.int64(hdr[head, 0]) + 6, -1, 0)
        slots[n, 0] = head + 1
        hdr[n, 2] = 1
        parent[head] = n
        hdr[head, 1] = 0
        meta[M_HEAD] = n
        head = n


@njit(cache=True)
def xas_create(slots, hdr, parent, meta, levels, index, shift):
    """The xa_node of this shift on index's path, created as needed.

    The caller has expanded the tree; a slot on the path holds NULL or a node.
    """
    n = meta[M_HEAD]
    while np.int64(hdr[n, 0]) > shift:
        sh = np.int64(hdr[n, 0])
        off = (index >> sh) & 63
        v = slots[n, off]
        if v > 0:
            n = v - 1
        else:
            n = xas_alloc(slots, hdr, parent, meta, levels, sh - 6, n, off)
    return n


@njit(cache=True)
def xas_shrink(slots, hdr, parent, meta, levels):
    """Pop the top while it holds one entry in slot 0 that is a node, or a
    value in a shift-0 node (which moves to xa_head)."""
    n = meta[M_HEAD]
    while n >= 0 and hdr[n, 2] == 1:
        v = slots[n, 0]
        if v == 0:
            break
        if hdr[n, 0] == 0:
            meta[M_HEAD_ENTRY] = v
            meta[M_HEAD] = -1
            xa_node_free(slots, hdr, parent, meta, levels, n)
            break
        if v < 0:
            break                      # multi-index entry in slot 0: stays
        n = _pop_top(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def _pop_top(slots, hdr, parent, meta, levels, n):
    """Free top node n whose slot 0 holds its only child node; the child
    becomes the top.  Returns the child."""
    child = slots[n, 0] - 1
    xa_node_free(slots, hdr, parent, meta, levels, n)
    parent[child] = -1
    hdr[child, 1] = 0
    meta[M_HEAD] = child
    return child


@njit(cache=True)
def xas_delete_node(slots, hdr, parent, meta, levels, n, shrink):
    """Free n and its ancestors while empty; shrink if that stops at the top."""
    while hdr[n, 2] == 0:
        par = parent[n]
        off = hdr[n, 1]
        xa_node_free(slots, hdr, parent, meta, levels, n)
        if par < 0:
            meta[M_HEAD] = -1
            return
        slots[par, off] = 0
        hdr[par, 2] -= 1
        n = par
    if shrink and parent[n] < 0:
        xas_shrink(slots, hdr, parent, meta, levels)


@njit(cache=True)
def xas_load(slots, hdr, parent, meta, index):
    """xa_load(): the entry covering ``index`` -- 0 (NULL) if none, else a
    payload, XA_VALUE, or in a multi-index tree a sibling (XA_SIBLING - c).

    One descent from xa_head, reading only (lib/xarray.c xas_load).
    """
    n = meta[M_HEAD]
    if n < 0:
        return meta[M_HEAD_ENTRY] if index == 0 else 0
    if index > max_index(np.int64(hdr[n, 0])):
        return 0
    while True:
        sh = np.int64(hdr[n, 0])
        v = slots[n, (index >> sh) & 63]
        if sh == 0 or v <= 0:
            return v
        n = v - 1


@njit(cache=True)
def xa_node_exists(slots, hdr, meta, index, shift):
    """True if an xa_node with ``shift`` lies on ``index``'s path."""
    n = meta[M_HEAD]
    if n < 0 or shift > np.int64(hdr[n, 0]) or index > max_index(np.int64(hdr[n, 0])):
        return False
    while np.int64(hdr[n, 0]) > shift:
        sh = np.int64(hdr[n, 0])
        v = slots[n, (index >> sh) & 63]
        if v <= 0:
            return False
        n = v - 1
    return True


# --------------------------------------------------------------------------
# walks (xa_for_each order)

@njit(cache=True)
def xas_start(slots, hdr, meta, index, cur):
    """xas_set() + the first descent of xas_find(): point the cursor
    ``cur`` = [node, offset, node base index] at the slot of ``index``
    (node -1: xa_head; -2: past the end).  Reads only."""
    n = meta[M_HEAD]
    if n < 0:
        cur[0] = -1
        cur[1] = 0 if index == 0 else 1
        cur[2] = 0
        return
    if index > max_index(np.int64(hdr[n, 0])):
        cur[0] = -2
        return
    base = np.int64(0)
    while True:
        sh = np.int64(hdr[n, 0])
        off = (index >> sh) & 63
        v = slots[n, off]
        if v > 0 and sh > 0:
            base += off << sh
            n = v - 1
            continue
        cur[0] = n
        cur[1] = off
        cur[2] = base
        return


@njit(cache=True)
def xas_find(slots, hdr, parent, meta, cur):
    """xas_find(): the next non-NULL slot at or after the cursor, in index
    order (xa_for_each), as (found, first index, shift, entry); a
    multi-index entry's siblings come as their own slots.  Advances the
    cursor past it; reads only."""
    n = cur[0]
    if n == -2:
        return False, np.int64(0), np.int64(0), np.int64(0)
    if n == -1:
        cur[0] = -2
        if cur[1] == 0 and meta[M_HEAD_ENTRY] != 0:
            return True, np.int64(0), np.int64(0), meta[M_HEAD_ENTRY]
        return False, np.int64(0), np.int64(0), np.int64(0)
    off = cur[1]
    base = cur[2]
    while True:
        if off == 64:
            p = parent[n]
            if p < 0:
                cur[0] = -2
                return False, np.int64(0), np.int64(0), np.int64(0)
            off = np.int64(hdr[n, 1]) + 1
            base -= np.int64(hdr[n, 1]) << np.int64(hdr[p, 0])
            n = p
            continue
        v = slots[n, off]
        sh = np.int64(hdr[n, 0])
        if v == 0:
            off += 1
            continue
        if v > 0 and sh > 0:
            base += off << sh
            n = v - 1
            off = 0
            continue
        cur[0] = n
        cur[1] = off + 1
        cur[2] = base
        return True, base + (off << sh), sh, v


