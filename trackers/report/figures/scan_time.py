"""Figure 3: the kexec-time scan against host size, measured (markers, the
engine that ran it in the legend) against the model (lines, bands: the
ASSUMED cost range), with modeled / measured below.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..format import fmt_bytes, fmt_load, fmt_seconds
from ..sharded import SCAN_LABEL
from .select import SET_CAPTIONS, THIS_MACHINE, has_columns, text_cells, typed
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
    "C layout": "C layout of struct pages / page tables\n(trackers/linux/pages.c, directmap.c)",
    "emulation": "Python/numba emulation\n(no @kernel twin)",
}


TITLE = "kexec-time scan vs host size: measured (markers) and modeled (lines) — lower is better"

#: the columns of :func:`frame`, one row per thing drawn, by ``layer``:
#:   model     a point of an option's modeled line: ``seconds``, band ``low_s``-``high_s``
#:   measured  a measured scan: median ``seconds``, ``low_s``-``high_s`` min-max,
#:             ``engine_kind``, ``extrapolated`` (its factor in ``factor``),
#:             ``model_ratio`` (modeled / measured)
#:   note      a point where the model lies outside 2x: ``note`` the caption's sentence
#:   sharded   a sharded build's measured scan (sum over shards, 1 CPU),
#:             ``kernel`` where the kernel's own code ran
#:   skipped   a point not built (model only)
COLUMNS = ["layer", "tracker", "host_bytes", "seconds", "low_s", "high_s", "engine_kind",
           "extrapolated", "factor", "model_ratio", "kernel", "note"]


def _engine_kind(t: pd.DataFrame) -> pd.Series:
    if "engine_kind" in t:
        return text_cells(t["engine_kind"]).replace("", "none")
    return pd.Series("emulation", index=t.index)       # reports before the engine column


# --------------------------------------------------------------------------
# the data

def _column(t: pd.DataFrame, name: str, default=math.nan):
    return t[name] if name in t else default


def _model_rows(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"layer": "model", "tracker": t["tracker"], "host_bytes": t["host_bytes"],
                         "seconds": t["scan_modeled_s"],
                         "low_s": _column(t, "scan_modeled_low_s"),
                         "high_s": _column(t, "scan_modeled_high_s")})


def _measured_rows(t: pd.DataFrame) -> pd.DataFrame:
    m = t.dropna(subset=["scan_measured_s"])
    m = m[m["scan_measured_s"] > 0]
    extrapolated = (m["scan_extrapolated"].eq(True) if "scan_extrapolated" in m
                    else pd.Series(False, index=m.index))
    factor = (m["host_pfns"] / m["scan_measured_pfns"] if has_columns(m, "host_pfns",
                                                                      "scan_measured_pfns")
              else math.nan)
    return pd.DataFrame({"layer": "measured", "tracker": m["tracker"],
                         "host_bytes": m["host_bytes"], "seconds": m["scan_measured_s"],
                         "low_s": _column(m, "scan_measured_min_s"),
                         "high_s": _column(m, "scan_measured_max_s"),
                         "engine_kind": _engine_kind(m), "extrapolated": extrapolated,
                         "factor": factor, "model_ratio": _column(m, "model_ratio")})


def _note_rows(p: pd.DataFrame, reasons: dict[str, str]) -> list[dict]:
    """The points where the model lies outside 2x, numbered in drawing order;
    each distinct reason gets a letter in ``reasons`` (reason -> letter)."""
    rows = []
    if "model_note" not in p:
        return rows
    for name in ordered(p["tracker"]):
        t = p[p["tracker"] == name].sort_values("host_bytes")
        for r in t[text_cells(t["model_note"]) != ""].itertuples():
            head, *why = str(r.model_note).split("; ")
            marks = "".join(f"({reasons.setdefault(w, chr(97 + len(reasons)))})" for w in why)
            rows.append({"layer": "note", "tracker": name, "host_bytes": r.host_bytes,
                         "seconds": r.scan_measured_s,
                         "note": f"[{len(rows) + 1}] {name} at {fmt_bytes(r.host_bytes)}: "
                                 f"{head}" + (f" {marks}" if marks else "") + "."})
    return rows


def _sharded_rows(pts: pd.DataFrame) -> pd.DataFrame:
    spread = has_columns(pts, "scan_extents_measured_min_s", "scan_extents_measured_max_s")
    return pd.DataFrame({"layer": "sharded", "tracker": pts["option"],
                         "host_bytes": pts["host_bytes"].astype(float),
                         "seconds": pts["scan_extents_measured_s"],
                         "low_s": pts["scan_extents_measured_min_s"] if spread else math.nan,
                         "high_s": pts["scan_extents_measured_max_s"] if spread else math.nan,
                         "kernel": is_kernel_code(pts)})


def frame(df: pd.DataFrame, platform: str | None = None,
          sharded: pd.DataFrame | None = None) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`) on one platform (default:
    this machine, where the scans were measured).  ``attrs``: ``platform``,
    ``platform_kind``, ``cpus``, ``set``, ``machine``, ``engines`` (that
    measured), ``load`` (how busy the machine was while they were timed,
    format.fmt_load; "" unmeasured), ``reasons`` (why points lie outside 2x
    -> their letter),
    ``sharded`` (the caption's sentence on the sharded builds, "" without)."""
    d = df.dropna(subset=["scan_modeled_s"])
    plats = list(dict.fromkeys(d["platform"]))
    platform = platform or (THIS_MACHINE if THIS_MACHINE in plats else plats[0])
    p = d[d["platform"] == platform]
    parts = []
    for name in ordered(p["tracker"]):
        t = p[p["tracker"] == name].sort_values("host_bytes")
        parts += [_model_rows(t), _measured_rows(t)]
    reasons: dict[str, str] = {}
    parts.append(pd.DataFrame(_note_rows(p, reasons), columns=COLUMNS))
    if "skipped" in p:
        sk = p[text_cells(p["skipped"]) != ""]
        parts.append(pd.DataFrame({"layer": "skipped", "tracker": sk["tracker"],
                                   "host_bytes": sk["host_bytes"]}))
    pts = sharded_points(sharded, "scan_extents_measured_s")
    text = ""
    if not pts.empty:
        parts.append(_sharded_rows(pts))
        runs = pts["runs"].dropna() if "runs" in pts else pd.Series(dtype=float)
        text = (sharded_caption(pts) + "; bars min-max over "
                + (f"{int(runs.max())} run(s)" if not runs.empty else "the runs bench-core made"))
    out = typed(pd.concat([x.reindex(columns=COLUMNS) for x in parts if len(x)],
                          ignore_index=True),
                ["host_bytes", "seconds", "low_s", "high_s", "factor", "model_ratio"],
                ["extrapolated", "kernel"])
    out.attrs = {
        "platform": platform, "platform_kind": p["platform_kind"].iloc[0],
        "cpus": int(p["platform_cpus"].iloc[0]) if "platform_cpus" in p else 1,
        "set": p["set"].iloc[0], "machine": p["machine"].iloc[0] if "machine" in p
        else "this machine",
        "engines": sorted(set(p.loc[p["scan_runs"].fillna(0) > 0, "engine"]) if "engine" in p
                          else set()),
        "load": fmt_load(_column(p, "others_cpu_share", ()), _column(p, "load_1min", ())),
        "reasons": reasons, "sharded": text}
    return out


# --------------------------------------------------------------------------
# the drawing

def _draw_measured(ax, rax, m: pd.DataFrame, c) -> None:
    """One option's measured scans: a marker per engine kind, hollow where
    extrapolated, bars min-max; modeled / measured below."""
    for ek, g in m.groupby("engine_kind"):
        style = ENGINE_STYLE.get(ek, ENGINE_STYLE["emulation"])
        spread = g["low_s"].notna().any()
        for filled, h in ((True, g[~g["extrapolated"]]),
                          (False, g[g["extrapolated"]])):
            if h.empty:
                continue
            err = ([h["seconds"] - h["low_s"], h["high_s"] - h["seconds"]] if spread
                   else None)
            ax.errorbar(h["host_bytes"], h["seconds"], yerr=err, fmt=style["marker"],
                        ms=style["ms"], color=c, mfc=c if filled else "white", mew=1.5,
                        alpha=style["alpha"], capsize=3, elinewidth=1.2)
            if rax is not None:
                rax.plot(h["host_bytes"], h["model_ratio"], style["marker"], color=c,
                         ms=style["ms"] - 1, mfc=c if filled else "white", mew=1.2,
                         alpha=style["alpha"])
        for r in g[g["extrapolated"]].itertuples():
            ax.annotate(f"extrapolated ×{r.factor:.3g}", (r.host_bytes, r.seconds),
                        xytext=(-9, -12), textcoords="offset points", fontsize=7, color=c,
                        ha="right")


def _draw_option(ax, rax, t: pd.DataFrame) -> None:
    """One option: its modeled line and band, its measurements, its notes' numbers."""
    name = t["tracker"].iloc[0]
    c = color_for(name)
    model = t[t["layer"] == "model"]
    ax.plot(model["host_bytes"], model["seconds"], ls=style_for(name)["ls"], color=c, lw=1.8,
            label=name)
    if model["low_s"].notna().any():
        ax.fill_between(model["host_bytes"], model["low_s"], model["high_s"], color=c,
                        alpha=0.06, lw=0)
    _draw_measured(ax, rax, t[t["layer"] == "measured"], c)
    for r in t[t["layer"] == "note"].itertuples():
        ax.annotate(r.note.split(" ", 1)[0], (r.host_bytes, r.seconds), xytext=(-14, 6),
                    textcoords="offset points", fontsize=7.5, color=c, fontweight="bold")


def _draw_sharded(ax, pts: pd.DataFrame) -> None:
    for r in pts.itertuples():
        c = color_for(r.tracker)
        err = (None if pd.isna(r.low_s) else
               [[r.seconds - r.low_s], [r.high_s - r.seconds]])
        ax.errorbar([r.host_bytes], [r.seconds], yerr=err, fmt="h", color=c, mec=c,
                    mfc=c if r.kernel else "white", capsize=3, elinewidth=1.2,
                    ms=SHARDED_MARKER["ms"], mew=SHARDED_MARKER["mew"], zorder=6)


def _ratio_axis(rax, ratios: pd.Series) -> None:
    """modeled / measured on a log axis, the grey band within 2x."""
    rax.axhspan(0.5, 2.0, color="0.85", alpha=0.5, lw=0)
    rax.axhline(1.0, color="0.4", lw=1)
    rax.set_yscale("log")
    lo = min(0.25, float(ratios.min()) / 1.3)
    hi = max(4.0, float(ratios.max()) * 1.3)
    rax.set_ylim(lo, hi)
    rax.set_yticks([t for t in (0.25, 0.5, 1, 2, 4, 8, 16) if lo <= t <= hi])
    rax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
    rax.yaxis.set_minor_formatter(NullFormatter())
    rax.grid(True, which="major", alpha=0.3)
    rax.set_ylabel("modeled / measured\n(grey: within 2×)", fontsize=9)


def _legend(ax, f: pd.DataFrame) -> None:
    a = f.attrs
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="none"))
    labels.append("")
    measured = f[f["layer"] == "measured"]
    for ek in ("kernel code", "C layout", "emulation"):
        if (measured["engine_kind"] == ek).any():
            st = ENGINE_STYLE[ek]
            handles.append(Line2D([], [], marker=st["marker"], ls="none", color="0.3",
                                  ms=st["ms"], alpha=st["alpha"]))
            labels.append("measured: " + ENGINE_LEGEND[ek])
    if measured["extrapolated"].any():
        handles.append(Line2D([], [], marker="o", ls="none", color="0.3", mfc="white"))
        labels.append("hollow: extrapolated past\nthe memory budget")
    if (f["layer"] == "sharded").any():
        handles.append(Line2D([], [], ls="none", color="0.3", mfc="0.3", **SHARDED_MARKER))
        labels.append(f"{SCAN_LABEL}:\nfilled kernel code, hollow emulation")
    handles.append(Line2D([], [], ls="-", color="0.3"))
    labels.append(f"modeled on {a['platform']} [{a['platform_kind']}],\n{a['cpus']} CPU"
                  + ("s" if a["cpus"] > 1 else "")
                  + "; band: cost range\n(measured min-max or ASSUMED)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5,
              frameon=False)


def _caption_text(f: pd.DataFrame) -> str:
    a = f.attrs
    notes = list(f.loc[f["layer"] == "note", "note"])
    text = (f"Measured on {a['machine']}: median of the repeats, bars min-max; engines: "
            + "; ".join(a["engines"]) + ". Each point timed with no other step of the report "
            "running" + (f"; {a['load']}" if a["load"] else "") + ". Modeled = call + "
            "max(scanned bytes / read rate, entries × entry + runs × run + lookups × lookup) + "
            "node loads × load latency (trackers/kexec/platform.py; on this-machine each "
            "option's own structure's costs, measured by `tdx-trackers calibrate`, where it "
            "measured them -- for the direct map's scattered split page tables a table page's "
            "cost in place of the latency -- else the median over the structures: "
            "scan_time.csv `scan_costs`; ASSUMED on the presets, trackers/kernel.py, no call "
            "cost). Within 2× of the measurement except where noted: "
            + (" ".join(notes) if notes else "none.")
            + "".join(f" ({k}) {w}." for w, k in a["reasons"].items()))
    skipped = f[f["layer"] == "skipped"]
    if not skipped.empty:
        text += (" Not built (model only; see scan_time.csv): " + ", ".join(
            f"{r.tracker} at {fmt_bytes(r.host_bytes)}" for r in skipped.itertuples()) + ".")
    if a["sharded"]:
        text += (f" Hexagons: {SCAN_LABEL}, the extents scan of sharded builds {a['sharded']}"
                 "; no model line there (the lines model whole builds).")
    return text


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: scans against host size, and
    modeled / measured below where any point has both."""
    ratios = f.loc[f["layer"] == "measured", "model_ratio"].dropna()
    if ratios.empty:
        fig, ax = plt.subplots(figsize=(11, 7.4))
        rax = None
    else:                       # below: modeled / measured, against the 2x band
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(11, 9.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3.2, 1]})
    options = f[f["layer"].isin(["model", "measured", "note"])]
    for name in dict.fromkeys(options["tracker"]):
        _draw_option(ax, rax, options[options["tracker"] == name])
    pts = f[f["layer"] == "sharded"]
    _draw_sharded(ax, pts)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(set(f.loc[f["layer"].isin(["model", "sharded"]), "host_bytes"])))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_seconds(x)))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylabel("time to scan every private page (s, log scale)")
    if rax is not None:
        _ratio_axis(rax, ratios)
    (rax or ax).set_xlabel("host RAM (bytes, log scale)")
    shape = f.attrs["set"]
    ax.set_title(f"{TITLE}\nset: {SET_CAPTIONS.get(shape, shape)}", fontsize=11)
    _legend(ax, f)
    text = _caption_text(f)
    caption(fig, text)
    lines = 1 + len(text) // 180               # caption lines at 8 pt, ~0.14 in each
    fig.tight_layout(rect=(0, min((0.25 + 0.14 * lines) / fig.get_figheight(), 0.45), 1, 1))
    return fig


def figure(df: pd.DataFrame, platform: str | None = None,
           sharded: pd.DataFrame | None = None):
    """Measured kexec-time scans (markers, min-max bars) against the model
    (lines); ``sharded`` (sharded.csv), when it has rows, adds each sharded
    build's measured scan, the sum over its shards (one CPU), as a hexagon."""
    if df is None or df.empty or "scan_modeled_s" not in df or \
            df["scan_modeled_s"].isna().all():
        return empty_figure(TITLE, "no scan_time data")
    return draw(frame(df, platform, sharded))
