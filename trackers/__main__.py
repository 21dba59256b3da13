"""The command line: ``python -m trackers COMMAND`` (or ``tdx-trackers COMMAND``).

Each command lives beside the code it runs; this module only dispatches.
A command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module implementing it, in the order --help lists them
COMMANDS = {
    "bench-core": "trackers.bench",
    "scenarios": "trackers.workloads.cli",
    "kexec": "trackers.kexec.evaluate",
    "calibrate": "trackers.kexec.calibrate",
    "report": "trackers.report.cli",
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, OSError) as exc:
        print(f"tdx-trackers {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
