"""bench-core: every tracker on the 1 TiB reference set, measured and modeled,
the emulations beside their ``@kernel`` twins on the kernel's own code.

Builds the reference set (trackers/sets.py: 2^28 PFNs, 60 % in random
2 MiB extents, ~10 % scattered 4 KiB pages; seeded) and, for each tracker,
times populate (mark_ranges), a full extents() scan and a full pfns() scan,
--repeat runs each.  Prints measured times and peak RSS beside the kernel
bytes, bits per private page and ns per page.

Every measurement is a Dask task (trackers/cluster.py: a local cluster of one
worker process per core, or --scheduler / $TRACKERS_SCHEDULER), and every
one is *timed*: it runs alone in its worker on the one timing worker, one
at a time (the timing policy of trackers/cluster.py).  Each task generates
the reference set where it runs (deterministic; once per worker), resets the
worker's peak RSS (VmHWM, via /proc/self/clear_refs) and reports its own
peak; it frees its structures before it returns.

A --pfns above --shard-pfns (default 2^28) is built shard by shard
(trackers/shard.py): each shard a timed task over its own reference-shaped
set, every tracker built in it in turn (populate and the extents() scan
timed, once: the shards are the repeats, ``*_shard_*`` their spread; the
pfns() scan with --scan-pfns), the shards' node counts combined exactly into the
whole structure's (the maple tree within its stated bound), times summed
over the shards, the peak RSS the largest shard task's (with
``baseline_rss_bytes``, the largest resident size of the worker when a shard
began: its libraries and the shard's generated set), and beside it
``estimate_bytes``: estimate() of the same shards, combined the same way
(``modeled_over_estimate``).  64 TiB (--pfns 2^34) is 64 shards.  The maple
order, conversion-cost, estimate()-timing and kvm-loop tables need one
structure over the whole set and are left out there.

Two engines (--engine, default both):

* ``emulation``: the Python/numba trackers; their bytes are modeled (node
  counts from the model times kernel struct sizes);
* ``kernel code vX.Y.Z (userspace)``: the ``@kernel`` twins
  (trackers/kernel_code/) store through the kernel's own lib/xarray.c,
  lib/idr.c and lib/maple_tree.c and scan with its iterators (xas_for_each,
  mas_for_each, find_next_bit); their bytes are the kernel's own node
  counts walked in its tree, times the same struct sizes.  Each row records
  the kernel version it ran.  A twin's populate is its contract call
  (mark_ranges) as the emulation's is: the kernel's stores plus the twin's
  budget check and live-object count.  Where the kernel code is not built,
  bench-core says why once and runs the emulation rows only.

Each kernel-code row carries the emulation/kernel-code ratio of every
median time and of the bytes (``NAME_emulation_over_kernel``); they are
printed as a table of their own.

Then, for the kernel code: the maple order effect (node counts of the
kernel's maple tree holding the reference set's extents stored in order
against stored in --maple-seeds random orders, :func:`maple_order`); and, for
every tracker, the cost of one conversion (:func:`conversion_cost`): ns to
mark and to unmark one 4 KiB and one 2 MiB conversion in a tracker that
holds the reference set, each row timed by the engine it names: a C engine
(the kernel's code; pageflags' struct pages laid out in C) over one call of
every conversion, less the call's fixed cost, or one Python call per
conversion (emulations, roaring), an upper bound.  With ``--csv X.csv``
they go to ``X-maple-order.csv`` and ``X-conversion-cost.csv`` beside it.

For the emulations only: estimate() at --estimate-pfns (default 2^32,
16 TiB) for every tracker (a tracker whose structure cannot hold that many
PFNs, the IDA beyond 2^31, gets a row saying "not representable" instead of
a number), and the kvm per-GFN attribute store loop against the real-world
anchor (a 1 TB+ guest spent >= 26 s in kvm_vm_set_mem_attributes: ~100 ns
per GFN; Liam Merwick, Jun 2025), each --repeat times too.

Every measured time is reported as its median and its spread over the
repeats: printed as "median (min-max)", and in the --csv tables as three
columns, NAME_median, NAME_min and NAME_max (populate_s, scan_extents_s,
scan_pfns_s, ns_per_conversion, ...); ns-per-page figures derive from the
medians.

Columns: [measured] times and RSS on this machine; [modeled] kernel bytes
(kernel-code rows: counted in the kernel's own structure).
"""

from __future__ import annotations

import os
import sys
import time

import pandas as pd

from ..cluster import Unit, add_scheduler_argument, connect, scheduler_address
from ..kernel import MAX_PHYS_PFN, PAGES_PER_2M
from ..kernel_code import MapleKernel
from ..options import MAX_RUNS, int_option, output_file
from ..output import write_csv_atomic
from ..registry import TRACKERS
from ..sets import reference_set
from ..shard import DEFAULT_SHARD_PFNS, MIN_SHARD_PFNS, ReferenceShards, check_shards
from .conversion import CONVERSIONS, MAX_CONVERSIONS, conversion_cost, conversion_table
from .maple_order import MAPLE_SEEDS, format_maple_order, maple_order
from .measure import measure_all, time_estimates, time_kvm_store_loop
from .rows import RATIO, add_ratios, is_kernel, ratio_table, select_rows
from .sharded import run_sharded
from .tables import format_range, format_table
from .timing import run_outcomes

HELP = ("time every tracker on the 1 TiB reference set (measured) beside its modeled bytes, "
        "the emulations beside the kernel's own code")

PROG = "tdx-trackers bench-core"

#: --engine choices: both engines, or one
ENGINES = ("all", "emulation", "kernel")

#: what every kernel-code tracker must meet at 1 TiB, populate + extents() scan and
#: peak RSS (medians): a 1 TiB run fits a minute and the default memory budget
KERNEL_LIMIT_SECONDS = 60.0
KERNEL_LIMIT_RSS_BYTES = 8 << 30


def add_arguments(p):
    pfns = int_option(PAGES_PER_2M, MAX_PHYS_PFN, multiple_of=PAGES_PER_2M, base=0,
                      why="whole 2 MiB extents, up to 2^40 PFNs")
    p.add_argument("--pfns", type=pfns, default=1 << 28,
                   help="PFN space of the reference set (default 2^28 = 1 TiB)")
    p.add_argument("--repeat", type=int_option(1, MAX_RUNS, why="timed runs per figure"),
                   default=None,
                   help="timed runs per figure; median and min-max reported (default 3; "
                        "1 for a sharded --pfns, whose shards are the repeats: its rows "
                        "also give the shards' spread, *_shard_min/_max)")
    p.add_argument("--estimate-pfns", type=pfns, default=1 << 32,
                   help="PFN space for the estimate() timing (default 2^32 = 16 TiB)")
    p.add_argument("--trackers", nargs="+", default=None, metavar="NAME",
                   help="subset of tracker names (default: every registered tracker); "
                        "NAME selects the emulation and its @kernel twin, NAME@kernel "
                        "the twin alone")
    p.add_argument("--engine", choices=ENGINES, default="all",
                   help="emulation rows, kernel-code (@kernel) rows, or both beside each "
                        "other with their ratios (default all)")
    p.add_argument("--maple-seeds", type=int_option(1, MAX_RUNS, why="timed runs per figure"),
                   default=MAPLE_SEEDS,
                   help=f"random store orders of the maple order table "
                        f"(default {MAPLE_SEEDS})")
    p.add_argument("--conversions", type=int_option(1, MAX_CONVERSIONS,
                                                    why="16 candidate pages drawn for each: "
                                                        "128 MB at the limit"),
                   default=CONVERSIONS,
                   help=f"conversions per timing of the conversion-cost table "
                        f"(default {CONVERSIONS:,})")
    p.add_argument("--seed", type=int_option(0), default=0, help="reference-set seed")
    p.add_argument("--shard-pfns", type=int_option(MIN_SHARD_PFNS, MAX_PHYS_PFN, base=0),
                   default=DEFAULT_SHARD_PFNS,
                   help="a --pfns above this is built shard by shard, each shard a task "
                        "(trackers/shard.py; power of two, default 2^28 = 1 TiB)")
    add_scheduler_argument(p)
    p.add_argument("--scan-pfns", action="store_true",
                   help="also time the pfns() scan of a sharded --pfns (a whole build always "
                        "does; a sharded one skips it by default: the kexec reset reads "
                        "extents(), and the per-PFN stream is a fifth of a 64 TiB sweep)")
    p.add_argument("--timed-workers", type=int_option(1, os.cpu_count() or 1,
                                                      why="this machine's cores"),
                   default=1, metavar="N",
                   help="timed tasks at once on the local cluster (default 1: each alone "
                        "on this machine). N > 1 runs a long sharded sweep N times faster "
                        "on N cores, each task beside N - 1 others (their caches and "
                        "memory bandwidth), and the output says so; with --scheduler the "
                        "cluster's workers started with --resources timing=1 decide")
    p.add_argument("--csv", type=output_file, default=None,
                   help="also write the table here (atomically); X.csv also writes "
                        "X-maple-order.csv and X-conversion-cost.csv beside it")


def beside(csv, what: str):
    """X.csv -> X-WHAT.csv: the file name only, beside X."""
    return None if csv is None else csv.with_name(f"{csv.stem}-{what}{csv.suffix}")


def _limits(df: pd.DataFrame) -> str:
    """One line: whether every kernel-code row populated and scanned (extents)
    within KERNEL_LIMIT_SECONDS and KERNEL_LIMIT_RSS_BYTES (medians)."""
    k = df[df["tracker"].map(is_kernel).astype(bool)]
    if k.empty or "populate_s_median" not in k:
        return ""
    over = [f"{n} ({p + s:.3g} s, {r / 2**30:.2f} GiB)" for n, p, s, r in
            zip(k["tracker"], k["populate_s_median"], k["scan_extents_s_median"],
                k["peak_rss_bytes"])
            if not (p + s <= KERNEL_LIMIT_SECONDS and r <= KERNEL_LIMIT_RSS_BYTES)]
    limit = (f"populate + scan <= {KERNEL_LIMIT_SECONDS:g} s and peak RSS <= "
             f"{KERNEL_LIMIT_RSS_BYTES / 2**30:g} GiB")
    return (f"kernel code: every tracker within {limit}" if not over
            else f"kernel code: over {limit}: {', '.join(over)}")


def run(args) -> int:
    rows_wanted, missing = select_rows(args.trackers, args.engine)
    # options are checked before any work
    for path in (beside(args.csv, w) for w in ("maple-order", "conversion-cost")):
        if path is not None:
            try:
                output_file(str(path))
            except Exception as exc:
                raise ValueError(f"--csv {args.csv}: {exc}") from None
    if missing:
        only = "no rows" if args.engine == "kernel" else "emulation rows only"
        print(f"kernel code unavailable, {only}: {missing}", flush=True)
    if not rows_wanted:
        if missing:
            return 0
        raise ValueError(f"--engine {args.engine}: none of the trackers given runs on it")
    check_shards(args.pfns, args.shard_pfns)        # a power of two, before any work
    if args.timed_workers > 1 and scheduler_address(args.scheduler) is not None:
        raise ValueError(f"--timed-workers {args.timed_workers} sizes the local cluster; on "
                         f"the cluster at {scheduler_address(args.scheduler)} start workers "
                         f"with --resources timing=1 instead")
    if args.repeat is None:
        args.repeat = 1 if args.pfns > args.shard_pfns else 3
    if args.pfns > args.shard_pfns:
        ReferenceShards("reference", args.seed).check(args.shard_pfns)
    t0 = time.perf_counter()
    if args.timed_workers > 1:
        print(f"timed tasks: {args.timed_workers} at a time on this machine "
              f"(--timed-workers): each timed beside {args.timed_workers - 1} other(s), "
              f"sharing caches and memory bandwidth", flush=True)
    with connect(args.scheduler, timed_workers=args.timed_workers) as client:
        if args.pfns > args.shard_pfns:
            status = run_sharded(client, args, rows_wanted)
        else:
            status = run_whole(client, args, rows_wanted)
    print(f"\nbench-core: {time.perf_counter() - t0:.0f} s wall", flush=True)
    return status


def run_whole(client, args, rows_wanted) -> int:
    t0 = time.perf_counter()
    starts, ends = reference_set(args.pfns, args.seed)
    pages = int((ends - starts).sum())
    print(f"reference set: {args.pfns:,} PFNs ({args.pfns * 4096 / 2**40:.3g} TiB), "
          f"{pages:,} private pages in {starts.size:,} extents "
          f"(generated in {time.perf_counter() - t0:.1f} s)", flush=True)
    del starts, ends                             # each task generates its own (reference())
    side = {w: beside(args.csv, w) for w in ("maple-order", "conversion-cost")}
    failed: list[str] = []                       # one stderr line per failure, at the end
    rows = measure_all(client, rows_wanted, args.pfns, args.seed, args.repeat)
    df = add_ratios(pd.DataFrame(rows))
    failed += failures(df, "trackers table")
    runs = f"median (min\u2013max) of {args.repeat} run{'s' if args.repeat > 1 else ''}"
    print(f"\n[measured] times in s, {runs}, and peak RSS on this machine; "
          f"[modeled] kernel bytes (kernel-code rows: the kernel's own node counts)")
    print(format_table(df.drop(columns=[c for c in df if c.endswith(RATIO)])))
    ratios = ratio_table(df)
    if not ratios.empty:
        print("\nemulation / kernel code, per structure (ratio of the median times; of bytes)")
        print(ratios.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if _limits(df):
        print(_limits(df))
    emulations = [n for n in rows_wanted if n in TRACKERS]
    kernel_rows = [n for n in rows_wanted if is_kernel(n)]
    order = (one_table(client, Unit(maple_order, (args.pfns, args.seed, args.maple_seeds),
                                    timed=True), "maple order table", failed)
             if MapleKernel.name in kernel_rows else None)
    if order is not None:
        print(f"\nmaple order effect [measured on the kernel's lib/maple_tree.c]: the "
              f"reference set's {order['extents'].iloc[0]:,} extents stored in order vs in "
              f"{args.maple_seeds} random order{'s' if args.maple_seeds > 1 else ''} "
              f"(median (min\u2013max) over the seeds)")
        print(f"engine: {order['engine'].iloc[0]}; ratio: nodes over the in-order tree's")
        print(format_maple_order(order))
        if side["maple-order"] is not None:
            write_csv_atomic(order, side["maple-order"])
    conv = conversion_cost(rows_wanted, args.pfns, args.repeat, conversions=args.conversions,
                           seed=args.seed, progress=True, client=client)
    print(f"\nconversion cost [measured] in ns per conversion, {runs}, into a tracker "
          f"holding the reference set, timed by the engine named: C engines over one call "
          f"of all conversions less the call's fixed cost, the rest one Python call per "
          f"conversion, an upper bound (timed)")
    print(conversion_table(conv).to_string(index=False))
    failed += failures(conv, "conversion cost of")
    if side["conversion-cost"] is not None:
        write_csv_atomic(conv, side["conversion-cost"])
    est = (one_table(client, Unit(time_estimates, (emulations, args.estimate_pfns, args.seed,
                                                   args.repeat), timed=True),
                     "estimate() timing", failed) if emulations else None)
    if est is not None:
        print(f"\nestimate() at {args.estimate_pfns:,} PFNs [measured time in s, {runs}; "
              f"modeled bytes]")
        print(format_table(est))
    kvm = (one_table(client, Unit(time_kvm_store_loop, (args.pfns, args.repeat), timed=True),
                     "kvm store loop", failed) if "kvm" in emulations else None)
    if kvm is not None:
        print(f"\nkvm per-GFN attribute store over {kvm['gfns']:,} GFNs [measured, {runs}]: "
              f"{kvm['seconds_median']:.3g} s "
              f"({format_range(kvm['seconds_min'], kvm['seconds_max'])}), "
              f"{kvm['ns_per_gfn_median']:.1f} ns/GFN "
              f"({format_range(kvm['ns_per_gfn_min'], kvm['ns_per_gfn_max'])}) "
              f"(real-world anchor: >= {kvm['anchor_ns_per_gfn']:.0f} ns/GFN, 26 s soft "
              f"lockup on a 1 TB+ guest)")
    if args.csv:
        write_csv_atomic(df, args.csv)
    for line in failed:
        print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
    return 1 if failed else 0


def one_table(client, unit: Unit, what: str, failed: list[str]):
    """The result of one timed unit, or None with "WHAT: why" added to ``failed``."""
    [(status, value)] = run_outcomes(client, [unit], what)
    if status == "ok":
        return value
    failed.append(f"{what}: {value}")
    return None


def failures(df: pd.DataFrame, what: str) -> list[str]:
    """One line per row of ``df`` that failed: "WHAT TRACKER: why" ("what"
    ending in "table" is followed by a colon)."""
    if "error" not in df:
        return []
    sep = ": " if what.endswith("table") else " "
    return [f"{what}{sep}{t}: {e}" for t, e in zip(df["tracker"], df["error"])
            if isinstance(e, str) and e]
