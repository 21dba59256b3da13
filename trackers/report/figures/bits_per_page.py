"""Figure 2: bits per private page against the private fraction (modeled),
against the information bounds; every option of the strategy registry is
drawn or named with why not.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

from ...kexec import STRATEGIES
from .select import text_cells
from .style import ORDER, absent, caption, coincident, color_for, label_ends, ordered, style_for


def _why_not_drawn(name: str, d: pd.DataFrame | None) -> str:
    """Why an option has no line in bits_per_page: the table's own reason, or
    what the strategy registry says it is."""
    if d is not None and not d.empty:
        if "not_representable" in d and (text_cells(d["not_representable"]) != "").any():
            note = text_cells(d["not_representable"])
            return note[note != ""].iloc[0]
        if (d["modeled_bytes"].fillna(0) <= 0).all():
            return "0 bits: no structure of its own (a bit in one the kernel keeps)"
    strategy = STRATEGIES.get(name)
    if strategy is not None and strategy.tracker_cls is not None:
        return "a tracker this report did not run (tdx-trackers report --trackers)"
    option = strategy.option if strategy is not None else ""
    return "no per-page structure: not in this table" + (f" ({option})" if option else "")


def figure(df: pd.DataFrame):
    """Modeled bits per private page vs private fraction, with information bounds;
    every option of the strategy registry is drawn or named with why not."""
    title = "Bits per private page vs private fraction (modeled) — lower is better"
    why = absent(title, "bits_per_page", df, ["tracker", "private_fraction",
                                               "bits_per_private_page", "modeled_bytes"])
    if why:
        return why
    fig, ax = plt.subplots(figsize=(12, 8.4))
    ends, drawn, curves = [], set(), {}
    for name in ordered(df["tracker"]):
        d = df[df["tracker"] == name].sort_values("private_fraction")
        d = d[d["bits_per_private_page"] > 0]
        if d.empty:
            continue
        drawn.add(name)
        c = color_for(name)
        ax.plot(d["private_fraction"], d["bits_per_private_page"], color=c, lw=2, ms=5,
                label=name, **style_for(name))
        ends.append((name, d["private_fraction"].iloc[-1], d["bits_per_private_page"].iloc[-1],
                     c))
        curves[name] = d.set_index("private_fraction")["bits_per_private_page"]
    if "bound_bits_per_page" in df:
        b = df.drop_duplicates("private_fraction").sort_values("private_fraction")
        ax.plot(b["private_fraction"], b["bound_bits_per_page"], "-", color="black", lw=3,
                label="bound: log2 C(N, n) / n\n(any structure, any set of n pages)")
        if "run_bound_bits_per_page" in df:
            ax.plot(b["private_fraction"], b["run_bound_bits_per_page"], "--", color="black",
                    lw=2, label="bound: log2 C(N+1, 2r) / n\n(any set of r runs, as these are)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    x = df["private_fraction"]
    ax.set_xlim(x.min() / 1.3, x.max() * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:g} %"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("private fraction of host pages (n / N, log scale)")
    ax.set_ylabel("bits per private page (modeled, log scale)")
    host = df["host"].iloc[0] if "host" in df else ""
    ax.set_title(f"{title}\n{host} host; set: 6/7 of the private pages in random 2 MiB "
                 "extents, 1/7 scattered 4 KiB pages", fontsize=10.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", bbox_to_anchor=(0.995, 0.05), fontsize=8,
               ncol=2, frameon=False, title="line = modeled (estimate() of each structure)",
               title_fontsize=8)
    missing = [f"{n}: {_why_not_drawn(n, df[df['tracker'] == n])}"
               for n in ordered(list(ORDER) + list(df["tracker"])) if n not in drawn]
    rows = max(len(missing) + 1, math.ceil(len(labels) / 2) * 1.4 + 1)
    fig.tight_layout(rect=(0, (0.45 + 0.15 * rows) / fig.get_figheight(), 0.85, 1))
    same = coincident(curves)
    label_ends(ax, [(n + (f" (= {same[n]})" if n in same else ""), *rest)
                     for n, *rest in ends])
    if missing:
        fig.text(0.01, 0.055, "Not drawn (every option of the strategy registry):\n  "
                 + "\n  ".join(missing), fontsize=7.5, va="bottom", ha="left",
                 bbox=dict(boxstyle="round", fc="#f4f4f4", ec="0.7"))
    caption(fig, "Bounds: Raman, Raman, Rao (SODA 2002), computed with math.lgamma. A "
                  "structure may beat log2 C(N, n) only because the set is clustered; "
                  "log2 C(N+1, 2r) bounds a set known to have r runs. kvm: KVM's own "
                  "attribute XArrays (held anyway, added 0 B).")
    return fig
