"""Option 4b: private extents in a maple tree (the structure proposed for KVM).

Peng Zhang (Aug 2024, RFC "KVM: Use maple tree to manage memory attributes")
and Ackerley Tng / Sean Christopherson (Oct 2025, RFC "KVM: guest_memfd:
Introduce per-gmem attributes") store memory attributes as ranges in a maple
tree.  Here each maximal private extent [start, end) is one entry over
indices start..end-1, and the NULL gaps between entries are ranges too: a
maple tree covers 0..ULONG_MAX, so the leaf level holds, in order,

    [gap] extent gap extent gap ... extent gap(to ULONG_MAX)

— S = 2 n + (first extent starts above 0) slots for n extents; entries and
NULLs alternate (the tree merges adjacent NULLs; maximal extents never touch).

Node (include/linux/maple_tree.h): struct maple_node is 256 B; leaves
(maple_leaf_64) and internal nodes (maple_range_64, a tree without
MT_FLAGS_ALLOC_RANGE) both use struct maple_range_64: 15 pivots, 16 slots,
the last slot's upper bound being the node's max from its parent.

Fill rule (deterministic from the set): the tree the kernel grows when each
maximal extent is stored with mtree_store_range() in ascending order into an
empty tree (in-order appends), after lib/maple_tree.c (6.12):
  * leaves: a node takes 16 slots, except that a node other than the rightmost
    may not end in a NULL slot (mab_no_null_split(): NULL ranges must not sit
    at a split point), so such a leaf takes 15; if the rightmost leaf ends up
    below mt_min_slots[maple_range_64] = 16/2 - 2 = 6 slots, it is rebalanced
    with its left sibling as in mas_destroy_rebalance(): the left keeps slots
    0..split, split = 16/2 = 8 (9 when the left's slot 8 is NULL), the rest
    moves right.  The *number* of leaves is the kernel's for every in-order
    store; the fill of the last two leaves may differ from the kernel's;
  * internal levels, as in-order growth leaves them (mas_split() on the
    rightmost node, mt_slots[maple_range_64] = 16): a node that gets a 17th
    child first tries mas_push_data() into its left sibling, which succeeds
    while the two hold fewer than 2 * 16 - 2 - 1 = 29 slots (-1 on the
    rightmost path, mas->max == ULONG_MAX) and re-splits the pair at
    mt_slots - 2 = 14: the left keeps 15 children; otherwise mab_calc_split()
    halves it, 9 + 8, and the parent gains a child.  So every node but the
    last two holds 15 children, and over c children a level has
    ``1`` node if c <= 16, else ``1 + ceil((c - 16) / 15)``
    (:func:`internal_sizes`); each level is built over the one below until
    one node, the root, remains;
  * an empty tree has no node, and a lone entry at index 0 ([0, 1) alone) is
    kept in ma_root itself: no node either.
Checked against the kernel's own code (``maple@kernel``,
tests/test_kernel_code.py): per-level node counts equal for in-order stores
of 1 .. 10^5 extents, leading gap or not.  Before this rule (internal levels
packed 16 wide) 1000 extents gave [126, 8, 1] nodes per level against the
kernel's [126, 9, 1], 10000 gave [1251, 79, 5, 1] against [1251, 84, 6, 1].

Insertion order matters in the kernel (this model is its in-order end): the
same extents stored in random order split nodes about in half and leave more
nodes.  Measured with the kernel's code (maple@kernel's lib/maple_tree.c;
extents of 1-3 pages at random 4-page slots, a leading gap, 20 random orders
per size, 8 at 10^5): 1.22x the in-order node count on average at 10^3
extents (range 1.18-1.26), 1.23x at 10^4 (1.22-1.25), 1.23x at 10^5
(1.230-1.237); 1.16x at 100 extents (1.07-1.21).  So a tree built by random
conversions holds 20-25 % more nodes than :meth:`Maple.memory` reports.

Emulation: a node pool (:class:`trackers.pool.NodePool`, rebuilt whole on
every change within the tracker's budget) in numpy arrays, leaves first,
then each internal level, root last.  ``pivots[node, i]`` is the last index of slot i (slots
past ``end[node]`` repeat the node max; column 15 stands for the max the
kernel takes from the parent), ``slots[node, i]`` is the child node for
internal nodes and 1 (an xa_mk_value entry) / 0 (NULL) in leaves.  Host bytes
257 per node against 256 modeled.  ULONG_MAX is stood in for by 2^63 - 1.
Bulk mark/unmark merge the new ranges with the current extents (vectorized)
and rebuild the pool: O(n) per call, so many small calls cost O(n) each —
the emulation's price for exact, history-free node counts.  Lookups are a
compiled root-to-leaf walk; scans read the leaf level in order.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from numba import njit

from . import kernel
from .base import EXTENT_CHUNK, MemoryReport, Tracker, estimate_input
from .extents import normalize_extents
from .pool import HostBudget, NodePool

SLOTS = kernel.MAPLE_RANGE64_SLOTS              # 16
MIN_SLOTS = kernel.MAPLE_RANGE64_MIN_SLOTS      # 6
SPLIT = kernel.MAPLE_RANGE64_SLOTS // 2         # mas_destroy_rebalance's split; and
                                                # mab_calc_split's b_end / 2 on 17 slots
PUSH_KEEP = kernel.MAPLE_RANGE64_SLOTS - 1      # mas_push_data splits at mt_slots - 2
# in-order growth of an internal level: halving 17 children gives 9 + 8; the
# right one fills to 16 (the pair holds 25), and its 17th child is pushed into
# the left sibling (16 + 8 slot ends < 2 * 16 - 2 - 1 on the rightmost path)
PUSH_LIMIT = SPLIT + 1 + SLOTS                  # 25: the fullest 9 + 16 pair
ULONG_MAX = np.iinfo(np.int64).max              # stand-in for the tree's top index
ENTRY = 1                                       # leaf slot: xa_mk_value(private)
HOST_NODE_BYTES = 2 * SLOTS * 8 + 1             # pivots + slots + end
LEAVES_PER_BATCH = EXTENT_CHUNK // SLOTS        # <= 8 entries per leaf: batches <= 2^15 runs


# --------------------------------------------------------------------------
# the fill rule

@njit(cache=True)
def leaf_sizes(n_slots, lead_null):
    """Slots per leaf for an alternating slot sequence (module docstring).

    Slot i is NULL iff (i even) == lead_null.
    """
    sizes = np.empty(n_slots // (SLOTS - 1) + 2, np.int64)
    n = 0
    pos = 0
    while pos < n_slots:
        take = min(SLOTS, n_slots - pos)
        last = pos + take - 1
        if pos + take < n_slots and ((last % 2 == 0) == lead_null):
            take -= 1                              # mab_no_null_split
        sizes[n] = take
        n += 1
        pos += take
    if n > 1 and sizes[n - 1] < MIN_SLOTS:         # mas_destroy_rebalance
        left_start = pos - sizes[n - 1] - sizes[n - 2]
        split = SPLIT
        if ((left_start + split) % 2 == 0) == lead_null:
            split += 1
        moved = sizes[n - 2] - (split + 1)
        sizes[n - 2] -= moved
        sizes[n - 1] += moved
    return sizes[:n]


@njit(cache=True)
def internal_count(n_children: int) -> int:
    """Nodes of the level above ``n_children`` nodes, grown by in-order
    appends: 1 up to 16 children, then one more per 15 (module docstring)."""
    if n_children <= SLOTS:
        return 1
    return 1 + -(-(n_children - SLOTS) // PUSH_KEEP)


def internal_sizes(n_children):
    """Children per node of the level above ``n_children`` nodes, as in-order
    growth leaves them: 15 per node (a mas_push_data() re-split keeps
    mt_slots - 2 + 1 on the left) except the last two, which hold the rest,
    r = 17 .. 31 children: 9 + (r - 9) after a halving split (r <= 25), else
    15 + (r - 15) after the push into the left sibling."""
    n = internal_count(n_children)
    if n == 1:
        return np.array([n_children], np.int64)
    sizes = np.full(n, PUSH_KEEP, np.int64)
    rest = n_children - PUSH_KEEP * (n - 2)         # 17 .. 31: the last two nodes
    left = SPLIT + 1 if rest <= PUSH_LIMIT else PUSH_KEEP
    sizes[n - 2], sizes[n - 1] = left, rest - left
    return sizes


def level_node_counts(n_extents: int, lead_null: bool, lone_zero: bool = False) -> list[int]:
    """Nodes per level, leaves first, for a set of ``n_extents`` maximal
    extents; ``lone_zero``: the set is [0, 1) alone, kept in ma_root (no node)."""
    if n_extents == 0 or lone_zero:
        return []
    counts = [int(leaf_sizes(2 * n_extents + int(lead_null), lead_null).size)]
    while counts[-1] > 1:
        counts.append(internal_count(counts[-1]))
    return counts


def is_lone_zero(starts, ends) -> bool:
    """The set of maximal extents is [0, 1) alone (an entry in ma_root)."""
    return bool(starts.size == 1 and starts[0] == 0 and ends[0] == 1)


def level_name(level: int) -> str:
    return "maple_range_64 leaf" if level == 0 else f"maple_range_64 L{level}"


# --------------------------------------------------------------------------
# compiled walks

@njit(cache=True)
def _walk(pivots, slots, ends, root, height, pfns, out):
    """mas_walk for each pfn: descend from the root to the slot covering it."""
    for k in range(pfns.size):
        p = pfns[k]
        node = root
        for level in range(height):
            i = 0
            while i < ends[node] - 1 and pivots[node, i] < p:
                i += 1
            if level == height - 1:
                out[k] = slots[node, i] == ENTRY
            else:
                node = slots[node, i]


def _extent_difference(a_s, a_e, b_s, b_e):
    """Maximal runs of A minus B (both sorted, disjoint), vectorized."""
    pts = np.concatenate((a_s, a_e, b_s, b_e))
    da = np.concatenate((np.ones(a_s.size, np.int64), -np.ones(a_e.size, np.int64),
                         np.zeros(b_s.size + b_e.size, np.int64)))
    db = np.concatenate((np.zeros(a_s.size + a_e.size, np.int64),
                         np.ones(b_s.size, np.int64), -np.ones(b_e.size, np.int64)))
    order = np.argsort(pts, kind="stable")
    pts, da, db = pts[order], da[order], db[order]
    first = np.flatnonzero(np.r_[True, pts[1:] != pts[:-1]])
    x = pts[first]
    ca = np.cumsum(np.add.reduceat(da, first))
    cb = np.cumsum(np.add.reduceat(db, first))
    keep = np.flatnonzero((ca[:-1] > 0) & (cb[:-1] == 0))
    return normalize_extents(x[keep], x[keep + 1])


class Maple(Tracker):
    """Private extents as entries of a maple tree; see module docstring."""

    name = "maple"
    option = "4b: maple tree of extents (KVM attribute RFCs)"
    scan_node_bytes = kernel.MAPLE_NODE_BYTES  # an estimated scan: one load per node

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.host_budget = HostBudget(self.budget_bytes, f"{self.name} tracker")
        self.pool = NodePool(self.host_budget, "maple_range_64 node",
                             {"pivots": (np.int64, (SLOTS,), 0), "slots": (np.int64, (SLOTS,), 0),
                              "ends": (np.uint8, (), 0)})
        assert self.pool.row_bytes == HOST_NODE_BYTES
        self._build(np.zeros(0, np.int64), np.zeros(0, np.int64))

    # --- the node pool -------------------------------------------------------
    @property
    def pivots(self) -> np.ndarray:
        return self.pool["pivots"]

    @property
    def slots(self) -> np.ndarray:
        return self.pool["slots"]

    @property
    def ends(self) -> np.ndarray:
        return self.pool["ends"]

    def _build(self, starts, ends):
        """Rebuild the pool for maximal extents (sorted, non-touching).

        The pool is replaced first (MemoryBudgetError, before anything
        changes, if the new rows, the old ones and 48 B of build buffers per
        extent do not fit the budget)."""
        n = int(starts.size)
        lead_null = bool(n and starts[0] > 0)
        lone_zero = is_lone_zero(starts, ends)
        counts = level_node_counts(n, lead_null, lone_zero)
        total = sum(counts)
        self.pool.replace(total, transient_bytes=48 * n,
                          what=f"maple tree of {n:,} extents ({total:,} nodes)")
        pivots, slots, ends_ = self.pivots, self.slots, self.ends
        if total:
            # leaf slot sequence: [gap] extent gap ... extent gap(to ULONG_MAX)
            seq = np.empty(2 * n, np.int64)
            seq[0::2] = ends - 1
            seq[1:-1:2] = starts[1:] - 1
            seq[-1] = ULONG_MAX
            if lead_null:
                seq = np.r_[starts[0] - 1, seq]
            entry = np.zeros(seq.size, np.int64)
            entry[int(lead_null)::2] = ENTRY
            sizes = leaf_sizes(seq.size, lead_null)
            base = 0
            child_max = self._fill(pivots, slots, ends_, base, sizes, seq, entry)
            for level in range(1, len(counts)):
                base += counts[level - 1]
                sizes = internal_sizes(counts[level - 1])
                children = np.arange(base - counts[level - 1], base, dtype=np.int64)
                child_max = self._fill(pivots, slots, ends_, base, sizes, child_max, children)
        self.level_counts = counts
        self.lead_null = lead_null
        self.lone_zero = lone_zero              # [0, 1) alone: the entry is ma_root
        self.n_extents = n
        self.npages = int((ends - starts).sum())

    @staticmethod
    def _fill(pivots, slots, ends_, base, sizes, seq_pivots, seq_slots):
        """Write one level: nodes base.. with ``sizes`` slots; return node maxima."""
        k = sizes.size
        first = np.cumsum(sizes) - sizes
        node_max = seq_pivots[first + sizes - 1]
        rows = np.repeat(np.arange(base, base + k), sizes)
        cols = np.arange(seq_pivots.size) - np.repeat(first, sizes)
        pivots[base:base + k] = node_max[:, None]
        pivots[rows, cols] = seq_pivots
        slots[rows, cols] = seq_slots
        ends_[base:base + k] = sizes
        return node_max

    def _leaf_runs(self, lo: int, hi: int):
        """Entries of leaves lo..hi-1 as (starts, ends)."""
        piv = self.pivots[lo:hi]
        used = np.arange(SLOTS)[None, :] < self.ends[lo:hi, None]
        p = piv[used]
        ent = self.slots[lo:hi][used] == ENTRY
        prev = np.empty_like(p)
        prev[1:] = p[:-1]
        prev[0] = self.pivots[lo - 1, SLOTS - 1] if lo else -1
        return prev[ent] + 1, p[ent] + 1

    def _all_extents(self):
        if self.lone_zero:
            return np.zeros(1, np.int64), np.ones(1, np.int64)
        leaves = self.level_counts[0] if self.level_counts else 0
        return self._leaf_runs(0, leaves) if leaves else (np.zeros(0, np.int64),) * 2

    # --- primitives ------------------------------------------------------------
    def _mark_ranges(self, starts, ends):
        cs, ce = self._all_extents()
        self._build(*normalize_extents(np.concatenate((cs, starts)),
                                       np.concatenate((ce, ends))))

    def _unmark_ranges(self, starts, ends):
        if not self.n_extents:
            return
        bs, be = normalize_extents(starts, ends)
        cs, ce = self._all_extents()
        self._build(*_extent_difference(cs, ce, bs, be))

    def _contains(self, pfns):
        out = pfns == 0 if self.lone_zero else np.zeros(pfns.size, bool)
        if self.level_counts:
            _walk(self.pivots, self.slots, self.ends, self.pivots.shape[0] - 1,
                  len(self.level_counts), pfns, out)
        return out

    def _count(self):
        return self.npages

    def _extent_batches(self) -> Iterator:
        if self.lone_zero:
            yield self._all_extents()
            return
        leaves = self.level_counts[0] if self.level_counts else 0
        for lo in range(0, leaves, LEAVES_PER_BATCH):     # one step per 4096 leaves
            s, e = self._leaf_runs(lo, min(lo + LEAVES_PER_BATCH, leaves))
            if s.size:
                yield s, e

    # --- model -----------------------------------------------------------------
    def memory(self):
        breakdown = {level_name(i): kernel.MAPLE_NODE_BYTES * c
                     for i, c in enumerate(self.level_counts)} or {level_name(0): 0}
        modeled = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=modeled,
            breakdown=breakdown,
            host_bytes=self.pool.host_bytes(),
            scanned_bytes=modeled,
            scan_loads=int(sum(self.level_counts)),    # mas_for_each visits every node
            notes=(f"{self.n_extents:,} extents in {2 * self.n_extents + self.lead_null:,} "
                   f"leaf slots (entries + NULL gaps), height {len(self.level_counts)}; "
                   "the tree in-order stores grow (module docstring; random orders hold "
                   "20-25 % more nodes); host pool 257 B per 256-B node"),
            formula={"leaf slots": "2 * extents + (first extent starts above 0); [0, 1) "
                     "alone is ma_root itself, no node",
                     "maple_range_64 leaf": "256 * leaves: 16 slots each, 15 if the 16th "
                     "would be NULL, last rebalanced to >= 6",
                     "maple_range_64 L<k>": "256 * nodes over c below: 1 if c <= 16, else "
                     "1 + ceil((c - 16) / 15) (in-order splits at mt_slots - 2)"},
        )

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        s, e = estimate_input(starts, ends, max_pfn)
        counts = level_node_counts(int(s.size), bool(s.size and s[0] > 0), is_lone_zero(s, e))
        return kernel.MAPLE_NODE_BYTES * sum(counts)

    def check(self):
        counts = self.level_counts
        if not counts:
            assert self.pivots.shape[0] == 0, "a tree without levels holds nodes"
            assert self.npages == self.n_extents == int(self.lone_zero), \
                "no node but pages other than a lone [0, 1) in ma_root"
            return
        total = sum(counts)
        assert self.pivots.shape == (total, SLOTS), "pool size differs from level counts"
        assert counts == level_node_counts(self.n_extents, self.lead_null, self.lone_zero), \
            "node counts differ from the fill rule"
        assert counts[-1] == 1, "more than one root"
        leaves = counts[0]
        e = self.ends.astype(np.int64)
        assert np.all((e >= 1) & (e <= SLOTS)), "node slot count out of 1..16"
        if total > 1:
            assert np.all(e[:-1] >= MIN_SLOTS), "non-root node below mt_min_slots"
        want = leaf_sizes(2 * self.n_extents + int(self.lead_null), self.lead_null)
        assert np.array_equal(e[:leaves], want), "leaf fill differs from the rule"
        # leaf level: ascending pivots, alternating entry/NULL, ends at ULONG_MAX
        used = np.arange(SLOTS)[None, :] < e[:leaves, None]
        p = self.pivots[:leaves][used]
        ent = self.slots[:leaves][used]
        assert np.all(np.diff(p) > 0), "leaf pivots not strictly ascending"
        assert p[-1] == ULONG_MAX, "tree does not reach ULONG_MAX"
        assert np.all(np.isin(ent, (0, ENTRY))), "leaf slot neither NULL nor entry"
        assert np.all(ent[1:] != ent[:-1]), "adjacent NULLs or touching entries"
        assert ent[0] == (0 if self.lead_null else ENTRY), "first slot kind mismatch"
        assert ent[-1] == 0, "last range is not the NULL up to ULONG_MAX"
        assert np.all(self.slots[:leaves - 1][np.arange(leaves - 1), e[:leaves - 1] - 1]
                      == ENTRY), "a non-rightmost leaf ends in NULL"
        entry_last = p[ent == ENTRY]
        assert int(entry_last[-1]) < self.max_pfn, "entry past max_pfn"
        # internal levels: child j covers up to pivot j; children in order
        node_max = self.pivots[np.arange(total), e - 1]
        base = 0
        for level in range(1, len(counts)):
            below, base = base, base + counts[level - 1]
            rows = np.arange(base, base + counts[level])
            used = np.arange(SLOTS)[None, :] < e[rows, None]
            child = self.slots[rows][used]
            assert np.array_equal(child, np.arange(below, base)), \
                f"L{level} children out of order"
            assert np.array_equal(self.pivots[rows][used], node_max[child]), \
                f"L{level} pivot differs from its child's max"
        s, en = self._all_extents()
        assert int((en - s).sum()) == self.npages and s.size == self.n_extents, "count drift"
