"""Figure 2: bits per private page against the private fraction (modeled),
against the information bounds; every option of the strategy registry is
drawn or named with why not.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

from ...kexec import STRATEGIES
from .select import text_cells, typed
from .style import ORDER, absent, caption, coincident, color_for, label_ends, ordered, style_for


TITLE = "Bits per private page vs private fraction (modeled) — lower is better"
#: the information bounds (bits_per_page columns) and how each is drawn and named
BOUNDS = {
    "bound_bits_per_page": (dict(ls="-", lw=3), "bound: log2 C(N, n) / n\n"
                            "(any structure, any set of n pages)"),
    "run_bound_bits_per_page": (dict(ls="--", lw=2), "bound: log2 C(N+1, 2r) / n\n"
                                "(any set of r runs, as these are)"),
}

#: characters a line of the "Not drawn" note holds (7.5 pt, ~0.057 in each):
#: the left half of the figure, beside the legend
NOT_DRAWN_WIDTH = 105

#: the columns of :func:`frame`: one row per point of a line (``line`` an
#: option, or a column of BOUNDS), or per option not drawn (``why`` not
#: empty); ``label`` names an option's line at its end ("ida (= bitmap)")
COLUMNS = ["line", "private_fraction", "bits_per_page", "label", "why"]


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


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`): each option with a positive
    bits per page, the bounds, and every other option of the strategy
    registry with why it has no line.  ``attrs``: ``host``, ``fractions``
    (the smallest and largest private fraction of the table)."""
    parts, curves = [], {}
    for name in ordered(df["tracker"]):
        d = df[df["tracker"] == name].sort_values("private_fraction")
        d = d[d["bits_per_private_page"] > 0]
        if len(d):
            curves[name] = d.set_index("private_fraction")["bits_per_private_page"]
    same = coincident(curves)
    for name, c in curves.items():
        parts.append(pd.DataFrame({"line": name, "private_fraction": c.index,
                                   "bits_per_page": c.to_numpy(), "why": "",
                                   "label": name + (f" (= {same[name]})" if name in same else "")}))
    b = df.drop_duplicates("private_fraction").sort_values("private_fraction")
    bounds = [c for c in BOUNDS if c in df]
    bounds = bounds if "bound_bits_per_page" in bounds else []
    parts += [pd.DataFrame({"line": c, "private_fraction": b["private_fraction"],
                            "bits_per_page": b[c], "label": "", "why": ""}) for c in bounds]
    missing = [n for n in ordered(list(ORDER) + list(df["tracker"])) if n not in curves]
    parts += [pd.DataFrame({"line": missing, "label": "", "why": [
        _why_not_drawn(n, df[df["tracker"] == n]) for n in missing]})]
    out = typed(pd.concat(parts, ignore_index=True).reindex(columns=COLUMNS),
                ["private_fraction", "bits_per_page"])
    out.attrs = {"host": df["host"].iloc[0] if "host" in df else "",
                 "fractions": (df["private_fraction"].min(), df["private_fraction"].max())}
    return out


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: the lines named at their ends, the
    options without one named below."""
    fig, ax = plt.subplots(figsize=(12, 8.4))
    drawn = f[f["why"] == ""]
    ends = []
    for line, d in drawn.groupby("line", sort=False):
        if line in BOUNDS:
            kw, label = BOUNDS[line]
            ax.plot(d["private_fraction"], d["bits_per_page"], color="black", label=label, **kw)
            continue
        c = color_for(line)
        ax.plot(d["private_fraction"], d["bits_per_page"], color=c, lw=2, ms=5, label=line,
                **style_for(line))
        ends.append((d["label"].iloc[-1], d["private_fraction"].iloc[-1],
                     d["bits_per_page"].iloc[-1], c))
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = f.attrs["fractions"]
    ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 100:g} %"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("private fraction of host pages (n / N, log scale)")
    ax.set_ylabel("bits per private page (modeled, log scale)")
    ax.set_title(f"{TITLE}\n{f.attrs['host']} host; set: 6/7 of the private pages in random "
                 "2 MiB extents, 1/7 scattered 4 KiB pages", fontsize=10.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", bbox_to_anchor=(0.995, 0.05), fontsize=8,
               ncol=2, frameon=False, title="line = modeled (estimate() of each structure)",
               title_fontsize=8)
    # each reason wrapped to the half of the figure left of the legend
    missing = ["\n    ".join(textwrap.wrap(f"{r.line}: {r.why}", NOT_DRAWN_WIDTH))
               for r in f[f["why"] != ""].itertuples()]
    rows = max(sum(m.count("\n") + 1 for m in missing) + 1,
               math.ceil(len(labels) / 2) * 1.4 + 1)
    fig.tight_layout(rect=(0, (0.45 + 0.15 * rows) / fig.get_figheight(), 0.85, 1))
    label_ends(ax, ends)
    if missing:
        fig.text(0.01, 0.055, "Not drawn (every option of the strategy registry):\n  "
                 + "\n  ".join(missing), fontsize=7.5, va="bottom", ha="left",
                 bbox=dict(boxstyle="round", fc="#f4f4f4", ec="0.7"))
    caption(fig, "Bounds: Raman, Raman, Rao (SODA 2002), computed with math.lgamma. A "
                 "structure may beat log2 C(N, n) only because the set is clustered; "
                 "log2 C(N+1, 2r) bounds a set known to have r runs. kvm: KVM's own "
                 "attribute XArrays (held anyway, added 0 B).")
    return fig


def figure(df: pd.DataFrame):
    """Modeled bits per private page vs private fraction, with information bounds;
    every option of the strategy registry is drawn or named with why not."""
    why = absent(TITLE, "bits_per_page", df, ["tracker", "private_fraction",
                                              "bits_per_private_page", "modeled_bytes"])
    return why or draw(frame(df))
