"""Figure 7: P(a kexec misses >= 1 private page) against the private->shared
conversion rate (modeled, simulated), per kexec kind where they differ.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from .select import is_true, platform_order, text_cells, typed
from .style import absent, caption, color_for, empty_figure, ordered, style_for


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


TITLE = "P(a kexec misses ≥ 1 private page) vs conversion rate (modeled) — lower is better"

#: the columns of :func:`frame`: one row per (kexec kind shown, option,
#: conversion rate) at the base SEAMCALL costs; ``status`` is "drawn",
#: "never" (no simulated kexec missed a page) or "refused" (kexec refused);
#: ``p_low``/``p_high`` its 95 % interval, ``band_low``/``band_high`` P at the
#: low and high SEAMCALL-cost assumptions (NaN where the table lacks them)
COLUMNS = ["kexec", "strategy", "status", "rate_mib_s", "p", "p_low", "p_high", "band_low",
           "band_high"]


# --------------------------------------------------------------------------
# the data

def _p_column(df) -> str | None:
    """The race table's P(miss) column (``p_missed`` in reports before p_miss)."""
    return "p_miss" if "p_miss" in df else "p_missed" if "p_missed" in df else None


def _levels(d: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows at each SEAMCALL-cost assumption (all "base" in a table without them)."""
    level = (text_cells(d["seamcall_cost"]).replace("", "base") if "seamcall_cost" in d
             else pd.Series("base", index=d.index))
    return {lv: d[level == lv] for lv in SEAMCALL_LEVELS}


def _status(s: pd.DataFrame, col: str) -> str:
    if not s["kexec_allowed"].map(is_true).any():
        return "refused"
    return "never" if (s[col].fillna(0) <= 0).all() else "drawn"


def _option_rows(s: pd.DataFrame, band: list[pd.DataFrame], col: str, has_ci: bool):
    """One option's rows on one kexec kind: P, its interval and the band."""
    out = pd.DataFrame({"kexec": s["kexec"], "strategy": s["strategy"], "status": _status(s, col),
                        "rate_mib_s": s["rate_mib_s"], "p": s[col],
                        "p_low": s[f"{col}_low"] if has_ci else np.nan,
                        "p_high": s[f"{col}_high"] if has_ci else np.nan}, columns=COLUMNS[:7])
    if all(len(b) for b in band):
        j = band[0][["rate_mib_s", col]].merge(band[1][["rate_mib_s", col]], on="rate_mib_s")
        j["band_low"] = np.minimum(j[f"{col}_x"], j[f"{col}_y"])
        j["band_high"] = np.maximum(j[f"{col}_x"], j[f"{col}_y"])
        out = out.merge(j[["rate_mib_s", "band_low", "band_high"]], on="rate_mib_s", how="left")
    return out.reindex(columns=COLUMNS)


def frame(df: pd.DataFrame, platform: str | None = None) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`) on one platform (default:
    the reference): both kexec kinds where they differ beyond their
    intervals, else crash kexec.  ``attrs``: ``platform``, ``platform_kind``,
    ``kinds`` (every kexec kind of the table), ``differ``, ``has_ci``,
    ``has_band``, ``n_kexec``, ``p_range`` (the smallest and largest
    positive P of any row), ``missed_mean`` (the table has it)."""
    col = _p_column(df)
    plats = list(dict.fromkeys(df["platform_name"])) if "platform_name" in df else [None]
    platform = platform or (platform_order(plats)[0] if plats != [None] else None)
    d = df[df["platform_name"] == platform] if platform is not None else df
    levels = _levels(d)
    base = levels["base"]
    kinds = list(dict.fromkeys(base["kexec"]))
    has_ci = f"{col}_low" in d and f"{col}_high" in d
    differ = (len(kinds) > 1 and not _intervals_overlap(
        base[base["kexec"] == kinds[0]], base[base["kexec"] == kinds[1]], col))
    shown = kinds if differ else [("crash" if "crash" in kinds else kinds[0])]
    parts = []
    for kind in shown:
        k = base[base["kexec"] == kind]
        for name in ordered(k["strategy"]):
            band = [x[(x["kexec"] == kind) & (x["strategy"] == name)].sort_values("rate_mib_s")
                    for x in (levels["low"], levels["high"])]
            parts.append(_option_rows(k[k["strategy"] == name].sort_values("rate_mib_s"), band,
                                      col, has_ci))
    out = typed(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS),
                COLUMNS[3:])
    p = pd.concat([base[col]] + ([base[f"{col}_low"], base[f"{col}_high"]] if has_ci else [])
                  + [x[col] for x in levels.values()])
    p = p[p > 0]
    out.attrs = {"platform": platform,
                 "platform_kind": (d["platform_kind"].iloc[0] if "platform_kind" in d and len(d)
                                   else ""),
                 "kinds": kinds, "differ": differ, "has_ci": has_ci,
                 "has_band": bool(len(levels["low"]) and len(levels["high"])),
                 "n_kexec": int(d["n_kexec"].max()) if "n_kexec" in d else 0,
                 "p_range": (p.min(), p.max()) if len(p) else None,
                 "missed_mean": "missed_mean" in d}
    return out


# --------------------------------------------------------------------------
# the drawing

def _draw_option(ax, s: pd.DataFrame) -> float | None:
    """One option's line, markers with their intervals and band; returns the
    largest upper end drawn where none was seen (None: no such point)."""
    name = s["strategy"].iloc[0]
    c, st = color_for(name), style_for(name)
    if s["band_low"].notna().any():
        b = s.dropna(subset=["band_low"])
        ax.fill_between(b["rate_mib_s"], b["band_low"], b["band_high"], color=c, alpha=0.13,
                        lw=0)
    pos = s[s["p"] > 0]
    ax.plot(s["rate_mib_s"], s["p"].where(s["p"] > 0), ls=st["ls"], color=c, lw=1.6, label=name)
    has_ci = s["p_high"].notna().any()
    err = [pos["p"] - pos["p_low"], pos["p_high"] - pos["p"]] if has_ci else None
    ax.errorbar(pos["rate_mib_s"], pos["p"], yerr=err, fmt=st["marker"], color=c, ms=5.5,
                capsize=3, elinewidth=1.1)
    zero = s[s["p"] <= 0]
    if not (has_ci and len(zero)):
        return None
    ax.plot(zero["rate_mib_s"], zero["p_high"], "v", color=c, ms=6, mfc="white", mew=1.3)
    return float(zero["p_high"].max())           # none seen: the interval's upper end


def _panel_title(kind: str, a: dict) -> str:
    what = ("crash kexec (kdump: NMIs freeze every step)" if kind == "crash"
            else "normal kexec (running steps finish first)")
    if not a["differ"] and len(a["kinds"]) > 1:
        what += ("\nnormal kexec: the same within the 95 % intervals"
                 if a["has_ci"] else "\nnormal kexec: the same within sampling error")
    return what


def _legend(fig, f: pd.DataFrame, floor: list[float]) -> None:
    a = f.attrs
    handles = {}
    for ax in fig.axes:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l_, h_)
    hs, ls = list(handles.values()), list(handles)
    n = a["n_kexec"]
    hs.append(Line2D([], [], marker="o", ls="-", color="0.3"))
    ls.append(f"modeled: share of {n:,} simulated kexecs" if n else "modeled: simulated share")
    if a["has_ci"]:
        hs.append(Line2D([], [], marker="o", ls="none", color="0.3"))
        ls.append("bar: 95 % interval (Wilson)")
        if floor:
            hs.append(Line2D([], [], marker="v", ls="none", color="0.3", mfc="white"))
            ls.append("none seen: the interval's upper end")
    if a["has_band"]:
        hs.append(plt.Rectangle((0, 0), 1, 1, color="0.3", alpha=0.15))
        ls.append("band: SEAMCALL costs at the low\nand high end of their ASSUMED range")
    never = ordered(f.loc[f["status"] == "never", "strategy"])
    refused = ordered(f.loc[f["status"] == "refused", "strategy"])
    if never:
        bound = (f" (P < {max(floor + [3.84 / n if n else 0]) * 100:.2g} % at 95 %)"
                 if n else "")
        hs.append(Line2D([], [], ls="none"))
        ls.append(f"miss no page in any\nsimulated kexec{bound}:\n  " + "\n  ".join(never))
    if refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("refuse kexec (nothing to miss):\n  " + "\n  ".join(refused))
    fig.legend(hs, ls, loc="center right", fontsize=8.5, frameon=False)


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: a panel per kexec kind shown."""
    a = f.attrs
    shown = list(dict.fromkeys(f["kexec"]))
    fig, axes = plt.subplots(1, len(shown), figsize=(7.0 * len(shown) + 3.4, 6.0),
                             sharey=True, squeeze=False)
    floor = []
    for ax, kind in zip(axes[0], shown):
        k = f[(f["kexec"] == kind) & (f["status"] == "drawn")]
        for name in dict.fromkeys(k["strategy"]):
            top = _draw_option(ax, k[k["strategy"] == name])
            floor += [] if top is None else [top]
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:.3g} %"))
        ax.set_xlim(f["rate_mib_s"].min() / 1.4, f["rate_mib_s"].max() * 1.4)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("private→shared conversion rate (MiB/s, log scale)")
        ax.set_title(_panel_title(kind, a), fontsize=10)
    if a["p_range"] is not None:
        lo, hi = a["p_range"]
        axes[0][0].set_ylim(max(lo / 2, 1e-9), min(1.0, hi * 1.6) * 1.15)
    axes[0][0].set_ylabel("P(≥ 1 private page not reset) per kexec (simulated, log scale)")
    _legend(fig, f, floor)
    fig.suptitle(f"{TITLE}\nplatform {a['platform']} [{a['platform_kind']}]; conversions in "
                 "2 MiB MapGPA chunks", fontsize=11)
    caption(fig, "trackers/kexec/race.py, attributes-first order (Isaku Yamahata's premise): "
                 "a page between KVM's attribute update and its removal is still TDX-private; "
                 "walks of KVM's attributes miss it, walks of the mirror S-EPT miss the page "
                 "being zapped. Mainline zaps first (race_order.csv). P is the share of "
                 "simulated kexecs that miss at least one page"
                 + ("; missed_mean in race.csv gives how many." if a["missed_mean"] else "."))
    fig.tight_layout(rect=(0, 0.04, 1 - 3.2 / fig.get_figwidth(), 1))
    return fig


def figure(df: pd.DataFrame, platform: str | None = None):
    """P(a kexec misses >= 1 private page) vs the private->shared conversion
    rate (modeled, simulated): markers with their 95 % (Wilson) intervals at
    the base SEAMCALL costs, a band from the low to the high SEAMCALL-cost
    assumption; one panel, or one per kexec kind where normal and crash
    kexec differ beyond their intervals."""
    why = absent(TITLE, "race", df, ["strategy", "kexec", "rate_mib_s", "kexec_allowed"])
    if why:
        return why
    if _p_column(df) is None:
        return empty_figure(TITLE, "race lacks p_miss: a report of an earlier version? run "
                                   "`tdx-trackers report`")
    return draw(frame(df, platform))
