"""bench-core: every tracker on the 1 TiB reference set, measured and modeled.

Builds the reference set (trackers/sets.py: 2^28 PFNs, 60 % in random
2 MiB extents, ~10 % scattered 4 KiB pages; seeded) and, for each tracker in
its own process (so peak RSS is that tracker's), times populate
(mark_ranges), a full extents() scan and a full pfns() scan, --repeat runs
each.  Prints measured times and peak RSS beside the modeled kernel bytes,
bits per private page and ns per page; then times estimate() at
--estimate-pfns (default 2^32, 16 TiB) for every tracker (a tracker whose
structure cannot hold that many PFNs, the IDA beyond 2^31, gets a row saying
"not representable" instead of a number), and the kvm
per-GFN attribute store loop against the real-world anchor (a 1 TB+ guest
spent >= 26 s in kvm_vm_set_mem_attributes: ~100 ns per GFN; Liam Merwick,
Jun 2025), each --repeat times too.

Every measured time is reported as its median and its spread over the
repeats: printed as "median (min-max)", and in the --csv table as three
columns, NAME_median, NAME_min and NAME_max (populate_s, scan_extents_s,
scan_pfns_s); ns-per-page figures derive from the medians.

Columns: [measured] times and RSS on this machine; [modeled] kernel bytes.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import sys
import time

import numpy as np
import pandas as pd
from tqdm import tqdm

from .base import NotRepresentable, memory_budget
from .kernel import MAX_PHYS_PFN, PAGES_PER_2M
from .kvm import xa_store_per_gfn
from .options import int_option, output_file
from .output import write_csv_atomic
from .registry import TRACKERS
from .sets import reference_set
from .xa import XaTree, xa_node_counts

HELP = "time every tracker on the 1 TiB reference set (measured) beside its modeled bytes"

ANCHOR_NS_PER_GFN = 26e9 / (1 << 28)   # >= 26 s for a 1 TB guest: ~97 ns/GFN


def add_arguments(p):
    pfns = int_option(PAGES_PER_2M, MAX_PHYS_PFN, multiple_of=PAGES_PER_2M, base=0,
                      why="whole 2 MiB extents, up to 2^40 PFNs")
    p.add_argument("--pfns", type=pfns, default=1 << 28,
                   help="PFN space of the reference set (default 2^28 = 1 TiB)")
    p.add_argument("--repeat", type=int_option(1), default=3,
                   help="timed runs per figure; median and min-max reported (default 3)")
    p.add_argument("--estimate-pfns", type=pfns, default=1 << 32,
                   help="PFN space for the estimate() timing (default 2^32 = 16 TiB)")
    p.add_argument("--trackers", nargs="+", default=None, metavar="NAME",
                   help="subset of tracker names (default: every registered tracker)")
    p.add_argument("--seed", type=int_option(0), default=0, help="reference-set seed")
    p.add_argument("--csv", type=output_file, default=None,
                   help="also write the table here (atomically)")


#: each measured time is reported as its median and its spread over --repeat runs
STATS = ("median", "min", "max")


def _timed(fn, repeat) -> list[float]:
    """Seconds of ``repeat`` calls of fn, one sample per call."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _spread(name: str, samples: list[float]) -> dict:
    """{name_median, name_min, name_max} of the samples."""
    return {f"{name}_median": statistics.median(samples), f"{name}_min": min(samples),
            f"{name}_max": max(samples)}


def _drain(it):
    n = 0
    for chunk in it:
        n += len(chunk[0]) if isinstance(chunk, tuple) else len(chunk)
    return n


def measure_tracker(name: str, max_pfn: int, starts, ends, repeat: int) -> dict:
    """Populate and scan one tracker; return its measured and modeled row."""
    pages = int((ends - starts).sum())
    cls = TRACKERS[name]
    holder = {}

    def populate():
        holder.clear()                           # one tracker alive at a time
        t = cls(max_pfn)
        t.mark_ranges(starts, ends)
        holder["t"] = t
    warm = cls(max_pfn)                          # warm-up: numba compile, small set
    warm.mark_ranges(starts[:1000], ends[:1000])
    _drain(warm.extents()), _drain(warm.pfns())
    del warm
    populate_s = _spread("populate_s", _timed(populate, repeat))
    t = holder["t"]
    extents_s = _spread("scan_extents_s", _timed(lambda: _drain(t.extents()), repeat))
    pfns_s = _spread("scan_pfns_s", _timed(lambda: _drain(t.pfns()), repeat))
    n_ext = _drain(t.extents())
    assert len(t) == pages and n_ext == starts.size, f"{name}: scan disagrees with the set"
    m = t.memory()
    return {
        "tracker": name,
        **populate_s, **extents_s, **pfns_s,
        "populate_ns_per_page": populate_s["populate_s_median"] / pages * 1e9,
        "scan_pfns_ns_per_page": pfns_s["scan_pfns_s_median"] / pages * 1e9,
        "modeled_bytes": m.modeled_bytes,
        "scanned_bytes": m.scanned_bytes,
        "bits_per_private_page": m.modeled_bytes * 8 / pages,
        "host_bytes": m.host_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _child(conn, name, max_pfn, starts, ends, repeat):
    try:
        conn.send(measure_tracker(name, max_pfn, starts, ends, repeat))
    except NotRepresentable as exc:   # not an error: the option does not exist here
        conn.send({"tracker": name, "not_representable": exc.summary})
    except BaseException as exc:  # report, never hang the parent
        conn.send({"tracker": name, "error": f"{type(exc).__name__}: {exc}"})
    conn.close()


def run_isolated(name, max_pfn, starts, ends, repeat) -> dict:
    """measure_tracker in a forked child, so ru_maxrss is this tracker's peak."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, max_pfn, starts, ends, repeat))
    proc.start()
    row = parent.recv()
    proc.join()
    return row


def time_estimates(names, max_pfn, seed, repeat: int = 1) -> pd.DataFrame:
    """estimate() at max_pfn on the reference shape with 1 % scattered pages,
    timed ``repeat`` times per tracker (median, min, max).

    At 16 TiB the 10 % scatter of the 1 TiB set would be 4.3e8 single-page
    extents (3.4 GB per index array); 1 % keeps the input realistic and in
    memory while the 2 MiB extents still cover 60 % of the host.
    """
    starts, ends = reference_set(max_pfn, seed, scatter_fraction=0.01)
    rows = []
    for name in names:
        cls = TRACKERS[name]
        try:
            cls.estimate(starts[:1000], ends[:1000], max_pfn)  # warm-up: numba compile
        except NotRepresentable as exc:
            rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                         **{f"estimate_s_{k}": np.nan for k in STATS},
                         "modeled_bytes": np.nan, "not_representable": exc.summary})
            continue
        nbytes = []
        times = _timed(lambda: nbytes.append(cls.estimate(starts, ends, max_pfn)), repeat)
        rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                     **_spread("estimate_s", times), "modeled_bytes": nbytes[-1]})
    return pd.DataFrame(rows)


def time_kvm_store_loop(n_gfns: int, repeat: int = 1) -> dict:
    """ns per GFN of kvm_vm_set_mem_attributes' loop -- one xa_store() walk
    from xa_head per GFN -- over one TD of n_gfns private GFNs; ``repeat``
    runs, each into a fresh mem_attr_array (median, min, max)."""
    s, e = np.array([0]), np.array([n_gfns])
    times = []
    for i in range(repeat):
        tree = None                                  # one mem_attr_array alive at a time
        tree = XaTree(budget_bytes=memory_budget(), what="mem_attr_array")
        if i == 0:
            xa_store_per_gfn(*tree.arrays, np.array([0]), np.array([0]))      # compile
        tree.reserve(int(xa_node_counts(s, e).sum()))
        t0 = time.perf_counter()
        xa_store_per_gfn(*tree.arrays, s, e)
        times.append(time.perf_counter() - t0)
        assert len(tree) == n_gfns
    row = {"gfns": n_gfns, **_spread("seconds", times)}
    row.update({f"ns_per_gfn_{k}": row[f"seconds_{k}"] / n_gfns * 1e9 for k in STATS})
    row["anchor_ns_per_gfn"] = ANCHOR_NS_PER_GFN
    return row


def _range(lo: float, hi: float) -> str:
    return f"{lo:.3g}\u2013{hi:.3g}"


def format_table(df: pd.DataFrame) -> str:
    """Bytes in MiB; each measured time as "median (min\u2013max)" under its name;
    a row that is not representable shows "-" for its numbers and says why."""
    out = df.copy()
    for col in [c for c in out if c.endswith("_median")]:
        name = col[:-len("_median")]
        out[name] = ["-" if pd.isna(m) else f"{m:.3g} ({_range(lo, hi)})" for m, lo, hi in
                     zip(out[col], out[f"{name}_min"], out[f"{name}_max"])]
        out = out.drop(columns=[col, f"{name}_min", f"{name}_max"])
    for col in ("modeled_bytes", "scanned_bytes", "host_bytes", "peak_rss_bytes"):
        if col in out:
            out[col] = (out[col] / 2**20).map(lambda x: "-" if pd.isna(x) else f"{x:,.1f}")
            out = out.rename(columns={col: col.replace("_bytes", "_MiB")})
    if "not_representable" in out:
        out["not_representable"] = out["not_representable"].fillna("")
    return out.to_string(index=False, float_format=lambda x: f"{x:.3g}")


def run(args) -> int:
    names = args.trackers or list(TRACKERS)
    for n in names:
        if n not in TRACKERS:
            raise ValueError(f"unknown tracker {n!r}; known: {', '.join(TRACKERS)}")
    t0 = time.perf_counter()
    starts, ends = reference_set(args.pfns, args.seed)
    pages = int((ends - starts).sum())
    print(f"reference set: {args.pfns:,} PFNs ({args.pfns * 4096 / 2**40:.3g} TiB), "
          f"{pages:,} private pages in {starts.size:,} extents "
          f"(generated in {time.perf_counter() - t0:.1f} s)", flush=True)
    rows = []
    for name in tqdm(names, desc="trackers", file=sys.stderr):
        rows.append(run_isolated(name, args.pfns, starts, ends, args.repeat))
    df = pd.DataFrame(rows)
    runs = f"median (min\u2013max) of {args.repeat} run{'s' if args.repeat > 1 else ''}"
    print(f"\n[measured] times in s, {runs}, and peak RSS on this machine; "
          f"[modeled] kernel bytes")
    print(format_table(df))
    est = time_estimates(names, args.estimate_pfns, args.seed, args.repeat)
    print(f"\nestimate() at {args.estimate_pfns:,} PFNs [measured time in s, {runs}; "
          f"modeled bytes]")
    print(format_table(est))
    if "kvm" in names:
        kvm = time_kvm_store_loop(args.pfns, args.repeat)
        print(f"\nkvm per-GFN attribute store over {kvm['gfns']:,} GFNs [measured, {runs}]: "
              f"{kvm['seconds_median']:.3g} s "
              f"({_range(kvm['seconds_min'], kvm['seconds_max'])}), "
              f"{kvm['ns_per_gfn_median']:.1f} ns/GFN "
              f"({_range(kvm['ns_per_gfn_min'], kvm['ns_per_gfn_max'])}) "
              f"(real-world anchor: >= {kvm['anchor_ns_per_gfn']:.0f} ns/GFN, 26 s soft "
              f"lockup on a 1 TB+ guest)")
    if args.csv:
        write_csv_atomic(df, args.csv)
    return 0 if "error" not in df else 1
