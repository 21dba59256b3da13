// SPDX-License-Identifier: MIT
/*
 * directmap.c - the direct map (option 2): the layout a kexec-time scan
 * would read for a software bit in the direct map's PTEs, modeled in plain
 * C for trackers/linux/pages.py (ctypes).  pages.h has what it shares with
 * pages.c (option 3): the sizes and bits, their sources, the conventions.
 *
 * x86-64 4-level page tables, 512 eight-byte entries per 4 KiB table page
 * (arch/x86/include/asm/pgtable_64_types.h): PUD pages (one per 512 GiB),
 * PMD pages (one per 1 GiB that is not one 1 GiB mapping), PTE pages (one
 * per 2 MiB that is not one 2 MiB or 1 GiB mapping), built from the
 * mappings split_mem_range() gives (the caller passes them:
 * trackers.kexec.directmap).  Entries carry the x86 bits of
 * arch/x86/include/asm/pgtable_types.h: a leaf is the page's physical
 * address | __PAGE_KERNEL (present, RW, accessed, dirty, global, NX), with
 * _PAGE_PSE for a 2 MiB or 1 GiB leaf (__PAGE_KERNEL_LARGE); a table entry
 * is the child page's address | _KERNPG_TABLE.  Here the "physical"
 * address of a table page is its userspace address (4 KiB aligned, below
 * 2^47, inside PTE_PFN_MASK), so the walk follows entries as the kernel
 * follows __va(pud_pfn(pud) << PAGE_SHIFT).  The top level (the PGD, or the
 * P4D with 5-level paging) is an array of such entries, one per 512 GiB,
 * shared with the rest of the kernel and not counted, as the model does not.
 *
 * The soft bit: _PAGE_BIT_SOFTW2 (bit 10), which the kernel names
 * _PAGE_BIT_UFFD_WP and uses only in user PTEs (userfaultfd write-protect),
 * never in the kernel's direct map.  SOFTW1 (bit 9) is _PAGE_BIT_SPECIAL and
 * also _PAGE_BIT_CPA_TEST, which the CPA self-test sets on direct-map pages;
 * SOFTW3 (11, soft-dirty), SOFTW4 (57, devmap) and SOFTW5 (58, saved-dirty /
 * NOPTISHADOW) are taken too.  Overloading a user-only bit in kernel
 * mappings is how _PAGE_BIT_CPA_TEST already shares SOFTW1; SOFTW2 is in
 * _PAGE_CHG_MASK, so set_memory_*() keeps it across protection changes.
 *
 * Marking a page splits the large mapping that holds it as
 * set_memory.c split_large_page() does: a 1 GiB leaf becomes a PMD page of
 * 512 2 MiB leaves, a 2 MiB leaf a PTE page of 512 4 KiB leaves, one new
 * 4 KiB table page per split, installed whole.  Splits are one-way (no
 * cpa_collapse_large_pages()).  A page outside the direct map (a hole in
 * RAM) has no PTE to hold the bit: marking it is counted as missed.
 *
 * The walk reads every entry of every PUD page, of every PMD page reached
 * through a present non-leaf PUD entry and of every PTE page reached through
 * a present non-leaf PMD entry: table pages x 4 KiB, the model's
 * scanned_bytes.  It counts the entries it reads, up to and including the
 * PTE a full chunk stops at (the rest of that PTE's group of 64 is loaded
 * too, uncounted); a walk resumed from the cursor reads again the PUD, PMD
 * and PTE entry it stopped at (24 bytes).
 * Where table pages sit matters to the walk (a 4 KiB page read cold costs
 * far more than one in a stream the prefetcher follows): boot tables are
 * handed out in the order they are built, as alloc_low_pages() does, and a
 * mark's split pages, by default, in a random order within one region, as
 * pages the page allocator handed out over time would be; in order on
 * request (the walk's best case).  Not modeled: the TLB.
 */
#include "pages.h"

struct tdx_pool_chunk {
	struct tdx_pool_chunk *next;
	uint64_t *pages;
};

struct tdx_direct_map {
	uint64_t *top;			/* one entry per 512 GiB (PGD/P4D), not counted */
	uint64_t ntop;
	struct tdx_pool_chunk *chunks;	/* every chunk, for destroy */
	uint64_t *inorder;		/* the chunk handed out in order ... */
	uint64_t inorder_used;		/* ... and how many of its pages are */
	uint64_t *scatter;		/* a mark's split pages, handed out ... */
	uint32_t *perm;			/* ... in this random order */
	uint64_t scatter_n, scatter_used;
	uint64_t marks;			/* scattered marks so far (varies the seed) */
	int64_t host_bytes;		/* every chunk, the top-level array */
	int64_t pages[3];		/* PUD, PMD, PTE pages */
	int64_t read[3];		/* PUD, PMD, PTE entries read by walks */
};

static inline uint64_t *table_of(uint64_t entry)
{
	return (uint64_t *)(uintptr_t)(entry & X86_PTE_PFN_MASK);
}

static inline bool is_present(uint64_t entry)
{
	return entry & X86_PAGE_PRESENT;
}

static inline bool is_leaf(uint64_t entry)
{
	return entry & X86_PAGE_PSE;
}

/* npages table pages, 2 MiB aligned, on the chunk list; or NULL. */
static uint64_t *pool_chunk(struct tdx_direct_map *dm, uint64_t npages)
{
	struct tdx_pool_chunk *c = malloc(sizeof(*c));
	size_t bytes = npages * TDX_TABLE_BYTES;

	if (!c)
		return NULL;
	if (posix_memalign((void **)&c->pages, TDX_HUGE_BYTES, bytes)) {
		free(c);
		return NULL;
	}
	madvise(c->pages, bytes, MADV_HUGEPAGE);	/* advice: may be refused */
	c->next = dm->chunks;
	dm->chunks = c;
	dm->host_bytes += bytes;
	return c->pages;
}

/*
 * A zeroed table page (every entry not present), or NULL.  From the
 * current mark's scattered region while it lasts (split pages come from the
 * page allocator when the split happens, in no order the walk follows),
 * else the next page of the in-order chunk (boot tables, which
 * alloc_low_pages() hands out in the order they are built).
 */
static uint64_t *table_alloc(struct tdx_direct_map *dm, int level)
{
	uint64_t *page;

	if (dm->scatter_used < dm->scatter_n) {
		page = dm->scatter + (uint64_t)dm->perm[dm->scatter_used++] * TDX_PTRS;
	} else {
		if (!dm->inorder || dm->inorder_used == TDX_POOL_PAGES) {
			dm->inorder = pool_chunk(dm, TDX_POOL_PAGES);
			dm->inorder_used = 0;
			if (!dm->inorder)
				return NULL;
		}
		page = dm->inorder + dm->inorder_used++ * TDX_PTRS;
	}
	memset(page, 0, TDX_TABLE_BYTES);
	dm->pages[level]++;
	return page;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The next n table_alloc()s come from one region of n pages, in a random
 * order (Fisher-Yates, splitmix64 from seed); false if out of memory. */
static bool scatter_begin(struct tdx_direct_map *dm, uint64_t n, uint64_t seed)
{
	uint64_t state = seed;

	if (!n)
		return true;
	dm->perm = malloc(n * sizeof(*dm->perm));
	dm->scatter = dm->perm ? pool_chunk(dm, n) : NULL;
	if (!dm->scatter) {
		free(dm->perm);
		dm->perm = NULL;
		return false;
	}
	for (uint64_t i = 0; i < n; i++)
		dm->perm[i] = (uint32_t)i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = splitmix64(&state) % (i + 1);
		uint32_t tmp = dm->perm[i];

		dm->perm[i] = dm->perm[j];
		dm->perm[j] = tmp;
	}
	dm->scatter_n = n;
	dm->scatter_used = 0;
	return true;
}

static void scatter_end(struct tdx_direct_map *dm)
{
	free(dm->perm);
	dm->perm = NULL;
	dm->scatter = NULL;
	dm->scatter_n = dm->scatter_used = 0;
}

static inline uint64_t table_entry(const uint64_t *page)
{
	return (uint64_t)(uintptr_t)page | X86_KERNPG_TABLE;
}

void tdx_dm_destroy(void *h)
{
	struct tdx_direct_map *dm = h;

	if (!dm)
		return;
	while (dm->chunks) {
		struct tdx_pool_chunk *c = dm->chunks;

		dm->chunks = c->next;
		free(c->pages);
		free(c);
	}
	free(dm->perm);
	free(dm->top);
	free(dm);
}

/* Mapping r is aligned to its level and lies after mapping r - 1. */
static int check_mappings(const uint64_t *s, const uint64_t *e, const int8_t *lv, int64_t n)
{
	for (int64_t r = 0; r < n; r++) {
		uint64_t align;

		if (lv[r] == TDX_LEVEL_4K)
			align = 1;
		else if (lv[r] == TDX_LEVEL_2M)
			align = 1ULL << TDX_SHIFT_2M;
		else if (lv[r] == TDX_LEVEL_1G)
			align = 1ULL << TDX_SHIFT_1G;
		else
			return -EINVAL;
		if (s[r] >= e[r] || e[r] > TDX_MAX_PFN || s[r] % align || e[r] % align)
			return -EINVAL;
		if (r && s[r] < e[r - 1])
			return -EINVAL;
	}
	return 0;
}

/*
 * Table pages the boot direct map of these mappings needs: out[0..2] PUD,
 * PMD, PTE pages (kernel_physical_mapping_init()).  Mappings sorted,
 * disjoint, aligned to their level (-EINVAL otherwise).
 */
int tdx_dm_plan(const uint64_t *s, const uint64_t *e, const int8_t *lv, int64_t n,
		int64_t *out)
{
	uint64_t last[3] = { UINT64_MAX, UINT64_MAX, UINT64_MAX };
	int ret = check_mappings(s, e, lv, n);

	out[0] = out[1] = out[2] = 0;
	if (ret)
		return ret;
	for (int64_t r = 0; r < n; r++) {
		/* PUD pages: every 512 GiB slot touched */
		uint64_t a = s[r] >> TDX_SHIFT_512G, b = (e[r] - 1) >> TDX_SHIFT_512G;

		out[0] += b - a + 1 - (last[0] == a);
		last[0] = b;
		if (lv[r] == TDX_LEVEL_1G)
			continue;
		a = s[r] >> TDX_SHIFT_1G;		/* PMD pages: every 1 GiB slot */
		b = (e[r] - 1) >> TDX_SHIFT_1G;
		out[1] += b - a + 1 - (last[1] == a);
		last[1] = b;
		if (lv[r] == TDX_LEVEL_2M)
			continue;
		a = s[r] >> TDX_SHIFT_2M;		/* PTE pages: every 2 MiB slot */
		b = (e[r] - 1) >> TDX_SHIFT_2M;
		out[2] += b - a + 1 - (last[2] == a);
		last[2] = b;
	}
	return 0;
}

/* The table page under *entry, allocated (and *entry installed) if not
 * present; NULL if *entry is a leaf or memory ran out (*err says which). */
static uint64_t *table_get(struct tdx_direct_map *dm, uint64_t *entry, int level, int *err)
{
	uint64_t *page;

	if (is_present(*entry)) {
		if (is_leaf(*entry)) {
			*err = -EINVAL;
			return NULL;
		}
		return table_of(*entry);
	}
	page = table_alloc(dm, level);
	if (!page) {
		*err = -ENOMEM;
		return NULL;
	}
	*entry = table_entry(page);
	return page;
}

/*
 * The boot direct map of these mappings (as tdx_dm_plan), PFNs below
 * ntop * 512 GiB.  NULL with *err = EINVAL or ENOMEM.
 */
void *tdx_dm_create(uint64_t ntop, const uint64_t *s, const uint64_t *e, const int8_t *lv,
		    int64_t n, int *err)
{
	struct tdx_direct_map *dm;
	int ret = check_mappings(s, e, lv, n);

	if (!ret && (ntop > TDX_MAX_PFN >> TDX_SHIFT_512G ||
		     (n && e[n - 1] > ntop << TDX_SHIFT_512G)))
		ret = -EINVAL;
	if (ret) {
		*err = -ret;
		return NULL;
	}
	dm = calloc(1, sizeof(*dm));
	if (!dm || !(dm->top = calloc(ntop ? ntop : 1, sizeof(uint64_t)))) {
		free(dm);
		*err = ENOMEM;
		return NULL;
	}
	dm->ntop = ntop;
	dm->host_bytes = (int64_t)(ntop ? ntop : 1) * (int64_t)sizeof(uint64_t);
	for (int64_t r = 0; r < n && !ret; r++) {
		uint64_t step = lv[r] == TDX_LEVEL_1G ? 1ULL << TDX_SHIFT_1G :
				lv[r] == TDX_LEVEL_2M ? 1ULL << TDX_SHIFT_2M : 1;

		for (uint64_t pfn = s[r]; pfn < e[r] && !ret; pfn += step) {
			uint64_t *pud, *pmd, *pte;
			uint64_t leaf = pfn << 12;

			pud = table_get(dm, &dm->top[pfn >> TDX_SHIFT_512G], 0, &ret);
			if (!pud)
				break;
			if (lv[r] == TDX_LEVEL_1G) {
				pud[(pfn >> TDX_SHIFT_1G) % TDX_PTRS] = leaf | X86_PAGE_KERNEL_LARGE;
				continue;
			}
			pmd = table_get(dm, &pud[(pfn >> TDX_SHIFT_1G) % TDX_PTRS], 1, &ret);
			if (!pmd)
				break;
			if (lv[r] == TDX_LEVEL_2M) {
				pmd[(pfn >> TDX_SHIFT_2M) % TDX_PTRS] = leaf | X86_PAGE_KERNEL_LARGE;
				continue;
			}
			pte = table_get(dm, &pmd[(pfn >> TDX_SHIFT_2M) % TDX_PTRS], 2, &ret);
			if (!pte)
				break;
			pte[pfn % TDX_PTRS] = leaf | X86_PAGE_KERNEL;
		}
	}
	if (ret) {
		tdx_dm_destroy(dm);
		*err = -ret;
		return NULL;
	}
	*err = 0;
	return dm;
}

/* split_large_page(): *entry, a leaf mapping 512 << shift PFNs from its
 * address, becomes a table page of 512 leaves of the next level down. */
static uint64_t *split_leaf(struct tdx_direct_map *dm, uint64_t *entry, int level)
{
	uint64_t *page = table_alloc(dm, level);
	uint64_t base = (*entry & X86_PTE_PFN_MASK) >> 12;
	uint64_t step = level == 1 ? 1ULL << TDX_SHIFT_2M : 1;
	uint64_t prot = level == 1 ? X86_PAGE_KERNEL_LARGE : X86_PAGE_KERNEL;

	if (!page)
		return NULL;
	for (int k = 0; k < TDX_PTRS; k++)
		page[k] = ((base + k * step) << 12) | prot;
	*entry = table_entry(page);
	return page;
}

static int dm_mark(struct tdx_direct_map *dm, const uint64_t *s, const uint64_t *e, int64_t n,
		   int dry_run, int64_t *out)
{
	uint64_t last_1g = UINT64_MAX, last_2m = UINT64_MAX;
	const uint64_t end_all = dm->ntop << TDX_SHIFT_512G;

	out[0] = out[1] = out[2] = 0;
	for (int64_t r = 0; r < n; r++)
		if (s[r] > e[r] || (r && s[r] < e[r - 1]))
			return -EINVAL;
	for (int64_t r = 0; r < n; r++) {
		uint64_t pfn = s[r];

		while (pfn < e[r]) {
			/* one 2 MiB slot at a time: [pfn, stop) */
			uint64_t slot = pfn >> TDX_SHIFT_2M;
			uint64_t stop = (slot + 1) << TDX_SHIFT_2M;
			uint64_t top, *pud, *pmd, *pte, *pude, *pmde;

			if (stop > e[r])
				stop = e[r];
			if (pfn >= end_all) {
				out[2] += e[r] - pfn;
				break;
			}
			top = dm->top[pfn >> TDX_SHIFT_512G];
			if (!is_present(top))
				goto missed;
			pud = table_of(top);
			pude = &pud[(pfn >> TDX_SHIFT_1G) % TDX_PTRS];
			if (!is_present(*pude))
				goto missed;
			if (is_leaf(*pude)) {
				if (dry_run) {
					out[0] += last_1g != pfn >> TDX_SHIFT_1G;
					out[1] += last_2m != slot;
					last_1g = pfn >> TDX_SHIFT_1G;
					last_2m = slot;
					pfn = stop;
					continue;
				}
				if (!split_leaf(dm, pude, 1))
					return -ENOMEM;
				out[0]++;
			}
			pmd = table_of(*pude);
			pmde = &pmd[slot % TDX_PTRS];
			if (!is_present(*pmde))
				goto missed;
			if (is_leaf(*pmde)) {
				if (dry_run) {
					out[1] += last_2m != slot;
					last_2m = slot;
					pfn = stop;
					continue;
				}
				if (!split_leaf(dm, pmde, 2))
					return -ENOMEM;
				out[1]++;
			}
			pte = table_of(*pmde);
			for (; pfn < stop; pfn++) {
				uint64_t *p = &pte[pfn % TDX_PTRS];

				if (!is_present(*p))
					out[2]++;
				else if (!dry_run)
					*p |= X86_PAGE_TDX_PRIVATE;
			}
			continue;
missed:
			out[2] += stop - pfn;
			pfn = stop;
		}
	}
	return 0;
}

/*
 * Set the soft bit on every page of the sorted, disjoint ranges, splitting
 * the large mappings that hold them.  dry_run: change nothing, only count.
 * out[0], out[1]: PMD and PTE pages the splits allocate (would allocate);
 * out[2]: pages outside the direct map (no PTE to hold the bit: missed).
 * seed >= 0: the split pages come from one region in a random order (from
 * seed and the marks before); seed < 0: in order, after the boot tables.
 * Returns 0, -EINVAL (ranges unsorted) or -ENOMEM (the splits done so far
 * stay, each whole; out[] counts them).
 */
int tdx_dm_mark(void *h, const uint64_t *s, const uint64_t *e, int64_t n, int dry_run,
		int64_t *out, int64_t seed)
{
	struct tdx_direct_map *dm = h;
	int ret;

	if (dry_run || seed < 0)
		return dm_mark(dm, s, e, n, dry_run, out);
	ret = dm_mark(dm, s, e, n, 1, out);
	if (ret)
		return ret;
	if (!scatter_begin(dm, (uint64_t)(out[0] + out[1]),
			   (uint64_t)seed ^ (dm->marks++ * 0xd1b54a32d192ed03ULL)))
		return -ENOMEM;
	ret = dm_mark(dm, s, e, n, 0, out);
	scatter_end(dm);
	return ret;
}

/* Clear the soft bit on every page of the ranges (no collapse); returns 0. */
int tdx_dm_unmark(void *h, const uint64_t *s, const uint64_t *e, int64_t n)
{
	struct tdx_direct_map *dm = h;
	const uint64_t end_all = dm->ntop << TDX_SHIFT_512G;

	for (int64_t r = 0; r < n; r++) {
		uint64_t pfn = s[r], stop_all = e[r] < end_all ? e[r] : end_all;

		while (pfn < stop_all) {
			uint64_t stop = ((pfn >> TDX_SHIFT_2M) + 1) << TDX_SHIFT_2M;
			uint64_t top = dm->top[pfn >> TDX_SHIFT_512G], pude, pmde, *pte;

			if (stop > stop_all)
				stop = stop_all;
			if (!is_present(top))
				goto next;
			pude = table_of(top)[(pfn >> TDX_SHIFT_1G) % TDX_PTRS];
			if (!is_present(pude) || is_leaf(pude))
				goto next;
			pmde = table_of(pude)[(pfn >> TDX_SHIFT_2M) % TDX_PTRS];
			if (!is_present(pmde) || is_leaf(pmde))
				goto next;
			pte = table_of(pmde);
			for (uint64_t p = pfn; p < stop; p++)
				pte[p % TDX_PTRS] &= ~X86_PAGE_TDX_PRIVATE;
next:
			pfn = stop;
		}
	}
	return 0;
}

/* The 4 KiB PTE mapping pfn, or 0 (not mapped, or mapped by a large leaf). */
static uint64_t pte_of(const struct tdx_direct_map *dm, uint64_t pfn)
{
	uint64_t top, pude, pmde;

	if (pfn >> TDX_SHIFT_512G >= dm->ntop)
		return 0;
	top = dm->top[pfn >> TDX_SHIFT_512G];
	if (!is_present(top))
		return 0;
	pude = table_of(top)[(pfn >> TDX_SHIFT_1G) % TDX_PTRS];
	if (!is_present(pude) || is_leaf(pude))
		return 0;
	pmde = table_of(pude)[(pfn >> TDX_SHIFT_2M) % TDX_PTRS];
	if (!is_present(pmde) || is_leaf(pmde))
		return 0;
	return table_of(pmde)[pfn % TDX_PTRS];
}

/* out[i] = the soft bit of pfns[i]'s PTE (0 where there is no 4 KiB PTE). */
int tdx_dm_test(void *h, const uint64_t *pfns, int64_t n, uint8_t *out)
{
	for (int64_t i = 0; i < n; i++) {
		uint64_t pte = pte_of(h, pfns[i]);

		out[i] = is_present(pte) && (pte & X86_PAGE_TDX_PRIVATE);
	}
	return 0;
}

static inline uint64_t first_index(uint64_t from, uint64_t base, int shift)
{
	return from > base ? (from - base) >> shift : 0;
}

/*
 * Runs of PFNs whose 4 KiB PTE has the soft bit, from *cursor on, at most
 * cap: the walk reads every entry of every PUD page, descends into the PMD
 * page of every present non-leaf PUD entry and the PTE page of every
 * present non-leaf PMD entry.  The PFN is the entry's position in the
 * direct map (__pa of its virtual address).  *cursor as tdx_sp_scan.
 */
int64_t tdx_dm_scan(void *h, uint64_t *cursor, int64_t *out_s, int64_t *out_e, int64_t cap)
{
	struct tdx_direct_map *dm = h;
	struct tdx_runs runs = runs_init(out_s, out_e, cap);
	const uint64_t from = *cursor;
	int64_t n_pud = 0, n_pmd = 0, n_pte = 0;

	if (from == TDX_SCAN_DONE || cap <= 0)
		return 0;
	for (uint64_t g = from >> TDX_SHIFT_512G; g < dm->ntop; g++) {
		const uint64_t gbase = g << TDX_SHIFT_512G;
		const uint64_t *pud;

		if (!is_present(dm->top[g]))
			continue;
		pud = table_of(dm->top[g]);
		for (uint64_t i = first_index(from, gbase, TDX_SHIFT_1G); i < TDX_PTRS; i++) {
			const uint64_t ibase = gbase + (i << TDX_SHIFT_1G);
			const uint64_t pude = pud[i];
			const uint64_t *pmd;

			n_pud++;
			if (!is_present(pude) || is_leaf(pude))
				continue;
			pmd = table_of(pude);
			for (uint64_t j = first_index(from, ibase, TDX_SHIFT_2M); j < TDX_PTRS; j++) {
				const uint64_t jbase = ibase + (j << TDX_SHIFT_2M);
				const uint64_t pmde = pmd[j];
				const uint64_t *pte;

				n_pmd++;
				if (!is_present(pmde) || is_leaf(pmde))
					continue;
				pte = table_of(pmde);
				for (uint64_t k = first_index(from, jbase, 0); k < TDX_PTRS; ) {
					const uint64_t group = (k | 63) + 1;	/* 64 PTEs to a word */
					const uint64_t *g = pte + (k & ~63ULL);
					uint64_t m = 0, stop;

					/* the soft bit is only ever set in present PTEs
					 * (tdx_dm_check), so testing it alone suffices */
#pragma GCC unroll 64
					for (int b = 0; b < 64; b++)
						m |= ((g[b] >> X86_PAGE_BIT_SOFTW2) & 1) << b;
					m &= ~0ULL << (k & 63);
					n_pte += group - k;
					if (!mask_runs(&runs, m, jbase + (k & ~63ULL), &stop)) {
						/* counted through the PTE it stopped at */
						n_pte -= jbase + group - stop - 1;
						*cursor = stop;
						goto out;
					}
					k = group;
				}
			}
		}
	}
	*cursor = TDX_SCAN_DONE;
out:
	dm->read[0] += n_pud;
	dm->read[1] += n_pmd;
	dm->read[2] += n_pte;
	return runs_finish(&runs);
}

/* Counters, no walk: out[0..2] PUD, PMD, PTE entries read by walks since
 * create or the last reset (reset != 0 zeroes them after reading); out[3..5]
 * PUD, PMD, PTE pages; out[6] host bytes (pool chunks, top-level array). */
void tdx_dm_read(void *h, int64_t *out, int reset)
{
	struct tdx_direct_map *dm = h;

	for (int l = 0; l < 3; l++) {
		out[l] = dm->read[l];
		out[3 + l] = dm->pages[l];
		if (reset)
			dm->read[l] = 0;
	}
	out[6] = dm->host_bytes;
}

/*
 * out[0..2]: PUD, PMD, PTE pages; out[3..5]: 4 KiB pages, 2 MiB mappings,
 * 1 GiB mappings present (/proc/meminfo DirectMap4k/2M/1G); out[6]: PTEs
 * with the soft bit; out[7]: host bytes (pool chunks and the top-level
 * array).  A count, not a walk: it adds nothing to tdx_dm_read().
 */
void tdx_dm_counts(void *h, int64_t *out)
{
	struct tdx_direct_map *dm = h;
	int64_t m4k = 0, m2m = 0, m1g = 0, marked = 0;

	for (uint64_t g = 0; g < dm->ntop; g++) {
		const uint64_t *pud;

		if (!is_present(dm->top[g]))
			continue;
		pud = table_of(dm->top[g]);
		for (int i = 0; i < TDX_PTRS; i++) {
			const uint64_t *pmd;

			if (!is_present(pud[i]))
				continue;
			if (is_leaf(pud[i])) {
				m1g++;
				continue;
			}
			pmd = table_of(pud[i]);
			for (int j = 0; j < TDX_PTRS; j++) {
				const uint64_t *pte;

				if (!is_present(pmd[j]))
					continue;
				if (is_leaf(pmd[j])) {
					m2m++;
					continue;
				}
				pte = table_of(pmd[j]);
				for (int k = 0; k < TDX_PTRS; k++) {
					m4k += is_present(pte[k]);
					marked += (pte[k] & (X86_PAGE_PRESENT | X86_PAGE_TDX_PRIVATE)) ==
						  (X86_PAGE_PRESENT | X86_PAGE_TDX_PRIVATE);
				}
			}
		}
	}
	for (int l = 0; l < 3; l++)
		out[l] = dm->pages[l];
	out[3] = m4k;
	out[4] = m2m;
	out[5] = m1g;
	out[6] = marked;
	out[7] = dm->host_bytes;
}

/*
 * The invariants, or the PFN where one fails (-1: all hold): every leaf
 * maps the PFN of its position; a table entry only above the PTE level; the
 * PSE bit only in PUD and PMD leaves; the soft bit only in present 4 KiB
 * PTEs (the walk tests the bit alone).
 */
int64_t tdx_dm_check(void *h)
{
	struct tdx_direct_map *dm = h;

	for (uint64_t g = 0; g < dm->ntop; g++) {
		const uint64_t gbase = g << TDX_SHIFT_512G;
		const uint64_t *pud;

		if (!is_present(dm->top[g]))
			continue;
		if (is_leaf(dm->top[g]))
			return (int64_t)gbase;
		pud = table_of(dm->top[g]);
		for (uint64_t i = 0; i < TDX_PTRS; i++) {
			const uint64_t ibase = gbase + (i << TDX_SHIFT_1G);
			const uint64_t *pmd;

			if (!is_present(pud[i]))
				continue;
			if (pud[i] & X86_PAGE_TDX_PRIVATE)
				return (int64_t)ibase;
			if (is_leaf(pud[i])) {
				if ((pud[i] & X86_PTE_PFN_MASK) >> 12 != ibase)
					return (int64_t)ibase;
				continue;
			}
			pmd = table_of(pud[i]);
			for (uint64_t j = 0; j < TDX_PTRS; j++) {
				const uint64_t jbase = ibase + (j << TDX_SHIFT_2M);
				const uint64_t *pte;

				if (!is_present(pmd[j]))
					continue;
				if (pmd[j] & X86_PAGE_TDX_PRIVATE)
					return (int64_t)jbase;
				if (is_leaf(pmd[j])) {
					if ((pmd[j] & X86_PTE_PFN_MASK) >> 12 != jbase)
						return (int64_t)jbase;
					continue;
				}
				pte = table_of(pmd[j]);
				for (uint64_t k = 0; k < TDX_PTRS; k++) {
					if (!is_present(pte[k])) {
						if (pte[k] & X86_PAGE_TDX_PRIVATE)
							return (int64_t)(jbase + k);
						continue;
					}
					if (is_leaf(pte[k]) ||
					    (pte[k] & X86_PTE_PFN_MASK) >> 12 != jbase + k)
						return (int64_t)(jbase + k);
				}
			}
		}
	}
	return -1;
}
