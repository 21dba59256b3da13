// SPDX-License-Identifier: GPL-2.0
/*
 * glue.c - the kernel's own XArray, IDA, maple tree, find_bit and bitmap
 * stores behind a flat C API of plain arrays, for trackers/linux/binding.py
 * (ctypes).
 *
 * This file links GPL-2.0 kernel code: lib/xarray.c, lib/radix-tree.c,
 * lib/idr.c and lib/maple_tree.c, compiled unchanged against the userspace
 * shims of tools/testing/shared and tools/include, with tools/lib's
 * find_bit.c, bitmap.c and slab.c, and lib/bitmap.c's __bitmap_set, which
 * build.py copies verbatim (lib/bitmap.c does not build in userspace).  It
 * is built on the user's machine from the user's kernel source by
 * trackers/linux/build.py and is never shipped as a binary.
 *
 * lib/maple_tree.c is included in this translation unit, as
 * tools/testing/radix-tree/maple.c includes it, so that the node walk below
 * can use its accessors (mte_node_type, ma_slots, ma_data_end); the other
 * kernel files are separate objects.  Every object is compiled with the same
 * generated/autoconf.h forced in first (CONFIG_64BIT, CONFIG_XARRAY_MULTI)
 * and XA_CHUNK_SHIFT 6, and the asserts below pin the sizes the models use.
 *
 * The sections each have their own file, sharing glue.h: the XArray
 * (glue_xarray.c), the IDA (glue_ida.c) and the bitmap (glue_bitmap.c);
 * this file keeps the harness glue and the maple tree, whose walk needs
 * lib/maple_tree.c's static accessors.
 */
#include "shared.h"		/* tools/testing/shared, as maple-shared.h has it */
#include <linux/init.h>
#include "maple_tree.c"

#include "glue.h"

_Static_assert(sizeof(unsigned long) == 8, "LP64: unsigned long is a uint64");
_Static_assert(XA_CHUNK_SHIFT == 6, "64-slot xa_node (generated/map-shift.h)");
_Static_assert(XA_CHUNK_SIZE == 64, "64 slots per xa_node");
_Static_assert(sizeof(struct xa_node) == 576, "struct xa_node is 576 B");
_Static_assert(sizeof(struct maple_node) == 256, "struct maple_node is 256 B");
_Static_assert(MAPLE_RANGE64_SLOTS == 16, "64-bit maple_range_64: 16 slots");
_Static_assert(sizeof(struct ida_bitmap) == 128, "struct ida_bitmap is 128 B");
_Static_assert(IDA_BITMAP_BITS == 1024, "1024 ids per ida_bitmap");

#ifndef TDX_LINUX_VERSION
#define TDX_LINUX_VERSION "unknown"
#endif

/* tools/testing/shared/linux.c and tools/lib/slab.c */
extern int nr_allocated;
extern int kmalloc_nr_allocated;
extern unsigned long kmem_cache_nr_allocated(struct kmem_cache *cachep);

/* ------------------------------------------------------------------------
 * GFP_NOWAIT.  The harness fails every allocation without
 * __GFP_DIRECT_RECLAIM (unless a cache's non_kernel budget allows it) to
 * exercise the -ENOMEM retry paths: every xas_store that needs a node, every
 * maple store that needs nodes and every new ida_bitmap then runs twice
 * (xas_nomem / mas_nomem).  In a kernel with free memory those GFP_NOWAIT
 * allocations succeed, so by default they succeed here too: the library is
 * linked with --wrap for the three allocators, which add
 * __GFP_DIRECT_RECLAIM unless tdx_set_nowait_fails(1) asks for the harness's
 * behaviour.  The final structures are the same either way.
 */
static int tdx_nowait_fails;

void *__real_kmem_cache_alloc_lru(struct kmem_cache *cachep, struct list_lru *lru, int gfp);
int __real_kmem_cache_alloc_bulk(struct kmem_cache *cachep, gfp_t gfp, size_t size, void **list);
void *__real_kmalloc(size_t size, gfp_t gfp);

void *__wrap_kmem_cache_alloc_lru(struct kmem_cache *cachep, struct list_lru *lru, int gfp)
{
	if (!tdx_nowait_fails)
		gfp |= __GFP_DIRECT_RECLAIM;
	return __real_kmem_cache_alloc_lru(cachep, lru, gfp);
}

int __wrap_kmem_cache_alloc_bulk(struct kmem_cache *cachep, gfp_t gfp, size_t size, void **list)
{
	if (!tdx_nowait_fails)
		gfp |= __GFP_DIRECT_RECLAIM;
	return __real_kmem_cache_alloc_bulk(cachep, gfp, size, list);
}

void *__wrap_kmalloc(size_t size, gfp_t gfp)
{
	if (!tdx_nowait_fails)
		gfp |= __GFP_DIRECT_RECLAIM;
	return __real_kmalloc(size, gfp);
}

void tdx_set_nowait_fails(int fails)
{
	tdx_nowait_fails = !!fails;
}

/* ------------------------------------------------------------------------
 * RCU-deferred frees.  The kernel code frees nodes with call_rcu()
 * (radix_tree_node_rcu_free, mt_free_rcu).  liburcu runs those callbacks in
 * its own thread, which sleeps 10 ms after each wake-up to batch them: a
 * count of live objects (rcu_barrier) after an erase waited 20-40 ms here.
 * The library is linked with --wrap=urcu_memb_call_rcu (what urcu.h's
 * call_rcu names): the callbacks wait in tdx_deferred and run at the
 * outermost exit of every entry point, after a synchronize_rcu(), as
 * liburcu's thread would run them after its grace period.  Each exit leaves
 * nothing deferred, so the counts below need no barrier; the harness
 * allocators' objects and totals are the same.
 */
struct tdx_deferred_free {
	struct rcu_head *head;
	void (*func)(struct rcu_head *head);
};

static pthread_mutex_t tdx_deferred_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tdx_deferred_free *tdx_deferred;
static size_t tdx_deferred_n, tdx_deferred_cap;

void __wrap_urcu_memb_call_rcu(struct rcu_head *head, void (*func)(struct rcu_head *head))
{
	pthread_mutex_lock(&tdx_deferred_lock);
	if (tdx_deferred_n == tdx_deferred_cap) {
		size_t cap = tdx_deferred_cap ? 2 * tdx_deferred_cap : 1024;
		void *grown = realloc(tdx_deferred, cap * sizeof(*tdx_deferred));

		if (!grown)
			abort();	/* nowhere to keep a free: as the kernel's BUG() */
		tdx_deferred = grown;
		tdx_deferred_cap = cap;
	}
	tdx_deferred[tdx_deferred_n++] = (struct tdx_deferred_free){ head, func };
	pthread_mutex_unlock(&tdx_deferred_lock);
}

/* Run every deferred free, callbacks that defer more included; called by a
 * registered thread outside any read-side section. */
static void tdx_run_deferred(void)
{
	for (;;) {
		struct tdx_deferred_free *batch;
		size_t i, n;

		pthread_mutex_lock(&tdx_deferred_lock);
		batch = tdx_deferred;
		n = tdx_deferred_n;
		tdx_deferred = NULL;
		tdx_deferred_n = tdx_deferred_cap = 0;
		pthread_mutex_unlock(&tdx_deferred_lock);
		if (!n) {
			free(batch);
			return;
		}
		synchronize_rcu();
		for (i = 0; i < n; i++)
			batch[i].func(batch[i].head);
		free(batch);
	}
}

/* ------------------------------------------------------------------------
 * RCU: a thread must be registered with liburcu to read under RCU.  Each
 * entry point registers the caller for its duration (nesting allowed), so a
 * thread never exits registered, and runs the deferred frees at its
 * outermost exit.
 */
static __thread int tdx_rcu_depth;

void tdx_enter(void)
{
	if (tdx_rcu_depth++ == 0)
		rcu_register_thread();
}

void tdx_leave(void)
{
	if (tdx_rcu_depth == 1)
		tdx_run_deferred();
	if (--tdx_rcu_depth == 0)
		rcu_unregister_thread();
}

static pthread_once_t tdx_once = PTHREAD_ONCE_INIT;

static void tdx_init_once(void)
{
	radix_tree_init();	/* radix_tree_node_cachep: the xa_node cache */
	maple_tree_init();	/* maple_node_cache */
}

void tdx_init(void)
{
	pthread_once(&tdx_once, tdx_init_once);
}

/* ------------------------------------------------------------------------
 * Facts: the sizes this build has, for the Python side to check.
 */
static const struct {
	const char *name;
	int64_t value;
} tdx_facts[] = {
	{ "sizeof(struct xa_node)", sizeof(struct xa_node) },
	{ "XA_CHUNK_SHIFT", XA_CHUNK_SHIFT },
	{ "XA_CHUNK_SIZE", XA_CHUNK_SIZE },
	{ "sizeof(struct maple_node)", sizeof(struct maple_node) },
	{ "MAPLE_NODE_SLOTS", MAPLE_NODE_SLOTS },
	{ "MAPLE_RANGE64_SLOTS", MAPLE_RANGE64_SLOTS },
	{ "MAPLE_ARANGE64_SLOTS", MAPLE_ARANGE64_SLOTS },
	{ "sizeof(struct ida_bitmap)", sizeof(struct ida_bitmap) },
	{ "IDA_BITMAP_BITS", IDA_BITMAP_BITS },
	{ "BITS_PER_XA_VALUE", BITS_PER_XA_VALUE },
	{ "BITS_PER_LONG", BITS_PER_LONG },
	{ "INT_MAX", INT_MAX },
	{ "ENOSPC", ENOSPC },
	{ "ENOMEM", ENOMEM },
	{ "EINVAL", EINVAL },
};

int tdx_fact_count(void)
{
	return sizeof(tdx_facts) / sizeof(tdx_facts[0]);
}

const char *tdx_fact_name(int i)
{
	return i >= 0 && i < tdx_fact_count() ? tdx_facts[i].name : NULL;
}

int64_t tdx_fact_value(int i)
{
	return i >= 0 && i < tdx_fact_count() ? tdx_facts[i].value : 0;
}

const char *tdx_linux_version(void)
{
	return TDX_LINUX_VERSION;
}

/* ------------------------------------------------------------------------
 * Live objects, as the harness's allocators count them: per kmem_cache
 * nr_allocated (tools/testing/shared/linux.c) and kmalloc_nr_allocated
 * (tools/lib/slab.c; here only struct ida_bitmap uses kmalloc).  Nodes are
 * freed through call_rcu(), whose callbacks ran at the last entry point's
 * exit (tdx_run_deferred).  out[]: xa_node, maple_node, kmalloc, every
 * kmem_cache object (nr_allocated).
 */
int tdx_live_objects(int64_t *out, int cap)
{
	int64_t v[4];
	int i;

	tdx_init();
	tdx_enter();
	tdx_run_deferred();
	v[0] = kmem_cache_nr_allocated(radix_tree_node_cachep);
	v[1] = kmem_cache_nr_allocated(maple_node_cache);
	v[2] = uatomic_read(&kmalloc_nr_allocated);
	v[3] = uatomic_read(&nr_allocated);
	tdx_leave();
	for (i = 0; i < cap && i < 4; i++)
		out[i] = v[i];
	return 4;
}

/* ------------------------------------------------------------------------
 * Maple tree (lib/maple_tree.c): one handle is one struct maple_tree,
 * mt_init()ed (no MT_FLAGS_ALLOC_RANGE: maple_range_64 internal nodes).
 */
void *tdx_mt_create(void)
{
	struct maple_tree *mt = malloc(sizeof(*mt));

	tdx_init();
	if (mt)
		mt_init(mt);
	return mt;
}

void tdx_mt_destroy(void *h)
{
	if (!h)
		return;
	tdx_enter();
	mtree_destroy(h);
	tdx_leave();
	free(h);
}

/* mtree_store_range(mt, start, end - 1, xa_mk_value(value), GFP_KERNEL) per extent. */
int tdx_mt_store_range(void *h, const uint64_t *starts, const uint64_t *ends,
		       int64_t n, uint64_t value)
{
	void *entry = xa_mk_value(value);
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		if (ends[r] > starts[r])
			err = mtree_store_range(h, starts[r], ends[r] - 1, entry, GFP_KERNEL);
	tdx_leave();
	return err;
}

/*
 * mtree_store_range(mt, start, end - 1, NULL, GFP_KERNEL) per extent: the
 * range, and only the range, becomes empty (mtree_erase() would drop the
 * whole entry holding an index, beyond the range).
 */
int tdx_mt_erase_range(void *h, const uint64_t *starts, const uint64_t *ends, int64_t n)
{
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		if (ends[r] > starts[r])
			err = mtree_store_range(h, starts[r], ends[r] - 1, NULL, GFP_KERNEL);
	tdx_leave();
	return err;
}

/* Maximal runs of stored ranges from *cursor on (mas_for_each), at most cap. */
int64_t tdx_mt_scan(void *h, uint64_t *cursor, int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	uint64_t from = *cursor;
	MA_STATE(mas, h, from, from);
	void *entry;

	if (from == TDX_SCAN_DONE || cap <= 0)
		return 0;
	tdx_enter();
	rcu_read_lock();
	mas_for_each(&mas, entry, ULONG_MAX) {
		uint64_t s = mas.index < from ? from : mas.index;

		if (!runs_add(&runs, s, mas.last + 1)) {
			*cursor = s;
			goto out;
		}
	}
	*cursor = TDX_SCAN_DONE;
out:
	rcu_read_unlock();
	tdx_leave();
	return runs_finish(&runs);
}

/* Nodes per depth (0 = root) under enode, which covers [min, max]. */
static void mt_count_nodes(struct maple_tree *mt, struct maple_enode *enode,
			   unsigned long min, unsigned long max, int depth, int64_t *depths)
{
	enum maple_type type = mte_node_type(enode);
	struct maple_node *node = mte_to_node(enode);
	unsigned long *pivots;
	void __rcu **slots;
	unsigned char end;

	depths[depth]++;
	if (ma_is_leaf(type))
		return;
	pivots = ma_pivots(node, type);
	slots = ma_slots(node, type);
	end = ma_data_end(node, type, pivots, max);
	for (unsigned char k = 0; k <= end; k++) {
		unsigned long last = k < mt_pivots[type] && k < end ? pivots[k] : max;
		void *child = mt_slot(mt, slots, k);

		if (child)
			mt_count_nodes(mt, child, min, last, depth + 1, depths);
		min = last + 1;
	}
}

/*
 * Maple nodes per level, out[0] = leaves, out[height - 1] = the root;
 * returns the height (mt_height), 0 when the tree holds no node.  -1 if a
 * leaf was found above level 0 (the tree is not balanced: never expected).
 */
int tdx_mt_levels(void *h, int64_t *out, int cap)
{
	struct maple_tree *mt = h;
	int64_t depths[MAPLE_HEIGHT_MAX + 1] = { 0 };
	int height, k;
	void *root;

	tdx_enter();
	rcu_read_lock();
	root = rcu_dereference(mt->ma_root);
	height = xa_is_node(root) ? mt_height(mt) : 0;
	if (height)
		mt_count_nodes(mt, root, 0, ULONG_MAX, 0, depths);
	rcu_read_unlock();
	tdx_leave();
	for (k = height; k <= MAPLE_HEIGHT_MAX; k++)
		if (depths[k])
			return -1;
	for (k = 0; k < cap && k < height; k++)
		out[k] = depths[height - 1 - k];
	return height;
}
