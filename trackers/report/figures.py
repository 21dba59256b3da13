"""The design-review figures, each from one report table (a DataFrame or its CSV).

Every function takes the table ``collect`` wrote (and, where it says so, a
second table by keyword) and returns a matplotlib Figure; the CLI saves it as
PNG and SVG through :data:`FIGURES` (``FigureSpec.render(tables)``) and the
notebook calls the same functions on the CSVs it loads.  Conventions:

* modeled numbers are drawn as lines (bands: the ASSUMED parameter ranges),
  measured numbers as markers with min-max bars (the engine that produced
  them in the legend), and every title, axis or legend says which it is;
* sizes are bytes on log axes labelled in GiB/TiB; times are seconds;
* one colour and one line style + marker per tracker or strategy
  (:func:`color_for`, :func:`style_for`), the same in every figure;
* a table or column a report does not have (``--quick``, a CSV of an
  earlier version) is never an error: the figure says what it lacks;
* lines that coincide are named together, never hidden: memory_vs_host and
  bits_per_page name every line at its end ("ida (= bitmap)"),
  downtime_vs_cpus and tornado draw options within SAME_WITHIN of each
  other as one line or panel that lists them.

Rows of memory_vs_host outside its host sweep (a named host) are drawn by
the drawer registered for their ``overlay`` kind in MEMORY_OVERLAYS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from ..kexec import PLATFORMS, STRATEGIES
from .memory import split_sparse_hosts
from .sharded import SCAN_LABEL

# The one order of tables and figures: the kexec strategies' (trackers in
# registry order, then options 2-7), declared by trackers.kexec.STRATEGIES.
ORDER = list(STRATEGIES)
_TAB10 = list(plt.get_cmap("tab10").colors)
_PALETTE = (_TAB10[:7] + _TAB10[8:] + ["#222222"] + list(plt.get_cmap("Dark2").colors)
            + list(plt.get_cmap("Set1").colors))      # no grey: grey marks references

SET_CAPTIONS = {
    "reference": "60 % of RAM in random 2 MiB extents + 10 % scattered 4 KiB pages",
    "reference-1pct": "60 % of RAM in random 2 MiB extents + 1 % scattered 4 KiB pages",
    "extents-2m": "70 % of RAM in random 2 MiB extents",
}


def color_for(name: str):
    """The colour of a tracker or strategy, stable across figures and runs."""
    if name in ORDER:
        return _PALETTE[ORDER.index(name) % len(_PALETTE)]
    return _PALETTE[(len(ORDER) + sum(map(ord, name))) % len(_PALETTE)]


#: line styles and markers: the strategy at index i of ORDER gets
#: (_LINESTYLES[i % 4], _MARKERS[i % 10]), distinct for the first 20 strategies,
#: so lines that overlap (xarray and pte-softbit, bitmap and ida) stay apart
_LINESTYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def style_for(name: str) -> dict:
    """Line style and marker of a tracker or strategy (plot kwargs), stable
    across figures; names outside the registry get one by their spelling."""
    i = ORDER.index(name) if name in ORDER else len(ORDER) + sum(map(ord, name))
    return {"ls": _LINESTYLES[i % len(_LINESTYLES)], "marker": _MARKERS[i % len(_MARKERS)]}


def ordered(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER
                                        else len(ORDER), n))


def fmt_bytes(x: float) -> str:
    if not x or not math.isfinite(x):
        return "0 B"
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if abs(x) >= 1 << shift:
            v = x / (1 << shift)
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{x:.0f} B"


def fmt_seconds(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x >= 60:
        return f"{x / 60:.1f} min"
    if x >= 1:
        return f"{x:.1f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    if x >= 1e-6 or x == 0:
        return f"{x * 1e6:.0f} µs"
    return f"{x * 1e9:.0f} ns"


def _thin_byte_ticks(ax, which="y"):
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


def _caption(fig, text: str):
    fig.text(0.01, 0.01, text, fontsize=8, color="0.35", ha="left", va="bottom", wrap=True)


def _missing(df, columns) -> list[str]:
    """The columns of ``columns`` that ``df`` lacks (all of them for no table)."""
    if df is None:
        return list(columns)
    return [c for c in columns if c not in df]


def _true(x) -> bool:
    """A boolean cell, also as a CSV reads it back ("True"/"False" text, NaN)."""
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes")
    return bool(x) if pd.notna(x) else False


def _has(d, *columns) -> bool:
    """Does the table (or row) ``d`` have every one of ``columns``?"""
    return all(c in d for c in columns)


def _absent(title: str, table: str, df, columns):
    """A figure saying why it cannot be drawn, or None when ``df`` has rows and
    every column in ``columns``."""
    if df is None or df.empty:
        return _empty(title, f"no {table} rows in this report")
    lacks = _missing(df, columns)
    if lacks:
        return _empty(title, f"{table} lacks the column(s) {', '.join(lacks)}: "
                             f"a report of an earlier version? run `tdx-trackers report`")
    return None


def _label_ends(ax, ends, fontsize: float = 8.5) -> None:
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


def _empty(title: str, why: str):
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, wrap=True)
    return fig


# --------------------------------------------------------------------------
# 1. memory added vs host size

#: rows of memory_vs_host outside the host sweep (a named host, e.g. one whose
#: max_pfn far exceeds its RAM) carry a non-empty ``overlay`` column; the
#: lines skip them and MEMORY_OVERLAYS[overlay](ax, rows) draws them and
#: returns a sentence for the caption.  Register a drawer here for a new kind
#: of row; rows of an unregistered kind are drawn by _overlay_points.
MEMORY_OVERLAYS: dict[str, Callable[[plt.Axes, pd.DataFrame], str]] = {}


def _overlay_points(ax, rows: pd.DataFrame) -> str:
    """Rows of an overlay no drawer is registered for: one hollow marker each,
    in its option's colour, so nothing in the table goes undrawn."""
    kind = _text(rows["overlay"]).iloc[0]
    for name in ordered(rows["tracker"]):
        r = rows[(rows["tracker"] == name) & (rows["added_bytes"] > 0)]
        ax.plot(r["host_bytes"], r["added_bytes"], ls="none", marker=style_for(name)["marker"],
                mfc="white", mec=color_for(name), mew=1.5, ms=8)
    return f"Hollow markers: the {kind} host(s) ({', '.join(dict.fromkeys(_text(rows['host'])))})."


def _coincident(curves: dict[str, pd.Series], within: float = 0.03) -> dict[str, str]:
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


def memory_vs_host(df: pd.DataFrame, scan_time: pd.DataFrame | None = None,
                   sharded: pd.DataFrame | None = None):
    """Bytes each option adds to a running kernel vs host RAM, log-log (modeled);
    ``scan_time``, when given, names the scan figure's private set in the title;
    ``sharded`` (sharded.csv), when it has rows, draws each sharded build as a
    marker at its host size (:func:`draw_sharded_memory`)."""
    title = "Memory each option adds to a running kernel (modeled) — lower is better"
    why = _absent(title, "memory_vs_host", df, ["tracker", "host_bytes", "added_bytes"])
    if why:
        return why
    df, sparse = split_sparse_hosts(df)             # drawn as stars, not sweep lines
    overlay = (_text(df["overlay"]) != "") if "overlay" in df else pd.Series(False, df.index)
    sweep, extra = df[~overlay], df[overlay]
    fig, ax = plt.subplots(figsize=(11.5, 6.8))
    zero, ends, curves = [], [], {}
    for name in ordered(sweep["tracker"]):
        d = sweep[sweep["tracker"] == name].sort_values("host_bytes")
        if (d["added_bytes"].fillna(0) <= 0).all():
            zero.append(name)
            continue
        c = color_for(name)
        ax.plot(d["host_bytes"], d["added_bytes"], color=c, lw=2, ms=6, label=name,
                **style_for(name))
        _mark_not_representable(ax, d, c)
        last = d.dropna(subset=["added_bytes"]).iloc[-1]
        ends.append((name, last["host_bytes"], last["added_bytes"], c))
        curves[name] = d.set_index("host_bytes")["added_bytes"]
    hb = np.array(sorted(sweep["host_bytes"].unique()), float)
    ax.plot(hb, hb / 256, ":", color="0.45", lw=1.5,
            label="for scale: PAMT ≈ 1/256 of TDX memory\n(what TDX already costs)")
    notes = ([] if extra.empty else
             [MEMORY_OVERLAYS.get(kind, _overlay_points)(ax, g)
              for kind, g in extra.groupby(_text(extra["overlay"]), sort=False)])
    pts = sharded_points(sharded, "added_bytes")
    if not pts.empty:
        notes.append(draw_sharded_memory(ax, pts, str(sweep["set"].iloc[0])
                                         if "set" in sweep and len(sweep) else ""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    shown = pd.to_numeric(pd.concat([df["added_bytes"], pts["added_bytes"]]), errors="coerce")
    shown = shown[shown > 0]
    x_hi = max(df["host_bytes"].max(), pts["host_bytes"].max() if not pts.empty else 0)
    ax.set_xlim(df["host_bytes"].min() / 1.25, x_hi * 1.25)
    ax.set_ylim(min(shown.min(), hb.min() / 256) / 1.6, max(shown.max(), hb.max() / 256) * 1.6)
    ax.set_xticks(sorted(set(hb) | set(pts["host_bytes"].astype(float))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    _thin_byte_ticks(ax, "y")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("host RAM (bytes, log scale)")
    ax.set_ylabel("bytes added to the kernel (modeled, log scale)")
    shape = str(sweep["set"].iloc[0]) if "set" in sweep and len(sweep) else ""
    set_line = f"private set '{shape}': {SET_CAPTIONS.get(shape, shape)}"
    if scan_time is not None and "set" in scan_time and len(scan_time):
        other = str(scan_time["set"].iloc[0])
        set_line += ("; the same set as the scan figure" if other == shape else
                     f"\n(the scan figure uses '{other}': {SET_CAPTIONS.get(other, other)})")
    ax.set_title(f"{title}\n{set_line}", fontsize=10.5)
    draw_sparse_hosts(ax, sparse)
    handles, labels = ax.get_legend_handles_labels()
    if zero:
        handles.append(Line2D([], [], ls="none"))
        labels.append("add 0 B (not on a log axis):\n  " + ", ".join(zero))
    # sharded hexagons stand at 4-64 TiB, under the upper left: the legend goes
    # below the axes, above the caption (its lines at 8 pt, ~0.14 in each)
    where = (dict(loc="upper left") if pts.empty else
             dict(loc="upper center", bbox_to_anchor=(0.5, -0.1)))
    ax.legend(handles, labels, **where, fontsize=8, ncol=3, frameon=True,
              framealpha=0.9, title="line = modeled (estimate() of each structure)",
              title_fontsize=8)
    bottom = 0.06
    if not pts.empty:
        fig.set_figheight(fig.get_figheight() + 2.2)
        bottom = (0.25 + 0.14 * (1 + len(" ".join(notes)) // 170 + 3)) / fig.get_figheight()
    ax.figure.tight_layout(rect=(0, bottom, 0.83, 1))
    same = _coincident(curves)
    _label_ends(ax, [(n + (f" (= {same[n]})" if n in same else ""), *rest)
                     for n, *rest in ends])
    _caption(fig, "Modeled from kernel struct sizes (trackers/kernel.py, docs/kernel-facts.md); "
                  "estimate() of each tracker, no structure built; lines are named at their "
                  "right end (lines that overlap: the labels stack, each joined to the "
                  "end). kvm holds its attribute XArrays anyway; pageflags uses a bit of the "
                  "existing struct page. A line ending at a bar: the structure cannot hold "
                  "the set beyond that host (not representable). " + " ".join(notes))
    return fig


#: how a sharded build is drawn (memory_vs_host, scan_time): a hexagon in its
#: option's colour, filled for the kernel's own code, hollow for the emulation
SHARDED_MARKER = dict(marker="h", ms=10, mew=1.6)


def sharded_points(sharded: pd.DataFrame | None, column: str) -> pd.DataFrame:
    """The rows of sharded.csv with a positive ``column`` (none without the
    table or the column: the figure is drawn as without --sharded)."""
    if sharded is None or sharded.empty or not _has(sharded, "option", "host_bytes", column):
        return pd.DataFrame(columns=["option", "host_bytes", column])
    return sharded[pd.to_numeric(sharded[column], errors="coerce") > 0]


def _sharded_kernel(pts: pd.DataFrame) -> pd.Series:
    kind = _text(pts["engine"]) if "engine" in pts else pd.Series("", index=pts.index)
    return kind.str.startswith("kernel code")


def sharded_caption(pts: pd.DataFrame) -> str:
    """Which sharded builds a figure draws: sizes, shards, engines, sources."""
    sizes = ", ".join(fmt_bytes(x) for x in sorted(set(pts["host_bytes"])))
    shards = "/".join(str(int(x)) for x in sorted(set(pts["shards"].dropna()))) \
        if "shards" in pts else "?"
    engines = "; ".join(dict.fromkeys(_text(pts["engine"]))) if "engine" in pts else "?"
    sources = ", ".join(dict.fromkeys(_text(pts["source"]))) if "source" in pts else "?"
    shape = str(pts["set"].iloc[0]) if "set" in pts else "reference"
    return (f"at {sizes}, built in {shards} shards over the '{shape}' set "
            f"({SET_CAPTIONS.get(shape, shape)}), engines: {engines}; from {sources} "
            f"(sharded.csv)")


def draw_sharded_memory(ax, pts: pd.DataFrame, line_set: str = "") -> str:
    """Each sharded build at its host size: its built bytes (modeled from the
    node counts of the structure it built, measured shard by shard) as a
    hexagon, estimate() of the same shards as a black tick; returns the
    caption's sentence (``line_set``: the lines' set shape, named where the
    builds' differs)."""
    kernel = _sharded_kernel(pts)
    for r, k in zip(pts.itertuples(), kernel):
        c = color_for(r.option)
        ax.plot([r.host_bytes], [r.added_bytes], ls="none", color=c, mec=c,
                mfc=c if k else "white", zorder=4.5, **SHARDED_MARKER)
        if pd.notna(getattr(r, "estimate_bytes", math.nan)) and r.modeled_bytes > 0:
            est = r.added_bytes * r.estimate_bytes / r.modeled_bytes
            ax.plot([r.host_bytes], [est], ls="none", marker="_", ms=14, mew=1.5,
                    color="black", zorder=4.6)
    for x, g in pts.groupby("host_bytes"):
        n = "/".join(str(int(v)) for v in sorted(set(g["shards"].dropna())))
        ax.annotate(f"built in {n} shards", (x, g["added_bytes"].min()), xytext=(0, -16),
                    textcoords="offset points", fontsize=7.5, color="0.3", ha="center")
    ax.plot([], [], ls="none", color="0.3", mfc="0.3", label="sharded build (measured build;\n"
            "bytes modeled from its nodes):\nfilled kernel code, hollow emulation",
            **SHARDED_MARKER)
    ax.plot([], [], ls="none", marker="_", ms=14, mew=1.5, color="black",
            label="estimate() of the same shards")
    shape = str(pts["set"].iloc[0]) if "set" in pts else ""
    other = (f" Their set is not the lines' ('{line_set}'): a structure whose bytes grow "
             f"with scattered pages sits off its line; the tick is estimate() of the "
             f"hexagon's own set." if line_set and shape and line_set != shape else "")
    return ("Hexagons: sharded builds " + sharded_caption(pts) + "; each structure was built "
            "and measured shard by shard, its bytes modeled from the node counts it built "
            "(combined, trackers/shard.py), the black tick estimate() of the same shards."
            + other)


def draw_sparse_hosts(ax, sparse: pd.DataFrame) -> None:
    """A sparse host's options as stars at its RAM, each in its option's colour,
    with an arrow from the same set on a dense host of that RAM where the
    sparse PFN space costs more than 2x (a structure sized by max_pfn, named
    in the legend); the stars of structures sized by the set sit on their lines."""
    if sparse.empty:
        return
    for host, d in sparse.groupby("scenario", sort=False):
        d = d[d["added_bytes"] > 0]
        if d.empty:
            continue
        x = float(d["ram_bytes"].iloc[0])
        above = []
        for r in d.itertuples():
            c = color_for(r.tracker)
            ax.plot([x], [r.added_bytes], "*", color=c, ms=15, mec="black", mew=0.7,
                    zorder=5)
            if r.vs_dense > 2:
                ax.annotate("", xy=(x, r.added_bytes), xytext=(x, r.dense_added_bytes),
                            arrowprops=dict(arrowstyle="->", color=c, lw=1.5))
                above.append(f"{r.tracker} x{r.vs_dense:.1f}")
        row = d.iloc[0]
        ax.plot([], [], "*", color="white", ms=13, mec="black", mew=0.7, ls="none",
                label=f"{host}: {fmt_bytes(row['ram_bytes'])} RAM, max_pfn at "
                      f"{fmt_bytes(row['host_bytes'])}\n(same set shape at its RAM); on a "
                      f"line: sized by the set;\narrow up: sized by max_pfn"
                      + (f" ({', '.join(above)})" if above else "")
                      + f";\nstruct pages {fmt_bytes(row['vmemmap_bytes'])} (present "
                      f"sections)")


def _mark_not_representable(ax, d: pd.DataFrame, color) -> None:
    """Where a tracker's structure cannot hold the set (NaN bytes, a
    ``not_representable`` note: the IDA beyond 2^31 PFNs), its line stops:
    a bar at the largest host it can hold and the note beside it."""
    if "not_representable" not in d or "host_pfns" not in d:
        return
    notes = d["not_representable"]
    out = d[notes.notna() & (notes.astype(str) != "")]     # a CSV reads "" back as NaN
    shown = d[d["added_bytes"].notna()]
    if out.empty or shown.empty:
        return
    first = out.iloc[0]
    limit = first.get("representable_max_pfns", math.nan)
    x = (float(limit) * first["host_bytes"] / first["host_pfns"] if pd.notna(limit)
         else float(first["host_bytes"]))
    y = float(shown["added_bytes"].iloc[-1])
    ax.plot([x], [y], "|", color=color, ms=14, mew=2)
    ax.annotate(str(first["not_representable"]), (x, y), xytext=(4, 12),
                textcoords="offset points", fontsize=8, color=color, ha="right", va="bottom")


# --------------------------------------------------------------------------
# 2. bits per private page vs private fraction

def _why_not_drawn(name: str, d: pd.DataFrame | None) -> str:
    """Why an option has no line in bits_per_page: the table's own reason, or
    what the strategy registry says it is."""
    if d is not None and not d.empty:
        if "not_representable" in d and (_text(d["not_representable"]) != "").any():
            note = _text(d["not_representable"])
            return note[note != ""].iloc[0]
        if (d["modeled_bytes"].fillna(0) <= 0).all():
            return "0 bits: no structure of its own (a bit in one the kernel keeps)"
    strategy = STRATEGIES.get(name)
    if strategy is not None and strategy.tracker_cls is not None:
        return "a tracker this report did not run (tdx-trackers report --trackers)"
    option = strategy.option if strategy is not None else ""
    return "no per-page structure: not in this table" + (f" ({option})" if option else "")


def bits_per_page(df: pd.DataFrame):
    """Modeled bits per private page vs private fraction, with information bounds;
    every option of the strategy registry is drawn or named with why not."""
    title = "Bits per private page vs private fraction (modeled) — lower is better"
    why = _absent(title, "bits_per_page", df, ["tracker", "private_fraction",
                                               "bits_per_private_page", "modeled_bytes"])
    if why:
        return why
    fig, ax = plt.subplots(figsize=(12, 8.4))
    ends, drawn, curves = [], set(), {}
    for name in ordered(df["tracker"]):
        d = df[df["tracker"] == name].sort_values("private_fraction")
        d = d[d["bits_per_private_page"] > 0]
        if d.empty:
            continue
        drawn.add(name)
        c = color_for(name)
        ax.plot(d["private_fraction"], d["bits_per_private_page"], color=c, lw=2, ms=5,
                label=name, **style_for(name))
        ends.append((name, d["private_fraction"].iloc[-1], d["bits_per_private_page"].iloc[-1],
                     c))
        curves[name] = d.set_index("private_fraction")["bits_per_private_page"]
    if "bound_bits_per_page" in df:
        b = df.drop_duplicates("private_fraction").sort_values("private_fraction")
        ax.plot(b["private_fraction"], b["bound_bits_per_page"], "-", color="black", lw=3,
                label="bound: log2 C(N, n) / n\n(any structure, any set of n pages)")
        if "run_bound_bits_per_page" in df:
            ax.plot(b["private_fraction"], b["run_bound_bits_per_page"], "--", color="black",
                    lw=2, label="bound: log2 C(N+1, 2r) / n\n(any set of r runs, as these are)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    x = df["private_fraction"]
    ax.set_xlim(x.min() / 1.3, x.max() * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:g} %"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("private fraction of host pages (n / N, log scale)")
    ax.set_ylabel("bits per private page (modeled, log scale)")
    host = df["host"].iloc[0] if "host" in df else ""
    ax.set_title(f"{title}\n{host} host; set: 6/7 of the private pages in random 2 MiB "
                 "extents, 1/7 scattered 4 KiB pages", fontsize=10.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", bbox_to_anchor=(0.995, 0.05), fontsize=8,
               ncol=2, frameon=False, title="line = modeled (estimate() of each structure)",
               title_fontsize=8)
    missing = [f"{n}: {_why_not_drawn(n, df[df['tracker'] == n])}"
               for n in ordered(list(ORDER) + list(df["tracker"])) if n not in drawn]
    rows = max(len(missing) + 1, math.ceil(len(labels) / 2) * 1.4 + 1)
    fig.tight_layout(rect=(0, (0.45 + 0.15 * rows) / fig.get_figheight(), 0.85, 1))
    same = _coincident(curves)
    _label_ends(ax, [(n + (f" (= {same[n]})" if n in same else ""), *rest)
                     for n, *rest in ends])
    if missing:
        fig.text(0.01, 0.055, "Not drawn (every option of the strategy registry):\n  "
                 + "\n  ".join(missing), fontsize=7.5, va="bottom", ha="left",
                 bbox=dict(boxstyle="round", fc="#f4f4f4", ec="0.7"))
    _caption(fig, "Bounds: Raman, Raman, Rao (SODA 2002), computed with math.lgamma. A "
                  "structure may beat log2 C(N, n) only because the set is clustered; "
                  "log2 C(N+1, 2r) bounds a set known to have r runs. kvm: KVM's own "
                  "attribute XArrays (held anyway, added 0 B).")
    return fig


# --------------------------------------------------------------------------
# 3. scan time vs host size

#: how each kind of engine's measurements are drawn (scan_time.csv engine_kind):
#: the kernel's code and the C layouts as full markers, the emulations lighter
ENGINE_STYLE = {
    "kernel code": dict(marker="o", ms=7, alpha=1.0),
    "C layout": dict(marker="s", ms=7, alpha=1.0),
    "emulation": dict(marker="D", ms=5, alpha=0.45),
}
ENGINE_LEGEND = {
    "kernel code": "the @kernel twin: the kernel's own\ncode and iterators (userspace)",
    "C layout": "C layout of struct pages / page\ntables (trackers/linux/pages.c)",
    "emulation": "Python/numba emulation\n(no @kernel twin)",
}


def _text(col: pd.Series) -> pd.Series:
    """A text column as str, "" where empty (a CSV reads an empty column as NaN floats)."""
    return col.astype(object).where(col.notna(), "").astype(str)


def _engine_kind(t: pd.DataFrame) -> pd.Series:
    if "engine_kind" in t:
        return _text(t["engine_kind"]).replace("", "none")
    return pd.Series("emulation", index=t.index)       # reports before the engine column


def scan_time(df: pd.DataFrame, platform: str | None = None,
              sharded: pd.DataFrame | None = None):
    """Measured kexec-time scans (markers, min-max bars) against the model
    (lines); ``sharded`` (sharded.csv), when it has rows, adds each sharded
    build's measured scan, the sum over its shards (one CPU), as a hexagon."""
    title = "kexec-time scan vs host size: measured (markers) and modeled (lines) — lower is better"
    if df is None or df.empty or "scan_modeled_s" not in df:
        return _empty(title, "no scan_time data")
    d = df.dropna(subset=["scan_modeled_s"])
    if d.empty:
        return _empty(title, "no scan_time data")
    plats = list(dict.fromkeys(d["platform"]))
    platform = platform or ("this-machine" if "this-machine" in plats else plats[0])
    p = d[d["platform"] == platform]
    kind = p["platform_kind"].iloc[0]
    cpus = int(p["platform_cpus"].iloc[0]) if "platform_cpus" in p else 1
    ratios = (p.dropna(subset=["model_ratio"]) if "model_ratio" in p
              else p.iloc[0:0])
    if ratios.empty:
        fig, ax = plt.subplots(figsize=(11, 7.4))
        rax = None
    else:                       # below: modeled / measured, against the 2x band
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(11, 9.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3.2, 1]})
    kinds_drawn, notes, n_note = set(), [], 0
    reasons: dict[str, str] = {}               # why a point lies outside 2x -> its letter
    for name in ordered(p["tracker"]):
        t = p[p["tracker"] == name].sort_values("host_bytes")
        c = color_for(name)
        ax.plot(t["host_bytes"], t["scan_modeled_s"], ls=style_for(name)["ls"], color=c, lw=1.8,
                label=name)
        if _has(t, "scan_modeled_low_s", "scan_modeled_high_s"):
            ax.fill_between(t["host_bytes"], t["scan_modeled_low_s"], t["scan_modeled_high_s"],
                            color=c, alpha=0.06, lw=0)
        m = t.dropna(subset=["scan_measured_s"])
        m = m[m["scan_measured_s"] > 0]
        for ek, g in m.groupby(_engine_kind(m)):
            style = ENGINE_STYLE.get(ek, ENGINE_STYLE["emulation"])
            kinds_drawn.add(ek)
            err = None
            if _has(g, "scan_measured_min_s", "scan_measured_max_s"):   # spread of the repeats
                err = [g["scan_measured_s"] - g["scan_measured_min_s"],
                       g["scan_measured_max_s"] - g["scan_measured_s"]]
            hollow = (g["scan_extrapolated"].eq(True) if "scan_extrapolated" in g
                      else pd.Series(False, index=g.index))
            for filled, h in ((True, g[~hollow]), (False, g[hollow])):
                if h.empty:
                    continue
                e = None if err is None else [x[h.index] for x in err]
                ax.errorbar(h["host_bytes"], h["scan_measured_s"], yerr=e, fmt=style["marker"],
                            ms=style["ms"], color=c, mfc=c if filled else "white", mew=1.5,
                            alpha=style["alpha"], capsize=3, elinewidth=1.2)
                if rax is not None and "model_ratio" in h:
                    rax.plot(h["host_bytes"], h["model_ratio"], style["marker"], color=c,
                             ms=style["ms"] - 1, mfc=c if filled else "white", mew=1.2,
                             alpha=style["alpha"])
            for r in g[hollow].itertuples():
                ax.annotate(f"extrapolated ×{r.host_pfns / r.scan_measured_pfns:.3g}",
                            (r.host_bytes, r.scan_measured_s), xytext=(-9, -12),
                            textcoords="offset points", fontsize=7, color=c, ha="right")

        if "model_note" in t:
            for r in t[_text(t["model_note"]) != ""].itertuples():
                n_note += 1
                ax.annotate(f"[{n_note}]", (r.host_bytes, r.scan_measured_s), xytext=(-14, 6),
                            textcoords="offset points", fontsize=7.5, color=c,
                            fontweight="bold")
                head, *why = str(r.model_note).split("; ")
                marks = "".join(f"({reasons.setdefault(w, chr(97 + len(reasons)))})"
                                for w in why)
                notes.append(f"[{n_note}] {name} at {fmt_bytes(r.host_bytes)}: {head}"
                             + (f" {marks}" if marks else "") + ".")
    pts = sharded_points(sharded, "scan_extents_measured_s")
    for r, k in zip(pts.itertuples(), _sharded_kernel(pts)):
        c = color_for(r.option)
        err = None
        if _has(pts, "scan_extents_measured_min_s", "scan_extents_measured_max_s"):
            err = [[r.scan_extents_measured_s - r.scan_extents_measured_min_s],
                   [r.scan_extents_measured_max_s - r.scan_extents_measured_s]]
        ax.errorbar([r.host_bytes], [r.scan_extents_measured_s], yerr=err, fmt="h", color=c,
                    mec=c, mfc=c if k else "white", capsize=3, elinewidth=1.2,
                    ms=SHARDED_MARKER["ms"], mew=SHARDED_MARKER["mew"], zorder=6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    hb = sorted(set(p["host_bytes"].unique()) | set(pts["host_bytes"].astype(float)))
    ax.set_xticks(hb)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_seconds(x)))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylabel("time to scan every private page (s, log scale)")
    low_ax = ax
    if rax is not None:
        rax.axhspan(0.5, 2.0, color="0.85", alpha=0.5, lw=0)
        rax.axhline(1.0, color="0.4", lw=1)
        rax.set_yscale("log")
        lo = min(0.25, float(ratios["model_ratio"].min()) / 1.3)
        hi = max(4.0, float(ratios["model_ratio"].max()) * 1.3)
        rax.set_ylim(lo, hi)
        rax.set_yticks([t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if lo <= t <= hi])
        rax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
        rax.yaxis.set_minor_formatter(NullFormatter())
        rax.grid(True, which="major", alpha=0.3)
        rax.set_ylabel("modeled / measured\n(grey: within 2×)", fontsize=9)
        low_ax = rax
    low_ax.set_xlabel("host RAM (bytes, log scale)")
    shape = p["set"].iloc[0]
    ax.set_title(f"{title}\nset: {SET_CAPTIONS.get(shape, shape)}", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="none"))
    labels.append("")
    for ek in ("kernel code", "C layout", "emulation"):
        if ek in kinds_drawn:
            st = ENGINE_STYLE[ek]
            handles.append(Line2D([], [], marker=st["marker"], ls="none", color="0.3",
                                  ms=st["ms"], alpha=st["alpha"]))
            labels.append("measured: " + ENGINE_LEGEND[ek])
    if "scan_extrapolated" in p and p["scan_extrapolated"].eq(True).any():
        handles.append(Line2D([], [], marker="o", ls="none", color="0.3", mfc="white"))
        labels.append("hollow: extrapolated past\nthe memory budget")
    if not pts.empty:
        handles.append(Line2D([], [], ls="none", color="0.3", mfc="0.3", **SHARDED_MARKER))
        labels.append(f"{SCAN_LABEL}:\nfilled kernel code, hollow emulation")
    handles.append(Line2D([], [], ls="-", color="0.3"))
    labels.append(f"modeled on {platform} [{kind}],\n{cpus} CPU" + ("s" if cpus > 1 else "")
                  + "; band: ASSUMED cost range")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5,
              frameon=False)
    engines = sorted(set(p.loc[p["scan_runs"].fillna(0) > 0, "engine"]) if "engine" in p
                     else set())
    where = p["machine"].iloc[0] if "machine" in p else "this machine"
    text = (f"Measured on {where}: median of the repeats, bars min-max; engines: "
            + "; ".join(engines) + ". Modeled = max(scanned bytes / read rate, entries × "
            "entry + runs × run + lookups × lookup) + node loads × load latency "
            "(trackers/kexec/platform.py; per-entry, per-run and per-lookup costs ASSUMED, "
            "trackers/kernel.py). Within 2× of the measurement except where noted: "
            + (" ".join(notes) if notes else "none.")
            + "".join(f" ({k}) {w}." for w, k in reasons.items()))
    if "skipped" in p:
        sk = p[_text(p["skipped"]) != ""]
        if not sk.empty:
            text += (" Not built (model only; see scan_time.csv): " + ", ".join(
                f"{r.tracker} at {fmt_bytes(r.host_bytes)}" for r in sk.itertuples()) + ".")
    if not pts.empty:
        runs = pts["runs"].dropna() if "runs" in pts else pd.Series(dtype=float)
        text += (f" Hexagons: {SCAN_LABEL}, the extents scan of sharded builds "
                 + sharded_caption(pts) + "; bars min-max over "
                 + (f"{int(runs.max())} run(s)" if not runs.empty else "the runs bench-core made")
                 + "; no model line there (the lines model whole builds).")
    _caption(fig, text)
    lines = 1 + len(text) // 180               # caption lines at 8 pt, ~0.14 in each
    fig.tight_layout(rect=(0, min((0.25 + 0.14 * lines) / fig.get_figheight(), 0.45), 1, 1))
    return fig


# --------------------------------------------------------------------------
# 4. kexec downtime per strategy, per platform

#: the platform whose downtimes the figures show first (a preset, an estimate
#: of a two-socket Sapphire Rapids; summary.py's verdict platform)
REFERENCE_PLATFORM = "spr-2s"
#: the CPU counts at reset kexec_downtime shows beside the kexec table's own
#: (issue 11: 1, 8, 32 and all of the platform); marker per count
SWEEP_MARKERS = {8: "^", 32: "s", "all": "D"}


def _platforms(names) -> list[str]:
    """Platform names, the reference platform first, then this machine."""
    names = list(dict.fromkeys(names))
    first = [n for n in (REFERENCE_PLATFORM, "this-machine") if n in names]
    return first + [n for n in names if n not in first]


def _cpu_numbers(d: pd.DataFrame) -> tuple[pd.Series, float | None]:
    """``cpus_at_reset`` as numbers and the number that stands for "all CPUs of
    the platform" (None where the table does not say).  A cell reading "all"
    becomes the platform's CPU count (``platform_cpus_total`` or
    ``cpus_total`` where the table has one, else twice the largest count)."""
    raw = d["cpus_at_reset"]
    num = pd.to_numeric(raw, errors="coerce")
    is_all = _text(raw).str.strip().str.lower().eq("all")
    if not is_all.any():
        return num, None
    total = math.nan
    for col in ("platform_cpus_total", "cpus_total"):
        if col in d:
            total = pd.to_numeric(d.loc[is_all, col], errors="coerce").max()
            break
    plat = set(d["platform"]) if "platform" in d else set()
    if not total > 0 and len(plat) == 1 and next(iter(plat)) in PLATFORMS:
        total = PLATFORMS[next(iter(plat))].cpus_total       # the preset's CPUs
    if not total > 0:
        total = 2 * (num.max() if num.notna().any() else 1)
    return num.where(~is_all, total), float(total)


def _platform_column(df):
    """``df`` with a ``platform`` column (the sensitivity and tornado tables'
    name), made from ``platform_name`` (the kexec table's) where it lacks one."""
    if df is not None and "platform" not in df and "platform_name" in df:
        return df.assign(platform=df["platform_name"])
    return df


def _sweep(sensitivity, platform: str) -> pd.DataFrame:
    """The sensitivity rows of one platform with numeric ``cpus`` and ``is_all``
    (the row for every CPU of the platform); empty where the table lacks them."""
    cols = ["strategy", "scenario", "platform", "cpus_at_reset", "downtime_s"]
    sensitivity = _platform_column(sensitivity)
    if sensitivity is None or sensitivity.empty or _missing(sensitivity, cols):
        return pd.DataFrame(columns=cols + ["cpus", "is_all"])
    d = sensitivity[sensitivity["platform"] == platform].copy()
    cpus, total = _cpu_numbers(d)
    d["cpus"] = cpus
    top = total if total is not None else (cpus.max() if len(d) else math.nan)
    known = platform in PLATFORMS and PLATFORMS[platform].cpus_total == top
    d["is_all"] = cpus.eq(top) & (total is not None or known
                                  or ~cpus.isin([2 ** k for k in range(7)]))
    return d.dropna(subset=["cpus"])


def _cpus_label(n: float, is_all: bool = False) -> str:
    n = int(n)
    return f"all {n} CPUs" if is_all else f"{n} CPU" + ("s" if n > 1 else "")


def _cpus(row) -> str:
    n = row.get("platform_cpus", 1)
    n = 1 if pd.isna(n) else int(n)
    return f"{n} CPU" + ("s" if n > 1 else "")


#: log-axis ticks for times: decades of seconds below one, then minutes and hours
_TIME_TICKS = [10.0 ** k for k in range(-9, 2)] + [60.0, 600.0, 3600.0, 36000.0, 360000.0]
_TIME_TICKS_125 = ({m * 10.0 ** k for k in range(-9, 2) for m in (2, 5)}
                   | {20.0, 30.0, 120.0, 300.0, 1200.0, 1800.0, 7200.0, 18000.0})


def _seconds_axis(ax, values, which="x", room: float = 1.6) -> None:
    """A log time axis ending near the data, ticks at 1 µs ... 1 s, 10 s, 1 min,
    10 min, 1 h (labelled in µs, ms, s, min)."""
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
    axis.set_major_formatter(FuncFormatter(
        lambda x, _: f"{x / 3600:g} h" if x >= 3600 else fmt_seconds(x)))
    axis.set_minor_formatter(NullFormatter())


def kexec_downtime(df: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
                   platform: str | None = None, scenarios: list[str] | None = None):
    """Modeled kexec downtime per strategy on one platform: the scan (left,
    log axis: the only part that differs) and scan + clear (right), at the
    kexec table's CPUs (today: one) and, from ``sensitivity``, at 8, 32 and
    all CPUs; rows: the first two scenarios.  On ``this-machine`` the measured
    scans are drawn too (median, bars min-max)."""
    title = "kexec downtime per strategy (modeled) — lower is better"
    why = _absent(title, "kexec", df, ["strategy", "scenario", "platform_name",
                                       "kexec_allowed", "scan_s", "clear_s", "downtime_s"])
    if why:
        return why
    platform = platform or _platforms(df["platform_name"])[0]
    d = df[df["platform_name"] == platform]
    if d.empty:
        return _empty(title, f"no kexec rows on platform {platform!r}")
    scenarios = scenarios or list(dict.fromkeys(d["scenario"]))[:2]
    strategies = ordered(d["strategy"])
    sweep = _sweep(sensitivity, platform)
    n = len(strategies)
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(15, (0.3 * n + 1.5) * len(scenarios)
                                                         + 2.2), squeeze=False, sharey="row")
    measured_drawn, levels_drawn = False, {}
    for r, sc in enumerate(scenarios):
        k = (d[d["scenario"] == sc].drop_duplicates("strategy").set_index("strategy")
             .reindex(strategies))
        sw = sweep[sweep["scenario"] == sc]
        first = d[d["scenario"] == sc].iloc[0] if (d["scenario"] == sc).any() else d.iloc[0]
        base_cpus = int(first["platform_cpus"]) if "platform_cpus" in d and \
            pd.notna(first["platform_cpus"]) else 1
        for col, what in ((0, "scan_s"), (1, "downtime_s")):
            ax = axes[r][col]
            values = []
            for i, name in enumerate(strategies):
                row = k.loc[name]
                c = color_for(name)
                if not _true(row["kexec_allowed"]):
                    ax.text(0.01, i, "kexec refused: no downtime" if pd.notna(
                        row["kexec_allowed"]) else "not run on this scenario",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                        color="0.35", style="italic")
                    continue
                v = float(row[what])
                if not np.isfinite(v):             # no number: the structure cannot hold it
                    why = ("not representable on this host" if "representable" in row and
                           row["representable"] is not None and not _true(row["representable"])
                           else "no number in kexec.csv")
                    ax.text(0.01, i, why, transform=ax.get_yaxis_transform(), va="center",
                            fontsize=7.5, color="0.35", style="italic")
                    continue
                pts = [(base_cpus, v, "o", False)]
                s = sw[sw["strategy"] == name] if what in sw else sw.iloc[0:0]
                for key, mk in SWEEP_MARKERS.items():
                    hit = s[s["is_all"]] if key == "all" else s[(s["cpus"] == key) & ~s["is_all"]]
                    if len(hit) and float(hit["cpus"].iloc[0]) != base_cpus:
                        pts.append((float(hit["cpus"].iloc[0]), float(hit[what].iloc[0]), mk,
                                    key == "all"))
                        levels_drawn[key] = _cpus_label(hit["cpus"].iloc[0], key == "all")
                xs = [p[1] for p in pts if p[1] > 0]
                values += xs
                if len(xs) > 1:
                    ax.plot([min(xs), max(xs)], [i, i], "-", color=c, lw=1, alpha=0.5)
                for cpus, x, mk, _ in pts[1:]:
                    if x > 0:
                        ax.plot([x], [i], mk, color=c, ms=5.5, mfc="white", mew=1.3)
                if v > 0:
                    err = None
                    if what == "downtime_s" and _has(row, "downtime_low_s", "downtime_high_s") and \
                            pd.notna(row["downtime_low_s"]):
                        err = [[v - float(row["downtime_low_s"])],
                               [float(row["downtime_high_s"]) - v]]
                        values += [float(row["downtime_low_s"]), float(row["downtime_high_s"])]
                    ax.errorbar([v], [i], xerr=err, fmt="o", color=c, ms=7, capsize=3, elinewidth=1.2)
                else:
                    ax.text(0.01, i, "no scan (0 s)" if what == "scan_s" else "0 s",
                            transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                            color=c)
                if what == "scan_s" and platform == "this-machine" and \
                        pd.notna(row.get("scan_measured_s", math.nan)) and row["scan_measured_s"] > 0:
                    m = float(row["scan_measured_s"])
                    lo = float(row.get("scan_measured_min_s", m))
                    hi = float(row.get("scan_measured_max_s", m))
                    ax.errorbar([m], [i + 0.28], xerr=[[m - lo], [hi - m]], fmt="D", ms=5,
                                color="black", mfc="white", capsize=2, elinewidth=1)
                    values += [lo, hi]
                    measured_drawn = True
                if what == "downtime_s":
                    txt = fmt_seconds(v)
                    if len(pts) > 1:
                        cpus, x, _, is_all = pts[-1]
                        txt += (f" → {fmt_seconds(x)} (" + (f"all {cpus:.0f}" if is_all
                                                            else _cpus_label(cpus)) + ")")
                    missed = row.get("pages_missed", 0)
                    if pd.notna(missed) and missed > 0:
                        txt += f"   MISSES {int(missed):,} pages"
                    ax.annotate(txt, (1.0, i), xycoords=("axes fraction", "data"),
                                xytext=(6, 0), textcoords="offset points", va="center",
                                fontsize=7.5, annotation_clip=False,
                                color="firebrick" if pd.notna(missed) and missed > 0 else "0.15")
            _seconds_axis(ax, values, room=1.4)
            ax.set_yticks(range(n))
            ax.set_yticklabels(strategies)
            ax.set_ylim(n - 0.5, -0.5)
            ax.grid(True, axis="x", which="major", alpha=0.3)
            ax.set_xlabel("modeled scan: find the private pages (s, log scale)" if col == 0
                          else "modeled downtime: scan + clear (s, log scale)")
            ram = (f"{fmt_bytes(first['ram_pages'] * 4096)} RAM, "
                   f"{fmt_bytes(first['private_pages'] * 4096)} private; "
                   if "ram_pages" in first and "private_pages" in first else "")
            ax.set_title(f"{sc}: {ram}{'scan' if col == 0 else 'downtime'}", fontsize=9.5)
    kind = d["platform_kind"].iloc[0] if "platform_kind" in d else ""
    fig.suptitle(f"{title}\nplatform {platform} [{kind}]; ● {_cpus_label(base_cpus)} at reset "
                 f"(machine_kexec() after stop_other_cpus(): today's kexec)"
                 + ("; hollow: the reset moved where more CPUs run" if levels_drawn else ""),
                 fontsize=11)
    handles = [Line2D([], [], marker="o", ls="none", color="0.3", ms=7),
               *[Line2D([], [], marker=SWEEP_MARKERS[k], ls="none", color="0.3", mfc="white",
                        ms=6) for k in levels_drawn]]
    labels = [f"modeled, {_cpus_label(base_cpus)} at reset"
              + ("; bar: ASSUMED-rate range" if _has(d, "downtime_low_s", "downtime_high_s")
                 else ""),
              *[f"modeled, {v} at reset" for v in levels_drawn.values()]]
    if measured_drawn:
        handles.append(Line2D([], [], marker="D", ls="none", color="black", mfc="white"))
        labels.append("measured scan on this machine (median, bar min-max)")
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8.5,
               frameon=False, bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    note = ("" if len(sweep) else " The CPU sweep needs the sensitivity table (not in this "
            "report).")
    _caption(fig, "Modeled with trackers/kexec: scan = max(scanned bytes / read rate, scan "
                  "work) + node loads × latency; clear = pages reset × 4 KiB / clear rate "
                  "(MOVDIR64B stand-in). The clear is the same for every option that resets "
                  "the same pages, so the scans (left) are where they differ. Platform kinds: "
                  "measured (calibrate), estimate (docs/kernel-facts.md), fallback "
                  "(PERF-NOTES)." + note)
    fig.tight_layout(rect=(0, 0.05, 0.995, 1 - 0.95 / fig.get_figheight()))
    return fig


# --------------------------------------------------------------------------
# 4b. downtime against CPUs at reset, with the ASSUMED-range bands

def _crossings(lines: dict[str, pd.DataFrame], tie: float = 0.01):
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


#: lines of downtime_vs_cpus closer than this (relative, at every CPU count)
#: are drawn as one: the clear dominates, and a dozen coinciding lines hide each other
SAME_WITHIN = 0.03


def _wrap(text: str, width: int) -> str:
    """``text`` broken at ", " into lines of at most ``width`` characters."""
    out, line = [], ""
    for word in text.split(", "):
        if line and len(line) + len(word) + 2 > width:
            out.append(line + ",")
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return "\n".join(out + [line])


def _groups(curves: dict[str, pd.Series], unsafe=frozenset(),
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


def downtime_vs_cpus(df: pd.DataFrame, kexec: pd.DataFrame | None = None,
                     scenarios: list[str] | None = None, platforms: list[str] | None = None):
    """Modeled downtime against the CPUs at reset, one line per option with
    its band (every ASSUMED parameter at its low and high end), crossings
    marked and the changes of the fastest option named; rows scenarios
    (default: the first two, and the first with a measured scan), columns
    platforms (the reference first).  ``kexec``, when given, marks the
    options that miss pages.  Where the table has ``scan_measured_s`` (the
    sharded scan measured on this machine, sensitivity.measured_scans) the
    scan part is drawn for those options: measured as hollow diamonds, the
    modeled scan_s as a dotted line."""
    title = ("kexec downtime against the CPUs at reset (modeled; band: ASSUMED parameter "
             "ranges) — lower is better")
    df = _platform_column(df)
    why = _absent(title, "sensitivity", df, ["strategy", "scenario", "platform",
                                             "cpus_at_reset", "downtime_s"])
    if why:
        return why
    platforms = platforms or _platforms(df["platform"])
    has_measured = "scan_measured_s" in df and df["scan_measured_s"].notna().any()
    if not scenarios:
        scenarios = list(dict.fromkeys(df["scenario"]))[:2]
        if has_measured:
            first = df.loc[df["scan_measured_s"].notna(), "scenario"].iloc[0]
            scenarios += [first] if first not in scenarios else []
    unsafe, refused = set(), set()
    if kexec is not None and not _missing(kexec, ["strategy", "pages_missed", "scenario"]):
        here = kexec[kexec["scenario"].isin(scenarios)]
        unsafe = set(here.loc[here["pages_missed"] > 0, "strategy"])
        if "kexec_allowed" in here:
            refused = set(here.loc[~here["kexec_allowed"].map(_true), "strategy"])
    fig, axes = plt.subplots(len(scenarios), len(platforms), squeeze=False,
                             figsize=(7.2 * len(platforms) + 3.6, 5.4 * len(scenarios) + 1.2))
    leaders_text, nodown, scan_notes = [], set(), {}
    for r, sc in enumerate(scenarios):
        for c, plat in enumerate(platforms):
            ax = axes[r][c]
            d = _sweep(df, plat)
            d = d[d["scenario"] == sc]
            if d.empty:
                ax.set_axis_off()
                ax.set_title(f"{sc} on {plat}: no rows", fontsize=9.5)
                continue
            curves = {}
            for name in ordered(d["strategy"]):
                s = (d[d["strategy"] == name].drop_duplicates("cpus").sort_values("cpus"))
                s = s[s["downtime_s"] > 0]
                if s.empty:
                    (refused if name in refused or kexec is None else nodown).add(name)
                    continue
                curves[name] = s.set_index("cpus")
            # options within SAME_WITHIN of each other at every CPU count are one line
            groups = _groups({n: c["downtime_s"] for n, c in curves.items()}, unsafe)
            lines, short = {}, {}
            for members in groups:
                head = members[0]
                s = curves[head]
                col = color_for(head)
                short[head] = (head if len(members) == 1 else
                               f"{head} (+{len(members) - 1} within {SAME_WITHIN:.0%})")
                label = (head if len(members) == 1 else
                         _wrap(", ".join(members), 44) + f"\n  (within {SAME_WITHIN:.0%})")
                label += " (misses pages)" if head in unsafe else ""
                ax.plot(s.index, s["downtime_s"], color=col, lw=2.2 if len(members) > 1 else 1.8,
                        ms=4.5, label=label, alpha=0.55 if head in unsafe else 1.0,
                        **style_for(head))
                if _has(s, "downtime_low_s", "downtime_high_s") and \
                        s["downtime_low_s"].notna().any():
                    lo = pd.concat([curves[m]["downtime_low_s"] for m in members], axis=1).min(axis=1)
                    hi = pd.concat([curves[m]["downtime_high_s"] for m in members], axis=1).max(axis=1)
                    ax.fill_between(lo.index, lo, hi, color=col, alpha=0.08, lw=0)
                lines[head] = s[["downtime_s"]].rename(columns={"downtime_s": "y"})
            for x, y, a, b in _crossings(lines):
                ax.plot([x], [y], "x", color="black", ms=6, mew=1.4, zorder=5)
            # the fastest line at each CPU count: `rank` where the table has it
            head_of = {m: g[0] for g in groups for m in g}
            best = {}
            for cpus, g in d[d["strategy"].isin(head_of)].groupby("cpus"):
                safe = g[~g["strategy"].isin(unsafe)] if len(g[~g["strategy"].isin(unsafe)]) else g
                top = (safe.sort_values("rank").iloc[0] if "rank" in safe and
                       safe["rank"].notna().all() else safe.loc[safe["downtime_s"].idxmin()])
                best[cpus] = head_of[top["strategy"]]
            cpus_sorted = sorted(best)
            for lo_c, hi_c in zip(cpus_sorted, cpus_sorted[1:]):
                if best[lo_c] != best[hi_c]:
                    a, b = best[lo_c], best[hi_c]
                    pts = [p for p in _crossings({k: lines[k] for k in (a, b)})
                           if lo_c <= p[0] <= hi_c]
                    x, y = (pts[0][0], pts[0][1]) if pts else (math.sqrt(lo_c * hi_c),
                                                              float(lines[b].loc[hi_c, "y"]))
                    ax.plot([x], [y], "o", ms=13, mfc="none", mec="black", mew=1.6, zorder=6)
                    where = f"between {lo_c:g} and {hi_c:g} CPUs"
                    ax.annotate(f"fastest: {short[a]} →\n{short[b]}, {where}", (x, y),
                                xytext=(10, 22), textcoords="offset points", fontsize=8,
                                arrowprops=dict(arrowstyle="-", color="0.3", lw=0.8),
                                bbox=dict(boxstyle="round", fc="white", ec="0.6", alpha=0.9))
                    leaders_text.append(f"{sc} on {plat}: {short[a]} → {short[b]} {where}")
            scans = []                       # the scan part, measured beside modeled
            if has_measured and "scan_measured_s" in d:
                for name in ordered(d.loc[d["scan_measured_s"].notna(), "strategy"]):
                    s = d[d["strategy"] == name].drop_duplicates("cpus").sort_values("cpus")
                    s = s[s["scan_measured_s"].notna()]
                    col = color_for(name)
                    ax.plot(s["cpus"], s["scan_s"], ls=":", lw=1.1, color=col, alpha=0.9)
                    ax.plot(s["cpus"], s["scan_measured_s"], ls="none", marker="D", ms=6,
                            mfc="none", mec=col, mew=1.4,
                            label=f"{name}: scan measured (◇) / modeled (···)")
                    scans += [s["scan_s"], s["scan_measured_s"]]
                    note = (str(s["scan_measured_note"].iloc[0]).rsplit(" (", 1)[0]
                            if "scan_measured_note" in s else "sharded")
                    scan_notes.setdefault(f"{sc} on {plat}", note)
            ticks = sorted(d["cpus"].unique())
            alls = set(d.loc[d["is_all"], "cpus"])
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda x, _, alls=alls: f"all\n{x:.0f}" if x in alls else f"{x:.0f}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(min(ticks) / 1.2, max(ticks) * 1.2)
            vals = pd.concat([d["downtime_s"]] + ([d["downtime_low_s"], d["downtime_high_s"]]
                                                 if _has(d, "downtime_low_s", "downtime_high_s")
                                                 else []) + scans)
            _seconds_axis(ax, vals, which="y", room=1.5)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel("CPUs at reset (log scale; 1 = machine_kexec() today)")
            ax.set_ylabel("modeled downtime (s, log scale)" if not scans else
                          "s, log scale: modeled downtime (lines);\nthe scan part: measured ◇, "
                          "modeled ···")
            kind = d["kind"].iloc[0] if "kind" in d else "modeled"
            kind += "; scan part measured" if scans else ""
            ax.set_title(f"{sc} on {plat} [{kind}]", fontsize=10)
    handles = {}
    for ax in axes.flat:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l_, h_)
    hs, ls = list(handles.values()), list(handles)
    hs += [Line2D([], [], marker="x", ls="none", color="black", mew=1.4),
           Line2D([], [], marker="o", ls="none", ms=11, mfc="none", mec="black", mew=1.6)]
    ls += ["two lines change order", "the fastest line changes"]
    if refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("refuse kexec (no downtime):\n  " + "\n  ".join(ordered(refused)))
    if nodown - refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("no downtime in the table\n(not representable, or not run):\n  "
                  + "\n  ".join(ordered(nodown - refused)))
    fig.legend(hs, ls, loc="center right", fontsize=8, frameon=False,
               title="line = modeled, band = ASSUMED range", title_fontsize=8.5)
    fig.suptitle(title, fontsize=11.5)
    _caption(fig, "Modeled (trackers/kexec) at each CPU count at reset; the band spans every "
                  "ASSUMED parameter (clear rate, SEAMCALL costs, load latency, scan costs, "
                  "TDH.SYS.DISABLE rate) at its low and high end (tornado figure). More CPUs "
                  "than 1 model a reset moved before stop_other_cpus(). Options within "
                  f"{SAME_WITHIN:.0%} of each other at every CPU count share a line (the "
                  "clear dominates them). The fastest is taken among the options that miss "
                  "no page. "
                  + ("Changes of the fastest: " + "; ".join(leaders_text) + "."
                     if leaders_text else "The fastest option is the same at every CPU count.")
                  + "".join(f" Scan part on {where} (◇ measured, ··· modeled): {note}."
                            for where, note in scan_notes.items()))
    fig.tight_layout(rect=(0, 0.045, 1 - 3.4 / fig.get_figwidth(), 0.96))
    return fig


# --------------------------------------------------------------------------
# 4c. tornado: how far each ASSUMED parameter moves each option's downtime

def _fmt_param(param: str, v: float) -> str:
    """A parameter value in its unit, read from its name (``*_s``, ``*_bps``)."""
    if not np.isfinite(v):
        return "n/a"
    if param.endswith("_bps") or "bps" in param:
        return f"{v / 1e9:.3g} GB/s"
    if param.endswith("_s"):
        return f"{v * 1e9:.3g} ns" if 0 < v < 1e-6 else fmt_seconds(v)
    return f"{v:.3g}"


def tornado(df: pd.DataFrame, platform: str | None = None, scenario: str | None = None,
            cpus: str | int | None = None):
    """Per option (small multiples), the modeled downtime with each ASSUMED
    parameter at its low and at its high end, around the base; one scenario,
    platform and CPU count (default: the first scenario, the reference
    platform, the fewest CPUs: today's reset)."""
    title = "How far each ASSUMED parameter moves the downtime (modeled) — tornado per option"
    df = _platform_column(df)
    why = _absent(title, "tornado", df, ["strategy", "scenario", "platform", "param",
                                         "downtime_base_s", "downtime_at_low_s",
                                         "downtime_at_high_s"])
    if why:
        return why
    platform = platform or _platforms(df["platform"])[0]
    d = df[df["platform"] == platform]
    scenario = scenario or list(dict.fromkeys(d["scenario"]))[0]
    d = d[d["scenario"] == scenario]
    if "cpus_at_reset" in d:
        num, _ = _cpu_numbers(d)
        pick = num.min() if cpus is None else pd.to_numeric(pd.Series([cpus]),
                                                             errors="coerce").iloc[0]
        d = d[num == pick] if pd.notna(pick) else d[_text(d["cpus_at_reset"]) == str(cpus)]
        cpu_text = _cpus_label(pick) if pd.notna(pick) else f"{cpus} CPUs"
    else:
        cpu_text = "the kexec table's CPUs"
    d = d[d["downtime_base_s"] > 0]
    if d.empty:
        return _empty(title, f"no tornado rows with a downtime for {scenario} on {platform}")
    # options whose bars agree within SAME_WITHIN share a panel
    cols = ["downtime_base_s", "downtime_at_low_s", "downtime_at_high_s"]
    curves = {n: (d[d["strategy"] == n].drop_duplicates("param").set_index("param")[cols]
                  .stack()) for n in ordered(d["strategy"])}
    groups = _groups(curves)
    names = [g[0] for g in groups]
    members = {g[0]: g for g in groups}
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    nparam = d.groupby("strategy")["param"].nunique().max()
    fig, axes = plt.subplots(nrow, ncol, squeeze=False,
                             figsize=(max(4.8 * ncol, 10), (0.36 * nparam + 1.6) * nrow + 2.0))
    low_c, high_c = "#4c72b0", "#dd8452"
    for ax, name in zip(axes.flat, names):
        s = d[d["strategy"] == name].drop_duplicates("param").copy()
        base = float(s["downtime_base_s"].iloc[0])
        s["swing"] = (s["downtime_at_high_s"] - s["downtime_at_low_s"]).abs()
        s = s.sort_values("swing", ascending=False)
        y = np.arange(len(s))
        lo = s["downtime_at_low_s"].to_numpy(float)
        hi = s["downtime_at_high_s"].to_numpy(float)
        ax.barh(y, lo - base, left=base, color=low_c, height=0.62)
        ax.barh(y, hi - base, left=base, color=high_c, height=0.62)
        ax.axvline(base, color="black", lw=1)
        span = np.nanmax(np.abs(np.concatenate([lo, hi]) - base)) if len(s) else 0
        pad = span * 0.6 if span > 0 else base * 0.05
        ax.set_xlim(np.nanmin(np.concatenate([lo, hi, [base]])) - pad,
                    np.nanmax(np.concatenate([lo, hi, [base]])) + pad)
        for yi, r in zip(y, s.itertuples()):
            for val, at in ((getattr(r, "value_low", math.nan), r.downtime_at_low_s),
                            (getattr(r, "value_high", math.nan), r.downtime_at_high_s)):
                if at == base:
                    continue
                ax.annotate(_fmt_param(r.param, val), (at, yi),
                            xytext=(3 if at > base else -3, 0), textcoords="offset points",
                            ha="left" if at > base else "right", va="center", fontsize=6.5,
                            color="0.2")
        ax.set_yticks(y)
        ax.set_yticklabels(s["param"], fontsize=8)
        ax.set_ylim(len(s) - 0.5, -0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda x, _: "" if x < 0 else "0" if x == 0 else fmt_seconds(x)))
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7.5)
        rel = (f"; ×{min(lo.min(), hi.min()) / base:.2g}–×{max(lo.max(), hi.max()) / base:.2g}"
               if len(s) else "")
        same = members[name][1:]
        ax.set_title(_wrap(", ".join([name, *same]), 60) + (f" (within {SAME_WITHIN:.0%})"
                                                           if same else "")
                     + f"\nbase {fmt_seconds(base)}{rel}", fontsize=8.5, color=color_for(name))
        ax.set_xlabel("modeled downtime (s)", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=low_c), plt.Rectangle((0, 0), 1, 1, color=high_c),
                Line2D([], [], color="black")],
               ["parameter at the low end of its range", "parameter at the high end",
                "base (every parameter at its base value)"],
               loc="upper center", ncol=3, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    fig.suptitle(f"{title}\n{scenario} on {platform}, {cpu_text} at reset; bars sorted by "
                 "swing, labelled with the parameter's value", fontsize=11)
    sources = []
    if "source" in d:
        for p, src in d.drop_duplicates("param")[["param", "source"]].itertuples(index=False):
            if str(src) not in ("", "nan"):
                sources.append(f"{p}: {src}")
    others = sorted(set(df["strategy"]) - set(d["strategy"]))
    _caption(fig, "Each bar: the downtime with one parameter at an end of its ASSUMED (low, "
                  "high) range and every other at its base (one-at-a-time). Sources: "
                  + ("; ".join(sources) if sources else "see tornado.csv")
                  + "." + (f" Without a downtime here (refuse kexec): {', '.join(ordered(others))}."
                           if others else ""))
    lines = 1 + len(" ".join(sources)) // (18 * fig.get_figwidth())
    fig.tight_layout(rect=(0, min((0.3 + 0.15 * lines) / fig.get_figheight(), 0.3), 1,
                           1 - 0.85 / fig.get_figheight()))
    return fig


# --------------------------------------------------------------------------
# 5. missed pages vs conversion rate

#: race rows per SEAMCALL-cost assumption (race.csv ``seamcall_cost``)
SEAMCALL_LEVELS = ("low", "base", "high")


def _intervals_overlap(a: pd.DataFrame, b: pd.DataFrame, col: str) -> bool:
    """Do the 95 % intervals of two kexec kinds overlap at every strategy and rate?"""
    key = ["strategy", "rate_mib_s"]
    j = a.merge(b, on=key, suffixes=("_a", "_b"))
    if f"{col}_low" in a and f"{col}_high" in a:
        lo_a, hi_a, lo_b, hi_b = (j[f"{col}_low_a"], j[f"{col}_high_a"], j[f"{col}_low_b"],
                                  j[f"{col}_high_b"])
        return bool(((lo_a <= hi_b) & (lo_b <= hi_a)).all())
    # a table without intervals: the same within twice the binomial standard error
    pa, pb = j[f"{col}_a"], j[f"{col}_b"]
    n = j["n_kexec_a"] if "n_kexec_a" in j else pd.Series(np.inf, index=j.index)
    p = (pa + pb) / 2
    return bool(((pa - pb).abs() <= 2 * np.sqrt(2 * p * (1 - p) / n) + 1 / n).all())


def missed_pages(df: pd.DataFrame, platform: str | None = None):
    """P(a kexec misses >= 1 private page) vs the private->shared conversion
    rate (modeled, simulated): markers with their 95 % (Wilson) intervals at
    the base SEAMCALL costs, a band from the low to the high SEAMCALL-cost
    assumption; one panel, or one per kexec kind where normal and crash
    kexec differ beyond their intervals."""
    title = "P(a kexec misses ≥ 1 private page) vs conversion rate (modeled) — lower is better"
    why = _absent(title, "race", df, ["strategy", "kexec", "rate_mib_s", "kexec_allowed"])
    if why:
        return why
    col = "p_miss" if "p_miss" in df else "p_missed" if "p_missed" in df else None
    if col is None:
        return _empty(title, "race lacks p_miss: a report of an earlier version? run "
                             "`tdx-trackers report`")
    plats = list(dict.fromkeys(df["platform_name"])) if "platform_name" in df else [None]
    platform = platform or ([p for p in _platforms(plats)][0] if plats != [None] else None)
    d = df[df["platform_name"] == platform] if platform is not None else df
    level = (_text(d["seamcall_cost"]).replace("", "base") if "seamcall_cost" in d
             else pd.Series("base", index=d.index))
    base, by_level = d[level == "base"], {lv: d[level == lv] for lv in SEAMCALL_LEVELS}
    kinds = list(dict.fromkeys(base["kexec"]))
    has_ci = f"{col}_low" in d and f"{col}_high" in d
    differ = (len(kinds) > 1 and not _intervals_overlap(
        base[base["kexec"] == kinds[0]], base[base["kexec"] == kinds[1]], col))
    shown = kinds if differ else [("crash" if "crash" in kinds else kinds[0])]
    fig, axes = plt.subplots(1, len(shown), figsize=(7.0 * len(shown) + 3.4, 6.0),
                             sharey=True, squeeze=False)
    never, refused, floor = set(), set(), []
    for ax, kind in zip(axes[0], shown):
        k = base[base["kexec"] == kind]
        for name in ordered(k["strategy"]):
            s = k[k["strategy"] == name].sort_values("rate_mib_s")
            if not s["kexec_allowed"].map(_true).any():
                refused.add(name)
                continue
            if (s[col].fillna(0) <= 0).all():
                never.add(name)
                continue
            c = color_for(name)
            st = style_for(name)
            lo_l, hi_l = by_level["low"], by_level["high"]
            band = [x[(x["kexec"] == kind) & (x["strategy"] == name)].sort_values("rate_mib_s")
                    for x in (lo_l, hi_l)]
            if all(len(b) for b in band):
                j = band[0][["rate_mib_s", col]].merge(band[1][["rate_mib_s", col]],
                                                       on="rate_mib_s")
                ax.fill_between(j["rate_mib_s"], np.minimum(j[f"{col}_x"], j[f"{col}_y"]),
                                np.maximum(j[f"{col}_x"], j[f"{col}_y"]), color=c, alpha=0.13,
                                lw=0)
            pos = s[s[col] > 0]
            ax.plot(s["rate_mib_s"], s[col].where(s[col] > 0), ls=st["ls"], color=c, lw=1.6,
                    label=name)
            err = ([pos[col] - pos[f"{col}_low"], pos[f"{col}_high"] - pos[col]] if has_ci
                   else None)
            ax.errorbar(pos["rate_mib_s"], pos[col], yerr=err, fmt=st["marker"], color=c,
                        ms=5.5, capsize=3, elinewidth=1.1)
            zero = s[s[col] <= 0]
            if has_ci and len(zero):             # none seen: the interval's upper end
                ax.plot(zero["rate_mib_s"], zero[f"{col}_high"], "v", color=c, ms=6,
                        mfc="white", mew=1.3)
                floor.append(float(zero[f"{col}_high"].max()))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:.3g} %"))
        rates = d["rate_mib_s"]
        ax.set_xlim(rates.min() / 1.4, rates.max() * 1.4)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("private→shared conversion rate (MiB/s, log scale)")
        what = ("crash kexec (kdump: NMIs freeze every step)" if kind == "crash"
                else "normal kexec (running steps finish first)")
        if not differ and len(kinds) > 1:
            what += ("\nnormal kexec: the same within the 95 % intervals"
                     if has_ci else "\nnormal kexec: the same within sampling error")
        ax.set_title(what, fontsize=10)
    pvals = pd.concat([base[col]] + ([base[f"{col}_low"], base[f"{col}_high"]] if has_ci else [])
                      + [x[col] for x in by_level.values()])
    pvals = pvals[pvals > 0]
    if len(pvals):
        axes[0][0].set_ylim(max(pvals.min() / 2, 1e-9), min(1.0, pvals.max() * 1.6) * 1.15)
    axes[0][0].set_ylabel("P(≥ 1 private page not reset) per kexec (simulated, log scale)")
    handles = {}
    for ax in axes[0]:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l_, h_)
    hs, ls = list(handles.values()), list(handles)
    n = int(d["n_kexec"].max()) if "n_kexec" in d else 0
    hs.append(Line2D([], [], marker="o", ls="-", color="0.3"))
    ls.append(f"modeled: share of {n:,} simulated kexecs" if n else "modeled: simulated share")
    if has_ci:
        hs.append(Line2D([], [], marker="o", ls="none", color="0.3"))
        ls.append("bar: 95 % interval (Wilson)")
        if floor:
            hs.append(Line2D([], [], marker="v", ls="none", color="0.3", mfc="white"))
            ls.append("none seen: the interval's upper end")
    if len(by_level["low"]) and len(by_level["high"]):
        hs.append(plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.15))
        ls.append("band: SEAMCALL costs at the low\nand high end of their ASSUMED range")
    if never:
        bound = (f" (P < {max(floor + [3.84 / n if n else 0]) * 100:.2g} % at 95 %)"
                 if n else "")
        hs.append(Line2D([], [], ls="none"))
        ls.append(f"miss no page in any\nsimulated kexec{bound}:\n  " + "\n  ".join(ordered(never)))
    if refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("refuse kexec (nothing to miss):\n  " + "\n  ".join(ordered(refused)))
    fig.legend(hs, ls, loc="center right", fontsize=8.5, frameon=False)
    kindp = d["platform_kind"].iloc[0] if "platform_kind" in d and len(d) else ""
    fig.suptitle(f"{title}\nplatform {platform} [{kindp}]; conversions in 2 MiB MapGPA chunks",
                 fontsize=11)
    _caption(fig, "trackers/kexec/race.py, attributes-first order (Isaku Yamahata's premise): "
                  "a page between KVM's attribute update and its removal is still TDX-private; "
                  "walks of KVM's attributes miss it, walks of the mirror S-EPT miss the page "
                  "being zapped. Mainline zaps first (race_order.csv). P is the share of "
                  "simulated kexecs that miss at least one page"
                  + ("; missed_mean in race.csv gives how many." if "missed_mean" in d else "."))
    fig.tight_layout(rect=(0, 0.04, 1 - 3.2 / fig.get_figwidth(), 1))
    return fig


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
    "memory_vs_host": FigureSpec(
        memory_vs_host, "memory_vs_host",
        "Memory each option adds to a running kernel as the host grows "
        "(modeled, log-log; lower is better); each line is named at its end, and the "
        "title names the private set and the scan figure's; with --sharded or "
        "--sharded-csv, hexagons are sharded builds (measured builds, modeled bytes) "
        "beside estimate() of the same shards.", ("scan_time", "sharded")),
    "bits_per_page": FigureSpec(
        bits_per_page, "bits_per_page",
        "Bits per private page as the private fraction grows, against the "
        "information bounds (modeled); the options without a line are named on the "
        "figure with the reason."),
    "scan_time": FigureSpec(
        scan_time, "scan_time",
        "The kexec-time scan: measured scans (markers: median, bars min-max; the "
        "kernel's own code wherever a tracker has a @kernel twin, the C layouts of "
        "struct pages and page tables for pageflags and pte-softbit, the emulation "
        "only where neither exists) against the model (lines, band: the ASSUMED "
        "per-entry, per-run and per-lookup cost range); the caption names every point "
        "where the model lies outside 2x and why; with --sharded or --sharded-csv, "
        "hexagons are sharded builds' measured scans, the sum over shards (1 CPU).",
        ("sharded",)),
    "kexec_downtime": FigureSpec(
        kexec_downtime, "kexec",
        "Modeled kexec downtime per strategy on the reference platform: the scan (left, "
        "log axis), the only part that differs between options, and scan + clear "
        "(right), at one CPU (today's reset) and at 8, 32 and all CPUs; bars: the "
        "ASSUMED-rate range.", ("sensitivity",)),
    "downtime_vs_cpus": FigureSpec(
        downtime_vs_cpus, "sensitivity",
        "Modeled downtime against the CPUs at reset, per platform: one line per option, "
        "its band every ASSUMED parameter at the low and high end of its range; crosses "
        "where two options change order, circles where the fastest changes.  Where the "
        "trackers are built on this machine, their scan part: measured in PFN shards "
        "dealt longest-first to the CPUs (diamonds, a lower bound) beside the modeled "
        "scan (dotted).", ("kexec",)),
    "tornado": FigureSpec(
        tornado, "tornado",
        "Per option, how far the modeled downtime moves with each ASSUMED parameter at "
        "the low and at the high end of its range (one at a time), on the reference "
        "platform at today's one CPU."),
    "missed_pages": FigureSpec(
        missed_pages, "race",
        "The chance that one kexec misses at least one private page as private->shared "
        "conversions speed up (modeled, simulated): bars the 95 % interval, band the "
        "SEAMCALL-cost assumption."),
}
