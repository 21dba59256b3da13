"""Option 1b: an XArray (include/linux/xarray.h, lib/xarray.c) indexed by PFN.

Two registry entries share one tree engine, :class:`XaTree`:

``xarray``
    one value entry per PFN, what ``xa_store(xa, pfn, xa_mk_value(..))`` per
    page gives (and what KVM's ``mem_attr_array`` holds per GFN).
``xarray-multi``
    each *maximal* extent of the set stored as ``xa_store_range()`` stores it
    (CONFIG_XARRAY_MULTI): ``xas_set_range()`` cuts [first, last] into
    aligned pieces of ``(sibs + 1) << shift`` indices, shift a multiple of 6;
    a piece is a value entry in slot ``offset`` of the node with that shift,
    followed by ``sibs`` sibling entries.  A 2^(shift+6)-aligned block wholly
    inside one extent is therefore a slot of its parent, not a node.

The tree (kernel terms throughout)
    xa_node: 576 B (kernel.XA_NODE_BYTES): shift, offset, count, nr_values,
    parent, array, private_list, slots[64], marks[3].  A node with shift s
    covers 2^(s+6) indices.  Height comes from the largest index: the top
    node has the least shift s with ``max >> s < 64``; a lone entry at index
    0 lives in xa_head and needs no node (xas_expand).  Empty nodes are freed
    (xas_delete_node) and the top is popped while it holds one child in slot
    0 (xas_shrink).

History independence
    ``xarray``: per-page xa_store/xa_erase with xas_shrink already leave a
    state that depends only on the set.  ``xarray-multi``: the kernel's state
    after a partial erase of a multi-index entry depends on history (it needs
    xas_split), so this model defines the *canonical* state as what the
    kernel holds after ``xa_store_range()`` of each maximal extent into an
    empty array, in any order.  Every mark/unmark re-stores the maximal
    extents it touches so that the tree is always canonical.  Two kernel
    quirks are kept: xas_max() asks for room for index ``last + 1`` when
    ``last + 1`` is a power of two (an order-aligned entry at index 0 cannot
    sit in xa_head), and xas_shrink() never pops a top node whose only entry
    is a multi-index value in slot 0.  So the top shift is that of
    ``M = last + 1`` if ``last + 1`` is a power of two >= 2, else ``M = last``.

Host layout (one row per xa_node, a free list threaded through ``parent``):
    slots  int64[cap, 64]  0 NULL; >0 child xa_node id + 1 (nodes with
                           shift > 0); XA_VALUE (-1) a (multi-index) value
                           entry; XA_SIBLING - c a sibling of slot c; in shift-0
                           nodes of a single-index tree any nonzero payload.
    hdr    uint8[cap, 3]   shift, offset (slot in parent), count (nonzero slots,
                           siblings included, as lib/xarray.c counts them)
    parent int32[cap]      parent id, -1 at the top; next free id when free
so a node costs 519 host bytes against 576 modeled.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from numba import njit

from . import extents, kernel
from .base import (EXTENT_CHUNK, MemoryReport, Tracker, as_index_array, check_budget,
                   estimate_input)
from .extents import normalize_extents

XA_LEVELS = 11                 # shifts 0, 6, ..., 60 cover a 64-bit index
XA_VALUE = -1                  # xa_mk_value(): the entry every index maps to
XA_SIBLING = -2                # XA_SIBLING - c: xa_mk_sibling(c)
NODE_HOST_BYTES = 64 * 8 + 3 + 4

# meta[] fields
M_HEAD, M_HEAD_ENTRY, M_FREE, M_HIGH, M_USED, M_NR = range(6)
META_LEN = 6

_I64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------
# index arithmetic

@njit(cache=True)
def _max_index(shift):
    """Largest index a top node of this shift can hold (lib/xarray.c max_index)."""
    if shift + 6 >= 63:
        return _I64_MAX
    return (np.int64(64) << shift) - 1


@njit(cache=True)
def _top_shift(max_index):
    """Shift of the top node that holds max_index (> 0): least s, max >> s < 64."""
    s = 0
    while (max_index >> s) >= 64:
        s += 6
    return s


@njit(cache=True)
def _multi_max(last):
    """xas_max() of xa_store_range's first xas_create for an extent ending at last."""
    if last >= 1 and ((last + 1) & last) == 0:
        return last + 1
    return last


@njit(cache=True)
def _xas_set_range(first, last):
    """(shift, sibs) of the first piece xa_store_range() stores for [first, last].

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
def _node_alloc(slots, hdr, parent, meta, levels, shift, par, off):
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
def _node_free(slots, hdr, parent, meta, levels, n):
    levels[np.int64(hdr[n, 0]) // 6] -= 1
    meta[M_USED] -= 1
    hdr[n, 2] = 0
    parent[n] = meta[M_FREE]
    meta[M_FREE] = n


@njit(cache=True)
def _free_subtree(slots, hdr, parent, meta, levels, top):
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
        _node_free(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def _xas_expand(slots, hdr, parent, meta, levels, max_index):
    """Add xa_nodes above the head until the tree can hold max_index."""
    head = meta[M_HEAD]
    if head < 0:
        if max_index == 0:
            return
        if meta[M_HEAD_ENTRY] == 0:
            meta[M_HEAD] = _node_alloc(slots, hdr, parent, meta, levels,
                                       _top_shift(max_index), -1, 0)
            return
        head = _node_alloc(slots, hdr, parent, meta, levels, 0, -1, 0)
        slots[head, 0] = meta[M_HEAD_ENTRY]
        hdr[head, 2] = 1
        meta[M_HEAD_ENTRY] = 0
        meta[M_HEAD] = head
    while max_index > _max_index(np.int64(hdr[head, 0])):
        n = _node_alloc(slots, hdr, parent, meta, levels, np.int64(hdr[head, 0]) + 6, -1, 0)
        slots[n, 0] = head + 1
        hdr[n, 2] = 1
        parent[head] = n
        hdr[head, 1] = 0
        meta[M_HEAD] = n
        head = n


@njit(cache=True)
def _xas_create(slots, hdr, parent, meta, levels, index, shift):
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
            n = _node_alloc(slots, hdr, parent, meta, levels, sh - 6, n, off)
    return n


@njit(cache=True)
def _xas_shrink(slots, hdr, parent, meta, levels):
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
            _node_free(slots, hdr, parent, meta, levels, n)
            break
        if v < 0:
            break                      # multi-index entry in slot 0: stays
        n = _pop_top(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def _pop_top(slots, hdr, parent, meta, levels, n):
    """Free top node n whose slot 0 holds its only child node; the child
    becomes the top.  Returns the child."""
    child = slots[n, 0] - 1
    _node_free(slots, hdr, parent, meta, levels, n)
    parent[child] = -1
    hdr[child, 1] = 0
    meta[M_HEAD] = child
    return child


@njit(cache=True)
def _xas_delete_node(slots, hdr, parent, meta, levels, n, shrink):
    """Free n and its ancestors while empty; shrink if that stops at the top."""
    while hdr[n, 2] == 0:
        par = parent[n]
        off = hdr[n, 1]
        _node_free(slots, hdr, parent, meta, levels, n)
        if par < 0:
            meta[M_HEAD] = -1
            return
        slots[par, off] = 0
        hdr[par, 2] -= 1
        n = par
    if shrink and parent[n] < 0:
        _xas_shrink(slots, hdr, parent, meta, levels)


@njit(cache=True)
def _xas_load(slots, hdr, parent, meta, index):
    """The entry covering index (0 if none): a payload, XA_VALUE or a sibling."""
    n = meta[M_HEAD]
    if n < 0:
        return meta[M_HEAD_ENTRY] if index == 0 else 0
    if index > _max_index(np.int64(hdr[n, 0])):
        return 0
    while True:
        sh = np.int64(hdr[n, 0])
        v = slots[n, (index >> sh) & 63]
        if sh == 0 or v <= 0:
            return v
        n = v - 1


# --------------------------------------------------------------------------
# single-index entries (xa_store / xa_erase per index)

@njit(cache=True)
def _xa_store(slots, hdr, parent, meta, levels, index, payload):
    _xas_expand(slots, hdr, parent, meta, levels, index)
    if meta[M_HEAD] < 0:
        if meta[M_HEAD_ENTRY] == 0:
            meta[M_NR] += 1
        meta[M_HEAD_ENTRY] = payload
        return
    leaf = _xas_create(slots, hdr, parent, meta, levels, index, 0)
    off = index & 63
    if slots[leaf, off] == 0:
        hdr[leaf, 2] += 1
        meta[M_NR] += 1
    slots[leaf, off] = payload


@njit(cache=True)
def _xa_erase(slots, hdr, parent, meta, levels, index):
    n = meta[M_HEAD]
    if n < 0:
        if index == 0 and meta[M_HEAD_ENTRY] != 0:
            meta[M_HEAD_ENTRY] = 0
            meta[M_NR] -= 1
        return
    if index > _max_index(np.int64(hdr[n, 0])):
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
    _xas_delete_node(slots, hdr, parent, meta, levels, n, True)


@njit(cache=True)
def _store_ranges(slots, hdr, parent, meta, levels, starts, ends, payload):
    """xa_store() of ``payload`` at every index of every [start, end)."""
    base = np.full(starts.size, payload, np.int64)
    _store_mapped(slots, hdr, parent, meta, levels, starts, ends, base, 0)


@njit(cache=True)
def _store_mapped(slots, hdr, parent, meta, levels, starts, ends, base, step):
    """xa_store() of ``base[r] + step * index`` at every index of range r,
    one descent per leaf (step 1 maps an index to a PFN, as a page cache
    maps pgoff to a folio)."""
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if s >= e:
            continue
        _xas_expand(slots, hdr, parent, meta, levels, e - 1)
        i = s
        while i < e:
            if meta[M_HEAD] < 0:                   # [0, 1) into an empty array
                _xa_store(slots, hdr, parent, meta, levels, i, base[r] + step * i)
                i += 1
                continue
            leaf = _xas_create(slots, hdr, parent, meta, levels, i, 0)
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
def _erase_ranges(slots, hdr, parent, meta, levels, starts, ends):
    """xa_erase() of every index of every [start, end); skips absent subtrees."""
    for r in range(starts.size):
        i, e = starts[r], ends[r]
        while i < e:
            n = meta[M_HEAD]
            if n < 0:
                if i == 0:
                    _xa_erase(slots, hdr, parent, meta, levels, 0)
                break
            if i > _max_index(np.int64(hdr[n, 0])):
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
                _xas_delete_node(slots, hdr, parent, meta, levels, n, True)
            i = stop


@njit(cache=True)
def _node_exists(slots, hdr, meta, index, shift):
    n = meta[M_HEAD]
    if n < 0 or shift > np.int64(hdr[n, 0]) or index > _max_index(np.int64(hdr[n, 0])):
        return False
    while np.int64(hdr[n, 0]) > shift:
        sh = np.int64(hdr[n, 0])
        v = slots[n, (index >> sh) & 63]
        if v <= 0:
            return False
        n = v - 1
    return True


@njit(cache=True)
def _count_missing(slots, hdr, parent, meta, starts, ends):
    """xa_nodes that storing every index of the ranges would add (ranges sorted
    by start, may overlap).  Exact: the dry run of _store_ranges."""
    if starts.size == 0:
        return 0
    head = meta[M_HEAD]
    old_nonempty = head >= 0 or meta[M_HEAD_ENTRY] != 0
    old_top = np.int64(hdr[head, 0]) if head >= 0 else np.int64(-6)
    hi_index = np.int64(0)
    for r in range(ends.size):
        hi_index = max(hi_index, ends[r] - 1)
    new_top = _top_shift(hi_index) if hi_index > 0 else np.int64(-6)
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
                if sh > old_top or not _node_exists(slots, hdr, meta, blk << b if b < 63 else 0, sh):
                    missing += 1
            prev = max(prev, hi)
    return missing


# --------------------------------------------------------------------------
# multi-index entries (xa_store_range of maximal extents)

@njit(cache=True)
def _store_extent_multi(slots, hdr, parent, meta, levels, first, last):
    """xa_store_range(first, last, XA_VALUE) into slots that are all NULL."""
    _xas_expand(slots, hdr, parent, meta, levels, _multi_max(last))
    i = first
    while i <= last:
        shift, sibs = _xas_set_range(i, last)
        if meta[M_HEAD] < 0:                       # [0, 0]: the entry is xa_head
            meta[M_HEAD_ENTRY] = XA_VALUE
        else:
            n = _xas_create(slots, hdr, parent, meta, levels, i, shift)
            off = (i >> shift) & 63
            for k in range(off, off + sibs + 1):
                v = slots[n, k]
                if v > 0 and shift > 0:
                    _free_subtree(slots, hdr, parent, meta, levels, v - 1)
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
        shift, sibs = _xas_set_range(i, last)
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
            _xas_delete_node(slots, hdr, parent, meta, levels, n, False)
        i += (sibs + 1) << shift
    meta[M_NR] -= last - first + 1


@njit(cache=True)
def _last_index(slots, hdr, meta):
    """Largest stored index, -1 if the array is empty."""
    n = meta[M_HEAD]
    if n < 0:
        return 0 if meta[M_HEAD_ENTRY] != 0 else -1
    base = np.int64(0)
    while True:
        sh = np.int64(hdr[n, 0])
        k = 63
        while slots[n, k] == 0:
            k -= 1
        v = slots[n, k]
        if v > 0 and sh > 0:
            base += np.int64(k) << sh
            n = v - 1
            continue
        return base + ((np.int64(k) + 1) << sh) - 1


@njit(cache=True)
def _canonical_height(slots, hdr, parent, meta, levels):
    """Make the top the one xa_store_range into an empty array gives."""
    last = _last_index(slots, hdr, meta)
    if last < 0:
        return
    m = _multi_max(last)
    if m == 0:                                     # only index 0: xa_head holds it
        while meta[M_HEAD] >= 0:
            n = meta[M_HEAD]
            v = slots[n, 0]
            _node_free(slots, hdr, parent, meta, levels, n)
            if hdr[n, 0] == 0:
                meta[M_HEAD] = -1
                meta[M_HEAD_ENTRY] = v
            else:
                meta[M_HEAD] = v - 1
                parent[v - 1] = -1
        return
    target = _top_shift(m)
    _xas_expand(slots, hdr, parent, meta, levels, m)
    n = meta[M_HEAD]
    while np.int64(hdr[n, 0]) > target:            # all entries lie under slot 0
        n = _pop_top(slots, hdr, parent, meta, levels, n)


@njit(cache=True)
def _replace_multi(slots, hdr, parent, meta, levels, old_s, old_e, new_s, new_e):
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
    if index > _max_index(np.int64(hdr[n, 0])):
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
def _regions_multi(slots, hdr, meta, starts, ends, out_s, out_e):
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


# --------------------------------------------------------------------------
# walks (xa_for_each order)

@njit(cache=True)
def _xas_start(slots, hdr, meta, index, cur):
    """Point cursor cur = [node, offset, node base index] at index's slot."""
    n = meta[M_HEAD]
    if n < 0:
        cur[0] = -1
        cur[1] = 0 if index == 0 else 1
        cur[2] = 0
        return
    if index > _max_index(np.int64(hdr[n, 0])):
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
def _xas_find(slots, hdr, parent, meta, cur):
    """Next present slot at or after the cursor: (found, index, shift, entry)."""
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


@njit(cache=True)
def _walk_runs(slots, hdr, parent, meta, start, stop, out_s, out_e):
    """Runs of present indices in [start, stop), merged where they touch.

    Returns (runs written, index to resume at or -1 when done).
    """
    cur = np.zeros(3, np.int64)
    _xas_start(slots, hdr, meta, start, cur)
    n = 0
    while True:
        found, idx, sh, v = _xas_find(slots, hdr, parent, meta, cur)
        if not found or idx >= stop:
            return n, np.int64(-1)
        a = max(idx, start)
        b = min(idx + (np.int64(1) << sh), stop)
        if n and out_e[n - 1] == a:
            out_e[n - 1] = b
        elif n == out_s.size:
            return n, a
        else:
            out_s[n] = a
            out_e[n] = b
            n += 1
        if sh == 0 and cur[0] >= 0:                # rest of this leaf inline (not xa_head)
            leaf = cur[0]
            base = cur[2]
            for k in range(cur[1], 64):
                if slots[leaf, k] == 0:
                    continue
                a = base + k
                if a >= stop:
                    return n, np.int64(-1)
                if out_e[n - 1] == a:
                    out_e[n - 1] = a + 1
                elif n == out_s.size:
                    cur[1] = k
                    return n, a
                else:
                    out_s[n] = a
                    out_e[n] = a + 1
                    n += 1
            cur[1] = 64


@njit(cache=True)
def _walk_regions(slots, hdr, parent, meta, reg_s, reg_e, out_s, out_e, fill):
    """Runs of present indices inside each region (ascending, disjoint);
    returns how many, writing them only when ``fill``."""
    cur = np.zeros(3, np.int64)
    n = 0
    last_e = np.int64(-1)
    for r in range(reg_s.size):
        start, stop = reg_s[r], reg_e[r]
        _xas_start(slots, hdr, meta, start, cur)
        while True:
            found, idx, sh, v = _xas_find(slots, hdr, parent, meta, cur)
            if not found or idx >= stop:
                break
            a = max(idx, start)
            b = min(idx + (np.int64(1) << sh), stop)
            if n and last_e == a:
                if fill:
                    out_e[n - 1] = b
            else:
                if fill:
                    out_s[n] = a
                    out_e[n] = b
                n += 1
            last_e = b
    return n


# --------------------------------------------------------------------------
# analytic node counts

@njit(cache=True)
def _node_counts(starts, ends, multi, ishift, out):
    """xa_nodes per level (out[k]: shift 6k) for sorted, non-overlapping extents.

    single: a node with shift s exists for each 2^(s+6)-aligned block holding
    a stored index, at shifts up to the top.  multi: below the top only
    blocks that hold a stored index *and* an unstored one (a block inside one
    maximal extent is a slot of a larger piece).  Indices are
    ``pfn >> ishift`` (10 for the IDA's chunks), extents sorted by start.
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
    m = _multi_max(last) if multi else last
    if m == 0:
        for k in range(XA_LEVELS):
            out[k] = 0
        return
    top = _top_shift(m) // 6
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
    """xa_nodes per level (index k: shift 6k) for a set of sorted,
    non-overlapping [start, end) extents, without building the tree.

    ``multi=False``: one entry per index (xa_store per index);
    ``multi=True``: xa_store_range of each maximal extent.  ``ishift``: the
    XArray index is ``pfn >> ishift`` (one entry per 2^ishift PFNs).  Runs in one
    compiled pass over the extents, never over indices.
    """
    out = np.zeros(XA_LEVELS, np.int64)
    _node_counts(np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                 bool(multi), int(ishift), out)
    return out


def estimate_levels(starts, ends, max_pfn: int, multi: bool) -> np.ndarray:
    """Validated xa_node counts per level for estimate(); sorted input skips the sort."""
    s = as_index_array(starts, "start")
    e = as_index_array(ends, "end")
    if s.shape != e.shape or not _fast_valid(s, e, int(max_pfn)):
        s, e = estimate_input(starts, ends, max_pfn)
    return xa_node_counts(s, e, multi)


def level_breakdown(levels: np.ndarray) -> dict[str, int]:
    """{"xa_node L0": bytes, ...} up to the top level (L0 alone if no node)."""
    nz = np.flatnonzero(levels)
    top = int(nz[-1]) if nz.size else 0
    return {f"xa_node L{k}": int(levels[k]) * kernel.XA_NODE_BYTES for k in range(top + 1)}


def level_formula(multi: bool) -> dict[str, str]:
    what = ("a 2^(6k+6)-aligned block holding both a stored and an unstored PFN "
            "(blocks inside one extent are slots of a larger entry)" if multi else
            "a 2^(6k+6)-aligned block holding a stored PFN")
    return {"xa_node Lk": f"{kernel.XA_NODE_BYTES} B (include/linux/xarray.h struct xa_node) x "
                          f"xa_nodes with shift 6k, one per {what}, below the top; the top "
                          f"has the least shift s with M >> s < 64 (lib/xarray.c xas_expand), "
                          f"no node if M == 0"}


# --------------------------------------------------------------------------
# the engine

class XaTree:
    """An XArray of a kmem-cache of xa_nodes held in numpy arrays.

    ``multi=False``: one entry per index; ``store_range`` stores ``payload``
    (nonzero int64, not in the sibling range -65..-2) at every index, as
    xa_store per index does.  ``multi=True``: the set of present indices is
    kept as the canonical xa_store_range() state (module docstring).

    Capacity is checked (and the pool grown within ``budget_bytes``) before
    any mutation, so an operation that raises leaves the tree unchanged.
    """

    def __init__(self, *, multi: bool = False, budget_bytes: int, what: str = "XArray"):
        self.multi = bool(multi)
        self.budget_bytes = int(budget_bytes)
        self.what = what
        self.meta = np.zeros(META_LEN, np.int64)
        self.meta[M_HEAD] = -1
        self.meta[M_FREE] = -1
        self.levels = np.zeros(XA_LEVELS, np.int64)
        self._alloc_pool(0)

    # --- pool -------------------------------------------------------------
    def _alloc_pool(self, cap: int) -> None:
        self.slots = np.zeros((cap, 64), np.int64)
        self.hdr = np.zeros((cap, 3), np.uint8)
        self.parent = np.full(cap, -1, np.int32)

    @property
    def capacity(self) -> int:
        return self.slots.shape[0]

    @property
    def _pool(self):
        return self.slots, self.hdr, self.parent, self.meta, self.levels

    def reserve(self, extra_nodes: int) -> None:
        """Make room for extra_nodes more xa_nodes, or raise MemoryBudgetError."""
        need = int(self.meta[M_USED]) + int(extra_nodes)
        free_rows = self.capacity - int(self.meta[M_HIGH])
        if int(extra_nodes) <= free_rows + (int(self.meta[M_HIGH]) - int(self.meta[M_USED])):
            return
        fixed = self.host_bytes() - self.capacity * NODE_HOST_BYTES
        check_budget(f"{self.what} with {need:,} xa_nodes",
                     fixed + need * NODE_HOST_BYTES, self.budget_bytes)
        budget_cap = (self.budget_bytes - fixed) // NODE_HOST_BYTES
        cap = max(need, min(budget_cap, self.capacity + self.capacity // 2, need + (need >> 2)))
        high = int(self.meta[M_HIGH])
        old = (self.slots, self.hdr, self.parent)
        self._alloc_pool(cap)
        self.slots[:high] = old[0][:high]
        self.hdr[:high] = old[1][:high]
        self.parent[:high] = old[2][:high]

    def host_bytes(self) -> int:
        return (self.slots.nbytes + self.hdr.nbytes + self.parent.nbytes
                + self.meta.nbytes + self.levels.nbytes)

    # --- queries ----------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta[M_NR])

    def node_counts_by_level(self) -> np.ndarray:
        return self.levels.copy()

    def nodes(self) -> int:
        return int(self.meta[M_USED])

    def load(self, indices: np.ndarray) -> np.ndarray:
        """Entry per index (0 if absent; XA_VALUE or a sibling in multi mode)."""
        return _load_many(*self._pool[:4], np.ascontiguousarray(indices, np.int64))

    def walk(self, start: int = 0, stop: int = _I64_MAX,
             chunk: int = EXTENT_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Runs of present indices in [start, stop), in index order, as
        batches of at most ``chunk`` runs (runs may touch across batches)."""
        out_s = np.empty(chunk, np.int64)
        out_e = np.empty(chunk, np.int64)
        pos = int(start)
        while pos >= 0:
            n, pos = _walk_runs(*self._pool[:4], pos, stop, out_s, out_e)
            pos = int(pos)
            if n:
                yield out_s[:n].copy(), out_e[:n].copy()

    # --- updates ----------------------------------------------------------
    def store_range(self, starts: np.ndarray, ends: np.ndarray, payload: int = XA_VALUE) -> None:
        """Store every index of every [start, end) (ranges may overlap)."""
        s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
        if s.size == 0:
            return
        if self.multi:
            self._update_multi(s, e, True)
            return
        payload = int(payload)
        if payload == 0 or -65 <= payload <= -2:
            raise ValueError(f"payload {payload} is NULL or a sibling entry")
        if not _is_sorted(s):
            order = np.argsort(s, kind="stable")
            s, e = s[order], e[order]
        self.reserve(_count_missing(*self._pool[:4], s, e))
        _store_ranges(*self._pool, s, e, payload)

    def erase_range(self, starts: np.ndarray, ends: np.ndarray) -> None:
        s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
        if s.size == 0:
            return
        if self.multi:
            self._update_multi(s, e, False)
        else:
            _erase_ranges(*self._pool, s, e)

    def store(self, indices, payload: int = XA_VALUE) -> None:
        idx = np.ascontiguousarray(indices, np.int64)
        self.store_range(idx, idx + 1, payload)

    def erase(self, indices) -> None:
        idx = np.ascontiguousarray(indices, np.int64)
        self.erase_range(idx, idx + 1)

    def _update_multi(self, s: np.ndarray, e: np.ndarray, mark: bool) -> None:
        s, e = normalize_extents(s, e)
        reg_s = np.empty_like(s)
        reg_e = np.empty_like(e)
        _regions_multi(self.slots, self.hdr, self.meta, s, e, reg_s, reg_e)
        reg_s, reg_e = normalize_extents(reg_s, reg_e)
        pool = self._pool[:4]
        nold = _walk_regions(*pool, reg_s, reg_e, reg_s[:0], reg_e[:0], False)
        old_s = np.empty(nold, np.int64)
        old_e = np.empty(nold, np.int64)
        _walk_regions(*pool, reg_s, reg_e, old_s, old_e, True)
        old_s, old_e = normalize_extents(old_s, old_e)
        if mark:
            new_s, new_e = normalize_extents(np.concatenate((old_s, s)), np.concatenate((old_e, e)))
        else:
            new_s, new_e = extents.subtract((old_s, old_e), (s, e))
        self.reserve(int(xa_node_counts(new_s, new_e, True).sum()) + XA_LEVELS + 1)
        _replace_multi(*self._pool, old_s, old_e, new_s, new_e)

    # --- invariants -------------------------------------------------------
    def check(self) -> None:
        """Raise AssertionError unless every xa_node invariant holds and the
        node counts equal the analytic count for the stored set."""
        code, node = _check_tree(*self._pool, self.multi)
        assert code == 0, f"{self.what}: {_CHECK_MESSAGES[code]} (xa_node {node})"
        runs = list(self.walk())
        s = np.concatenate([r[0] for r in runs]) if runs else np.empty(0, np.int64)
        e = np.concatenate([r[1] for r in runs]) if runs else np.empty(0, np.int64)
        assert int((e - s).sum()) == len(self), \
            f"{self.what}: {int((e - s).sum())} indices walked, {len(self)} counted"
        want = xa_node_counts(s, e, self.multi)
        assert np.array_equal(want, self.levels), \
            f"{self.what}: xa_nodes per level {self.levels.tolist()} != analytic {want.tolist()}"


_CHECK_MESSAGES = {
    1: "count differs from the nonzero slots",
    2: "child's parent or offset link is wrong",
    3: "child's shift is not parent's shift - 6",
    4: "empty xa_node in the tree",
    5: "top could shrink (xas_shrink) but did not",
    6: "xa_head holds an entry while xa_nodes exist",
    7: "nodes per level differ from the nodes reachable",
    8: "live + free xa_nodes differ from the pool's high mark",
    9: "multi-index entry in a single-index tree",
    10: "sibling entry does not follow its canonical slot",
    11: "top shift differs from the canonical xa_store_range height",
}


@njit(cache=True)
def _load_many(slots, hdr, parent, meta, idx):
    out = np.empty(idx.size, np.int64)
    for i in range(idx.size):
        out[i] = _xas_load(slots, hdr, parent, meta, idx[i])
    return out


@njit(cache=True)
def _is_sorted(a):
    for i in range(1, a.size):
        if a[i] < a[i - 1]:
            return False
    return True


@njit(cache=True)
def _check_tree(slots, hdr, parent, meta, levels, multi):
    head = meta[M_HEAD]
    seen = np.zeros(XA_LEVELS, np.int64)
    if head >= 0:
        if meta[M_HEAD_ENTRY] != 0:
            return 6, head
        if parent[head] != -1:
            return 2, head
        stack = np.empty(XA_LEVELS * 64, np.int64)
        sp = 1
        stack[0] = head
        while sp:
            sp -= 1
            n = stack[sp]
            sh = np.int64(hdr[n, 0])
            seen[sh // 6] += 1
            cnt = 0
            for k in range(64):
                v = slots[n, k]
                if v == 0:
                    continue
                cnt += 1
                if v > 0 and sh > 0:
                    c = v - 1
                    if parent[c] != n or hdr[c, 1] != k:
                        return 2, c
                    if np.int64(hdr[c, 0]) != sh - 6:
                        return 3, c
                    stack[sp] = c
                    sp += 1
                elif multi:
                    if v <= XA_SIBLING:
                        c = XA_SIBLING - v
                        if c >= k or not (slots[n, k - 1] == XA_VALUE and k - 1 == c
                                          or slots[n, k - 1] == v):
                            return 10, n
                    elif v != XA_VALUE:
                        return 9, n
                elif sh > 0:
                    return 9, n
            if cnt != hdr[n, 2]:
                return 1, n
            if cnt == 0:
                return 4, n
        if hdr[head, 2] == 1 and slots[head, 0] != 0:
            if hdr[head, 0] == 0 or slots[head, 0] > 0:
                if not multi:
                    return 5, head
        if multi:
            m = _multi_max(_last_index(slots, hdr, meta))
            if m == 0 or _top_shift(m) != np.int64(hdr[head, 0]):
                return 11, head
    for k in range(XA_LEVELS):
        if seen[k] != levels[k]:
            return 7, k
    free = 0
    f = meta[M_FREE]
    while f >= 0:
        free += 1
        f = parent[f]
    if free + meta[M_USED] != meta[M_HIGH]:
        return 8, -1
    return 0, -1


# --------------------------------------------------------------------------
# the trackers

class XArrayTracker(Tracker):
    """One xa_store(pfn, xa_mk_value(1)) per private page; modeled bytes are
    576 B per xa_node, counted per level as lib/xarray.c would hold them."""

    name = "xarray"
    option = "1: XArray, one value entry per PFN"
    multi = False

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.tree = XaTree(multi=self.multi, budget_bytes=self.budget_bytes,
                           what=f"{self.name} tracker")

    def _mark_ranges(self, starts, ends):
        self.tree.store_range(starts, ends)

    def _unmark_ranges(self, starts, ends):
        self.tree.erase_range(starts, ends)

    def _contains(self, pfns):
        return self.tree.load(pfns) != 0

    def _count(self):
        return len(self.tree)

    def _extent_batches(self):
        return self.tree.walk()

    def memory(self):
        breakdown = level_breakdown(self.tree.levels)
        total = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=total,
            breakdown=breakdown,
            host_bytes=self.tree.host_bytes(),
            scanned_bytes=total,
            notes=("xa_node counts as lib/xarray.c holds them; marks, xa_lock and slab "
                   "overhead (7 nodes per 4 KiB page) not modeled"
                   + ("; canonical xa_store_range state of the maximal extents"
                      if self.multi else "")),
            formula=level_formula(self.multi),
        )

    @classmethod
    def estimate(cls, starts, ends, max_pfn):
        levels = estimate_levels(starts, ends, max_pfn, cls.multi)
        return int(levels.sum()) * kernel.XA_NODE_BYTES

    def check(self):
        self.tree.check()
        assert len(self.tree) <= self.max_pfn


class XArrayMultiTracker(XArrayTracker):
    """Each maximal extent stored with xa_store_range() (multi-index entries)."""

    name = "xarray-multi"
    option = "1: XArray, xa_store_range per extent"
    multi = True
