"""Option 1c: an IDA (include/linux/idr.h, lib/idr.c) with PFNs as ids.

The IDA is an XArray indexed by ``id / IDA_BITMAP_BITS`` (pfn >> 10) whose
entries are 1024-bit chunks: bitmap density with radix-tree sparsity.  A
chunk is either

* a value entry ``xa_mk_value(bits)`` when every set bit is below
  BITS_PER_XA_VALUE (63): no allocation, the bits live in the slot; or
* a pointer to a 128-B ``struct ida_bitmap`` (16 longs, kzalloc'ed).

Sizes: xa_node 576 B (kernel.XA_NODE_BYTES, include/linux/xarray.h), struct
ida_bitmap 128 B (kernel.IDA_BITMAP_BYTES, include/linux/idr.h).

History (lib/idr.c, followed): ida_alloc_range() stores a new chunk as a
value entry while its ids are below 63, and turns the value entry into an
ida_bitmap when an id >= 63 is allocated in it; ida_free() clears bits and
never turns an ida_bitmap back into a value entry -- only a chunk left
empty is freed (kfree, xas_store NULL).  So a chunk holds an ida_bitmap iff
an id >= 63 was allocated in it since it last held no id, and after frees
the IDA can hold more ida_bitmaps than a fresh build of its set
(``estimate()``: an ida_bitmap for every chunk holding an id >= 63).  The
XArray of chunks is single-index, whose nodes depend on its set alone.
Deviations: the kernel IDA allocates the lowest free id; here any PFN is an
id, set directly as ``ida_alloc_range(ida, pfn, pfn)`` would.  The
XA_FREE_MARK bits live in the 576-B xa_node already.

Ids stop at INT_MAX (2^31 - 1): ida_alloc_range() refuses a larger max with
-ENOSPC (lib/idr.c; found by building it, ``ida@kernel``).  So the IDA cannot
track the PFNs of a host beyond 2^31 pages, 8 TiB of physical address space:
the constructor refuses ``max_pfn > 2^31`` and ``estimate()`` raises
:class:`trackers.base.NotRepresentable` there, whatever the set.

Host layout: the XArray is the engine's :class:`trackers.xa.XaTree`
(single-index), used through its public API only, as lib/idr.c uses
include/linux/xarray.h; ida_bitmaps are rows of a
:class:`trackers.pool.NodePool`, ``bitmaps uint64[cap, 16]`` (128 B,
byte-faithful), free rows threaded through ``bm_link``.  A leaf slot holds
the value entry's bits (a positive int64) or ``BITMAP_REF - row`` for an
ida_bitmap.  The XArray and the bitmaps share the tracker's one memory
budget: an update reserves both before it changes anything.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kernel
from .base import EXTENT_CHUNK, MemoryReport, NotRepresentable, Tracker, validate_max_pfn
from .pool import HostBudget, NodePool
from .xa import (XaTree, estimate_extents, estimate_levels, level_breakdown, level_formula,
                 xa_erase, xa_store, xas_find, xas_load, xas_start)

CHUNK_SHIFT = kernel.IDA_CHUNK_SHIFT          # 1024 PFNs per chunk
CHUNK_WORDS = kernel.IDA_BITMAP_LONGS         # 16 longs per struct ida_bitmap
VALUE_BITS = kernel.BITS_PER_XA_VALUE         # 63 bits in a value entry
BITMAP_REF = -(1 << 40)                       # leaf slot BITMAP_REF - row
BITMAP_HOST_BYTES = CHUNK_WORDS * 8 + 8     # bitmaps row + bm_link row

#: ids are ints: ida_alloc_range() refuses ids above INT_MAX (lib/idr.c), so
#: PFNs must lie below 2^31 (8 TiB of 4-KiB pages)
ID_LIMIT = 1 << 31

# bm_meta[] fields
B_FREE, B_HIGH, B_USED, B_NR = range(4)


@njit(cache=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _chunk_words(bitmaps, entry, words):
    """The 1024 bits of a chunk entry (0, value entry or ida_bitmap ref)."""
    for w in range(CHUNK_WORDS):
        words[w] = 0
    if entry > 0:
        words[0] = np.uint64(entry)
    elif entry < 0:
        row = BITMAP_REF - entry
        for w in range(CHUNK_WORDS):
            words[w] = bitmaps[row, w]


@njit(cache=True)
def _ida_update(slots, hdr, parent, meta, levels, bitmaps, bm_link, bm_meta,
                starts, ends, value):
    """Set (value) or clear the bits of every [start, end), chunk by chunk.

    The capacity for xa_nodes and ida_bitmaps was reserved by the caller.
    """
    words = np.zeros(CHUNK_WORDS, np.uint64)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if s >= e:
            continue
        for c in range(s >> CHUNK_SHIFT, ((e - 1) >> CHUNK_SHIFT) + 1):
            base = c << CHUNK_SHIFT
            lo = max(s, base) - base
            hi = min(e, base + 1024) - base            # bits [lo, hi)
            entry = xas_load(slots, hdr, parent, meta, c)
            if entry == 0 and not value:
                continue
            _chunk_words(bitmaps, entry, words)
            before = 0
            for w in range(CHUNK_WORDS):
                before += _popcount(words[w])
            for w in range(lo >> 6, ((hi - 1) >> 6) + 1):
                m = full
                if w == lo >> 6:
                    m &= full << np.uint64(lo & 63)
                if w == (hi - 1) >> 6:
                    m &= full >> np.uint64(63 - ((hi - 1) & 63))
                words[w] = (words[w] | m) if value else (words[w] & ~m)
            after = 0
            high = np.uint64(0)
            for w in range(CHUNK_WORDS):
                after += _popcount(words[w])
                if w:
                    high |= words[w]
            if after == before:
                continue
            bm_meta[B_NR] += after - before
            # ida_free never turns an ida_bitmap back into a value entry
            as_value = entry >= 0 and high == 0 and (words[0] >> np.uint64(VALUE_BITS)) == 0
            if entry < 0 and after == 0:                    # kfree(bitmap)
                row = BITMAP_REF - entry
                bm_link[row] = bm_meta[B_FREE]
                bm_meta[B_FREE] = row
                bm_meta[B_USED] -= 1
            if after == 0:
                xa_erase(slots, hdr, parent, meta, levels, c)
            elif as_value:
                xa_store(slots, hdr, parent, meta, levels, c, np.int64(words[0]))
            else:
                if entry < 0:
                    row = BITMAP_REF - entry
                else:                                       # kzalloc(ida_bitmap)
                    row = bm_meta[B_FREE]
                    if row >= 0:
                        bm_meta[B_FREE] = bm_link[row]
                    else:
                        row = bm_meta[B_HIGH]
                        bm_meta[B_HIGH] += 1
                    bm_meta[B_USED] += 1
                    xa_store(slots, hdr, parent, meta, levels, c, BITMAP_REF - row)
                for w in range(CHUNK_WORDS):
                    bitmaps[row, w] = words[w]


@njit(cache=True)
def _ida_test(slots, hdr, parent, meta, bitmaps, pfns):
    out = np.zeros(pfns.size, np.bool_)
    for i in range(pfns.size):
        p = pfns[i]
        entry = xas_load(slots, hdr, parent, meta, p >> CHUNK_SHIFT)
        bit = p & 1023
        if entry > 0:
            out[i] = bit < VALUE_BITS and ((entry >> bit) & 1) == 1
        elif entry < 0:
            w = bitmaps[BITMAP_REF - entry, bit >> 6]
            out[i] = ((w >> np.uint64(bit & 63)) & np.uint64(1)) == 1
    return out


@njit(cache=True)
def _push_run(out_s, out_e, n, a, b):
    """Append run [a, b), extending the last run if it ends at a; new count."""
    if n and out_e[n - 1] == a:
        out_e[n - 1] = b
        return n
    out_s[n] = a
    out_e[n] = b
    return n + 1


@njit(cache=True)
def _ida_walk(slots, hdr, parent, meta, bitmaps, start_chunk, out_s, out_e):
    """Runs of set bits from chunk start_chunk on, in id order (xa_for_each).

    Returns (runs written, chunk to resume at or -1 when done); a chunk
    yields at most 512 runs and is never split across batches.
    """
    cur = np.zeros(3, np.int64)
    words = np.zeros(CHUNK_WORDS, np.uint64)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    xas_start(slots, hdr, meta, start_chunk, cur)
    n = 0
    while True:
        if n + 512 > out_s.size:
            found, c, sh, entry = xas_find(slots, hdr, parent, meta, cur)
            if not found:
                return n, np.int64(-1)
            return n, c
        found, c, sh, entry = xas_find(slots, hdr, parent, meta, cur)
        if not found:
            return n, np.int64(-1)
        _chunk_words(bitmaps, entry, words)
        base = c << CHUNK_SHIFT
        for w in range(CHUNK_WORDS):
            x = words[w]
            if x == 0:
                continue
            wb = base + w * 64
            if x == full:
                n = _push_run(out_s, out_e, n, wb, wb + 64)
                continue
            for b in range(64):
                if (x >> np.uint64(b)) & np.uint64(1):
                    n = _push_run(out_s, out_e, n, wb + b, wb + b + 1)


@njit(cache=True)
def _count_chunks(starts, ends, high_only):
    """Distinct chunks the ranges (sorted by start) touch; with high_only,
    those holding a PFN whose bit is >= BITS_PER_XA_VALUE."""
    total = 0
    prev = np.int64(-1)
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if s >= e:
            continue
        c0 = s >> CHUNK_SHIFT
        c1 = (e - 1) >> CHUNK_SHIFT
        lo = c0
        hi = c1
        if high_only:
            if e - 1 < (c0 << CHUNK_SHIFT) + VALUE_BITS:   # first chunk: only low bits
                lo = c0 + 1
            if c1 > c0 and e - 1 - (c1 << CHUNK_SHIFT) < VALUE_BITS:
                hi = c1 - 1
        lo = max(lo, prev + 1)
        if hi >= lo:
            total += hi - lo + 1
            prev = hi
    return total


def check_representable(max_pfn: int) -> None:
    """NotRepresentable (a ValueError) if PFNs of [0, max_pfn) do not all
    fit the IDA's ids, [0, INT_MAX]."""
    if max_pfn > ID_LIMIT:
        raise NotRepresentable(
            f"max_pfn {max_pfn} is over INT_MAX + 1 = {ID_LIMIT}: the IDA's ids stop at "
            f"INT_MAX (ida_alloc_range() refuses larger ids with -ENOSPC, lib/idr.c), so "
            f"the IDA cannot track PFNs of hosts beyond 8 TiB of physical address space "
            f"(2^31 4-KiB pages)",
            limit_pfns=ID_LIMIT,
            summary="IDA: not representable above 8 TiB (ids <= INT_MAX)")


class Ida(Tracker):
    """struct ida: an XArray of 1024-bit chunks, each a value entry (bits
    < 63 only) or a 128-B struct ida_bitmap.  PFNs below 2^31 only (ids are
    ints): a larger ``max_pfn`` is refused, NotRepresentable."""

    name = "ida"
    option = "1: IDA, 1024-bit ida_bitmap leaves in an XArray"
    scan_node_bytes = kernel.IDA_BITMAP_BYTES  # estimated: the leaves dominate
    history_shaped = True                      # an ida_bitmap stays until its chunk empties

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        check_representable(validate_max_pfn(max_pfn))
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.host_budget = HostBudget(self.budget_bytes, f"{self.name} tracker")
        self.tree = XaTree(multi=False, budget=self.host_budget, what=f"{self.name} tracker")
        self.bm_meta = np.array([-1, 0, 0, 0], np.int64)
        self.bitmap_pool = NodePool(self.host_budget, "ida_bitmap",
                                    {"bitmaps": (np.uint64, (CHUNK_WORDS,), 0),
                                     "bm_link": (np.int64, (), 0)},
                                    what=f"{self.name} tracker", fixed_bytes=self.bm_meta.nbytes)
        assert self.bitmap_pool.row_bytes == BITMAP_HOST_BYTES

    @property
    def bitmaps(self) -> np.ndarray:
        return self.bitmap_pool["bitmaps"]

    @property
    def bm_link(self) -> np.ndarray:
        return self.bitmap_pool["bm_link"]

    # --- capacity ---------------------------------------------------------
    def _reserve(self, starts, ends, mark: bool) -> None:
        """Room for the xa_nodes and ida_bitmaps the update may add, both
        within the one budget, before anything changes (unmarking adds none)."""
        if not mark:
            return
        cs = starts >> CHUNK_SHIFT
        ce = ((ends - 1) >> CHUNK_SHIFT) + 1
        nodes = self.tree.nodes_missing(cs, ce)
        bms = int(_count_chunks(starts, ends, True))
        self.host_budget.reserve([(self.tree.pool, self.tree.nodes() + nodes),
                                  (self.bitmap_pool, int(self.bm_meta[B_USED]) + bms)])

    # --- primitives -------------------------------------------------------
    def _update(self, starts, ends, mark: bool) -> None:
        s = np.ascontiguousarray(starts, np.int64)
        e = np.ascontiguousarray(ends, np.int64)
        if s.size > 1 and not bool(np.all(s[1:] >= s[:-1])):
            order = np.argsort(s, kind="stable")
            s, e = s[order], e[order]
        self._reserve(s, e, mark)
        _ida_update(*self.tree.arrays, self.bitmaps, self.bm_link, self.bm_meta, s, e, mark)

    def _mark_ranges(self, starts, ends):
        self._update(starts, ends, True)

    def _unmark_ranges(self, starts, ends):
        self._update(starts, ends, False)

    def _contains(self, pfns):
        return _ida_test(*self.tree.arrays[:4], self.bitmaps,
                         np.ascontiguousarray(pfns, np.int64))

    def _count(self):
        return int(self.bm_meta[B_NR])

    def _extent_batches(self):
        out_s = np.empty(EXTENT_CHUNK, np.int64)
        out_e = np.empty(EXTENT_CHUNK, np.int64)
        pos = 0
        while pos >= 0:
            n, pos = _ida_walk(*self.tree.arrays[:4], self.bitmaps, pos, out_s, out_e)
            pos = int(pos)
            if n:
                yield out_s[:n].copy(), out_e[:n].copy()

    # --- model ------------------------------------------------------------
    def memory(self):
        breakdown = level_breakdown(self.tree.node_counts_by_level())
        breakdown["ida_bitmap"] = int(self.bm_meta[B_USED]) * kernel.IDA_BITMAP_BYTES
        total = sum(breakdown.values())
        formula = level_formula(False)
        formula["xa_node Lk"] += " (indices are chunks, pfn >> 10)"
        formula["ida_bitmap"] = (f"{kernel.IDA_BITMAP_BYTES} B (include/linux/idr.h) x chunks "
                                 f"that held a PFN with pfn % 1024 >= {VALUE_BITS} since they "
                                 f"last emptied (a fresh build: chunks holding one); other "
                                 f"chunks are value entries in their slot")
        return MemoryReport(
            modeled_bytes=total,
            breakdown=breakdown,
            host_bytes=self.tree.host_bytes() + self.bitmap_pool.host_bytes(),
            scanned_bytes=total,
            # every xa_node, then every ida_bitmap behind a slot
            scan_loads=self.tree.nodes() + int(self.bm_meta[B_USED]),
            notes=("a chunk keeps its ida_bitmap until it empties (lib/idr.c never turns "
                   "one back into a value entry); ids <= INT_MAX"),
            formula=formula,
        )

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        check_representable(max_pfn)
        s, e = estimate_extents(starts, ends, max_pfn)
        levels = estimate_levels(s, e, max_pfn, multi=False, ishift=CHUNK_SHIFT)
        bitmaps = _count_chunks(np.ascontiguousarray(s), np.ascontiguousarray(e), True)
        return int(levels.sum()) * kernel.XA_NODE_BYTES + bitmaps * kernel.IDA_BITMAP_BYTES

    def check(self):
        self.tree.check()
        code = _check_chunks(*self.tree.arrays[:4], self.bitmaps, self.bm_link, self.bm_meta)
        assert code == 0, f"ida tracker: {_CHECK_MESSAGES[code]}"


_CHECK_MESSAGES = {
    1: "a value entry holds a bit >= BITS_PER_XA_VALUE",
    3: "an empty chunk is stored",
    4: "ida_bitmaps in use differ from the chunks that reference them",
    5: "pages counted differ from the bits set",
    6: "live + free ida_bitmaps differ from the pool's high mark",
}


@njit(cache=True)
def _check_chunks(slots, hdr, parent, meta, bitmaps, bm_link, bm_meta):
    cur = np.zeros(3, np.int64)
    words = np.zeros(CHUNK_WORDS, np.uint64)
    xas_start(slots, hdr, meta, 0, cur)
    refs = 0
    bits = 0
    while True:
        found, c, sh, entry = xas_find(slots, hdr, parent, meta, cur)
        if not found:
            break
        _chunk_words(bitmaps, entry, words)
        high = np.uint64(0)
        cnt = 0
        for w in range(CHUNK_WORDS):
            cnt += _popcount(words[w])
            if w:
                high |= words[w]
        if cnt == 0:
            return 3
        low_only = high == 0 and (words[0] >> np.uint64(VALUE_BITS)) == 0
        if entry > 0 and not low_only:
            return 1
        if entry < 0:
            refs += 1
        bits += cnt
    if refs != bm_meta[B_USED]:
        return 4
    if bits != bm_meta[B_NR]:
        return 5
    free = 0
    f = bm_meta[B_FREE]
    while f >= 0:
        free += 1
        f = bm_link[f]
    if free + bm_meta[B_USED] != bm_meta[B_HIGH]:
        return 6
    return 0
