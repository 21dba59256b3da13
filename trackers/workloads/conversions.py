"""Conversions and oracles over the event stream (format: :mod:`trackers.events`).

:class:`Binding` is one TD's guest_memfd GFN -> PFN bindings and turns GFN
conversions into event rows in KVM's order; :class:`Churner` generates
private <-> shared conversions while TDs run; :func:`private_after` and
:func:`kvm_private_after` replay a stream into the sets a hooked tracker and
KVM's attribute walk would hold (the oracles the tests compare against).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import extents as X
from ..events import (GMEM_BIND, GMEM_UNBIND, KIND_GUEST, KIND_NONE, KVM_SET_ATTR_PRIVATE,
                      KVM_SET_ATTR_SHARED, MAPGPA_CHUNK, SEAMCALL_PRIVATE, SEAMCALL_RECLAIM,
                      concat, make_rows, op_runs)


def private_after(batches, start: X.Extents | None = None) -> X.Extents:
    """The TDX-private PFN set after replaying the SEAMCALL rows (an oracle).

    One set operation per run of equal op, like Tracker.apply().
    """
    cur = start if start is not None else X.empty()
    for b in batches:
        b = b[(b["op"] == SEAMCALL_PRIVATE) | (b["op"] == SEAMCALL_RECLAIM)]
        for i, j in zip(*op_runs(b["op"])):
            ext = X.normalize(b["pfn_start"][i:j], b["pfn_end"][i:j])
            cur = X.union(cur, ext) if b["op"][i] == SEAMCALL_PRIVATE else X.subtract(cur, ext)
    return cur


def kvm_private_after(batches) -> X.Extents:
    """PFNs KVM would call private: GFNs with the private attribute and bound.

    Follows KVM_SET_ATTR_* and GMEM_* rows only, per TD (what the ``kvm``
    tracker sees); one set operation per run of equal op and TD.
    """
    allb = concat(batches)
    tds = np.sort(allb["td"][allb["td"] >= 0])
    if tds.size:
        tds = tds[np.append(True, tds[1:] != tds[:-1])]
    out = []
    for td in tds:
        b = allb[allb["td"] == td]
        attr = X.empty()
        a = b[(b["op"] == KVM_SET_ATTR_PRIVATE) | (b["op"] == KVM_SET_ATTR_SHARED)]
        for i, j in zip(*op_runs(a["op"])):
            g = X.normalize(a["gfn_start"][i:j], a["gfn_end"][i:j])
            attr = X.union(attr, g) if a["op"][i] == KVM_SET_ATTR_PRIVATE else X.subtract(attr, g)
        rows = b[(b["op"] == GMEM_BIND) | (b["op"] == GMEM_UNBIND)]
        cur = Binding()
        for i, j in zip(*op_runs(rows["op"])):
            r = rows[i:j]
            if rows["op"][i] == GMEM_BIND:
                cur.add(r["gfn_start"], r["gfn_end"], r["pfn_start"])
            else:
                cur.remove(*X.normalize(r["gfn_start"], r["gfn_end"]))
        ia, _, s, e = X.overlaps(cur.gs, cur.ge, *attr)
        off = cur.ps[ia] - cur.gs[ia]
        out.append(X.normalize(s + off, e + off))
    return X.union(*out) if out else X.empty()


# --------------------------------------------------------------------------
# GFN -> PFN binding and conversions

Allocator = Callable[[int], X.Extents]     # n pages -> PFN sequence
Releaser = Callable[[X.Extents], None]     # PFN extents back to the host


class Binding:
    """One TD's guest_memfd bindings: sorted GFN rows [gs, ge) -> PFN ps.

    Rows are disjoint and sorted by GFN; touching rows are kept apart (their
    PFNs need not continue each other).  A bound GFN is a TDX-private page
    once its tdh_mem_page_aug row has been emitted, which :meth:`to_private`
    does right after binding.
    """

    def __init__(self):
        self.gs = np.empty(0, np.int64)
        self.ge = np.empty(0, np.int64)
        self.ps = np.empty(0, np.int64)

    def __len__(self) -> int:
        return int((self.ge - self.gs).sum())

    def pfn_extents(self) -> X.Extents:
        return X.normalize(self.ps, self.ps + (self.ge - self.gs))

    def gfn_extents(self) -> X.Extents:
        return X.normalize(self.gs, self.ge)

    def add(self, gs, ge, ps) -> None:
        gs, ge, ps = (np.asarray(a, np.int64) for a in (gs, ge, ps))
        allg = np.concatenate((self.gs, gs))
        order = np.argsort(allg, kind="stable")
        self.gs = allg[order]
        self.ge = np.concatenate((self.ge, ge))[order]
        self.ps = np.concatenate((self.ps, ps))[order]
        if self.gs.size > 1 and (self.gs[1:] < self.ge[:-1]).any():
            raise AssertionError("binding rows overlap")

    def remove(self, qs: np.ndarray, qe: np.ndarray) -> None:
        """Drop the GFNs of the normalized set (qs, qe)."""
        kept = X.subtract(self.gfn_extents(), (qs, qe))
        ia, _, s, e = X.overlaps(self.gs, self.ge, *kept)
        self.ps = self.ps[ia] + (s - self.gs[ia])
        self.gs, self.ge = s, e

    def to_shared(self, td: int, qs: np.ndarray, qe: np.ndarray,
                  release: Releaser) -> np.ndarray:
        """Convert disjoint GFN ranges (in issue order) to shared.

        Per range: KVM_SET_ATTR_SHARED, then SEAMCALL_RECLAIM and GMEM_UNBIND
        for each bound PFN extent in it.  Freed PFNs go to ``release``.
        """
        qs, qe = np.asarray(qs, np.int64), np.asarray(qe, np.int64)
        order = np.argsort(qs, kind="stable")
        ss, se = qs[order], qe[order]
        if ss.size > 1 and (ss[1:] < se[:-1]).any():
            raise ValueError("conversion ranges in one batch overlap")
        ia, ib, s, e = X.overlaps(self.gs, self.ge, ss, se)
        p = self.ps[ia] + (s - self.gs[ia])
        k = order[ib]                         # issue index of each piece
        attr = make_rows(KVM_SET_ATTR_SHARED, KIND_NONE, td, gfn_start=qs, gfn_end=qe,
                         n=qs.size)
        rec = make_rows(SEAMCALL_RECLAIM, KIND_GUEST, td, p, p + (e - s), s, e, n=s.size)
        unb = rec.copy()
        unb["op"] = GMEM_UNBIND
        rows = np.concatenate((attr, rec, unb))
        key = np.concatenate((np.arange(qs.size) * 3, k * 3 + 1, k * 3 + 2))
        rows = rows[np.argsort(key, kind="stable")]
        self.remove(*X.normalize(ss, se))
        if s.size:
            release(X.normalize(p, p + (e - s)))
        return rows

    def to_private(self, td: int, qs: np.ndarray, qe: np.ndarray,
                   allocate: Allocator) -> np.ndarray:
        """Convert disjoint GFN ranges (in issue order) to private.

        Per range: KVM_SET_ATTR_PRIVATE, then GMEM_BIND and SEAMCALL_PRIVATE
        (tdh_mem_page_aug) for each new PFN extent.  GFNs already bound stay
        as they are; unbound ones get PFNs from ``allocate`` in GFN order.
        """
        qs, qe = np.asarray(qs, np.int64), np.asarray(qe, np.int64)
        order = np.argsort(qs, kind="stable")
        ss, se = qs[order], qe[order]
        if ss.size > 1 and (ss[1:] < se[:-1]).any():
            raise ValueError("conversion ranges in one batch overlap")
        need = X.subtract(X.normalize(ss, se), self.gfn_extents())
        n = X.count(need)
        attr = make_rows(KVM_SET_ATTR_PRIVATE, KIND_NONE, td, gfn_start=qs, gfn_end=qe,
                         n=qs.size)
        if n == 0:
            return attr
        pfns = allocate(n)
        g_pos, p_pos, length = X.zip_sequences(need, pfns)
        # pieces are in GFN order; attribute each to the range holding it
        k = order[np.searchsorted(ss, g_pos, side="right") - 1]
        bind = make_rows(GMEM_BIND, KIND_GUEST, td, p_pos, p_pos + length,
                         g_pos, g_pos + length, n=g_pos.size)
        aug = bind.copy()
        aug["op"] = SEAMCALL_PRIVATE
        rows = np.concatenate((attr, bind, aug))
        key = np.concatenate((np.arange(qs.size) * 3, k * 3 + 1, k * 3 + 2))
        rows = rows[np.argsort(key, kind="stable")]
        self.add(g_pos, g_pos + length, p_pos)
        return rows


# --------------------------------------------------------------------------
# churn: private <-> shared conversions while TDs run

def pick_conversions(rng: np.random.Generator, eligible: X.Extents, count: int,
                     frac_2m: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` disjoint GFN ranges inside ``eligible``, in random issue order.

    A fraction ``frac_2m`` are whole 2 MiB MapGPA chunks (aligned, the size
    KVM_HC_MAP_GPA_RANGE exits in); the rest single 4 KiB pages, each in a
    chunk of its own.  Fewer are returned if ``eligible`` holds fewer chunks.
    """
    s, e = eligible
    first = -(-s // MAPGPA_CHUNK)
    last = e // MAPGPA_CHUNK                       # exclusive chunk index
    n = np.maximum(last - first, 0)
    total = int(n.sum())
    count = min(int(count), total)
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pick = rng.choice(total, size=count, replace=False)
    cum = np.cumsum(n)
    i = np.searchsorted(cum, pick, side="right")
    chunk = first[i] + (pick - (cum[i] - n[i]))
    n2m = int(round(count * frac_2m))
    qs = chunk * MAPGPA_CHUNK
    qe = qs + MAPGPA_CHUNK
    single = np.arange(count) >= n2m
    off = rng.integers(0, MAPGPA_CHUNK, size=int(single.sum()))
    qs[single] += off
    qe[single] = qs[single] + 1
    return qs, qe


class Churner:
    """Private <-> shared conversions on one TD's private ``region`` (GFNs).

    Step i converts a fresh set S_i to shared and, after it, S_{i-1} back to
    private (re-bound to whatever PFNs the allocator hands out): the moving
    shared window of the td16g-boot trace sample.  The last S stays shared.
    A Python step per batch, numpy inside; several TDs step in turn so that
    PFNs freed by one are reused by another in stream order.
    """

    def __init__(self, rng: np.random.Generator, td: int, binding: Binding,
                 region: X.Extents, per_batch: int, frac_2m: float,
                 allocate: Allocator, release: Releaser):
        self.rng, self.td, self.binding, self.region = rng, td, binding, region
        self.per_batch, self.frac_2m = per_batch, frac_2m
        self.allocate, self.release = allocate, release
        self.prev: tuple[np.ndarray, np.ndarray] | None = None

    def step(self) -> np.ndarray:
        prev = self.prev
        eligible = self.region if prev is None else X.subtract(self.region, X.normalize(*prev))
        qs, qe = pick_conversions(self.rng, eligible, self.per_batch, self.frac_2m)
        rows = [self.binding.to_shared(self.td, qs, qe, self.release)]
        if prev is not None:
            rows.append(self.binding.to_private(self.td, prev[0], prev[1], self.allocate))
        self.prev = (qs, qe)
        return concat(rows)
