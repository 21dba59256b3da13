// SPDX-License-Identifier: MIT
/*
 * pages.c - struct page (option 3): the layout a kexec-time scan would read
 * for a flag bit in struct page, modeled in plain C for
 * trackers/linux/pages.py (ctypes).  pages.h has what it shares with
 * directmap.c (option 2): the sizes and bits, their sources, the conventions.
 *
 * One stand-in per PFN, `stride` bytes each (trackers.kernel.STRUCT_PAGE_BYTES,
 * 64 on x86-64), with the flags word at offset 0 as page->flags is
 * (include/linux/mm_types.h).  The array is
 * 2 MiB aligned and madvise(MADV_HUGEPAGE)d, as the vmemmap is mapped with
 * PMD pages (vmemmap_populate_hugepages()).  Every flags word starts with
 * every bit set except the tested one, so the scan must test its bit and
 * cannot take a nonzero word for a flagged page; the other 56 bytes are
 * zero.  All of it is written at create, so the memory is committed before
 * anything is timed.  The scan is the kexec-time loop
 *
 *	for (pfn = 0; pfn < max_pfn; pfn++)
 *		if (test_bit(PG_tdx_private, &pfn_to_page(pfn)->flags)) ...
 *
 * reading one word per struct page: one cache line each, the whole array.
 */
#include "pages.h"

int tdx_pages_fact(int which)
{
	switch (which) {
	case 0: return TDX_PG_TDX_PRIVATE;
	case 1: return X86_PAGE_BIT_SOFTW2;
	case 2: return TDX_TABLE_BYTES;
	case 3: return TDX_PTRS;
	default: return -1;
	}
}

struct tdx_struct_pages {
	unsigned char *mem;
	uint64_t max_pfn, stride, bytes;
	uint64_t mask;			/* 1UL << the tested flag bit */
};

static inline uint64_t *sp_flags(const struct tdx_struct_pages *sp, uint64_t pfn)
{
	return (uint64_t *)(sp->mem + pfn * sp->stride);
}

/*
 * max_pfn struct pages of stride bytes (a multiple of 8, flags word first),
 * testing flag `bit`.  NULL with *err = EINVAL for bad arguments, ENOMEM.
 */
void *tdx_sp_create(uint64_t max_pfn, uint64_t stride, int bit, int *err)
{
	struct tdx_struct_pages *sp;
	uint64_t words = stride / 8;

	if (!max_pfn || max_pfn > TDX_MAX_PFN || stride < 8 || stride % 8 || stride > 4096 ||
	    bit < 0 || bit > 63) {
		*err = EINVAL;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp) {
		*err = ENOMEM;
		return NULL;
	}
	sp->max_pfn = max_pfn;
	sp->stride = stride;
	sp->mask = 1ULL << bit;
	sp->bytes = max_pfn * stride;
	if (posix_memalign((void **)&sp->mem, TDX_HUGE_BYTES,
			   (sp->bytes + TDX_HUGE_BYTES - 1) / TDX_HUGE_BYTES * TDX_HUGE_BYTES)) {
		free(sp);
		*err = ENOMEM;
		return NULL;
	}
	madvise(sp->mem, sp->bytes, MADV_HUGEPAGE);	/* advice: may be refused */
	for (uint64_t pfn = 0; pfn < max_pfn; pfn++) {
		uint64_t *w = sp_flags(sp, pfn);

		w[0] = ~sp->mask;
		for (uint64_t k = 1; k < words; k++)
			w[k] = 0;
	}
	*err = 0;
	return sp;
}

void tdx_sp_destroy(void *h)
{
	struct tdx_struct_pages *sp = h;

	if (!sp)
		return;
	free(sp->mem);
	free(sp);
}

/* Every [s, e) lies in [0, max_pfn): 0, else -EINVAL (checked before a change). */
static int sp_check_ranges(const struct tdx_struct_pages *sp, const uint64_t *s,
			   const uint64_t *e, int64_t n)
{
	for (int64_t r = 0; r < n; r++)
		if (s[r] > e[r] || e[r] > sp->max_pfn)
			return -EINVAL;
	return 0;
}

/* Set (value != 0) or clear the flag on every page of every [s, e), with a
 * plain store or, where atomic, a LOCK-prefixed read-modify-write; each
 * e <= max_pfn, checked: -EINVAL before anything changes.  Inlined into both
 * callers with atomic constant, so neither loop tests it per page. */
static inline __attribute__((always_inline)) int
sp_store_ranges(struct tdx_struct_pages *sp, const uint64_t *s, const uint64_t *e, int64_t n,
		int value, bool atomic)
{
	if (sp_check_ranges(sp, s, e, n))
		return -EINVAL;
	for (int64_t r = 0; r < n; r++) {
		for (uint64_t pfn = s[r]; pfn < e[r]; pfn++) {
			uint64_t *f = sp_flags(sp, pfn);

			if (!atomic)
				*f = value ? *f | sp->mask : *f & ~sp->mask;
			else if (value)
				__atomic_fetch_or(f, sp->mask, __ATOMIC_SEQ_CST);
			else
				__atomic_fetch_and(f, ~sp->mask, __ATOMIC_SEQ_CST);
		}
	}
	return 0;
}

/* The plain store a build uses. */
int tdx_sp_set_ranges(void *h, const uint64_t *s, const uint64_t *e, int64_t n, int value)
{
	return sp_store_ranges(h, s, e, n, value, false);
}

/*
 * SetPageTdxPrivate() (value != 0) or ClearPageTdxPrivate() on every page of
 * every [s, e): include/linux/page-flags.h's PAGEFLAG() makes them set_bit()
 * and clear_bit() of the flag in page->flags, atomic read-modify-writes of
 * the word (x86 arch_set_bit()/arch_clear_bit(): a LOCK-prefixed or/and,
 * arch/x86/include/asm/bitops.h), as here.
 */
int tdx_sp_set_bit_ranges(void *h, const uint64_t *s, const uint64_t *e, int64_t n, int value)
{
	return sp_store_ranges(h, s, e, n, value, true);
}

/* out[i] = the flag of pfns[i] (each < max_pfn, checked). */
int tdx_sp_test(void *h, const uint64_t *pfns, int64_t n, uint8_t *out)
{
	struct tdx_struct_pages *sp = h;

	for (int64_t i = 0; i < n; i++)
		if (pfns[i] >= sp->max_pfn)
			return -EINVAL;
	for (int64_t i = 0; i < n; i++)
		out[i] = (*sp_flags(sp, pfns[i]) & sp->mask) != 0;
	return 0;
}

int64_t tdx_sp_count(void *h)
{
	struct tdx_struct_pages *sp = h;
	int64_t n = 0;

	for (uint64_t pfn = 0; pfn < sp->max_pfn; pfn++)
		n += (*sp_flags(sp, pfn) & sp->mask) != 0;
	return n;
}

/* Pages whose flags word has any bit but the tested one clear: 0 unless
 * something wrote a stand-in other than through this API. */
int64_t tdx_sp_check(void *h)
{
	struct tdx_struct_pages *sp = h;
	int64_t bad = 0;

	for (uint64_t pfn = 0; pfn < sp->max_pfn; pfn++)
		bad += (*sp_flags(sp, pfn) | sp->mask) != UINT64_MAX;
	return bad;
}

uint64_t tdx_sp_bytes(void *h)
{
	return ((struct tdx_struct_pages *)h)->bytes;
}

/*
 * Runs of flagged PFNs from *cursor on, at most cap: every struct page's
 * flags word is read, in PFN order, 64 pages to a mask word.  *cursor
 * becomes where the next call resumes (the first PFN of the run that did
 * not fit), TDX_SCAN_DONE at the end.
 */
int64_t tdx_sp_scan(void *h, uint64_t *cursor, int64_t *out_s, int64_t *out_e, int64_t cap)
{
	const struct tdx_struct_pages *sp = h;
	const uint64_t max = sp->max_pfn, stride = sp->stride;
	const int bit = __builtin_ctzll(sp->mask);
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	uint64_t pfn = *cursor;

	if (pfn == TDX_SCAN_DONE || cap <= 0)
		return 0;
	while (pfn < max) {
		const uint64_t base = pfn & ~63ULL;
		const uint64_t lim = base + 64 < max ? base + 64 : max;
		const unsigned char *p = sp->mem + pfn * stride;
		uint64_t m = 0;

		for (uint64_t q = pfn; q < lim; q++, p += stride)
			m |= ((*(const uint64_t *)p >> bit) & 1) << (q - base);
		if (!mask_runs(&runs, m, base, cursor))
			return runs_finish(&runs);
		pfn = lim;
	}
	*cursor = TDX_SCAN_DONE;
	return runs_finish(&runs);
}
