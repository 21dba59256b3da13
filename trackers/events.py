"""The event format: what happens to TDX memory, one numpy row per range.

This module is the bottom layer's word on events: the dtype, the op and kind
codes, and the few helpers that every layer needs to read a batch (trackers
replay batches in ``Tracker.apply``; workloads generate them in
:mod:`trackers.workloads.conversions`; the kexec model reads them).

A workload is an ordered list of *batches*; each batch is a structured array
of :data:`EVENT_DTYPE`, one row per page range, never one Python object per
page.  ``op`` says what happened, in the kernel's terms:

=====================  =====================================================
SEAMCALL_PRIVATE       a PFN range becomes TDX-private: TDH.SYS.CONFIG (PAMT),
                       TDH.EXT.MEM.ADD (TDX module extension memory),
                       tdh_mng_create (TDR), tdh_mng_addcx (TDCS),
                       tdh_vp_create (TDVPR), tdh_vp_addcx (TDCX),
                       tdh_mem_sept_add (S-EPT), tdh_mem_page_add/_aug (guest)
SEAMCALL_RECLAIM       a PFN range is returned: tdh_mem_page_remove,
                       tdh_phymem_page_reclaim
KVM_SET_ATTR_PRIVATE   kvm_vm_set_mem_attributes(): GFN range -> private
KVM_SET_ATTR_SHARED    kvm_vm_set_mem_attributes(): GFN range -> shared
GMEM_BIND              guest_memfd binds GFNs to PFNs (kvm_gmem_get_pfn)
GMEM_UNBIND            guest_memfd drops the binding (hole punched)
=====================  =====================================================

``kind`` says what the pages are (KIND_*), ``td`` whose (-1: the host /
TDX module), ``pfn_start``/``pfn_end`` and ``gfn_start``/``gfn_end`` are
half-open, -1 where there is none (attribute rows have no PFN, PAMT and
control pages no GFN).  A private guest range whose PFNs are fragmented is
several rows, each one PFN extent with its matching GFN start.

Conversions follow KVM's order (kernel-facts "Private->shared conversion
order"): private->shared is attribute update, then removal (the page is still
private in between), then unbind; shared->private is attribute update, bind,
then tdh_mem_page_aug.  :class:`Binding` turns GFN conversions into rows in
that order, and :class:`~trackers.workloads.conversions.Churner` generates
conversions (both in :mod:`trackers.workloads.conversions`).
"""

from __future__ import annotations

import numpy as np

from . import kernel

# --- op ---------------------------------------------------------------------
SEAMCALL_PRIVATE = 1
SEAMCALL_RECLAIM = 2
KVM_SET_ATTR_PRIVATE = 3
KVM_SET_ATTR_SHARED = 4
GMEM_BIND = 5
GMEM_UNBIND = 6
OP_NAMES = {SEAMCALL_PRIVATE: "seamcall_private", SEAMCALL_RECLAIM: "seamcall_reclaim",
            KVM_SET_ATTR_PRIVATE: "kvm_set_attr_private",
            KVM_SET_ATTR_SHARED: "kvm_set_attr_shared",
            GMEM_BIND: "gmem_bind", GMEM_UNBIND: "gmem_unbind"}

# --- kind -------------------------------------------------------------------
KIND_NONE = 0
KIND_PAMT = 1
KIND_TDR = 2
KIND_TDCS = 3
KIND_TDVPR = 4
KIND_TDCX = 5
KIND_SEPT = 6
KIND_GUEST = 7
#: memory the kernel hands the TDX module for its extensions (TDH.EXT.MEM.ADD,
#: leaf 61; TDX Module Extensions / TDX Connect, 2026): no TD owns it
KIND_EXT = 8
KIND_NAMES = {KIND_NONE: "none", KIND_PAMT: "pamt", KIND_TDR: "tdr", KIND_TDCS: "tdcs",
              KIND_TDVPR: "tdvpr", KIND_TDCX: "tdcx", KIND_SEPT: "sept", KIND_GUEST: "guest",
              KIND_EXT: "ext"}
#: the kinds KVM's attributes and bindings never see
NON_GUEST_KINDS = ("pamt", "tdr", "tdcs", "tdvpr", "tdcx", "sept", "ext")

EVENT_DTYPE = np.dtype([
    ("op", np.uint8), ("kind", np.uint8), ("td", np.int32),
    ("pfn_start", np.int64), ("pfn_end", np.int64),
    ("gfn_start", np.int64), ("gfn_end", np.int64),
])

MAPGPA_CHUNK = kernel.MAPGPA_CHUNK_PAGES


def make_rows(op, kind, td, pfn_start=-1, pfn_end=-1, gfn_start=-1, gfn_end=-1,
              n: int | None = None) -> np.ndarray:
    """Build a batch; scalars broadcast to the length of the array arguments."""
    cols = (op, kind, td, pfn_start, pfn_end, gfn_start, gfn_end)
    if n is None:
        n = max((np.size(c) for c in cols if np.ndim(c)), default=1)
    out = np.empty(n, EVENT_DTYPE)
    for name, col in zip(EVENT_DTYPE.names, cols):
        out[name] = col
    return out


def concat(batches) -> np.ndarray:
    batches = [b for b in batches if b.size]
    return np.concatenate(batches) if batches else np.empty(0, EVENT_DTYPE)


def check_events(events) -> np.ndarray:
    """Validate a batch's type; TypeError/ValueError naming the problem."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise TypeError(f"events must be a structured numpy array of EVENT_DTYPE, "
                        f"got {type(events).__name__}")
    missing = [f for f in ("op", "pfn_start", "pfn_end") if f not in events.dtype.names]
    if missing:
        raise TypeError(f"events lack field(s) {', '.join(missing)}")
    return events.reshape(-1)


def op_runs(ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of equal op: (first index, end index) arrays."""
    if ops.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    brk = np.flatnonzero(ops[1:] != ops[:-1]) + 1
    first = np.concatenate(([0], brk))
    return first, np.append(brk, ops.size)
