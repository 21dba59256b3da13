"""The XArray engine: lib/xarray.c's tree of 576-B xa_nodes in numpy arrays.

One engine, a declared API, several users, as in the kernel
(include/linux/xarray.h declares the xas_*/xa_* operations; lib/idr.c builds
the IDA on them without touching XArray internals).  Users here: the
``xarray``/``xarray-multi`` trackers (:mod:`trackers.xarray`), the IDA
(:mod:`trackers.ida`: chunks of 1024 PFNs) and KVM's per-TD
mem_attr_array and guest_memfd page cache (:mod:`trackers.kvm`).  They use
:class:`XaTree`'s methods and the public compiled functions below (named
after their lib/xarray.c counterparts), passing ``*tree.arrays`` through and
never indexing the arrays themselves.

The tree (kernel terms throughout)
    xa_node: 576 B (kernel.XA_NODE_BYTES): shift, offset, count, nr_values,
    parent, array, private_list, slots[64], marks[3].  A node with shift s
    covers 2^(s+6) indices.  Height comes from the largest index: the top
    node has the least shift s with ``max >> s < 64``; a lone entry at index
    0 lives in xa_head and needs no node (xas_expand).  Empty nodes are freed
    (xas_delete_node) and the top is popped while it holds one child in slot
    0 (xas_shrink).  The node counts are those of :mod:`trackers.xa.model`,
    which :meth:`XaTree.check` asserts level by level.

Single-index trees (``multi=False``)
    one entry per index, what ``xa_store(xa, index, entry)`` per index gives
    (KVM's mem_attr_array holds xa_mk_value(attributes) per GFN).  Per-index
    xa_store/xa_erase with xas_shrink leave a state that depends only on the
    set: history independence is the kernel's own.

Multi-index trees (``multi=True``, CONFIG_XARRAY_MULTI)
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

Not modeled: marks (XA_FREE_MARK lives in the 576 B anyway), xa_lock, RCU
freeing, slab packing (7 nodes per 4 KiB page), GFP flags and xas_nomem's
retry: allocation here cannot fail midway, because every update reserves its
nodes first (below).

Host layout: one row per xa_node in a :class:`trackers.pool.NodePool`, a
free list threaded through ``parent``:

    slots  int64[cap, 64]  0 NULL; >0 child xa_node id + 1 (nodes with
                           shift > 0); XA_VALUE (-1) a (multi-index) value
                           entry; XA_SIBLING - c a sibling of slot c; in shift-0
                           nodes of a single-index tree any nonzero payload.
    hdr    uint8[cap, 3]   shift, offset (slot in parent), count (nonzero slots,
                           siblings included, as lib/xarray.c counts them)
    parent int32[cap]      parent id, -1 at the top; next free id when free

so a node costs 519 host bytes against 576 modeled, plus 136 bytes of
``meta``/``levels`` per tree.

Budget: an update computes the nodes it may add *before* it changes
anything and asks the tracker's :class:`trackers.pool.HostBudget` for them;
a refusal (MemoryBudgetError) leaves the tree as it was.  Large updates are
first checked against a lower bound computed without sorting
(:func:`xa_nodes_lower_bound`), so an update that cannot fit is refused
before the sort and the region walks that the exact count needs.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from numba import njit

from .. import extents
from ..base import EXTENT_CHUNK
from ..extents import normalize_extents
from ..pool import HostBudget, NodePool
from .model import XA_LEVELS, max_index, multi_max, top_shift, xa_node_counts

XA_VALUE = -1                  # xa_mk_value(): the entry every index maps to
XA_SIBLING = -2                # XA_SIBLING - c: xa_mk_sibling(c)
NODE_HOST_BYTES = 64 * 8 + 3 + 4

# meta[] fields: xa_head (node id or -1), xa_head's entry when no node,
# free-list head, high mark, nodes in use, entries (indices) stored
M_HEAD, M_HEAD_ENTRY, M_FREE, M_HIGH, M_USED, M_NR = range(6)
META_LEN = 6

#: an update with this many ranges, or one range this long, is first checked
#: against xa_nodes_lower_bound (below that the exact count is cheap)
BOUND_MIN_RANGES = 4096
BOUND_MIN_INDICES = 1 << 22
#: blocks per level the lower bound tracks (int32 counters: 4 MiB at most)
BOUND_BLOCKS = 1 << 20

_I64_MAX = np.iinfo(np.int64).max
_I32_MAX = np.iinfo(np.int32).max


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
def _xas_expand(slots, hdr, parent, meta, levels, want):
    """Add xa_nodes above the head until the tree can hold index ``want``
    (xas_expand); a lone entry at index 0 stays in xa_head."""
    head = meta[M_HEAD]
    if head < 0:
        if want == 0:
            return
        if meta[M_HEAD_ENTRY] == 0:
            meta[M_HEAD] = _node_alloc(slots, hdr, parent, meta, levels,
                                       top_shift(want), -1, 0)
            return
        head = _node_alloc(slots, hdr, parent, meta, levels, 0, -1, 0)
        slots[head, 0] = meta[M_HEAD_ENTRY]
        hdr[head, 2] = 1
        meta[M_HEAD_ENTRY] = 0
        meta[M_HEAD] = head
    while want > max_index(np.int64(hdr[head, 0])):
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


# --------------------------------------------------------------------------
# single-index entries (xa_store / xa_erase per index)

@njit(cache=True)
def xa_store(slots, hdr, parent, meta, levels, index, payload):
    """xa_store() of a nonzero ``payload`` at ``index`` in a single-index
    tree: xas_expand to the index's height, xas_create the path, set the
    slot (lib/xarray.c xa_store/__xa_store).  The caller has reserved the
    nodes (XaTree.reserve); a lone entry at index 0 stays in xa_head."""
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
    _xas_delete_node(slots, hdr, parent, meta, levels, n, True)


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
        _xas_expand(slots, hdr, parent, meta, levels, e - 1)
        i = s
        while i < e:
            if meta[M_HEAD] < 0:                   # [0, 1) into an empty array
                xa_store(slots, hdr, parent, meta, levels, i, base[r] + step * i)
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
                _xas_delete_node(slots, hdr, parent, meta, levels, n, True)
            i = stop


@njit(cache=True)
def _node_exists(slots, hdr, meta, index, shift):
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
                if sh > old_top or not _node_exists(slots, hdr, meta, blk << b if b < 63 else 0, sh):
                    missing += 1
            prev = max(prev, hi)
    return missing


@njit(cache=True)
def _sampled_blocks(nb, cap_blocks):
    """(stride, sampled): every stride-th of nb blocks, at most cap_blocks."""
    stride = np.int64(1)
    while (nb + stride - 1) // stride > cap_blocks:
        stride *= 2
    return stride, (nb + stride - 1) // stride


@njit(cache=True)
def xa_nodes_lower_bound(slots, hdr, parent, meta, starts, ends, multi, store, limit,
                         cap_blocks):
    """A lower bound on the xa_nodes the tree holds after storing (``store``)
    or erasing every index of the ranges, without sorting them.

    Ranges in any order, may overlap.  One pass over the ranges per level k
    (shift 6k), finest first, counting per 2^(6k+6)-aligned block B the
    indices the ranges cover (saturating); blocks are sampled one in
    ``stride`` so that at most ``cap_blocks`` counters exist per level.  A
    block with id >= 1 is a node of the tree *after* the update if

    * single-index store: B holds a stored index (B is touched) -- counted
      when B has no node now, on top of the nodes in use (a store frees none);
    * multi-index store: B has no node now and is empty, and the ranges do
      not cover it -- B will hold a stored and an unstored index;
    * multi-index erase: B has no node now and lies inside one entry, and
      the ranges do not cover it -- B will hold both as well.

    (id >= 1 puts a stored index at or above 2^(6k+6), so the top is above
    level k and B is below it: trackers.xa.model.)  Every counted node is
    distinct, so the sum is a lower bound; single-index erases add nothing
    (returns 0).  Stops once the bound exceeds ``limit``, and makes no pass
    at all when even every sampled block could not take it past ``limit``
    (it then returns the nodes in use of a single-index store, else 0).
    ``limit < 0``: every level, no early stop.  A level whose
    interior blocks would cost more than a few passes over the counters
    (heavily overlapping long ranges) is skipped, which keeps the bound sound.
    """
    if not store and not multi:
        return np.int64(0)
    hi_idx = np.int64(0)
    for r in range(starts.size):
        if ends[r] > starts[r]:
            hi_idx = max(hi_idx, ends[r] - 1)
    bound = meta[M_USED] if (store and not multi) else np.int64(0)
    most = bound                            # what the bound could reach at all
    for k in range(XA_LEVELS):
        b = 6 * k + 6
        if b >= 63 or (hi_idx >> b) == 0:
            break
        most += (_sampled_blocks((hi_idx >> b) + 1, cap_blocks)[1]) - 1
    if 0 <= limit and most <= limit:
        return bound                        # cannot exceed limit: skip the passes
    for k in range(XA_LEVELS):
        b = 6 * k + 6
        if b >= 63:
            break
        nb = (hi_idx >> b) + 1
        if nb <= 1:
            break
        stride, ns = _sampled_blocks(nb, cap_blocks)
        size = np.int64(1) << b
        sat = min(size, np.int64(_I32_MAX))
        cnt = np.zeros(ns, np.int32)
        last_block = (np.int64(1) << (63 - b)) - 1     # (j + 1) << b would overflow past it
        work = np.int64(0)
        max_work = 4 * (ns + starts.size)
        for r in range(starts.size):
            s, e = starts[r], ends[r]
            if s >= e:
                continue
            lo = s >> b
            hi = (e - 1) >> b
            j = ((lo + stride - 1) // stride) * stride
            while j <= hi:
                a = max(s, j << b)
                z = e if j >= last_block else min(e, (j + 1) << b)
                c = np.int64(cnt[j // stride]) + (z - a)
                cnt[j // stride] = min(c, sat)
                j += stride
                work += 1
            if work > max_work:
                break
        if work > max_work:
            continue                        # level skipped: the bound stays sound
        for jj in range(1, ns):
            c = np.int64(cnt[jj])
            if c == 0:
                continue
            base = (jj * stride) << b
            if _node_exists(slots, hdr, meta, base, b - 6):
                continue
            if not multi:
                bound += 1
            elif c < sat and (xas_load(slots, hdr, parent, meta, base) == 0) == store:
                bound += 1
        if 0 <= limit < bound:
            return bound
    return bound


# --------------------------------------------------------------------------
# multi-index entries (xa_store_range of maximal extents)

@njit(cache=True)
def _store_extent_multi(slots, hdr, parent, meta, levels, first, last):
    """xa_store_range(first, last, XA_VALUE) into slots that are all NULL."""
    _xas_expand(slots, hdr, parent, meta, levels, multi_max(last))
    i = first
    while i <= last:
        shift, sibs = xas_set_range(i, last)
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
    m = multi_max(last)
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
    target = top_shift(m)
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


@njit(cache=True)
def _walk_runs(slots, hdr, parent, meta, start, stop, out_s, out_e):
    """Runs of present indices in [start, stop), merged where they touch.

    Returns (runs written, index to resume at or -1 when done).
    """
    cur = np.zeros(3, np.int64)
    xas_start(slots, hdr, meta, start, cur)
    n = 0
    while True:
        found, idx, sh, v = xas_find(slots, hdr, parent, meta, cur)
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
        xas_start(slots, hdr, meta, start, cur)
        while True:
            found, idx, sh, v = xas_find(slots, hdr, parent, meta, cur)
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
# the engine

class XaTree:
    """An XArray: xa_nodes in a :class:`~trackers.pool.NodePool`.

    ``multi=False``: one entry per index; ``store_range`` stores ``payload``
    (nonzero int64, not in the sibling range -65..-2) at every index, as
    xa_store per index does.  ``multi=True``: the set of present indices is
    kept as the canonical xa_store_range() state (module docstring).

    ``budget``: the tracker's :class:`~trackers.pool.HostBudget`, shared with
    its other pools; or ``budget_bytes`` for a tree with a budget of its own.
    ``what`` names the tree in messages.  Capacity is reserved within the
    budget before any mutation, so an operation that raises leaves the tree
    unchanged.
    """

    def __init__(self, *, multi: bool = False, budget: HostBudget | None = None,
                 budget_bytes: int | None = None, what: str = "XArray"):
        if budget is None:
            if budget_bytes is None:
                raise TypeError("XaTree needs budget= (a HostBudget) or budget_bytes=")
            budget = HostBudget(budget_bytes, what)
        self.multi = bool(multi)
        self.what = what
        self.budget = budget
        self.meta = np.zeros(META_LEN, np.int64)
        self.meta[M_HEAD] = -1
        self.meta[M_FREE] = -1
        self.levels = np.zeros(XA_LEVELS, np.int64)
        self.pool = NodePool(budget, "xa_node",
                             {"slots": (np.int64, (64,), 0), "hdr": (np.uint8, (3,), 0),
                              "parent": (np.int32, (), -1)},
                             what=what, fixed_bytes=self.meta.nbytes + self.levels.nbytes)

    # --- the arrays the compiled xa_*/xas_* functions take ----------------
    @property
    def slots(self) -> np.ndarray:
        return self.pool["slots"]

    @property
    def hdr(self) -> np.ndarray:
        return self.pool["hdr"]

    @property
    def parent(self) -> np.ndarray:
        return self.pool["parent"]

    @property
    def arrays(self) -> tuple:
        """(slots, hdr, parent, meta, levels): the struct xarray the compiled
        xa_*/xas_* functions take, in this order (walks and loads take the
        first four).  New objects after the pool grows: fetch after reserve."""
        return self.pool["slots"], self.pool["hdr"], self.pool["parent"], self.meta, self.levels

    # --- capacity ---------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self.pool.capacity

    def reserve(self, extra_nodes: int) -> None:
        """Room for ``extra_nodes`` more xa_nodes than are in use, or
        MemoryBudgetError (nothing allocated).  Freed nodes are reused first."""
        self.pool.reserve(int(self.meta[M_USED]) + int(extra_nodes))

    def nodes_missing(self, starts, ends) -> int:
        """xa_nodes a single-index store of every index of the ranges would
        add (ranges in any order, may overlap).  Exact: the dry run of
        :func:`xa_store_ranges`."""
        s, e = _sorted_ranges(starts, ends)
        return int(xa_nodes_missing(*self.arrays[:4], s, e))

    def refuse_early(self, starts, ends, *, store: bool) -> None:
        """MemoryBudgetError if the tree after the update surely cannot fit
        the budget, decided from :func:`xa_nodes_lower_bound` without sorting.
        Small updates pass unchecked (their exact count is cheap)."""
        s = np.ascontiguousarray(starts, np.int64)
        e = np.ascontiguousarray(ends, np.int64)
        if s.size < BOUND_MIN_RANGES and (s.size == 0 or int((e - s).max()) < BOUND_MIN_INDICES):
            return
        limit = self.budget.rows_left(self.pool)
        bound = int(xa_nodes_lower_bound(*self.arrays[:4], s, e, self.multi, bool(store),
                                         limit, BOUND_BLOCKS))
        if bound > limit:
            self.budget.check([(self.pool, bound)], at_least=True)

    def host_bytes(self) -> int:
        return self.pool.host_bytes()

    # --- queries ----------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta[M_NR])

    def node_counts_by_level(self) -> np.ndarray:
        """xa_nodes in use per level (index k: shift 6k)."""
        return self.levels.copy()

    def nodes(self) -> int:
        return int(self.meta[M_USED])

    def load(self, indices: np.ndarray) -> np.ndarray:
        """xa_load per index: the entry (0 if absent; XA_VALUE or a sibling
        in a multi-index tree)."""
        return _load_many(*self.arrays[:4], np.ascontiguousarray(indices, np.int64))

    def walk(self, start: int = 0, stop: int = _I64_MAX,
             chunk: int = EXTENT_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Runs of present indices in [start, stop), in index order (the
        xa_for_each order), as batches of at most ``chunk`` runs (runs may
        touch across batches)."""
        out_s = np.empty(chunk, np.int64)
        out_e = np.empty(chunk, np.int64)
        pos = int(start)
        while pos >= 0:
            n, pos = _walk_runs(*self.arrays[:4], pos, stop, out_s, out_e)
            pos = int(pos)
            if n:
                yield out_s[:n].copy(), out_e[:n].copy()

    # --- updates ----------------------------------------------------------
    def store_range(self, starts: np.ndarray, ends: np.ndarray, payload: int = XA_VALUE) -> None:
        """Store every index of every [start, end) (ranges in any order, may
        overlap); a multi-index tree stays canonical."""
        s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
        if s.size == 0:
            return
        if not self.multi:
            payload = int(payload)
            if payload == 0 or -65 <= payload <= -2:
                raise ValueError(f"payload {payload} is NULL or a sibling entry")
        self.refuse_early(s, e, store=True)
        if self.multi:
            self._update_multi(s, e, True)
            return
        s, e = _sorted_ranges(s, e)
        self.reserve(xa_nodes_missing(*self.arrays[:4], s, e))
        xa_store_ranges(*self.arrays, s, e, payload)

    def store_mapped(self, starts, ends, base, step: int = 1) -> None:
        """Store ``base[r] + step * index`` at every index of range r (a
        single-index tree; step 1 maps an index to a PFN as a page cache maps
        pgoff to a folio).  Entries must be nonzero and not siblings."""
        if self.multi:
            raise ValueError("store_mapped stores one entry per index: not a multi-index tree")
        s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
        if s.size == 0:
            return
        self.refuse_early(s, e, store=True)
        self.reserve(self.nodes_missing(s, e))
        xa_store_mapped(*self.arrays, s, e, np.ascontiguousarray(base, np.int64), int(step))

    def erase_range(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """Erase every index of every [start, end) (any order, may overlap)."""
        s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
        if s.size == 0:
            return
        if self.multi:
            self.refuse_early(s, e, store=False)
            self._update_multi(s, e, False)
        else:
            xa_erase_ranges(*self.arrays, s, e)

    def store(self, indices, payload: int = XA_VALUE) -> None:
        idx = np.ascontiguousarray(indices, np.int64)
        self.store_range(idx, idx + 1, payload)

    def erase(self, indices) -> None:
        idx = np.ascontiguousarray(indices, np.int64)
        self.erase_range(idx, idx + 1)

    def _update_multi(self, s: np.ndarray, e: np.ndarray, mark: bool) -> None:
        """Re-store the maximal extents the ranges touch, canonically."""
        s, e = normalize_extents(s, e)
        reg_s = np.empty_like(s)
        reg_e = np.empty_like(e)
        _regions_multi(self.slots, self.hdr, self.meta, s, e, reg_s, reg_e)
        reg_s, reg_e = normalize_extents(reg_s, reg_e)
        walk = self.arrays[:4]
        nold = _walk_regions(*walk, reg_s, reg_e, reg_s[:0], reg_e[:0], False)
        old_s = np.empty(nold, np.int64)
        old_e = np.empty(nold, np.int64)
        _walk_regions(*walk, reg_s, reg_e, old_s, old_e, True)
        old_s, old_e = normalize_extents(old_s, old_e)
        if mark:
            new_s, new_e = normalize_extents(np.concatenate((old_s, s)), np.concatenate((old_e, e)))
        else:
            new_s, new_e = extents.subtract((old_s, old_e), (s, e))
        self.reserve(int(xa_node_counts(new_s, new_e, True).sum()) + XA_LEVELS + 1)
        _replace_multi(*self.arrays, old_s, old_e, new_s, new_e)

    # --- invariants -------------------------------------------------------
    def check(self) -> None:
        """Raise AssertionError unless every xa_node invariant holds and the
        node counts equal the analytic count (trackers.xa.model) for the
        stored set."""
        code, node = _check_tree(*self.arrays, self.multi)
        assert code == 0, f"{self.what}: {_CHECK_MESSAGES[code]} (xa_node {node})"
        runs = list(self.walk())
        s = np.concatenate([r[0] for r in runs]) if runs else np.empty(0, np.int64)
        e = np.concatenate([r[1] for r in runs]) if runs else np.empty(0, np.int64)
        assert int((e - s).sum()) == len(self), \
            f"{self.what}: {int((e - s).sum())} indices walked, {len(self)} counted"
        want = xa_node_counts(s, e, self.multi)
        assert np.array_equal(want, self.levels), \
            f"{self.what}: xa_nodes per level {self.levels.tolist()} != analytic {want.tolist()}"
        assert self.pool.capacity >= int(self.meta[M_HIGH]), \
            f"{self.what}: high mark {int(self.meta[M_HIGH])} past the pool's {self.capacity} rows"


def _sorted_ranges(starts, ends):
    """Ranges as contiguous int64, sorted by start (stable) unless already."""
    s, e = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64)
    if not _is_sorted(s):
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
    return s, e


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
        out[i] = xas_load(slots, hdr, parent, meta, idx[i])
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
            m = multi_max(_last_index(slots, hdr, meta))
            if m == 0 or top_shift(m) != np.int64(hdr[head, 0]):
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
