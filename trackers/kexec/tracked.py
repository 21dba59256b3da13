"""The tracker scans: the kexec strategies whose structure is a registered tracker.

* :class:`TrackerStrategy` -- option 1 and its variants: the kernel's SEAMCALL
  hooks mark a page before it becomes private and unmark it after it is
  cleared; kexec scans the tracker and resets what it finds;
* :class:`StructPageStrategy` -- option 3 (``pageflags``): a flag in every
  struct page, its scan timed on the C layout of struct pages where that loads;
* :class:`KvmStrategy` -- ``kvm-attr`` (option 4 narrowed): KVM walks its
  per-TD attribute XArrays (the ``kvm`` tracker) and guest_memfd, plus the PAMT
  list the kernel keeps (TDMRs): no hooks, nothing added, guest pages only.

:func:`reads_struct_pages` says which trackers' scans read a struct page per
PFN (the registry gives those a StructPageStrategy).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

from .. import kernel, linux
from ..base import MemoryBudgetError, NotRepresentable, memory_budget
from ..extents import count, count_blocks_touched, from_tracker, overlap_pages, union
from ..repeats import timed_runs
from .host import KexecHost
from .platform import get_platform
from .states import ATTR_PRIVATE, NEEDS_RESET, STATE_FACTS
from ..registry import TWINS
from .strategy import (BUILD_LIMIT_PFNS, ENGINE_EMULATION, ENGINE_STRUCT_PAGES, PROV_MODELED,
                       SCAN_REPEAT, Outcome, ScanMeasurement, Strategy, cached_measure, kept_list,
                       kernel_engine, kernel_twin, scan_entries, scan_outcome)
from .platform import STRUCTURE_STRUCT_PAGES


def _timed_scans(engine, repeat) -> tuple[list[float], tuple]:
    """Whole scans of a tracker, each timed (perf_counter around the loop that
    consumes extents()), as many as ``repeat`` asks (trackers/repeats.py); the
    runs the last one found."""
    return timed_runs(lambda: from_tracker(engine), repeat)


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
    build_limit_pfns = BUILD_LIMIT_PFNS
    scan_repeat = SCAN_REPEAT
    #: per-page lookups the scan makes in another structure, per page found
    #: (kvm: a guest_memfd lookup per private GFN)
    lookups_per_page = 0
    view = "hooks"          # what the kernel feeds it: see KexecHost.feed_tracker

    def __init__(self, tracker_cls):
        self.tracker_cls = tracker_cls
        self.name = tracker_cls.name
        self.option = tracker_cls.option or f"tracker {tracker_cls.name}"

    @property
    def measure_key(self) -> tuple:
        """The tracker, what feeds it and how it is measured: ``bitmap``,
        ``fallback-bitmap`` and ``parallel-reset`` share one build."""
        return (type(self).measure.__qualname__, self.tracker_cls.name, self.view)

    def added_bytes(self, modeled_bytes: int, host: KexecHost | None = None) -> int:
        """Bytes the option adds given its structure's modeled bytes."""
        return int(modeled_bytes)

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        return self.added_bytes(self.tracker_cls.estimate(starts, ends, max_pfn))

    def scan_structure(self, engine: str) -> str | None:
        """The tracker's @kernel twin where one exists, unless the emulation ran."""
        name = self.tracker_cls.name
        return name if engine == ENGINE_EMULATION or name not in TWINS else TWINS[name].name

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat=None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """Build the structure for ``host`` and time its whole scan as often as
        ``repeat`` asks (an int: that many runs; a repeats.Repeats rule;
        default ``scan_repeat``), or estimate when it is not built: the
        ``@kernel`` twin where one exists and ``kernel_code`` allows, else the
        emulation, within ``budget_bytes`` of host memory (default
        :func:`trackers.base.memory_budget`).  Raises NotRepresentable where
        the structure cannot hold the host's PFNs."""
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        repeat = self.scan_repeat if repeat is None else repeat
        notes = ""
        if emulate and host.max_pfn > limit:
            notes = f"not built: max_pfn {host.max_pfn} over the build limit {limit}"
        elif emulate:
            try:
                return self._built(host, kernel_code, repeat, budget_bytes)
            except MemoryBudgetError as exc:
                notes = f"not built: {exc}"
        return self._estimated(host, notes)

    def _built(self, host: KexecHost, kernel_code: bool, repeat,
               budget_bytes: int | None = None) -> ScanMeasurement:
        twin = kernel_twin(self.tracker_cls.name) if kernel_code else None
        cls = twin or self.tracker_cls
        # one-time costs stay out of populate_s: the emulation's numba compile, the
        # kernel library's load on a process's first twin (0.4-1.3 s here)
        warm = cls(1 << 12)
        try:
            warm.mark_ranges([1, 64], [3, 200])
            from_tracker(warm)
        finally:
            if hasattr(warm, "close"):
                warm.close()
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
        what = (f"median of {len(times)} runs, min-max beside it; modeled: added_bytes, scan_s, "
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
        prov += ("; bytes: memory() of the structure as the host's replayed events left it"
                 if host.feed is not None else "; bytes: memory() of the set built at once")
        return ScanMeasurement(
            engine=engine, found=found, modeled_bytes=int(mem.modeled_bytes),
            scanned_bytes=int(mem.scanned_bytes), scan_loads=int(mem.scan_loads),
            entries=scan_entries(mem.modeled_bytes, mem.scanned_bytes),
            extents=int(found[0].size), lookups=self.lookups_per_page * count(found),
            provenance=prov, seconds=statistics.median(times), seconds_min=min(times),
            seconds_max=max(times), repeat=len(times), max_pfn=host.max_pfn,
            measured_pfns=host.max_pfn, populate_s=populate_s)

    def _estimated(self, host: KexecHost, notes: str = "") -> ScanMeasurement:
        cls = self.tracker_cls
        found = self.fallback_found(host)
        modeled_bytes = int(cls.estimate(*found, host.max_pfn))
        scanned = cls.estimate_scanned_bytes(modeled_bytes, host.max_pfn)
        loads = -(-modeled_bytes // cls.scan_node_bytes) if cls.scan_node_bytes else 0
        return ScanMeasurement(
            found=found, modeled_bytes=modeled_bytes, scanned_bytes=int(scanned),
            scan_loads=int(loads), entries=scan_entries(modeled_bytes, scanned),
            extents=int(found[0].size), lookups=self.lookups_per_page * count(found),
            provenance=PROV_MODELED + " (structure not built: estimate())", notes=notes,
            max_pfn=host.max_pfn)

    def assess(self, host: KexecHost, platform=None, *, emulate: bool = True,
               build_limit_pfns: int | None = None, kernel_code: bool = True,
               cache: dict | None = None, repeat=None) -> Outcome:
        """The row for ``host`` on ``platform``.  ``kernel_code=False`` times
        the emulation even where a twin exists.  ``cache`` (a dict the caller
        keeps) holds the measurement across platforms and the strategies that
        read one structure: the same host is then built and timed once.
        ``repeat``: how often its scan is timed (measure())."""
        platform = get_platform(platform or "this-machine")
        m = cached_measure(self, host, cache, emulate=emulate,
                           build_limit_pfns=build_limit_pfns, kernel_code=kernel_code,
                           **({} if repeat is None else {"repeat": repeat}))
        if isinstance(m, NotRepresentable):
            return self.not_representable(m)
        pages_reset, missed = self._coverage(host, m, cache)
        return scan_outcome(self, platform, m, self.added_bytes(m.modeled_bytes, host),
                            pages_reset, missed)

    def _coverage(self, host: KexecHost, m: ScanMeasurement, cache: dict | None
                  ) -> tuple[int, int]:
        """(pages reset, private pages missed) of measurement ``m`` on ``host``:
        what it found and the lists the kernel keeps anyway (the TDMR list: a
        few entries, not counted).  Kept in ``cache`` beside the measurement:
        it is the same on every platform and at every parameter the
        sensitivity sweeps (an intersection of two sets of 10^5-10^6 runs,
        0.1 s each, was 80 % of a sweep)."""
        key = ("coverage", self.also_resets, id(host), id(m))
        hit = None if cache is None else cache.get(key)
        if hit is None:
            found = union(m.found, *(kept_list(host, k) for k in self.also_resets))
            hit = (count(found), host.private_pages - overlap_pages(host.private, found))
            if cache is not None:
                cache[key] = hit
        return hit

    def fallback_found(self, host: KexecHost):
        return host.private

    def not_representable(self, exc: NotRepresentable) -> Outcome:
        """The row of an option that does not exist on this host: its
        structure cannot hold the host's PFNs (numbers NaN, notes say why)."""
        nan = math.nan
        return Outcome(strategy=self.name, option=self.option, kexec_allowed=True,
                       added_bytes=nan, scanned_bytes=nan, scan_loads=nan, pages_reset=nan,
                       pages_missed=nan,
                       provenance="none: the structure cannot hold this host's PFNs",
                       notes=f"not representable: {exc}", representable=False)


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

    def scan_structure(self, engine: str) -> str | None:
        """pages.c's struct pages, unless the emulation ran."""
        return self.tracker_cls.name if engine == ENGINE_EMULATION else STRUCTURE_STRUCT_PAGES

    def _built(self, host: KexecHost, kernel_code: bool, repeat,
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
            engine=ENGINE_STRUCT_PAGES, found=found, scanned_bytes=scanned,
            entries=scan_entries(0, scanned), extents=int(found[0].size),
            provenance=(f"{st.provenance}; modeled: added_bytes, scan_s, clear_s, downtime_s; "
                        "pages_reset, pages_missed: the private pages the hooks flag"),
            seconds=st.seconds, seconds_min=st.seconds_min, seconds_max=st.seconds_max,
            repeat=st.repeat, max_pfn=host.max_pfn, measured_pfns=st.measured_pfns,
            populate_s=elapsed - st.seconds / st.scale * st.repeat)


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
    a guest page only while its attribute says private (:data:`.states.STATE_FACTS`),
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


def reads_struct_pages(tracker_cls) -> bool:
    """The tracker's kexec scan reads a struct page per PFN (option 3): its
    scan of an empty structure still reads STRUCT_PAGE_BYTES per PFN."""
    return tracker_cls.estimate_scanned_bytes(0, 1) == kernel.STRUCT_PAGE_BYTES
