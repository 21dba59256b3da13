"""Option 1c: a Roaring bitmap of PFNs (CRoaring through pyroaring).

Roaring (Lemire et al. 2016/2018) splits a value into a 16-bit key (pfn >> 16)
and a 16-bit low part; each key with at least one page owns a container of
one of three kinds:

* array container: sorted uint16_t values, 2 B per page, <= 4096 pages;
* bitset container: 2^16 bits, 8 KiB, more than 4096 pages;
* run container: rle16_t {value, length} pairs, 4 B per run.

Layout (CRoaring include/roaring/roaring_types.h, containers/*.h; checked
against the struct definitions): roaring_array_t holds three parallel arrays
per container — uint16_t key, container pointer, uint8_t typecode (11 B) —
and each container struct (array_container_t, bitset_container_t,
run_container_t) is 16 B.  Modeled bytes per container are therefore
11 + 16 + payload; the roaring_bitmap_t root (40 B) is a fixed root like the
other trackers' roots and is not counted.

PFNs beyond 2^32: one 32-bit ``BitMap`` per high-32 key (``pfn >> 32``), kept
in a dict, like Java's Roaring64NavigableMap; the model counts containers
only, so a 2^32 block adds nothing but its containers.  (BitMap64 is an ART
over 48-bit keys with a different node model, not used.)

Canonical form — modeled bytes are a function of the set.  CRoaring's
container kind depends on history (add_range makes run containers, add_many
makes arrays); roaring_bitmap_run_optimize() then applies, per container
(src/containers/convert.c convert_run_optimize and
convert_run_to_efficient_container; run size 2 + 4 r, array size 2 c, bitset
8192, the serialized sizes):

* array  -> run   iff 2 + 4 r <  2 c      (strict: a tie stays array)
* bitset -> run   iff 2 + 4 r <  8192
* run    stays    iff 2 + 4 r <= min(2 c, 8192), else array if c <= 4096,
  else bitset.

Array and bitset containers always satisfy c <= 4096 resp. c > 4096 (the
portable format infers the kind from c), so after run_optimize the only
history-dependent case is the tie 2 + 4 r == 2 c (c = 2 r + 1), which an array
keeps as array and a run keeps as run.  :func:`canonical_form` runs
run_optimize and shrink_to_fit and rebuilds tied run containers as arrays, so
the set decides every container:

    run     if 2 + 4 r < min(2 c, 8192)        payload 4 r
    array   elif c <= 4096                      payload 2 c
    bitset  else                                payload 8192

which :meth:`Roaring.estimate` computes from extents alone (split at 2^16
boundaries; per chunk c = pages, r = pieces).

Every mark and unmark brings the containers it touched to canonical form
before it returns (the rest were canonical already), so the bitmap is
canonical between calls: ``memory()`` and ``check()`` only read it, and
``check()`` verifies that invariant rather than restoring it.

Bulk paths: ranges become a portable-format buffer of run containers built
with numpy and are or-ed/and-not-ed in (one C call per 2^32 block, not one
add_range per extent); PFN arrays go through add_many (``update``).
``contains`` intersects a BitMap of the queried PFNs; scans intersect windows
of 16 containers (<= 2^20 pages) and turn the values into runs with numpy.
"""

from __future__ import annotations

import array
from dataclasses import replace
from typing import Iterator

import numpy as np
from pyroaring import BitMap

from . import kernel
from .base import (EXTENT_CHUNK, ConversionCalls, MemoryReport, Tracker, check_budget,
                   estimate_input)
from .extents import normalize_extents

CHUNK_BITS = kernel.ROARING_CHUNK_BITS          # 16: pfn >> 16 selects a container
CHUNK_PAGES = 1 << CHUNK_BITS
BLOCK_BITS = 32                                 # one 32-bit BitMap per pfn >> 32
BLOCK_MASK = (1 << BLOCK_BITS) - 1
CONTAINER_FIXED_BYTES = (kernel.ROARING_CONTAINER_INDEX_BYTES
                         + kernel.ROARING_CONTAINER_STRUCT_BYTES)   # 27 B
CONTAINER_MAX_BYTES = CONTAINER_FIXED_BYTES + kernel.ROARING_BITMAP_CONTAINER_BYTES
# serialized sizes CRoaring compares (convert.c): run 2 + 4 r, array 2 c, bitset 8192
RUN_SERIAL_HEADER = 2
# portable format (CRoaring include/roaring/roaring_array.h)
SERIAL_COOKIE_NO_RUNCONTAINER = 12346
SERIAL_COOKIE = 12347
NO_OFFSET_THRESHOLD = 4

KIND_ARRAY, KIND_BITSET, KIND_RUN = 0, 1, 2
KIND_NAMES = ("array container", "bitset container", "run container")

SCAN_WINDOW = 16 * CHUNK_PAGES                  # <= 2^20 pages per scan step
EXTENT_GROUP = 1 << 22                          # extents per estimate step


# --------------------------------------------------------------------------
# the model, from extents

def split_at(starts: np.ndarray, ends: np.ndarray, shift: int):
    """Cut [start, end) runs at multiples of 2^shift -> (key, start, end) pieces."""
    first = starts >> shift
    last = (ends - 1) >> shift
    n = last - first + 1
    if n.size and int(n.max()) == 1:
        return first, starts, ends
    idx = np.repeat(np.arange(starts.size), n)
    off = np.arange(idx.size) - np.repeat(np.cumsum(n) - n, n)
    key = first[idx] + off
    lo = np.maximum(starts[idx], key << shift)
    hi = np.minimum(ends[idx], (key + 1) << shift)
    return key, lo, hi


def chunk_table(starts: np.ndarray, ends: np.ndarray):
    """Per 2^16 chunk of a normalised set: (key, pages c, runs r), keys ascending.

    Each extent puts its head piece in chunk start >> 16; only extents that
    cross a chunk boundary (at most one per boundary) add a tail piece and
    full middle chunks, so the per-extent work is a few vector ops.
    """
    keys, cards, runs = [], [], []
    for g in range(0, starts.size, EXTENT_GROUP):          # one step per 4M extents
        s, e = starts[g:g + EXTENT_GROUP], ends[g:g + EXTENT_GROUP]
        first = s >> CHUNK_BITS
        last = (e - 1) >> CHUNK_BITS
        head = np.minimum(e, (first + 1) << CHUNK_BITS) - s
        b = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])
        keys.append(first[b])
        cards.append(np.add.reduceat(head, b))
        runs.append(np.diff(np.r_[b, first.size]))
        x = np.flatnonzero(last > first)
        if x.size:
            one = np.ones(x.size, np.int64)
            keys.append(last[x])                            # tail pieces
            cards.append(e[x] - (last[x] << CHUNK_BITS))
            runs.append(one)
            y = x[last[x] > first[x] + 1]                   # whole chunks between
            if y.size:
                mk, _, _ = split_at((first[y] + 1) << CHUNK_BITS, last[y] << CHUNK_BITS,
                                    CHUNK_BITS)
                keys.append(mk)
                cards.append(np.full(mk.size, CHUNK_PAGES, np.int64))
                runs.append(np.ones(mk.size, np.int64))
    if not keys:
        z = np.zeros(0, np.int64)
        return z, z, z
    key, c, r = np.concatenate(keys), np.concatenate(cards), np.concatenate(runs)
    order = np.argsort(key, kind="stable")                  # <= a few entries per chunk
    key, c, r = key[order], c[order], r[order]
    b = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[b], np.add.reduceat(c, b), np.add.reduceat(r, b)


def container_kind(cards: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """The canonical kind (module docstring) of each container."""
    run_size = RUN_SERIAL_HEADER + kernel.ROARING_RUN_BYTES * runs
    array_size = kernel.ROARING_ARRAY_VALUE_BYTES * cards
    is_run = run_size < np.minimum(array_size, kernel.ROARING_BITMAP_CONTAINER_BYTES)
    return np.where(is_run, KIND_RUN,
                    np.where(cards <= kernel.ROARING_ARRAY_MAX, KIND_ARRAY, KIND_BITSET))


def breakdown_of(kinds: np.ndarray, cards: np.ndarray, runs: np.ndarray) -> dict[str, int]:
    """Modeled bytes by part; sums to modeled_bytes."""
    k = kinds
    return {
        "container index (key, pointer, typecode)":
            kernel.ROARING_CONTAINER_INDEX_BYTES * int(k.size),
        "container structs": kernel.ROARING_CONTAINER_STRUCT_BYTES * int(k.size),
        "array container": kernel.ROARING_ARRAY_VALUE_BYTES
            * int(cards[k == KIND_ARRAY].sum(dtype=np.int64)),
        "bitset container": kernel.ROARING_BITMAP_CONTAINER_BYTES
            * int(np.count_nonzero(k == KIND_BITSET)),
        "run container": kernel.ROARING_RUN_BYTES
            * int(runs[k == KIND_RUN].sum(dtype=np.int64)),
    }


FORMULA = {
    "container index (key, pointer, typecode)":
        f"{kernel.ROARING_CONTAINER_INDEX_BYTES} * containers",
    "container structs": f"{kernel.ROARING_CONTAINER_STRUCT_BYTES} * containers",
    "array container": "2 * pages in array containers",
    "bitset container": "8192 * bitset containers",
    "run container": "4 * runs in run containers",
    "kind": "run if 2+4r < min(2c, 8192), else array if c <= 4096, else bitset "
            "(c pages, r runs per 2^16-page chunk)",
}


# --------------------------------------------------------------------------
# CRoaring portable format: build run containers, read container tables

def runs_to_bitmap(lo: np.ndarray, hi: np.ndarray) -> BitMap:
    """A BitMap of disjoint, ascending local [lo, hi) runs (< 2^32), as run containers.

    Built as a portable-format buffer (cookie, run flags, key/card-1 pairs,
    offsets, then per container n_runs and (start, length-1) pairs) and
    deserialized: one C call for any number of runs.
    """
    key, s, e = split_at(lo, hi, CHUNK_BITS)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    n_runs = np.diff(np.r_[first, key.size])
    cards = np.add.reduceat(e - s, first)
    size = int(first.size)
    flag_bytes = (size + 7) // 8
    header = 4 + flag_bytes + 4 * size + (4 * size if size >= NO_OFFSET_THRESHOLD else 0)
    body_u16 = int(size + 2 * key.size)                # n_runs + pairs
    buf = np.zeros(header + 2 * body_u16, np.uint8)
    buf[0:4] = np.frombuffer(np.uint32(SERIAL_COOKIE | ((size - 1) << 16)).tobytes(),
                             np.uint8)
    flags = np.zeros(flag_bytes * 8, np.uint8)
    flags[:size] = 1
    buf[4:4 + flag_bytes] = np.packbits(flags, bitorder="little")
    pos = 4 + flag_bytes
    desc = np.empty((size, 2), "<u2")
    desc[:, 0] = key[first] & 0xFFFF
    desc[:, 1] = cards - 1
    buf[pos:pos + 4 * size] = desc.view(np.uint8).reshape(-1)
    pos += 4 * size
    cstart = np.cumsum(1 + 2 * n_runs) - (1 + 2 * n_runs)   # u16 index of each container
    if size >= NO_OFFSET_THRESHOLD:
        offs = (header + 2 * cstart).astype("<u4")
        buf[pos:pos + 4 * size] = offs.view(np.uint8)
    body = np.empty(body_u16, "<u2")
    body[cstart] = n_runs
    rank = np.arange(key.size) - np.repeat(first, n_runs)
    at = np.repeat(cstart, n_runs) + 1 + 2 * rank
    body[at] = s & 0xFFFF
    body[at + 1] = e - s - 1
    buf[header:] = body.view(np.uint8)
    return BitMap.deserialize(buf.tobytes())


def container_table(bm: BitMap, blob: bytes | None = None):
    """(keys, cards, kinds, runs) of every container, read from the portable format.

    runs is the run count of run containers (0 for the others).
    """
    if blob is None:
        blob = bm.serialize()
    cookie = int(np.frombuffer(blob, "<u4", count=1)[0])
    if cookie & 0xFFFF == SERIAL_COOKIE:
        size = (cookie >> 16) + 1
        flag_bytes = (size + 7) // 8
        is_run = np.unpackbits(np.frombuffer(blob, np.uint8, flag_bytes, 4),
                               bitorder="little")[:size].astype(bool)
        pos = 4 + flag_bytes
        has_offsets = size >= NO_OFFSET_THRESHOLD
    else:
        assert cookie == SERIAL_COOKIE_NO_RUNCONTAINER, f"bad cookie {cookie}"
        size = int(np.frombuffer(blob, "<u4", 1, 4)[0])
        is_run = np.zeros(size, bool)
        pos, has_offsets = 8, True
    desc = np.frombuffer(blob, "<u2", 2 * size, pos).reshape(size, 2).astype(np.int64)
    keys, cards = desc[:, 0], desc[:, 1] + 1
    pos += 4 * size
    kinds = np.where(is_run, KIND_RUN,
                     np.where(cards <= kernel.ROARING_ARRAY_MAX, KIND_ARRAY, KIND_BITSET))
    if has_offsets:
        offs = np.frombuffer(blob, "<u4", size, pos).astype(np.int64)
    else:                                           # < 4 containers: walk them
        offs = np.empty(size, np.int64)
        at = pos
        for i in range(size):
            offs[i] = at
            if kinds[i] == KIND_RUN:
                at += 2 + 4 * int(np.frombuffer(blob, "<u2", 1, at)[0])
            elif kinds[i] == KIND_ARRAY:
                at += 2 * int(cards[i])
            else:
                at += kernel.ROARING_BITMAP_CONTAINER_BYTES
    raw = np.frombuffer(blob, np.uint8)
    runs = np.zeros(size, np.int64)
    ro = offs[is_run]
    runs[is_run] = raw[ro].astype(np.int64) | (raw[ro + 1].astype(np.int64) << 8)
    return keys, cards, kinds, runs


def canonical_form(bm: BitMap) -> None:
    """Bring every container of ``bm`` to its canonical kind (module docstring).

    The set is unchanged; tied run containers (c = 2 r + 1) are rebuilt as
    arrays with add_many.
    """
    bm.run_optimize()
    bm.shrink_to_fit()
    keys, cards, kinds, runs = container_table(bm)
    tied = np.flatnonzero((kinds == KIND_RUN) & (cards == 2 * runs + 1))
    for g in range(0, tied.size, 256):                # one step per 256 tied containers
        tk = keys[tied[g:g + 256]]
        chunks = runs_to_bitmap(tk << CHUNK_BITS, (tk + 1) << CHUNK_BITS)
        values = (bm & chunks).to_array()
        bm -= chunks
        bm.update(values)                             # add_many: array containers
    if tied.size:
        bm.shrink_to_fit()


def _as_uint32_array(values: np.ndarray) -> array.array:
    """int64 local PFNs -> array('I'), the type pyroaring's add_many path takes."""
    return array.array("I", values.astype(np.uint32).tobytes())


# --------------------------------------------------------------------------

class Roaring(Tracker):
    """CRoaring bitmap of PFNs, one 32-bit BitMap per 2^32 PFNs; see module docstring."""

    name = "roaring"
    option = "1c: Roaring bitmap (CRoaring)"
    #: an estimated set's scan: one load per bitmap-sized container (the dominant kind)
    scan_node_bytes = kernel.ROARING_BITMAP_CONTAINER_BYTES

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.blocks: dict[int, BitMap] = {}        # pfn >> 32 -> BitMap of pfn & BLOCK_MASK
        self.serialized_bytes = 0                   # portable size at the last memory()

    def _settle(self, high: int, keys: np.ndarray) -> None:
        """Make the containers of block ``high`` at local chunk ``keys`` canonical.

        Only the touched containers are cut out, canonicalised and or-ed back
        (CRoaring's or_inplace copies a container of a key it lacks as is), so
        the cost follows the change, not the bitmap.  An emptied block goes.
        """
        bm = self.blocks.get(high)
        if bm is None:
            return
        if not bm:
            del self.blocks[high]                     # an empty block holds nothing
            return
        keys = np.unique(keys)
        chunks = runs_to_bitmap(keys << CHUNK_BITS, (keys + 1) << CHUNK_BITS)
        touched = bm & chunks
        bm -= chunks
        canonical_form(touched)
        bm |= touched
        bm.shrink_to_fit()

    # --- helpers -----------------------------------------------------------
    def _block(self, high: int) -> BitMap:
        bm = self.blocks.get(high)
        if bm is None:
            bm = self.blocks[high] = BitMap()
        return bm

    def _n_containers(self) -> int:
        return sum(bm.get_statistics()["n_containers"] for bm in self.blocks.values())

    def _by_block(self, starts, ends):
        """Yield (high, local lo, local hi) for runs grouped by 2^32 block."""
        high, lo, hi = split_at(starts, ends, BLOCK_BITS)
        order = np.argsort(high, kind="stable")
        high, lo, hi = high[order], lo[order], hi[order]
        cuts = np.flatnonzero(np.r_[True, high[1:] != high[:-1], True])
        for a, b in zip(cuts[:-1], cuts[1:]):        # one step per 2^32 block
            h = int(high[a])
            yield h, lo[a:b] - (h << BLOCK_BITS), hi[a:b] - (h << BLOCK_BITS)

    def _pfns_by_block(self, pfns):
        high = pfns >> BLOCK_BITS
        if high.size and int(high.min()) == int(high.max()):
            yield int(high[0]), np.arange(pfns.size), pfns & BLOCK_MASK
            return
        for h in np.unique(high):                    # one step per 2^32 block
            idx = np.flatnonzero(high == h)
            yield int(h), idx, pfns[idx] & BLOCK_MASK

    def _check_growth(self, starts, ends):
        """Refuse before a change if the worst case outgrows the budget.

        Every container is at most 27 + 8192 B; a mark can add at most one
        container per 2^16 chunk it touches.
        """
        touched = int((((ends - 1) >> CHUNK_BITS) - (starts >> CHUNK_BITS) + 1).sum())
        chunks = -(-self.max_pfn // CHUNK_PAGES)
        need = CONTAINER_MAX_BYTES * min(self._n_containers() + touched, chunks)
        check_budget(f"roaring over {self.max_pfn:,} PFNs (worst case "
                     f"{CONTAINER_MAX_BYTES} B per container)", need, self.budget_bytes)

    # --- primitives ----------------------------------------------------------
    def _mark_ranges(self, starts, ends):
        s, e = normalize_extents(starts, ends)
        self._check_growth(s, e)
        for high, lo, hi in self._by_block(s, e):
            self._block(high).__ior__(runs_to_bitmap(lo, hi))
            self._settle(high, split_at(lo, hi, CHUNK_BITS)[0])

    def _unmark_ranges(self, starts, ends):
        s, e = normalize_extents(starts, ends)
        for high, lo, hi in self._by_block(s, e):
            bm = self.blocks.get(high)
            if bm is not None:
                bm -= runs_to_bitmap(lo, hi)
                self._settle(high, split_at(lo, hi, CHUNK_BITS)[0])

    def _mark_pfns(self, pfns):
        self._check_growth(pfns, pfns + 1)
        for high, _, local in self._pfns_by_block(pfns):
            self._block(high).update(_as_uint32_array(local))
            self._settle(high, local >> CHUNK_BITS)

    def _unmark_pfns(self, pfns):
        for high, _, local in self._pfns_by_block(pfns):
            bm = self.blocks.get(high)
            if bm is not None:
                bm -= BitMap(_as_uint32_array(local))
                self._settle(high, local >> CHUNK_BITS)

    def conversion_calls(self) -> ConversionCalls:
        """The contract's own calls, one Python call per conversion (an upper
        bound): pyroaring has no call that runs many add_range/remove_range
        in C (update() adds values one by one, |= and -= combine whole
        bitmaps), so CRoaring's own calls cannot be timed apart from Python's."""
        contract = super().conversion_calls()
        return replace(contract, calls=f"{contract.calls}: pyroaring has no batch call of "
                                       f"add_range / remove_range")

    def _contains(self, pfns):
        out = np.zeros(pfns.size, bool)
        for high, idx, local in self._pfns_by_block(pfns):
            bm = self.blocks.get(high)
            if bm is None:
                continue
            hits = np.frombuffer(
                (bm & BitMap(_as_uint32_array(local))).to_array(), np.uint32).astype(np.int64)
            if hits.size:
                at = np.minimum(np.searchsorted(hits, local), hits.size - 1)
                out[idx] = hits[at] == local
        return out

    def _count(self):
        return sum(len(bm) for bm in self.blocks.values())

    def _extent_batches(self) -> Iterator:
        for high in sorted(self.blocks):             # one step per 2^32 block
            bm = self.blocks[high]
            if not bm:
                continue
            base = high << BLOCK_BITS
            w = (bm.min() // SCAN_WINDOW) * SCAN_WINDOW
            top = bm.max() + 1
            while w < top:                            # one step per 2^20-page window
                hi = min(w + SCAN_WINDOW, 1 << BLOCK_BITS)
                if bm.range_cardinality(w, hi):
                    vals = np.frombuffer((bm & BitMap(range(w, hi))).to_array(),
                                         np.uint32).astype(np.int64)
                    brk = np.flatnonzero(np.diff(vals) != 1)
                    rs = vals[np.r_[0, brk + 1]] + base
                    re = vals[np.r_[brk, vals.size - 1]] + base + 1
                    for k in range(0, rs.size, EXTENT_CHUNK):
                        yield rs[k:k + EXTENT_CHUNK], re[k:k + EXTENT_CHUNK]
                w = hi

    # --- canonical form and memory -------------------------------------------
    def canonicalize(self) -> None:
        """Bring every block to canonical form; set unchanged.

        Marks and unmarks already keep the bitmap canonical; this is for
        blocks set from outside (e.g. a deserialized BitMap).
        """
        for high in list(self.blocks):
            bm = self.blocks[high]
            if not bm:
                del self.blocks[high]                 # an empty block holds nothing
                continue
            canonical_form(bm)

    def _tables(self):
        """Concatenated (keys, cards, kinds, runs, serialized bytes) over blocks."""
        parts, serialized = [], 0
        for high in sorted(self.blocks):
            blob = self.blocks[high].serialize()
            serialized += len(blob)
            k, c, t, r = container_table(self.blocks[high], blob)
            parts.append((k + (high << 16), c, t, r))
        if not parts:
            z = np.zeros(0, np.int64)
            return z, z, z, z, 0
        return (*(np.concatenate([p[i] for p in parts]) for i in range(4)), serialized)

    def memory(self):
        """Read-only: the containers are canonical after every change (module docstring)."""
        keys, cards, kinds, runs, serialized = self._tables()
        self.serialized_bytes = serialized
        breakdown = breakdown_of(kinds, cards, runs)
        modeled = sum(breakdown.values())
        counts = ", ".join(f"{int(np.count_nonzero(kinds == i))} {n}s"
                           for i, n in enumerate(KIND_NAMES))
        return MemoryReport(
            modeled_bytes=modeled,
            breakdown=breakdown,
            # CRoaring's heap after shrink_to_fit has this very layout (capacity ==
            # size); pyroaring exposes no allocator count, so it is computed.
            host_bytes=modeled,
            scanned_bytes=modeled,
            scan_loads=int(keys.size),         # one container pointer per container
            notes=(f"{counts}; portable serialized size {serialized:,} B "
                   "(not part of modeled); host bytes = CRoaring heap computed from "
                   "the containers after shrink_to_fit, not measured"),
            formula=dict(FORMULA),
        )

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        s, e = estimate_input(starts, ends, max_pfn)
        _, cards, runs = chunk_table(s, e)
        return sum(breakdown_of(container_kind(cards, runs), cards, runs).values())

    def check(self):
        """Read-only: verifies the invariants, the canonical kinds included."""
        assert all(self.blocks.values()), "an empty 2^32 block is kept"
        keys, cards, kinds, runs, _ = self._tables()
        assert np.all(np.diff(keys) > 0), "container keys not strictly ascending"
        assert np.all((cards >= 1) & (cards <= CHUNK_PAGES)), "container cardinality out of range"
        assert np.all(kinds[cards > kernel.ROARING_ARRAY_MAX] != KIND_ARRAY), \
            "array container above 4096 pages"
        if keys.size:
            assert int(keys[-1]) << CHUNK_BITS < self.max_pfn, \
                f"container key {int(keys[-1])} at or past max_pfn {self.max_pfn}"
        # the kinds CRoaring holds are the canonical kinds of the set's chunks
        ext = [(s, e) for s, e in self.extents()]
        s = np.concatenate([x[0] for x in ext]) if ext else np.zeros(0, np.int64)
        e = np.concatenate([x[1] for x in ext]) if ext else np.zeros(0, np.int64)
        ck, cc, cr = chunk_table(s, e)
        assert np.array_equal(ck, keys), "containers differ from the set's chunks"
        assert np.array_equal(cc, cards), "container cardinalities differ from the set"
        want = container_kind(cc, cr)
        assert np.array_equal(want, kinds), (
            f"non-canonical container at key {int(keys[np.flatnonzero(want != kinds)[0]])}")
        assert np.array_equal(runs[kinds == KIND_RUN], cr[kinds == KIND_RUN]), \
            "run container run counts differ from the set"
        stats = [bm.get_statistics() for bm in self.blocks.values()]
        for i, field in ((KIND_ARRAY, "array"), (KIND_BITSET, "bitset"), (KIND_RUN, "run")):
            n = sum(st[f"n_{field}_containers"] for st in stats)
            assert n == int(np.count_nonzero(kinds == i)), f"{field} container count mismatch"
