"""Adapter: a ``trackers.workloads.Workload`` -> the kexec model's KexecHost.

The kexec package reads only the workload's public surface -- ``memmap``
(RAM ranges, max_pfn), ``final_private()`` by kind, ``final_kvm()``,
``tds`` and ``batches`` (EVENT_DTYPE arrays) -- and derives the rest here,
so a change in the workloads package touches this one file.

* private      = union of final_private() over every kind;
* kvm_visible  = final_kvm(): guest pages whose attributes say private and
                 that guest_memfd binds (what KVM's walk reaches);
* pamt         = final_private()["pamt"] (the kernel's TDMR list names it);
* leaked       = final_private()["leaked"] if the workload has that kind;
* ever_private = every PFN range a SEAMCALL_PRIVATE row ever made private;
* feed         = replay every batch through ``Tracker.apply()`` when trackers
                 have it (each tracker interprets the events itself: SEAMCALL
                 rows for hooked trackers, attribute/binding rows for kvm).
"""

from __future__ import annotations

import numpy as np

from ..events import KVM_SET_ATTR_SHARED, SEAMCALL_PRIVATE
from .host import KexecHost
from ..extents import EMPTY, normalize, union


def event_batches(workload) -> list[np.ndarray]:
    batches = getattr(workload, "batches", None)
    if batches is None:
        ev = workload.events() if callable(getattr(workload, "events", None)) else workload.events
        batches = [ev]
    return [b for b in batches if b.size]


def host_from_workload(workload, *, name: str | None = None) -> KexecHost:
    by_kind = workload.final_private()
    if isinstance(by_kind, dict):
        private = union(*[normalize(*v) for v in by_kind.values()]) if by_kind else EMPTY
    else:                                   # a plain extent set
        private, by_kind = normalize(*by_kind), {}
    pamt = normalize(*by_kind["pamt"]) if "pamt" in by_kind else EMPTY
    leaked = normalize(*by_kind["leaked"]) if "leaked" in by_kind else EMPTY
    if callable(getattr(workload, "final_kvm", None)):
        kvm_visible = normalize(*workload.final_kvm())
    else:
        kvm_visible = normalize(*by_kind.get("guest", EMPTY))
    batches = event_batches(workload)
    made = [b[b["op"] == SEAMCALL_PRIVATE] for b in batches]
    ever = (normalize(np.concatenate([m["pfn_start"] for m in made]),
                       np.concatenate([m["pfn_end"] for m in made])) if made else EMPTY)
    mm = workload.memmap

    def feed(tracker):
        if hasattr(tracker, "apply"):
            for b in batches:
                tracker.apply(b)
        else:
            tracker.mark_ranges(*private)

    return KexecHost(
        max_pfn=int(mm.max_pfn), ram=mm.ram_ranges, private=private,
        kvm_visible=kvm_visible, pamt=pamt, leaked=leaked, ever_private=ever,
        td_pages=None if not by_kind else
        int(sum(int((e - s).sum()) for k, (s, e) in by_kind.items()
                if k not in ("pamt", "leaked"))),
        tds_running=len(getattr(workload, "tds", ())),
        name=name or getattr(workload, "name", "workload"),
        feed=feed if batches else None,
    )


__all__ = ["host_from_workload", "event_batches", "KVM_SET_ATTR_SHARED"]
