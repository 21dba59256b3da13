"""How many xa_nodes an update needs at least, decided without sorting it."""

from __future__ import annotations

import numpy as np
from numba import njit

from .model import XA_LEVELS
from .xas import M_USED, xa_node_exists, xas_load

_I32_MAX = np.iinfo(np.int32).max


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
            if xa_node_exists(slots, hdr, meta, base, b - 6):
                continue
            if not multi:
                bound += 1
            elif c < sat and (xas_load(slots, hdr, parent, meta, base) == 0) == store:
                bound += 1
        if 0 <= limit < bound:
            return bound
    return bound


