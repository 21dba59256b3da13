"""The report's conversion cost: what one private<->shared conversion costs
the tracker each hooked option would keep, measured on this machine.

Table (file stem -> content):

* ``conversion_cost`` tracker x size (4 KiB, 2 MiB) x op (mark, unmark): the
  measured ns of one conversion, median and min-max of ``conversion_repeat``
  timings (trackers.bench.conversion.measure_conversions), for the tracker
  each hooked option would use: its ``@kernel`` twin where the kernel's code
  is built.  ``engine`` names what timed the row: the kernel's code, or
  pageflags' struct pages laid out in C, over one call of every conversion
  less the call's fixed cost; or one Python call per conversion
  (``upper_bound``: roaring, and an emulation where no C engine runs).
  ``others_cpu_share``: the share of this machine's CPU time other tasks took
  while the tracker's conversions were timed (trackers/machine_load.py), and
  ``load_1min`` the 1-minute load average at the end.
"""

from __future__ import annotations

from ..bench import conversion
from ..machine_load import LoadWindow
from ..base import NotRepresentable
from ..registry import ALL_TRACKERS, KERNEL_SUFFIX
from ..sets import reference_set


def conversion_trackers(cfg) -> list[str]:
    """The tracker each hooked option would use, timed: its @kernel twin where
    the kernel's code runs (and was loaded when the registry was imported),
    else the emulation."""
    return [f"{n}{KERNEL_SUFFIX}" if cfg.kernel_code and f"{n}{KERNEL_SUFFIX}" in ALL_TRACKERS
            else n for n in cfg.trackers]


def conversion_rows(cfg) -> list[dict]:
    """bench-core's conversion cost (trackers.bench.conversion.measure_conversions: mark and
    unmark of each 4 KiB and 2 MiB conversion into a tracker holding the
    reference set, median and min-max of ``conversion_repeat`` timings), in
    this process: a forked child of a process whose kernel library runs RCU
    threads can deadlock, so nothing here forks."""
    starts, ends = reference_set(cfg.conversion_pfns, cfg.seed)
    held, targets = conversion.conversion_targets(starts, ends, cfg.conversion_pfns,
                                                  cfg.conversions, cfg.seed)
    rows = []
    for name in conversion_trackers(cfg):
        base = {"option": name.split(KERNEL_SUFFIX)[0], "kind": "measured"}
        try:
            with LoadWindow() as window:
                got = conversion.measure_conversions(name, cfg.conversion_pfns, held, targets,
                                                     cfg.conversion_repeat,
                                                     cfg.conversion_seconds)
        except NotRepresentable as exc:
            rows.append({"tracker": name, **base, "not_representable": exc.summary})
            continue
        rows.extend({**r, **base, "others_cpu_share": window.others_cpu_share,
                     "load_1min": window.loadavg_1min} for r in got)
    return rows
