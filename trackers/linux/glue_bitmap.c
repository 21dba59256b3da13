// SPDX-License-Identifier: GPL-2.0
/*
 * glue_bitmap.c - the kernel's bitmap stores and find_bit walks
 * (include/linux/bitmap.h, tools/lib/find_bit.c) over a caller's bitmap,
 * behind the glue's flat C API (glue.h has the conventions), for
 * trackers/linux/binding.py.
 */
#include "glue.h"

/* ------------------------------------------------------------------------
 * Bitmap: runs of set bits of a caller's bitmap of nbits bits, with the
 * kernel's find_next_bit/find_next_zero_bit (tools/lib/find_bit.c, the
 * harness's copy of lib/find_bit.c) as for_each_set_bitrange walks them.
 */
/* Runs of set bits [from, size) of a bitmap, as for_each_set_bitrange_from. */
bool tdx_bits_runs(struct tdx_runs *runs, const unsigned long *addr, unsigned long size,
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

int64_t tdx_bitmap_runs(const uint64_t *words, uint64_t nbits, uint64_t *cursor,
			int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	uint64_t stop;

	if (*cursor == TDX_SCAN_DONE || cap <= 0)
		return 0;
	if (tdx_bits_runs(&runs, (const unsigned long *)words, nbits, *cursor, 0, &stop))
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
