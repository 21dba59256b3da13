"""The design-review figures, each from one report table (a DataFrame or its CSV).

Every function takes the table ``collect`` wrote and returns a matplotlib
Figure; the CLI saves it as PNG and SVG and the notebook calls the same
functions on the CSVs it loads.  Conventions:

* modeled numbers are drawn as lines, measured numbers as markers alone,
  and every title and legend entry says which it is;
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

def scan_time(df: pd.DataFrame, platform: str | None = None):
    """Measured emulation scans (markers) and the modeled kernel scan (lines)."""
    title = "kexec-time scan vs host size: measured emulation (markers) and modeled kernel (lines)"
    if df is None or df.empty or "scan_measured_s" not in df:
        return _empty(title, "no scan_time data")
    d = df.dropna(subset=["scan_measured_s"])
    plats = list(dict.fromkeys(d["platform"]))
    platform = platform or ("this-machine" if "this-machine" in plats else plats[0])
    kind = d.loc[d["platform"] == platform, "platform_kind"].iloc[0]
    cpus = (int(d.loc[d["platform"] == platform, "platform_cpus"].iloc[0])
            if "platform_cpus" in d else 1)
    fig, ax = plt.subplots(figsize=(10, 6.2))
    for name in ordered(d["tracker"]):
        t = d[(d["tracker"] == name) & (d["platform"] == platform)].sort_values("host_bytes")
        c = color_for(name)
        if "scan_measured_min_s" in t:                   # spread over the repeats
            err = [t["scan_measured_s"] - t["scan_measured_min_s"],
                   t["scan_measured_max_s"] - t["scan_measured_s"]]
        else:
            err = None
        ax.errorbar(t["host_bytes"], t["scan_measured_s"], yerr=err, fmt="o", color=c,
                    ms=7, capsize=3, label=name)
        m = t[t["scan_modeled_s"] > 0]
        ax.plot(m["host_bytes"], m["scan_modeled_s"], "-", color=c, lw=1.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    hb = sorted(d["host_bytes"].unique())
    ax.set_xticks(hb)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_seconds(x)))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("host RAM (bytes, log scale)")
    ax.set_ylabel("time to scan every private page (s, log scale)")
    shape = d["set"].iloc[0]
    ax.set_title(f"{title}\nset: {SET_CAPTIONS.get(shape, shape)}", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], ls="none"),
                Line2D([], [], marker="o", ls="none", color="0.3"),
                Line2D([], [], ls="-", color="0.3")]
    labels += ["", "measured: extents() of the\nPython/numba emulation,\nthis machine "
                   "(median, bars\nmin-max of the repeats)",
               f"modeled: kernel scan on\n{platform} [{kind}], {cpus} CPU"
               + ("s" if cpus > 1 else "")]
    ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9,
              frameon=False)
    note = ""
    if "skipped" in df:
        sk = df.dropna(subset=["skipped"]).drop_duplicates(["tracker", "host_bytes"])
        if not sk.empty:
            note = " Not built (over the run's time or memory budget, see scan_time.csv): " + \
                ", ".join(f"{r.tracker} at {fmt_bytes(r.host_bytes)}" for r in sk.itertuples()) + "."
    _caption(fig, "Modeled scan = scanned bytes / streaming-read rate + one dependent load per "
                  "tree node × load latency (trackers/kexec/platform.py). Measured = median "
                  "extents() scan of the built emulation; it is not a kernel time." + note)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
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
        "The kexec-time scan: measured emulation scans (markers, min-max bars) beside "
        "the modeled kernel scan (lines)."),
    "kexec_downtime": FigureSpec(
        kexec_downtime, "kexec",
        "Modeled kexec downtime per strategy, scan and clear stacked, one panel per "
        "platform preset."),
    "missed_pages": FigureSpec(
        missed_pages, "race",
        "Private pages a kexec misses as private->shared conversions speed up."),
}
