"""The design-review figures, each from one report table (a DataFrame or its CSV).

:data:`FIGURES` is the one list of figures, in the order summary.md shows
them: each :class:`FigureSpec` names the function that draws it, the table it
reads (and, where it says so, further tables passed by keyword) and the
sentence under it.  The CLI saves each as PNG and SVG
(``FigureSpec.render(tables)``) and the notebook calls the same functions on
the CSVs it loads.

One module per figure (``memory_vs_host.py`` ... ``missed_pages.py``), each
with ``frame()``, which selects a tidy DataFrame from the report's tables,
``draw()``, which draws only that frame, and ``figure()``, the two together
(or a figure saying what the tables lack).  ``style.py`` holds the palette
and the axes, captions and labels they share, ``select.py`` how they read a
report's tables, ``sharded_points.py`` the sharded builds two figures draw;
numbers are written by :mod:`trackers.report.format`.  Conventions:

* modeled numbers are drawn as lines (bands: the ASSUMED parameter ranges),
  measured numbers as markers with min-max bars (the engine that produced
  them in the legend), and every title, axis or legend says which it is;
* sizes are bytes on log axes labelled in GiB/TiB; times are seconds;
* one colour and one line style + marker per tracker or strategy
  (``style.color_for``, ``style.style_for``), the same in every figure;
* a table or column a report does not have (``--quick``, a CSV of an
  earlier version) is never an error: the figure says what it lacks;
* lines that coincide are named together, never hidden: memory_vs_host and
  bits_per_page name every line at its end ("ida (= bitmap)"),
  downtime_vs_cpus and tornado draw options within ``style.SAME_WITHIN`` of
  each other as one line or panel that lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd

from . import (bits_per_page, downtime_vs_cpus, kexec_downtime, memory_vs_host, missed_pages,
               scan_time, tornado, validation, wait)


@dataclass(frozen=True)
class FigureSpec:
    """One design-review figure: what draws it, from which table (and which
    further tables, passed to ``draw`` by keyword under their names), and the
    sentence summary.md puts under it."""

    draw: Callable[..., plt.Figure]
    table: str
    caption: str
    extra: tuple[str, ...] = ()

    def render(self, tables: dict[str, pd.DataFrame]) -> plt.Figure:
        """The figure from a report's tables (a dict of table name -> DataFrame);
        a missing table is drawn as a figure that says so."""
        return self.draw(tables.get(self.table),
                         **{name: tables.get(name) for name in self.extra})


#: every figure of the report, in the order summary.md shows them
FIGURES: dict[str, FigureSpec] = {
    "wait": FigureSpec(
        wait.figure, "wait",
        "How long kexec and kdump wait before the next kernel starts as TD memory grows "
        "(modeled): mainline 7.2's TDH.SYS.DISABLE on one CPU against the best "
        "tracker-based reset on one CPU and on all of them; bands: the ASSUMED and "
        "published-derived ranges; the caption says where the curves cross or which "
        "leads."),
    "validation": FigureSpec(
        validation.figure, "validation",
        "Every published TDX timing beside the model's prediction (predicted / published, "
        "log; 0.5-2 shaded): the TD-teardown times, the 40 % saved by skipping the clear, "
        "the attribute settings of a 1 TB and a 1.9 TB guest; hollow rows derive the "
        "model's TDX costs, a row outside names the term the model lacks."),
    "memory_vs_host": FigureSpec(
        memory_vs_host.figure, "memory_vs_host",
        "Memory each option adds to a running kernel as the host grows "
        "(modeled, log-log; lower is better); each line is named at its end, and the "
        "title names the private set and the scan figure's; with --sharded or "
        "--sharded-csv, hexagons are sharded builds (measured builds, modeled bytes) "
        "beside estimate() of the same shards.", ("scan_time", "sharded")),
    "bits_per_page": FigureSpec(
        bits_per_page.figure, "bits_per_page",
        "Bits per private page as the private fraction grows, against the "
        "information bounds (modeled); the options without a line are named on the "
        "figure with the reason."),
    "scan_time": FigureSpec(
        scan_time.figure, "scan_time",
        "The kexec-time scan: measured scans (markers: median, bars min-max; the "
        "kernel's own code wherever a tracker has a @kernel twin, the C layouts of "
        "struct pages and page tables for pageflags and pte-softbit, the emulation "
        "only where neither exists) against the model (lines, band: the per-entry, "
        "per-run and per-lookup cost range, measured min-max on this-machine, ASSUMED on "
        "the presets); the caption names every point "
        "where the model lies outside 2x and why; with --sharded or --sharded-csv, "
        "hexagons are sharded builds' measured scans, the sum over shards (1 CPU).",
        ("sharded",)),
    "kexec_downtime": FigureSpec(
        kexec_downtime.figure, "kexec",
        "Modeled kexec downtime per strategy on the reference platform: the scan (left, "
        "log axis), the only part that differs between options, and scan + clear "
        "(right), at one CPU (today's reset) and at 8, 32 and all CPUs; bars: the "
        "ASSUMED-rate range.", ("sensitivity",)),
    "downtime_vs_cpus": FigureSpec(
        downtime_vs_cpus.figure, "sensitivity",
        "Modeled downtime against the CPUs at reset, per scenario on the reference "
        "platform: one line per option (options within 3 % share one, named once in the "
        "legend), its band every ASSUMED parameter at the low and high end of its range; "
        "crosses where two options change order, circles where the fastest changes.  "
        "Where the trackers are built on this machine, a panel of this machine adds their "
        "scan part: measured in PFN shards dealt longest-first to the CPUs (diamonds, a "
        "lower bound) beside the modeled scan (dotted).", ("kexec",)),
    "tornado": FigureSpec(
        tornado.figure, "tornado",
        "Per option, how far the modeled downtime moves with each ASSUMED parameter at "
        "the low and at the high end of its range (one at a time), on the reference "
        "platform at today's one CPU."),
    "missed_pages": FigureSpec(
        missed_pages.figure, "race",
        "The chance that one kexec misses at least one private page as private->shared "
        "conversions speed up (modeled, simulated): bars the 95 % interval, band the "
        "SEAMCALL-cost assumption."),
}
