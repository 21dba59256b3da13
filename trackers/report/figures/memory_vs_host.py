"""Figure 1: the bytes each option adds to a running kernel against host RAM
(modeled, log-log), with the overlays drawn over its lines: a named host's
rows (MEMORY_OVERLAYS), sharded builds and sparse hosts.

Rows of memory_vs_host outside its host sweep (a named host) are drawn by
the drawer registered for their ``overlay`` kind in MEMORY_OVERLAYS.
"""

from __future__ import annotations

import math
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..memory import split_sparse_hosts
from ..format import fmt_bytes
from .select import SET_CAPTIONS, text_cells, typed
from .sharded_points import SHARDED_MARKER, is_kernel_code, sharded_caption, sharded_points
from .style import (absent, byte_ticks, caption, coincident, color_for, label_ends, ordered,
                    style_for)


TITLE = "Memory each option adds to a running kernel (modeled) — lower is better"

#: rows of memory_vs_host outside the host sweep (a named host, e.g. one whose
#: max_pfn far exceeds its RAM) carry a non-empty ``overlay`` column; the
#: lines skip them and MEMORY_OVERLAYS[overlay](ax, rows) draws them and
#: returns a sentence for the caption.  Register a drawer here for a new kind
#: of row; rows of an unregistered kind are drawn by _overlay_points.
MEMORY_OVERLAYS: dict[str, Callable[[plt.Axes, pd.DataFrame], str]] = {}

#: the ``layer`` of each row of :func:`frame`; the rows keep their table's
#: columns (memory_vs_host, sharded.csv) and add ``label`` and ``note``:
#:   line     a point of an option's line (``label``: its name at the line's end)
#:   limit    where a line stops: the largest host its structure can hold (``note``)
#:   zero     an option adding 0 B (no line on a log axis)
#:   pamt     a point of the PAMT line, 1/256 of the host, for scale
#:   overlay  a row of a named host, drawn by MEMORY_OVERLAYS
#:   sharded  a sharded build (sharded.csv)
#:   sparse   a sparse host's option (collect.split_sparse_hosts)
LAYERS = ("line", "limit", "zero", "pamt", "overlay", "sharded", "sparse")


def _overlay_points(ax, rows: pd.DataFrame) -> str:
    """Rows of an overlay no drawer is registered for: one hollow marker each,
    in its option's colour, so nothing in the table goes undrawn."""
    kind = text_cells(rows["overlay"]).iloc[0]
    for name in ordered(rows["tracker"]):
        r = rows[(rows["tracker"] == name) & (rows["added_bytes"] > 0)]
        ax.plot(r["host_bytes"], r["added_bytes"], ls="none", marker=style_for(name)["marker"],
                mfc="white", mec=color_for(name), mew=1.5, ms=8)
    hosts = ", ".join(dict.fromkeys(text_cells(rows["host"])))
    return f"Hollow markers: the {kind} host(s) ({hosts})."


# --------------------------------------------------------------------------
# the data

def _limit(d: pd.DataFrame) -> dict | None:
    """Where a tracker's structure cannot hold the set (NaN bytes, a
    ``not_representable`` note: the IDA beyond 2^31 PFNs), its line stops:
    at the largest host it can hold, at its last value."""
    if "not_representable" not in d or "host_pfns" not in d:
        return None
    notes = d["not_representable"]
    out = d[notes.notna() & (notes.astype(str) != "")]     # a CSV reads "" back as NaN
    shown = d[d["added_bytes"].notna()]
    if out.empty or shown.empty:
        return None
    first = out.iloc[0]
    limit = first.get("representable_max_pfns", math.nan)
    x = (float(limit) * first["host_bytes"] / first["host_pfns"] if pd.notna(limit)
         else float(first["host_bytes"]))
    return {"layer": "limit", "tracker": first["tracker"], "host_bytes": x,
            "added_bytes": float(shown["added_bytes"].iloc[-1]),
            "note": str(first["not_representable"])}


def _sweep_rows(sweep: pd.DataFrame) -> list[pd.DataFrame]:
    """Each option's line (named at its end, "(= other)" where it lies on an
    earlier one) and where it stops, or its rows as adding 0 B."""
    parts, curves = [], {}
    for name in ordered(sweep["tracker"]):
        d = sweep[sweep["tracker"] == name].sort_values("host_bytes")
        if (d["added_bytes"].fillna(0) <= 0).all():
            parts.append(d.assign(layer="zero"))
            continue
        curves[name] = d.set_index("host_bytes")["added_bytes"]
        limit = _limit(d)
        parts += [d.assign(layer="line")] + ([pd.DataFrame([limit])] if limit else [])
    same = coincident(curves)
    for i, p in enumerate(parts):
        if (p["layer"] == "line").all():
            name = p["tracker"].iloc[0]
            parts[i] = p.assign(label=name + (f" (= {same[name]})" if name in same else ""))
    return parts


def frame(df: pd.DataFrame, scan_time: pd.DataFrame | None = None,
          sharded: pd.DataFrame | None = None) -> pd.DataFrame:
    """What :func:`draw` draws, a row per point by ``layer`` (:data:`LAYERS`).
    ``attrs``: ``set`` (the lines' private set), ``scan_set`` (the scan
    figure's, None without its table)."""
    dense, sparse = split_sparse_hosts(df)          # drawn as stars, not sweep lines
    overlay = (text_cells(dense["overlay"]) != "") if "overlay" in dense \
        else pd.Series(False, dense.index)
    sweep, extra = dense[~overlay], dense[overlay]
    hb = np.array(sorted(sweep["host_bytes"].unique()), float)
    parts = _sweep_rows(sweep)
    parts += [pd.DataFrame({"layer": "pamt", "host_bytes": hb, "added_bytes": hb / 256}),
              extra.assign(layer="overlay"),
              sharded_points(sharded, "added_bytes").assign(layer="sharded"),
              sparse.assign(layer="sparse")]
    out = typed(pd.concat([p for p in parts if len(p)], ignore_index=True),
                ["host_bytes", "added_bytes"])
    out = out.reindex(columns=list(dict.fromkeys([*out.columns, "label", "note"])))
    shape = str(sweep["set"].iloc[0]) if "set" in sweep and len(sweep) else ""
    out.attrs = {"set": shape,
                 "scan_set": (str(scan_time["set"].iloc[0]) if scan_time is not None
                              and "set" in scan_time and len(scan_time) else None)}
    return out


# --------------------------------------------------------------------------
# the drawing

def _draw_lines(ax, f: pd.DataFrame) -> list[tuple]:
    """Each option's line, and a bar with its note where it stops; returns
    the lines' ends for label_ends."""
    ends = []
    for name in dict.fromkeys(f.loc[f["layer"] == "line", "tracker"]):
        d = f[(f["layer"] == "line") & (f["tracker"] == name)]
        c = color_for(name)
        ax.plot(d["host_bytes"], d["added_bytes"], color=c, lw=2, ms=6, label=name,
                **style_for(name))
        for r in f[(f["layer"] == "limit") & (f["tracker"] == name)].itertuples():
            ax.plot([r.host_bytes], [r.added_bytes], "|", color=c, ms=14, mew=2)
            ax.annotate(r.note, (r.host_bytes, r.added_bytes), xytext=(4, 12),
                        textcoords="offset points", fontsize=8, color=c, ha="right",
                        va="bottom")
        last = d.dropna(subset=["added_bytes"]).iloc[-1]
        ends.append((last["label"], last["host_bytes"], last["added_bytes"], c))
    return ends


def draw_sharded_memory(ax, pts: pd.DataFrame, line_set: str = "") -> str:
    """Each sharded build at its host size: its built bytes (modeled from the
    node counts of the structure it built, measured shard by shard) as a
    hexagon, estimate() of the same shards as a black tick; returns the
    caption's sentence (``line_set``: the lines' set shape, named where the
    builds' differs)."""
    kernel = is_kernel_code(pts)
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


def _axes(ax, f: pd.DataFrame) -> None:
    """Log-log axes ending near every point drawn, bytes in binary units."""
    pts = f[f["layer"] == "sharded"]
    table = f[f["layer"].isin(["line", "zero", "overlay"])]
    hb = f.loc[f["layer"] == "pamt", "host_bytes"]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    shown = pd.to_numeric(pd.concat([table["added_bytes"], pts["added_bytes"]]),
                          errors="coerce")
    shown = shown[shown > 0]
    x_hi = max(table["host_bytes"].max(), pts["host_bytes"].max() if not pts.empty else 0)
    ax.set_xlim(table["host_bytes"].min() / 1.25, x_hi * 1.25)
    ax.set_ylim(min(shown.min(), hb.min() / 256) / 1.6, max(shown.max(), hb.max() / 256) * 1.6)
    ax.set_xticks(sorted(set(hb) | set(pts["host_bytes"].astype(float))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    byte_ticks(ax, "y")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("host RAM (bytes, log scale)")
    ax.set_ylabel("bytes added to the kernel (modeled, log scale)")


def _title(f: pd.DataFrame) -> str:
    shape, other = f.attrs["set"], f.attrs["scan_set"]
    line = f"private set '{shape}': {SET_CAPTIONS.get(shape, shape)}"
    if other is not None:
        line += ("; the same set as the scan figure" if other == shape else
                 f"\n(the scan figure uses '{other}': {SET_CAPTIONS.get(other, other)})")
    return f"{TITLE}\n{line}"


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows."""
    fig, ax = plt.subplots(figsize=(11.5, 6.8))
    ends = _draw_lines(ax, f)
    pamt = f[f["layer"] == "pamt"]
    ax.plot(pamt["host_bytes"], pamt["added_bytes"], ":", color="0.45", lw=1.5,
            label="for scale: PAMT ≈ 1/256 of TDX memory\n(what TDX already costs)")
    extra = f[f["layer"] == "overlay"]
    notes = ([] if extra.empty else
             [MEMORY_OVERLAYS.get(kind, _overlay_points)(ax, g)
              for kind, g in extra.groupby(text_cells(extra["overlay"]), sort=False)])
    pts = f[f["layer"] == "sharded"]
    if not pts.empty:
        notes.append(draw_sharded_memory(ax, pts, f.attrs["set"]))
    _axes(ax, f)
    ax.set_title(_title(f), fontsize=10.5)
    draw_sparse_hosts(ax, f[f["layer"] == "sparse"])
    handles, labels = ax.get_legend_handles_labels()
    zero = list(dict.fromkeys(f.loc[f["layer"] == "zero", "tracker"]))
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
    fig.tight_layout(rect=(0, bottom, 0.83, 1))
    label_ends(ax, ends)
    caption(fig, "Modeled from kernel struct sizes (trackers/kernel.py, docs/kernel-facts.md); "
                 "estimate() of each tracker, no structure built; lines are named at their "
                 "right end (lines that overlap: the labels stack, each joined to the "
                 "end). kvm holds its attribute XArrays anyway; pageflags uses a bit of the "
                 "existing struct page. A line ending at a bar: the structure cannot hold "
                 "the set beyond that host (not representable). " + " ".join(notes))
    return fig


def figure(df: pd.DataFrame, scan_time: pd.DataFrame | None = None,
           sharded: pd.DataFrame | None = None):
    """Bytes each option adds to a running kernel vs host RAM, log-log (modeled);
    ``scan_time``, when given, names the scan figure's private set in the title;
    ``sharded`` (sharded.csv), when it has rows, draws each sharded build as a
    marker at its host size (:func:`draw_sharded_memory`)."""
    why = absent(TITLE, "memory_vs_host", df, ["tracker", "host_bytes", "added_bytes"])
    return why or draw(frame(df, scan_time, sharded))
