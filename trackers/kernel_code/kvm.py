"""``kvm@kernel``: each TD's mem_attr_array and guest_memfd page cache in
lib/xarray.c's own XArrays, filled as kvm_vm_set_mem_attributes() fills
them, following the same events as ``kvm``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import kernel, linux
from ..base import EXTENT_CHUNK, ConversionCalls, check_budget, coalesce_batches
from ..events import op_runs
from ..extents import normalize_extents
from ..kvm import DIRECT_TD, KvmAttributes
from ..xa import xa_node_counts
from .base import EMPTY_RUNS, KernelCode, check_one_top_node, check_runs, concat_runs


class KernelTd:
    """One TD's mem_attr_array and guest_memfd page cache as the kernel's own
    XArrays, with the interface of :class:`trackers.kvm.TdXArrays`.

    mem_attr_array: a private row is kvm_vm_set_mem_attributes() as KVM runs
    it, xa_reserve() of every GFN then xa_store() (one engine call per run
    of private rows); a shared row reserves and stores every GFN, then
    erases them (KVM stores NULL after the reserve: the same deletions and
    xas_shrink calls), skipped where KVM skips it: while GFN 0 alone sits in
    its reserved node, rows above GFN 0 change nothing.

    guest_memfd: an entry per bound GFN holding xa_mk_value(pfn - gfn +
    2^62), which gives the PFN back (the kernel's entry is the folio: the
    same slots, the same nodes); one engine call per run of rows with one
    offset.

    Both are built by xas walks, one per range (KernelXArray.walk_*), which
    leave the trees of the per-GFN calls node by node
    (tests/test_kernel_walks.py); conversion_calls() time the per-GFN calls.
    """

    #: bias of the PFN - GFN offset stored in a guest_memfd entry
    OFFSET_BIAS = 1 << 62

    def __init__(self, td: int):
        self.td = td
        self.attrs = linux.KernelXArray()
        self.gmem = linux.KernelXArray()
        #: per XArray, an upper bound of its modeled bytes (both start empty):
        #: a request adds estimate(update) to it (node counts are subadditive)
        self.bound = {"attrs": 0, "gmem": 0}

    def close(self) -> None:
        self.attrs.close()
        self.gmem.close()

    def release(self, budget=None) -> None:
        """Drop a TD that was never added."""
        self.close()

    # --- budget requests: (td, part, bound of the bytes after, exact bytes after) --
    def _after(self, engine, gfn_s, gfn_e) -> int:
        """Modeled bytes of ``engine``'s XArray with the rows added (a scan)."""
        cur = concat_runs(engine.scan(cap=EXTENT_CHUNK))
        s, e = normalize_extents(np.concatenate((cur[0], gfn_s)), np.concatenate((cur[1], gfn_e)))
        return int(xa_node_counts(s, e).sum()) * kernel.XA_NODE_BYTES

    def _request(self, part: str, gfn_s, gfn_e):
        """The request for adding the rows to ``part``: its bound plus the
        rows alone, and how to count it exactly where the bound does not fit."""
        engine = getattr(self, part)
        grow = int(xa_node_counts(*normalize_extents(gfn_s, gfn_e)).sum()) * kernel.XA_NODE_BYTES
        return (self, part, self.bound[part] + grow, lambda: self._after(engine, gfn_s, gfn_e))

    def attr_rows(self, gfn_s, gfn_e, private):
        return self._request("attrs", gfn_s[private], gfn_e[private])

    def bind_rows(self, gfn_s, gfn_e, pfn_s=None):
        """The request for binding the rows; ValueError (before any change)
        if a row's PFN - GFN offset does not fit the entry's encoding."""
        if pfn_s is not None and pfn_s.size:
            low = int(np.argmin(pfn_s - gfn_s))
            if int(pfn_s[low]) - int(gfn_s[low]) < -self.OFFSET_BIAS:
                raise ValueError(f"GFN {int(gfn_s[low])} bound to PFN {int(pfn_s[low])}: "
                                 f"kvm@kernel stores pfn - gfn + 2^62 in a value entry, so "
                                 f"GFNs must lie below 2^62 + PFN")
        return self._request("gmem", gfn_s, gfn_e)

    def now_bytes(self) -> dict[str, int]:
        """Each XArray's modeled bytes now: a walk of every node."""
        return {"attrs": int(self.attrs.levels().sum()) * kernel.XA_NODE_BYTES,
                "gmem": int(self.gmem.levels().sum()) * kernel.XA_NODE_BYTES}

    # --- updates --------------------------------------------------------------
    def _zero_alone_in_node(self) -> bool:
        """GFN 0 is the only private GFN and sits in an xa_node."""
        if self.attrs.load([0])[0] < 0:
            return False
        first = next(iter(self.attrs.scan(cap=2)), EMPTY_RUNS)
        if first[0].tolist() != [0] or first[1].tolist() != [1]:
            return False
        return int(self.attrs.levels().sum()) == 1

    def set_attrs(self, gfn_s, gfn_e, private):
        value = kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE
        for i, j in zip(*op_runs(private)):          # one step per run of equal op
            s, e = gfn_s[i:j], gfn_e[i:j]
            if private[i]:
                self.attrs.walk_reserve_then_store(s, e, value=value)
                continue
            if self._zero_alone_in_node():           # rows above GFN 0 are no-ops
                at_zero = np.flatnonzero(s == 0)
                if at_zero.size == 0:
                    continue
                s, e = s[at_zero[0]:], e[at_zero[0]:]
            self.attrs.walk_reserve_then_store(s, e, value=value)
            self.attrs.walk_erase(s, e)

    def bind(self, gfn_s, gfn_e, pfn_s):
        """xa_store() of each row's PFN offset at its GFNs: one engine call."""
        self.gmem.walk_store(gfn_s, gfn_e, pfn_s - gfn_s + self.OFFSET_BIAS)

    def unbind(self, gfn_s, gfn_e):
        self.gmem.walk_erase(gfn_s, gfn_e)

    # --- queries ----------------------------------------------------------------
    def attr_runs(self):
        return self.attrs.scan(cap=EXTENT_CHUNK)

    def bound_runs(self):
        return self.gmem.scan(cap=EXTENT_CHUNK)

    def pfn_plus1(self, gfns):
        v = self.gmem.load(gfns)
        return np.where(v >= 0, gfns + (v - self.OFFSET_BIAS) + 1, 0)

    def levels(self):
        return self.attrs.levels(), self.gmem.levels()

    def host_bytes(self) -> int:
        return 0                                     # counted by the tracker's live objects

    def nodes(self) -> int:
        a, g = self.levels()
        return int(a.sum() + g.sum())

    def check(self) -> None:
        for engine, what in ((self.attrs, "mem_attr_array"), (self.gmem, "guest_memfd")):
            check_runs(engine.scan(cap=EXTENT_CHUNK), f"TD {self.td} {what}")
            check_one_top_node(engine.levels(), f"TD {self.td} {what}")


class KvmKernel(KernelCode, KvmAttributes):
    """``kvm`` on the kernel's own XArrays: each TD's mem_attr_array filled as
    kvm_vm_set_mem_attributes() fills it and its guest_memfd page cache,
    following the same events as ``kvm`` (:class:`KernelTd`)."""

    twin_cls = KvmAttributes
    twin = twin_cls.name
    name = "kvm@kernel"
    option = twin_cls.option + " (kernel code)"

    def engines(self):
        return [e for td in self.tds.values() for e in (td.attrs, td.gmem)]

    def conversion_calls(self) -> ConversionCalls:
        """The default TD's mem_attr_array as kvm_vm_set_mem_attributes()
        updates it on KVM_SET_MEMORY_ATTRIBUTES (guest_memfd fills its page
        cache on fault, not at conversion); the shared direction stores NULL,
        which is xa_erase (KVM's xa_reserve pass over present entries, a walk
        each that changes nothing, is left out).  The tracked set (private
        and bound) changes at fault, so the calls' set is the
        mem_attr_array's: the private GFNs, which are the PFNs marked."""
        td = self.tds[DIRECT_TD]
        return self.kernel_calls(td.attrs.reserve_then_store, td.attrs.erase_range,
                                 "mem_attr_array: xa_reserve + xa_store / xa_erase per GFN",
                                 lambda: coalesce_batches(td.attr_runs()))

    def new_td(self, td: int):
        self._open()
        return KernelTd(td)

    def reserve(self, requests) -> None:
        """Refuse (MemoryBudgetError) when the TDs' XArrays after the update,
        as the twin counts them, would exceed the budget.  The bounds decide
        without a walk; where they exceed the budget, the XArrays are counted
        exactly (a scan of each asked, a walk of the others) and the bounds
        reset to those counts."""
        requests = list(requests)
        tds = {id(td): td for td, *_ in requests} | {id(td): td for td in self.tds.values()}

        def total(asked):
            return sum(asked.values()) + sum(
                n for td in tds.values() for part, n in td.bound.items()
                if (id(td), part) not in asked)

        asked = {(id(td), part): bound for td, part, bound, _ in requests}
        if total(asked) > self.budget_bytes:
            for td in tds.values():
                td.bound = td.now_bytes()
            asked = {(id(td), part): exact() for td, part, _, exact in requests}
            check_budget(f"{self.name} tracker (mem_attr_array and guest_memfd XArrays)",
                         total(asked), self.budget_bytes)
        for td, part, *_ in requests:
            td.bound[part] = asked[(id(td), part)]

    def _extent_batches(self):
        self._open()
        return KvmAttributes._extent_batches(self)

    def _contains(self, pfns):
        self._open()
        return KvmAttributes._contains(self, pfns)

    def _count(self):
        self._open()
        return KvmAttributes._count(self)

    def memory(self):
        self._open()
        m = KvmAttributes.memory(self)
        return replace(m, host_bytes=self.live_bytes() + self._cache_bytes(),
                       notes=self._notes("mem_attr_array and guest_memfd xa_nodes walked in "
                                         "lib/xarray.c's own trees, per TD; " + m.notes))

    def check(self):
        self._open()
        KvmAttributes.check(self)
        walked = sum(td.nodes() for td in self.tds.values())
        assert self._live["xa_node"] == walked, \
            f"{self.name}: {self._live['xa_node']} live xa_nodes, {walked} walked"
