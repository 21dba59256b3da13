"""Option 1a: one bit per PFN over [0, max_pfn).

The kernel form is an ``unsigned long`` bitmap allocated once at TDX module
init (Kai Huang, Apr 2024: "number of total RAM pages / 8" bytes) and updated
with set_bit()/clear_bit() where pages become private or are returned.
Bit ``pfn & 63`` of word ``pfn >> 6``, as include/linux/bitops.h numbers them.

This emulation is byte-faithful: host bytes == modeled bytes.
Invariant: bits at and past ``max_pfn`` in the last word are zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kernel
from .base import EXTENT_CHUNK, MemoryReport, Tracker, check_budget, estimate_input

WORDS_PER_SCAN = EXTENT_CHUNK // 32   # a word yields at most 32 runs


@njit(cache=True)
def _fill_ranges(words, starts, ends, value):
    """Set (value=True) or clear the bits of every [start, end)."""
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    for i in range(starts.size):
        s, e = starts[i], ends[i]
        ws, we = s >> 6, (e - 1) >> 6
        lo = full << np.uint64(s & 63)
        hi = full >> np.uint64(63 - ((e - 1) & 63))
        if ws == we:
            m = lo & hi
            words[ws] = (words[ws] | m) if value else (words[ws] & ~m)
            continue
        words[ws] = (words[ws] | lo) if value else (words[ws] & ~lo)
        fill = full if value else np.uint64(0)
        for w in range(ws + 1, we):
            words[w] = fill
        words[we] = (words[we] | hi) if value else (words[we] & ~hi)


@njit(cache=True)
def _set_bits(words, pfns, value):
    one = np.uint64(1)
    for p in pfns:
        m = one << np.uint64(p & 63)
        words[p >> 6] = (words[p >> 6] | m) if value else (words[p >> 6] & ~m)


@njit(cache=True)
def _word_runs(words, first_word, out_s, out_e):
    """Runs of set bits in ``words`` (PFNs offset by first_word*64).

    Skips all-zero and all-one words whole; returns the run count.  Runs that
    touch across word boundaries are merged here.
    """
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    n = 0
    base = first_word * 64
    in_run = False
    for w in range(words.size):
        x = words[w]
        if x == 0:
            if in_run:
                out_e[n] = base + w * 64
                n += 1
                in_run = False
            continue
        if x == full:
            if not in_run:
                out_s[n] = base + w * 64
                in_run = True
            continue
        for b in range(64):
            bit = (x >> np.uint64(b)) & np.uint64(1)
            if bit and not in_run:
                out_s[n] = base + w * 64 + b
                in_run = True
            elif not bit and in_run:
                out_e[n] = base + w * 64 + b
                n += 1
                in_run = False
    if in_run:
        out_e[n] = base + words.size * 64
        n += 1
    return n


class Bitmap(Tracker):
    """One bit per PFN: modeled bytes = 8 * ceil(max_pfn / 64), whatever the set."""

    name = "bitmap"
    option = "1: bitmap over all PFNs"

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        nbytes = self.estimate([], [], self.max_pfn)
        check_budget(f"bitmap over {self.max_pfn:,} PFNs", nbytes, self.budget_bytes)
        self.words = np.zeros(nbytes // 8, np.uint64)

    def _mark_ranges(self, starts, ends):
        _fill_ranges(self.words, starts, ends, True)

    def _unmark_ranges(self, starts, ends):
        _fill_ranges(self.words, starts, ends, False)

    def _mark_pfns(self, pfns):
        _set_bits(self.words, pfns, True)

    def _unmark_pfns(self, pfns):
        _set_bits(self.words, pfns, False)

    def _contains(self, pfns):
        bits = self.words[pfns >> 6] >> (pfns & 63).astype(np.uint64)
        return (bits & np.uint64(1)).astype(bool)

    def _count(self):
        return int(np.bitwise_count(self.words).sum(dtype=np.int64))

    def _extent_batches(self):
        out_s = np.empty(EXTENT_CHUNK, np.int64)
        out_e = np.empty(EXTENT_CHUNK, np.int64)
        for w0 in range(0, self.words.size, WORDS_PER_SCAN):
            n = _word_runs(self.words[w0:w0 + WORDS_PER_SCAN], w0, out_s, out_e)
            if n:
                yield out_s[:n].copy(), out_e[:n].copy()

    def memory(self):
        nbytes = self.estimate([], [], self.max_pfn)
        return MemoryReport(
            modeled_bytes=nbytes,
            breakdown={"bitmap": nbytes},
            host_bytes=self.words.nbytes,
            scanned_bytes=nbytes,
            notes="byte-faithful: the host array is the kernel bitmap",
            formula={"bitmap": "8 * ceil(max_pfn / 64)"},
        )

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        estimate_input(starts, ends, max_pfn)
        return 8 * -(-int(max_pfn) // kernel.BITS_PER_LONG)

    def check(self):
        tail = self.max_pfn & 63
        if tail:
            stray = int(self.words[-1]) >> tail
            assert stray == 0, f"bits set at or past max_pfn {self.max_pfn}: {stray:#x}"
        assert self.words.size * 64 >= self.max_pfn
