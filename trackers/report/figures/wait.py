"""Figure: how long kexec and kdump wait before the next kernel starts, against
TD memory (wait.csv, trackers/kexec/wait.py; modeled).

Mainline 7.2's one-CPU TDH.SYS.DISABLE against the best tracker-based reset
on one CPU (where kdump resets today) and on every CPU (a reset moved before
the others stop), each with its band over the ASSUMED and published-derived
ranges; where two curves change order the crossover is marked, and where
they do not the caption says which leads and by how much.  Dotted lines mark
a minute and an hour: from which hosts on the wait matters.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...kexec.wait import CURVES, MAINLINE, crossovers
from ..format import fmt_bytes
from .select import text_cells, typed
from .style import absent, byte_ticks, caption, seconds_axis

TITLE = "How long kexec and kdump wait before the next kernel starts (modeled) — lower is better"
COLUMNS = ["td_bytes", "curve", "cpus", "tracker", "wait_s", "wait_low_s", "wait_high_s"]
#: each curve's colour, in CURVES order
COLORS = ("tab:red", "tab:blue", "tab:green")
#: the waits marked across the axes
MARKS = {"1 min": 60.0, "1 h": 3600.0}


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`); ``attrs``: ``platform``,
    ``crossovers`` (trackers.kexec.wait.crossovers of the table) and
    ``reaches`` (curve -> {mark: the TD memory where it passes that wait})."""
    out = typed(df.reindex(columns=COLUMNS), ["td_bytes", "wait_s", "wait_low_s",
                                               "wait_high_s"])
    reaches = {}
    for curve, d in out.groupby("curve", sort=False):
        d = d.sort_values("td_bytes")
        reaches[curve] = {m: _where(d["td_bytes"], d["wait_s"], t) for m, t in MARKS.items()}
    out.attrs = {"platform": str(df["platform"].iloc[0]) if "platform" in df and len(df) else "",
                 "crossovers": crossovers(df), "reaches": reaches}
    return out


def _where(x: pd.Series, y: pd.Series, level: float) -> float:
    """The first x at which y reaches ``level`` (log-log interpolation), the
    first x where y starts above it, else NaN."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    above = np.flatnonzero(y >= level)
    if not above.size:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(x[0])
    t = (np.log(level) - np.log(y[i - 1])) / (np.log(y[i]) - np.log(y[i - 1]))
    return float(np.exp(np.log(x[i - 1]) + t * (np.log(x[i]) - np.log(x[i - 1]))))


def _short(curve: str) -> str:
    """'best tracker, 1 CPU' -> 'best tracker-based reset on 1 CPU'."""
    what, _, cpus = curve.partition(", ")
    return f"{what}-based reset on {cpus}" if cpus else curve


def draw(f: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(10, 6.2))
    fig.subplots_adjust(left=0.11, right=0.97, top=0.92, bottom=0.24)
    for curve, color in zip(CURVES, COLORS):
        d = f[f["curve"] == curve].sort_values("td_bytes")
        if d.empty:
            continue
        trackers = ", ".join(dict.fromkeys(t for t in text_cells(d["tracker"]) if t))
        label = curve + (f" (best: {trackers})" if trackers else "")
        ax.fill_between(d["td_bytes"], d["wait_low_s"], d["wait_high_s"], color=color,
                        alpha=0.13, lw=0)
        ax.plot(d["td_bytes"], d["wait_s"], color=color, lw=2, label=label)
    for mark, t in MARKS.items():
        ax.axhline(t, color="0.5", ls=":", lw=0.9)
        ax.text(f["td_bytes"].min(), t * 1.08, mark, fontsize=8, color="0.4")
    notes = []
    for r in f.attrs["crossovers"].itertuples():
        if math.isfinite(r.td_bytes):
            m = f[(f["curve"] == r.against)].sort_values("td_bytes")
            y = np.interp(np.log(r.td_bytes), np.log(m["td_bytes"]), np.log(m["wait_s"]))
            ax.plot([r.td_bytes], [np.exp(y)], marker="X", ms=10, color="k")
            notes.append(f"the {_short(r.curve)} and mainline cross at "
                         f"{fmt_bytes(r.td_bytes)} ({r.values})")
        elif r.values == "central" and r.ahead:
            faster = "faster" if r.ahead == r.curve else "slower"
            notes.append(f"the {_short(r.curve)} is {faster} than mainline at every size "
                         f"from {fmt_bytes(f['td_bytes'].min())} to "
                         f"{fmt_bytes(f['td_bytes'].max())} ({r.ratio_at_16tib:.3g}x at 16 TiB)")
    ax.set_xscale("log")
    byte_ticks(ax, "x")
    seconds_axis(ax, np.r_[f["wait_low_s"], f["wait_high_s"]], which="y", room=2.0)
    ax.set_xlabel("TD memory (two TDs of 35 % of the host's RAM)")
    ax.set_ylabel("wait before the next kernel (modeled)")
    ax.set_title(f"{TITLE}\non {f.attrs['platform']}; bands: the ASSUMED and "
                 f"published-derived ranges", fontsize=10)
    ax.legend(loc="upper left", fontsize=8.5, frameon=False)
    reach = f.attrs["reaches"].get(MAINLINE, {})
    first = f["td_bytes"].min()
    passes = "; ".join(f"{m} " + (f"already at {fmt_bytes(x)}" if x == first else
                                  f"from {fmt_bytes(x)}") + " of TD memory"
                       for m, x in reach.items() if math.isfinite(x))
    caption(fig, "Mainline 7.2 calls TDH.SYS.DISABLE on one CPU at kexec (syscore) and kdump "
                 "(after the NMI stop, interrupts off): one reclaim and one clear per page, "
                 "the TD teardown's path (docs/validation.md). A tracker-based reset scans "
                 "its structure and clears what it finds, on one CPU or on all of them "
                 "before they stop. " + ("Mainline waits " + passes + ". " if passes else "")
                 + " ".join(n[0].upper() + n[1:] + "." for n in notes) + " No crossover "
                 "means no size in the range where the order changes.")
    return fig


def figure(df: pd.DataFrame):
    """The figure from wait.csv (or one saying what it lacks)."""
    missing = absent(TITLE, "wait", df, ["td_bytes", "curve", "wait_s", "wait_low_s",
                                          "wait_high_s"])
    if missing is not None:
        return missing
    return draw(frame(df))
