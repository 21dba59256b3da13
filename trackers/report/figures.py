"""The design-review figures, each from one report table (a DataFrame or its CSV).

Every function takes the table ``collect`` wrote and returns a matplotlib
Figure; the CLI saves it as PNG and SVG and the notebook calls the same
functions on the CSVs it loads.  Conventions:

* modeled numbers are drawn as lines, measured numbers as markers alone
  (with min-max bars; the engine that produced them in the legend), and
  every title and legend entry says which it is;
* sizes are bytes on log axes labelled in GiB/TiB; times are seconds;
* one colour per tracker or strategy, the same in every figure.
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

from ..kexec import STRATEGIES

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
    return f"{x * 1e6:.0f} µs"


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


def _empty(title: str, why: str):
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, wrap=True)
    return fig


# --------------------------------------------------------------------------
# 1. memory added vs host size

def memory_vs_host(df: pd.DataFrame):
    """Bytes each option adds to a running kernel vs host RAM, log-log (modeled)."""
    title = "Memory each option adds to a running kernel (modeled) — lower is better"
    if df is None or df.empty:
        return _empty(title, "no memory_vs_host data")
    df, sparse = split_sparse_hosts(df)
    fig, ax = plt.subplots(figsize=(10, 6.2))
    zero = []
    for name in ordered(df["tracker"]):
        d = df[df["tracker"] == name].sort_values("host_bytes")
        if (d["added_bytes"] <= 0).all():
            zero.append(name)
            continue
        ax.plot(d["host_bytes"], d["added_bytes"], "-o", color=color_for(name), lw=2, ms=5,
                label=name)
        _mark_not_representable(ax, d, color_for(name))
    hb = np.array(sorted(df["host_bytes"].unique()), float)
    ax.plot(hb, hb / 256, ":", color="0.45", lw=1.5,
            label="for scale: PAMT ≈ 1/256 of TDX memory\n(what TDX already costs)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(hb)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    _thin_byte_ticks(ax, "y")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("host RAM (bytes, log scale)")
    ax.set_ylabel("bytes added to the kernel (modeled, log scale)")
    shape = df["set"].iloc[0] if "set" in df else ""
    ax.set_title(title + "\nprivate set: " + SET_CAPTIONS.get(shape, shape), fontsize=11)
    draw_sparse_hosts(ax, sparse)
    handles, labels = ax.get_legend_handles_labels()
    if zero:
        handles.append(Line2D([], [], ls="none"))
        labels.append("add 0 B (not on a log axis):\n  " + ", ".join(zero))
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9,
              title="line = modeled", title_fontsize=9, frameon=False)
    _caption(fig, "Modeled from kernel struct sizes (trackers/kernel.py, docs/kernel-facts.md); "
                  "estimate() of each tracker, no structure built. kvm holds its attribute "
                  "XArrays anyway; pageflags uses a bit of the existing struct page. A line "
                  "ending at a bar: the structure cannot hold the set beyond that host "
                  "(not representable).")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def split_sparse_hosts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the dense sweep, the rows of hosts whose max_pfn far exceeds their RAM:
    ``host_kind == "sparse"``, collect.sparse_host_rows)."""
    if "host_kind" not in df:
        return df, df.iloc[:0]
    mask = df["host_kind"].astype(str) == "sparse"
    return df[~mask], df[mask]


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
    if "not_representable" not in d:
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

def bits_per_page(df: pd.DataFrame):
    """Modeled bits per private page vs private fraction, with information bounds."""
    title = "Bits per private page vs private fraction (modeled) — lower is better"
    if df is None or df.empty:
        return _empty(title, "no bits_per_page data")
    fig, ax = plt.subplots(figsize=(10, 6.2))
    for name in ordered(df["tracker"]):
        d = df[df["tracker"] == name].sort_values("private_fraction")
        d = d[d["bits_per_private_page"] > 0]
        if d.empty:
            continue
        ax.plot(d["private_fraction"], d["bits_per_private_page"], "-o", color=color_for(name),
                lw=2, ms=4, label=name)
    b = df.drop_duplicates("private_fraction").sort_values("private_fraction")
    ax.plot(b["private_fraction"], b["bound_bits_per_page"], "-", color="black", lw=3,
            label="bound: log2 C(N, n) / n\n(any structure, any set of n pages)")
    ax.plot(b["private_fraction"], b["run_bound_bits_per_page"], "--", color="black", lw=2,
            label="bound: log2 C(N+1, 2r) / n\n(any set of r runs, as these are)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:g} %"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("private fraction of host pages (n / N, log scale)")
    ax.set_ylabel("bits per private page (modeled, log scale)")
    host = df["host"].iloc[0] if "host" in df else ""
    ax.set_title(f"{title}\n{host} host; set: 6/7 of the private pages in random 2 MiB "
                 "extents, 1/7 scattered 4 KiB pages", fontsize=11)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False,
              title="line = modeled", title_fontsize=9)
    _caption(fig, "Bounds: Raman, Raman, Rao (SODA 2002), computed with math.lgamma. A "
                  "structure may beat log2 C(N, n) only because the set is clustered; "
                  "log2 C(N+1, 2r) bounds a set known to have r runs. kvm: KVM's own "
                  "attribute XArrays (held anyway, added 0 B).")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
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


def scan_time(df: pd.DataFrame, platform: str | None = None):
    """Measured kexec-time scans (markers, min-max bars) against the model (lines)."""
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
        ax.plot(t["host_bytes"], t["scan_modeled_s"], "-", color=c, lw=1.8, label=name)
        if "scan_modeled_low_s" in t:
            ax.fill_between(t["host_bytes"], t["scan_modeled_low_s"], t["scan_modeled_high_s"],
                            color=c, alpha=0.06, lw=0)
        m = t.dropna(subset=["scan_measured_s"])
        m = m[m["scan_measured_s"] > 0]
        for ek, g in m.groupby(_engine_kind(m)):
            style = ENGINE_STYLE.get(ek, ENGINE_STYLE["emulation"])
            kinds_drawn.add(ek)
            err = None
            if "scan_measured_min_s" in g:                   # spread over the repeats
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
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    hb = sorted(p["host_bytes"].unique())
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
    _caption(fig, text)
    lines = 1 + len(text) // 180               # caption lines at 8 pt, ~0.14 in each
    fig.tight_layout(rect=(0, min((0.25 + 0.14 * lines) / fig.get_figheight(), 0.45), 1, 1))
    return fig


# --------------------------------------------------------------------------
# 4. kexec downtime per strategy, per platform

def _downtime_panel(ax, p: pd.DataFrame, strategies: list[str]):
    """Stacked scan + clear bars; the axis unit (ms, s, min) follows the longest bar."""
    p = p.set_index("strategy").reindex(strategies)
    y = np.arange(len(strategies))
    allowed = p["kexec_allowed"].astype(bool).to_numpy()
    scan = np.where(allowed, p["scan_s"].fillna(0).to_numpy(float), 0)
    clear = np.where(allowed, p["clear_s"].fillna(0).to_numpy(float), 0)
    longest = float(np.nanmax(scan + clear)) if len(y) else 0.0
    unit, uname = ((60.0, "min") if longest >= 120 else (1.0, "s") if longest >= 1
                   else (1e-3, "ms"))
    xmax = longest / unit if longest > 0 else 1.0
    ax.barh(y, scan / unit, color="#4c72b0", label="scan: find the private pages")
    ax.barh(y, clear / unit, left=scan / unit, color="#dd8452",
            label="clear: reset them (MOVDIR64B stand-in)")
    for i, name in enumerate(strategies):
        if not allowed[i]:
            ax.text(xmax * 0.01, i, "kexec refused (no downtime modeled)", va="center",
                    fontsize=8, color="0.35", style="italic")
            continue
        total = scan[i] + clear[i]
        txt = f"{fmt_seconds(total)}  (scan {fmt_seconds(scan[i])})"
        missed = p["pages_missed"].iloc[i]
        if missed and missed > 0:
            txt += f"  MISSES {int(missed):,} pages"
        ax.text(total / unit + xmax * 0.01, i, txt, va="center", fontsize=7.5,
                color="firebrick" if missed and missed > 0 else "black")
    ax.set_yticks(y)
    ax.set_yticklabels(strategies)
    ax.set_ylim(len(strategies) - 0.5, -0.5)
    ax.set_xlim(0, xmax * 1.75)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel(f"modeled downtime at kexec ({uname})")
    ax.grid(True, axis="x", alpha=0.3)


def _cpus(row) -> str:
    n = row.get("platform_cpus", 1)
    n = 1 if pd.isna(n) else int(n)
    return f"{n} CPU" + ("s" if n > 1 else "")


def kexec_downtime(df: pd.DataFrame, scenarios: list[str] | None = None):
    """Modeled kexec downtime: scan and clear stacked; rows scenarios, columns platforms."""
    title = "kexec downtime per strategy (modeled): scan + clear stacked — lower is better"
    if df is None or df.empty:
        return _empty(title, "no kexec rows in this run")
    scenarios = scenarios or list(dict.fromkeys(df["scenario"]))[:2]
    d = df[df["scenario"].isin(scenarios)]
    plats = list(dict.fromkeys(d["platform_name"]))
    strategies = ordered(d["strategy"])
    h = 0.34 * len(strategies) + 1.4
    fig, axes = plt.subplots(len(scenarios), len(plats), figsize=(7.2 * len(plats),
                             h * len(scenarios) + 1.6), squeeze=False)
    for r, sc in enumerate(scenarios):
        for c, pname in enumerate(plats):
            ax = axes[r][c]
            p = d[(d["scenario"] == sc) & (d["platform_name"] == pname)]
            if p.empty:
                ax.set_axis_off()
                continue
            _downtime_panel(ax, p, strategies)
            first = p.iloc[0]
            ax.set_title(f"{sc}: {fmt_bytes(first['ram_pages'] * 4096)} RAM, "
                         f"{fmt_bytes(first['private_pages'] * 4096)} private\n"
                         f"platform {pname} [{first['platform_kind']}], "
                         f"{_cpus(first)} at reset",
                         fontsize=9.5)
            if c > 0:
                ax.set_yticklabels([])
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.985 - 0.3 / fig.get_figheight()),
               ncol=2, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=11.5)
    _caption(fig, "Modeled with trackers/kexec: scan = scanned bytes / read rate + node loads × "
                  "latency; clear = pages reset × 4 KiB / clear rate. Platform kinds: measured "
                  "(calibrate), estimate (docs/kernel-facts.md), fallback (PERF-NOTES).")
    fig.tight_layout(rect=(0, 0.035, 1, 1 - 0.75 / fig.get_figheight()))
    return fig


# --------------------------------------------------------------------------
# 5. missed pages vs conversion rate

def missed_pages(df: pd.DataFrame, platform: str | None = None):
    """Pages a kexec misses vs the private->shared conversion rate (modeled)."""
    title = "Private pages missed per kexec vs conversion rate (modeled) — lower is better"
    if df is None or df.empty:
        return _empty(title, "no race rows in this run")
    plats = list(dict.fromkeys(df["platform_name"]))
    platform = platform or ("spr-2s" if "spr-2s" in plats else plats[0])
    d = df[df["platform_name"] == platform]
    kinds = list(dict.fromkeys(d["kexec"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.4 * len(kinds) + 2.4, 5.6),
                             sharey=True, squeeze=False)
    zero, refused = set(), set()
    for ax, kind in zip(axes[0], kinds):
        k = d[d["kexec"] == kind]
        for name in ordered(k["strategy"]):
            s = k[k["strategy"] == name].sort_values("rate_mib_s")
            if not s["kexec_allowed"].astype(bool).any():
                refused.add(name)
                continue
            if (s["missed_mean"] <= 0).all() and (s["missed_expected"] <= 0).all():
                zero.add(name)
                continue
            c = color_for(name)
            ax.plot(s["rate_mib_s"], s["missed_expected"], "-", color=c, lw=2, label=name)
            m = s[s["missed_mean"] > 0]
            ax.plot(m["rate_mib_s"], m["missed_mean"], "o", color=c, ms=5)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("private→shared conversion rate (MiB/s, log scale)")
        what = ("crash kexec (kdump: NMIs freeze every step)" if kind == "crash"
                else "normal kexec (running steps finish first)")
        ax.set_title(what, fontsize=10)
    axes[0][0].set_ylabel("private pages not reset, per kexec (log scale)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            if l_ not in labels:
                handles.append(h_)
                labels.append(l_)
    handles += [Line2D([], [], ls="-", color="0.3"), Line2D([], [], marker="o", ls="none",
                                                             color="0.3")]
    labels += ["modeled: expected (Little's law)", "modeled: simulated mean"]
    if zero:
        handles.append(Line2D([], [], ls="none"))
        labels.append("miss 0 pages:\n  " + "\n  ".join(ordered(zero)))
    if refused:
        handles.append(Line2D([], [], ls="none"))
        labels.append("refuse kexec (nothing to miss):\n  " + "\n  ".join(ordered(refused)))
    fig.legend(handles, labels, loc="center right", fontsize=8.5, frameon=False)
    kindp = d["platform_kind"].iloc[0] if "platform_kind" in d else ""
    fig.suptitle(f"{title}\nplatform {platform} [{kindp}]; conversions in 2 MiB MapGPA chunks",
                 fontsize=11)
    _caption(fig, "trackers/kexec/race.py: a page between KVM's attribute update and its "
                  "removal is still TDX-private; strategies that read KVM's attributes miss it.")
    fig.tight_layout(rect=(0, 0.04, 0.83, 1))
    return fig


@dataclass(frozen=True)
class FigureSpec:
    """One design-review figure: what draws it, from which table, and the
    sentence summary.md puts under it."""

    draw: Callable[[pd.DataFrame], plt.Figure]
    table: str
    caption: str


#: every figure of the report, in the order summary.md shows them
FIGURES: dict[str, FigureSpec] = {
    "memory_vs_host": FigureSpec(
        memory_vs_host, "memory_vs_host",
        "Memory each option adds to a running kernel as the host grows "
        "(modeled, log-log; lower is better)."),
    "bits_per_page": FigureSpec(
        bits_per_page, "bits_per_page",
        "Bits per private page as the private fraction grows, against the "
        "information bounds (modeled)."),
    "scan_time": FigureSpec(
        scan_time, "scan_time",
        "The kexec-time scan: measured scans (markers: median, bars min-max; the "
        "kernel's own code wherever a tracker has a @kernel twin, the C layouts of "
        "struct pages and page tables for pageflags and pte-softbit, the emulation "
        "only where neither exists) against the model (lines, band: the ASSUMED "
        "per-entry, per-run and per-lookup cost range); the caption names every point "
        "where the model lies outside 2x and why."),
    "kexec_downtime": FigureSpec(
        kexec_downtime, "kexec",
        "Modeled kexec downtime per strategy, scan and clear stacked, one panel per "
        "platform preset."),
    "missed_pages": FigureSpec(
        missed_pages, "race",
        "Private pages a kexec misses as private->shared conversions speed up."),
}
