"""KVM's own walk, as Kai Huang's option 4 proposed it: the mirror S-EPT.

Kai Huang (v4 5/5, Apr 2024): each in-kernel TDX user resets the private
pages it manages.  For KVM (v6.16+, arch/x86/kvm/vmx/tdx.c,
arch/x86/kvm/mmu/tdp_mmu.c) those are

* the guest's private pages: the PFNs in the leaf SPTEs of each TD's mirror
  root -- KVM's copy of the S-EPT, which the TDP MMU walks like any page
  table (for_each_tdp_pte()).  Every leaf is 4 KiB: tdx_sept_set_private_spte()
  bugs the VM on any other level;
* the S-EPT pages: each non-root mirror table's ``sp->external_spt``, reached
  from its parent SPTE through the table's struct page (spte_to_child_sp());
  KVM frees none while the TD runs (tdx_sept_free_private_spt());
* the control pages: ``kvm_tdx->td.tdr_page``, ``td.tdcs_pages[]`` and per vCPU
  ``vcpu_tdx->vp.tdvpr_page``, ``vp.tdcx_pages[]``;
* and, from arch/x86, the PAMT the TDMR list names.

This module models that walk's cost from the host's page counts (no structure
is built: every figure is modeled): ``tables`` mirror page-table pages of 4 KiB
(one per S-EPT page plus one root per TD), each read whole (512 SPTEs tested)
and reached by one dependent load; per non-root table two more dependent
loads for ``external_spt`` (its struct page, then its kvm_mmu_page); per TD
and per vCPU two for the control-page pointers.  Nothing is added: KVM keeps
every one of these structures anyway.

What it cannot know (its misses): a page whose reclaim failed -- KVM drops
the pointer (tdx_reclaim_control_page() leaks the page, then
tdx_reclaim_td_control_pages() kfree()s the array; tdx_sept_free_private_spt()
sets ``sp->external_spt = NULL``); a guest page whose mirror SPTE is already
cleared while its S-EPT removal runs (tdp_mmu_set_spte() writes the new SPTE,
then remove_external_spte() -> tdx_sept_remove_private_spte(): range block,
track, page remove, wbinvd, clear); a page being added while its SPTE is
FROZEN_SPTE (set_external_spte_present() freezes it around tdh_mem_page_aug());
and, with Dynamic PAMT, the PAMT page pairs (arch/x86 learns them only from
tdh_phymem_pamt_remove(), a SEAMCALL kexec can no longer make).

The strategy (``kvm-sept``, :class:`KvmSept`): this walk, and where
trackers/linux/directmap.c loads here, the timed walk of page tables shaped as
each TD's mirror S-EPT.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from .. import kernel, linux
from ..base import MemoryBudgetError
from ..extents import count, normalize, overlap_pages, subtract, union
from ..repeats import timed_runs
from .directmap import LEVEL_2M
from .host import KexecHost
from .platform import get_platform
from .states import NEEDS_RESET, SPTE_PRESENT, STATE_FACTS
from .strategy import (BUILD_LIMIT_PFNS, ENGINE_PAGE_TABLES, PROV_MODELED, SCAN_REPEAT,
                       Outcome, ScanMeasurement, Strategy, cached_measure, scan_outcome,
                       with_times)

PAGE = kernel.PAGE_SIZE
SPTES_PER_TABLE = 1 << kernel.SEPT_ENTRIES_SHIFT


@dataclass(frozen=True)
class MirrorWalk:
    """The walk of every TD's mirror S-EPT and control-page pointers (modeled).

    tables: mirror page-table pages walked (S-EPT pages + one root per TD);
    leaf_sptes: present 4 KiB leaves (guest pages found);
    sept_pages, control_pages: pages found through ``external_spt`` and the
        control-page pointers;
    tds, vcpus: owners of control-page pointers.
    """

    tables: int
    leaf_sptes: int
    sept_pages: int
    control_pages: int
    tds: int
    vcpus: int

    @property
    def roots(self) -> int:
        return self.tables - self.sept_pages

    @property
    def scanned_bytes(self) -> int:
        """Every table page whole, a struct page line and a kvm_mmu_page line
        per non-root table, a struct line and the page-pointer array per TD
        and vCPU."""
        owners = self.tds + self.vcpus
        return (self.tables * kernel.PAGE_TABLE_PAGE_BYTES
                + self.sept_pages * kernel.KVM_MIRROR_SP_LOADS * kernel.CACHE_LINE_BYTES
                + owners * kernel.CACHE_LINE_BYTES
                + self.control_pages * kernel.PAGE_POINTER_BYTES)

    @property
    def loads(self) -> int:
        """Dependent loads: one per table page, two per external_spt, two per
        control-page owner."""
        return (self.tables + self.sept_pages * kernel.KVM_MIRROR_SP_LOADS
                + (self.tds + self.vcpus) * kernel.KVM_CONTROL_LOADS_PER_OWNER)

    @property
    def entries(self) -> int:
        """SPTEs tested (every entry of every table) and control pointers read."""
        return self.tables * SPTES_PER_TABLE + self.control_pages

    def check(self) -> None:
        assert self.tables >= self.sept_pages >= 0, "every S-EPT page is a mirror table"
        assert self.leaf_sptes <= (self.tables - self.roots) * SPTES_PER_TABLE or \
            self.tables == 0, "more 4 KiB leaves than SPTE slots below the roots"


def mirror_walk(host: KexecHost) -> MirrorWalk:
    """The walk KVM would make on ``host``: its TDs' mirror S-EPT, from the
    host's S-EPT page count and guest mapping (one root per TD; a host
    without TD views counts one TD when it has private pages)."""
    tds = len(host.tds) or (1 if host.private_pages else 0)
    sept = count(host.sept)
    w = MirrorWalk(tables=sept + tds * kernel.KVM_MIRROR_ROOTS_PER_TD,
                   leaf_sptes=count(host.guest), sept_pages=sept,
                   control_pages=count(host.control), tds=tds, vcpus=host.vcpus)
    return w


class KvmSept(Strategy):
    """Option 4 as Kai Huang proposed it (v4 5/5): each in-kernel TDX user
    resets the private pages it manages.  KVM walks each TD's mirror S-EPT --
    guest pages from the 4 KiB leaf SPTEs, S-EPT pages from each table's
    ``external_spt`` -- and its control-page pointers (TDR, TDCS, TDVPR,
    TDCX); arch/x86 resets the PAMT its TDMR list names (the module doc).
    Adds nothing; bytes, loads and entries are modeled from the structures
    walked.  Where directmap.c loads here and the host fits ``build_limit_pfns``,
    the walk of page tables shaped as each TD's mirror S-EPT is timed
    (:class:`trackers.linux.KernelDirectMap`: the TD's GFNs mapped at 2 MiB,
    every 2 MiB split to a scattered 4 KiB table as the fault path allocates
    them, the soft bit standing for a present leaf); the ``external_spt`` and
    control-pointer loads are in the model only.  Misses what KVM cannot
    know: leaked pages, pages whose mirror SPTE is already cleared while
    their S-EPT removal runs (:data:`.states.STATE_FACTS`), Dynamic PAMT page pairs."""

    name = "kvm-sept"
    option = ("4: KVM resets what it manages: mirror S-EPT walk + control pages + PAMT "
              "(Kai Huang v4 5/5)")
    build_limit_pfns = BUILD_LIMIT_PFNS
    scan_repeat = SCAN_REPEAT

    def finds(self, state: str) -> bool:
        return state in NEEDS_RESET and STATE_FACTS[state][SPTE_PRESENT]

    def measure(self, host: KexecHost, *, emulate: bool = True,
                build_limit_pfns: int | None = None, kernel_code: bool = True,
                repeat=None,
                budget_bytes: int | None = None) -> ScanMeasurement:
        """The modeled walk of ``host`` and, where it can run, the timed C walk
        of page tables of the same shape (one per TD)."""
        w = mirror_walk(host)
        w.check()
        found = union(host.guest, host.sept, host.control, host.pamt_listed)
        m = ScanMeasurement(
            found=found, scanned_bytes=w.scanned_bytes, scan_loads=w.loads, entries=w.entries,
            extents=int(found[0].size),
            provenance=(PROV_MODELED + "; the walk follows arch/x86/kvm/mmu/tdp_mmu.c (mirror "
                        "root, for_each_tdp_pte, sp->external_spt) and arch/x86/kvm/vmx/tdx.c "
                        "(kvm_tdx->td, vcpu_tdx->vp); not built"),
            max_pfn=host.max_pfn)
        limit = self.build_limit_pfns if build_limit_pfns is None else build_limit_pfns
        if not (emulate and kernel_code and host.tds and host.max_pfn <= limit
                and linux.available()[0]):
            return m
        repeat = self.scan_repeat if repeat is None else repeat
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
            times, leaves = timed_runs(
                lambda: sum(sum(int((e - s).sum()) for s, e in dm.scan()) for dm in tables),
                repeat)
            table_bytes = sum(dm.table_bytes for dm in tables)
        except MemoryBudgetError as exc:
            return replace(m, notes=f"walk not built: {exc}")
        finally:
            for dm in tables:
                dm.close()
        prov = (f"measured: C walk of {table_bytes / 2**20:,.1f} MiB of page tables shaped as "
                f"the TDs' mirror S-EPT (trackers/linux/directmap.c, 4 KiB tables scattered), "
                f"median of {len(times)} runs, min-max beside it; modeled: the external_spt and "
                "control-pointer loads, scanned_bytes, scan_loads, pages_reset, "
                "pages_missed, scan_s, clear_s, downtime_s")
        notes = ("" if leaves == w.leaf_sptes else
                 f"the TD views map {leaves:,} leaves, the host's guest set {w.leaf_sptes:,}")
        return with_times(m, times, engine=ENGINE_PAGE_TABLES, provenance=prov, notes=notes,
                          measured_pfns=host.max_pfn, populate_s=populate_s)

    def assess(self, host: KexecHost, platform=None, *, cache: dict | None = None,
               **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        m = cached_measure(self, host, cache, **kw)
        w = mirror_walk(host)
        pages_reset = count(m.found)
        missed = host.private_pages - overlap_pages(host.private, m.found)
        out = scan_outcome(self, platform, m, 0, pages_reset, missed, (
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
