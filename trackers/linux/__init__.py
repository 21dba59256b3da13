"""The kernel's own code, in userspace: lib/xarray.c, lib/idr.c,
lib/maple_tree.c, find_bit and the bitmap stores, built from the kernel
source on this machine.

Two steps, never mixed:

* :func:`build` (the command ``tdx-trackers kernel-build``) compiles the
  kernel's files through tools/testing/radix-tree's shims into a cached
  shared library (:mod:`trackers.linux.build`);
* :func:`library` loads that library and never builds; the engines
  :class:`KernelXArray`, :class:`KernelIda`, :class:`KernelMaple`,
  :func:`kernel_bitmap_runs`, :func:`kernel_bitmap_set` and
  :func:`kernel_bitmap_clear` call it over whole numpy arrays
  (:mod:`trackers.linux.binding`).

:mod:`trackers.linux.pages` adds, from the same library (its ``pages.c``
and ``directmap.c`` are MIT and link no kernel code), the layouts options
2 and 3 would scan:
:class:`KernelStructPages` (64-B struct pages, one flag bit) and
:class:`KernelDirectMap` (the direct map's PUD/PMD/PTE pages, a soft PTE
bit), with :func:`struct_page_scan_time` and :func:`direct_map_scan_time`.

:mod:`trackers.linux.clear` times the kernel's clear of TDX memory for
``tdx-trackers calibrate``: ``clear.c`` (MIT, no kernel code) issues
MOVDIR64B as tdx_quirk_reset_paddr() does where the CPU has it, and
non-temporal stores as its stand-in elsewhere.  It is a small library of its
own, compiled on first use (:func:`trackers.linux.clear.build_clear`: a C
compiler is all it needs), not part of the kernel library.

``available()`` says whether the engines can be used here and, if not, why
(the message names the missing package and ``--linux-src``).  The library
is checked against its build record before it is loaded
(:mod:`trackers.linux.integrity`); one that does not match is rebuilt, or
the emulations run instead, and ``repaired()`` says what was rebuilt.  The library
links GPL-2.0 kernel code; it is built on the user's machine and never
shipped.  These are engines, not trackers: a tracker on them measures the
kernel's code where the other trackers model it.
"""

from .binding import (
    INDEX_LIMIT,
    LIVE_OBJECTS,
    SCAN_CHUNK,
    XA_LEVELS,
    KernelIda,
    KernelMaple,
    KernelXArray,
    available,
    build_info,
    counted_objects,
    engine_label,
    facts,
    kernel_bitmap_clear,
    kernel_bitmap_runs,
    kernel_bitmap_set,
    kernel_int_max,
    library,
    live_objects,
    set_gfp_nowait_fails,
    version,
)
from .build import KernelCodeUnavailable, KernelLibraryDamaged, build, cache_root, repaired
from .pages import (
    PG_TDX_PRIVATE,
    PTE_BIT_TDX_PRIVATE,
    DirectMapCounts,
    DirectMapTables,
    KernelDirectMap,
    KernelStructPages,
    ScanTime,
    direct_map_scan_time,
    struct_page_scan_time,
    time_scan,
)

__all__ = [
    "INDEX_LIMIT", "LIVE_OBJECTS", "SCAN_CHUNK", "XA_LEVELS",
    "KernelCodeUnavailable", "KernelIda", "KernelLibraryDamaged", "KernelMaple", "KernelXArray",
    "available", "build", "build_info", "cache_root", "counted_objects", "engine_label", "facts",
    "kernel_bitmap_clear", "kernel_bitmap_runs", "kernel_bitmap_set", "kernel_int_max",
    "library", "live_objects", "repaired", "set_gfp_nowait_fails", "version",
    # trackers.linux.pages: options 2 and 3 laid out in C
    "PG_TDX_PRIVATE", "PTE_BIT_TDX_PRIVATE", "DirectMapCounts", "DirectMapTables",
    "KernelDirectMap", "KernelStructPages", "ScanTime", "direct_map_scan_time",
    "struct_page_scan_time", "time_scan",
]
