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

# --- Maple tree: include/linux/maple_tree.h --------------------------------
MAPLE_NODE_BYTES = 256               # struct maple_node, 64-bit
MAPLE_RANGE64_SLOTS = 16             # maple_range_64: 16 slots ...
MAPLE_RANGE64_PIVOTS = 15            # ... and 15 pivots

# --- struct page: Documentation/mm/vmemmap_dedup.rst -----------------------
STRUCT_PAGE_BYTES = 64               # x86-64, 1.56 % of RAM

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
ROARING_CONTAINER_INDEX_BYTES = 2 + 8 + 1
ROARING_CONTAINER_STRUCT_BYTES = 16

# --- KVM: include/uapi/linux/kvm.h, virt/kvm/kvm_main.c ----------------------
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3

# --- emulation limits (not kernel facts) -----------------------------------
DEFAULT_MEMORY_BUDGET = 8 << 30      # host bytes one tracker may hold
