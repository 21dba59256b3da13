"""Option 4 (Kai Huang, Apr 2024): let KVM find its own private pages.

KVM already keeps, per VM, ``kvm->mem_attr_array``: an XArray with one value
entry per GFN whose attributes are non-zero (virt/kvm/kvm_main.c
kvm_vm_set_mem_attributes: xa_reserve then xa_store of
xa_mk_value(KVM_MEMORY_ATTRIBUTE_PRIVATE) for every GFN of the range; no
multi-index entries).  The PFN behind a private GFN comes from guest_memfd:
the gmem inode's page cache (``i_mapping->i_pages``, an XArray of order-0
folios indexed by pgoff; virt/kvm/guest_memfd.c kvm_gmem_get_pfn,
folio_file_pfn).  The kexec scan walks each TD's attributes in GFN order and
translates every private GFN to its PFN.

Emulation, per TD: two XArrays on the engine (:class:`trackers.xa.XaTree`)
with the kernel's node count -- ``attrs`` (value entry per private GFN) and
``gmem`` (one entry per bound GFN whose payload is PFN + 1, standing in for
the folio pointer).  The memslot is modeled as GFN == pgoff (one slot at base 0, offset
0); the kernel's per-slot offset changes indices, not node counts, for a TD
whose memory is one slot.

What it sees: only KVM_SET_ATTR_* and GMEM_* events (:meth:`KvmAttributes.apply`);
PAMT, TDR/TDCS/TDVPR/TDCX and S-EPT pages are never in any TD's attributes,
so this tracker cannot find them -- that is the point of measuring it.
Pages marked directly (``mark_ranges``) belong to one default TD with
GFN = PFN, bound and private (docs/CONTRACT.md).

Modeled bytes: both XArrays' xa_nodes (≈ 9 B per private page each at full
leaves: 576 B / 64 slots).

The reserve step (found by building lib/xarray.c): xa_reserve() stores
XA_ZERO_ENTRY, which xas_store() never keeps in xa_head, so making GFN 0
alone private in an empty mem_attr_array creates an xa_node, and the
xa_store() of the value that follows keeps it: 1 node where a plain xa_store
leaves none.  Only a later erase runs xas_shrink(), which moves GFN 0 back
into xa_head.  So with GFN 0 the only private GFN, mem_attr_array holds 1
xa_node or none depending on history; every other state is a function of
the set.  The emulation follows it per TD (:class:`TdXArrays`
``zero_node``), as KVM's rows decide it: a private row of exactly GFN 0 into
an empty array leaves the node; a shared row over GFN 0 or any other
private row ends that state; a shared row above GFN 0 is a no-op in KVM
(kvm_range_has_memory_attributes: nothing to change) and keeps it.  The
default TD of direct marks follows the same rows, so ``memory()`` holds
what its history left, while ``estimate()`` is a fresh build, the set made
private at once: 1 xa_node for the set {0}.  The guest_memfd page cache
stores folio pointers with xa_store, which xa_head holds: no such node.

Budget: one per tracker.  Every XArray of every TD draws on the tracker's one
:class:`trackers.pool.HostBudget`; an update (an event batch, a direct mark)
first counts the xa_nodes each tree it touches may need at its peak and
reserves them all at once, so a batch that would not fit is refused before
any tree grows or changes (MemoryBudgetError naming the bytes and the
budget).  The scan's cached PFN runs are host bytes outside the budget.  KVM holds them anyway, so the option *adds* 0
bytes; that figure belongs to the kexec strategies (added_bytes).

Scans: ``extents()`` must be PFN-ascending; the TD walk is GFN-ordered, so
the walk's output is collected as PFN runs (one per contiguous PFN stretch,
never one per page), sorted and merged, and cached until the next change.
Memory held by a scan is O(PFN runs), which is the size of the bindings.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kernel
from .events import (GMEM_BIND, GMEM_UNBIND, KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED,
                     check_events, op_runs)
from .base import EXTENT_CHUNK, MemoryBudgetError, MemoryReport, Tracker, validate_ranges
from .extents import contains_points, count, normalize_extents
from .pool import HostBudget
from .xa import (XA_VALUE, XaTree, estimate_extents, level_breakdown, level_formula,
                 xa_erase_ranges, xa_node_counts, xa_store, xa_store_mapped, xa_store_ranges)

DIRECT_TD = -1            # the default TD of pages marked directly (GFN == PFN)
GFN_SLICE = 1 << 20       # GFNs translated per compiled call: bounds scan memory


@njit(cache=True)
def _attr_rows(slots, hdr, parent, meta, levels, gfn_s, gfn_e, private):
    """kvm_vm_set_mem_attributes per row, in stream order: a value entry per
    GFN (private) or NULL (shared: storing NULL erases)."""
    for r in range(gfn_s.size):
        if private[r]:
            xa_store_ranges(slots, hdr, parent, meta, levels, gfn_s[r:r + 1], gfn_e[r:r + 1],
                            XA_VALUE)
        else:
            xa_erase_ranges(slots, hdr, parent, meta, levels, gfn_s[r:r + 1], gfn_e[r:r + 1])


@njit(cache=True)
def xa_store_per_gfn(slots, hdr, parent, meta, levels, gfn_s, gfn_e):
    """The loop of kvm_vm_set_mem_attributes as KVM runs it: one xa_store()
    -- a full walk from xa_head -- per GFN.  Timed by bench-core against the
    26-s soft-lockup anchor; the tracker itself stores a leaf at a time."""
    for r in range(gfn_s.size):
        for g in range(gfn_s[r], gfn_e[r]):
            xa_store(slots, hdr, parent, meta, levels, g, XA_VALUE)


@njit(cache=True)
def _translate(run_s, run_e, i, g, pfn_plus1, n_in, out_s, out_e):
    """PFN runs of the GFNs [g, ...) of attribute runs i.., given their
    gmem payloads ``pfn_plus1`` (0: unbound, skipped).  Consumes n_in GFNs;
    returns (runs written, next i, next g)."""
    n = 0
    k = 0
    cur_s = -1
    cur_e = -1
    while i < run_s.size and k < n_in:
        if g < run_s[i]:
            g = run_s[i]
        while g < run_e[i] and k < n_in:
            p = pfn_plus1[k] - 1
            k += 1
            g += 1
            if p < 0:
                continue
            if p == cur_e:
                cur_e += 1
            else:
                if cur_s >= 0:
                    out_s[n] = cur_s
                    out_e[n] = cur_e
                    n += 1
                cur_s = p
                cur_e = p + 1
        if g >= run_e[i]:
            i += 1
    if cur_s >= 0:
        out_s[n] = cur_s
        out_e[n] = cur_e
        n += 1
    return n, i, g


@njit(cache=True)
def _slice_gfns(run_s, run_e, i, g, limit, out):
    """The next <= limit GFNs of runs i.. from g, into out;
    returns (count, next i, next g)."""
    k = 0
    while i < run_s.size and k < limit:
        if g < run_s[i]:
            g = run_s[i]
        while g < run_e[i] and k < limit:
            out[k] = g
            k += 1
            g += 1
        if g >= run_e[i]:
            i += 1
    return k, i, g


class TdXArrays:
    """One TD's mem_attr_array and guest_memfd page cache, on the tracker's budget.

    The interface the tracker uses (a kernel-code TD,
    :class:`trackers.kernel_code.KernelTd`, implements the same): budget
    requests :meth:`attr_rows`, :meth:`bind_rows` and :meth:`release`;
    updates :meth:`set_attrs`, :meth:`bind`, :meth:`unbind`; queries
    :meth:`attr_runs`, :meth:`bound_runs`, :meth:`pfn_plus1`, :meth:`levels`,
    :meth:`host_bytes`, :meth:`check`.  Updates do not reserve: the tracker
    reserves what :meth:`attr_rows` and :meth:`bind_rows` ask for, for every
    TD of a batch at once, first.

    ``zero_node`` models the one state of mem_attr_array that is not a
    function of its set (module docstring): GFN 0 alone, in an xa_node that
    kvm_vm_set_mem_attributes' xa_reserve created, rather than in xa_head.
    """

    def __init__(self, td: int, budget: HostBudget):
        self.attrs = XaTree(budget=budget, what=f"TD {td} mem_attr_array")
        self.gmem = XaTree(budget=budget, what=f"TD {td} guest_memfd i_pages")
        self.zero_node = False

    def release(self, budget: HostBudget) -> None:
        """Drop a TD that was never added: its trees stop counting."""
        budget.release(self.attrs.pool)
        budget.release(self.gmem.pool)

    def attr_rows(self, gfn_s, gfn_e, private):
        """(pool, xa_nodes) mem_attr_array needs for the rows: every private
        GFN stored (node count is monotone in the set, so the union bounds the
        peak of any replay order)."""
        tree = self.attrs
        return tree.pool, tree.nodes() + tree.nodes_missing(gfn_s[private], gfn_e[private])

    def bind_rows(self, gfn_s, gfn_e, pfn_s=None):
        """(pool, xa_nodes) the page cache needs for every GFN bound (the
        PFNs they are bound to do not change the count)."""
        return self.gmem.pool, self.gmem.nodes() + self.gmem.nodes_missing(gfn_s, gfn_e)

    def set_attrs(self, gfn_s, gfn_e, private):
        """kvm_vm_set_mem_attributes per row, in stream order, with the
        reserve step's one lasting effect (:attr:`zero_node`): a private row
        of exactly GFN 0 into an empty array leaves the node; any later
        private row or shared row from GFN 0 replaces that state, a shared
        row above GFN 0 leaves it (KVM skips a row whose GFNs are all shared
        already, so no xas_shrink runs)."""
        zero_alone = private & (gfn_s == 0) & (gfn_e == 1)
        resets = (private & ~zero_alone) | (~private & (gfn_s == 0))
        arrays = self.attrs.arrays
        done = 0
        for k in np.flatnonzero(zero_alone):          # one step per [0, 1) private row
            if resets[done:k].any():
                self.zero_node = False
            _attr_rows(*arrays, gfn_s[done:k], gfn_e[done:k], private[done:k])
            empty, held = len(self.attrs) == 0, int(self.attrs.load(np.zeros(1, np.int64))[0])
            _attr_rows(*arrays, gfn_s[k:k + 1], gfn_e[k:k + 1], private[k:k + 1])
            self.zero_node = empty or (self.zero_node and held != 0)
            done = k + 1
        if resets[done:].any():
            self.zero_node = False
        _attr_rows(*arrays, gfn_s[done:], gfn_e[done:], private[done:])

    def bind(self, gfn_s, gfn_e, pfn_s):
        # payload PFN + 1 at GFN g of a row: g + (pfn_start - gfn_start + 1)
        xa_store_mapped(*self.gmem.arrays, gfn_s, gfn_e, pfn_s - gfn_s + 1, 1)

    def unbind(self, gfn_s, gfn_e):
        self.gmem.erase_range(gfn_s, gfn_e)

    def attr_runs(self):
        """Runs of private GFNs, ascending, in batches (xa_for_each order)."""
        return self.attrs.walk()

    def bound_runs(self):
        """Runs of bound GFNs, ascending, in batches."""
        return self.gmem.walk()

    def pfn_plus1(self, gfns):
        """PFN + 1 bound at each GFN, 0 where none (the folio's PFN)."""
        return self.gmem.load(gfns)

    def zero_alone_in_node(self) -> bool:
        """mem_attr_array holds GFN 0 alone, in an xa_node (not xa_head)."""
        if len(self.attrs) != 1 or self.attrs.load(np.zeros(1, np.int64))[0] == 0:
            return False
        return self.zero_node

    def levels(self):
        """(mem_attr_array, guest_memfd) xa_nodes per level."""
        attr = self.attrs.node_counts_by_level()
        if self.zero_alone_in_node():
            attr[0] += 1                             # the reserved node kept for GFN 0
        return attr, self.gmem.node_counts_by_level()

    def host_bytes(self) -> int:
        return self.attrs.host_bytes() + self.gmem.host_bytes()

    def check(self) -> None:
        self.attrs.check()
        self.gmem.check()
        assert not self.zero_node or self.zero_alone_in_node(), \
            "mem_attr_array: GFN 0's reserved node kept, but GFN 0 is not alone"


def pfn_runs(td):
    """Walk a TD's mem_attr_array in GFN order and translate every private
    GFN through its guest_memfd binding: PFN runs (unsorted across runs;
    unbound GFNs skipped).  Works on any TD with the :class:`TdXArrays`
    interface."""
    out_s, out_e = [], []
    gfns = np.empty(GFN_SLICE, np.int64)
    buf_s = np.empty(GFN_SLICE, np.int64)
    buf_e = np.empty(GFN_SLICE, np.int64)
    for run_s, run_e in td.attr_runs():
        i, g = 0, int(run_s[0])
        while i < run_s.size:
            k, _, _ = _slice_gfns(run_s, run_e, i, g, GFN_SLICE, gfns)
            payload = td.pfn_plus1(gfns[:k])
            n, i, g = _translate(run_s, run_e, i, g, payload, k, buf_s, buf_e)
            out_s.append(buf_s[:n].copy())
            out_e.append(buf_e[:n].copy())
    if not out_s:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_s), np.concatenate(out_e)


def gfns_bound_to(td, s, e):
    """GFN runs of ``td`` whose bound PFN lies in the extents (s, e): the
    reverse lookup over the TD's bound GFNs, slice by slice."""
    out_s, out_e = [], []
    gfns = np.empty(GFN_SLICE, np.int64)
    for run_s, run_e in td.bound_runs():
        i, g = 0, int(run_s[0])
        while i < run_s.size:
            k, i, g = _slice_gfns(run_s, run_e, i, g, GFN_SLICE, gfns)
            pfn = td.pfn_plus1(gfns[:k]) - 1
            pos = np.searchsorted(e, pfn, side="right")
            hit = (pos < s.size) & (pfn >= s[np.minimum(pos, s.size - 1)])
            sel = gfns[:k][hit]
            if sel.size:
                b, f = normalize_extents(sel, sel + 1)
                out_s.append(b)
                out_e.append(f)
    if not out_s:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return normalize_extents(np.concatenate(out_s), np.concatenate(out_e))


class KvmAttributes(Tracker):
    """Each TD's mem_attr_array + guest_memfd binding; scan = walk and translate.

    ``apply()`` follows KVM_SET_ATTR_PRIVATE/SHARED and GMEM_BIND/UNBIND rows
    only; SEAMCALL rows are invisible to KVM's structures.
    """

    name = "kvm"
    sees_events_only = True
    option = "4: walk KVM's per-TD attribute XArrays (Kai Huang)"
    scan_node_bytes = kernel.XA_NODE_BYTES     # an estimated scan: one load per xa_node
    history_shaped = True                      # GFN 0's reserved xa_node (module docstring)

    def __init__(self, max_pfn: int, *, budget_bytes: int | None = None):
        super().__init__(max_pfn, budget_bytes=budget_bytes)
        self.host_budget = HostBudget(self.budget_bytes, f"{self.name} tracker")
        self.tds: dict[int, TdXArrays] = {}
        self._runs = None                      # cached PFN-sorted runs

    def new_td(self, td: int):
        """The structures of a TD first seen."""
        return TdXArrays(td, self.host_budget)

    def reserve(self, requests) -> None:
        """Reserve every request of an update at once (the TDs' attr_rows and
        bind_rows), or MemoryBudgetError with nothing grown."""
        self.host_budget.reserve(requests)

    def _reserve_tds(self, td_ids, rows_of) -> dict:
        """The TDs ``td_ids`` (new ones created) with every tree's xa_nodes
        reserved at once: ``rows_of(td_id, td)`` lists the requests.  On a
        refusal nothing grew and no TD was added."""
        tds = {td: self.tds.get(td) or self.new_td(td) for td in td_ids}
        fresh = [td for td in td_ids if td not in self.tds]
        try:
            self.reserve([req for td, t in tds.items() for req in rows_of(td, t)])
        except MemoryBudgetError:
            for td in fresh:
                tds[td].release(self.host_budget)
            raise
        for td in fresh:
            self.tds[td] = tds[td]
        return tds

    # --- direct marks: the default TD, GFN == PFN --------------------------
    def _mark_ranges(self, starts, ends):
        s, e = normalize_extents(starts, ends)
        self._check_pfns_unclaimed(s, e)
        private = np.ones(s.size, bool)
        td = self._reserve_tds([DIRECT_TD], lambda _, t: [t.attr_rows(s, e, private),
                                                          t.bind_rows(s, e, s)])[DIRECT_TD]
        td.bind(s, e, s)
        td.set_attrs(s, e, private)
        self._runs = None

    def _unmark_ranges(self, starts, ends):
        # a page is found through any TD that maps it; unmarking makes every
        # TD's GFN for those PFNs shared and unbound
        s, e = normalize_extents(starts, ends)
        for td_id, td in self.tds.items():
            gs, ge = (s, e) if td_id == DIRECT_TD else gfns_bound_to(td, s, e)
            if gs.size:
                td.set_attrs(gs, ge, np.zeros(gs.size, bool))
                td.unbind(gs, ge)
        self._runs = None

    def _check_pfns_unclaimed(self, s, e):
        """A PFN is bound to at most one (TD, GFN): direct marks may not steal
        PFNs that a workload TD binds."""
        for td_id, td in self.tds.items():
            if td_id == DIRECT_TD:
                continue
            gs, _ = gfns_bound_to(td, s, e)
            if gs.size:
                raise ValueError(f"PFNs in [{int(s[0])}, {int(e[-1])}) are bound to TD {td_id}; "
                                 f"direct marks belong to the default TD")

    # --- events ------------------------------------------------------------
    def apply(self, events) -> None:
        """Follow KVM's attribute updates and guest_memfd bindings, in order.

        Per TD, attribute rows replay in stream order (last writer wins per
        GFN) and binding rows in stream order; the two structures are
        independent, so their relative order does not change the result.
        """
        ev = check_events(events)
        attr = ev[(ev["op"] == KVM_SET_ATTR_PRIVATE) | (ev["op"] == KVM_SET_ATTR_SHARED)]
        bind = ev[(ev["op"] == GMEM_BIND) | (ev["op"] == GMEM_UNBIND)]
        for rows in (attr, bind):                # validate everything first
            if (rows["td"] < 0).any():
                raise ValueError(f"KVM event without a TD: row {int(np.flatnonzero(rows['td'] < 0)[0])}")
            validate_ranges(rows["gfn_start"], rows["gfn_end"], np.iinfo(np.int64).max)
        b = bind[bind["op"] == GMEM_BIND]
        validate_ranges(b["pfn_start"], b["pfn_start"] + (b["gfn_end"] - b["gfn_start"]),
                        self.max_pfn)
        b_s = b["gfn_start"].astype(np.int64)
        b_e = b["gfn_end"].astype(np.int64)
        b_p = b["pfn_start"].astype(np.int64)
        a_s = attr["gfn_start"].astype(np.int64)
        a_e = attr["gfn_end"].astype(np.int64)
        a_private = attr["op"] == KVM_SET_ATTR_PRIVATE

        def rows_of(td, t):
            a, g = attr["td"] == td, b["td"] == td
            return [t.attr_rows(a_s[a], a_e[a], a_private[a]),
                    t.bind_rows(b_s[g], b_e[g], b_p[g])]

        ids = [int(td) for td in np.unique(np.concatenate((attr["td"], bind["td"])))]
        tds = self._reserve_tds(ids, rows_of)    # every tree of the batch, before any change
        for td in ids:
            t = tds[td]
            a = attr[attr["td"] == td]
            if a.size:
                t.set_attrs(a["gfn_start"].astype(np.int64), a["gfn_end"].astype(np.int64),
                            a["op"] == KVM_SET_ATTR_PRIVATE)
            rows = bind[bind["td"] == td]
            for i, j in zip(*op_runs(rows["op"])):   # one step per run of equal op
                gs = rows["gfn_start"][i:j].astype(np.int64)
                ge = rows["gfn_end"][i:j].astype(np.int64)
                if rows["op"][i] == GMEM_BIND:
                    t.bind(gs, ge, rows["pfn_start"][i:j].astype(np.int64))
                else:
                    t.unbind(gs, ge)
        self._runs = None

    # --- the scan ------------------------------------------------------------
    def runs(self, rescan: bool = False):
        """PFN-sorted maximal runs of every TD's private, bound GFNs.

        The walk's result is cached for contains()/len(); ``rescan`` walks
        again (every extents() does, so a timed scan times the walk)."""
        if self._runs is None or rescan:
            parts = [pfn_runs(td) for td in self.tds.values()]
            s = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
            e = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
            self._runs = normalize_extents(s, e)
        return self._runs

    def _extent_batches(self):
        s, e = self.runs(rescan=True)
        for i in range(0, s.size, EXTENT_CHUNK):
            yield s[i:i + EXTENT_CHUNK], e[i:i + EXTENT_CHUNK]

    def _contains(self, pfns):
        return contains_points(self.runs(), pfns)

    def _count(self):
        return count(self.runs())

    # --- memory ------------------------------------------------------------
    def memory(self):
        attr = np.zeros_like(next(iter(self.tds.values())).levels()[0]) if self.tds else None
        bound = attr.copy() if attr is not None else None
        for td in self.tds.values():
            a, g = td.levels()
            attr += a
            bound += g
        if attr is None:
            attr = bound = xa_node_counts(np.empty(0, np.int64), np.empty(0, np.int64))
        breakdown = _breakdown(attr, bound)
        host = sum(td.host_bytes() for td in self.tds.values())
        if self._runs is not None:
            host += self._runs[0].nbytes + self._runs[1].nbytes
        total = sum(breakdown.values())
        return MemoryReport(
            modeled_bytes=total, breakdown=breakdown, host_bytes=host, scanned_bytes=total,
            scan_loads=int(attr.sum() + bound.sum()),   # every node of both XArrays
            notes=("KVM holds these XArrays anyway: the option adds 0 bytes at runtime; "
                   "guest_memfd modeled as one order-0 folio per GFN (TDX maps 4K only)"),
            formula={"mem_attr_array": level_formula(False)["xa_node Lk"],
                     "guest_memfd i_pages": "the same, indexed by pgoff (== GFN here)"})

    @classmethod
    def _estimate(cls, starts, ends, max_pfn):
        # the default TD: GFN == PFN, every page private and bound
        s, e = estimate_extents(starts, ends, max_pfn)
        levels = xa_node_counts(s, e)
        attr = levels.copy()
        if s.size == 1 and s[0] == 0 and e[0] == 1:
            attr[0] += 1                # xa_reserve's node for GFN 0 made private alone
        return sum(_breakdown(attr, levels).values())

    def check(self):
        for td in self.tds.values():
            td.check()
        s, e = self.runs()
        assert s.size == 0 or (np.all(s < e) and np.all(s[1:] > e[:-1])), "PFN runs not maximal"
        assert s.size == 0 or (s[0] >= 0 and e[-1] <= self.max_pfn), "PFN past max_pfn"


def _breakdown(attr_levels, gmem_levels):
    """Both XArrays' xa_nodes per level, each under its kernel name."""
    return {**level_breakdown(attr_levels, "mem_attr_array xa_node"),
            **level_breakdown(gmem_levels, "guest_memfd i_pages xa_node")}
