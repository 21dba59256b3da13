"""The command line: ``python -m trackers COMMAND`` (or ``tdx-trackers COMMAND``).

Each command lives beside the code it runs; this module only dispatches.
A command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; its options are checked by their argparse ``type=``
(trackers.output) or at the top of ``run`` before any work.

Exit status: 0 done; 1 the command found a failure (a tracker errored, a
worker died) or ran out of memory; 2 a usage error (a bad option, an unusable path, a refused
size); 130 interrupted (SIGINT, Ctrl-C).  Every failure is one line on stderr,
``tdx-trackers COMMAND: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import trackers
from trackers.cluster import WorkerLost

# command name -> module implementing it, in the order --help lists them
COMMANDS = {
    "bench-core": "trackers.bench.cli",
    "scenarios": "trackers.workloads.cli",
    "kexec": "trackers.kexec.evaluate",
    "calibrate": "trackers.kexec.calibrate",
    "report": "trackers.report.cli",
    "kernel-build": "trackers.linux.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdx-trackers",
        description=(
            "Measure how the Linux kernel should find every Intel TDX private page "
            "at kexec: trackers compared on modeled kernel bytes, measured scan and "
            "update time, and pages missed. Modeled figures come from kernel struct "
            "sizes (docs/kernel-facts.md); measured figures from this machine."),
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {trackers.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    prog = "tdx-trackers"
    try:
        args = build_parser().parse_args(argv)
        prog = f"tdx-trackers {args.command}"
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130                              # 128 + SIGINT, as a shell reports it
    except WorkerLost as exc:                  # a Dask worker died: what it took is named
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"{prog}: error: out of memory" + (f": {exc}" if str(exc) else ""),
              file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
