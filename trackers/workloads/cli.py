"""List the named scenarios with their figures: RAM, private pages by kind, TDs, events.

Every figure is generated (from the seed), not estimated; ``seconds`` is the
measured generation time on this machine.  ``--only`` picks scenarios,
``--list`` prints names and descriptions without generating.
"""

from __future__ import annotations

import sys

from ..options import int_option
from .scenarios import KINDS, SCENARIOS, scenario

HELP = "list the named workload scenarios and their figures"

GIB = 1 << 30


def add_arguments(parser) -> None:
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(SCENARIOS),
                        help="generate only these scenarios")
    parser.add_argument("--seed", type=int_option(0), default=0,
                        help="generator seed (default 0)")
    parser.add_argument("--list", action="store_true",
                        help="names and descriptions only, nothing generated")


def run(args) -> int:
    names = args.only or list(SCENARIOS)
    if args.list:
        for n in names:
            print(f"{n:20s} {SCENARIOS[n].description}")
        return 0
    cols = ["scenario", "RAM GiB", "max_pfn", "TDMRs", "TDs", *KINDS, "extents",
            "batches", "events", "gen s"]
    print("# pages by kind are modeled private pages at the end; gen s is measured")
    print(" ".join(f"{c:>12s}" if i else f"{c:20s}" for i, c in enumerate(cols)))
    for n in names:
        w = scenario(n, args.seed)
        s = w.summary()
        vals = [f"{w.memmap.ram_bytes / GIB:.1f}", f"{w.max_pfn:#x}", s["tdmrs"], s["tds"],
                *[s.get(f"{k}_pages", 0) for k in KINDS], s["private_extents"], s["batches"],
                s["events"], f"{s['seconds']:.2f}"]
        print(f"{n:20s} " + " ".join(f"{v:>12}" if isinstance(v, str) else f"{v:>12,}"
                                     for v in vals))
        sys.stdout.flush()
        del w
    return 0
