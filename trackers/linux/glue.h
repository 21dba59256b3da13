// SPDX-License-Identifier: GPL-2.0
/*
 * glue.h - what the sections of the glue share: glue.c (the harness glue,
 * facts, live objects, the maple tree), glue_xarray.c, glue_ida.c and
 * glue_bitmap.c, each its own object compiled with the same kernel include
 * flags (trackers/linux/build.py), all linked into one library.
 *
 * Conventions: indices are uint64 below 2^63; ranges are half-open
 * [start, end) as in the Python package; a handle is one structure and is
 * not safe for concurrent use (different handles are).  Every entry point
 * registers the calling thread with userspace RCU for its duration, so any
 * thread may call.  Nothing here times anything: the caller does.
 */
#ifndef TDX_GLUE_H
#define TDX_GLUE_H

#include "shared.h"		/* tools/testing/shared, as maple-shared.h has it */
#include <linux/idr.h>
#include <linux/xarray.h>
#include <stdint.h>
#include "radix-tree.h"
#include "runs.h"		/* ours (MIT): the run collector pages.h shares */

/* Shared between the glue's files only: hidden, so the library exports the
 * entry points trackers/linux/binding.py types and nothing more. */
#define TDX_GLUE_INTERNAL __attribute__((visibility("hidden")))

/* glue.c: every entry point brackets its kernel calls with tdx_enter() and
 * tdx_leave() (RCU registration, deferred frees); a create calls tdx_init()
 * first (the kernel caches). */
TDX_GLUE_INTERNAL void tdx_enter(void);
TDX_GLUE_INTERNAL void tdx_leave(void);
TDX_GLUE_INTERNAL void tdx_init(void);

/* glue_xarray.c: xa_nodes per level of an array, and the plain pointer
 * entries (ida_bitmaps) if bitmaps is not NULL. */
TDX_GLUE_INTERNAL int tdx_xa_node_levels(const struct xarray *xa, int64_t *out, int cap,
					 int64_t *bitmaps);

/* glue_bitmap.c: runs of set bits [from, size) of a bitmap, as
 * for_each_set_bitrange_from; false when runs is full (*stop: where). */
TDX_GLUE_INTERNAL bool tdx_bits_runs(struct tdx_runs *runs, const unsigned long *addr,
				     unsigned long size, unsigned long from, uint64_t base,
				     uint64_t *stop);

#endif /* TDX_GLUE_H */
