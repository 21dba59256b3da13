"""Figure 7: P(a kexec misses >= 1 private page) against the private->shared
conversion rate (modeled, simulated), per kexec kind where they differ.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from .select import is_true, platform_order, text_cells
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


def figure(df: pd.DataFrame, platform: str | None = None):
    """P(a kexec misses >= 1 private page) vs the private->shared conversion
    rate (modeled, simulated): markers with their 95 % (Wilson) intervals at
    the base SEAMCALL costs, a band from the low to the high SEAMCALL-cost
    assumption; one panel, or one per kexec kind where normal and crash
    kexec differ beyond their intervals."""
    title = "P(a kexec misses ≥ 1 private page) vs conversion rate (modeled) — lower is better"
    why = absent(title, "race", df, ["strategy", "kexec", "rate_mib_s", "kexec_allowed"])
    if why:
        return why
    col = "p_miss" if "p_miss" in df else "p_missed" if "p_missed" in df else None
    if col is None:
        return empty_figure(title, "race lacks p_miss: a report of an earlier version? run "
                             "`tdx-trackers report`")
    plats = list(dict.fromkeys(df["platform_name"])) if "platform_name" in df else [None]
    platform = platform or ([p for p in platform_order(plats)][0] if plats != [None] else None)
    d = df[df["platform_name"] == platform] if platform is not None else df
    level = (text_cells(d["seamcall_cost"]).replace("", "base") if "seamcall_cost" in d
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
            if not s["kexec_allowed"].map(is_true).any():
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
    caption(fig, "trackers/kexec/race.py, attributes-first order (Isaku Yamahata's premise): "
                  "a page between KVM's attribute update and its removal is still TDX-private; "
                  "walks of KVM's attributes miss it, walks of the mirror S-EPT miss the page "
                  "being zapped. Mainline zaps first (race_order.csv). P is the share of "
                  "simulated kexecs that miss at least one page"
                  + ("; missed_mean in race.csv gives how many." if "missed_mean" in d else "."))
    fig.tight_layout(rect=(0, 0.04, 1 - 3.2 / fig.get_figwidth(), 1))
    return fig
