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
from .select import (cpu_numbers, cpus_label, platform_order, text_cells, typed,
                     with_platform_column)
from .style import (SAME_WITHIN, absent, caption, coinciding_groups, color_for, empty_figure,
                    ordered, wrap_names)


TITLE = "How far each ASSUMED parameter moves the downtime (modeled) — tornado per option"
#: the bars' colours: the parameter at the low and at the high end of its range
LOW_COLOR, HIGH_COLOR = "#4c72b0", "#dd8452"

#: the columns of :func:`frame`: one row per bar pair, a panel per ``name`` (the
#: first of the options whose bars agree within SAME_WITHIN, all in
#: ``members``), its parameters by swing, widest first
COLUMNS = ["name", "members", "param", "base_s", "at_low_s", "at_high_s", "value_low",
           "value_high", "swing", "source"]


def _fmt_param(param: str, v: float) -> str:
    """A parameter value in its unit, read from its name (``*_s``, ``*_bps``)."""
    if not np.isfinite(v):
        return "n/a"
    if param.endswith("_bps") or "bps" in param:
        return f"{v / 1e9:.3g} GB/s"
    if param.endswith("_s"):
        return fmt_seconds(v)
    return f"{v:.3g}"


# --------------------------------------------------------------------------
# the data

def _at_cpus(d: pd.DataFrame, cpus) -> tuple[pd.DataFrame, str]:
    """The rows at ``cpus`` at reset (None: the fewest) and how to say it."""
    if "cpus_at_reset" not in d:
        return d, "the kexec table's CPUs"
    num, _ = cpu_numbers(d)
    pick = num.min() if cpus is None else pd.to_numeric(pd.Series([cpus]),
                                                         errors="coerce").iloc[0]
    if pd.isna(pick):
        return d[text_cells(d["cpus_at_reset"]) == str(cpus)], f"{cpus} CPUs"
    return d[num == pick], cpus_label(pick)


def _panel_rows(d: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    s = d[d["strategy"] == members[0]].drop_duplicates("param")
    out = pd.DataFrame({
        "name": members[0], "members": ", ".join(members), "param": s["param"],
        "base_s": s["downtime_base_s"], "at_low_s": s["downtime_at_low_s"],
        "at_high_s": s["downtime_at_high_s"],
        "value_low": s["value_low"] if "value_low" in s else math.nan,
        "value_high": s["value_high"] if "value_high" in s else math.nan,
        "swing": (s["downtime_at_high_s"] - s["downtime_at_low_s"]).abs(),
        "source": text_cells(s["source"]) if "source" in s else ""}, columns=COLUMNS)
    return out.sort_values("swing", ascending=False, kind="stable")


def frame(df: pd.DataFrame, platform: str | None = None, scenario: str | None = None,
          cpus: str | int | None = None) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`) on one scenario, platform and
    CPU count.  ``attrs``: ``scenario``, ``platform``, ``cpus`` (in words),
    ``without`` (options without a downtime here: they refuse kexec),
    ``sources`` ("param: source", each parameter once)."""
    df = with_platform_column(df)
    platform = platform or platform_order(df["platform"])[0]
    d = df[df["platform"] == platform]
    scenario = scenario or list(dict.fromkeys(d["scenario"]))[0]
    d, cpu_text = _at_cpus(d[d["scenario"] == scenario], cpus)
    d = d[d["downtime_base_s"] > 0]
    # options whose bars agree within SAME_WITHIN share a panel
    cols = ["downtime_base_s", "downtime_at_low_s", "downtime_at_high_s"]
    curves = {n: (d[d["strategy"] == n].drop_duplicates("param").set_index("param")[cols]
                  .stack()) for n in ordered(d["strategy"])}
    out = pd.concat([_panel_rows(d, g) for g in coinciding_groups(curves)]
                    or [pd.DataFrame(columns=COLUMNS)], ignore_index=True)
    out = typed(out, ["base_s", "at_low_s", "at_high_s", "value_low", "value_high", "swing"])
    sources = []
    if "source" in d:
        for p, src in d.drop_duplicates("param")[["param", "source"]].itertuples(index=False):
            if str(src) not in ("", "nan"):
                sources.append(f"{p}: {src}")
    out.attrs = {"scenario": scenario, "platform": platform, "cpus": cpu_text,
                 "without": ordered(set(df["strategy"]) - set(d["strategy"])),
                 "sources": sources}
    return out


# --------------------------------------------------------------------------
# the drawing

def _draw_panel(ax, s: pd.DataFrame) -> None:
    """One option's (or group's) bars around its base, widest swing on top."""
    name, base = s["name"].iloc[0], float(s["base_s"].iloc[0])
    y = np.arange(len(s))
    lo, hi = s["at_low_s"].to_numpy(float), s["at_high_s"].to_numpy(float)
    ax.barh(y, lo - base, left=base, color=LOW_COLOR, height=0.62)
    ax.barh(y, hi - base, left=base, color=HIGH_COLOR, height=0.62)
    ax.axvline(base, color="black", lw=1)
    span = np.nanmax(np.abs(np.concatenate([lo, hi]) - base))
    pad = span * 0.6 if span > 0 else base * 0.05
    ax.set_xlim(np.nanmin(np.concatenate([lo, hi, [base]])) - pad,
                np.nanmax(np.concatenate([lo, hi, [base]])) + pad)
    for yi, r in zip(y, s.itertuples()):
        for val, at in ((r.value_low, r.at_low_s), (r.value_high, r.at_high_s)):
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
    rel = f"; ×{min(lo.min(), hi.min()) / base:.2g}–×{max(lo.max(), hi.max()) / base:.2g}"
    several = ", " in s["members"].iloc[0]
    ax.set_title(wrap_names(s["members"].iloc[0], 60)
                 + (f" (within {SAME_WITHIN:.0%})" if several else "")
                 + f"\nbase {fmt_seconds(base)}{rel}", fontsize=8.5, color=color_for(name))
    ax.set_xlabel("modeled downtime (s)", fontsize=8)


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: a panel per ``name``, four across."""
    names = list(dict.fromkeys(f["name"]))
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    nparam = f.groupby("name")["param"].nunique().max()
    fig, axes = plt.subplots(nrow, ncol, squeeze=False,
                             figsize=(max(4.8 * ncol, 10), (0.36 * nparam + 1.6) * nrow + 2.0))
    for ax, name in zip(axes.flat, names):
        _draw_panel(ax, f[f["name"] == name])
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=LOW_COLOR),
                plt.Rectangle((0, 0), 1, 1, color=HIGH_COLOR), Line2D([], [], color="black")],
               ["parameter at the low end of its range", "parameter at the high end",
                "base (every parameter at its base value)"],
               loc="upper center", ncol=3, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    a = f.attrs
    fig.suptitle(f"{TITLE}\n{a['scenario']} on {a['platform']}, {a['cpus']} at reset; bars "
                 "sorted by swing, labelled with the parameter's value", fontsize=11)
    caption(fig, "Each bar: the downtime with one parameter at an end of its ASSUMED (low, "
                 "high) range and every other at its base (one-at-a-time). Sources: "
                 + ("; ".join(a["sources"]) if a["sources"] else "see tornado.csv")
                 + "." + (f" Without a downtime here (refuse kexec): {', '.join(a['without'])}."
                          if a["without"] else ""))
    lines = 1 + len(" ".join(a["sources"])) // (18 * fig.get_figwidth())
    fig.tight_layout(rect=(0, min((0.3 + 0.15 * lines) / fig.get_figheight(), 0.3), 1,
                           1 - 0.85 / fig.get_figheight()))
    return fig


def figure(df: pd.DataFrame, platform: str | None = None, scenario: str | None = None,
           cpus: str | int | None = None):
    """Per option (small multiples), the modeled downtime with each ASSUMED
    parameter at its low and at its high end, around the base; one scenario,
    platform and CPU count (default: the first scenario, the reference
    platform, the fewest CPUs: today's reset)."""
    why = absent(TITLE, "tornado", with_platform_column(df),
                 ["strategy", "scenario", "platform", "param", "downtime_base_s",
                  "downtime_at_low_s", "downtime_at_high_s"])
    if why:
        return why
    f = frame(df, platform, scenario, cpus)
    if f.empty:
        return empty_figure(TITLE, f"no tornado rows with a downtime for "
                                   f"{f.attrs['scenario']} on {f.attrs['platform']}")
    return draw(f)
