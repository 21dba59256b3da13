"""The host at the moment of kexec: what every strategy is judged against.

:class:`KexecHost` is the kexec model's one input, built from a
:class:`~trackers.workloads.Workload` by :func:`from_workload` (the only way
from a workload to the kexec model) or by hand in tests.  All sets are normalized extent sets
(see :mod:`trackers.extents`):

* ``ram``         -- RAM ranges of the memory map (what clear-all resets and
                     what the direct map covers);
* ``private``     -- pages TDX-private at kexec: every page a strategy must
                     reset (guest pages, TD control pages, S-EPT pages, PAMT,
                     leaked pages);
* ``kvm_visible`` -- the subset KVM's per-TD attribute walk finds: guest
                     pages whose attributes still say private, translated
                     GFN -> PFN through guest_memfd;
* ``pamt``        -- PAMT pages, from the TDMR list the kernel keeps anyway;
* ``leaked``      -- pages whose reclaim failed: still private, owned by
                     nobody (a subset of ``private``);
* ``ever_private``-- every page private at some time in the run (the
                     direct-map splits of a kernel without
                     cpa_collapse_large_pages()); defaults to ``private``.

``td_pages`` is memory assigned to TDs (what TDH.SYS.DISABLE walks),
``tds_running`` the TDs alive at kexec; ``events`` and ``replay`` let
tracker strategies be built the way the kernel would feed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..events import SEAMCALL_PRIVATE
from ..extents import EMPTY, Extents, count, normalize, subtract, union
from ..workloads import Workload


@dataclass
class KexecHost:
    max_pfn: int
    ram: Extents
    private: Extents
    kvm_visible: Extents = EMPTY
    pamt: Extents = EMPTY
    leaked: Extents = EMPTY
    ever_private: Extents | None = None
    td_pages: int | None = None
    tds_running: int = 0
    name: str = "host"
    #: feed a tracker as the kernel's hooks would (e.g. ``t.apply(events)``);
    #: default: ``t.mark_ranges(*private)`` -- SEAMCALL hooks see every page
    feed: Callable | None = field(default=None, repr=False)

    def __post_init__(self):
        self.ram = normalize(*self.ram)
        self.private = normalize(*self.private)
        self.kvm_visible = normalize(*self.kvm_visible)
        self.pamt = normalize(*self.pamt)
        self.leaked = normalize(*self.leaked)
        self.ever_private = (self.private if self.ever_private is None
                             else union(normalize(*self.ever_private), self.private))
        if self.td_pages is None:
            self.td_pages = count(subtract(self.private, union(self.pamt, self.leaked)))
        outside = count(subtract(self.private, self.ram))
        if outside:
            raise ValueError(f"host {self.name!r}: {outside} private pages lie outside RAM; "
                             f"TDX memory (CMRs) is RAM")
        if self.ram[1].size and int(self.ram[1][-1]) > self.max_pfn:
            raise ValueError(f"host {self.name!r}: RAM ends at PFN {int(self.ram[1][-1])}, "
                             f"past max_pfn {self.max_pfn}")

    @property
    def ram_pages(self) -> int:
        return count(self.ram)

    @property
    def private_pages(self) -> int:
        return count(self.private)

    def feed_tracker(self, tracker, view: str = "hooks") -> None:
        """Populate a tracker as the kernel would for this host.

        With ``feed`` (a workload's events) the tracker replays them and
        interprets them itself.  Without: ``view="hooks"`` marks every private
        page (SEAMCALL hooks see them all); ``view="kvm"`` marks only the pages
        KVM's attribute walk finds (one default TD, GFN = PFN: the contract).
        """
        if self.feed is not None:
            self.feed(tracker)
        elif view == "kvm":
            tracker.mark_ranges(*self.kvm_visible)
        else:
            tracker.mark_ranges(*self.private)


def from_workload(workload: Workload, *, name: str | None = None) -> KexecHost:
    """The host at the end of ``workload``: what kexec would find.

    Reads the workload's public surface only -- ``memmap`` (RAM, max_pfn),
    ``final_private()`` by kind, ``final_kvm()``, ``tds`` and ``batches`` --
    and derives the rest:

    * private      = union of final_private() over every kind;
    * kvm_visible  = final_kvm(): guest pages whose attributes say private and
                     that guest_memfd binds (what KVM's walk reaches);
    * pamt         = final_private()["pamt"] (the kernel's TDMR list names it);
    * leaked       = final_private()["leaked"] where the workload has that kind;
    * td_pages     = private pages that are neither PAMT nor leaked;
    * ever_private = every PFN range a SEAMCALL_PRIVATE row ever made private;
    * feed         = replay every batch through ``Tracker.apply()`` (each
                     tracker interprets the events itself: SEAMCALL rows for
                     hooked trackers, attribute/binding rows for kvm).
    """
    by_kind = workload.final_private()
    private = union(*by_kind.values())
    pamt = by_kind.get("pamt", EMPTY)
    leaked = by_kind.get("leaked", EMPTY)
    batches = event_batches(workload)
    made = [b[b["op"] == SEAMCALL_PRIVATE] for b in batches]
    ever = (normalize(np.concatenate([m["pfn_start"] for m in made]),
                      np.concatenate([m["pfn_end"] for m in made])) if made else EMPTY)

    def feed(tracker):
        for b in batches:
            tracker.apply(b)

    return KexecHost(
        max_pfn=int(workload.max_pfn), ram=workload.memmap.ram_ranges, private=private,
        kvm_visible=workload.final_kvm(), pamt=pamt, leaked=leaked, ever_private=ever,
        td_pages=count(subtract(private, union(pamt, leaked))),
        tds_running=len(workload.tds), name=name or workload.name,
        feed=feed if batches else None,
    )


def event_batches(workload: Workload) -> list[np.ndarray]:
    """The workload's non-empty event batches, in stream order."""
    return [b for b in workload.batches if b.size]
