"""kexec: the verdict table -- every strategy on one scenario and one platform.

One row per strategy (trackers first, then options 2-7): kexec_allowed,
added_bytes, scanned_bytes, pages_reset, pages_missed, scan_s, clear_s,
downtime_s = scan_s + clear_s, and, where the structure was built,
scan_measured_s beside the modeled scan_s with scan_model_error.  The
``engine`` column says what produced scan_measured_s: the kernel's own code
(the tracker's ``@kernel`` twin) wherever a twin exists and the kernel
library loads here, the Python/numba emulation only where no twin exists.
The ``provenance`` column says which figures of the row are measured (and by
which engine), emulated (counted from the emulated structure) or modeled
(from kernel sizes and the platform's rates).  The table is printed, and
written as CSV (atomically) with --out.

The platform's ``cpus_at_reset`` defaults to 1: machine_kexec() runs after
the other CPUs are stopped.  --cpus N models a reset moved to before
stop_other_cpus().
"""

from __future__ import annotations

import argparse

import pandas as pd

from ..kernel import MAX_PHYS_PFN
from ..options import int_option, output_file
from ..output import write_csv_atomic
from ..workloads import SCENARIOS, scenario
from .host import KexecHost, from_workload
from .platform import PLATFORMS, get_platform
from .race import failed_reclaim, race
from .strategies import Outcome, get_strategies

HELP = "the kexec verdict table: every strategy on one scenario (modeled + measured)"

COLUMNS = list(Outcome.__dataclass_fields__)


def evaluate(workload, platform="this-machine", *, strategies=None, emulate: bool = True,
             cpus_at_reset: int | None = None, build_limit_pfns: int | None = None,
             kernel_code: bool = True, cache: dict | None = None) -> pd.DataFrame:
    """Every strategy on ``workload`` (a Workload or a KexecHost) -> DataFrame.

    ``strategies``: names or Strategy objects (default: all of STRATEGIES).
    ``emulate=False`` skips building trackers (estimate() only; no measured column);
    ``build_limit_pfns`` overrides the PFN space up to which trackers are built.
    ``kernel_code=False`` times the emulations even where a ``@kernel`` twin
    could run.  ``cache``: a dict kept across calls on the same KexecHost (one per
    platform): each tracker is then built and timed once, its measurement
    costed on every platform.
    """
    host = workload if isinstance(workload, KexecHost) else from_workload(workload)
    plat = get_platform(platform)
    if cpus_at_reset is not None:
        plat = plat.with_cpus(cpus_at_reset)
    chosen = get_strategies(strategies)
    kw = {} if build_limit_pfns is None else {"build_limit_pfns": int(build_limit_pfns)}
    kw["kernel_code"] = kernel_code
    if cache is not None:
        kw["cache"] = cache
    rows = [s.assess(host, plat, emulate=emulate, **kw).row() for s in chosen]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["platform"] = f"{plat.name} [{plat.kind}], {plat.cpus_at_reset} CPU at reset"
    df["host"] = host.name
    df["ram_pages"] = host.ram_pages
    df["private_pages"] = host.private_pages
    return df


def format_table(df: pd.DataFrame) -> str:
    """The table for a terminal: sizes in MiB, times in ms, units in headers."""
    t = pd.DataFrame({
        "strategy": df["strategy"],
        "allowed": df["kexec_allowed"].map({True: "yes", False: "NO"}),
        "added MiB [mod]": (df["added_bytes"] / 2**20).round(1),
        "scanned MiB [mod]": (df["scanned_bytes"] / 2**20).round(1),
        "reset pages": df["pages_reset"],
        "missed": df["pages_missed"],
        "scan ms [mod]": (df["scan_s"] * 1e3).round(2),
        "scan ms [meas] median (min-max)": [
            "" if pd.isna(m) else f"{m * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f})"
            for m, lo, hi in zip(df["scan_measured_s"], df["scan_measured_min_s"],
                                 df["scan_measured_max_s"])],
        "model err": df["scan_model_error"].map(lambda x: "" if pd.isna(x) else f"{x:+.0%}"),
        "measured by": df["engine"].where(df["scan_runs"] > 0, ""),
        "clear s [mod]": df["clear_s"].round(3),
        "downtime s [mod]": df["downtime_s"].round(3),
    })
    return t.to_string(index=False)


def add_arguments(p):
    p.add_argument("scenario", choices=list(SCENARIOS), metavar="SCENARIO",
                   help=f"a named scenario of trackers.workloads: {', '.join(SCENARIOS)}")
    p.add_argument("--seed", type=int_option(0), default=0, help="scenario seed (default 0)")
    p.add_argument("--platform", default="this-machine", choices=list(PLATFORMS.keys()))
    p.add_argument("--cpus", type=int_option(1), default=None,
                   help="CPUs at reset, at most the platform's CPUs (default the "
                        "platform's: 1, the other CPUs are stopped in machine_kexec)")
    p.add_argument("--no-emulate", action="store_true",
                   help="do not build trackers: modeled figures only")
    p.add_argument("--emulate-limit", type=int_option(1, MAX_PHYS_PFN, base=0),
                   default=None, metavar="MAX_PFN",
                   help="build and scan trackers only up to this max_pfn (default 2^29)")
    p.add_argument("--no-kernel-code", action="store_true",
                   help="time the Python/numba emulations even where the kernel's own code "
                        "(tdx-trackers kernel-build) is built; default: a tracker with a "
                        "@kernel twin is timed through the kernel's code")
    p.add_argument("--race", action="store_true",
                   help="also fire kexec during the scenario's conversions (race model); "
                        "with --out X.csv its table goes to X-race.csv beside it")
    p.add_argument("--out", type=output_file, default=None, metavar="CSV",
                   help="write the verdict table here as CSV (default: print only)")


def run(args) -> int:
    plat = get_platform(args.platform)
    if args.cpus is not None and args.cpus > plat.cpus_total:
        raise ValueError(f"--cpus {args.cpus}: must be in [1, {plat.cpus_total}] "
                         f"(the CPUs of platform {plat.name})")
    if args.no_emulate and args.emulate_limit is not None:
        raise ValueError("--emulate-limit has no effect with --no-emulate: give one of them")
    race_out = None
    if args.race and args.out is not None:       # X.csv -> X-race.csv: the file name only
        race_out = args.out.with_name(f"{args.out.stem}-race{args.out.suffix}")
        try:
            output_file(str(race_out))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--out {args.out} with --race: {exc}") from None
    wl = scenario(args.scenario, args.seed)
    df = evaluate(wl, plat, emulate=not args.no_emulate, cpus_at_reset=args.cpus,
                  build_limit_pfns=args.emulate_limit, kernel_code=not args.no_kernel_code)
    print(f"kexec on {args.scenario} (seed {args.seed}): {df['ram_pages'].iloc[0]:,} RAM pages, "
          f"{df['private_pages'].iloc[0]:,} TDX-private; platform {df['platform'].iloc[0]}")
    print(format_table(df))
    if args.out is not None:
        write_csv_atomic(df, args.out)
        print(f"written to {args.out}")
    if args.race:
        r = race(platform=args.platform, workload=wl, seed=args.seed)
        piv = r.pivot_table(index="strategy", columns=["kexec", "rate_mib_s"],
                            values="missed_mean", sort=False)
        print("\n[modeled] mean pages missed per kexec, by kexec kind and conversion "
              "rate (MiB/s):")
        print(piv.round(2).to_string())
        fr = failed_reclaim()
        print("\n[modeled] a page whose reclaim failed (leaked, still private) is found by: "
              + ", ".join(fr.loc[fr.finds_leaked, "strategy"]))
        if race_out is not None:
            write_csv_atomic(r, race_out)
            print(f"written to {race_out}")
    return 0
