"""What bytes and seconds do not say about each option, with a source per cell.

:data:`QUALITIES` holds, per option (today's strategy names and the names of
earlier reports' CSVs), its allocation on the conversion path, whether it
runs in crash kexec (after the other CPUs are stopped by NMI), the kernel
files it touches and its costs not counted in bytes; each cell names its
source: a kernel file and function, a commit, or an LKML message
(docs/kernel-facts.md, "Costs not counted in bytes").  The recommendation
table (:mod:`.recommend`) puts them beside the numbers; the decision rule
ranks on ``crash`` and ``allocation``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Qualities:
    """What bytes and seconds do not say about one option; each with its source."""

    allocation: str
    allocation_source: str
    crash: str                  # starts "yes" / "no" / "n/a"
    crash_source: str
    touch_points: str
    touch_source: str
    unbyte: str                 # costs not counted in bytes
    unbyte_source: str


_HOOKS = ("arch/x86/kvm/vmx/tdx.c SEAMCALL sites: mark before tdh_mng_create/addcx, "
          "tdh_vp_create/addcx, tdh_mem_sept_add, tdh_mem_page_add/aug; unmark after "
          "tdx_quirk_reset_page() of a reclaimed page; arch/x86/virt/vmx/tdx/tdx.c: "
          "allocate at init, scan + reset in the kexec path (machine_kexec_prepare() "
          "refusal dropped)")
_HOOKS_SRC = ("arch/x86/kvm/vmx/tdx.c; arch/x86/virt/vmx/tdx/tdx.c; Kai Huang, 18 Apr 2024, "
              "[PATCH v4 5/5] x86/virt/tdx: Add TDX memory reset notifier")
_NMI = ("kernel/kexec_core.c __crash_kexec() -> arch/x86/kernel/crash.c "
        "native_machine_crash_shutdown(): other CPUs stopped by NMI "
        "(crash_smp_send_stop()), possibly holding any lock")
_KVM_CRASH = ("no: reaching the TDs takes the kvm_lock mutex (vm_list) and each VM's "
              "locks, which a CPU stopped by NMI may hold; Kai Huang's v4 runs it from a "
              "reboot notifier, which crash kexec never calls")
_KVM_CRASH_SRC = ("virt/kvm/kvm_main.c kvm_lock, vm_list; kernel/kexec_core.c kernel_kexec() "
                  "(kernel_restart_prepare(): reboot notifiers) vs __crash_kexec() (none)")
_REFUSE = Qualities(
    "none", "arch/x86/kernel/machine_kexec_64.c machine_kexec_prepare()",
    "n/a: kexec and kdump are refused at load (-EOPNOTSUPP)",
    "b18651f70ce0 x86/kexec: Disable kexec/kdump on platforms with TDX partial "
    "write erratum",
    "none (mainline 6.18 to 7.1; removed by 5b25f249be32 in 7.2)",
    "b18651f70ce0; 5b25f249be32",
    "no kexec and no kdump on Sapphire/Emerald Rapids, even with TDX never initialised: "
    "a crash dump needs a firmware reboot", "b18651f70ce0 (docs/kernel-facts.md)")
_SYS_DISABLE_SRC = ("b7d2173946ef, 5b25f249be32 (mainline 7.2); arch/x86/virt/vmx/tdx/tdx.c "
                    "tdx_sys_disable(), tdx_shutdown(); arch/x86/kernel/crash.c")
_MAINLINE = Qualities(
    "none", _SYS_DISABLE_SRC,
    "yes, and unbounded: native_machine_crash_shutdown() calls it after "
    "crash_smp_send_stop(), interrupts off, looping while the module returns "
    "TDX_INTERRUPTED_RESUMABLE or TDX_SYS_BUSY",
    _SYS_DISABLE_SRC + "; " + _NMI,
    "none added: mainline since 7.2 (tdx_shutdown() syscore, "
    "native_machine_crash_shutdown())", _SYS_DISABLE_SRC,
    "needs a TDX module with TDH.SYS.DISABLE (leaf 69; TDX_FEATURES0 bit 53 is not "
    "checked); one CPU whatever the host's size; runs on every TDX host, erratum or not; "
    "the next kernel can initialise TDX again",
    _SYS_DISABLE_SRC + "; docs/kernel-facts.md Mainline today")
_KVM_ATTR = Qualities(
    "none added: KVM's kvm_vm_set_mem_attributes() xa_reserve()s every GFN first and fails "
    "the ioctl with -ENOMEM before changing anything",
    "virt/kvm/kvm_main.c kvm_vm_set_mem_attributes()",
    _KVM_CRASH, _KVM_CRASH_SRC,
    "arch/x86/kvm/vmx/tdx.c (a reset callback walking each TD), virt/kvm/kvm_main.c "
    "(mem_attr_array walk), virt/kvm/guest_memfd.c kvm_gmem_get_pfn(), "
    "arch/x86/virt/vmx/tdx/tdx.c (the notifier chain)",
    "Kai Huang, 18 Apr 2024, [PATCH v4 5/5] x86/virt/tdx: Add TDX memory reset notifier",
    "none in bytes; misses pages in a transitional state and leaked pages (race.csv); "
    "must follow KVM and TDX module changes (Isaku Yamahata, 31 May 2024)",
    "Isaku Yamahata, 31 May 2024, reply to [PATCH v4 5/5]")

#: option -> its qualities (today's names and the names of earlier reports' CSVs)
QUALITIES: dict[str, Qualities] = {
    "bitmap": Qualities(
        "none: bitmap_set()/bitmap_clear() on a bitmap over [0, max_pfn) allocated once "
        "at TDX init (memory hot-add must grow it)",
        "include/linux/bitmap.h bitmap_set(); as arch/x86/virt/vmx/tdx/tdx.c "
        "tdmr_get_pamt() sizes the PAMT once",
        "yes: find_next_bit() reads a static array: no lock, no allocation, no RCU",
        "lib/find_bit.c _find_next_bit(); " + _NMI,
        _HOOKS, _HOOKS_SRC,
        "none: no page flag, no direct-map split; atomic set_bit per 4 KiB page marked",
        "include/linux/bitmap.h"),
    "xarray": Qualities(
        "can fail: xa_store() allocates xa_nodes (GFP_KERNEL, -ENOMEM); the hook then "
        "fails the SEAMCALL path before the page turns private",
        "lib/xarray.c xa_store(), xas_nomem()",
        "yes: xas_for_each() needs only rcu_read_lock(), no xa_lock and no grace period; "
        "a store stopped midway leaves the tree RCU-consistent",
        "lib/xarray.c xas_find(); Documentation/core-api/xarray.rst; " + _NMI,
        _HOOKS, _HOOKS_SRC,
        "none: no page flag, no direct-map split", "lib/xarray.c"),
    "xarray-multi": Qualities(
        "can fail: xa_store_range() allocates xa_nodes (GFP_KERNEL, -ENOMEM); a 4 KiB "
        "conversion inside a multi-index entry splits it (allocates)",
        "lib/xarray.c xa_store_range(), xas_split_alloc()",
        "yes: xas_for_each() under rcu_read_lock() only, as the XArray",
        "lib/xarray.c xas_find(); " + _NMI,
        _HOOKS + "; CONFIG_XARRAY_MULTI", _HOOKS_SRC,
        "none: no page flag, no direct-map split", "lib/xarray.c"),
    "ida": Qualities(
        "can fail: ida_alloc_range() kzalloc()s a 128-B ida_bitmap per 1024 ids (-ENOMEM)",
        "lib/idr.c ida_alloc_range()",
        "no: the IDA has no RCU-safe walk (ida_free() kfree()s a bitmap at once and every "
        "walk takes xa_lock); safe only if no CPU was stopped inside the IDA",
        "lib/idr.c ida_free(), ida_find_first_range(); " + _NMI,
        _HOOKS, _HOOKS_SRC,
        "ids are int: no PFN above 2^31 (8 TiB of RAM)", "lib/idr.c ida_alloc_range()"),
    "roaring": Qualities(
        "can fail: containers grow by reallocation (no kernel implementation exists)",
        "CRoaring src/containers/array.c array_container_grow()",
        "n/a: no kernel implementation; it would need its own lock",
        "CRoaring (userspace library)",
        _HOOKS + "; plus a new lib/ structure", _HOOKS_SRC,
        "a new data structure in lib/ to review and maintain", "CRoaring"),
    "maple": Qualities(
        "can fail: mtree_store_range() allocates maple nodes (GFP_KERNEL, -ENOMEM)",
        "lib/maple_tree.c mtree_store_range(), mas_alloc_nodes()",
        "yes with MT_FLAGS_USE_RCU: mas_find() under rcu_read_lock(); nodes freed by "
        "call_rcu, never under a reader",
        "lib/maple_tree.c mas_find(), ma_free_rcu(); " + _NMI,
        _HOOKS, _HOOKS_SRC,
        "none: no page flag, no direct-map split", "lib/maple_tree.c"),
    "pageflags": Qualities(
        "none: SetPageX() on the page's flags word", "include/linux/page-flags.h",
        "yes: a walk of every struct page (pfn_valid() for holes) reads only",
        "include/linux/mmzone.h pfn_valid(); " + _NMI,
        _HOOKS + "; include/linux/page-flags.h (a new PG_ flag)", _HOOKS_SRC,
        "one struct page flag bit (\"always running out of page flags\"); the scan reads "
        "64 B of struct page per PFN",
        "include/linux/page-flags.h enum pageflags; Matthew Wilcox, 2022"),
    "kvm": _KVM_ATTR,
    "kvm-attr": _KVM_ATTR,
    "kvm-sept": Qualities(
        "none added: KVM allocates S-EPT pages from its own caches before the fault "
        "(kvm_mmu_topup_memory_cache())",
        "arch/x86/kvm/mmu/mmu.c kvm_mmu_topup_memory_cache(); arch/x86/kvm/mmu/tdp_mmu.c",
        _KVM_CRASH.replace("each VM's locks", "each VM's mmu_lock"), _KVM_CRASH_SRC
        + "; arch/x86/kvm/mmu/tdp_mmu.c (mirror S-EPT walk under mmu_lock)",
        "arch/x86/kvm/vmx/tdx.c (reset callback: guest, S-EPT and TD control pages), "
        "arch/x86/kvm/mmu/tdp_mmu.c (walk of the mirror S-EPT)",
        "arch/x86/kvm/vmx/tdx.c; arch/x86/kvm/mmu/tdp_mmu.c (v6.16+)",
        "none in bytes; misses transitional and leaked pages (race.csv)",
        "Isaku Yamahata, 31 May 2024, reply to [PATCH v4 5/5]"),
    "pte-softbit": Qualities(
        "can fail: each split allocates a page-table page (alloc_pages(GFP_KERNEL), "
        "-ENOMEM) and flushes every CPU's TLB",
        "arch/x86/mm/pat/set_memory.c split_large_page(), __split_large_page()",
        "yes: a walk of init_mm's direct map reads page tables only; a split installs "
        "its table with one PMD/PUD store",
        "arch/x86/mm/pat/set_memory.c __split_large_page(); " + _NMI,
        _HOOKS + "; arch/x86/mm/pat/set_memory.c (set/clear the soft bit)", _HOOKS_SRC,
        "a PTE software bit (SOFTW1-4 are all taken); 1G/2M direct-map splits: more TLB "
        "misses on the direct map, flush_tlb_all() per split; collapsed again only with "
        "cpa_collapse_large_pages()",
        "arch/x86/include/asm/pgtable_types.h _PAGE_BIT_SOFTW1-4; "
        "arch/x86/mm/pat/set_memory.c cpa_collapse_large_pages()"),
    "refuse": _REFUSE,
    "upstream-refuse": _REFUSE,
    "refuse-6.18": _REFUSE,
    "refuse-while-td": Qualities(
        "none", "arch/x86/kernel/machine_kexec_64.c machine_kexec_prepare()",
        "n/a: refused while a TD runs; kdump cannot be refused at crash time, so it "
        "must be refused at load as upstream does",
        "kernel/kexec_core.c __crash_kexec()",
        "arch/x86/virt/vmx/tdx/tdx.c (a TD count), machine_kexec_prepare()",
        "Isaku Yamahata, 31 May 2024, option 5.1",
        "no kexec while TDs run; with none running it resets PAMT but cannot see leaked "
        "pages", "Isaku Yamahata, 31 May 2024"),
    "clear-all": Qualities(
        "none", "arch/x86/virt/vmx/tdx/tdx.c tdx_quirk_reset_paddr()",
        "yes: MOVDIR64B over the RAM ranges of the e820 table: no lock, no allocation",
        "arch/x86/virt/vmx/tdx/tdx.c tdx_quirk_reset_paddr(); " + _NMI,
        "arch/x86/virt/vmx/tdx/tdx.c, arch/x86/kernel/machine_kexec_64.c",
        "Isaku Yamahata, 31 May 2024, option 6",
        "downtime grows with all of RAM, not with TD memory", "Isaku Yamahata, 31 May 2024"),
    "mainline-7.2": _MAINLINE,
    "mainline-7.2-old-module": Qualities(
        "none", _SYS_DISABLE_SRC,
        "yes, and useless: the SEAMCALL fails at once and kdump goes on",
        _SYS_DISABLE_SRC,
        "none added (mainline 7.2)", _SYS_DISABLE_SRC,
        "every private page is left for the next kernel: partial-write poison on an "
        "erratum part; pr_err(\"TDH.SYS.DISABLE failed: ...\") is the only trace",
        _SYS_DISABLE_SRC + "; docs/kernel-facts.md Mainline today"),
    "refuse-no-leaf69": Qualities(
        "none", "arch/x86/kernel/machine_kexec_64.c machine_kexec_prepare()",
        "n/a: kdump is refused at load on such a module",
        "kernel/kexec_core.c __crash_kexec()",
        "arch/x86/virt/vmx/tdx/tdx.c (read TDX_FEATURES0 bit 53 at init), "
        "machine_kexec_prepare()", _SYS_DISABLE_SRC,
        "no kexec and no kdump with an old TDX module on an erratum part (the 6.18 "
        "refusal, narrowed); with the leaf, mainline-7.2", _SYS_DISABLE_SRC),
    "fallback-bitmap": Qualities(
        "none: bitmap_set()/bitmap_clear() on a bitmap over [0, max_pfn), allocated at TDX "
        "init only where the module lacks leaf 69",
        "include/linux/bitmap.h bitmap_set(); arch/x86/virt/vmx/tdx/tdx.c (TDX init)",
        "yes: find_next_bit() reads a static array: no lock, no allocation, no RCU",
        "lib/find_bit.c _find_next_bit(); " + _NMI,
        _HOOKS + "; only on a module without leaf 69", _HOOKS_SRC,
        "SEAMCALL hooks that matter only on old modules; 32 MiB per TiB of max_pfn there; "
        "the next kernel cannot initialise TDX (the module stays initialised)",
        "include/linux/bitmap.h; " + _SYS_DISABLE_SRC),
    "parallel-reset": Qualities(
        "none: bitmap_set()/bitmap_clear() on a bitmap over [0, max_pfn) allocated once "
        "at TDX init", "include/linux/bitmap.h bitmap_set()",
        "only if each CPU clears its share in the NMI callback that stops it "
        "(crash_smp_send_stop() -> nmi_shootdown_cpus()): a new duty in NMI context, and "
        "a CPU that never answers the NMI leaves its share uncleared",
        "arch/x86/kernel/crash.c kdump_nmi_callback(), nmi_shootdown_cpus()",
        _HOOKS + "; arch/x86/virt/vmx/tdx/tdx.c tdx_shutdown() (syscore: the other CPUs "
        "still run) and arch/x86/kernel/crash.c (the NMI stop callback)", _HOOKS_SRC,
        "replaces TDH.SYS.DISABLE's work: the next kernel cannot initialise TDX until a "
        "cold boot; 32 MiB per TiB of max_pfn",
        "arch/x86/virt/vmx/tdx/tdx.c; " + _SYS_DISABLE_SRC),
    "dpamt-refcount": Qualities(
        "none for the tracking (the refcount array is allocated at TDX init); the "
        "conversion path's PAMT pages per 2 MiB can fail (-ENOMEM) in Dynamic PAMT itself",
        "Shutemov / Edgecombe, Dynamic PAMT v6, 25 May 2026 (tdx_pamt_get())",
        "yes: a scan of an atomic_t array: no lock, no allocation, no RCU",
        "Dynamic PAMT v6, 25 May 2026; " + _NMI,
        "arch/x86/virt/vmx/tdx/tdx.c (scan the refcounts at kexec)",
        "Dynamic PAMT v6, 25 May 2026",
        "resets whole 2 MiB ranges (over-clears); sees only pages holding a PAMT_4K "
        "reference", "Dynamic PAMT v6, 25 May 2026"),
    "gmem-maple": Qualities(
        "can fail: each conversion stores into the inode's maple tree (mas_preallocate(), "
        "-ENOMEM), failing the conversion ioctl",
        "lib/maple_tree.c mas_preallocate(); guest_memfd in-place conversion v8, Jun 2026",
        "no: reaching every guest_memfd inode takes KVM's locks (a CPU stopped by NMI may "
        "hold them)", "virt/kvm/guest_memfd.c; " + _NMI,
        "virt/kvm/guest_memfd.c (walk each inode's tree), arch/x86/kvm/vmx/tdx.c",
        "Ackerley Tng / Sean Christopherson, guest_memfd in-place conversion v8, Jun 2026",
        "none in bytes (the tree exists anyway); misses transitional and leaked pages",
        "guest_memfd in-place conversion v8, Jun 2026"),
}

UNKNOWN = Qualities(*(["not described (add it to trackers/report/qualities.py QUALITIES)",
                       "none"] * 4))


def qualities(name: str) -> Qualities:
    return QUALITIES.get(name, UNKNOWN)
