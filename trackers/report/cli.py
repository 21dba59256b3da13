"""report: every tracker and kexec strategy over the default scenarios, in one command.

Runs the memory sweep (64 GiB to 16 TiB hosts), the bits-per-page sweep, the
measured-vs-modeled scan, and -- where trackers.workloads and trackers.kexec
are installed -- every strategy on the 1 TiB and 16 TiB scenarios and the
bundled real memory maps, on every platform preset, and the conversion race.
Prints the verdict table and writes to --out (default report/):

  *.png, *.svg   one figure per question (see summary.md)
  *.csv          the data behind each figure, one table per file
  verdict.csv    the verdict table
  summary.md     table and figures, ready to paste into a design review

Files are written into a temporary directory first and then moved over the
old ones one by one (os.replace), so a reader never sees a half-written file.
--quick shrinks every sweep to seconds (for tests); the default run takes
about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HELP = "the design-review report: verdict table, figures (PNG+SVG), CSV and summary.md"


def add_arguments(p):
    p.add_argument("--out", default="report", help="output directory (default: report/)")
    p.add_argument("--quick", action="store_true",
                   help="small hosts only: seconds, for tests and a first look")
    p.add_argument("--seed", type=int, default=0, help="seed of every generated set")
    p.add_argument("--trackers", nargs="*", default=None,
                   help="subset of tracker names (default: every registered tracker)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-calibrate", action="store_true",
                   help="do not measure this machine when it has no calibration yet "
                        "(the this-machine preset then uses PERF-NOTES fallback rates)")


def _progress(total: int, disable: bool):
    try:
        from tqdm import tqdm
    except ImportError:                                     # pragma: no cover
        return None
    return tqdm(total=total, file=sys.stderr, disable=disable, unit="step",
                bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")


def write_report(tables, out: Path, meta: dict) -> list[Path]:
    """Write figures, CSVs and summary.md into ``out`` atomically; return the paths."""
    import matplotlib.pyplot as plt

    from . import figures, summary
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        for name, df in tables.items():
            df.to_csv(tmp / f"{name}.csv", index=False)
        verdict = summary.verdict_table(tables)
        verdict.to_csv(tmp / "verdict.csv", index=False)
        drawn = []
        for fig_name, spec in figures.FIGURES.items():
            df = tables.get(spec.table)
            if df is None or df.empty:
                continue                       # no rows: nothing to draw
            fig = spec.draw(df)
            fig.savefig(tmp / f"{fig_name}.png", dpi=130)
            fig.savefig(tmp / f"{fig_name}.svg")
            plt.close(fig)
            drawn.append(fig_name)
        (tmp / "summary.md").write_text(summary.summary_markdown(tables, verdict, drawn, meta))
        written = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)        # atomic per file
            written.append(out / f.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _calibrate_once() -> None:
    """The this-machine platform is measured, not assumed: calibrate (~5 s)
    the first time the report runs on a machine."""
    from ..kexec.platform import calibration_path
    if calibration_path().exists():
        return
    from ..kexec.calibrate import calibrate
    print(f"this machine has no calibration yet: measuring it (tdx-trackers calibrate) "
          f"into {calibration_path()}", file=sys.stderr)
    calibrate()


def run(args) -> int:
    import matplotlib
    matplotlib.use("Agg")                      # the command writes files: no display
    import trackers

    from . import collect, summary
    cfg = (collect.quick_config if args.quick else collect.default_config)(args.seed)
    if args.trackers:
        for n in args.trackers:
            if n not in trackers.TRACKERS:
                raise ValueError(f"unknown tracker {n!r}; known: {', '.join(trackers.TRACKERS)}")
        cfg.trackers = list(args.trackers)
    t0 = time.perf_counter()
    if not (args.quick or args.no_calibrate):
        _calibrate_once()
    steps = collect.plan(cfg)
    bar = _progress(len(steps), args.no_progress)
    try:
        tables = collect.run_steps(steps, bar)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    meta = {"command": "python -m trackers report" + (" --quick" if args.quick else ""),
            "elapsed_s": elapsed, "mode": "quick" if args.quick else "default",
            "seed": args.seed, "trackers": cfg.trackers}
    out = Path(args.out)
    written = write_report(tables, out, meta)
    verdict = summary.verdict_table(tables)
    buf = io.StringIO()
    plat = verdict.attrs["platform"]
    print(f"\nverdict (downtime on {plat}; "
          f"[modeled] = kernel model, [measured] = this machine):", file=buf)
    print(summary.format_verdict(verdict).to_string(index=False), file=buf)
    print(f"\n{len(written)} files written to {out}/ in {elapsed:.0f} s "
          f"(figures: {', '.join(p.stem for p in written if p.suffix == '.png')})", file=buf)
    print(buf.getvalue())
    return 0
