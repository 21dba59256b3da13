// SPDX-License-Identifier: GPL-2.0
/*
 * glue_xarray.c - the kernel's XArray (lib/xarray.c) behind the glue's flat
 * C API (glue.h has the conventions), for trackers/linux/binding.py.
 */
#include "glue.h"

#define TDX_XA_LEVELS 11		/* shifts 0, 6, ..., 60 */

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

/* xa_store(xa, i, xa_mk_value(values[r]), GFP_KERNEL) at every index i of
 * [starts[r], ends[r]): one call for ranges of one value or of different
 * values (guest_memfd's PFN offsets).  0 or the first negative errno. */
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

/* ------------------------------------------------------------------------
 * The build walks: the trees the per-index calls above leave, built by one
 * xas walk per range (lib/xarray.c's advanced API, as its own batch users
 * walk: xas_store() then xas_next() under one xas_lock()).  They build a
 * structure to its state; the per-index calls are what a kernel user makes
 * and what a conversion is timed by.  A walk stays valid because a store of
 * a non-NULL entry never frees a node, and xas_create() goes on from where
 * xas_next() stopped: a missing child, or past the top (XAS_BOUNDS).  For
 * arrays of single-index entries only.  tests/test_kernel_walks.py checks,
 * node by node (tdx_xa_digest), that each walk leaves the tree its
 * per-index twin leaves, after histories of stores and erases.
 */

/*
 * One walk over [first, last]: entry at every index or, entry NULL,
 * XA_ZERO_ENTRY where a slot is empty (xa_reserve(), which is
 * xa_cmpxchg(NULL, XA_ZERO_ENTRY)).  0 or a negative errno.
 */
static int tdx_xa_walk(void *h, uint64_t first, uint64_t last, void *entry)
{
	XA_STATE(xas, h, first);

	do {
		void *curr;

		xas_lock(&xas);
		curr = xas_load(&xas);
		for (;;) {
			if (entry || !curr)
				xas_store(&xas, entry ? entry : XA_ZERO_ENTRY);
			if (xas_error(&xas) || xas.xa_index == last)
				break;
			curr = xas_next(&xas);
		}
		xas_unlock(&xas);
	} while (xas_nomem(&xas, GFP_KERNEL));
	return xas_error(&xas);
}

/* The tree of tdx_xa_store_range_values(): xa_mk_value(values[r]) at every
 * index of [starts[r], ends[r]).  0 or the first negative errno. */
int tdx_xa_walk_store(void *h, const uint64_t *starts, const uint64_t *ends,
		      const uint64_t *values, int64_t n)
{
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++)
		if (ends[r] > starts[r])
			err = tdx_xa_walk(h, starts[r], ends[r] - 1, xa_mk_value(values[r]));
	tdx_leave();
	return err;
}

/* The tree of tdx_xa_reserve_then_store(): per range, XA_ZERO_ENTRY where
 * a slot is empty, then the value at every index. */
int tdx_xa_walk_reserve_then_store(void *h, const uint64_t *starts, const uint64_t *ends,
				   int64_t n, uint64_t value)
{
	int err = 0;

	tdx_enter();
	for (int64_t r = 0; r < n && !err; r++) {
		if (ends[r] <= starts[r])
			continue;
		err = tdx_xa_walk(h, starts[r], ends[r] - 1, NULL);
		if (!err)
			err = tdx_xa_walk(h, starts[r], ends[r] - 1, xa_mk_value(value));
	}
	tdx_leave();
	return err;
}

/* The tree of tdx_xa_erase_range(): xas_store(NULL) over every present
 * entry of every range (xas_for_each; reserved entries are not present, as
 * xa_find() skips them).  xas_for_each goes on through xas_find() where a
 * deletion freed the node it stood in. */
int tdx_xa_walk_erase(void *h, const uint64_t *starts, const uint64_t *ends, int64_t n)
{
	tdx_enter();
	for (int64_t r = 0; r < n; r++) {
		XA_STATE(xas, h, starts[r]);
		void *entry;

		if (ends[r] <= starts[r])
			continue;
		xas_lock(&xas);
		xas_for_each(&xas, entry, ends[r] - 1)
			if (!xa_is_zero(entry))
				xas_store(&xas, NULL);
		xas_unlock(&xas);
	}
	tdx_leave();
	return 0;
}

/* FNV-1a over one 64-bit word */
static uint64_t tdx_mix(uint64_t h, uint64_t w)
{
	for (int k = 0; k < 8; k++, w >>= 8)
		h = (h ^ (w & 0xff)) * 0x100000001b3ULL;
	return h;
}

static uint64_t tdx_mix_entry(const struct xarray *xa, uint64_t h, void *entry);

static uint64_t tdx_mix_node(const struct xarray *xa, uint64_t h, struct xa_node *node)
{
	h = tdx_mix(h, node->shift);
	if (node->parent)		/* xas_alloc() sets a top node's offset never */
		h = tdx_mix(h, node->offset);
	h = tdx_mix(h, node->count);
	h = tdx_mix(h, node->nr_values);
	for (int m = 0; m < XA_MAX_MARKS; m++)
		for (int w = 0; w < XA_MARK_LONGS; w++)
			h = tdx_mix(h, node->marks[m][w]);
	for (int k = 0; k < XA_CHUNK_SIZE; k++)
		h = tdx_mix_entry(xa, h, xa_entry(xa, node, k));
	return h;
}

/* An entry by kind: a node (its whole subtree), a value, an internal entry
 * (sibling, zero, retry: the entry word itself), a pointer (by kind only:
 * its address is not the tree's shape). */
static uint64_t tdx_mix_entry(const struct xarray *xa, uint64_t h, void *entry)
{
	if (xa_is_node(entry))
		return tdx_mix_node(xa, tdx_mix(h, 1), xa_to_node(entry));
	if (!entry || xa_is_value(entry) || xa_is_internal(entry))
		return tdx_mix(tdx_mix(h, 2), (uint64_t)(uintptr_t)entry);
	return tdx_mix(h, 3);
}

/* A digest of the whole tree: the array's flags, then every node in order
 * with its shift, offset (below the top), count, nr_values, marks and
 * slots.  Two arrays with equal digests hold the same nodes, entries and
 * marks. */
uint64_t tdx_xa_digest(void *h)
{
	struct xarray *xa = h;
	uint64_t d = 0xcbf29ce484222325ULL;

	tdx_enter();
	rcu_read_lock();
	d = tdx_mix(d, xa->xa_flags);
	d = tdx_mix_entry(xa, d, xa_head(xa));
	rcu_read_unlock();
	tdx_leave();
	return d;
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
int tdx_xa_node_levels(const struct xarray *xa, int64_t *out, int cap, int64_t *bitmaps)
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
	return tdx_xa_node_levels(h, out, cap, NULL);
}
