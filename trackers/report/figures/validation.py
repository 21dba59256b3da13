"""Figure: the model against every published TDX timing (validation.csv).

One row per publication: the ratio of the model's prediction to the
published figure (1 = reproduced) on a log axis, the shaded band 0.5-2
counting as reproduced, a bar for the prediction over the ASSUMED ranges.
Rows that derive a parameter are hollow (their ratio is 1 by construction);
a published bound is drawn as a one-sided arrow from its side.  A row outside
its band names the term the model lacks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ...kexec.teardown import WITHIN
from ...published import LOWER_BOUND, UPPER_BOUND
from ..format import fmt_seconds
from .select import is_true, typed
from .style import absent, caption

TITLE = "The model against every published TDX timing (modeled / published)"
#: the columns of :func:`frame`, one row per publication, in the table's order
COLUMNS = ["label", "ratio", "ratio_low", "ratio_high", "role", "bound", "within", "lacks",
           "published", "predicted", "unit"]
NEEDS = ["key", "what", "published", "published_unit", "predicted", "predicted_low",
         "predicted_high", "ratio", "within", "role", "lacks"]


def _value(x: float, unit: str) -> str:
    return fmt_seconds(x) if unit == "s" else f"{x:.0%}"


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`); ``attrs``: ``platform``,
    ``reproduced`` and ``predictions`` (how many of the predictions are)."""
    d = df.copy()
    pub = d["published"].astype(float)
    label = [f"{w}\npublished {_value(p, u)}, modeled {_value(m, u)}"
             for w, p, m, u in zip(d["what"], pub, d["predicted"].astype(float),
                                   d["published_unit"])]
    out = pd.DataFrame({
        "label": label, "ratio": d["ratio"], "ratio_low": d["predicted_low"] / pub,
        "ratio_high": d["predicted_high"] / pub, "role": d["role"],
        "bound": d["bound"] if "bound" in d else "value",
        "within": d["within"].map(is_true), "lacks": d["lacks"].fillna(""),
        "published": pub, "predicted": d["predicted"], "unit": d["published_unit"]},
        columns=COLUMNS)
    out = typed(out, ["ratio", "ratio_low", "ratio_high", "published", "predicted"])
    pred = out[(out["role"] == "prediction") & out["ratio"].notna()]
    out.attrs = {"platform": str(d["platform"].iloc[0]) if "platform" in d and len(d) else "",
                 "reproduced": int(pred["within"].sum()), "predictions": len(pred)}
    return out


def draw(f: pd.DataFrame):
    n = len(f)
    height = 0.62 * n + 3.0
    fig, ax = plt.subplots(figsize=(11, height))
    fig.subplots_adjust(left=0.46, right=0.97, top=1 - 0.8 / height, bottom=1.9 / height)
    y = np.arange(n)[::-1]
    ax.axvspan(1 / WITHIN, WITHIN, color="tab:green", alpha=0.10, lw=0)
    ax.axvline(1.0, color="0.5", lw=0.8)
    for yi, r in zip(y, f.itertuples()):
        if not np.isfinite(r.ratio):
            ax.text(1.0, yi, "not predicted in this run", ha="center", va="center",
                    fontsize=8, color="0.4")
            continue
        color = "tab:blue" if r.within else "tab:red"
        ax.plot([r.ratio_low, r.ratio_high], [yi, yi], color=color, lw=1.2, alpha=0.6)
        hollow = r.role != "prediction"
        marker = {LOWER_BOUND: ">", UPPER_BOUND: "<"}.get(r.bound, "o")
        ax.plot([r.ratio], [yi], marker=marker, ms=8, color=color,
                mfc="white" if hollow else color, mew=1.6)
        if not r.within and r.lacks:
            ax.text(r.ratio, yi - 0.32, f"lacks: {r.lacks}", fontsize=7, color="tab:red",
                    ha="center", va="top", wrap=True)
    ax.set_yticks(y, [t for t in f["label"]], fontsize=8)
    ax.set_xscale("log")
    lo = np.nanmin(np.r_[f["ratio_low"].to_numpy(float), 0.2])
    hi = np.nanmax(np.r_[f["ratio_high"].to_numpy(float), 5.0])
    ax.set_xlim(max(lo / 1.5, 1e-3), min(hi * 1.5, 1e3))
    ticks = [t for t in (0.01, 0.1, 0.5, 1, 2, 10, 100) if ax.get_xlim()[0] <= t <=
             ax.get_xlim()[1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(-0.8, n - 0.4)
    ax.set_xlabel("predicted / published (log)")
    a = f.attrs
    ax.set_title(f"{TITLE}\n{a['reproduced']} of {a['predictions']} predictions within "
                 f"{1 / WITHIN:g}-{WITHIN:g}x (shaded), on {a['platform']}", fontsize=10)
    handles = [Line2D([], [], marker="o", ls="", color="tab:blue", label="prediction"),
               Line2D([], [], marker="o", ls="", color="tab:blue", mfc="white",
                      label="derives a parameter (1 by construction)"),
               Line2D([], [], marker=">", ls="", color="0.3",
                      label="published lower bound (\"more than\")"),
               Line2D([], [], marker="<", ls="", color="0.3",
                      label="published upper bound (\"up to\")"),
               Line2D([], [], color="0.3", lw=1.2, label="over the ASSUMED ranges")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.3, -0.09), ncol=3,
              fontsize=7.5, frameon=False)
    caption(fig, "Published: KVM_TDX_TERMINATE_VM's reclaim times (before/after, Jun 2025), "
                 "the 40 % that skipping the clear saved (01fb93a363e0), the attribute "
                 "settings of a 1 TB and a 1.9 TB guest (47bb584237cc). Modeled: the "
                 "TD-teardown model on the kexec model's parameters; the attribute rows from "
                 "the kernel's own xa_reserve + xa_store timed here. Derivation: "
                 "docs/validation.md.")
    return fig


def figure(df: pd.DataFrame):
    """The figure from validation.csv (or one saying what it lacks)."""
    missing = absent(TITLE, "validation", df, NEEDS)
    if missing is not None:
        return missing
    return draw(frame(df))
