"""Option 2 (``pte-softbit``): a software "TDX private" bit in the direct-map PTE.

The x86-64 direct map as the kernel builds it (all modeled):

* init_mem_mapping() -> init_range_memory_mapping() maps every memblock
  memory region (merged RAM ranges); split_mem_range() (arch/x86/mm/init.c)
  cuts each range [s, e) by alignment into at most five pieces:
  4K head up to 2 MiB alignment, 2M up to 1 GiB alignment, 1G in the middle
  (only with X86_FEATURE_GBPAGES), 2M tail, 4K tail;
* kernel_physical_mapping_init() (arch/x86/mm/init_64.c) fills one PUD page
  per 512 GiB touched, one PMD page per 1 GiB touched that is not one 1G
  mapping, one PTE page per 2 MiB touched that is not a 2M or 1G mapping.

A per-4K bit lives only in a 4 KiB PTE, so ANY private page inside a large
mapping forces that mapping down to 4K: set_memory.c split_large_page()
allocates one 4 KiB page-table page per split -- a 1G mapping holding a
private page becomes 512 2M mappings (one PMD page), and every 2 MiB holding
a private page becomes 512 4K PTEs (one PTE page).  Splits were one-way until
cpa_collapse_large_pages() (Dec 2024); pass the pages ever private to model
an older kernel, the pages private now for a collapsing one.

The kexec scan walks every page-table page of the direct map (PUD, PMD, PTE
pages; the one PGD page is shared with the kernel and not counted): bytes
read = table pages x 4 KiB, each page reached by one dependent load of its
parent entry.  Not modeled: TLB pressure after splitting (Kai: "extra TLB
flushes"), and that SOFTW1-4 are all taken (the bit does not exist today).

Invariant: every figure is a count over extents and slot runs; no per-page
Python step, so a 16 TiB map costs milliseconds.

The strategy (:class:`PteSoftbit`): the splits modeled here, and where the C
layout of the direct map's page tables loads (trackers/linux/directmap.c), the
walk of those tables timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .. import kernel, linux
from ..linux.pages import LEVEL_1G, LEVEL_2M, LEVEL_4K, DirectMapCounts
from ..base import MemoryBudgetError
from ..extents import (EMPTY, Extents, normalize, count, intersect, overlap_pages, slot_extents,
                       subtract)
from .host import KexecHost
from .platform import get_platform
from .strategy import (BUILD_LIMIT_PFNS, ENGINE_PAGE_TABLES, PROV_MODELED, SCAN_REPEAT, Outcome,
                       ScanMeasurement, Strategy, cached_measure, scan_outcome)
from .platform import STRUCTURE_PAGE_TABLES

SHIFT_2M = 9                        # log2(kernel.PAGES_PER_2M)
SHIFT_1G = 18                       # log2(kernel.PAGES_PER_1G)
SHIFT_512G = 27                     # log2(kernel.PAGES_PER_512G)


def split_mem_range(ram_starts, ram_ends, *, gbpages: bool = True):
    """Mappings (starts, ends, level) for RAM PFN ranges, as split_mem_range().

    Ranges are merged first (memblock merges adjacent RAM).  Returns arrays
    sorted by start; level is LEVEL_4K / LEVEL_2M / LEVEL_1G.  Without
    gbpages the 1G pieces are mapped with 2M pages.
    """
    s, e = normalize(ram_starts, ram_ends)
    p2, p1 = kernel.PAGES_PER_2M, kernel.PAGES_PER_1G

    def up(x, a):
        return (x + a - 1) // a * a

    def down(x, a):
        return x // a * a

    # the five cuts, each clamped so the pieces are ordered and within [s, e)
    c1 = np.minimum(up(s, p2), e)                       # end of 4K head
    c2 = np.maximum(c1, np.minimum(up(c1, p1), down(e, p2)))   # end of 2M head
    c3 = np.maximum(c2, down(e, p1))                    # end of 1G middle
    c3 = np.where(up(c2, p1) <= c3, c3, c2)             # 1G only when aligned room
    c4 = np.maximum(c3, down(e, p2))                    # end of 2M tail
    bounds = [(s, c1, LEVEL_4K), (c1, c2, LEVEL_2M), (c2, c3, LEVEL_1G),
              (c3, c4, LEVEL_2M), (c4, e, LEVEL_4K)]
    ms = np.concatenate([b[0] for b in bounds])
    me = np.concatenate([b[1] for b in bounds])
    lv = np.concatenate([np.full(b[0].size, b[2], np.int8) for b in bounds])
    if not gbpages:
        lv[lv == LEVEL_1G] = LEVEL_2M
    keep = ms < me
    ms, me, lv = ms[keep], me[keep], lv[keep]
    order = np.argsort(ms, kind="stable")
    return ms[order], me[order], lv[order]


@dataclass(frozen=True)
class SoftbitSplit:
    """What option 2 costs for one private set (all modeled).

    pmd_pages_added: 1G mappings split to 2M (one PMD page each).
    pte_pages_added: 2M regions split to 4K (one PTE page each), whether the
        2M mapping was original or came from a 1G split.
    added_bytes: page-table pages allocated by the splits x 4 KiB.
    scanned_bytes / scan_loads: the kexec walk over every table page.
    pages_found: private pages the walk finds (those in the direct map).
    """

    before: DirectMapCounts
    after: DirectMapCounts
    pmd_pages_added: int
    pte_pages_added: int
    pages_found: int

    @property
    def added_bytes(self) -> int:
        return (self.pmd_pages_added + self.pte_pages_added) * kernel.PAGE_TABLE_PAGE_BYTES

    @property
    def scanned_bytes(self) -> int:
        return self.after.table_bytes

    @property
    def scan_loads(self) -> int:
        return self.after.table_pages


class DirectMap:
    """The direct map over a host's RAM ranges (modeled)."""

    def __init__(self, ram_starts, ram_ends, *, gbpages: bool = True):
        self.gbpages = gbpages
        self.ram: Extents = normalize(ram_starts, ram_ends)
        self.starts, self.ends, self.levels = split_mem_range(*self.ram, gbpages=gbpages)
        self._by_level: dict[int, Extents] = {}
        for lv in (LEVEL_4K, LEVEL_2M, LEVEL_1G):
            m = self.levels == lv
            self._by_level[lv] = normalize(self.starts[m], self.ends[m]) if m.any() else EMPTY

    def level(self, lv: int) -> Extents:
        """PFN extents mapped at level ``lv``."""
        return self._by_level[lv]

    def counts(self) -> DirectMapCounts:
        """The direct map as built at boot."""
        m4k, m2m, m1g = (self._by_level[lv] for lv in (LEVEL_4K, LEVEL_2M, LEVEL_1G))
        all_ext = normalize(self.starts, self.ends)
        return DirectMapCounts(
            pages_4k=count(m4k),
            mappings_2m=count(m2m) >> SHIFT_2M,
            mappings_1g=count(m1g) >> SHIFT_1G,
            pud_pages=count(slot_extents(all_ext, SHIFT_512G)),
            pmd_pages=count(slot_extents(
                normalize(np.concatenate((m4k[0], m2m[0])), np.concatenate((m4k[1], m2m[1]))),
                SHIFT_1G)),
            pte_pages=count(slot_extents(m4k, SHIFT_2M)),
        )

    def split_for(self, private: Extents) -> SoftbitSplit:
        """The splits a per-4K bit on every page of ``private`` forces.

        ``private`` is a normalized extent set (pages private now, or ever
        private for a kernel without cpa_collapse_large_pages()).
        """
        before = self.counts()
        m2m, m1g = self._by_level[LEVEL_2M], self._by_level[LEVEL_1G]
        p2 = slot_extents(private, SHIFT_2M)          # 2 MiB slots holding a private page
        p1 = slot_extents(private, SHIFT_1G)          # 1 GiB slots holding one
        # large mappings are aligned to their size, so their slot runs are exact
        s2_in_2m = overlap_pages(p2, (m2m[0] >> SHIFT_2M, m2m[1] >> SHIFT_2M))
        s2_in_1g = overlap_pages(p2, (m1g[0] >> SHIFT_2M, m1g[1] >> SHIFT_2M))
        pmd_added = overlap_pages(p1, (m1g[0] >> SHIFT_1G, m1g[1] >> SHIFT_1G))
        pte_added = s2_in_2m + s2_in_1g
        after = DirectMapCounts(
            pages_4k=before.pages_4k + pte_added * kernel.PTRS_PER_PTE,
            mappings_2m=(before.mappings_2m - s2_in_2m
                         + pmd_added * kernel.PTRS_PER_PMD - s2_in_1g),
            mappings_1g=before.mappings_1g - pmd_added,
            pud_pages=before.pud_pages,
            pmd_pages=before.pmd_pages + pmd_added,
            pte_pages=before.pte_pages + pte_added,
        )
        return SoftbitSplit(before=before, after=after, pmd_pages_added=pmd_added,
                            pte_pages_added=pte_added,
                            pages_found=overlap_pages(private, self.ram))


class PteSoftbit(Strategy):
    """Option 2: a software bit in each direct-map PTE (the module doc)."""

    name = "pte-softbit"
    option = "2: software bit in the direct-map PTE (splits large mappings)"
    seamcall_hooked = True
    sized_structure = True
    #: the page tables are built and walked as the trackers are (up to 2 TiB)
    build_limit_pfns = BUILD_LIMIT_PFNS
    scan_repeat = SCAN_REPEAT

    def __init__(self, *, gbpages: bool = True, collapse: bool = True):
        self.gbpages = gbpages
        self.collapse = collapse

    def scan_structure(self, engine: str) -> str | None:
        """directmap.c's page tables: the only engine of this walk."""
        return STRUCTURE_PAGE_TABLES

    def added_bytes_for_set(self, max_pfn, starts, ends) -> int:
        """Page-table pages the splits add over RAM [0, max_pfn)."""
        ram = (np.array([0], np.int64), np.array([max_pfn], np.int64))
        return int(DirectMap(*ram, gbpages=self.gbpages).split_for((starts, ends)).added_bytes)

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat=None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """The splits for ``host`` (modeled) and, where the library that lays
        the direct map's page tables out in C loads here
        (:class:`trackers.linux.KernelDirectMap`), ``emulate`` is set, the host
        fits ``build_limit_pfns`` and its tables ``budget_bytes`` (default the
        memory budget), the walk of those tables timed as often as ``repeat``
        asks (trackers/repeats.py; default ``scan_repeat``)."""
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
        m = ScanMeasurement(found=found, modeled_bytes=split.added_bytes,
                            scanned_bytes=split.scanned_bytes, scan_loads=split.scan_loads,
                            entries=entries, extents=int(found[0].size),
                            provenance=PROV_MODELED, notes=notes, max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        if not (emulate and kernel_code and host.max_pfn <= limit and linux.available()[0]):
            return m
        repeat = self.scan_repeat if repeat is None else repeat
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
        m = cached_measure(self, host, cache, **kw)
        pages_reset = count(m.found)
        missed = host.private_pages - pages_reset
        return scan_outcome(self, platform, m, m.modeled_bytes, pages_reset, missed)
