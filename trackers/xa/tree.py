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
    covers 2^(s+6) indices.  A store grows the tree until the top can hold
    its index (xas_expand: the top node has the least shift s with ``max >>
    s < 64``; a lone entry at index 0 lives in xa_head and needs no node)
    and creates the nodes on its path (xas_create).  An erase frees the
    nodes it empties (xas_delete_node) and, when that reaches the top, pops
    the top while it holds one child node in slot 0 (xas_shrink).  The
    nodes are those lib/xarray.c holds after the same calls, in the same
    order: shaped by the tree's history, not only by its set.

Single-index trees (``multi=False``): one entry per index
(:mod:`trackers.xa.single`).  Per-index stores and erases leave a tree that
depends only on its set (every erase that empties a child of the top
shrinks it), so its node counts are those of :mod:`trackers.xa.model`,
which :meth:`XaTree.check` asserts level by level.  Multi-index trees
(``multi=True``): each maximal extent stored with xa_store_range(), an
update erasing the extents it touches and storing them anew
(:mod:`trackers.xa.multi`); their height follows their history, and
:meth:`XaTree.check` asserts the entries instead.  Both are built from the
xa_state operations of :mod:`trackers.xa.xas`; :mod:`trackers.xa.bound`
bounds an update's nodes before it sorts.

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
from .bound import xa_nodes_lower_bound
from .model import XA_LEVELS, xa_node_counts
from .multi import xa_check_pieces, xa_extent_regions, xa_replace_extents
from .single import xa_erase_ranges, xa_nodes_missing, xa_store_mapped, xa_store_ranges
from .xas import (M_FREE, M_HEAD, M_HEAD_ENTRY, M_HIGH, M_NR, M_USED, META_LEN, XA_SIBLING,
                  XA_VALUE, xas_find, xas_load, xas_start)

#: an update with this many ranges, or one range this long, is first checked
#: against xa_nodes_lower_bound (below that the exact count is cheap)
BOUND_MIN_RANGES = 4096
BOUND_MIN_INDICES = 1 << 22
#: blocks per level the lower bound tracks (int32 counters: 4 MiB at most)
BOUND_BLOCKS = 1 << 20

_I64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------
# walks (xa_for_each order)

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
    stored as maximal extents with xa_store_range(), an update erasing the
    extents it touches and storing them anew (:mod:`trackers.xa.multi`).

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
        overlap)."""
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
        """Erase the entries of the maximal extents the ranges touch and
        xa_store_range() the extents that result (trackers.xa.multi)."""
        s, e = normalize_extents(s, e)
        reg_s = np.empty_like(s)
        reg_e = np.empty_like(e)
        xa_extent_regions(self.slots, self.hdr, self.meta, s, e, mark, reg_s, reg_e)
        reg_s, reg_e = normalize_extents(reg_s, reg_e)
        walk = self.arrays[:4]
        nold = _walk_regions(*walk, reg_s, reg_e, reg_s[:0], reg_e[:0], False)
        old_s = np.empty(nold, np.int64)
        old_e = np.empty(nold, np.int64)
        _walk_regions(*walk, reg_s, reg_e, old_s, old_e, True)
        old_s, old_e = normalize_extents(old_s, old_e)
        if mark:
            new_s, new_e = normalize_extents(np.concatenate((old_s, s)),
                                             np.concatenate((old_e, e)))
            if np.array_equal(new_s, old_s) and np.array_equal(new_e, old_e):
                return                                 # every index stored already
        else:
            if old_s.size == 0:
                return                                 # nothing stored there
            new_s, new_e = extents.subtract((old_s, old_e), (s, e))
        # erasing frees nodes; each store adds at most the nodes of blocks
        # holding a stored and an unstored index below the new extents' top
        # (the model's count), one per level above it, and xas_expand's chain
        self.reserve(int(xa_node_counts(new_s, new_e, True).sum()) + 2 * XA_LEVELS)
        xa_replace_extents(*self.arrays, old_s, old_e, new_s, new_e)

    # --- invariants -------------------------------------------------------
    def check(self) -> None:
        """Raise AssertionError unless every xa_node invariant holds, and
        (single-index) the node counts equal the analytic count
        (trackers.xa.model) of the stored set or (multi-index) the entries
        are the xas_set_range() pieces of its maximal extents."""
        code, node = _check_tree(*self.arrays, self.multi)
        assert code == 0, f"{self.what}: {_CHECK_MESSAGES[code]} (xa_node {node})"
        runs = list(self.walk())
        s = np.concatenate([r[0] for r in runs]) if runs else np.empty(0, np.int64)
        e = np.concatenate([r[1] for r in runs]) if runs else np.empty(0, np.int64)
        assert int((e - s).sum()) == len(self), \
            f"{self.what}: {int((e - s).sum())} indices walked, {len(self)} counted"
        if self.multi:
            s, e = normalize_extents(s, e)
            bad = int(xa_check_pieces(self.slots, self.hdr, self.meta, s, e))
            assert bad < 0, (f"{self.what}: the entries of [{int(s[bad])}, {int(e[bad])}) are "
                             f"not its xa_store_range() pieces")
        else:
            want = xa_node_counts(s, e)
            assert np.array_equal(want, self.levels), \
                f"{self.what}: xa_nodes per level {self.levels.tolist()} != analytic " \
                f"{want.tolist()}"
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

