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
 * Conventions: indices are uint64 below 2^63; ranges are half-open
 * [start, end) as in the Python package; a handle is one structure and is
 * not safe for concurrent use (different handles are).  Every entry point
 * registers the calling thread with userspace RCU for its duration, so any
 * thread may call.  Nothing here times anything: the caller does.
 */
#include "shared.h"		/* tools/testing/shared, as maple-shared.h has it */
#include <linux/init.h>
#include "maple_tree.c"

#include <linux/idr.h>
#include <linux/xarray.h>
#include <stdint.h>
#include "radix-tree.h"
#include "runs.h"		/* ours (MIT): the run collector pages.h shares */

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

#define TDX_XA_LEVELS 11		/* shifts 0, 6, ..., 60 */

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

static void tdx_enter(void)
{
	if (tdx_rcu_depth++ == 0)
		rcu_register_thread();
}

static void tdx_leave(void)
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

static void tdx_init(void)
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
 * XArray (lib/xarray.c): one handle is one struct xarray, xa_init()ed.
 */
void *tdx_xa_create(void)
{
	struct xarray *xa = malloc(sizeof(*xa));

	tdx_init();
	if (xa)
		xa_init(xa);
	return xa;
}

void tdx_xa_destroy(void *h)
{
	if (!h)
		return;
	tdx_enter();
	xa_destroy(h);
	tdx_leave();
	free(h);
}

/*
 * xa_store(xa, i, xa_mk_value(value), GFP_KERNEL) for every i of every
 * [starts[r], ends[r]).  Returns 0 or the first negative errno.
 */
int tdx_xa_store_range(void *h, const uint64_t *starts, const uint64_t *ends,
		       int64_t n, uint64_t value)
{
	void *entry = xa_mk_value(value);
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		for (uint64_t i = starts[r]; i < ends[r]; i++) {
			err = xa_err(xa_store(h, i, entry, GFP_KERNEL));
			if (err)
				break;
		}
	tdx_leave();
	return err;
}

/* xa_store() of xa_mk_value(values[r]) at every index of [starts[r], ends[r]):
 * one call for ranges of different values (guest_memfd's PFN offsets). */
int tdx_xa_store_range_values(void *h, const uint64_t *starts, const uint64_t *ends,
			      const uint64_t *values, int64_t n)
{
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		for (uint64_t i = starts[r]; i < ends[r]; i++) {
			err = xa_err(xa_store(h, i, xa_mk_value(values[r]), GFP_KERNEL));
			if (err)
				break;
		}
	tdx_leave();
	return err;
}

/* xa_store_range(xa, start, end - 1, xa_mk_value(value), GFP_KERNEL) per extent. */
int tdx_xa_store_range_multi(void *h, const uint64_t *starts, const uint64_t *ends,
			     int64_t n, uint64_t value)
{
	void *entry = xa_mk_value(value);
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		if (ends[r] > starts[r])
			err = xa_err(xa_store_range(h, starts[r], ends[r] - 1, entry, GFP_KERNEL));
	tdx_leave();
	return err;
}

/*
 * KVM's kvm_vm_set_mem_attributes() (virt/kvm/kvm_main.c) per extent:
 * xa_reserve() every index of the range, then xa_store() every index.
 */
int tdx_xa_reserve_then_store(void *h, const uint64_t *starts, const uint64_t *ends,
			      int64_t n, uint64_t value)
{
	void *entry = xa_mk_value(value);
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++) {
		for (uint64_t i = starts[r]; i < ends[r] && !err; i++)
			err = xa_reserve(h, i, GFP_KERNEL);
		for (uint64_t i = starts[r]; i < ends[r] && !err; i++)
			err = xa_err(xa_store(h, i, entry, GFP_KERNEL));
	}
	tdx_leave();
	return err;
}

/*
 * xa_erase() of every present index of every [starts[r], ends[r]): the
 * present ones are found with xa_find(), so a sparse array is not walked
 * index by index; erasing an absent index would change nothing.  On a
 * multi-index entry xa_erase() erases the whole entry (xas_store of NULL
 * clears its siblings): use tdx_xa_erase_range_multi to cut one.
 */
int tdx_xa_erase_range(void *h, const uint64_t *starts, const uint64_t *ends, int64_t n)
{
	tdx_enter();
	for (int64_t r = 0; r < n; r++) {
		unsigned long index = starts[r];

		if (ends[r] <= starts[r])
			continue;
		while (xa_find(h, &index, ends[r] - 1, XA_PRESENT)) {
			xa_erase(h, index);
			if (index >= ends[r] - 1)
				break;
			index++;
		}
	}
	tdx_leave();
	return 0;
}

/*
 * [*first, *last] of the entry xas points at (after xas_load or xas_find,
 * which leave xa_offset on the entry's own slot).  xa_store_range() cuts a
 * range with xas_set_range(), whose pieces are an entry followed by any
 * number of sibling slots, not only a power of two: [5, 63] is one entry
 * in slot 5 of a shift-0 node and 58 siblings.  xas_get_order() counts
 * sibling slots at power-of-two distances and would report order 6 (64
 * indices from 0) for it, so the span is counted here slot by slot.
 */
static void tdx_entry_span(struct xa_state *xas, uint64_t *first, uint64_t *last)
{
	struct xa_node *node = xas->xa_node;
	unsigned int shift, k;
	uint64_t base;

	if (xas_not_node(node)) {		/* the entry is xa_head: index 0 */
		*first = *last = 0;
		return;
	}
	shift = node->shift;
	k = xas->xa_offset + 1;
	while (k < XA_CHUNK_SIZE &&
	       xa_entry(xas->xa, node, k) == xa_mk_sibling(xas->xa_offset))
		k++;
	base = shift + XA_CHUNK_SHIFT >= 64 ? 0 :
		xas->xa_index & ~((XA_CHUNK_SIZE << shift) - 1);
	*first = base + ((uint64_t)xas->xa_offset << shift);
	*last = base + ((uint64_t)k << shift) - 1;
}

/*
 * Erase [start, end) from an array of multi-index entries as a kernel user
 * must: xa_store_range(NULL) of a piece of a larger entry would leave it
 * half-cleared (its canonical slot or its siblings), so every entry that
 * overlaps the range is erased whole (xa_erase) and the parts of it outside
 * the range are stored back with xa_store_range().
 */
int tdx_xa_erase_range_multi(void *h, const uint64_t *starts, const uint64_t *ends, int64_t n)
{
	struct xarray *xa = h;
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++) {
		uint64_t first = starts[r], last;

		if (ends[r] <= starts[r])
			continue;
		last = ends[r] - 1;
		for (;;) {
			XA_STATE(xas, xa, first);
			uint64_t es, ee;
			void *entry;

			rcu_read_lock();
			do {
				entry = xas_find(&xas, last);
			} while (xas_retry(&xas, entry));
			if (!entry) {
				rcu_read_unlock();
				break;
			}
			tdx_entry_span(&xas, &es, &ee);
			rcu_read_unlock();
			xa_erase(xa, es);
			if (es < first)
				err = xa_err(xa_store_range(xa, es, first - 1, entry, GFP_KERNEL));
			if (!err && ee > last)
				err = xa_err(xa_store_range(xa, last + 1, ee, entry, GFP_KERNEL));
			if (err || ee >= last)
				break;
			first = ee + 1;
		}
	}
	tdx_leave();
	return err;
}

/* out[k] = xa_to_value(xa_load(xa, idx[k])), or -1 where nothing is stored. */
int tdx_xa_load(void *h, const uint64_t *idx, int64_t n, int64_t *out)
{
	tdx_enter();
	for (int64_t k = 0; k < n; k++) {
		void *entry = xa_load(h, idx[k]);

		out[k] = entry ? (xa_is_value(entry) ? (int64_t)xa_to_value(entry) : -2) : -1;
	}
	tdx_leave();
	return 0;
}

/*
 * Maximal runs of present indices from *cursor on (xas_for_each; a
 * multi-index entry covers its slot and its sibling slots), at most cap.
 * *cursor becomes where the next call resumes, TDX_SCAN_DONE at the end.
 */
int64_t tdx_xa_scan(void *h, uint64_t *cursor, int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	uint64_t from = *cursor;
	XA_STATE(xas, h, from);
	void *entry;

	if (from == TDX_SCAN_DONE || cap <= 0)
		return 0;
	tdx_enter();
	rcu_read_lock();
	xas_for_each(&xas, entry, ULONG_MAX) {
		uint64_t s, e;

		if (xas_retry(&xas, entry))	/* also skips XA_ZERO_ENTRY */
			continue;
		tdx_entry_span(&xas, &s, &e);
		if (s < from)
			s = from;
		if (!runs_add(&runs, s, e + 1)) {
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

/* xa_nodes per level under node: out[node->shift / XA_CHUNK_SHIFT]++. */
static void xa_count_nodes(const struct xarray *xa, struct xa_node *node,
			   int64_t *levels, int64_t *bitmaps)
{
	levels[node->shift / XA_CHUNK_SHIFT]++;
	for (int k = 0; k < XA_CHUNK_SIZE; k++) {
		void *entry = xa_entry(xa, node, k);

		if (xa_is_node(entry))
			xa_count_nodes(xa, xa_to_node(entry), levels, bitmaps);
		else if (bitmaps && entry && !xa_is_internal(entry) && !xa_is_value(entry))
			(*bitmaps)++;
	}
}

/* xa_nodes per level of an array, and the plain pointer entries (ida_bitmaps). */
static int xa_levels(const struct xarray *xa, int64_t *out, int cap, int64_t *bitmaps)
{
	int64_t levels[TDX_XA_LEVELS] = { 0 };
	void *head;

	tdx_enter();
	rcu_read_lock();
	head = xa_head(xa);
	if (xa_is_node(head))
		xa_count_nodes(xa, xa_to_node(head), levels, bitmaps);
	else if (bitmaps && head && !xa_is_internal(head) && !xa_is_value(head))
		(*bitmaps)++;
	rcu_read_unlock();
	tdx_leave();
	for (int k = 0; k < cap && k < TDX_XA_LEVELS; k++)
		out[k] = levels[k];
	return TDX_XA_LEVELS;
}

int tdx_xa_levels(void *h, int64_t *out, int cap)
{
	return xa_levels(h, out, cap, NULL);
}

/* ------------------------------------------------------------------------
 * IDA (lib/idr.c): one handle is one struct ida; the id is the PFN.
 */
void *tdx_ida_create(void)
{
	struct ida *ida = malloc(sizeof(*ida));

	tdx_init();
	if (ida)
		ida_init(ida);
	return ida;
}

void tdx_ida_destroy(void *h)
{
	if (!h)
		return;
	tdx_enter();
	ida_destroy(h);
	tdx_leave();
	free(h);
}

/* The kernel's answer, unfiltered: an id, or -ENOSPC / -ENOMEM. */
int tdx_ida_alloc_range(void *h, uint64_t min, uint64_t max)
{
	int ret;

	tdx_enter();
	ret = ida_alloc_range(h, min, max, GFP_KERNEL);
	tdx_leave();
	return ret;
}

/* Is id allocated?  (What ida_free() checks before it WARNs.) */
static bool ida_test(struct ida *ida, uint64_t id)
{
	void *entry = xa_load(&ida->xa, id / IDA_BITMAP_BITS);
	unsigned bit = id % IDA_BITMAP_BITS;

	if (!entry)
		return false;
	if (xa_is_value(entry))
		return bit < BITS_PER_XA_VALUE && (xa_to_value(entry) >> bit) & 1;
	return test_bit(bit, ((struct ida_bitmap *)entry)->bitmap);
}

/*
 * ida_alloc_range(ida, id, id, GFP_KERNEL) for every id of every
 * [starts[r], ends[r]).  Ids above INT_MAX are refused with -ENOSPC before
 * anything changes (*bad = the first such id): ida_alloc_range() refuses
 * them itself, and ids of 2^32 and more do not fit its unsigned int.  An id
 * already allocated (ida_alloc_range's -ENOSPC) stays as it is.
 */
int tdx_ida_mark_range(void *h, const uint64_t *starts, const uint64_t *ends,
		       int64_t n, int64_t *bad)
{
	int err = 0;

	for (int64_t r = 0; r < n; r++)
		if (ends[r] > starts[r] && ends[r] - 1 > INT_MAX) {
			*bad = starts[r] > INT_MAX ? starts[r] : (uint64_t)INT_MAX + 1;
			return -ENOSPC;
		}
	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		for (uint64_t id = starts[r]; id < ends[r]; id++) {
			int ret = ida_alloc_range(h, id, id, GFP_KERNEL);

			if (ret == -ENOSPC && ida_test(h, id))
				continue;
			if (ret < 0) {
				err = ret;
				*bad = id;
				break;
			}
		}
	tdx_leave();
	return err;
}

/* ida_free() of every allocated id of every [starts[r], ends[r]). */
int tdx_ida_free_range(void *h, const uint64_t *starts, const uint64_t *ends, int64_t n)
{
	struct ida *ida = h;

	tdx_enter();
	for (int64_t r = 0; r < n; r++) {
		uint64_t first = starts[r], last;
		unsigned long chunk;

		if (ends[r] <= starts[r] || first > INT_MAX)
			continue;
		last = ends[r] - 1 > INT_MAX ? INT_MAX : ends[r] - 1;
		chunk = first / IDA_BITMAP_BITS;
		while (xa_find(&ida->xa, &chunk, last / IDA_BITMAP_BITS, XA_PRESENT)) {
			uint64_t lo = chunk * IDA_BITMAP_BITS, hi = lo + IDA_BITMAP_BITS - 1;

			if (lo < first)
				lo = first;
			if (hi > last)
				hi = last;
			for (uint64_t id = lo; id <= hi; id++)
				if (ida_test(ida, id))
					ida_free(ida, id);
			if (chunk >= last / IDA_BITMAP_BITS)
				break;
			chunk++;
		}
	}
	tdx_leave();
	return 0;
}

/* Runs of set bits [from, size) of a bitmap, as for_each_set_bitrange_from. */
static bool bits_runs(struct tdx_runs *runs, const unsigned long *addr, unsigned long size,
		      unsigned long from, uint64_t base, uint64_t *stop)
{
	unsigned long b, e;

	for (b = find_next_bit(addr, size, from); b < size; b = find_next_bit(addr, size, e + 1)) {
		e = find_next_zero_bit(addr, size, b + 1);
		if (!runs_add(runs, base + b, base + e)) {
			*stop = base + b;
			return false;
		}
	}
	return true;
}

/*
 * Maximal runs of allocated ids from *cursor on, walking the IDA's XArray:
 * a value entry holds the bits of its chunk (BITS_PER_XA_VALUE of them), an
 * ida_bitmap 1024; both are read with find_next_bit/find_next_zero_bit.
 */
int64_t tdx_ida_scan(void *h, uint64_t *cursor, int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	struct ida *ida = h;
	uint64_t from = *cursor;
	XA_STATE(xas, &ida->xa, from / IDA_BITMAP_BITS);
	void *entry;

	if (from == TDX_SCAN_DONE || cap <= 0)
		return 0;
	tdx_enter();
	rcu_read_lock();
	xas_for_each(&xas, entry, ULONG_MAX) {
		uint64_t base = (uint64_t)xas.xa_index * IDA_BITMAP_BITS;
		unsigned long skip = from > base ? from - base : 0;
		uint64_t stop;
		bool more;

		if (xas_retry(&xas, entry))
			continue;
		if (xa_is_value(entry)) {
			unsigned long bits = xa_to_value(entry);

			more = bits_runs(&runs, &bits, BITS_PER_XA_VALUE, skip, base, &stop);
		} else {
			more = bits_runs(&runs, ((struct ida_bitmap *)entry)->bitmap,
					 IDA_BITMAP_BITS, skip, base, &stop);
		}
		if (!more) {
			*cursor = stop;
			goto out;
		}
	}
	*cursor = TDX_SCAN_DONE;
out:
	rcu_read_unlock();
	tdx_leave();
	return runs_finish(&runs);
}

/* xa_nodes per level of the IDA's XArray; *bitmaps = struct ida_bitmap leaves. */
int tdx_ida_levels(void *h, int64_t *out, int cap, int64_t *bitmaps)
{
	struct ida *ida = h;

	*bitmaps = 0;
	return xa_levels(&ida->xa, out, cap, bitmaps);
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

/* ------------------------------------------------------------------------
 * Bitmap: runs of set bits of a caller's bitmap of nbits bits, with the
 * kernel's find_next_bit/find_next_zero_bit (tools/lib/find_bit.c, the
 * harness's copy of lib/find_bit.c) as for_each_set_bitrange walks them.
 */
int64_t tdx_bitmap_runs(const uint64_t *words, uint64_t nbits, uint64_t *cursor,
			int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	uint64_t stop;

	if (*cursor == TDX_SCAN_DONE || cap <= 0)
		return 0;
	if (bits_runs(&runs, (const unsigned long *)words, nbits, *cursor, 0, &stop))
		*cursor = TDX_SCAN_DONE;
	else
		*cursor = stop;
	return runs_finish(&runs);
}

/* ------------------------------------------------------------------------
 * Bitmap stores: bitmap_set() / bitmap_clear() of every [starts[r], ends[r])
 * of a caller's bitmap of nbits bits.  For a length known only at run time,
 * include/linux/bitmap.h's bitmap_set() and bitmap_clear() are
 * __bitmap_set() and __bitmap_clear(): the first is lib/bitmap.c's, copied
 * verbatim by build.py; the second tools/lib/bitmap.c's, the harness's copy
 * of lib/bitmap.c's (build.py records whether the two are equal).  Their
 * start is an unsigned int and their length an int, so each range is passed
 * from its own word, (map + BIT_WORD(start), start % BITS_PER_LONG), which
 * is what __bitmap_set() computes first, in pieces of at most
 * TDX_BITMAP_PIECE bits: a kernel user of a bitmap past 2^32 bits must do
 * the same.  Not atomic: the kernel form serializes the stores (a lock whose
 * cost is not counted here).  Returns 0, or -EINVAL before anything changes
 * if a range is reversed or ends past nbits.
 */
#define TDX_BITMAP_PIECE (1U << 30)	/* bits per call: an int, a multiple of 64 */

void __bitmap_set(unsigned long *map, unsigned int start, int len);

static int bitmap_store(uint64_t *words, uint64_t nbits, const uint64_t *starts,
			const uint64_t *ends, int64_t n, bool set)
{
	for (int64_t r = 0; r < n; r++)
		if (starts[r] > ends[r] || ends[r] > nbits)
			return -EINVAL;
	for (int64_t r = 0; r < n; r++) {
		for (uint64_t s = starts[r]; s < ends[r]; ) {
			uint64_t len = ends[r] - s;
			unsigned long *map = (unsigned long *)words + BIT_WORD(s);

			if (len > TDX_BITMAP_PIECE)
				len = TDX_BITMAP_PIECE;
			if (set)
				__bitmap_set(map, s % BITS_PER_LONG, len);
			else
				__bitmap_clear(map, s % BITS_PER_LONG, len);
			s += len;
		}
	}
	return 0;
}

int tdx_bitmap_set_ranges(uint64_t *words, uint64_t nbits, const uint64_t *starts,
			  const uint64_t *ends, int64_t n)
{
	return bitmap_store(words, nbits, starts, ends, n, true);
}

int tdx_bitmap_clear_ranges(uint64_t *words, uint64_t nbits, const uint64_t *starts,
			    const uint64_t *ends, int64_t n)
{
	return bitmap_store(words, nbits, starts, ends, n, false);
}
