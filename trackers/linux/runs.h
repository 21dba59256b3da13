// SPDX-License-Identifier: MIT
/*
 * runs.h - the run collector every scan of the glue (glue*.c), pages.c and
 * directmap.c writes its answer with.  The project's own code (no kernel
 * code), included through glue.h and pages.h: the GPL-2.0 glue may include
 * this MIT header, never the other way round.
 *
 * A scan writes maximal [start, end) runs in ascending order, at most cap
 * per call, and resumes from *cursor (TDX_SCAN_DONE once the walk is over).
 * A run is written only when the next present index does not touch it (or
 * the walk ends), so runs stay maximal across calls: when the buffer is
 * full, the caller stops and resumes at the start of the next run.
 */
#ifndef TDX_RUNS_H
#define TDX_RUNS_H

#include <stdbool.h>
#include <stdint.h>

#define TDX_SCAN_DONE UINT64_MAX	/* cursor: the walk is over */

struct tdx_runs {
	int64_t *out_s, *out_e;
	int64_t cap, n;
	bool open;
	uint64_t rs, re;
};

/* An empty collector writing into out_s[0, cap) and out_e[0, cap). */
static inline struct tdx_runs runs_init(int64_t *out_s, int64_t *out_e, int64_t cap)
{
	return (struct tdx_runs){ .out_s = out_s, .out_e = out_e, .cap = cap };
}

/* Add [s, e) (s >= every earlier start); false if the buffer is full and
 * [s, e) would start a new run. */
static inline bool runs_add(struct tdx_runs *r, uint64_t s, uint64_t e)
{
	if (r->open && s <= r->re) {
		if (e > r->re)
			r->re = e;
		return true;
	}
	if (r->open) {
		r->out_s[r->n] = r->rs;
		r->out_e[r->n] = r->re;
		r->n++;
		r->open = false;
	}
	if (r->n >= r->cap)
		return false;
	r->open = true;
	r->rs = s;
	r->re = e;
	return true;
}

/* Write the open run, if any; the number of runs written. */
static inline int64_t runs_finish(struct tdx_runs *r)
{
	if (r->open) {
		r->out_s[r->n] = r->rs;
		r->out_e[r->n] = r->re;
		r->n++;
		r->open = false;
	}
	return r->n;
}

#endif /* TDX_RUNS_H */
