"""Figure 6: how far each ASSUMED parameter moves each option's modeled
downtime, one at a time (a tornado per option).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..format import fmt_seconds
from .select import cpu_numbers, cpus_label, platform_order, text_cells, with_platform_column
from .style import (SAME_WITHIN, absent, caption, coinciding_groups, color_for, empty_figure,
                    ordered, wrap_names)


def _fmt_param(param: str, v: float) -> str:
    """A parameter value in its unit, read from its name (``*_s``, ``*_bps``)."""
    if not np.isfinite(v):
        return "n/a"
    if param.endswith("_bps") or "bps" in param:
        return f"{v / 1e9:.3g} GB/s"
    if param.endswith("_s"):
        return fmt_seconds(v)
    return f"{v:.3g}"


def figure(df: pd.DataFrame, platform: str | None = None, scenario: str | None = None,
            cpus: str | int | None = None):
    """Per option (small multiples), the modeled downtime with each ASSUMED
    parameter at its low and at its high end, around the base; one scenario,
    platform and CPU count (default: the first scenario, the reference
    platform, the fewest CPUs: today's reset)."""
    title = "How far each ASSUMED parameter moves the downtime (modeled) — tornado per option"
    df = with_platform_column(df)
    why = absent(title, "tornado", df, ["strategy", "scenario", "platform", "param",
                                         "downtime_base_s", "downtime_at_low_s",
                                         "downtime_at_high_s"])
    if why:
        return why
    platform = platform or platform_order(df["platform"])[0]
    d = df[df["platform"] == platform]
    scenario = scenario or list(dict.fromkeys(d["scenario"]))[0]
    d = d[d["scenario"] == scenario]
    if "cpus_at_reset" in d:
        num, _ = cpu_numbers(d)
        pick = num.min() if cpus is None else pd.to_numeric(pd.Series([cpus]),
                                                             errors="coerce").iloc[0]
        d = d[num == pick] if pd.notna(pick) else d[text_cells(d["cpus_at_reset"]) == str(cpus)]
        cpu_text = cpus_label(pick) if pd.notna(pick) else f"{cpus} CPUs"
    else:
        cpu_text = "the kexec table's CPUs"
    d = d[d["downtime_base_s"] > 0]
    if d.empty:
        return empty_figure(title, f"no tornado rows with a downtime for {scenario} on {platform}")
    # options whose bars agree within SAME_WITHIN share a panel
    cols = ["downtime_base_s", "downtime_at_low_s", "downtime_at_high_s"]
    curves = {n: (d[d["strategy"] == n].drop_duplicates("param").set_index("param")[cols]
                  .stack()) for n in ordered(d["strategy"])}
    groups = coinciding_groups(curves)
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
        ax.set_title(wrap_names(", ".join([name, *same]), 60) + (f" (within {SAME_WITHIN:.0%})"
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
    caption(fig, "Each bar: the downtime with one parameter at an end of its ASSUMED (low, "
                  "high) range and every other at its base (one-at-a-time). Sources: "
                  + ("; ".join(sources) if sources else "see tornado.csv")
                  + "." + (f" Without a downtime here (refuse kexec): {', '.join(ordered(others))}."
                           if others else ""))
    lines = 1 + len(" ".join(sources)) // (18 * fig.get_figwidth())
    fig.tight_layout(rect=(0, min((0.3 + 0.15 * lines) / fig.get_figheight(), 0.3), 1,
                           1 - 0.85 / fig.get_figheight()))
    return fig
