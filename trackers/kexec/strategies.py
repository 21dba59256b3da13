"""The registry of kexec strategies: every option of the LKML thread, in
table order (``STRATEGIES``):

* one per registered tracker (option 1 and its variants; option 3 is the
  ``pageflags`` tracker): the kernel's SEAMCALL hooks mark a page before it
  becomes private and unmark it after it is cleared; kexec scans the
  structure and resets what it finds.  The ``kvm`` tracker's strategy is
  ``kvm-attr`` (option 4 narrowed): it walks each TD's memory-attribute
  XArray and guest_memfd, plus the PAMT list the kernel keeps (TDMRs): no
  hooks, nothing added, guest pages only (:mod:`.tracked`).
  :func:`strategy_for_tracker` maps a tracker's name to its strategy;
* ``kvm-sept`` (option 4 as Kai Huang proposed it: each in-kernel user resets
  what it manages): KVM walks each TD's mirror S-EPT (guest pages, S-EPT
  pages through ``external_spt``), its control-page pointers and the PAMT
  list (:mod:`.kvm_walk`);
* ``gmem-maple`` (guest_memfd in-place conversion, 2026): each inode's
  attribute maple tree, translated to PFNs through the page cache
  (:mod:`.gmem`);
* ``pte-softbit`` (option 2): :mod:`.directmap`;
* ``upstream-refuse`` (option 5 as merged, b18651f70ce0, 6.18: :mod:`.mainline`)
  and ``refuse-while-td`` (5.1: :mod:`.kept_lists`);
* ``clear-all`` (option 6): reset every RAM page of the memory map
  (:mod:`.kept_lists`);
* ``sys-disable`` (option 7, tip x86/tdx 5b25f249be32): TDH.SYS.DISABLE, the
  TDX module reclaims and clears every TDX page itself, at the platform's
  ASSUMED ``sys_disable_bps`` (:mod:`.mainline`);
* ``dpamt-refcount`` (Dynamic PAMT v6, 2026): scan the per-2 MiB refcount
  array and reset every counted range (:mod:`.dpamt`).

The interface they share is :mod:`.strategy`; each strategy lives beside its
model, and no model module imports this registry.
"""

from __future__ import annotations

from ..registry import TRACKERS
from .directmap import PteSoftbit
from .dpamt import DpamtRefcount
from .gmem import GmemMaple
from .kept_lists import ClearAll, RefuseWhileTd
from .kvm_walk import KvmSept
from .mainline import SysDisable, UpstreamRefuse
from .strategy import Strategy
from .tracked import KvmStrategy, StructPageStrategy, TrackerStrategy, reads_struct_pages


def build_strategies() -> dict[str, Strategy]:
    """Strategies in table order: the trackers in registry order (each a
    SEAMCALL-hooked scan; the ``kvm`` tracker's is ``kvm-attr``), then
    ``kvm-sept`` and ``gmem-maple`` (option 4's other walks), then options 2,
    5, 5.1, 6, 7 and Dynamic PAMT's refcounts."""
    out: dict[str, Strategy] = {}
    for cls in TRACKERS.values():
        s = (KvmStrategy if cls.sees_events_only else
             StructPageStrategy if reads_struct_pages(cls) else TrackerStrategy)(cls)
        out[s.name] = s
    for s in (KvmSept(), GmemMaple(), PteSoftbit(), UpstreamRefuse(), RefuseWhileTd(),
              ClearAll(), SysDisable(), DpamtRefcount()):
        out[s.name] = s
    return out


STRATEGIES: dict[str, Strategy] = build_strategies()
#: tracker name -> the strategy that scans it (``kvm`` -> ``kvm-attr``)
TRACKER_STRATEGIES: dict[str, Strategy] = {
    s.tracker_cls.name: s for s in STRATEGIES.values() if s.tracker_cls is not None}


def strategy_for_tracker(name: str) -> Strategy:
    """The strategy whose scan is tracker ``name``; ValueError if none is."""
    try:
        return TRACKER_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"no strategy scans tracker {name!r}; trackers with one: "
                         f"{', '.join(TRACKER_STRATEGIES)}") from None


def get_strategies(strategies=None) -> list[Strategy]:
    """Strategy objects for names or objects (default: every strategy, in
    order).  A tracker's name stands for the strategy that scans it (``kvm``
    for ``kvm-attr``)."""
    if strategies is None:
        return list(STRATEGIES.values())
    out = []
    for s in strategies:
        if isinstance(s, str):
            if s in STRATEGIES:
                s = STRATEGIES[s]
            elif s in TRACKER_STRATEGIES:
                s = TRACKER_STRATEGIES[s]
            else:
                raise ValueError(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)} "
                                 f"(or a tracker's name: {', '.join(TRACKER_STRATEGIES)})")
        out.append(s)
    return out
