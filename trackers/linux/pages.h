// SPDX-License-Identifier: MIT
/*
 * pages.h - what the two layouts a kexec-time scan would read for the
 * options that have no kernel library to build share: a flag bit in struct
 * page (option 3, pages.c) and a software bit in the direct map's PTEs
 * (option 2, directmap.c), modeled in plain C for trackers/linux/pages.py
 * (ctypes).
 *
 * No kernel code is linked or included here: these are models of the
 * kernel's layouts, with the sizes and bits taken from the sources named
 * below, so that the scans read the bytes the kernel would read and can be
 * timed on this machine.  Nothing here times anything: the caller does.
 *
 * Conventions as in glue.h: PFNs are uint64 below 2^52 (MAX_PHYSMEM_BITS);
 * ranges are half-open [start, end); a scan writes at most cap maximal
 * runs, ascending, and resumes from *cursor (TDX_SCAN_DONE at the end); a
 * handle is not safe for concurrent use (different handles are).
 */
#ifndef TDX_PAGES_H
#define TDX_PAGES_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "runs.h"		/* the run collector glue.h shares */

/* include/linux/page-flags.h enum pageflags with Debian's 6.12 amd64 config
 * (CONFIG_MMU, MEMORY_FAILURE, PAGE_IDLE_FLAG; x86 PAT selects
 * ARCH_USES_PG_ARCH_2): PG_locked 0 ... PG_unevictable 18, PG_mlocked 19,
 * PG_hwpoison 20, PG_young 21, PG_idle 22, PG_arch_2 23, __NR_PAGEFLAGS 24.
 * A new flag goes before __NR_PAGEFLAGS: PG_tdx_private would be bit 24. */
#define TDX_PG_TDX_PRIVATE 24

/* arch/x86/include/asm/pgtable_types.h (6.12) */
#define X86_PAGE_PRESENT	(1ULL << 0)
#define X86_PAGE_RW		(1ULL << 1)
#define X86_PAGE_ACCESSED	(1ULL << 5)
#define X86_PAGE_DIRTY		(1ULL << 6)
#define X86_PAGE_PSE		(1ULL << 7)
#define X86_PAGE_GLOBAL		(1ULL << 8)
#define X86_PAGE_BIT_SOFTW2	10
#define X86_PAGE_NX		(1ULL << 63)
#define X86_PAGE_TDX_PRIVATE	(1ULL << X86_PAGE_BIT_SOFTW2)
#define PRIVATE_PTE		(X86_PAGE_PRESENT | X86_PAGE_TDX_PRIVATE)
#define X86_PTE_PFN_MASK	(((1ULL << 52) - 1) & ~0xfffULL)	/* PHYSICAL_PAGE_MASK */
#define X86_PAGE_KERNEL		(X86_PAGE_PRESENT | X86_PAGE_RW | X86_PAGE_ACCESSED | \
				 X86_PAGE_NX | X86_PAGE_DIRTY | X86_PAGE_GLOBAL)
#define X86_PAGE_KERNEL_LARGE	(X86_PAGE_KERNEL | X86_PAGE_PSE)
#define X86_KERNPG_TABLE	(X86_PAGE_PRESENT | X86_PAGE_RW | X86_PAGE_ACCESSED | \
				 X86_PAGE_DIRTY)

#define TDX_PTRS		512		/* PTRS_PER_{PUD,PMD,PTE} */
#define TDX_TABLE_BYTES		4096		/* one table page */
#define TDX_SHIFT_2M		9		/* PFN shifts of one entry per level */
#define TDX_SHIFT_1G		18
#define TDX_SHIFT_512G		27
#define TDX_LEVEL_4K		0		/* trackers/linux/pages.py LEVEL_* */
#define TDX_LEVEL_2M		1
#define TDX_LEVEL_1G		2
#define TDX_MAX_PFN		(1ULL << 40)	/* MAX_PHYSMEM_BITS 52 - PAGE_SHIFT */
#define TDX_HUGE_BYTES		(2UL << 20)	/* a PMD page: alignment for THP */
#define TDX_POOL_PAGES		512		/* table pages per 2 MiB pool chunk */

_Static_assert(sizeof(uint64_t) * TDX_PTRS == TDX_TABLE_BYTES, "512 entries per 4 KiB");

/*
 * Runs of the set bits of m (bit b is PFN base + b) into r.  false when r
 * is full and a run does not fit: *stop is then its first PFN.  Both scans
 * test 64 entries into one word first, without a branch per entry, and
 * branch per run: the cost left is the memory read, not the run building.
 */
static inline bool mask_runs(struct tdx_runs *r, uint64_t m, uint64_t base, uint64_t *stop)
{
	while (m) {
		int a = __builtin_ctzll(m);
		uint64_t clear = ~m & (~0ULL << a);	/* clear bits from a up */
		int b = clear ? __builtin_ctzll(clear) : 64;

		if (!runs_add(r, base + a, base + b)) {
			*stop = base + a;
			return false;
		}
		m = b == 64 ? 0 : m & (~0ULL << b);
	}
	return true;
}

#endif /* TDX_PAGES_H */
