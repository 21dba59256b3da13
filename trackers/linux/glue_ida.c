// SPDX-License-Identifier: GPL-2.0
/*
 * glue_ida.c - the kernel's IDA (lib/idr.c) behind the glue's flat C API
 * (glue.h has the conventions), for trackers/linux/binding.py.
 */
#include "glue.h"

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

			more = tdx_bits_runs(&runs, &bits, BITS_PER_XA_VALUE, skip, base, &stop);
		} else {
			more = tdx_bits_runs(&runs, ((struct ida_bitmap *)entry)->bitmap,
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
	return tdx_xa_node_levels(&ida->xa, out, cap, bitmaps);
}
