"""Build the kernel's own XArray, IDA and maple tree into a cached library.

Compiles lib/xarray.c, lib/radix-tree.c, lib/idr.c and lib/maple_tree.c
unchanged through tools/testing/radix-tree's userspace shims, with 64-slot
xa_nodes (XA_CHUNK_SHIFT 6) and 256-B maple nodes (CONFIG_64BIT), -O2, and
prints where the library is and which kernel it came from.  The default
source is the newest /usr/src/linux-source-*.tar.xz (Debian:
apt-get install linux-source-6.12 liburcu-dev gcc); only the files the
build reads are extracted.  A second run finds the library in the cache
($TRACKERS_LINUX_CACHE, else ~/.cache/tdx-page-trackers) and returns at
once; --force rebuilds.  The library links GPL-2.0 kernel code and stays
on this machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .binding import available, build_info, facts, version
from .build import KernelCodeUnavailable, build, cache_root

HELP = "build the kernel's own XArray/IDA/maple tree code into a cached library"

PROG = "tdx-trackers kernel-build"


def add_arguments(parser) -> None:
    parser.add_argument("--linux-src", metavar="DIR_OR_TARBALL", default=None,
                        help="a kernel tree (>= 6.1) or its source tarball (default: the "
                             "newest /usr/src/linux-source-*.tar.xz)")
    parser.add_argument("--force", action="store_true",
                        help="extract and compile again even if the cache has the library")


def run(args) -> int:
    if args.linux_src is not None and not Path(args.linux_src).expanduser().exists():
        print(f"{PROG}: error: --linux-src {args.linux_src}: no such file or directory",
              file=sys.stderr)
        return 2
    t0, wall = time.perf_counter(), time.time()
    try:
        path = build(args.linux_src, force=args.force)
    except KernelCodeUnavailable as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    ok, why = available()
    if not ok:
        print(f"{PROG}: error: built {path} but cannot load it: {why}", file=sys.stderr)
        return 1
    info = build_info()
    f = facts()
    print(f"library   {path}")
    print(f"kernel    Linux {version()} from {info['source']}")
    print(f"cache     {cache_root()}")
    print(f"sizes     struct xa_node {f['sizeof(struct xa_node)']} B "
          f"({f['XA_CHUNK_SIZE']} slots), struct maple_node {f['sizeof(struct maple_node)']} B "
          f"({f['MAPLE_RANGE64_SLOTS']} range64 slots), "
          f"struct ida_bitmap {f['sizeof(struct ida_bitmap)']} B")
    if info.get("built_unix", 0) >= wall:             # built by this run
        print(f"built in  {seconds:.1f} s (measured: extract {info['extract_seconds']:.1f} s, "
              f"compile {info['compile_seconds']:.1f} s)")
    else:
        print(f"cached    built {info.get('built', '?')} in {info.get('total_seconds', 0):.1f} s "
              f"(measured); --force rebuilds")
    return 0
