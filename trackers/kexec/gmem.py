"""guest_memfd's per-inode maple trees (in-place conversion), read at kexec.

guest_memfd in-place conversion (Ackerley Tng / Sean Christopherson, RFC v2
Feb 2026 ... v8 Jun 2026, not merged) moves the PRIVATE attribute from the
per-VM ``mem_attr_array`` XArray into each guest_memfd inode: a maple tree
``gi->attributes`` over every index of the inode (kvm_gmem_init_inode()
stores one range over ``0 .. size-1``; kvm_gmem_convert() stores each
converted range).  Private and shared runs alternate as ranges -- the shape
the ``maple`` tracker holds for the private runs with NULL gaps between them,
so its estimate() and its ``@kernel`` twin (lib/maple_tree.c) are the tree.

One inode per TD RAM block: QEMU's q35 guest RAM is one RAM block whose
guest_memfd offsets run in GFN order over the two memslots (below the 2-4 GiB
hole, then from 4 GiB): :meth:`trackers.kexec.host.TdView.index_runs`.  A
host without TD views is one inode over ``[0, max_pfn)`` holding
``kvm_visible`` (GFN = PFN, the kvm tracker's default TD).

The walk (``gmem-maple``): per inode, iterate the maple tree's private
ranges (mas_for_each over the entries), and translate each private index to
its PFN through the inode's page cache -- filemap_get_folio() and
folio_file_pfn() as kvm_gmem_get_pfn() does: one lookup per *folio*
(order-0 today: one per page; ``folio_pages`` for HugeTLB-backed inodes).

Order of a private->shared conversion (kvm_gmem_convert()): the S-EPT is
zapped first (kvm_gmem_zap(): block, track, remove, wbinvd, clear), the maple
tree is stored last (mas_store_prealloc()), and the folio stays in the page
cache (conversion is in place): so the tree still says private for every
page not yet cleared.

The strategy (``gmem-maple``, :class:`GmemMaple`): the trees built and their
walk timed on the maple engine, the translation modeled.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from .. import kernel
from ..base import MemoryBudgetError
from ..extents import Extents, count, from_tracker, normalize, overlap_pages, union
from ..registry import TRACKERS
from ..repeats import timed_runs
from .host import KexecHost
from .platform import get_platform
from .states import NEEDS_RESET
from .strategy import (BUILD_LIMIT_PFNS, ENGINE_EMULATION, PROV_MODELED, SCAN_REPEAT, Outcome,
                       ScanMeasurement, Strategy, cached_measure, kept_list, kernel_engine,
                       kernel_twin, scan_entries, scan_outcome, with_times)

MAPLE = TRACKERS["maple"]
#: the per-GFN XArray the maple trees replace is shaped as the ``xarray``
#: tracker's (one value entry per private index: kvm_vm_set_mem_attributes())
ATTR_XARRAY = TRACKERS["xarray"]


@dataclass(frozen=True)
class Inode:
    """One guest_memfd inode: its size in pages and its private index runs."""

    pages: int
    private: Extents

    @property
    def private_pages(self) -> int:
        return count(self.private)


def inodes(host: KexecHost) -> list[Inode]:
    """The guest_memfd inodes of ``host``'s TDs (one per TD RAM block)."""
    if host.tds:
        return [Inode(t.pages, t.index_runs()) for t in host.tds]
    return [Inode(host.max_pfn, normalize(*host.kvm_visible))]


def maple_bytes(nodes: list[Inode]) -> int:
    """Modeled bytes of every inode's attribute maple tree."""
    return sum(int(MAPLE.estimate(*i.private, max(i.pages, 1))) for i in nodes)


def attr_xarray_bytes(nodes: list[Inode]) -> int:
    """Modeled bytes of the per-VM attribute XArrays the trees replace (one
    value entry per private GFN; indexed here by inode offset)."""
    return sum(int(ATTR_XARRAY.estimate(*i.private, max(i.pages, 1))) for i in nodes)


def lookups(nodes: list[Inode], folio_pages: int = kernel.GMEM_FOLIO_PAGES) -> int:
    """Page-cache lookups of the index -> PFN translation: one per folio."""
    if folio_pages < 1:
        raise ValueError(f"folio_pages {folio_pages!r} must be >= 1")
    return sum(-(-i.private_pages // folio_pages) for i in nodes)


class GmemMaple(Strategy):
    """guest_memfd in-place conversion (Tng/Christopherson, 2026): KVM walks
    each guest_memfd inode's attribute maple tree and translates its private
    indices to PFNs through the page cache (the module doc), plus the PAMT list.
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
    build_limit_pfns = BUILD_LIMIT_PFNS
    scan_repeat = SCAN_REPEAT

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
        return int(MAPLE.estimate(starts, ends, max_pfn))

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat=None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        nodes = inodes(host)
        modeled = maple_bytes(nodes)
        extents = sum(int(i.private[0].size) for i in nodes)
        cache_lookups = lookups(nodes, self.folio_pages)
        found = host.kvm_visible                  # the PFNs the translation yields
        xa = attr_xarray_bytes(nodes)
        notes = (f"{len(nodes)} inodes, {extents:,} private ranges; the trees replace the "
                 f"attribute XArrays ({xa:,} B): net {modeled - xa:+,} B vs today; "
                 f"{cache_lookups:,} page-cache lookups ({self.folio_pages}-page folios)")
        m = ScanMeasurement(found=found, modeled_bytes=modeled, scanned_bytes=modeled,
                            scan_loads=-(-modeled // kernel.MAPLE_NODE_BYTES),
                            entries=scan_entries(modeled, modeled), extents=extents,
                            lookups=cache_lookups,
                            provenance=PROV_MODELED + " (trees not built: estimate())",
                            notes=notes, max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        pages = sum(i.pages for i in nodes)
        if not emulate or pages > limit:
            return m
        twin = kernel_twin("maple") if kernel_code else None
        cls = twin or MAPLE
        repeat = self.scan_repeat if repeat is None else repeat
        built = []
        try:
            t0 = time.perf_counter()
            for i in nodes:                                    # one step per inode
                t = cls(max(i.pages, 1), budget_bytes=budget_bytes)
                built.append(t)
                t.mark_ranges(*i.private)
            populate_s = time.perf_counter() - t0
            times, runs = timed_runs(lambda: [from_tracker(t) for t in built], repeat)
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
                f"median of {len(times)} runs, min-max beside it); modeled: the index -> PFN "
                "translation (one page-cache lookup per folio), added_bytes, scan_s, "
                "clear_s, downtime_s")
        return with_times(m, times, engine=engine, modeled_bytes=modeled,
                          scanned_bytes=modeled,
                          scan_loads=-(-modeled // kernel.MAPLE_NODE_BYTES),
                          entries=scan_entries(modeled, modeled), provenance=prov,
                          measured_pfns=host.max_pfn, populate_s=populate_s)

    def assess(self, host, platform=None, *, cache: dict | None = None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        m = cached_measure(self, host, cache, **kw)
        found = union(m.found, *(kept_list(host, k) for k in self.also_resets))
        pages_reset = count(found)
        missed = host.private_pages - overlap_pages(host.private, found)
        out = scan_outcome(self, platform, m, m.modeled_bytes, pages_reset, missed,
                           "added: the trees (kept anyway once the series merges)")
        if m.repeat:
            # the measurement is the tree walk alone; scan_s adds the modeled
            # translation (page-cache lookups): no like-for-like model error
            out.scan_model_error = math.nan
            out.notes += "; scan_measured_s: the tree walk alone, without the translation"
        return out
