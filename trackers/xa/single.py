"""One entry per index: xa_store and xa_erase per index, a leaf at a time.

one entry per index, what ``xa_store(xa, index, entry)`` per index gives
(KVM's mem_attr_array holds xa_mk_value(attributes) per GFN).  Per-index
xa_store/xa_erase with xas_shrink leave a state that depends only on the
set: history independence is the kernel's own.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .model import max_index, top_shift
from .xas import (M_HEAD, M_HEAD_ENTRY, M_NR, xa_node_exists, xas_create, xas_delete_node,
                  xas_expand)


# --------------------------------------------------------------------------
# single-index entries (xa_store / xa_erase per index)

@njit(cache=True)
def xa_store(slots, hdr, parent, meta, levels, index, payload):
    """xa_store() of a nonzero ``payload`` at ``index`` in a single-index
    tree: xas_expand to the index's height, xas_create the path, set the
    slot (lib/xarray.c xa_store/__xa_store).  The caller has reserved the
    nodes (XaTree.reserve); a lone entry at index 0 stays in xa_head."""
    xas_expand(slots, hdr, parent, meta, levels, index)
    if meta[M_HEAD] < 0:
        if meta[M_HEAD_ENTRY] == 0:
            meta[M_NR] += 1
        meta[M_HEAD_ENTRY] = payload
        return
    leaf = xas_create(slots, hdr, parent, meta, levels, index, 0)
    off = index & 63
    if slots[leaf, off] == 0:
        hdr[leaf, 2] += 1
        meta[M_NR] += 1
    slots[leaf, off] = payload


@njit(cache=True)
def xa_erase(slots, hdr, parent, meta, levels, index):
    """xa_erase() of ``index`` in a single-index tree: NULL the slot, free
    the nodes left empty (xas_delete_node) and shrink the top (xas_shrink),
    so the state depends only on the set.  Erasing an absent index is a no-op."""
    n = meta[M_HEAD]
    if n < 0:
        if index == 0 and meta[M_HEAD_ENTRY] != 0:
            meta[M_HEAD_ENTRY] = 0
            meta[M_NR] -= 1
        return
    if index > max_index(np.int64(hdr[n, 0])):
        return
    while hdr[n, 0] > 0:
        v = slots[n, (index >> np.int64(hdr[n, 0])) & 63]
        if v <= 0:
            return
        n = v - 1
    off = index & 63
    if slots[n, off] == 0:
        return
    slots[n, off] = 0
    hdr[n, 2] -= 1
    meta[M_NR] -= 1
    xas_delete_node(slots, hdr, parent, meta, levels, n, True)


@njit(cache=True)
def xa_store_ranges(slots, hdr, parent, meta, levels, starts, ends, payload):
    """xa_store() of ``payload`` at every index of every [start, end) of a
    single-index tree, a leaf at a time; nodes reserved by the caller
    (:func:`xa_nodes_missing` counts them)."""
    base = np.full(starts.size, payload, np.int64)
    xa_store_mapped(slots, hdr, parent, meta, levels, starts, ends, base, 0)


@njit(cache=True)
def xa_store_mapped(slots, hdr, parent, meta, levels, starts, ends, base, step):
    """xa_store() of ``base[r] + step * index`` at every index of range r,
    one descent per leaf (step 1 maps an index to a PFN, as a page cache
    maps pgoff to a folio).  The result equals xa_store per index; nodes
    reserved by the caller."""
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if s >= e:
            continue
        xas_expand(slots, hdr, parent, meta, levels, e - 1)
        i = s
        while i < e:
            if meta[M_HEAD] < 0:                   # [0, 1) into an empty array
                xa_store(slots, hdr, parent, meta, levels, i, base[r] + step * i)
                i += 1
                continue
            leaf = xas_create(slots, hdr, parent, meta, levels, i, 0)
            stop = min(e, (i | 63) + 1)
            added = 0
            for j in range(i & 63, ((stop - 1) & 63) + 1):
                if slots[leaf, j] == 0:
                    added += 1
                slots[leaf, j] = base[r] + step * ((i & ~63) | j)
            hdr[leaf, 2] += added
            meta[M_NR] += added
            i = stop


@njit(cache=True)
def xa_erase_ranges(slots, hdr, parent, meta, levels, starts, ends):
    """xa_erase() of every index of every [start, end) of a single-index
    tree; skips absent subtrees, so the cost is per stored leaf touched."""
    for r in range(starts.size):
        i, e = starts[r], ends[r]
        while i < e:
            n = meta[M_HEAD]
            if n < 0:
                if i == 0:
                    xa_erase(slots, hdr, parent, meta, levels, 0)
                break
            if i > max_index(np.int64(hdr[n, 0])):
                break
            while hdr[n, 0] > 0:
                sh = np.int64(hdr[n, 0])
                v = slots[n, (i >> sh) & 63]
                if v <= 0:
                    break
                n = v - 1
            sh = np.int64(hdr[n, 0])
            if sh > 0:                             # no xa_node below: skip its span
                i = ((i >> sh) + 1) << sh
                continue
            stop = min(e, (i | 63) + 1)
            removed = 0
            for j in range(i & 63, ((stop - 1) & 63) + 1):
                if slots[n, j] != 0:
                    slots[n, j] = 0
                    removed += 1
            if removed:
                hdr[n, 2] -= removed
                meta[M_NR] -= removed
                xas_delete_node(slots, hdr, parent, meta, levels, n, True)
            i = stop


@njit(cache=True)
def xa_nodes_missing(slots, hdr, parent, meta, starts, ends):
    """xa_nodes that storing every index of the ranges would add to a
    single-index tree (ranges sorted by start, may overlap).  Exact: the dry
    run of :func:`xa_store_ranges`, counting the xas_expand chain over the
    old head and every xas_create of a missing node.  Cost: one lookup per
    2^(6k+6) block per level the ranges touch."""
    if starts.size == 0:
        return 0
    head = meta[M_HEAD]
    old_nonempty = head >= 0 or meta[M_HEAD_ENTRY] != 0
    old_top = np.int64(hdr[head, 0]) if head >= 0 else np.int64(-6)
    hi_index = np.int64(0)
    for r in range(ends.size):
        hi_index = max(hi_index, ends[r] - 1)
    new_top = top_shift(hi_index) if hi_index > 0 else np.int64(-6)
    new_top = max(new_top, old_top)
    if new_top < 0:
        return 0
    missing = 0
    for sh in range(0, new_top + 1, 6):
        b = sh + 6
        prev = np.int64(-1)
        if sh > old_top and old_nonempty:
            missing += 1                           # xas_expand's chain over the old head
            prev = 0
        for r in range(starts.size):
            lo = starts[r] >> b if b < 63 else 0
            hi = (ends[r] - 1) >> b if b < 63 else 0
            lo = max(lo, prev + 1)
            for blk in range(lo, hi + 1):
                first = blk << b if b < 63 else 0
                if sh > old_top or not xa_node_exists(slots, hdr, meta, first, sh):
                    missing += 1
            prev = max(prev, hi)
    return missing


