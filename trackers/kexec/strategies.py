"""Every option of the LKML thread as a kexec strategy behind one interface.

``STRATEGIES`` maps a name to a :class:`Strategy`.  For a :class:`KexecHost`
and a :class:`Platform`, ``strategy.assess(host, platform)`` answers:

* kexec_allowed   -- does machine_kexec_prepare() let the kexec proceed;
* pages_reset     -- pages the strategy clears before the jump;
* pages_missed    -- pages TDX-private at kexec that it does not reset;
* added_bytes     -- memory the option adds to a running kernel (modeled);
* scanned_bytes   -- bytes the kexec-time scan reads (modeled);
* scan_s, clear_s, downtime_s = scan_s + clear_s (modeled on the platform);
* scan_measured_s -- where the emulation ran, the measured extents() scan of
  the emulated structure (median of ``scan_repeat`` runs; scan_measured_min_s
  and scan_measured_max_s are the spread), with
  scan_model_error = scan_s / median - 1.

The strategies:

* one per registered tracker (option 1 and its variants; option 3 is the
  ``pageflags`` tracker; ``kvm`` is option 4): the kernel's SEAMCALL hooks
  mark a page before it becomes private and unmark it after it is cleared;
  kexec scans the structure and resets what it finds.  ``kvm`` instead walks
  each TD's memory-attribute XArray (Kai Huang's proposal) plus the PAMT list
  the kernel already keeps (TDMRs): no hooks, nothing added;
* ``pte-softbit`` (option 2): :mod:`.directmap`;
* ``refuse`` (option 5, upstream b18651f70ce0) and ``refuse-while-td`` (5.1);
* ``clear-all`` (option 6): reset every RAM page of the memory map;
* ``sys-disable`` (option 7): TDH.SYS.DISABLE, the TDX module reclaims and
  clears every TD page itself; time proportional to TD memory at
  ``sys_disable_bps`` (default: the platform's one-CPU clear rate; no
  published figure).

For the race (:mod:`.race`) each strategy also says which conversion states
of a page it still finds: :meth:`Strategy.finds`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import kernel
from ..base import MemoryBudgetError, NotRepresentable
from ..extents import count, from_tracker, overlap_pages, union
from ..registry import TRACKERS
from .directmap import DirectMap
from .host import KexecHost
from .platform import Platform, get_platform

# --------------------------------------------------------------------------
# page states of a private->shared conversion, in KVM's step order
# (docs/kernel-facts.md "Private->shared conversion order in KVM";
# arch/x86/kvm/vmx/tdx.c tdx_sept_remove_private_spte()):
#   private      attributes private, page mapped in the S-EPT
#   attr_shared  kvm_vm_set_mem_attributes() stored "shared" for the GFN
#   blocked      tdh_mem_range_block() done
#   tracked      tdh_mem_track() done, vCPUs kicked
#   removed      tdh_mem_page_remove() done
#   written_back tdh_phymem_page_wbinvd_hkid() done, clearing under way
#   released     tdx_quirk_reset_page() done: no longer needs a reset
#   leaked       reclaim failed: the page stays private, owned by nobody
# Invariant: every state but "released" needs a reset at kexec.
CONVERSION_STATES = ("private", "attr_shared", "blocked", "tracked", "removed",
                     "written_back", "released")
NEEDS_RESET = frozenset(CONVERSION_STATES[:-1]) | {"leaked"}

PAGE = kernel.PAGE_SIZE

@dataclass
class Outcome:
    """One row of the verdict table; see the module doc for each field.

    provenance says which figures are measured, emulated or modeled.
    """

    strategy: str
    option: str
    kexec_allowed: bool
    added_bytes: int
    scanned_bytes: int
    scan_loads: int
    pages_reset: int
    pages_missed: int
    scan_s: float
    clear_s: float
    downtime_s: float
    scan_measured_s: float = math.nan
    scan_measured_min_s: float = math.nan
    scan_measured_max_s: float = math.nan
    scan_runs: int = 0
    scan_model_error: float = math.nan
    provenance: str = ""
    notes: str = ""
    #: False where the option's structure cannot hold this host's PFNs
    #: (NotRepresentable): the row's numbers are NaN and it is no option here
    representable: bool = True

    def row(self) -> dict:
        return asdict(self)


def _modeled_times(platform: Platform, scanned_bytes: int, loads: int, pages_reset: int):
    scan_s = platform.scan_s(scanned_bytes, loads)
    clear_s = platform.clear_s(pages_reset * PAGE)
    return scan_s, clear_s, scan_s + clear_s


PROV_MODELED = ("modeled: added_bytes, scanned_bytes, scan_loads, pages_reset, "
                "pages_missed, scan_s, clear_s, downtime_s")


class Strategy:
    """One way to find (or avoid) TDX-private pages at kexec."""

    name: str = ""
    option: str = ""
    #: the kernel hooks the SEAMCALL sites (mark before a page turns private,
    #: unmark after it is cleared): finds a page in every NEEDS_RESET state
    seamcall_hooked: bool = False
    #: the tracker whose scan this strategy is (None: no tracker)
    tracker_cls = None
    #: lists the kernel already keeps that the strategy resets besides its
    #: scan, as KexecHost set names (kvm: "pamt", the TDMR list)
    also_resets: tuple[str, ...] = ()

    def allowed(self, host: KexecHost, *, crash: bool = False) -> bool:
        return True

    def finds(self, state: str) -> bool:
        """Whether a page in conversion ``state`` is reset by this strategy."""
        return self.seamcall_hooked and state in NEEDS_RESET

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        raise NotImplementedError

    def added_bytes_for_set(self, max_pfn: int, starts, ends) -> int:
        """Modeled bytes the option adds to a running kernel whose RAM is
        [0, max_pfn) and whose private pages are the set (no host built)."""
        return 0

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


class TrackerStrategy(Strategy):
    """Scan a registered tracker fed by the SEAMCALL hooks; reset what it finds.

    The tracker is built and scanned (emulated) when it fits
    ``build_limit_pfns`` and its memory budget; otherwise its bytes come from
    ``estimate()`` and it is assumed to find exactly the pages its hooks saw.
    Where its structure cannot hold the host's PFNs at all (NotRepresentable:
    the IDA beyond 2^31 PFNs) the option does not exist on that host: the
    row's numbers are NaN and its notes say "not representable: ...".
    """

    seamcall_hooked = True
    #: emulate (build and scan) only up to this PFN space: past 2 TiB the
    #: Python emulations (xarray: ~30 s per TiB scanned here) would dominate
    #: a shared machine; estimate() answers beyond it
    build_limit_pfns = 1 << 29
    #: timed scans of a built tracker (median and min-max reported)
    scan_repeat = 3
    view = "hooks"          # what the kernel feeds it: see KexecHost.feed_tracker

    def __init__(self, tracker_cls):
        self.tracker_cls = tracker_cls
        self.name = tracker_cls.name
        self.option = tracker_cls.option or f"tracker {tracker_cls.name}"

    def added_bytes(self, modeled_bytes: int, host: KexecHost | None = None) -> int:
        """Bytes the option adds given its structure's modeled bytes."""
        return int(modeled_bytes)

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        return self.added_bytes(self.tracker_cls.estimate(starts, ends, max_pfn))

    def assess(self, host: KexecHost, platform=None, *, emulate: bool = True,
               build_limit_pfns: int | None = None) -> Outcome:
        platform = get_platform(platform or "this-machine")
        tracker, notes = None, ""
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        if emulate and host.max_pfn > limit:
            notes = f"not built: max_pfn {host.max_pfn} over the emulation limit {limit}"
        if emulate and host.max_pfn <= limit:
            try:
                tracker = self.tracker_cls(host.max_pfn)
                host.feed_tracker(tracker, view=self.view)
            except MemoryBudgetError as exc:
                tracker, notes = None, f"not built: {exc}"
            except NotRepresentable as exc:
                return self.not_representable(exc)
        times = []
        if tracker is not None:
            for _ in range(self.scan_repeat):               # the kexec scan, timed
                t0 = time.perf_counter()
                found = from_tracker(tracker)
                times.append(time.perf_counter() - t0)
            mem = tracker.memory()
            modeled_bytes, scanned, loads = mem.modeled_bytes, mem.scanned_bytes, mem.scan_loads
            prov = (f"measured: scan_measured_s (emulated extents() scan, median of "
                    f"{len(times)}, min-max beside it); emulated: pages_reset, pages_missed; "
                    "modeled: added_bytes, scanned_bytes, scan_loads, scan_s, clear_s, "
                    "downtime_s")
        else:
            cls = self.tracker_cls
            found = self.fallback_found(host)
            try:
                modeled_bytes = int(cls.estimate(*found, host.max_pfn))
            except NotRepresentable as exc:
                return self.not_representable(exc)
            scanned = cls.estimate_scanned_bytes(modeled_bytes, host.max_pfn)
            loads = -(-modeled_bytes // cls.scan_node_bytes) if cls.scan_node_bytes else 0
            prov = PROV_MODELED + " (structure not built: estimate())"
        # lists the kernel keeps anyway (the TDMR list): a few entries, not counted
        found = union(found, *(getattr(host, k) for k in self.also_resets))
        pages_reset = count(found)
        missed = host.private_pages - overlap_pages(host.private, found)
        scan_s, clear_s, down = _modeled_times(platform, scanned, loads, pages_reset)
        measured = statistics.median(times) if times else math.nan
        err = (scan_s / measured - 1) if (measured > 0 and platform.kind == "measured") else math.nan
        return Outcome(self.name, self.option, True, self.added_bytes(modeled_bytes, host),
                       int(scanned), int(loads), pages_reset, missed, scan_s, clear_s, down,
                       measured, min(times, default=math.nan), max(times, default=math.nan),
                       len(times), err, prov, notes)

    def fallback_found(self, host: KexecHost):
        return host.private

    def not_representable(self, exc: NotRepresentable) -> Outcome:
        """The row of an option that does not exist on this host: its
        structure cannot hold the host's PFNs (numbers NaN, notes say why)."""
        nan = math.nan
        return Outcome(self.name, self.option, True, nan, nan, nan, nan, nan, nan, nan, nan,
                       provenance="none: the structure cannot hold this host's PFNs",
                       notes=f"not representable: {exc}", representable=False)


class KvmStrategy(TrackerStrategy):
    """Option 4 (Kai Huang): KVM walks its per-TD attribute XArrays, plus the
    PAMT list the kernel keeps.  No hooks: finds a guest page only while its
    attributes say private, and never a control, S-EPT or leaked page unless
    KVM's own lists name it.  Adds nothing: KVM holds the XArrays anyway."""

    seamcall_hooked = False
    view = "kvm"
    also_resets = ("pamt",)

    def __init__(self, tracker_cls):
        super().__init__(tracker_cls)
        self.option = "4: KVM walks its attribute XArrays + PAMT list (Kai Huang)"

    def finds(self, state: str) -> bool:
        return state == "private"

    def added_bytes(self, modeled_bytes, host=None):
        return 0                   # KVM holds its XArrays anyway

    def fallback_found(self, host):
        return host.kvm_visible


class PteSoftbit(Strategy):
    """Option 2: a software bit in each direct-map PTE (see :mod:`.directmap`)."""

    name = "pte-softbit"
    option = "2: software bit in the direct-map PTE (splits large mappings)"
    seamcall_hooked = True

    def __init__(self, *, gbpages: bool = True, collapse: bool = True):
        self.gbpages = gbpages
        self.collapse = collapse

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        """Page-table pages the splits add over RAM [0, max_pfn)."""
        ram = (np.array([0], np.int64), np.array([max_pfn], np.int64))
        return int(DirectMap(*ram, gbpages=self.gbpages).split_for((starts, ends)).added_bytes)

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        dm = DirectMap(*host.ram, gbpages=self.gbpages)
        split = dm.split_for(host.private if self.collapse else host.ever_private)
        pages_reset = split.pages_found if self.collapse else overlap_pages(host.private, host.ram)
        missed = host.private_pages - overlap_pages(host.private, host.ram)
        scan_s, clear_s, down = _modeled_times(platform, split.scanned_bytes, split.scan_loads,
                                               pages_reset)
        mi = split.after.meminfo_kb()
        notes = (f"splits: {split.pmd_pages_added} 1G->2M, {split.pte_pages_added} 2M->4K; "
                 f"after: DirectMap4k {mi['DirectMap4k']} kB, DirectMap2M "
                 f"{mi['DirectMap2M']} kB, DirectMap1G {mi['DirectMap1G']} kB; "
                 f"{'collapsing' if self.collapse else 'one-way'} splits; SOFTW1-4 all taken")
        return Outcome(self.name, self.option, True, split.added_bytes, split.scanned_bytes,
                       split.scan_loads, pages_reset, missed, scan_s, clear_s, down,
                       provenance=PROV_MODELED, notes=notes)


class Refuse(Strategy):
    """Option 5 (upstream, b18651f70ce0): machine_kexec_prepare() returns
    -EOPNOTSUPP once TDX is on an erratum platform; kdump reboots via BIOS."""

    name = "refuse"
    option = "5: refuse kexec and kdump on erratum platforms (upstream)"

    def allowed(self, host, *, crash=False):
        return False

    def finds(self, state):
        return False

    def assess(self, host, platform=None, **kw) -> Outcome:
        return Outcome(self.name, self.option, False, 0, 0, 0, 0, 0, math.nan, math.nan,
                       math.nan, provenance="modeled: no kexec happens (downtime is a BIOS "
                       "reboot, not modeled)", notes="kexec refused: nothing to miss")


class RefuseWhileTd(Strategy):
    """Option 5.1: refuse only while a TD runs; otherwise reset the PAMT
    (the kernel's TDMR list) and whatever leaked -- which it cannot see."""

    name = "refuse-while-td"
    option = "5.1: refuse kexec only while TDs run"

    def allowed(self, host, *, crash=False):
        return host.tds_running == 0

    def finds(self, state):
        return False          # a conversion in flight means a TD runs: refused

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        if not self.allowed(host):
            return Outcome(self.name, self.option, False, 0, 0, 0, 0, 0, math.nan, math.nan,
                           math.nan, provenance="modeled: no kexec happens",
                           notes=f"{host.tds_running} TDs running: kexec refused")
        return _reset_listed(self, host, platform, host.pamt,
                             "no TD running: PAMT reset from the TDMR list")


class ClearAll(Strategy):
    """Option 6 (Isaku Yamahata): reset every RAM page of the memory map."""

    name = "clear-all"
    option = "6: clear every RAM page of the e820 table"

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        return _reset_listed(self, host, platform, host.ram,
                             "scans only the e820 table (a few entries)")


class SysDisable(Strategy):
    """Option 7 (Edgecombe/Verma, Mar 2026): TDH.SYS.DISABLE.  The TDX module
    reclaims all TDX memory and clears partial-write poison itself; its run
    time "largely depends on the amount of memory ... allocated to TDs"."""

    name = "sys-disable"
    option = "7: TDH.SYS.DISABLE (the TDX module reclaims and clears)"

    def __init__(self, sys_disable_bps: float | None = None):
        self.sys_disable_bps = sys_disable_bps

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        bps = self.sys_disable_bps or platform.clear_bps(1)
        pages_reset = host.private_pages
        # the module's time follows TD memory; the rest (PAMT, leaked) the
        # kernel resets at the platform's clear rate after the module returns
        other = max(pages_reset - host.td_pages, 0)
        clear_s = host.td_pages * PAGE / bps + platform.clear_s(other * PAGE)
        return Outcome(self.name, self.option, True, 0, 0, 0, pages_reset, 0, 0.0, clear_s,
                       clear_s, provenance=PROV_MODELED + " (rate is a parameter)",
                       notes=f"module clears at {bps / 1e9:.1f} GB/s "
                             f"({'given' if self.sys_disable_bps else 'platform 1-CPU clear'})")


def _reset_listed(strategy, host, platform, listed, notes) -> Outcome:
    """Reset every page of a list the kernel already keeps (no scan, no bytes
    added); private pages outside the list are missed."""
    pages_reset = count(listed)
    missed = host.private_pages - overlap_pages(host.private, listed)
    scan_s, clear_s, down = _modeled_times(platform, 0, 0, pages_reset)
    return Outcome(strategy.name, strategy.option, True, 0, 0, 0, pages_reset, missed, scan_s,
                   clear_s, down, provenance=PROV_MODELED, notes=notes)


def build_strategies() -> dict[str, Strategy]:
    """Strategies in table order: the trackers in registry order (each a
    SEAMCALL-hooked scan; ``kvm`` the walk of KVM's own structures), then
    options 2, 5, 5.1, 6 and 7."""
    out: dict[str, Strategy] = {
        name: (KvmStrategy if cls.sees_events_only else TrackerStrategy)(cls)
        for name, cls in TRACKERS.items()}
    for s in (PteSoftbit(), Refuse(), RefuseWhileTd(), ClearAll(), SysDisable()):
        out[s.name] = s
    return out


STRATEGIES: dict[str, Strategy] = build_strategies()


def get_strategies(strategies=None) -> list[Strategy]:
    """Strategy objects for names or objects (default: every strategy, in order)."""
    if strategies is None:
        return list(STRATEGIES.values())
    out = []
    for s in strategies:
        if isinstance(s, str):
            if s not in STRATEGIES:
                raise ValueError(f"unknown strategy {s!r}; known: {', '.join(STRATEGIES)}")
            s = STRATEGIES[s]
        out.append(s)
    return out
