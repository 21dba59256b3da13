"""Figure 3: the kexec-time scan against host size, measured (markers, the
engine that ran it in the legend) against the model (lines, bands: the
ASSUMED cost range), with modeled / measured below.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..format import fmt_bytes, fmt_seconds
from ..sharded import SCAN_LABEL
from .select import SET_CAPTIONS, has_columns, text_cells
from .sharded_points import SHARDED_MARKER, is_kernel_code, sharded_caption, sharded_points
from .style import caption, color_for, empty_figure, ordered, style_for


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


def _engine_kind(t: pd.DataFrame) -> pd.Series:
    if "engine_kind" in t:
        return text_cells(t["engine_kind"]).replace("", "none")
    return pd.Series("emulation", index=t.index)       # reports before the engine column


def figure(df: pd.DataFrame, platform: str | None = None,
              sharded: pd.DataFrame | None = None):
    """Measured kexec-time scans (markers, min-max bars) against the model
    (lines); ``sharded`` (sharded.csv), when it has rows, adds each sharded
    build's measured scan, the sum over its shards (one CPU), as a hexagon."""
    title = "kexec-time scan vs host size: measured (markers) and modeled (lines) — lower is better"
    if df is None or df.empty or "scan_modeled_s" not in df:
        return empty_figure(title, "no scan_time data")
    d = df.dropna(subset=["scan_modeled_s"])
    if d.empty:
        return empty_figure(title, "no scan_time data")
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
        if has_columns(t, "scan_modeled_low_s", "scan_modeled_high_s"):
            ax.fill_between(t["host_bytes"], t["scan_modeled_low_s"], t["scan_modeled_high_s"],
                            color=c, alpha=0.06, lw=0)
        m = t.dropna(subset=["scan_measured_s"])
        m = m[m["scan_measured_s"] > 0]
        for ek, g in m.groupby(_engine_kind(m)):
            style = ENGINE_STYLE.get(ek, ENGINE_STYLE["emulation"])
            kinds_drawn.add(ek)
            err = None
            if has_columns(g, "scan_measured_min_s", "scan_measured_max_s"):   # spread of the repeats
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
            for r in t[text_cells(t["model_note"]) != ""].itertuples():
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
    for r, k in zip(pts.itertuples(), is_kernel_code(pts)):
        c = color_for(r.option)
        err = None
        if has_columns(pts, "scan_extents_measured_min_s", "scan_extents_measured_max_s"):
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
        sk = p[text_cells(p["skipped"]) != ""]
        if not sk.empty:
            text += (" Not built (model only; see scan_time.csv): " + ", ".join(
                f"{r.tracker} at {fmt_bytes(r.host_bytes)}" for r in sk.itertuples()) + ".")
    if not pts.empty:
        runs = pts["runs"].dropna() if "runs" in pts else pd.Series(dtype=float)
        text += (f" Hexagons: {SCAN_LABEL}, the extents scan of sharded builds "
                 + sharded_caption(pts) + "; bars min-max over "
                 + (f"{int(runs.max())} run(s)" if not runs.empty else "the runs bench-core made")
                 + "; no model line there (the lines model whole builds).")
    caption(fig, text)
    lines = 1 + len(text) // 180               # caption lines at 8 pt, ~0.14 in each
    fig.tight_layout(rect=(0, min((0.25 + 0.14 * lines) / fig.get_figheight(), 0.45), 1, 1))
    return fig
