"""How every figure looks: one colour, line style and marker per option, and
the axes (bytes, seconds), notes, captions and line labels several figures
share; numbers are written by :mod:`trackers.report.format`.

The one order of options is the kexec strategies' (:data:`ORDER`, from
:data:`trackers.kexec.STRATEGIES`); :func:`color_for` and :func:`style_for`
give each option the same look in every figure and run.  Lines that
coincide are named together, never hidden: :func:`coincident` (one line on
another, named at its end as "ida (= bitmap)") and :func:`coinciding_groups`
(options within :data:`SAME_WITHIN` of each other, drawn as one line or panel);
:func:`crossings` finds where two lines change order.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ...kexec import STRATEGIES
from ..format import fmt_bytes, fmt_seconds
from .select import missing_columns


# The one order of tables and figures: the kexec strategies' (trackers in
# registry order, then options 2-7), declared by trackers.kexec.STRATEGIES.
ORDER = list(STRATEGIES)
_TAB10 = list(plt.get_cmap("tab10").colors)
_PALETTE = (_TAB10[:7] + _TAB10[8:] + ["#222222"] + list(plt.get_cmap("Dark2").colors)
            + list(plt.get_cmap("Set1").colors))      # no grey: grey marks references


def color_for(name: str):
    """The colour of a tracker or strategy, stable across figures and runs."""
    if name in ORDER:
        return _PALETTE[ORDER.index(name) % len(_PALETTE)]
    return _PALETTE[(len(ORDER) + sum(map(ord, name))) % len(_PALETTE)]


#: line styles and markers: the strategy at index i of ORDER gets
#: (_LINESTYLES[i % 4], _MARKERS[i % 9]), distinct for the first 36 strategies,
#: so lines that overlap (xarray and pte-softbit, bitmap and ida) stay apart.
#: "*" (a named sparse host) and "h" (a sharded build) mark points, never a line
_LINESTYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]


def style_for(name: str) -> dict:
    """Line style and marker of a tracker or strategy (plot kwargs), stable
    across figures; names outside the registry get one by their spelling."""
    i = ORDER.index(name) if name in ORDER else len(ORDER) + sum(map(ord, name))
    return {"ls": _LINESTYLES[i % len(_LINESTYLES)], "marker": _MARKERS[i % len(_MARKERS)]}


def ordered(names) -> list[str]:
    """``names`` once each, in the one order (:data:`ORDER`); others after, by name."""
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER
                                        else len(ORDER), n))


def byte_ticks(ax, which="y"):
    """Byte ticks at powers of two, spaced so that 4-8 of them show."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = (ax.get_ylim() if which == "y" else ax.get_xlim())
    k0, k1 = math.ceil(math.log2(max(lo, 1))), math.floor(math.log2(max(hi, 1)))
    step = next((st for st in (1, 2, 3, 5, 10) if (k1 - k0) // st + 1 <= 8), 10)
    ticks = [2.0 ** k for k in range(k0, k1 + 1) if (k - k0) % step == 0]
    axis.set_ticks(ticks)
    axis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    axis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi) if which == "y" else ax.set_xlim(lo, hi)


#: log-axis ticks for times: decades of seconds below one, then minutes and hours
_TIME_TICKS = [10.0 ** k for k in range(-9, 2)] + [60.0, 600.0, 3600.0, 36000.0, 360000.0]
_TIME_TICKS_125 = ({m * 10.0 ** k for k in range(-9, 2) for m in (2, 5)}
                   | {20.0, 30.0, 120.0, 300.0, 1200.0, 1800.0, 7200.0, 18000.0})


def seconds_axis(ax, values, which="x", room: float = 1.6) -> None:
    """A log time axis ending near the data, ticks at 1 ns ... 1 s, 10 s, 1 min,
    10 min, 1 h, 10 h, labelled as format.fmt_seconds writes times."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if v.size:
        lo, hi = v.min() / 1.5, v.max() * room
        (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)
        ticks = [t for t in _TIME_TICKS if lo <= t <= hi]
        if len(ticks) < 3:                     # a narrow range: 1-2-5 steps
            ticks = [t for t in sorted(set(_TIME_TICKS) | _TIME_TICKS_125) if lo <= t <= hi]
        if len(ticks) > 7:
            ticks = ticks[::2]
        if len(ticks) >= 2:
            axis.set_ticks(ticks)
            (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)
    axis.set_major_formatter(FuncFormatter(lambda x, _: fmt_seconds(x)))
    axis.set_minor_formatter(NullFormatter())


def caption(fig, text: str):
    """The figure's caption, small and grey along its bottom (leave room for it)."""
    fig.text(0.01, 0.01, text, fontsize=8, color="0.35", ha="left", va="bottom", wrap=True)


def empty_figure(title: str, why: str):
    """A figure with ``title`` that says ``why`` it has nothing to draw."""
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, wrap=True)
    return fig


def absent(title: str, table: str, df, columns):
    """A figure saying why it cannot be drawn, or None when ``df`` has rows and
    every column in ``columns``."""
    if df is None or df.empty:
        return empty_figure(title, f"no {table} rows in this report")
    lacks = missing_columns(df, columns)
    if lacks:
        return empty_figure(title, f"{table} lacks the column(s) {', '.join(lacks)}: "
                                   f"a report of an earlier version? run `tdx-trackers report`")
    return None


def label_ends(ax, ends, fontsize: float = 8.5) -> None:
    """Name each line at its right end: ``ends`` is [(label, x, y, colour)] in
    data coordinates.  The labels stand in a column right of the axes, in the
    order of their lines' ends, spaced so none overlaps, each joined to its
    line's last point by a thin connector.  They are figure texts (so
    ``ax.texts`` holds only the figure's notes); the caller leaves room for
    them right of the axes.  Call after the limits are final."""
    ends = [e for e in ends if np.isfinite(e[1]) and np.isfinite(e[2]) and e[2] > 0]
    if not ends:
        return
    fig = ax.figure
    to_axes = ax.transData + ax.transAxes.inverted()
    pts = to_axes.transform([(x, y) for _, x, y, _ in ends])
    order = np.argsort(pts[:, 1], kind="stable")
    height_pt = ax.get_position().height * fig.get_figheight() * 72
    gap = fontsize * 1.3 / max(height_pt, 1)
    ys = pts[order, 1].clip(0, 1).copy()
    for i in range(1, ys.size):                 # push up, then back down from the top
        ys[i] = max(ys[i], ys[i - 1] + gap)
    if ys.size and ys[-1] > 1:
        ys[-1] = 1
        for i in range(ys.size - 2, -1, -1):
            ys[i] = min(ys[i], ys[i + 1] - gap)
    for y_label, i in zip(ys, order):
        label, _, _, color = ends[i]
        x0, y0 = pts[i]
        ax.add_line(Line2D([x0, 1.012, 1.03], [y0, y_label, y_label], transform=ax.transAxes,
                           color=color, lw=0.6, alpha=0.7, clip_on=False))
        fig.text(1.035, y_label, label, transform=ax.transAxes, fontsize=fontsize,
                 color=color, va="center", ha="left")


def coincident(curves: dict[str, pd.Series], within: float = 0.03) -> dict[str, str]:
    """Lines that lie on an earlier one (within ``within``, relative, at every
    shared point): name -> the earlier line's name, for their labels."""
    out, names = {}, list(curves)
    for i, b in enumerate(names):
        for a in names[:i]:
            j = pd.concat([curves[a], curves[b]], axis=1, join="inner").dropna()
            if len(j) >= 2 and (np.abs(np.log(j.iloc[:, 1] / j.iloc[:, 0])) < within).all():
                out[b] = a
                break
    return out


#: options closer than this (relative, at every point) are drawn as one line
#: (downtime_vs_cpus) or one panel (tornado): the clear dominates their
#: downtimes, and a dozen coinciding lines hide each other
SAME_WITHIN = 0.03


def wrap_names(text: str, width: int) -> str:
    """``text`` broken at ", " into lines of at most ``width`` characters."""
    out, line = [], ""
    for word in text.split(", "):
        if line and len(line) + len(word) + 2 > width:
            out.append(line + ",")
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return "\n".join(out + [line])


def coinciding_groups(curves: dict[str, pd.Series], unsafe=frozenset(),
                      within: float = SAME_WITHIN) -> list[list[str]]:
    """Options whose curves lie within ``within`` of a group's first one at
    every shared point, in order; an option that misses pages joins only
    others that do."""
    groups: list[list[str]] = []
    for name, c in curves.items():
        for g in groups:
            j = pd.concat([curves[g[0]], c], axis=1, join="inner").dropna()
            if ((g[0] in unsafe) == (name in unsafe) and len(j) == len(c) and
                    (np.abs(np.log(j.iloc[:, 1] / j.iloc[:, 0])) < within).all()):
                g.append(name)
                break
        else:
            groups.append([name])
    return groups


def crossings(lines: dict[str, pd.DataFrame], tie: float = 0.01):
    """Where two lines (cpus -> downtime, on the same CPU counts) change order:
    [(cpus, downtime, a, b)] with the point interpolated on log axes; lines
    within ``tie`` (relative) of each other on both sides are not a crossing."""
    out = []
    names = list(lines)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            j = pd.concat([lines[a]["y"].rename("y_a"), lines[b]["y"].rename("y_b")], axis=1,
                          join="inner").dropna()
            j = j[(j["y_a"] > 0) & (j["y_b"] > 0)].sort_index()
            if len(j) < 2:
                continue
            la, lb = np.log(j["y_a"].to_numpy()), np.log(j["y_b"].to_numpy())
            diff = la - lb
            lx = np.log2(j.index.to_numpy(float))
            for k in range(len(diff) - 1):
                d0, d1 = diff[k], diff[k + 1]
                if d0 * d1 >= 0 or (abs(d0) < tie and abs(d1) < tie):
                    continue
                t = d0 / (d0 - d1)
                out.append((2 ** (lx[k] + t * (lx[k + 1] - lx[k])),
                            math.exp(la[k] + t * (la[k + 1] - la[k])), a, b))
    return out
