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
                     cpa_collapse_large_pages()); defaults to ``private``;
* ``guest``       -- guest pages mapped in the TDs' S-EPT (a leaf SPTE each in
                     KVM's mirror S-EPT); defaults to ``kvm_visible``;
* ``sept``        -- S-EPT table pages (tdh_mem_sept_add: each is a mirror
                     page table's ``sp->external_spt``);
* ``control``     -- TD control pages KVM holds pointers to: TDR, TDCS
                     (``kvm_tdx->td``), TDVPR and TDCX (``vcpu_tdx->vp``);
* ``dynamic_pamt``-- Dynamic PAMT page pairs (tdh_phymem_pamt_add), a subset
                     of ``pamt`` the TDMR list does not name;
* ``ext``         -- TDX module extension memory (TDH.EXT.MEM.ADD): no TD's,
                     outside KVM and the TDMR list.

``tds`` is one :class:`TdView` per TD (its GFN ranges, the GFNs mapped
private, its vCPUs): what KVM's own walks (the mirror S-EPT, guest_memfd)
read per TD.  Empty for hand-built hosts: those walks then see one default
TD whose GFN = PFN over ``[0, max_pfn)`` (the kvm tracker's contract).

``td_pages`` is memory assigned to TDs (what TDH.SYS.DISABLE walks),
``tds_running`` the TDs alive at kexec; ``events`` and ``replay`` let
tracker strategies be built the way the kernel would feed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..events import SEAMCALL_PRIVATE
from ..extents import EMPTY, Extents, count, normalize, overlaps, subtract, union
from ..workloads import Workload


@dataclass(frozen=True)
class TdView:
    """One TD as KVM knows it at kexec.

    gfns: the TD's RAM as GFN ranges (its memslots, in order; one guest_memfd
        inode per RAM block, offsets in this order -- QEMU's q35 layout).
    private_gfns: GFNs mapped private: a leaf SPTE in the mirror S-EPT, the
        PRIVATE attribute set, a folio bound in guest_memfd.
    vcpus: vCPUs (one TDVPR and its TDCX pages each).
    """

    gfns: Extents
    private_gfns: Extents
    vcpus: int = 0

    def index_runs(self) -> Extents:
        """``private_gfns`` as guest_memfd inode offsets: GFNs numbered by their
        position in ``gfns`` (the RAM block's offset order)."""
        gs, ge = normalize(*self.gfns)
        base = np.cumsum(ge - gs) - (ge - gs)            # offset of each GFN range
        ia, _, s, e = overlaps(gs, ge, *normalize(*self.private_gfns))
        off = base[ia] - gs[ia]
        return normalize(s + off, e + off)

    @property
    def pages(self) -> int:
        return count(normalize(*self.gfns))


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
    guest: Extents | None = None
    sept: Extents = EMPTY
    control: Extents = EMPTY
    dynamic_pamt: Extents = EMPTY
    ext: Extents = EMPTY
    tds: tuple = ()
    #: feed a tracker as the kernel's hooks would (e.g. ``t.apply(events)``);
    #: default: ``t.mark_ranges(*private)`` -- SEAMCALL hooks see every page
    feed: Callable | None = field(default=None, repr=False)
    #: what derived() computed from the sets, which never change after
    #: __post_init__ normalizes them
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def derived(self, key, compute: Callable):
        """``compute()``, once per ``key`` for this host: a set or count
        derived from the host's sets (the sensitivity re-assesses a strategy
        at every parameter end; its sets stay the same)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def __post_init__(self):
        self.ram = normalize(*self.ram)
        self.private = normalize(*self.private)
        self.kvm_visible = normalize(*self.kvm_visible)
        self.pamt = normalize(*self.pamt)
        self.leaked = normalize(*self.leaked)
        kinds = (["sept", "control", "dynamic_pamt", "ext"]
                 + (["guest"] if self.guest is not None else []))
        self.guest = normalize(*(self.kvm_visible if self.guest is None else self.guest))
        self.sept = normalize(*self.sept)
        self.control = normalize(*self.control)
        self.dynamic_pamt = normalize(*self.dynamic_pamt)
        self.ext = normalize(*self.ext)
        self.tds = tuple(self.tds)
        self.ever_private = (self.private if self.ever_private is None
                             else union(normalize(*self.ever_private), self.private))
        if self.td_pages is None:
            self.td_pages = count(subtract(self.private,
                                           union(self.pamt, self.leaked, self.ext)))
        outside = count(subtract(self.private, self.ram))
        if outside:
            raise ValueError(f"host {self.name!r}: {outside} private pages lie outside RAM; "
                             f"TDX memory (CMRs) is RAM")
        for kind in kinds:
            stray = count(subtract(getattr(self, kind), self.private))
            if stray:
                raise ValueError(f"host {self.name!r}: {stray} {kind} pages are not in "
                                 f"private; every kind is a subset of the private set")
        if self.ram[1].size and int(self.ram[1][-1]) > self.max_pfn:
            raise ValueError(f"host {self.name!r}: RAM ends at PFN {int(self.ram[1][-1])}, "
                             f"past max_pfn {self.max_pfn}")

    @property
    def pamt_listed(self) -> Extents:
        """The PAMT the kernel's TDMR list names: every PAMT page but the
        Dynamic PAMT page pairs (which only the TDX module returns)."""
        return subtract(self.pamt, self.dynamic_pamt)

    @property
    def vcpus(self) -> int:
        return sum(t.vcpus for t in self.tds)

    @property
    def ram_pages(self) -> int:
        return count(self.ram)

    @property
    def private_pages(self) -> int:
        return self.derived("private_pages", lambda: count(self.private))

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
    * guest, sept  = final_private()["guest"], ["sept"];
    * control      = the union of the "tdr", "tdcs", "tdvpr", "tdcx" kinds;
    * dynamic_pamt = the workload's Dynamic PAMT page pairs (``dynamic_pamt``);
    * ext          = final_private()["ext"]: TDX module extension memory;
    * tds          = per TD its GFN layout, final bound (private) GFNs, vCPUs;
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

    control = union(*(by_kind.get(k, EMPTY) for k in ("tdr", "tdcs", "tdvpr", "tdcx")))
    tds = tuple(TdView(t.layout, t.binding.gfn_extents(), t.config.vcpus)
                for t in workload.tds)
    return KexecHost(
        max_pfn=int(workload.max_pfn), ram=workload.memmap.ram_ranges, private=private,
        kvm_visible=workload.final_kvm(), pamt=pamt, leaked=leaked, ever_private=ever,
        td_pages=count(subtract(private, union(pamt, leaked, by_kind.get("ext", EMPTY)))),
        tds_running=len(workload.tds), name=name or workload.name,
        feed=feed if batches else None, guest=by_kind.get("guest", EMPTY),
        sept=by_kind.get("sept", EMPTY), control=control,
        dynamic_pamt=getattr(workload, "dynamic_pamt", EMPTY), ext=by_kind.get("ext", EMPTY),
        tds=tds,
    )


def event_batches(workload: Workload) -> list[np.ndarray]:
    """The workload's non-empty event batches, in stream order."""
    return [b for b in workload.batches if b.size]
