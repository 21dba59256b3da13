"""Multi-index entries (CONFIG_XARRAY_MULTI): xa_store_range() and xa_erase()
as lib/xarray.c runs them, and the update every multi-index tree makes.

Entries.  ``xa_store_range(first, last)`` first calls xas_create() for the
aligned block of order ``__ffs(last + 1)`` that ends at ``last``
(xas_set_order), then cuts [first, last] into pieces with xas_set_range()
and stores each with xas_store(): a value entry in slot ``offset`` of the
node with the piece's shift (a multiple of 6), followed by ``sibs`` sibling
entries.  ``xa_erase(index)`` stores NULL over the entry covering ``index``
and its siblings.  A 2^(shift+6)-aligned block wholly inside the range is a
slot of its parent, not a node.

Where the kernel grows, frees and shrinks (each followed here, not modeled):

* xas_expand stacks nodes over the top while the top cannot hold xas_max():
  the piece's last index, or ``size`` for a piece at index 0 whose mask
  covers its index (a multi-index entry at 0 cannot sit in xa_head), so
  ``[0, 2^k - 1]`` grows the tree to hold index 2^k;
* xas_create allocates every missing node on the path down to the piece's
  shift and stops at a value entry it meets on the way (the store then
  replaces that entry's slot alone: xa_sibs = 0);
* xas_store frees every node below a slot it overwrites (xas_free_nodes);
* xa_erase frees the nodes left empty (xas_delete_node) and, only when that
  stops at the top, pops the top while it holds one child node in slot 0
  (xas_shrink; a value entry in slot 0 of a node above shift 0 stays).  A
  store never shrinks, and an erase below a top that keeps other children
  does not either: so the top a history grew can stay after the index that
  grew it is gone, and the tree is shaped by its history.

The update (``XaTree.store_range``/``erase_range`` of a multi-index tree;
what ``xarray-multi@kernel`` does with the kernel's calls): a multi-index
entry cannot be cut in place (that needs xas_split), so an update erases
every entry of the maximal extents it touches (mark: overlap or adjoin;
unmark: overlap), in index order, then xa_store_range()s the resulting
maximal extents, in order.  The entries are therefore always the
xas_set_range() pieces of the maximal extents (``check`` asserts it); the
nodes above them are whatever that history left.  A fresh build (one store
into an empty array) holds what :mod:`trackers.xa.model` counts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .model import max_index
from .xas import (M_HEAD, M_HEAD_ENTRY, M_NR, XA_SIBLING, XA_VALUE, xas_alloc,
                  xas_delete_node, xas_expand, xas_free_nodes, xas_set_range)


# --------------------------------------------------------------------------
# xas_* for one value entry of (sibs + 1) << shift indices

@njit(cache=True)
def xas_descend(slots, n, sh, index):
    """lib/xarray.c xas_descend(): (offset, entry) of ``index`` in node ``n``
    of shift ``sh``, a sibling entry resolved to the slot of the entry it
    points at."""
    off = (index >> sh) & 63
    v = slots[n, off]
    if v <= XA_SIBLING:
        off = XA_SIBLING - v
        v = slots[n, off]
    return off, v


@njit(cache=True)
def xas_max(index, shift, sibs):
    """lib/xarray.c xas_max(): the largest index the tree must hold to store
    a piece of ``(sibs + 1) << shift`` indices at ``index``."""
    m = index
    if shift or sibs:
        mask = ((sibs + 1) << shift) - 1
        m |= mask
        if mask == m:
            m += 1
    return m


@njit(cache=True)
def xas_create_entry(slots, hdr, parent, meta, levels, index, shift, sibs):
    """xas_create(xas, allow_root=true) for a fresh xa_state at ``index``
    with this shift and sibs: expand the top to xas_max(), then allocate the
    missing nodes on the path down to ``shift``.  Returns (node, offset,
    entry there): node -1 for xa_head; a node of a larger shift when a value
    entry covering the index stopped the descent (xas_descend resolves a
    sibling to its entry's slot)."""
    xas_expand(slots, hdr, parent, meta, levels, xas_max(index, shift, sibs))
    n = meta[M_HEAD]
    if n < 0:                                      # index 0, one index: xa_head
        return np.int64(-1), np.int64(0), meta[M_HEAD_ENTRY]
    while True:
        sh = np.int64(hdr[n, 0])
        off, v = xas_descend(slots, n, sh, index)
        if sh <= shift or v < 0:
            return n, off, v
        if v == 0:
            n = xas_alloc(slots, hdr, parent, meta, levels, sh - 6, n, off)
        else:
            n = v - 1


@njit(cache=True)
def xas_store_entry(slots, hdr, parent, meta, levels, index, shift, sibs):
    """xas_store(xas, xa_mk_value()) of a piece: the value entry in its slot,
    ``sibs`` siblings after it; nodes under overwritten slots freed
    (xas_free_nodes).  Storing over the same value is a no-op, as in the
    kernel."""
    n, off, first = xas_create_entry(slots, hdr, parent, meta, levels, index, shift, sibs)
    if n < 0:
        meta[M_HEAD_ENTRY] = XA_VALUE
        return
    sh = np.int64(hdr[n, 0])
    if sh > shift:
        sibs = 0
    if first == XA_VALUE and sibs == 0:
        return
    added = 0
    for k in range(off, off + sibs + 1):
        old = slots[n, k]
        slots[n, k] = XA_VALUE if k == off else XA_SIBLING - off
        if old > 0 and sh > 0:
            xas_free_nodes(slots, hdr, parent, meta, levels, old - 1)
        if old == 0:
            added += 1
    hdr[n, 2] += added


@njit(cache=True)
def xa_erase_entry(slots, hdr, parent, meta, levels, index):
    """xa_erase(): xas_store(NULL) over the entry covering ``index`` and its
    siblings, then xas_delete_node, which runs xas_shrink when it stops at
    the top.  No entry there: no-op."""
    n = meta[M_HEAD]
    if n < 0:
        if index == 0:
            meta[M_HEAD_ENTRY] = 0
        return
    if index > max_index(np.int64(hdr[n, 0])):
        return
    while True:
        sh = np.int64(hdr[n, 0])
        off, v = xas_descend(slots, n, sh, index)
        if sh == 0 or v <= 0:
            break
        n = v - 1
    if v == 0:
        return
    k = off
    removed = 0
    while True:
        slots[n, k] = 0
        removed += 1
        if k == 63 or slots[n, k + 1] > XA_SIBLING:
            break
        k += 1
    hdr[n, 2] -= removed
    xas_delete_node(slots, hdr, parent, meta, levels, n, True)


@njit(cache=True)
def xa_store_range(slots, hdr, parent, meta, levels, first, last):
    """lib/xarray.c xa_store_range(first, last, xa_mk_value()): xas_create()
    of the order-__ffs(last + 1) block ending at ``last``, then each
    xas_set_range() piece stored in index order.  Does not count indices."""
    order = np.int64(0)
    while ((last + 1) >> order) & 1 == 0:
        order += 1
    xas_create_entry(slots, hdr, parent, meta, levels, (last >> order) << order,
                     order - order % 6, (np.int64(1) << (order % 6)) - 1)
    i = first
    while i <= last:
        shift, sibs = xas_set_range(i, last)
        xas_store_entry(slots, hdr, parent, meta, levels, i, shift, sibs)
        i += (sibs + 1) << shift


# --------------------------------------------------------------------------
# the update: erase the touched maximal extents, store the new ones

@njit(cache=True)
def xa_entry_span(slots, hdr, meta, index):
    """(first, end, shift) of the entry covering ``index``: [first, end) and
    the shift of the node holding it; (0, 0, 0) if none."""
    n = meta[M_HEAD]
    zero = np.int64(0)
    if n < 0:
        if index == 0 and meta[M_HEAD_ENTRY] != 0:
            return zero, np.int64(1), zero
        return zero, zero, zero
    if index > max_index(np.int64(hdr[n, 0])):
        return zero, zero, zero
    base = np.int64(0)
    while True:
        sh = np.int64(hdr[n, 0])
        off = (index >> sh) & 63
        v = slots[n, off]
        if v == 0:
            return zero, zero, zero
        if v > 0 and sh > 0:
            base += off << sh
            n = v - 1
            continue
        c = off if v >= XA_VALUE else XA_SIBLING - v
        k = c + 1
        while k < 64 and slots[n, k] == XA_SIBLING - c:
            k += 1
        return base + (c << sh), base + (np.int64(k) << sh), sh


@njit(cache=True)
def xa_extent_regions(slots, hdr, meta, starts, ends, adjoin, out_s, out_e):
    """Each op range [s, e) widened to the maximal extents it touches:
    those overlapping it, and with ``adjoin`` also those ending at s or
    starting at e (a mark merges them)."""
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        j = s - 1 if adjoin else s
        while j >= 0:
            a, b, _ = xa_entry_span(slots, hdr, meta, j)
            if a == b:
                break
            j = a - 1
        out_s[r] = min(j + 1, s)
        j = e if adjoin else e - 1
        while True:
            a, b, _ = xa_entry_span(slots, hdr, meta, j)
            if a == b:
                break
            j = b
        out_e[r] = max(j, e)


@njit(cache=True)
def xa_replace_extents(slots, hdr, parent, meta, levels, old_s, old_e, new_s, new_e):
    """xa_erase() every entry of the maximal extents old_*, in index order,
    then xa_store_range() each maximal extent new_*, in order."""
    for r in range(old_s.size):
        i = old_s[r]
        while i < old_e[r]:
            a, b, _ = xa_entry_span(slots, hdr, meta, i)
            if a == b:                             # the caller walked i as present
                raise AssertionError("xa_replace_extents: an old extent is not stored")
            xa_erase_entry(slots, hdr, parent, meta, levels, a)
            i = b
        meta[M_NR] -= old_e[r] - old_s[r]
    for r in range(new_s.size):
        xa_store_range(slots, hdr, parent, meta, levels, new_s[r], new_e[r] - 1)
        meta[M_NR] += new_e[r] - new_s[r]


@njit(cache=True)
def xa_check_pieces(slots, hdr, meta, run_s, run_e):
    """Index of the first maximal run whose entries are not its
    xas_set_range() pieces (start, span and node shift), -1 if none."""
    for r in range(run_s.size):
        i = run_s[r]
        while i < run_e[r]:
            shift, sibs = xas_set_range(i, run_e[r] - 1)
            a, b, sh = xa_entry_span(slots, hdr, meta, i)
            if a != i or b != i + ((sibs + 1) << shift) or sh != shift:
                return r
            i = b
    return np.int64(-1)

