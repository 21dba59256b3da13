"""Kernel and platform constants, each with its source.

The one place a modeled byte count may take a size from.  Sources are
torvalds/linux paths unless said otherwise; see also the project's
docs/kernel-facts.md, which records the facts these constants come from.
"""

# --- pages ----------------------------------------------------------------
PAGE_SHIFT = 12                      # arch/x86/include/asm/page_types.h
PAGE_SIZE = 1 << PAGE_SHIFT          # 4 KiB
PAGES_PER_2M = 512                   # PMD_SIZE / PAGE_SIZE
PAGES_PER_1G = 512 * 512             # PUD_SIZE / PAGE_SIZE
BITS_PER_LONG = 64

# --- physical address limit: arch/x86/include/asm/sparsemem.h ---------------
# MAX_PHYSMEM_BITS = pgtable_l5_enabled() ? 52 : 46 on x86-64: 52 with 5-level
# paging, the most any x86-64 kernel addresses.  That is 2^52 *bytes*; in PFNs
# (>> PAGE_SHIFT 12, page_types.h) it is 2^40, the bound on max_pfn and GFNs.
MAX_PHYSMEM_BITS = 52
MAX_PHYS_ADDR = 1 << MAX_PHYSMEM_BITS            # first byte address beyond the limit
MAX_PHYS_PFN = MAX_PHYS_ADDR >> PAGE_SHIFT       # 2^40: max_pfn <= MAX_PHYS_PFN

# --- XArray: include/linux/xarray.h, lib/xarray.c ---------------------------
XA_CHUNK_SHIFT = 6                   # CONFIG_BASE_SMALL=n
XA_CHUNK_SIZE = 1 << XA_CHUNK_SHIFT  # 64 slots per node
XA_CHUNK_MASK = XA_CHUNK_SIZE - 1
XA_MAX_MARKS = 3
# struct xa_node: shift, offset, count, nr_values (4 x u8), pad, parent (8),
# array (8), private_list/rcu_head (16), slots[64] (512), marks[3][1] (24).
# "576 bytes ... we get 7 of them per 4kB page" (slab: xarray node cache).
XA_NODE_BYTES = 576

# --- IDA: include/linux/idr.h ----------------------------------------------
IDA_BITMAP_LONGS = 16                # 128 bytes per leaf
IDA_BITMAP_BYTES = IDA_BITMAP_LONGS * 8
IDA_BITMAP_BITS = IDA_BITMAP_BYTES * 8   # 1024 ids per struct ida_bitmap
IDA_CHUNK_SHIFT = 10                 # lib/idr.c: XArray index = id / IDA_BITMAP_BITS
# include/linux/xarray.h: xa_mk_value() keeps BITS_PER_LONG - 1 bits; lib/idr.c
# ida_alloc_range() stores a chunk as xa_mk_value(bits) while every set bit
# is below BITS_PER_XA_VALUE, and allocates a struct ida_bitmap otherwise.
BITS_PER_XA_VALUE = BITS_PER_LONG - 1

# --- Maple tree: include/linux/maple_tree.h --------------------------------
MAPLE_NODE_BYTES = 256               # struct maple_node, 64-bit
MAPLE_RANGE64_SLOTS = 16             # maple_range_64: 16 slots ...
MAPLE_RANGE64_PIVOTS = 15            # ... and 15 pivots
# lib/maple_tree.c mt_min_slots[maple_range_64] = MAPLE_RANGE64_SLOTS / 2 - 2:
# a non-root node holding fewer slots is insufficient and gets rebalanced
MAPLE_RANGE64_MIN_SLOTS = MAPLE_RANGE64_SLOTS // 2 - 2

# --- struct page: Documentation/mm/vmemmap_dedup.rst -----------------------
STRUCT_PAGE_BYTES = 64               # x86-64, 1.56 % of RAM
# SPARSEMEM_VMEMMAP (arch/x86/include/asm/sparsemem.h, x86-64): 128 MiB
# sections; vmemmap_populate() backs the struct pages of present sections only
SECTION_SIZE_BITS = 27
PAGES_PER_SECTION = 1 << (SECTION_SIZE_BITS - PAGE_SHIFT)

# --- Roaring: Lemire et al. 2016/2018; CRoaring include/roaring/ -----------
ROARING_CHUNK_BITS = 16              # high 16 bits select a container
ROARING_ARRAY_MAX = 4096             # array container holds <= 4096 values
ROARING_ARRAY_VALUE_BYTES = 2        # uint16_t per value
ROARING_BITMAP_CONTAINER_BYTES = 8192  # 2^16 bits
ROARING_RUN_BYTES = 4                # rle16_t {value, length}
# Per container, CRoaring's roaring_array_t keeps a uint16_t key, a void*
# and a uint8_t typecode (11 B), and each container struct is 16 B
# (array_container_t {int32 cardinality, int32 capacity, uint16_t *array};
# bitmap_container_t {int32 cardinality, uint64_t *words};
# run_container_t {int32 n_runs, int32 capacity, rle16_t *runs}).
# Checked against CRoaring include/roaring/roaring_types.h (roaring_array_t:
# int32 size, int32 allocation_size, containers**, keys*, typecodes*, flags —
# 40 B root, parallel arrays of 8 + 2 + 1 B per container) and
# include/roaring/containers/{array,bitset,run}.h (each struct 16 B).
ROARING_CONTAINER_INDEX_BYTES = 2 + 8 + 1
ROARING_CONTAINER_STRUCT_BYTES = 16

# --- KVM: include/uapi/linux/kvm.h, virt/kvm/kvm_main.c ----------------------
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

# --- TDX host: arch/x86/virt/vmx/tdx/tdx.c ----------------------------------
TDMR_ALIGNMENT_PAGES = PAGES_PER_1G  # TDMR_ALIGNMENT = SZ_1G; fill_out_tdmrs()
TDX_MEMORY_START_PFN = 256           # build_tdx_memlist(): the first 1 MiB is never TDX memory
# tdmr_get_pamt_sz(): entries = TDMR size >> {PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT},
# times the entry size from TDX module metadata, each level ALIGN()ed to 4 KiB.
# 16 B at 4K is the kernel-facts default (PAMT ~ 1/256); 2M and 1G alike.
PAMT_4K_ENTRY_BYTES = 16
PAMT_2M_ENTRY_BYTES = 16
PAMT_1G_ENTRY_BYTES = 16
# Dynamic PAMT (Shutemov, May 2025, RFC "Dynamic PAMT"): PAMT_4K becomes a
# 1-bit-per-page bitmap; a 2M range holding 4K private pages gets its own
# PAMT_4K pages on demand: 512 entries x 16 B = 8 KiB = 2 pages.
DPAMT_BITMAP_BITS_PER_PAGE = 1
DPAMT_PAGES_PER_2M = PAGES_PER_2M * PAMT_4K_ENTRY_BYTES // PAGE_SIZE

# --- TD control structures: arch/x86/kvm/vmx/tdx.c, TDX module 1.5 --------
# KVM allocates tdcs_base_size / PAGE_SIZE TDCS pages (tdh_mng_addcx), one
# TDR (tdh_mng_create), and per vCPU one TDVPR (tdh_vp_create) plus
# tdvps_base_size / PAGE_SIZE - 1 TDCX pages (tdh_vp_addcx).  The module
# reports tdcs_base_size = 4 KiB * MIN_NUM_TDCS_PAGES (6) and tdvps_base_size
# = 4 KiB * MIN_TDVPS_PAGES (6) without L2 VMs (intel/tdx-module,
# src/common/data_structures/tdx_tdvps.h, td_control_structures.h).
TDR_PAGES = 1
TDCS_PAGES = 6
TDVPS_PAGES = 6
TDVPR_PAGES = 1
TDCX_PAGES = TDVPS_PAGES - TDVPR_PAGES
# S-EPT: 512 eight-byte entries per 4 KiB table; the root table lives in the
# TDCS, every lower level comes from tdh_mem_sept_add().  4-level (GPAW 48):
# tables mapping 2 MiB (leaf), 1 GiB and 512 GiB of GFNs.
SEPT_ENTRIES_SHIFT = 9
SEPT_ADDED_LEVELS = 3

# --- KVM's mirror S-EPT (arch/x86/kvm/mmu/tdp_mmu.c, mmu_internal.h, v6.16+) ----
# The TDP MMU keeps one mirror root per TD (kvm_tdp_mmu_alloc_root(.., mirror)),
# whose tables mirror the S-EPT: every non-root mirror table (sp->spt, 4 KiB, 512
# eight-byte SPTEs) has its S-EPT page in sp->external_spt (tdp_mmu_alloc_sp()
# -> kvm_mmu_alloc_external_spt(); tdx_sept_link_private_spt() hands it to
# tdh_mem_sept_add()); the root's S-EPT root lives in the TDCS.  A leaf is a 4 KiB
# SPTE holding the guest page's PFN: tdx_sept_set_private_spte() KVM_BUG_ONs any
# level but PG_LEVEL_4K.  KVM frees no mirror table while the TD runs
# (tdx_sept_free_private_spt()).
KVM_MIRROR_ROOTS_PER_TD = 1
# A walk that collects external_spt goes from a non-leaf SPTE to the child's
# struct kvm_mmu_page: spte_to_child_sp() -> to_shadow_page(): page_private() of
# the table's struct page, then sp->external_spt -- two dependent cache lines.
KVM_MIRROR_SP_LOADS = 2
CACHE_LINE_BYTES = 64
# struct kvm_tdx holds struct tdx_td {tdr_page, tdcs_nr_pages, tdcs_pages} and
# struct vcpu_tdx struct tdx_vp {tdvpr_page, tdvpr_pa, tdcx_pages}
# (arch/x86/include/asm/tdx.h, arch/x86/kvm/vmx/tdx.h): per TD and per vCPU one
# line of the struct and its page-pointer array (8 B a pointer), two loads.
KVM_CONTROL_LOADS_PER_OWNER = 2
PAGE_POINTER_BYTES = 8

# --- TD guest: arch/x86/mm/mem_encrypt.c, QEMU ------------------------------
# mem_encrypt_setup_arch(): SWIOTLB = 6 % of guest memory, clamped to
# [IO_TLB_DEFAULT_SIZE (64 MiB), SZ_1G]; the guest shares it by MapGPA, which
# KVM handles in 2 MiB chunks (KVM_HC_MAP_GPA_RANGE), so whole chunks are
# shared: 491 chunks for 16 GiB, as the td16g-boot trace sample shows.
SWIOTLB_PERCENT = 6
SWIOTLB_MIN_BYTES = 64 << 20
SWIOTLB_MAX_BYTES = 1 << 30
MAPGPA_CHUNK_PAGES = PAGES_PER_2M
# QEMU q35 (hw/i386/pc_q35.c): guest RAM below 4 GiB is 2 GiB when the guest
# has >= 2.75 GiB (0xb0000000), the rest starts at 4 GiB; the td16g-boot
# trace sample sets [0, 0x80000) and [0x100000, 0x480000) private.
TD_LOWMEM_PAGES = (2 << 30) >> PAGE_SHIFT
TD_LOWMEM_SPLIT_PAGES = 0xB0000000 >> PAGE_SHIFT
TD_HIGHMEM_START_GFN = (4 << 30) >> PAGE_SHIFT

# --- Dynamic PAMT (Shutemov/Edgecombe v6, 25 May 2026, not merged) -----------
# init_pamt_refcounts(): one atomic_t per 2 MiB over [0, max_pfn):
# DIV_ROUND_UP(max_pfn, PTRS_PER_PTE) * sizeof(atomic_t) -- 2 MiB per TiB.
# tdx_find_pamt_refcount(pfn) = pamt_refcounts[pfn >> 9].  Who takes a reference
# (tdx_pamt_get()): tdx_alloc_control_page() (TDR, TDCS, TDVPR, TDCX: patch 07),
# tdx_sept_map_nonleaf_spte() (S-EPT pages) and tdx_sept_map_leaf_spte() (4 KiB
# guest pages: patch 09); a 2 MiB mapping needs no PAMT_4K backing (patch 03);
# the backing page pairs themselves (TDX_DPAMT_ENTRY_PAGE_CNT = 2) take none.
# The put follows a successful reclaim only (tdx_reclaim_control_page() returns
# before tdx_free_control_page() on failure; tdx_sept_remove_leaf_spte() before
# tdx_pamt_put()): a leaked page keeps its reference.
DPAMT_REFCOUNT_BYTES = 4
DPAMT_REFCOUNT_SHIFT = 9             # pages per refcount: 2 MiB
# Fraction of guest memory mapped at 2 MiB in the S-EPT: 0 in mainline KVM TDX
# (v6.16-, 4 KiB leaves only); the TDX huge-page series (Yan Zhao, 2025-26, not
# merged) maps a 2 MiB private range at 2 MiB when its guest_memfd folio is 2 MiB.
# ASSUMED range: 0 to every eligible block (1.0).
GUEST_2M_FRACTION = 0.0
GUEST_2M_FRACTION_RANGE = (0.0, 1.0)

# --- TDX module extensions (TDX Module Extensions, May 2026; TDX Connect v2, Xu
# Yilun, Apr 2026; not merged): "about 50 MB" of extra TDX-owned memory the
# kernel gives the module with TDH.EXT.MEM.ADD (leaf 61) at TDX initialisation.
TDX_EXT_MEM_BYTES = 50_000_000

# --- guest_memfd in-place conversion (Tng/Christopherson RFC v2 .. v8, 2026) -----
# kvm_gmem_init_inode() stores one attribute range over every index of the inode
# (maple tree gi->attributes, mas_store_gfp(0 .. size-1)); kvm_gmem_convert()
# stores a converted range with mas_store_prealloc() *after* kvm_gmem_zap() has
# removed it from the S-EPT.  A walk translates an index to a PFN through the
# inode's page cache (filemap_get_folio(), folio_file_pfn(): one lookup per
# folio); folios are order-0 unless the inode is HugeTLB-backed (page_order).
GMEM_FOLIO_PAGES = 1

# --- emulation limits (not kernel facts) -----------------------------------
DEFAULT_MEMORY_BUDGET = 8 << 30      # host bytes one tracker may hold

# --- x86-64 direct map: arch/x86/include/asm/pgtable_64_types.h, -------------
# arch/x86/mm/init.c split_mem_range(), arch/x86/mm/init_64.c
# kernel_physical_mapping_init(), arch/x86/mm/pat/set_memory.c split_large_page()
PTRS_PER_PTE = 512                   # 4 KiB PTEs per page-table page (2 MiB)
PTRS_PER_PMD = 512                   # 2 MiB PMDs per page (1 GiB)
PTRS_PER_PUD = 512                   # 1 GiB PUDs per page (512 GiB)
PAGE_TABLE_PAGE_BYTES = PAGE_SIZE    # every level's table is one 4 KiB page;
                                     # a split allocates exactly one
PAGES_PER_512G = PAGES_PER_1G * PTRS_PER_PUD   # one PGD (4-level) entry

# --- kexec platform: two-socket Sapphire Rapids ESTIMATE (docs/kernel-facts.md)
SPR_CLEAR_BPS_ALL = 0.75 * 614e9     # 2S peak 614 GB/s x 75 % (sustained low end)
SPR_READ_BPS_CORE = 10e9             # ~10 GB/s one Xeon-class core (docs/kernel-facts.md)
SPR_READ_BPS_ALL = 0.80 * 614e9      # 2S peak 614 GB/s x 80 % sustained
SPR_LOAD_LATENCY_S = 110e-9          # ASSUMED ~110 ns DRAM load-to-use; no source
SPR_2S_CPUS = 2 * 56 * 2             # 2 x Xeon Platinum 8480+ (56 cores, SMT2)
# The ranges the estimates may lie in (docs/kernel-facts.md "Clearing cost"): one
# core's clear from 4 GB/s (a 1 GiB hugetlb page zeroed in 250 ms on Skylake) to
# 38 GB/s (rep stosq in 1 GiB chunks, one Milan core) -- widened below to the
# MOVDIR64B rates the published TD teardowns imply (trackers/kexec/platform.py
# spr_2s(): its central clear is the published-derived one); a core's
# streaming read +-40 % around that 10 GB/s; DRAM load-to-use 80 ns (local)
# to 150 ns (remote socket), ASSUMED.
SPR_CLEAR_BPS_CORE_RANGE = (4e9, 38e9)
SPR_READ_BPS_CORE_RANGE = (6e9, 14e9)
SPR_LOAD_LATENCY_S_RANGE = (80e-9, 150e-9)

# --- per-page SEAMCALL costs (TD teardown, the race, TDH.SYS.DISABLE) ---------
# No per-leaf SEAMCALL figure is published for any part.  The central values are
# derived from the published TD-teardown table (trackers/published.py derive(),
# docs/validation.md): one per-page SEAMCALL ~2.9 us, a vCPU's exit per page of
# Dynamic Page Removal ~0.47 us.  The ranges are ASSUMED and must contain the
# derived values (tests/test_published.py): a SEAMCALL is a VMX-root -> SEAM
# transition and back plus the module's own work, half a microsecond to ten; a
# vCPU's exit and re-entry for tdh_mem_track, 0.1-2 us.
TDH_SEAMCALL_S_RANGE = (0.5e-6, 10e-6)
VCPU_KICK_S_RANGE = (0.1e-6, 2e-6)
# kvm_vm_set_mem_attributes(): ~100 ns per GFN xa_store (Liam Merwick, Jun 2025:
# a 1 TB+ guest stuck >= 26 s in xa_store); the race's attribute step.
KVM_ATTR_STORE_S = 100e-9            # per GFN

# --- kexec-time scan: CPU work per entry, run and lookup (ASSUMED ranges) -----
# The platform model (trackers/kexec/platform.py Platform.scan_s) adds the work a
# scan does besides streaming its bytes and chasing its node pointers.  Each is
# ASSUMED: a central value the model uses and a (low, high) range the report draws
# as a band.  None is fitted to the scans the report compares the model with.
# These hold on the presets; ``tdx-trackers calibrate`` measures all three on the
# machine that runs it (trackers/kexec/scan_costs.py) for ``this-machine``.
#
# Per entry: the kernel's iterators test one 8-byte entry at a time -- xas_find()'s
# slot loop, mas_next_slot()'s pivots, find_next_bit()'s words, a PTE's bits, a
# struct page's flags word -- about 2-6 instructions each at 2-4 GHz, IPC 1-3.
SCAN_ENTRY_S = 1e-9
SCAN_ENTRY_S_RANGE = (0.5e-9, 2e-9)
# Per run emitted: the iterator leaves its fast path at each end of a run (a
# find_next_zero_bit() call, an xa_state reset) and stores the run; in the
# userspace harness (trackers/linux) the run is also copied out in chunks and the
# contract's extents() merges it.  Calibration microbenchmark, not the reference
# set: single-page runs through bitmap@kernel, xarray@kernel and ida@kernel
# extents() took 11-18 ns per run, maple@kernel 28 ns (two entries a run), on a
# 2-vCPU AMD EPYC (Zen 4) VM, Linux 6.12.117 code, 2026-11.
SCAN_RUN_S = 20e-9
SCAN_RUN_S_RANGE = (10e-9, 40e-9)
# Per lookup: a scan that translates each page it finds through another structure
# pays one descent per page -- kvm: kvm_gmem_get_pfn() looks up guest_memfd's page
# cache, an xa_load() of 4-5 levels whose upper nodes stay cached.  Calibration
# microbenchmark: xa_load() of 1.9 M consecutive indices of a 64 GiB kvm@kernel
# guest_memfd XArray took 30 ns each on the same VM.
SCAN_LOOKUP_S = 30e-9
SCAN_LOOKUP_S_RANGE = (15e-9, 60e-9)
# Bytes of one entry a scan tests in a structure it walks: an xa_node slot, a maple
# slot or pivot, a bitmap long, a PTE.  (A struct page scan tests one entry per
# STRUCT_PAGE_BYTES.)
SCAN_ENTRY_BYTES = 8
