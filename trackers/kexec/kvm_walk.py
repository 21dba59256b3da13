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
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import kernel
from ..extents import count
from .host import KexecHost

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
