// SPDX-License-Identifier: MIT
/*
 * clear.c - the clear of TDX memory as the kernel issues it, for
 * trackers/linux/clear.py (ctypes) and `tdx-trackers calibrate`.
 *
 * The kernel clears a TDX page with MOVDIR64B: tdx_quirk_reset_paddr()
 * (reset_tdx_pages() before Linux 6.16, arch/x86/virt/vmx/tdx/tdx.c) issues
 * one MOVDIR64B per 64-byte line of [base, base + size), each storing the
 * first 64 bytes of the zero page, then one mb() (MFENCE on x86-64,
 * arch/x86/include/asm/barrier.h): "MOVDIR64B uses WC protocol".  A page is
 * reset by one call over 4 KiB (tdx_quirk_reset_page()), a range by one call
 * over the range.  tdx_clear() does the same over a buffer in `target`-byte
 * pieces -- a full 64-byte store per line, one MFENCE per piece -- with one of
 * two engines:
 *
 *   TDX_CLEAR_MOVDIR64B  MOVDIR64B (_movdir64b, compiled for this function
 *                        alone with target("movdir64b"));
 *   TDX_CLEAR_NT         four 16-byte non-temporal stores per line
 *                        (_mm_stream_si128, SSE2: every x86-64 CPU), the
 *                        stand-in where the CPU has no MOVDIR64B: write-
 *                        combining stores that bypass the caches, as
 *                        MOVDIR64B's direct store does.
 *
 * Nothing here executes an instruction the CPU lacks: tdx_clear() checks
 * CPUID.(EAX=7,ECX=0):ECX[28] (MOVDIR64B) before it issues one, and returns
 * -ENOSYS without touching the buffer where the bit is clear; the caller
 * dispatches on the same detection first (clear.py).  Nothing here times
 * anything: the caller does.  No kernel code is included or linked.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define TDX_CLEAR_LINE		64	/* bytes one MOVDIR64B stores */
#define TDX_CLEAR_NT		0
#define TDX_CLEAR_MOVDIR64B	1
#define CPUID_7_0_ECX_MOVDIR64B	(1u << 28)

/* the source of every MOVDIR64B: a zero line, as the kernel's ZERO_PAGE */
static const uint8_t zero_line[TDX_CLEAR_LINE] __attribute__((aligned(TDX_CLEAR_LINE)));

/* 1 where the CPU enumerates MOVDIR64B (CPUID.7.0:ECX bit 28), else 0. */
int tdx_clear_cpuid_movdir64b(void)
{
#if defined(__x86_64__)
	unsigned int eax, ebx, ecx, edx;

	if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
		return 0;
	return (ecx & CPUID_7_0_ECX_MOVDIR64B) != 0;
#else
	return 0;
#endif
}

/* 1 where this library was built with each engine (x86-64), else 0. */
int tdx_clear_has_engine(int engine)
{
#if defined(__x86_64__)
	return engine == TDX_CLEAR_NT || engine == TDX_CLEAR_MOVDIR64B;
#else
	(void)engine;
	return 0;
#endif
}

#if defined(__x86_64__)
__attribute__((target("movdir64b")))
static void clear_movdir64b(uint8_t *p, uint64_t n)
{
	for (uint64_t off = 0; off < n; off += TDX_CLEAR_LINE)
		_movdir64b(p + off, zero_line);
}

static void clear_nt(uint8_t *p, uint64_t n)
{
	const __m128i zero = _mm_setzero_si128();

	for (uint64_t off = 0; off < n; off += TDX_CLEAR_LINE) {
		__m128i *line = (__m128i *)(p + off);

		_mm_stream_si128(line, zero);
		_mm_stream_si128(line + 1, zero);
		_mm_stream_si128(line + 2, zero);
		_mm_stream_si128(line + 3, zero);
	}
}
#endif

/*
 * Clear nbytes at buf in target-byte pieces, one MFENCE after each, with
 * engine.  buf must be 64-byte aligned, target a multiple of 64 and nbytes a
 * multiple of target.  Returns 0, -EINVAL, or -ENOSYS (the engine is not
 * built here, or MOVDIR64B is asked for on a CPU without it: nothing is
 * stored).
 */
int tdx_clear(void *buf, uint64_t nbytes, uint64_t target, int engine)
{
#if defined(__x86_64__)
	uint8_t *p = buf;

	if (!tdx_clear_has_engine(engine))
		return -ENOSYS;
	if (engine == TDX_CLEAR_MOVDIR64B && !tdx_clear_cpuid_movdir64b())
		return -ENOSYS;
	if (((uintptr_t)buf % TDX_CLEAR_LINE) || !target || target % TDX_CLEAR_LINE ||
	    nbytes % target)
		return -EINVAL;
	for (uint64_t off = 0; off < nbytes; off += target) {
		if (engine == TDX_CLEAR_MOVDIR64B)
			clear_movdir64b(p + off, target);
		else
			clear_nt(p + off, target);
		_mm_mfence();		/* mb() */
	}
	return 0;
#else
	(void)buf; (void)nbytes; (void)target; (void)engine;
	return -ENOSYS;
#endif
}
