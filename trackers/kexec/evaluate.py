"""kexec: the verdict table -- every strategy on one scenario and one platform.

The host is a named scenario (SCENARIO) or your own (--memmap FILE: a boot
log with BIOS-e820 lines, /proc/iomem read as root, or a /sys/firmware/memmap
directory), with --trace FILE (an ftrace kvm_vm_set_mem_attributes capture
or a QEMU kvm_convert_memory log, replayed into TD 0) and --tds SIZES
(e.g. 64G,64G:16,16G:4:fragmented=0.25).  Without --tds the TD layout is one
TD covering the trace's GFNs, or without a trace two TDs of 35 % of RAM
(whole GiB), each made smaller where two of that size do not fit the RAM
free for TDs (the host keeps its RAM below 4 GiB); the header says which.
On your own host every tracker is built and timed up to the build limit
(--emulate-limit), so the measured scan and the model error are filled there.

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

The command runs its independent units as Dask tasks (trackers/cluster.py: a
local cluster of one worker process per core, or --scheduler ADDRESS /
$TRACKERS_SCHEDULER): one task per structure (:func:`evaluate_tasks`) and,
with --race, one for the race.  Strategies that read one structure (one
``Strategy.measure_key``: ``bitmap``, ``fallback-bitmap`` and
``parallel-reset`` read one bitmap) are one task, which builds and times it
once (strategy.cached_measure) and assesses each of them on it; every other
strategy is a task of its own.  A task is *timed* where its assess()
builds and times a structure (:func:`builds`); the others are modeled and
run beside it.  On the local cluster, timed tasks build beside each other
-- one per core and one more (trackers.machine_lock.builds_at_once;
--builds-at-once N), as far as the memory each claims fits what the machine
has available (the modeled bytes of its structure, capped by the trackers'
memory budget, plus 1.5 GiB) -- and each timed scan runs alone on the
machine, every other build finished or waiting (trackers/machine_lock.py);
the longest builds start first (:data:`BUILD_FIRST`).  On a --scheduler
cluster a timed task runs alone on a timing worker.  On 1tib-churn, on the
2-core, 24 GiB machine: 89 s one structure at a time, 65 s (60-66, 3 runs)
three at once; the table the same but for the timed columns.  A
progress bar counts the structures built, naming one being built.  The host goes to the workers by
``client.scatter`` (16tib-dense: 82 MiB pickled; built once here and
scattered 1.36 s (1.34-2.25), median of 5, against 4.27 s (2.92-6.93)
rebuilt from (scenario, seed) in both workers of a local cluster; and a
--memmap host's files need not exist on the workers).  The race is one task:
its kexecs draw from one random stream across rates and kexec kinds (the
Poisson counts decide how many draws each takes), so it does not split
without changing the table, and all of it takes 0.09 s on 16tib-dense.
The table is the in-process :func:`evaluate`'s, row for row (the report and
the notebook call that one); :func:`evaluate` too builds each structure once
per call.

How often each built structure's scan is timed is a rule of
:mod:`trackers.repeats`: by default until the runs agree (at least 3; 2 for a
scan of seconds whose two runs agree), with
``--full-repeats`` (``repeat=repeats.FULL``) 5 runs each, as before the rule.
The table is the same either way but for the measured columns
(scan_measured_s and its min-max, scan_runs, and scan_model_error, which
divides by the measured median); below the table the command says which
engine and how many runs produced each measured scan.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..cluster import Unit, add_scheduler_argument, connect, run_units, scheduler_address
from ..machine_lock import builds_at_once, capacity_bytes, claim_bytes, run_beside
from ..kernel import MAX_PHYS_PFN
from ..options import input_file, int_option, output_file
from ..output import write_csv_atomic
from ..repeats import DEFAULT, FULL, as_repeats
from ..workloads import SCENARIOS, UserHost, scenario
from . import gmem
from .host import KexecHost, from_workload
from .platform import PLATFORMS, Platform, get_platform
from .race import chunk_sizes, failed_reclaim, race
from .gmem import GmemMaple
from .strategies import get_strategies
from .strategy import SCAN_REPEAT, Outcome, Strategy

HELP = "the kexec verdict table: every strategy on one scenario (modeled + measured)"

COLUMNS = list(Outcome.__dataclass_fields__)

#: the strategies whose structures take longest to build, longest first:
#: their tasks start first, so that shorter builds fill in beside them (a
#: scheduling hint: it changes when a structure is built, never the table).
#: Measured by `tdx-trackers kexec 1tib-churn` on a 2-core EPYC, one
#: structure at a time: kvm-attr 35 s, pageflags 20, ida 15, xarray 9,
#: kvm-sept and pte-softbit 3 each; every other strategy under 2 s.
BUILD_FIRST = ("kvm-attr", "pageflags", "ida", "xarray", "kvm-sept", "pte-softbit")


def evaluate(workload, platform="this-machine", *, strategies=None, emulate: bool = True,
             cpus_at_reset: int | None = None, build_limit_pfns: int | None = None,
             kernel_code: bool = True, cache: dict | None = None,
             repeat=None) -> pd.DataFrame:
    """Every strategy on ``workload`` (a Workload or a KexecHost) -> DataFrame.

    ``strategies``: names or Strategy objects (default: all of STRATEGIES).
    ``emulate=False`` skips building trackers (estimate() only; no measured column);
    ``build_limit_pfns`` overrides the PFN space up to which trackers are built.
    ``kernel_code=False`` times the emulations even where a ``@kernel`` twin
    could run.  ``repeat``: how often a built structure's scan is timed (an
    int, a trackers.repeats.Repeats rule; default each strategy's
    ``scan_repeat``, until the runs agree).  Strategies that read one
    structure share its build within the call; ``cache``: a dict kept across
    calls on the same KexecHost (one per platform): each structure is then
    built and timed once, its measurement costed on every platform.
    """
    host = workload if isinstance(workload, KexecHost) else from_workload(workload)
    plat = _platform(platform, cpus_at_reset)
    rows = assess_rows(host, plat, get_strategies(strategies), emulate, build_limit_pfns,
                       kernel_code, {} if cache is None else cache, repeat)
    return verdict_frame(rows, host, plat)


def _platform(platform, cpus_at_reset: int | None) -> Platform:
    plat = get_platform(platform)
    return plat if cpus_at_reset is None else plat.with_cpus(cpus_at_reset)


def assess_rows(host: KexecHost, platform: Platform, strategies: list[Strategy],
                emulate: bool = True, build_limit_pfns: int | None = None,
                kernel_code: bool = True, cache: dict | None = None,
                repeat=None) -> list[dict]:
    """The verdict rows (Outcome.row()) of ``strategies`` on ``host``, in
    order: what :func:`evaluate` computes in-process and each task of
    :func:`evaluate_tasks` for its strategies (sharing ``cache``)."""
    kw = {} if build_limit_pfns is None else {"build_limit_pfns": int(build_limit_pfns)}
    kw["kernel_code"] = kernel_code
    if cache is not None:
        kw["cache"] = cache
    if repeat is not None:             # absent, the key the sensitivity's assess() asks
        kw["repeat"] = repeat
    return [s.assess(host, platform, emulate=emulate, **kw).row() for s in strategies]


def verdict_frame(rows: list[dict], host: KexecHost, platform: Platform) -> pd.DataFrame:
    """The verdict table of ``rows`` (strategy order) on ``host`` and ``platform``."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["platform"] = (f"{platform.name} [{platform.kind}], {platform.cpus_at_reset} CPU "
                      f"at reset")
    df["host"] = host.name
    df["ram_pages"] = host.ram_pages
    df["private_pages"] = host.private_pages
    return df


def builds(strategy: Strategy, host: KexecHost, emulate: bool = True,
           build_limit_pfns: int | None = None) -> bool:
    """Whether ``strategy.assess(host)`` may build and time a structure here:
    it has a build limit (trackers, pte-softbit, kvm-sept, gmem-maple), and
    the host's PFNs (gmem-maple: its inodes' pages) are within it.  Erring
    towards True: such a unit is timed (module doc)."""
    own = getattr(strategy, "build_limit_pfns", None)
    if not emulate or own is None:
        return False
    limit = own if build_limit_pfns is None else int(build_limit_pfns)
    if isinstance(strategy, GmemMaple):         # its limit is on the inodes' pages
        return sum(i.pages for i in gmem.inodes(host)) <= limit
    return host.max_pfn <= limit


def structure_groups(strategies: list[Strategy]) -> list[list[Strategy]]:
    """``strategies`` grouped by the structure they read (Strategy.measure_key),
    each group in the order given, the groups in the order of their first
    strategy: ``bitmap``, ``fallback-bitmap`` and ``parallel-reset`` are one."""
    groups: dict[tuple, list[Strategy]] = {}
    for s in strategies:
        groups.setdefault(s.measure_key, []).append(s)
    return list(groups.values())


def strategy_units(host_ref, host: KexecHost, platform: Platform, strategies: list[Strategy],
                   emulate: bool = True, build_limit_pfns: int | None = None,
                   kernel_code: bool = True, repeat=None) -> tuple[list[Unit], list[list[int]]]:
    """One unit per structure (:func:`structure_groups`): :func:`assess_rows`
    of its strategies on ``host_ref`` (the host, or a future of it scattered
    to the workers) with one measurement cache, so the structure is built and
    timed once; timed where it :func:`builds`.  Returns the units and, for
    each, the indices in ``strategies`` of its strategies."""
    index = {id(s): i for i, s in enumerate(strategies)}
    units, where = [], []
    for group in structure_groups(strategies):
        units.append(Unit(assess_rows, (host_ref, platform, group, emulate, build_limit_pfns,
                                        kernel_code, {}, repeat),
                          timed=any(builds(s, host, emulate, build_limit_pfns) for s in group),
                          label=", ".join(s.name for s in group)))
        where.append([index[id(s)] for s in group])
    return units, where


def evaluate_tasks(client, workload, platform="this-machine", *, strategies=None,
                   emulate: bool = True, cpus_at_reset: int | None = None,
                   build_limit_pfns: int | None = None, kernel_code: bool = True,
                   progress: bool = True, extra: list[Unit] = (), repeat=None,
                   builds_at_once: int = 1, capacity_bytes: int | None = None) -> tuple:
    """:func:`evaluate` with each structure a task on ``client`` (module doc):
    the same table, row for row.  ``extra``: more units run in the same batch
    (the race); returns (the table, the results of ``extra`` in order).  The
    progress bar counts the structures built (the timed tasks), naming the
    one being built.  ``builds_at_once`` > 1: up to that many timed tasks
    build beside each other, each timed section alone (trackers.machine_lock),
    their claims (the modeled bytes of the structure each builds, capped by
    the memory budget, plus a worker's overhead: machine_lock.claim_bytes)
    within ``capacity_bytes``; every worker of ``client`` must be on this
    machine, that many of them timing workers
    (cluster.connect(timed_workers=...))."""
    host = workload if isinstance(workload, KexecHost) else from_workload(workload)
    plat = _platform(platform, cpus_at_reset)
    chosen = get_strategies(strategies)
    ref = client.scatter(host, hash=False)
    units, where = strategy_units(ref, host, plat, chosen, emulate, build_limit_pfns,
                                  kernel_code, repeat)
    # the timed units first (they queue on the timing workers: the critical
    # path), the longest builds first (BUILD_FIRST)
    first = {name: k for k, name in enumerate(BUILD_FIRST)}
    order = sorted(range(len(units)), key=lambda i: (
        not units[i].timed,
        min(first.get(chosen[j].name, len(first)) for j in where[i])))
    with tempfile.TemporaryDirectory(prefix="tdx-trackers-lock-") as lock:
        if builds_at_once > 1:
            units = [replace(u, fn=run_beside, args=(lock, u.fn, *u.args),
                             claim_bytes=_claim(host, plat, [chosen[j] for j in where[i]]))
                     if u.timed else u for i, u in enumerate(units)]
        batch = [units[i] for i in order] + list(extra)
        weights = [int(u.timed) for u in batch]
        ran = run_units(client, batch, progress=progress, name_running=True,
                        capacity_bytes=capacity_bytes if builds_at_once > 1 else None,
                        **(dict(desc=f"building {host.name}'s structures", weights=weights)
                           if any(weights) else dict(desc="kexec")))
    rows: list = [None] * len(chosen)
    for i, r in zip(order, ran):
        for j, row in zip(where[i], r):
            rows[j] = row
    return verdict_frame(rows, host, plat), ran[len(units):]


def _claim(host: KexecHost, platform: Platform, group: list[Strategy]) -> int:
    """The memory a task building ``group``'s structure claims: the larger of
    its modeled added and scanned bytes (estimate(), milliseconds), as
    machine_lock.claim_bytes caps and pads it."""
    rows = assess_rows(host, platform, group, emulate=False)
    return claim_bytes(max(max(r["added_bytes"], r["scanned_bytes"]) for r in rows))


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


def format_measured(df: pd.DataFrame, repeat=None) -> str:
    """Below the table: which engine and how many timed runs produced each
    measured scan, one line per structure built (its strategies together),
    and the rule that chose the runs."""
    timed = df[df["scan_runs"] > 0]
    if timed.empty:
        return "measured scans: none (no structure built)"
    lines = [f"measured scans, each the median of its runs "
             f"({as_repeats(repeat if repeat is not None else SCAN_REPEAT).describe()}):"]
    keys = ["engine", "scan_runs", "scan_measured_s", "scan_measured_min_s",
            "scan_measured_max_s"]
    width = 0
    found = []
    for _, g in timed.groupby(keys, sort=False):
        r = g.iloc[0]
        names = ", ".join(g["strategy"])
        width = max(width, len(names))
        found.append((names, f"{r.engine}, {int(r.scan_runs)} runs"))
    lines += [f"  {names:<{width}}  {what}" for names, what in found]
    return "\n".join(lines)


def scenario_name(text: str) -> str:
    """An argparse ``type=``: a scenario name; a file given here is pointed to --memmap."""
    if text in SCENARIOS:
        return text
    if os.path.exists(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a file, not a named scenario: give your own host as "
            f"--memmap {text}")
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(repr(s) for s in SCENARIOS)})")


def existing_path(text: str) -> Path:
    """An argparse ``type=``: a file or directory that exists and can be read."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable by this user")
    return path


#: what --trace wants, for its refusal of a directory
TRACE_FILE = ("a trace file: an ftrace kvm_vm_set_mem_attributes capture or a QEMU "
              "kvm_convert_memory log")


def add_host_arguments(p) -> None:
    """--memmap, --trace, --tds: the user's own host (kexec and report)."""
    p.add_argument("--memmap", type=existing_path, default=None, metavar="FILE",
                   help="your own host's memory map: a boot log with BIOS-e820 lines, "
                        "/proc/iomem read as root, or a /sys/firmware/memmap directory")
    p.add_argument("--trace", type=input_file(TRACE_FILE), default=None, metavar="FILE",
                   help="with --memmap: an ftrace kvm_vm_set_mem_attributes capture or a "
                        "QEMU kvm_convert_memory log, replayed into TD 0")
    p.add_argument("--tds", default=None, metavar="SIZES",
                   help="with --memmap: the TDs, SIZE[:VCPUS[:POLICY]],... e.g. "
                        "64G,64G:16,16G:4:fragmented=0.25 (default: one TD covering the "
                        "trace, or two TDs of 35 %% of RAM, smaller where they do not fit "
                        "the RAM free for TDs)")


def user_host(args) -> UserHost | None:
    """The --memmap host of ``args``, or None; ValueError for --trace/--tds without it."""
    if args.memmap is None:
        for opt, value in (("--trace", args.trace), ("--tds", args.tds)):
            if value is not None:
                raise ValueError(f"{opt} describes your own host: give --memmap FILE too")
        return None
    return UserHost(args.memmap, args.trace, args.tds)


def add_arguments(p):
    p.add_argument("scenario", nargs="?", type=scenario_name, default=None, metavar="SCENARIO",
                   help=f"a named scenario of trackers.workloads: {', '.join(SCENARIOS)}; "
                        f"or give --memmap FILE instead")
    add_host_arguments(p)
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
    p.add_argument("--full-repeats", action="store_true",
                   help=f"time each built structure's scan {FULL.least} times, whatever "
                        f"its spread (default: {DEFAULT.describe()}); the table is the "
                        f"same but for the measured columns")
    p.add_argument("--builds-at-once", type=int_option(1, 64, why="structures built at once"),
                   default=None, metavar="N",
                   help="build up to N structures at once, each timed scan alone on the "
                        "machine, as many as the available memory holds (default: one per "
                        "core and one more; 1: one structure at a time); a --scheduler "
                        "cluster builds one at a time per timing worker")
    p.add_argument("--race", action="store_true",
                   help="also fire kexec during the scenario's conversions (race model); "
                        "with --out X.csv its table goes to X-race.csv beside it")
    p.add_argument("--out", type=output_file, default=None, metavar="CSV",
                   help="write the verdict table here as CSV (default: print only)")
    add_scheduler_argument(p)


def run(args) -> int:
    if (args.scenario is None) == (args.memmap is None):
        raise ValueError("give one host: a SCENARIO name or --memmap FILE"
                         + (", not both" if args.scenario is not None else ""))
    own = user_host(args)
    plat = get_platform(args.platform)
    if args.cpus is not None and args.cpus > plat.cpus_total:
        raise ValueError(f"--cpus {args.cpus}: must be in [1, {plat.cpus_total}] "
                         f"(the CPUs of platform {plat.name})")
    if args.no_emulate and args.emulate_limit is not None:
        raise ValueError("--emulate-limit has no effect with --no-emulate: give one of them")
    address = scheduler_address(args.scheduler)
    if address is not None and (args.builds_at_once or 1) > 1:
        raise ValueError(f"--builds-at-once {args.builds_at_once} sizes the local cluster; "
                         f"the cluster at {address} builds one structure at a time per "
                         f"timing worker (--resources timing=1)")
    race_out = None
    if args.race and args.out is not None:       # X.csv -> X-race.csv: the file name only
        race_out = args.out.with_name(f"{args.out.stem}-race{args.out.suffix}")
        try:
            output_file(str(race_out))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"--out {args.out} with --race: {exc}") from None
    wl = own.build(args.seed) if own is not None else scenario(args.scenario, args.seed)
    repeat = FULL if args.full_repeats else None
    extra = []
    if args.race:
        # the workload's conversion sizes: race(workload=wl) draws from these
        sizes = chunk_sizes(wl)
        if sizes.size == 0:
            raise ValueError(f"--race: {wl.name} converts no page private->shared: "
                             f"no conversion for kexec to race")
        extra.append(Unit(race, kwargs=dict(platform=args.platform, chunk_pages=sizes,
                                            seed=args.seed), label="race"))
    # several builds at once only on a local cluster: its workers share this
    # machine, which the timing lock (trackers.machine_lock) is for
    capacity = capacity_bytes()
    at_once = 1 if address is not None or capacity is None else (
        args.builds_at_once or builds_at_once())
    with connect(args.scheduler, timed_workers=at_once) as client:
        df, raced = evaluate_tasks(client, wl, plat, emulate=not args.no_emulate,
                                   cpus_at_reset=args.cpus, build_limit_pfns=args.emulate_limit,
                                   kernel_code=not args.no_kernel_code, extra=extra,
                                   repeat=repeat, builds_at_once=at_once,
                                   capacity_bytes=capacity)
    if own is not None:
        print(f"# {wl.description}")
    print(f"kexec on {wl.name} (seed {args.seed}): {df['ram_pages'].iloc[0]:,} RAM pages, "
          f"{df['private_pages'].iloc[0]:,} TDX-private; platform {df['platform'].iloc[0]}")
    print(format_table(df))
    print(format_measured(df, repeat))
    if args.out is not None:
        write_csv_atomic(df, args.out)
        print(f"written to {args.out}")
    if args.race:
        [r] = raced
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
