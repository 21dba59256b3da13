"""What a user waits for, timed whole: the 1 TiB verdict (and the same
built one structure at a time), the fast test subset, the full test suite
and the default report.

Not asv benchmarks: each is one command of a minute or more, run as the
user runs it, in a fresh process from the repository root.  The script
prints, per command, the median and min-max wall seconds of ``--runs`` runs,
the peak RSS of its largest process (the command or one of its Dask
workers: ``RUSAGE_CHILDREN``'s ``ru_maxrss``) and the 1-minute load
average before and after each run -- on a shared machine every time is an
upper bound, to be read beside its load.  A figure that grows between two
commits is the next change that slowed it:

    .venv/bin/python -m benchmarks.commands                     # all five, once each
    .venv/bin/python -m benchmarks.commands verdict-1tib --runs 3

A command that fails prints the tail of its output and makes the script
exit 1.  Nothing here asserts a time (the tests never do).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

#: name -> (what it is, its argv; {out} is a fresh temporary directory)
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "verdict-1tib": ("tdx-trackers kexec 1tib-churn (every structure built on kernel code "
                     "where it loads, several at once)",
                     [PY, "-m", "trackers", "kexec", "1tib-churn"]),
    "verdict-1tib-one-at-a-time": ("the same, one structure built at a time",
                                   [PY, "-m", "trackers", "kexec", "1tib-churn",
                                    "--builds-at-once", "1"]),
    "tests-fast": ("the fast test subset (README: pytest -m 'not slow')",
                   [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow"]),
    "tests-full": ("the full test suite (README's test command, as .ci/run runs it)",
                   [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"]),
    "report": ("tdx-trackers report, default run (kernel code built where it can be)",
               [PY, "-m", "trackers", "report", "--no-progress", "--out", "{out}"]),
}


def run_once(argv: list[str]) -> tuple[float, float, float, float, int, str]:
    """(wall seconds, peak RSS bytes of the largest process, load before,
    load after, exit status, the output's tail) of one run of ``argv``."""
    with tempfile.TemporaryDirectory(prefix="bench-command-") as tmp:
        argv = [a.replace("{out}", str(Path(tmp) / "out")) for a in argv]
        log = Path(tmp) / "log"
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        with open(log, "w") as f:
            status = subprocess.call(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()[0]
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    # ru_maxrss is in KiB on Linux: the largest of every child waited for so far
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return wall, rss, load_before, load_after, status, tail


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"which (default all): {', '.join(COMMANDS)}")
    p.add_argument("--runs", type=int, default=1, help="runs of each (default 1)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in COMMANDS]
    if unknown:
        p.error(f"unknown {', '.join(unknown)}; known: {', '.join(COMMANDS)}")
    failed = False
    for name in args.names or list(COMMANDS):
        what, cmd = COMMANDS[name]
        walls, loads = [], []
        rss = 0.0
        for _ in range(max(args.runs, 1)):
            wall, peak, before, after, status, tail = run_once(cmd)
            if status != 0:
                print(f"{name}: exit status {status}\n{tail}", file=sys.stderr)
                failed = True
                break
            walls.append(wall)
            loads.append((before, after))
            rss = max(rss, peak)
        if not walls:
            continue
        load = ", ".join(f"{b:.1f}->{a:.1f}" for b, a in loads)
        print(f"{name:13s} {statistics.median(walls):7.1f} s (min {min(walls):.1f}, max "
              f"{max(walls):.1f}, {len(walls)} run(s)); peak RSS {rss / 2**30:.2f} GiB; "
              f"load {load}  -- {what}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
