"""Every option of the LKML thread as a kexec strategy behind one interface.

``STRATEGIES`` maps a name to a :class:`Strategy`.  For a :class:`KexecHost`
and a :class:`Platform`, ``strategy.assess(host, platform)`` answers:

* kexec_allowed   -- does machine_kexec_prepare() let the kexec proceed;
* pages_reset     -- pages the strategy clears before the jump;
* pages_missed    -- pages TDX-private at kexec that it does not reset;
* added_bytes     -- memory the option adds to a running kernel (modeled);
* scanned_bytes   -- bytes the kexec-time scan reads (modeled);
* scan_s, clear_s, downtime_s = scan_s + clear_s (modeled on the platform);
* scan_measured_s -- where the structure was built, its measured scan
  (median of ``scan_repeat`` runs; scan_measured_min_s and
  scan_measured_max_s are the spread), with scan_model_error = scan_s /
  median - 1.  ``engine`` says what ran: the kernel's own code (the
  tracker's ``@kernel`` twin, through the kernel's iterators) wherever a twin
  exists and the library loads; the Python/numba emulation only where no
  twin exists (or the kernel's code is unavailable here); nothing where the
  structure was not built (estimate()).
* scan_entries, scan_extents, scan_lookups -- the scan's work as the
  platform model counts it (:meth:`Platform.scan_s`): entries tested,
  maximal runs emitted, per-page lookups in another structure;
* downtime_low_s, downtime_high_s -- downtime_s with every ASSUMED platform
  parameter at the end of its range that makes it shortest and longest
  (:meth:`Platform.bounds`: the scan costs, the TDH.SYS.DISABLE rate, a
  preset's estimated rates);
* pages_overcleared -- pages reset that were not private (dpamt-refcount
  resets whole 2 MiB ranges; clear-all every RAM page).

The strategies (``STRATEGIES``, in table order):

* one per registered tracker (option 1 and its variants; option 3 is the
  ``pageflags`` tracker): the kernel's SEAMCALL hooks mark a page before it
  becomes private and unmark it after it is cleared; kexec scans the
  structure and resets what it finds.  The ``kvm`` tracker's strategy is
  ``kvm-attr`` (option 4 narrowed): it walks each TD's memory-attribute
  XArray and guest_memfd, plus the PAMT list the kernel keeps (TDMRs): no
  hooks, nothing added, guest pages only.  :func:`strategy_for_tracker`
  maps a tracker's name to its strategy;
* ``kvm-sept`` (option 4 as Kai Huang proposed it: each in-kernel user resets
  what it manages): KVM walks each TD's mirror S-EPT (guest pages, S-EPT
  pages through ``external_spt``), its control-page pointers and the PAMT
  list (:mod:`.kvm_walk`);
* ``gmem-maple`` (guest_memfd in-place conversion, 2026): each inode's
  attribute maple tree, translated to PFNs through the page cache
  (:mod:`.gmem`);
* ``pte-softbit`` (option 2): :mod:`.directmap`;
* ``upstream-refuse`` (option 5 as merged, b18651f70ce0, 6.18) and
  ``refuse-while-td`` (5.1);
* ``clear-all`` (option 6): reset every RAM page of the memory map;
* ``sys-disable`` (option 7, tip x86/tdx 5b25f249be32): TDH.SYS.DISABLE, the
  TDX module reclaims and clears every TDX page itself, at the platform's
  ASSUMED ``sys_disable_bps``;
* ``dpamt-refcount`` (Dynamic PAMT v6, 2026): scan the per-2 MiB refcount
  array and reset every counted range (:mod:`.dpamt`).

For the race (:mod:`.race`) each strategy also says which conversion states
of a page it still finds: :meth:`Strategy.finds`, from :data:`STATE_FACTS`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from .. import kernel, linux
from ..base import MemoryBudgetError, NotRepresentable, memory_budget
from ..extents import (count, count_blocks_touched, from_tracker, intersect, normalize,
                       overlap_pages, subtract, union)
from ..registry import TRACKERS, TWINS
from . import dpamt, gmem
from .directmap import LEVEL_2M, DirectMap
from .host import KexecHost
from .kvm_walk import mirror_walk
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
#: the same steps in mainline's order (ZAP_FIRST, :mod:`.race`): the zap runs
#: while the attribute still says private, so a page being zapped is in one of
#: these states (attribute private, no SPTE, PAMT_4K reference held)
ZAP_FIRST_STATES = ("zap_blocked", "zap_tracked", "zap_removed", "zap_written_back")
NEEDS_RESET = frozenset(CONVERSION_STATES[:-1]) | frozenset(ZAP_FIRST_STATES) | {"leaked"}

#: What a walker can read of a page in each state, in the race model's order
#: (attributes first, as Isaku Yamahata's objection has it):
#: (KVM's attribute says private, the mirror SPTE holds its PFN, it holds a
#: PAMT_4K reference).  The SPTE: tdp_mmu_set_spte() (arch/x86/kvm/mmu/
#: tdp_mmu.c) writes the cleared SPTE first, then remove_external_spte() ->
#: tdx_sept_remove_private_spte() (arch/x86/kvm/vmx/tdx.c) runs range block,
#: track, page remove, wbinvd and the clear: from "blocked" to "written_back"
#: no SPTE names the page.  The reference: tdx_pamt_put() follows the clear
#: (Dynamic PAMT v6 09/11: tdx_sept_remove_leaf_spte()) and never runs for a
#: page whose reclaim failed.  Note: mainline kvm_vm_set_mem_attributes()
#: (virt/kvm/kvm_main.c) runs the zap (pre_set_range ->
#: kvm_arch_pre_set_memory_attributes() -> kvm_unmap_gfn_range()) *before*
#: its xa_store() loop, and in-place conversion's kvm_gmem_convert() stores
#: the maple tree after kvm_gmem_zap(): in the code's own order the attribute
#: still says private in every state before "released" (docs/kernel-facts.md):
#: the race runs in either order (race(order=...)); ZAP_FIRST_STATES name the
#: zap's states in that order.
STATE_FACTS = {
    "private": (True, True, True),
    "attr_shared": (False, True, True),
    "blocked": (False, False, True),
    "tracked": (False, False, True),
    "removed": (False, False, True),
    "written_back": (False, False, True),
    "released": (False, False, False),
    "leaked": (False, False, True),
    # mainline's order: the zap runs before the attribute store
    **{z: (True, False, True) for z in ZAP_FIRST_STATES},
}
ATTR_PRIVATE, SPTE_PRESENT, PAMT_REF = 0, 1, 2

PAGE = kernel.PAGE_SIZE
#: how the engine of a measurement through the kernel's own code begins
#: ("kernel code v6.12.117 (userspace)": kernel_engine())
ENGINE_KERNEL_PREFIX = "kernel code"
#: the engine (Outcome.engine) of a measurement of a Python/numba emulation
ENGINE_EMULATION = "emulation (Python/numba)"
#: the engines of the C layouts of structures the kernel keeps (trackers/linux/pages.c)
ENGINE_STRUCT_PAGES = "C struct-page scan (trackers/linux/pages.c)"
ENGINE_PAGE_TABLES = "C page-table walk (trackers/linux/pages.c)"
#: the engine of a row where nothing was built or timed
ENGINE_NONE = "none (modeled)"


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
    #: the scan's work as the platform model counts it (Platform.scan_s):
    #: entries tested, extents (maximal runs) emitted, per-page lookups
    scan_entries: int = 0
    scan_extents: int = 0
    scan_lookups: int = 0
    #: what produced scan_measured_s: the kernel's code, an emulation, or nothing
    engine: str = ENGINE_NONE
    #: downtime_s with every ASSUMED parameter at its fast / slow end
    #: (Platform.bounds); NaN where no kexec happens
    downtime_low_s: float = math.nan
    downtime_high_s: float = math.nan
    #: pages reset that were not private (modeled)
    pages_overcleared: int = 0

    def row(self) -> dict:
        return asdict(self)


def _bracket(outcome: Outcome, platform: Platform, downtime) -> Outcome:
    """``outcome`` with downtime_low_s / downtime_high_s: ``downtime(p)`` on the
    platform's fast and slow corners (every ASSUMED field at either end)."""
    fast, slow = platform.bounds()
    outcome.downtime_low_s = float(downtime(fast))
    outcome.downtime_high_s = float(downtime(slow))
    return outcome


def _modeled_times(platform: Platform, scanned_bytes: int, loads: int, pages_reset: int,
                   entries: int = 0, extents: int = 0):
    scan_s = platform.scan_s(scanned_bytes, loads, entries, extents)
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
    #: the option has a structure of its own, not a tracker's, whose bytes the
    #: memory figure shows (added_bytes_for_set): pte-softbit, dpamt-refcount,
    #: gmem-maple
    sized_structure: bool = False

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

    def measured_pfns(self, max_pfn: int, kernel_code: bool = True,
                      budget_bytes: int | None = None) -> int:
        """PFNs the scan of a ``max_pfn`` host is measured over: all of them,
        unless the structure is measured smaller and scaled (StructPageStrategy)."""
        return max_pfn

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def kernel_twin(name: str):
    """The ``@kernel`` twin of tracker ``name`` (the kernel's own code behind
    the same contract) where that code loads here, else None.  Asked at call
    time, not import time: ``tdx-trackers report`` builds the library after
    the registry was imported."""
    if name not in TWINS or not linux.available()[0]:
        return None
    return TWINS[name]


def kernel_engine() -> str:
    """The engine name of a measurement through the kernel's own code."""
    return f"{ENGINE_KERNEL_PREFIX} v{linux.version()} (userspace)"


def engine_kind(engine: str) -> str:
    """What kind of engine produced a measurement (Outcome.engine): "kernel
    code", "C layout" (pages.c), "emulation", or "none"."""
    if engine.startswith(ENGINE_KERNEL_PREFIX):
        return "kernel code"
    if engine in (ENGINE_STRUCT_PAGES, ENGINE_PAGE_TABLES):
        return "C layout"
    return "emulation" if engine == ENGINE_EMULATION else "none"


def scan_entries(modeled_bytes: int, scanned_bytes: int) -> int:
    """Entries a kexec-time scan tests: one per 8-byte word of the structure it
    walks (xa_node slots, maple slots and pivots, bitmap longs, PTEs), and one
    per struct page where it reads struct pages besides (``scanned_bytes`` beyond
    ``modeled_bytes``: MemoryReport says a scan reads more than its structure
    only there)."""
    extra = max(int(scanned_bytes) - int(modeled_bytes), 0)
    return (min(int(modeled_bytes), int(scanned_bytes)) // kernel.SCAN_ENTRY_BYTES
            + extra // kernel.STRUCT_PAGE_BYTES)


@dataclass(frozen=True)
class ScanMeasurement:
    """What building and scanning (or estimating) one option's structure for
    one host gave; platform-free, so one measurement serves every platform.

    ``engine`` says what ran: the kernel's code (a ``@kernel`` twin), a C
    layout of a structure the kernel keeps (trackers/linux/pages.c), the
    emulation, or nothing (ENGINE_NONE: ``estimate()``).  ``seconds`` is the
    median of ``repeat`` timed whole scans (``seconds_min``/``seconds_max`` the
    spread; NaN and 0 when nothing ran), for ``max_pfn`` PFNs; where the scan
    was measured over fewer PFNs and scaled (the struct-page array past the
    memory budget) ``measured_pfns`` says how many and ``provenance`` says
    "extrapolated".  ``entries``, ``extents`` and ``lookups`` are the scan's
    work as :meth:`Platform.scan_s` counts it; ``populate_s`` the build.
    """

    engine: str
    found: tuple
    modeled_bytes: int
    scanned_bytes: int
    scan_loads: int
    entries: int
    extents: int
    lookups: int
    provenance: str
    notes: str = ""
    seconds: float = math.nan
    seconds_min: float = math.nan
    seconds_max: float = math.nan
    repeat: int = 0
    max_pfn: int = 0
    measured_pfns: int = 0
    populate_s: float = math.nan

    @property
    def extrapolated(self) -> bool:
        return 0 < self.measured_pfns < self.max_pfn


def with_times(m: ScanMeasurement, times: list[float], **changes) -> ScanMeasurement:
    """``m`` with the timed runs ``times``: their median, min-max and count."""
    return replace(m, seconds=statistics.median(times), seconds_min=min(times),
                   seconds_max=max(times), repeat=len(times), **changes)


def _timed_scans(engine, repeat: int) -> tuple[list[float], tuple]:
    """``repeat`` whole scans of a tracker, each timed (perf_counter around
    the loop that consumes extents()); the runs the last one found."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = from_tracker(engine)
        times.append(time.perf_counter() - t0)
    return times, found


class TrackerStrategy(Strategy):
    """Scan a registered tracker fed by the SEAMCALL hooks; reset what it finds.

    Where the tracker has a ``@kernel`` twin and the kernel's code loads here,
    the twin is built (the kernel's own XArray, IDA, maple tree or find_bit)
    and its scan through the kernel's iterators is timed; where no twin
    exists, the emulation is built and timed instead (provenance says
    "emulated").  Either is built only when the host fits
    ``build_limit_pfns`` and the memory budget; otherwise its bytes come from
    ``estimate()`` and it is assumed to find exactly the pages its hooks saw.
    Where its structure cannot hold the host's PFNs at all (NotRepresentable:
    the IDA beyond 2^31 PFNs) the option does not exist on that host: the
    row's numbers are NaN and its notes say "not representable: ...".
    """

    seamcall_hooked = True
    #: build and scan only up to this PFN space: past 2 TiB the builds (the
    #: emulations: xarray ~30 s per TiB scanned here; the kernel's xa_store per
    #: page ~12 s per TiB) would dominate a shared machine; estimate() answers beyond it
    build_limit_pfns = 1 << 29
    #: timed scans of a built tracker (median and min-max reported)
    scan_repeat = 5
    #: per-page lookups the scan makes in another structure, per page found
    #: (kvm: a guest_memfd lookup per private GFN)
    lookups_per_page = 0
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

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat: int | None = None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """Build the structure for ``host`` and time ``repeat`` whole scans
        (default ``scan_repeat``), or estimate when it is not built: the
        ``@kernel`` twin where one exists and ``kernel_code`` allows, else the
        emulation, within ``budget_bytes`` of host memory (default
        :func:`trackers.base.memory_budget`).  Raises NotRepresentable where
        the structure cannot hold the host's PFNs."""
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        repeat = repeat or self.scan_repeat
        notes = ""
        if emulate and host.max_pfn > limit:
            notes = f"not built: max_pfn {host.max_pfn} over the build limit {limit}"
        elif emulate:
            try:
                return self._built(host, kernel_code, repeat, budget_bytes)
            except MemoryBudgetError as exc:
                notes = f"not built: {exc}"
        return self._estimated(host, notes)

    def _built(self, host: KexecHost, kernel_code: bool, repeat: int,
               budget_bytes: int | None = None) -> ScanMeasurement:
        twin = kernel_twin(self.tracker_cls.name) if kernel_code else None
        cls = twin or self.tracker_cls
        if twin is None:                                    # compile the emulation first
            warm = cls(1 << 12)
            warm.mark_ranges([1, 64], [3, 200])
            from_tracker(warm)
        tracker = None
        try:
            t0 = time.perf_counter()
            tracker = cls(host.max_pfn, budget_bytes=budget_bytes)
            host.feed_tracker(tracker, view=self.view)
            populate_s = time.perf_counter() - t0
            times, found = _timed_scans(tracker, repeat)
            mem = tracker.memory()
        finally:
            if tracker is not None and hasattr(tracker, "close"):
                tracker.close()            # a twin's kernel structures, freed now
        what = (f"median of {repeat}, min-max beside it; modeled: added_bytes, scan_s, "
                "clear_s, downtime_s")
        if twin is not None:
            engine = kernel_engine()
            prov = (f"measured: kernel code (v{linux.version()}, userspace): "
                    f"scan_measured_s ({twin.name}'s scan through the kernel's iterators, "
                    f"{what}); counted in the kernel's structure: pages_reset, "
                    "pages_missed, scanned_bytes, scan_loads")
        else:
            engine = ENGINE_EMULATION
            prov = (f"measured, emulated: scan_measured_s (the Python/numba emulation's "
                    f"extents() scan, not kernel code; {what}); emulated: pages_reset, "
                    "pages_missed, scanned_bytes, scan_loads")
        return ScanMeasurement(
            engine, found, int(mem.modeled_bytes), int(mem.scanned_bytes),
            int(mem.scan_loads), scan_entries(mem.modeled_bytes, mem.scanned_bytes),
            int(found[0].size), self.lookups_per_page * count(found), prov,
            seconds=statistics.median(times), seconds_min=min(times),
            seconds_max=max(times), repeat=repeat, max_pfn=host.max_pfn,
            measured_pfns=host.max_pfn, populate_s=populate_s)

    def _estimated(self, host: KexecHost, notes: str = "") -> ScanMeasurement:
        cls = self.tracker_cls
        found = self.fallback_found(host)
        modeled_bytes = int(cls.estimate(*found, host.max_pfn))
        scanned = cls.estimate_scanned_bytes(modeled_bytes, host.max_pfn)
        loads = -(-modeled_bytes // cls.scan_node_bytes) if cls.scan_node_bytes else 0
        return ScanMeasurement(
            ENGINE_NONE, found, modeled_bytes, int(scanned), int(loads),
            scan_entries(modeled_bytes, scanned), int(found[0].size),
            self.lookups_per_page * count(found),
            PROV_MODELED + " (structure not built: estimate())", notes, max_pfn=host.max_pfn)

    def assess(self, host: KexecHost, platform=None, *, emulate: bool = True,
               build_limit_pfns: int | None = None, kernel_code: bool = True,
               cache: dict | None = None) -> Outcome:
        """The row for ``host`` on ``platform``.  ``kernel_code=False`` times
        the emulation even where a twin exists.  ``cache`` (a dict the caller
        keeps) holds the measurement across platforms: the same host is then
        built and timed once."""
        platform = get_platform(platform or "this-machine")
        m = _cached_measure(self, host, cache, emulate=emulate,
                            build_limit_pfns=build_limit_pfns, kernel_code=kernel_code)
        if isinstance(m, NotRepresentable):
            return self.not_representable(m)
        # lists the kernel keeps anyway (the TDMR list): a few entries, not counted
        found = union(m.found, *(_kept_list(host, k) for k in self.also_resets))
        pages_reset = count(found)
        missed = host.private_pages - overlap_pages(host.private, found)
        return _outcome(self, platform, m, self.added_bytes(m.modeled_bytes, host),
                        pages_reset, missed)

    def fallback_found(self, host: KexecHost):
        return host.private

    def not_representable(self, exc: NotRepresentable) -> Outcome:
        """The row of an option that does not exist on this host: its
        structure cannot hold the host's PFNs (numbers NaN, notes say why)."""
        nan = math.nan
        return Outcome(self.name, self.option, True, nan, nan, nan, nan, nan, nan, nan, nan,
                       provenance="none: the structure cannot hold this host's PFNs",
                       notes=f"not representable: {exc}", representable=False)


def _kept_list(host: KexecHost, name: str):
    """A list the kernel keeps, by its ``also_resets`` name: "pamt" is what the
    TDMR list names (host.pamt_listed: no Dynamic PAMT page pairs)."""
    return host.pamt_listed if name == "pamt" else getattr(host, name)


def _cached_measure(strategy, host: KexecHost, cache: dict | None, **kw):
    """``strategy.measure(host, **kw)`` once per host and arguments while
    ``cache`` is kept (a NotRepresentable is cached and returned, not raised)."""
    key = (strategy.name, id(host), tuple(sorted(kw.items())))
    m = None if cache is None else cache.get(key)
    if m is None:
        try:
            m = strategy.measure(host, **kw)
        except NotRepresentable as exc:
            m = exc
        if cache is not None:
            cache[key] = m
    return m


def _outcome(strategy, platform: Platform, m: ScanMeasurement, added: int, pages_reset: int,
             missed: int, notes: str = "") -> Outcome:
    """The row of a scanning strategy: its measurement costed on ``platform``."""
    scan_s = platform.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents, m.lookups)
    clear_s = platform.clear_s(pages_reset * PAGE)
    measured = m.seconds
    err = (scan_s / measured - 1) if (measured > 0 and platform.kind == "measured") else math.nan
    out = Outcome(strategy.name, strategy.option, True, int(added), m.scanned_bytes,
                  m.scan_loads, pages_reset, missed, scan_s, clear_s, scan_s + clear_s,
                  measured, m.seconds_min, m.seconds_max, m.repeat, err, m.provenance,
                  "; ".join(x for x in (m.notes, notes) if x), scan_entries=m.entries,
                  scan_extents=m.extents, scan_lookups=m.lookups, engine=m.engine)
    return _bracket(out, platform, lambda p: (
        p.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents, m.lookups)
        + p.clear_s(pages_reset * PAGE)))


class StructPageStrategy(TrackerStrategy):
    """Option 3 (``pageflags``): a flag in every struct page.  Where the
    library that lays struct pages out in C loads here
    (:class:`trackers.linux.KernelStructPages`: 64-B struct pages, the flag
    in ``page->flags``), the scan timed is that C scan over the host's PFNs --
    measured, or past the memory budget measured over the largest array it
    allows and scaled linearly (provenance says "extrapolated"); elsewhere
    the emulation's.  The hooks mark every private page, so the scan finds
    exactly the host's private pages (tests/test_linux_pages.py holds the C
    scan to that).

    The kernel's walk reads the struct pages of present memory sections only
    (SPARSEMEM_VMEMMAP: ``pfn_valid()`` is false, and no vmemmap is
    populated, for a 128 MiB section without RAM; include/linux/mmzone.h), so
    the modeled scan reads :func:`present_pfns` struct pages, not max_pfn:
    the two differ on a host whose max_pfn far exceeds its RAM
    (r7625-sparse).  The C scan timed here still covers [0, max_pfn)."""

    def measured_pfns(self, max_pfn: int, kernel_code: bool = True,
                      budget_bytes: int | None = None) -> int:
        """PFNs the scan of a ``max_pfn`` host is measured over: the struct-page
        array the memory budget allows (scaled past it), where the C layout runs."""
        if kernel_code and linux.available()[0]:
            budget = memory_budget() if budget_bytes is None else budget_bytes
            return min(max_pfn, budget // kernel.STRUCT_PAGE_BYTES)
        return max_pfn

    def _built(self, host: KexecHost, kernel_code: bool, repeat: int,
               budget_bytes: int | None = None) -> ScanMeasurement:
        if not (kernel_code and linux.available()[0]):
            return super()._built(host, kernel_code, repeat, budget_bytes)
        t0 = time.perf_counter()
        st = linux.struct_page_scan_time(host.max_pfn, *host.private, repeat=repeat,
                                         budget_bytes=budget_bytes)
        elapsed = time.perf_counter() - t0
        scanned = present_pfns(host) * kernel.STRUCT_PAGE_BYTES
        found = host.private
        return ScanMeasurement(
            ENGINE_STRUCT_PAGES, found, 0, scanned, 0, scan_entries(0, scanned),
            int(found[0].size), 0,
            f"{st.provenance}; modeled: added_bytes, scan_s, clear_s, downtime_s; "
            "pages_reset, pages_missed: the private pages the hooks flag",
            seconds=st.seconds, seconds_min=st.seconds_min, seconds_max=st.seconds_max,
            repeat=st.repeat, max_pfn=host.max_pfn, measured_pfns=st.measured_pfns,
            populate_s=elapsed - st.seconds / st.scale * repeat)


    def _estimated(self, host: KexecHost, notes: str = "") -> ScanMeasurement:
        m = super()._estimated(host, notes)
        scanned = present_pfns(host) * kernel.STRUCT_PAGE_BYTES
        return replace(m, scanned_bytes=scanned, entries=scan_entries(m.modeled_bytes, scanned))


def present_pfns(host: KexecHost) -> int:
    """PFNs of the memory sections that hold RAM (kernel.SECTION_SIZE_BITS):
    the struct pages a pfn_valid() walk reads, capped at max_pfn."""
    sections = count_blocks_touched(host.ram, kernel.SECTION_SIZE_BITS - kernel.PAGE_SHIFT)
    return min(sections * kernel.PAGES_PER_SECTION, host.max_pfn)


class KvmStrategy(TrackerStrategy):
    """``kvm-attr``: option 4 narrowed to guest memory -- KVM walks its per-TD
    attribute XArrays (the ``kvm`` tracker) and translates each private GFN
    through guest_memfd, plus the PAMT list the kernel keeps.  No hooks: finds
    a guest page only while its attribute says private (:data:`STATE_FACTS`),
    and never a control, S-EPT or leaked page.  Adds nothing: KVM holds the
    XArrays anyway.  Kai Huang's proposal walks more: ``kvm-sept``."""

    name_for = "kvm-attr"

    seamcall_hooked = False
    view = "kvm"
    also_resets = ("pamt",)
    #: the walk translates every private GFN it finds through guest_memfd
    #: (kvm_gmem_get_pfn(): a lookup in its page cache XArray)
    lookups_per_page = 1

    def __init__(self, tracker_cls):
        super().__init__(tracker_cls)
        self.name = self.name_for
        self.option = ("4a: KVM walks its attribute XArrays + guest_memfd + PAMT list "
                       "(guest pages only)")

    def finds(self, state: str) -> bool:
        return state in NEEDS_RESET and STATE_FACTS[state][ATTR_PRIVATE]

    def assess(self, host, platform=None, **kw) -> Outcome:
        out = super().assess(host, platform, **kw)
        if out.representable:
            out.notes = "; ".join(x for x in (out.notes, (
                f"misses every non-guest page but the TDMR-listed PAMT "
                f"({count(host.control)} control, {count(host.sept)} S-EPT, "
                f"{count(host.leaked)} leaked here)")) if x)
        return out

    def added_bytes(self, modeled_bytes, host=None):
        return 0                   # KVM holds its XArrays anyway

    def fallback_found(self, host):
        return host.kvm_visible


class PteSoftbit(Strategy):
    """Option 2: a software bit in each direct-map PTE (see :mod:`.directmap`)."""

    name = "pte-softbit"
    option = "2: software bit in the direct-map PTE (splits large mappings)"
    seamcall_hooked = True
    sized_structure = True
    #: the page tables are built and walked as the trackers are (up to 2 TiB)
    build_limit_pfns = TrackerStrategy.build_limit_pfns
    scan_repeat = TrackerStrategy.scan_repeat

    def __init__(self, *, gbpages: bool = True, collapse: bool = True):
        self.gbpages = gbpages
        self.collapse = collapse

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        """Page-table pages the splits add over RAM [0, max_pfn)."""
        ram = (np.array([0], np.int64), np.array([max_pfn], np.int64))
        return int(DirectMap(*ram, gbpages=self.gbpages).split_for((starts, ends)).added_bytes)

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat: int | None = None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """The splits for ``host`` (modeled) and, where the library that lays
        the direct map's page tables out in C loads here
        (:class:`trackers.linux.KernelDirectMap`), ``emulate`` is set, the host
        fits ``build_limit_pfns`` and its tables ``budget_bytes`` (default the
        memory budget), the walk of those tables timed ``repeat`` times
        (default ``scan_repeat``)."""
        dm = DirectMap(*host.ram, gbpages=self.gbpages)
        split = dm.split_for(host.private if self.collapse else host.ever_private)
        found = intersect(host.private, host.ram)
        # the walk tests every PTE of every table page and emits the runs whose
        # soft bit is set: the pages private now (a one-way split keeps its
        # table page, not the bit)
        entries = split.scanned_bytes // kernel.SCAN_ENTRY_BYTES
        mi = split.after.meminfo_kb()
        notes = (f"splits: {split.pmd_pages_added} 1G->2M, {split.pte_pages_added} 2M->4K; "
                 f"after: DirectMap4k {mi['DirectMap4k']} kB, DirectMap2M "
                 f"{mi['DirectMap2M']} kB, DirectMap1G {mi['DirectMap1G']} kB; "
                 f"{'collapsing' if self.collapse else 'one-way'} splits; SOFTW1-4 all taken")
        m = ScanMeasurement(ENGINE_NONE, found, split.added_bytes, split.scanned_bytes,
                            split.scan_loads, entries, int(found[0].size), 0,
                            PROV_MODELED, notes, max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        if not (emulate and kernel_code and host.max_pfn <= limit and linux.available()[0]):
            return m
        repeat = repeat or self.scan_repeat
        t0 = time.perf_counter()
        try:
            tables = linux.KernelDirectMap(dm.starts, dm.ends, dm.levels,
                                           budget_bytes=budget_bytes)
        except MemoryBudgetError as exc:
            return replace(m, notes=f"{notes}; walk not built: {exc}")
        try:
            tables.mark_ranges(*(host.private if self.collapse else host.ever_private))
            if not self.collapse:
                tables.unmark_ranges(*subtract(host.ever_private, host.private))
            populate_s = time.perf_counter() - t0
            st = linux.direct_map_scan_time(tables, repeat=repeat)
        except MemoryBudgetError as exc:
            return replace(m, notes=f"{notes}; walk not built: {exc}")
        finally:
            tables.close()
        return replace(
            m, engine=ENGINE_PAGE_TABLES,
            provenance=(f"{st.provenance}; modeled: added_bytes, scanned_bytes, scan_loads, "
                        "pages_reset, pages_missed, scan_s, clear_s, downtime_s"),
            seconds=st.seconds, seconds_min=st.seconds_min, seconds_max=st.seconds_max,
            repeat=st.repeat, measured_pfns=host.max_pfn, populate_s=populate_s)

    def assess(self, host, platform=None, *, cache: dict | None = None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        m = _cached_measure(self, host, cache, **kw)
        pages_reset = count(m.found)
        missed = host.private_pages - pages_reset
        return _outcome(self, platform, m, m.modeled_bytes, pages_reset, missed)


class UpstreamRefuse(Strategy):
    """Option 5 as merged (b18651f70ce0, "x86/kexec: Disable kexec/kdump on
    platforms with TDX partial write erratum", 6.18): machine_kexec_prepare()
    returns -EOPNOTSUPP on every part with X86_BUG_TDX_PW_MCE (Sapphire and
    Emerald Rapids) -- whether or not TDX was ever initialised; kdump reboots
    through the BIOS.  Elsewhere kexec proceeds after a WBINVD
    (tdx_cpu_flush_cache_for_kexec()) and resets nothing, the erratum being
    absent.  Every host here is taken to be an erratum part."""

    name = "upstream-refuse"
    option = ("5: upstream 6.18: kexec/kdump -EOPNOTSUPP on X86_BUG_TDX_PW_MCE parts, "
              "TDX initialised or not (b18651f70ce0)")

    def allowed(self, host, *, crash=False):
        return False

    def finds(self, state):
        return False

    def assess(self, host, platform=None, **kw) -> Outcome:
        return Outcome(self.name, self.option, False, 0, 0, 0, 0, 0, math.nan, math.nan,
                       math.nan, provenance="modeled: no kexec happens (downtime is a BIOS "
                       "reboot, not modeled)",
                       notes=(f"kexec refused on an X86_BUG_TDX_PW_MCE part even with TDX never "
                              f"initialised ({host.tds_running} TDs running here): nothing "
                              f"to miss"))


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
        return _reset_listed(self, host, platform, host.pamt_listed,
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
    """Option 7 (Verma/Edgecombe, "fuller TDX kexec support" v3, Apr 2026; tip
    x86/tdx 5b25f249be32): TDH.SYS.DISABLE from tdx_shutdown() (syscore) and
    native_machine_crash_shutdown().  The TDX module reclaims every page PAMT
    assigns to TDX -- TD, control, S-EPT and leaked pages, the PAMT itself --
    and clears partial-write poison; the kernel resets nothing and scans
    nothing.  Its time "depends on the amount of memory allocated to TDs";
    no figure is published: private pages at the platform's ASSUMED
    ``sys_disable_bps`` (one CPU's streaming clear: the SEAMCALL loops on the
    calling CPU), range in ASSUMED_RANGES."""

    name = "sys-disable"
    option = "7: TDH.SYS.DISABLE (the TDX module reclaims and clears; tip x86/tdx)"

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        pages_reset = host.private_pages

        def downtime(p):
            return pages_reset * PAGE / p.sys_disable_bps

        lo, hi = platform.assumed_ranges()["sys_disable_bps"][:2]
        clear_s = downtime(platform)
        out = Outcome(self.name, self.option, True, 0, 0, 0, pages_reset, 0, 0.0, clear_s,
                      clear_s, provenance=(PROV_MODELED + "; ASSUMED: the module's clear rate "
                                           "sys_disable_bps"),
                      notes=(f"module clears {host.td_pages:,} TD + "
                             f"{pages_reset - host.td_pages:,} PAMT/leaked pages at "
                             f"{platform.sys_disable_bps / 1e9:.1f} GB/s, ASSUMED range "
                             f"{lo / 1e9:g}-{hi / 1e9:g} GB/s (no published figure)"))
        return _bracket(out, platform, downtime)


def _reset_listed(strategy, host, platform, listed, notes) -> Outcome:
    """Reset every page of a list the kernel already keeps (no scan, no bytes
    added); private pages outside the list are missed."""
    pages_reset = count(listed)
    found = overlap_pages(host.private, listed)
    missed = host.private_pages - found
    scan_s, clear_s, down = _modeled_times(platform, 0, 0, pages_reset)
    out = Outcome(strategy.name, strategy.option, True, 0, 0, 0, pages_reset, missed, scan_s,
                  clear_s, down, provenance=PROV_MODELED, notes=notes,
                  pages_overcleared=pages_reset - found)
    return _bracket(out, platform, lambda p: _modeled_times(p, 0, 0, pages_reset)[2])


class KvmSept(Strategy):
    """Option 4 as Kai Huang proposed it (v4 5/5): each in-kernel TDX user
    resets the private pages it manages.  KVM walks each TD's mirror S-EPT --
    guest pages from the 4 KiB leaf SPTEs, S-EPT pages from each table's
    ``external_spt`` -- and its control-page pointers (TDR, TDCS, TDVPR,
    TDCX); arch/x86 resets the PAMT its TDMR list names (:mod:`.kvm_walk`).
    Adds nothing; bytes, loads and entries are modeled from the structures
    walked.  Where pages.c loads here and the host fits ``build_limit_pfns``,
    the walk of page tables shaped as each TD's mirror S-EPT is timed
    (:class:`trackers.linux.KernelDirectMap`: the TD's GFNs mapped at 2 MiB,
    every 2 MiB split to a scattered 4 KiB table as the fault path allocates
    them, the soft bit standing for a present leaf); the ``external_spt`` and
    control-pointer loads are in the model only.  Misses what KVM cannot
    know: leaked pages, pages whose mirror SPTE is already cleared while
    their S-EPT removal runs (:data:`STATE_FACTS`), Dynamic PAMT page pairs."""

    name = "kvm-sept"
    option = ("4: KVM resets what it manages: mirror S-EPT walk + control pages + PAMT "
              "(Kai Huang v4 5/5)")
    build_limit_pfns = TrackerStrategy.build_limit_pfns
    scan_repeat = TrackerStrategy.scan_repeat

    def finds(self, state: str) -> bool:
        return state in NEEDS_RESET and STATE_FACTS[state][SPTE_PRESENT]

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat: int | None = None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """The modeled walk of ``host`` and, where it can run, the timed C walk
        of page tables of the same shape (one per TD)."""
        w = mirror_walk(host)
        w.check()
        found = union(host.guest, host.sept, host.control, host.pamt_listed)
        m = ScanMeasurement(
            ENGINE_NONE, found, 0, w.scanned_bytes, w.loads, w.entries, int(found[0].size), 0,
            PROV_MODELED + "; the walk follows arch/x86/kvm/mmu/tdp_mmu.c (mirror root, "
            "for_each_tdp_pte, sp->external_spt) and arch/x86/kvm/vmx/tdx.c (kvm_tdx->td, "
            "vcpu_tdx->vp); not built", max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        if not (emulate and kernel_code and host.tds and host.max_pfn <= limit
                and linux.available()[0]):
            return m
        repeat = repeat or self.scan_repeat
        tables = []
        try:
            t0 = time.perf_counter()
            for i, t in enumerate(host.tds):                   # one step per TD
                gs, ge = t.gfns
                gs = gs // kernel.PAGES_PER_2M * kernel.PAGES_PER_2M
                ge = -(-ge // kernel.PAGES_PER_2M) * kernel.PAGES_PER_2M
                gs, ge = normalize(gs, ge)
                dm = linux.KernelDirectMap(gs, ge, np.full(gs.size, LEVEL_2M, np.int8),
                                           seed=i, budget_bytes=budget_bytes)
                tables.append(dm)
                dm.mark_ranges(gs, ge)                     # every 2 MiB -> a 4 KiB table
                dm.unmark_ranges(*subtract((gs, ge), t.private_gfns))
            populate_s = time.perf_counter() - t0
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                leaves = sum(sum(int((e - s).sum()) for s, e in dm.scan()) for dm in tables)
                times.append(time.perf_counter() - t0)
            table_bytes = sum(dm.table_bytes for dm in tables)
        except MemoryBudgetError as exc:
            return replace(m, notes=f"walk not built: {exc}")
        finally:
            for dm in tables:
                dm.close()
        prov = (f"measured: C walk of {table_bytes / 2**20:,.1f} MiB of page tables shaped as "
                f"the TDs' mirror S-EPT (trackers/linux/pages.c, 4 KiB tables scattered), "
                f"median of {repeat}, min-max beside it; modeled: the external_spt and "
                "control-pointer loads, scanned_bytes, scan_loads, pages_reset, "
                "pages_missed, scan_s, clear_s, downtime_s")
        notes = ("" if leaves == w.leaf_sptes else
                 f"the TD views map {leaves:,} leaves, the host's guest set {w.leaf_sptes:,}")
        return with_times(m, times, engine=ENGINE_PAGE_TABLES, provenance=prov, notes=notes,
                          measured_pfns=host.max_pfn, populate_s=populate_s)

    def assess(self, host: KexecHost, platform=None, *, cache: dict | None = None,
               **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        m = _cached_measure(self, host, cache, **kw)
        w = mirror_walk(host)
        pages_reset = count(m.found)
        missed = host.private_pages - overlap_pages(host.private, m.found)
        out = _outcome(self, platform, m, 0, pages_reset, missed, (
            f"walks {w.tables:,} mirror tables ({w.sept_pages:,} S-EPT + {w.roots} roots), "
            f"{w.leaf_sptes:,} 4 KiB leaf SPTEs, {w.control_pages:,} control pages of "
            f"{w.tds} TDs / {w.vcpus} vCPUs; adds 0 B; misses {count(host.leaked):,} leaked "
            f"(failed reclaim: KVM drops the pointer) and {count(host.dynamic_pamt):,} "
            f"Dynamic PAMT pair pages; in the race: pages from tdh_mem_range_block to the "
            f"clear (SPTE already cleared); the walk follows arch/x86/kvm/mmu/tdp_mmu.c "
            f"(mirror root, for_each_tdp_pte, sp->external_spt) and arch/x86/kvm/vmx/tdx.c "
            f"(kvm_tdx->td, vcpu_tdx->vp, tdx_sept_set_private_spte: 4 KiB leaves only)"))
        if m.repeat:
            # the C walk reads the tables only; scan_s adds the modeled
            # external_spt and control-pointer loads: no like-for-like error
            out.scan_model_error = math.nan
        return out


class GmemMaple(Strategy):
    """guest_memfd in-place conversion (Tng/Christopherson, 2026): KVM walks
    each guest_memfd inode's attribute maple tree and translates its private
    indices to PFNs through the page cache (:mod:`.gmem`), plus the PAMT list.
    The trees are built and their scans timed on the maple engine: the
    kernel's lib/maple_tree.c (``maple@kernel``) where the kernel library is
    built, else the ``maple`` emulation; up to ``build_limit_pfns`` of inode
    pages, estimate() beyond.  The translation is modeled: one page-cache
    lookup per folio (order-0: per page).  Finds guest pages only -- in every
    conversion state, as kvm_gmem_convert() stores the tree after the zap."""

    name = "gmem-maple"
    option = ("4c: guest_memfd in-place conversion: per-inode maple trees + page cache + "
              "PAMT list (2026 series)")
    sized_structure = True
    also_resets = ("pamt",)
    build_limit_pfns = TrackerStrategy.build_limit_pfns
    scan_repeat = TrackerStrategy.scan_repeat

    def __init__(self, folio_pages: int = kernel.GMEM_FOLIO_PAGES):
        if folio_pages < 1:
            raise ValueError(f"folio_pages {folio_pages!r} must be >= 1")
        self.folio_pages = int(folio_pages)

    def finds(self, state: str) -> bool:
        # kvm_gmem_convert(): kvm_gmem_zap() (block .. clear), then
        # mas_store_prealloc(): the tree says private until the page is released
        return state in NEEDS_RESET and state != "leaked"

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        """The maple tree of one inode over [0, max_pfn) holding the set (the
        kvm tracker's default TD: GFN = PFN)."""
        return int(gmem.MAPLE.estimate(starts, ends, max_pfn))

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat: int | None = None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        nodes = gmem.inodes(host)
        modeled = gmem.maple_bytes(nodes)
        extents = sum(int(i.private[0].size) for i in nodes)
        lookups = gmem.lookups(nodes, self.folio_pages)
        found = host.kvm_visible                  # the PFNs the translation yields
        xa = gmem.attr_xarray_bytes(nodes)
        notes = (f"{len(nodes)} inodes, {extents:,} private ranges; the trees replace the "
                 f"attribute XArrays ({xa:,} B): net {modeled - xa:+,} B vs today; "
                 f"{lookups:,} page-cache lookups ({self.folio_pages}-page folios)")
        m = ScanMeasurement(ENGINE_NONE, found, modeled, modeled,
                            -(-modeled // kernel.MAPLE_NODE_BYTES),
                            scan_entries(modeled, modeled), extents, lookups,
                            PROV_MODELED + " (trees not built: estimate())", notes,
                            max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        pages = sum(i.pages for i in nodes)
        if not emulate or pages > limit:
            return m
        twin = kernel_twin("maple") if kernel_code else None
        cls = twin or gmem.MAPLE
        repeat = repeat or self.scan_repeat
        built = []
        try:
            t0 = time.perf_counter()
            for i in nodes:                                    # one step per inode
                t = cls(max(i.pages, 1), budget_bytes=budget_bytes)
                built.append(t)
                t.mark_ranges(*i.private)
            populate_s = time.perf_counter() - t0
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                runs = [from_tracker(t) for t in built]
                times.append(time.perf_counter() - t0)
            got = sum(count(r) for r in runs)
            assert got == sum(i.private_pages for i in nodes), \
                f"gmem-maple: the trees hold {got} private indices, expected another count"
            modeled = sum(int(t.memory().modeled_bytes) for t in built)
        except MemoryBudgetError as exc:
            return replace(m, notes=f"{notes}; not built: {exc}")
        finally:
            for t in built:
                if hasattr(t, "close"):
                    t.close()
        engine = kernel_engine() if twin is not None else ENGINE_EMULATION
        what = ("kernel code lib/maple_tree.c (maple@kernel)" if twin is not None
                else "the maple emulation (not kernel code)")
        prov = (f"measured: scan_measured_s (mas_for_each over every inode's tree, {what}, "
                f"median of {repeat}, min-max beside it); modeled: the index -> PFN "
                "translation (one page-cache lookup per folio), added_bytes, scan_s, "
                "clear_s, downtime_s")
        return with_times(m, times, engine=engine, modeled_bytes=modeled,
                          scanned_bytes=modeled,
                          scan_loads=-(-modeled // kernel.MAPLE_NODE_BYTES),
                          entries=scan_entries(modeled, modeled), provenance=prov,
                          measured_pfns=host.max_pfn, populate_s=populate_s)

    def assess(self, host, platform=None, *, cache: dict | None = None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        m = _cached_measure(self, host, cache, **kw)
        found = union(m.found, *(_kept_list(host, k) for k in self.also_resets))
        pages_reset = count(found)
        missed = host.private_pages - overlap_pages(host.private, found)
        out = _outcome(self, platform, m, m.modeled_bytes, pages_reset, missed,
                       "added: the trees (kept anyway once the series merges)")
        if m.repeat:
            # the measurement is the tree walk alone; scan_s adds the modeled
            # translation (page-cache lookups): no like-for-like model error
            out.scan_model_error = math.nan
            out.notes += "; scan_measured_s: the tree walk alone, without the translation"
        return out


class DpamtRefcount(Strategy):
    """Dynamic PAMT (v6, May 2026) as a tracking option: scan the per-2 MiB
    refcount array over [0, max_pfn) and reset every RAM page of each range
    with a non-zero count, plus the PAMT the TDMR list names (:mod:`.dpamt`).
    Free once Dynamic PAMT merges (the kernel keeps the array for it);
    ``added_bytes`` is the array.  Misses guest memory mapped at 2 MiB
    (``guest_2m_fraction``, 0 in mainline; ASSUMED range
    kernel.GUEST_2M_FRACTION_RANGE) and Dynamic PAMT page pairs alone in their
    range; over-clears the non-private pages of every counted range."""

    name = "dpamt-refcount"
    option = ("8: Dynamic PAMT refcounts: reset every 2 MiB range with a non-zero count "
              "(v6 2026)")
    sized_structure = True

    def __init__(self, guest_2m_fraction: float = kernel.GUEST_2M_FRACTION):
        lo, hi = kernel.GUEST_2M_FRACTION_RANGE
        if not lo <= guest_2m_fraction <= hi:
            raise ValueError(f"guest_2m_fraction {guest_2m_fraction!r} must lie in "
                             f"[{lo}, {hi}]")
        self.guest_2m_fraction = float(guest_2m_fraction)

    def finds(self, state: str) -> bool:
        return state in NEEDS_RESET and STATE_FACTS[state][PAMT_REF]

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        return dpamt.refcount_array_bytes(max_pfn)

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        r = dpamt.refcount_scan(host, self.guest_2m_fraction)
        r.check(host)
        hi = dpamt.refcount_scan(host, kernel.GUEST_2M_FRACTION_RANGE[1])
        scanned = r.array_bytes
        entries = scanned // kernel.SCAN_ENTRY_BYTES
        pages_reset = count(r.reset)

        def scan(p):
            return p.scan_s(scanned, 1, entries, r.runs, 0)

        scan_s, clear_s = scan(platform), platform.clear_s(pages_reset * PAGE)
        static = "" if count(host.dynamic_pamt) else (
            "; this host's PAMT is static: refcounts as Dynamic PAMT would keep them")
        out = Outcome(
            self.name, self.option, True, r.array_bytes, scanned, 1, pages_reset, r.missed,
            scan_s, clear_s, scan_s + clear_s, scan_entries=entries, scan_extents=r.runs,
            pages_overcleared=r.overcleared,
            provenance=(PROV_MODELED + ", pages_overcleared; refcounts from the pages that "
                        "call tdx_pamt_get() (Dynamic PAMT v6 patches 03, 07, 09)"),
            notes=(f"{r.counted_blocks.size:,} counted 2 MiB ranges; over-clears "
                   f"{r.overcleared:,} pages (their contents lost: a kdump vmcore lacks "
                   f"them); misses {r.missed_2m:,} 2 MiB-mapped guest + {r.missed_dpamt:,} "
                   f"PAMT-pair pages at guest_2m_fraction {self.guest_2m_fraction:g}; "
                   f"ASSUMED range {kernel.GUEST_2M_FRACTION_RANGE[0]:g}-"
                   f"{kernel.GUEST_2M_FRACTION_RANGE[1]:g}: at "
                   f"{kernel.GUEST_2M_FRACTION_RANGE[1]:g} misses {hi.missed:,}{static}"))
        return _bracket(out, platform, lambda p: scan(p) + p.clear_s(pages_reset * PAGE))


def reads_struct_pages(tracker_cls) -> bool:
    """The tracker's kexec scan reads a struct page per PFN (option 3): its
    scan of an empty structure still reads STRUCT_PAGE_BYTES per PFN."""
    return tracker_cls.estimate_scanned_bytes(0, 1) == kernel.STRUCT_PAGE_BYTES


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
