"""report: every tracker and kexec strategy over the default scenarios, in one command.

Runs the memory sweep (64 GiB to 16 TiB hosts), the bits-per-page sweep, the
measured-vs-modeled scan, every strategy on the 1 TiB and 16 TiB scenarios
and the bundled real memory maps on every platform preset, and the
conversion race.
Prints the verdict table and writes to --out (default report/):

  *.png, *.svg   one figure per question (see summary.md)
  *.csv          the data behind each figure, one table per file
  verdict.csv    the verdict table
  recommendation.csv, recommendation.md
                 one row per option: safety, memory, hot path, allocation,
                 crash context, downtime range, touch points (recommend.py);
                 the .md a table of the numbers, then the qualities and sources
  summary.md     the answer first, then tables and figures, ready to paste
                 into a design review
  summary.txt    the answer and the recommendation table in 80 columns, for
                 a plain-text mail
  provenance.json  what produced the report: git commit, seed, package
                 versions, CPU, kernel version of the kernel code, platform
                 presets and their sources, the run's configuration

  MANIFEST       the names of the files above, one per line

A report is published whole: a reader of --out sees the previous report or
the new one, never a mix of two runs, and a killed run leaves the previous
report in place.  The new report is written into a sibling directory,
``OUT.new-<pid>``; files in OUT that are not the previous report's (not in its
MANIFEST) are hard-linked into it; then it takes OUT's place:

* on Linux (3.15+, glibc 2.28+), ``renameat2(RENAME_EXCHANGE)`` swaps the two
  directory entries in one atomic step, and the old report, now at
  ``OUT.new-<pid>``, is removed;
* elsewhere (or on a file system without the exchange) OUT is renamed to
  ``OUT.old-<pid>`` and ``OUT.new-<pid>`` to OUT: two atomic renames, between
  which OUT is briefly absent, never mixed.

A run killed at any point leaves at most an ``OUT.new-<pid>`` or
``OUT.old-<pid>`` beside OUT.  The next run, before any work, removes those
of processes no longer alive (and ``.report-*`` directories the per-file
writer of earlier versions left inside OUT); if OUT itself is missing because
a run was killed between the two renames, ``OUT.old-<pid>`` is renamed back
first.  A write into OUT while the report is published can be lost (it lands
in the old copy); files only change when a report is run.

Before its steps the report builds the kernel's own code (trackers.linux.build():
lib/xarray.c, lib/idr.c, lib/maple_tree.c and find_bit, cached; ~15 s the first
time) when the packages are present, and times every tracker that has a
``@kernel`` twin through it, in the scan figure and the kexec table alike;
where it cannot (or with --no-kernel-code) it measures the Python/numba
emulations, and the first line of summary.md says which, with the reason and
the apt-get command.  ``engine`` in scan_time.csv and kexec.csv names what
produced every measured number.

--memmap FILE (with --trace FILE, --tds SIZES, as ``tdx-trackers kexec``)
adds your own host to the kexec table as one more scenario, named after the
file, its trackers built and timed up to the build limit; a map, trace or TD
layout that cannot be used is refused before any work.

--sharded SIZES (e.g. 4T,16T,64T) builds every tracker, and its @kernel twin,
over the reference set in 1 TiB shards at those host sizes (trackers/shard.py;
each shard a timed step, hours at 64 TiB); --sharded-csv FILE... reads the
same rows from bench-core CSVs of sharded runs instead.  Either writes
sharded.csv and draws its rows in memory_vs_host and scan_time
(trackers/report/sharded.py); a size of one shard or less, or a CSV that is
missing, unreadable, lacks a column, holds a whole build or any value
bench-core could not have written (an unknown tracker, pfns outside
[512, 2^40] as --sharded, bytes or seconds that are not finite numbers >= 0,
estimate_bytes 0 beside built bytes), is refused before any work, naming the
file, row, column, value and limit.

--quick shrinks every sweep to seconds (for tests and a first look): 1-16 GiB
hosts for memory and scans, the ``tiny`` scenario only (and it without its
TDs), 2 000 simulated kexecs per race point, CPU counts 1, 2, 8, 32 and all,
conversions on a 1 GiB set; its answer is the same computation on those
tables.  The default run covers every named scenario but the ``tiny`` test
fixture and fits 3 minutes on 2 cores (config.default_config says what it
trims).

The steps run as Dask tasks (trackers/cluster.py: a local cluster of one
worker process per core, or --scheduler ADDRESS / $TRACKERS_SCHEDULER): the
timed ones (the scan figure, the kexec scenarios whose structures are built,
the conversion cost) one at a time on the timing worker, the modeled ones
beside them.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import errno
import io
import json
import os
import platform as pyplatform
import re
import shutil
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from .. import linux
from ..cluster import add_scheduler_argument
from ..kexec.calibrate import calibrate, print_warnings
from ..kexec.evaluate import add_host_arguments, user_host
from ..kexec.platform import calibration_path
from ..options import int_option, output_dir, output_file
from ..registry import TRACKERS
from . import config, scan, sharded, steps
from .format import fmt_seconds

HELP = "the design-review report: verdict table, figures (PNG+SVG), CSV and summary.md"

#: the report's own files, one name per line: what the next report replaces
MANIFEST = "MANIFEST"


def add_arguments(p):
    p.add_argument("--out", type=output_dir, default="report",
                   help="output directory (default: report/), replaced as a whole")
    p.add_argument("--quick", action="store_true",
                   help="small hosts only: seconds, for tests and a first look")
    p.add_argument("--seed", type=int_option(0), default=0,
                   help="seed of every generated set (default 0)")
    p.add_argument("--trackers", nargs="+", default=None, metavar="NAME",
                   help="subset of tracker names (default: every registered tracker)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verdict", action="store_true",
                   help="also print the verdict table (one row per option, about 250 "
                        "columns wide; verdict.csv holds it as numbers)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="do not measure this machine when it has no calibration yet "
                        "(the this-machine preset then uses the fallback rates of "
                        "docs/kernel-facts.md, 'Measured on these machines')")
    add_scheduler_argument(p, "steps")
    p.add_argument("--no-kernel-code", action="store_true",
                   help="do not build or time the kernel's own code (the @kernel twins, "
                        "trackers/linux): measure the Python/numba emulations only")
    add_host_arguments(p)         # --memmap, --trace, --tds: your own host, one more scenario
    p.add_argument("--sharded", type=sharded.sizes_option, default=None,
                   metavar="SIZE[,SIZE...]",
                   help="also build every tracker (and its @kernel twin) over the reference "
                        "set in 1 TiB shards at these host sizes, PFNs or binary units "
                        "(4T,16T,64T): measured points beside estimate() in sharded.csv, "
                        "memory_vs_host and scan_time (hours at 64 TiB; trackers/shard.py)")
    p.add_argument("--sharded-csv", nargs="+", default=None, metavar="FILE",
                   help="bench-core CSVs of sharded runs (bench-core --pfns $((1<<34)) --csv "
                        "FILE) read as the same rows, without building anything")


def _progress(total: int, disable: bool):
    return tqdm(total=total, file=sys.stderr, disable=disable, unit="step",
                bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")


def write_report(tables, out: Path, meta: dict) -> list[Path]:
    """Write figures, CSVs and summary.md as the directory ``out``, published
    whole (module doc); return the report's paths."""
    from . import figures, summary       # both import pyplot: only when a report is drawn
    out = Path(os.path.realpath(out))          # publish at the real directory
    clean_stale(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(out, "new")
    os.mkdir(tmp)                              # 0777 & ~umask, as OUT will be
    from . import recommend
    tables = steps.split_tables(tables)
    try:
        for name, df in tables.items():
            df.to_csv(tmp / f"{name}.csv", index=False)
        verdict = summary.verdict_table(tables)
        verdict.to_csv(tmp / "verdict.csv", index=False)
        rec = recommend.recommendation_table(tables)
        rec.to_csv(tmp / "recommendation.csv", index=False)
        (tmp / "recommendation.md").write_text(recommend.recommendation_markdown(rec) + "\n")
        meta = {**meta, "provenance": provenance(meta)}
        (tmp / "summary.txt").write_text(summary.summary_text(tables, rec, meta))
        drawn = [name for name, spec in figures.FIGURES.items()
                 if tables.get(spec.table) is not None and not tables[spec.table].empty]
        times = meta["provenance"]["step_times"]   # the figures' times join the steps'
        for fig_name, seconds in draw_figures(tables, drawn, tmp):
            times.append({"step": f"figure {fig_name}",
                          "table": figures.FIGURES[fig_name].table, "timed": False,
                          "seconds": round(seconds, 3)})
        (tmp / "provenance.json").write_text(json.dumps(meta["provenance"], indent=2,
                                                        default=str) + "\n")
        (tmp / "summary.md").write_text(summary.summary_markdown(tables, verdict, drawn, meta,
                                                                 rec))
        names = sorted(f.name for f in tmp.iterdir())
        (tmp / MANIFEST).write_text("".join(f"{n}\n" for n in names))
        publish(tmp, out)
        return [out / n for n in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # unpublished, or the old report


def draw_figure(tables, fig_name: str, where: Path) -> tuple[str, float]:
    """Draw figure ``fig_name`` of ``tables`` (its table has rows) as
    ``where``/NAME.png and .svg; (its name, the seconds it took)."""
    import matplotlib
    matplotlib.use("Agg")                      # a worker process may not have chosen yet
    import matplotlib.pyplot as plt

    from . import figures
    t0 = time.perf_counter()
    fig = figures.FIGURES[fig_name].render(tables)   # its table and the further ones it reads
    fig.savefig(where / f"{fig_name}.png", dpi=130)
    fig.savefig(where / f"{fig_name}.svg")
    plt.close(fig)
    return fig_name, time.perf_counter() - t0


#: processes that draw the figures: each figure is seconds of matplotlib in
#: one process, and the figures are independent; a process's start (spawn,
#: the imports: 2-3 s here) pays off from FIGURES_PER_PROCESS figures on
FIGURE_PROCESSES = 2
FIGURES_PER_PROCESS = 2
#: a drawing process's tables, sent once when it starts (_hold_tables)
_tables = None


def _hold_tables(tables) -> None:
    global _tables
    _tables = tables


def _draw_held(fig_name: str, where: Path) -> tuple[str, float]:
    return draw_figure(_tables, fig_name, where)


def draw_figures(tables, names: list[str], where: Path) -> list[tuple[str, float]]:
    """Every figure of ``names`` drawn into ``where`` by up to
    FIGURE_PROCESSES spawned processes, one per core at most (spawn, not
    fork: this process may hold the kernel library's liburcu threads), each
    sent the tables once; here where there is one core or fewer than
    FIGURES_PER_PROCESS figures a process.  (name, seconds) per figure, in
    ``names`` order."""
    n = min(FIGURE_PROCESSES, os.cpu_count() or 1, len(names) // FIGURES_PER_PROCESS)
    if n <= 1:
        return [draw_figure(tables, name, where) for name in names]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_hold_tables, initargs=(tables,)) as pool:
        return list(pool.map(_draw_held, names, [where] * len(names)))


#: the packages whose versions provenance.json records
PROVENANCE_PACKAGES = ("tdx-page-trackers", "numpy", "pandas", "matplotlib", "numba", "tqdm")


def _git(*args) -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        run = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return run.stdout.strip() if run.returncode == 0 else ""


def provenance(meta: dict) -> dict:
    """What produced a report (provenance.json): the git commit ("unknown"
    outside a checkout), seed, command, package versions, CPU model and count,
    the kernel version of the kernel code built, every platform preset with
    its figures and sources, and the run's configuration (``meta``)."""
    from ..kexec import PLATFORMS
    versions = {}
    for pkg in PROVENANCE_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    plats = {}
    for name, p in PLATFORMS.items():
        d = dataclasses.asdict(p)
        plats[name] = {"kind": d.pop("kind"), "sources": d.pop("sources"), "figures": d}
    kc = meta.get("kernel_code") or {}
    return {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "seed": meta.get("seed", 0),
        "command": meta.get("command", ""),
        "mode": meta.get("mode", ""),
        "elapsed_s": meta.get("elapsed_s"),
        # where the time went: the run's phases (kernel code, calibration, the
        # steps' wall time), every step in its worker, every figure drawn
        "step_times": meta.get("step_times", []),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": pyplatform.python_version(),
        "packages": versions,
        "cpu_model": scan.cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": scan.machine(),
        "os_kernel": pyplatform.release(),
        "kernel_code": {k: kc.get(k) for k in ("available", "version", "reason")
                        if k in kc},
        "platforms": plats,
        "config": meta.get("config", {}),
        "left_out": meta.get("left_out", {}),
        "sharded": meta.get("sharded", {}),
        "calibration": _calibration_summary(),
    }


def _calibration_summary() -> dict:
    """The this-machine calibration behind the measured platform: when, how many
    runs, every figure's median and min-max spread and engine, the clear's
    engine (MOVDIR64B or its stand-in) and the scan costs per structure with
    their method, the machine's load (empty where this machine was never
    calibrated; None for what an older calibration file lacks)."""
    try:
        doc = json.loads(calibration_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: doc.get(k) for k in ("measured_at", "repeat", "cpu", "cpus_total", "figures",
                                    "spread", "engines", "clear", "scan_costs", "method",
                                    "load", "warnings")}


def staging_path(out: Path, kind: str, pid: int | None = None) -> Path:
    """``OUT.new-<pid>`` (the report being written) or ``OUT.old-<pid>``."""
    return out.with_name(f"{out.name}.{kind}-{os.getpid() if pid is None else pid}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False            # ours are removed before we return: an earlier process's
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True             # another user's live process
    return True


def clean_stale(out: Path) -> None:
    """Undo what killed runs left (module doc): restore OUT from an
    ``OUT.old-<pid>`` if OUT is missing, then remove the ``OUT.new-<pid>`` and
    ``OUT.old-<pid>`` of dead processes and the ``.report-*`` temporary
    directories earlier versions left inside OUT."""
    out = Path(out)
    if not out.parent.is_dir():
        return
    stale = re.compile(rf"{re.escape(out.name)}\.(old|new)-(\d+)")
    found = sorted((m.group(1) != "old", p) for p in out.parent.iterdir()
                   if (m := stale.fullmatch(p.name)) and not _alive(int(m.group(2))))
    for _, p in found:                         # old- first: a missing OUT comes back
        if p.name.startswith(f"{out.name}.old-") and not os.path.lexists(out):
            os.rename(p, out)
        else:
            shutil.rmtree(p, ignore_errors=True)
    if out.is_dir():
        for p in out.glob(".report-*"):
            shutil.rmtree(p, ignore_errors=True)


def _previous_report_files(out: Path) -> set[str]:
    try:
        return set((out / MANIFEST).read_text().split("\n")) - {""}
    except FileNotFoundError:
        return set()            # a report of an earlier version, or not a report


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _keep_user_files(old: Path, new: Path) -> None:
    """Hard-link into ``new`` what ``old`` holds that is not the previous
    report's (nor a new report file, nor a stale temporary directory)."""
    ours = _previous_report_files(old) | {MANIFEST}
    for entry in os.scandir(old):
        if entry.name in ours or entry.name.startswith(".report-") or \
                os.path.lexists(new / entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, new / entry.name, symlinks=True,
                            copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, str(new / entry.name))


AT_FDCWD = -100                 # <fcntl.h>
RENAME_EXCHANGE = 2             # <linux/fs.h>


def exchange(a: Path, b: Path) -> bool:
    """Swap the directory entries ``a`` and ``b`` in one atomic step (Linux
    renameat2 RENAME_EXCHANGE); False where the C library, the kernel or the
    file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish(new: Path, out: Path) -> None:
    """Put the complete report ``new`` in place of ``out`` (module doc); on
    return ``new`` holds the previous report, if there was one, or is gone."""
    if not os.path.lexists(out):
        os.rename(new, out)
        return
    _keep_user_files(out, new)
    if exchange(new, out):
        return
    old = staging_path(out, "old")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)                    # the previous report, whole, back in place
        raise
    os.rename(old, new)                        # the caller removes it


def _check_calibration_path() -> None:
    """Where _calibrate_once would write, checked like --out before any work."""
    if calibration_path().exists():
        return
    try:
        output_file(str(calibration_path()))
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"the calibration file (set $TRACKERS_CALIBRATION, or give "
                         f"--no-calibrate): {exc}") from None


def _calibrate_once() -> None:
    """The this-machine platform is measured, not assumed: calibrate (~5 s)
    the first time the report runs on a machine."""
    if calibration_path().exists():
        return
    print(f"this machine has no calibration yet: measuring it (tdx-trackers calibrate) "
          f"into {calibration_path()}", file=sys.stderr)
    doc, _ = calibrate()
    print_warnings(doc, "tdx-trackers report")


def prepare_kernel_code(skip: bool) -> dict:
    """Build the kernel's own code (trackers.linux.build(): cached, ~15 s the
    first time on a machine) so the report can time it; what happened, for
    summary.md: ``available``, and ``version`` or the ``reason`` it is not
    (and the ``fix``); ``repaired`` when a damaged cached library was rebuilt
    (trackers.linux.repaired())."""
    if skip:
        return {"available": False, "skipped": True, "reason": "skipped with --no-kernel-code"}
    t0 = time.perf_counter()
    try:
        linux.build()
    except linux.KernelCodeUnavailable as exc:   # names what is missing, and the fix
        return {"available": False, "reason": str(exc), "fix": exc.fix}
    except OSError as exc:
        return {"available": False, "reason": str(exc)}
    ok, why = linux.available()
    if not ok:
        return {"available": False, "reason": why}
    built_s = time.perf_counter() - t0
    if built_s > 1:
        print(f"kernel code: built Linux {linux.version()}'s lib/xarray.c, lib/idr.c, "
              f"lib/maple_tree.c and find_bit in {fmt_seconds(built_s)} (cached for the next run)",
              file=sys.stderr)
    out = {"available": True, "version": linux.version(), "library": why,
           "build_s": built_s}
    if linux.repaired():                       # a damaged cached library was replaced
        out["repaired"] = linux.repaired()
    return out


def command_line(args) -> str:
    """The command that repeats this report's computation (without --out)."""
    cmd = ["tdx-trackers", "report"]
    if args.quick:
        cmd.append("--quick")
    if args.seed:
        cmd += ["--seed", str(args.seed)]
    if args.trackers:
        cmd += ["--trackers", *args.trackers]
    if getattr(args, "no_kernel_code", False):
        cmd.append("--no-kernel-code")
    for opt in ("memmap", "trace", "tds"):
        if getattr(args, opt, None) is not None:
            cmd += [f"--{opt}", str(getattr(args, opt))]
    if getattr(args, "sharded", None):
        cmd += ["--sharded", ",".join(map(str, args.sharded))]
    if getattr(args, "sharded_csv", None):
        cmd += ["--sharded-csv", *map(str, args.sharded_csv)]
    return " ".join(cmd)


def run(args) -> int:
    import matplotlib                          # heavy: only when a report is drawn
    matplotlib.use("Agg")                      # the command writes files: no display
    cfg = (config.quick_config if args.quick else config.default_config)(args.seed)
    if args.trackers:
        for n in args.trackers:
            if n not in TRACKERS:
                raise ValueError(f"unknown tracker {n!r}; known: {', '.join(TRACKERS)}")
        cfg.trackers = list(args.trackers)
    # sharded points: sizes and bench-core CSVs refused before any work
    cfg.sharded_pfns = list(getattr(args, "sharded", None) or [])
    sharded.check_sizes(cfg.sharded_pfns, cfg.shard_pfns)
    sharded_csvs = {p: sharded.load_csv(p) for p in getattr(args, "sharded_csv", None) or []}
    cfg.user_host = user_host(args)
    if cfg.user_host is not None:             # a bad map, trace or --tds: refused before any work
        cfg.user_host.build(args.seed)
    calibrate = not (args.quick or args.no_calibrate)
    if calibrate:
        _check_calibration_path()
    out = Path(args.out)
    clean_stale(Path(os.path.realpath(out)))   # what killed runs left, before any work
    t0 = time.perf_counter()
    step_times: list[dict] = []
    kernel_code = prepare_kernel_code(args.no_kernel_code)
    cfg.kernel_code = kernel_code["available"]
    _phase(step_times, "kernel code (build or find it built)", t0)
    if calibrate:
        t1 = time.perf_counter()
        _calibrate_once()
        _phase(step_times, "calibrate this machine", t1)
    planned = steps.plan(cfg)
    bar = _progress(len(planned), args.no_progress)
    t1 = time.perf_counter()
    ran: list[dict] = []
    try:
        tables = steps.run_steps(planned, bar, scheduler=args.scheduler, step_times=ran)
    finally:
        if bar is not None:
            bar.close()
    _phase(step_times, "steps (wall: the cluster's start, every task, its stop)", t1)
    step_times += ran
    tables = steps.add_sharded(cfg, tables, sharded_csvs)
    elapsed = time.perf_counter() - t0
    meta = {"command": command_line(args),
            "elapsed_s": elapsed, "mode": "quick" if args.quick else "default",
            "seed": args.seed, "trackers": cfg.trackers, "kernel_code": kernel_code,
            "config": dataclasses.asdict(cfg), "left_out": config.left_out(cfg),
            "quick_covers": config.quick_covers(),
            "sharded": sharded.provenance(cfg.sharded_pfns, cfg.shard_pfns, sharded_csvs,
                                          cfg.sharded_repeat),
            "step_times": step_times}
    t1 = time.perf_counter()
    written = write_report(tables, out, meta)
    written_s = time.perf_counter() - t1
    _phase(step_times, f"write the report (tables, figures in up to {FIGURE_PROCESSES} "
                       f"processes, summary)", t1)
    print(ending(steps.split_tables(tables), meta, written, out, elapsed + written_s,
                 verdict=getattr(args, "verdict", False), step_times=step_times))
    return 0


def ending(tables, meta: dict, written: list[Path], out: Path, elapsed: float, *,
           verdict: bool = False, step_times: list[dict] | None = None,
           width: int = 80) -> str:
    """What ``tdx-trackers report`` prints last, in ``width`` columns: (with
    ``verdict``) the verdict table, where the time went (``step_times``), then
    the answer and where the files went."""
    from . import recommend, summary           # summary imports pyplot
    buf = io.StringIO()
    if verdict:
        v = summary.verdict_table(tables)
        print(f"verdict (downtime on {v.attrs['platform']}; [modeled] = kernel model, "
              f"[measured] = this machine):", file=buf)
        print(summary.format_verdict(v).to_string(index=False), file=buf)
        print(file=buf)
    if step_times:
        print(format_step_times(step_times, elapsed), file=buf)
        print(file=buf)
    rec = recommend.recommendation_table(tables)
    for line in summary.answer_text(tables, rec, width):
        print(line, file=buf)
    print(file=buf)
    figures = [p.stem for p in written if p.suffix == ".png"]
    tail = (f"{len(written)} files written to {out}/ in {fmt_seconds(elapsed)}: summary.md "
            f"(the report), summary.txt (this answer and the options in {width} columns), "
            f"{len(figures)} figures, the CSVs; --verdict prints the verdict table.")
    print("\n".join(textwrap.wrap(tail, width, break_on_hyphens=False)), file=buf)
    for line in textwrap.wrap(summary.engine_line(tables, meta).replace("**", ""), width,
                              break_on_hyphens=False):
        print(line, file=buf)
    return buf.getvalue().rstrip("\n")


def _phase(step_times: list[dict], what: str, since: float) -> None:
    """One phase of the run (not a step) and its seconds since ``since``."""
    step_times.append({"step": what, "table": "", "timed": False,
                       "seconds": round(time.perf_counter() - since, 3)})


def format_step_times(step_times: list[dict], total_s: float, slowest: int = 5) -> str:
    """Where the time went, in 80 columns: the phases, then the ``slowest``
    steps (seconds in their worker; timed ones ran alone on the timing worker,
    one after another); all of them are in provenance.json."""
    phases = [t for t in step_times if not t["table"]]
    steps_ = sorted((t for t in step_times if t["table"]), key=lambda t: -t["seconds"])
    timed = sum(t["seconds"] for t in steps_ if t["timed"])
    lines = [f"where the time went ({fmt_seconds(total_s)} in all; every step in "
             f"provenance.json step_times):"]
    lines += textwrap.wrap("; ".join(f"{t['step']} {fmt_seconds(t['seconds'])}"
                                     for t in phases), 78, initial_indent="  ",
                           subsequent_indent="  ", break_on_hyphens=False)
    lines.append(f"  timed steps, one at a time on the timing worker: {fmt_seconds(timed)}; "
                 f"the slowest:")
    lines += [f"  {fmt_seconds(t['seconds']):>9}  {t['step']}"[:78]
              + (" [timed]" if t["timed"] else "") for t in steps_[:slowest]]
    return "\n".join(lines)
