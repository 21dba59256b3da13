"""The registry of kexec strategies: every option, in table order (``STRATEGIES``):

* what mainline does today and the fixes a reviewer asks for next, the
  reference rows (:mod:`.mainline`): ``mainline-7.2`` (TDH.SYS.DISABLE on a
  module with leaf 69) and ``mainline-7.2-old-module`` (without it: the call
  fails, kexec goes on), ``refuse-no-leaf69``, ``fallback-bitmap``,
  ``parallel-reset``; then ``refuse-6.18``, what mainline did from 6.18 to 7.1;
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
* ``refuse-while-td`` (5.1) and ``clear-all`` (option 6): :mod:`.kept_lists`;
* ``dpamt-refcount`` (Dynamic PAMT, tip x86/tdx Sep 2026): scan the per-2 MiB
  refcount array and reset every counted range (:mod:`.dpamt`).

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
from .mainline import (FallbackBitmap, Mainline72, Mainline72OldModule, ParallelReset,
                       Refuse618, RefuseNoLeaf69)
from .strategy import Strategy
from .tracked import KvmStrategy, StructPageStrategy, TrackerStrategy, reads_struct_pages


def _tracker_strategy(cls) -> Strategy:
    """The strategy that scans tracker ``cls`` (``kvm``: ``kvm-attr``)."""
    return (KvmStrategy if cls.sees_events_only else
            StructPageStrategy if reads_struct_pages(cls) else TrackerStrategy)(cls)


def build_strategies() -> dict[str, Strategy]:
    """Strategies in table order (module doc): mainline and its fixes, the
    trackers in registry order, option 4's other walks, options 2, 5.1, 6 and
    Dynamic PAMT's refcounts."""
    out: dict[str, Strategy] = {}
    for s in (Mainline72(), Mainline72OldModule(), RefuseNoLeaf69(), FallbackBitmap(),
              ParallelReset(), Refuse618(),
              *(_tracker_strategy(cls) for cls in TRACKERS.values()),
              KvmSept(), GmemMaple(), PteSoftbit(), RefuseWhileTd(), ClearAll(),
              DpamtRefcount()):
        out[s.name] = s
    return out


STRATEGIES: dict[str, Strategy] = build_strategies()
#: tracker name -> the strategy that scans it (``kvm`` -> ``kvm-attr``); the
#: fixes that reuse a tracker (fallback-bitmap, parallel-reset) are not it
TRACKER_STRATEGIES: dict[str, Strategy] = {
    cls.name: STRATEGIES[_tracker_strategy(cls).name] for cls in TRACKERS.values()}


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
