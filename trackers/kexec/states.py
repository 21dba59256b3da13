"""The states of a page during a private->shared conversion, and what a walker
reads of it in each.

kexec can fire at any step of a conversion (:mod:`.race`).  Each strategy says
which states it still finds (:meth:`.strategy.Strategy.finds`) from what it
reads: KVM's attribute, the mirror SPTE, or the PAMT_4K reference
(:data:`STATE_FACTS`).
"""

from __future__ import annotations

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
