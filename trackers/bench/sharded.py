"""bench-core's sharded run: a --pfns above --shard-pfns built shard by
shard (trackers/shard.py), each tracker's rows beside estimate() of the
same shards, combined the same way (:func:`sharded_table`), and printed
(:func:`run_sharded`)."""

from __future__ import annotations

import pandas as pd

from ..output import write_csv_atomic
from ..shard import ReferenceShards, check_shards, not_representable, sharded_build
from .rows import RATIO, add_ratios, engine_of, ratio_table
from .tables import format_table


def sharded_table(client, names, args) -> pd.DataFrame:
    """bench-core's rows for a --pfns built shard by shard (trackers/shard.py),
    each beside estimate() of the same shards, combined the same way."""
    why = {n: not_representable(n, args.pfns) for n in names}
    built = iter(sharded_build(client, [n for n in names if not why[n]], args.pfns,
                               args.shard_pfns, ReferenceShards("reference", args.seed),
                               args.repeat, scan_pfns=args.scan_pfns))
    rows = []
    for name in names:
        if why[name]:
            rows.append({"tracker": name, "engine": engine_of(name),
                         "not_representable": why[name]})
            continue
        row = next(built).row()
        rows.append({"tracker": row.pop("tracker"), "engine": engine_of(name), **row})
    return pd.DataFrame(rows)


def run_sharded(client, args, rows_wanted) -> int:
    n = check_shards(args.pfns, args.shard_pfns)
    print(f"reference set: {args.pfns:,} PFNs ({args.pfns * 4096 / 2**40:.3g} TiB) built in "
          f"{n} shards of {args.shard_pfns:,} PFNs, each shard's set generated where it is "
          f"built (reference_set(shard, seed=[{args.seed}, i]); trackers/shard.py)",
          flush=True)
    df = add_ratios(sharded_table(client, rows_wanted, args))
    runs = f"median (min\u2013max) of {args.repeat} run{'s' if args.repeat > 1 else ''}"
    print(f"\n[measured] times in s, each the sum over the shards (one CPU), {runs}, and "
          f"the largest peak RSS of a shard's task (*_shard: one shard's time, median "
          f"(min\u2013max) over the {n} shards, each a sample of the same shape); [modeled] kernel bytes of the whole "
          f"structure combined from its shards (kernel-code rows: the kernel's own node "
          f"counts), beside estimate() of the same shards (modeled_over_estimate)")
    shown = df.drop(columns=[c for c in df if c.endswith(RATIO) or c in ("pfns", "shard_pfns")])
    print(format_table(shown))
    ratios = ratio_table(df)
    if not ratios.empty:
        print("\nemulation / kernel code, per structure (ratio of the median times; of bytes)")
        print(ratios.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if not args.scan_pfns:
        print("\nthe pfns() scan was not timed (scan_pfns_*: NaN); --scan-pfns times it")
    print(f"\nnot at {args.pfns:,} PFNs (one structure over the whole set): the maple "
          f"order table, the conversion cost, estimate() timing and the kvm store loop; "
          f"run bench-core at --pfns <= {args.shard_pfns:,} for them")
    if args.csv:
        write_csv_atomic(df, args.csv)
    return 1 if "error" in df else 0
