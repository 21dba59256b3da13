"""Figure 5: modeled downtime against the CPUs at reset per scenario and
platform, one line per group of coinciding options, its band the ASSUMED
parameter ranges; crossings and changes of the fastest option marked.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from .select import (cpu_sweep, has_columns, is_true, missing_columns, platform_order,
                     with_platform_column)
from .style import (SAME_WITHIN, absent, caption, coinciding_groups, color_for, ordered,
                    seconds_axis, style_for, wrap_names)


def crossings(lines: dict[str, pd.DataFrame], tie: float = 0.01):
    """Where two lines (cpus -> downtime, on the same CPU counts) change order:
    [(cpus, downtime, a, b)] with the point interpolated on log axes; lines
    within ``tie`` (relative) of each other on both sides are not a crossing."""
    out = []
    names = list(lines)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            j = pd.concat([lines[a]["y"].rename("y_a"), lines[b]["y"].rename("y_b")], axis=1,
                          join="inner").dropna()
            j = j[(j["y_a"] > 0) & (j["y_b"] > 0)].sort_index()
            if len(j) < 2:
                continue
            la, lb = np.log(j["y_a"].to_numpy()), np.log(j["y_b"].to_numpy())
            diff = la - lb
            lx = np.log2(j.index.to_numpy(float))
            for k in range(len(diff) - 1):
                d0, d1 = diff[k], diff[k + 1]
                if d0 * d1 >= 0 or (abs(d0) < tie and abs(d1) < tie):
                    continue
                t = d0 / (d0 - d1)
                out.append((2 ** (lx[k] + t * (lx[k + 1] - lx[k])),
                            math.exp(la[k] + t * (la[k + 1] - la[k])), a, b))
    return out


def figure(df: pd.DataFrame, kexec: pd.DataFrame | None = None,
                     scenarios: list[str] | None = None, platforms: list[str] | None = None):
    """Modeled downtime against the CPUs at reset, one line per option with
    its band (every ASSUMED parameter at its low and high end), crossings
    marked and the changes of the fastest option named; rows scenarios
    (default: the first two, and the first with a measured scan), columns
    platforms (the reference first).  ``kexec``, when given, marks the
    options that miss pages.  Where the table has ``scan_measured_s`` (the
    sharded scan measured on this machine, sensitivity.measured_scans) the
    scan part is drawn for those options: measured as hollow diamonds, the
    modeled scan_s as a dotted line."""
    title = ("kexec downtime against the CPUs at reset (modeled; band: ASSUMED parameter "
             "ranges) — lower is better")
    df = with_platform_column(df)
    why = absent(title, "sensitivity", df, ["strategy", "scenario", "platform",
                                             "cpus_at_reset", "downtime_s"])
    if why:
        return why
    platforms = platforms or platform_order(df["platform"])
    has_measured = "scan_measured_s" in df and df["scan_measured_s"].notna().any()
    if not scenarios:
        scenarios = list(dict.fromkeys(df["scenario"]))[:2]
        if has_measured:
            first = df.loc[df["scan_measured_s"].notna(), "scenario"].iloc[0]
            scenarios += [first] if first not in scenarios else []
    unsafe, refused = set(), set()
    if kexec is not None and not missing_columns(kexec, ["strategy", "pages_missed", "scenario"]):
        here = kexec[kexec["scenario"].isin(scenarios)]
        unsafe = set(here.loc[here["pages_missed"] > 0, "strategy"])
        if "kexec_allowed" in here:
            refused = set(here.loc[~here["kexec_allowed"].map(is_true), "strategy"])
    fig, axes = plt.subplots(len(scenarios), len(platforms), squeeze=False,
                             figsize=(7.2 * len(platforms) + 3.6, 5.4 * len(scenarios) + 1.2))
    leaders_text, nodown, scan_notes = [], set(), {}
    for r, sc in enumerate(scenarios):
        for c, plat in enumerate(platforms):
            ax = axes[r][c]
            d = cpu_sweep(df, plat)
            d = d[d["scenario"] == sc]
            if d.empty:
                ax.set_axis_off()
                ax.set_title(f"{sc} on {plat}: no rows", fontsize=9.5)
                continue
            curves = {}
            for name in ordered(d["strategy"]):
                s = (d[d["strategy"] == name].drop_duplicates("cpus").sort_values("cpus"))
                s = s[s["downtime_s"] > 0]
                if s.empty:
                    (refused if name in refused or kexec is None else nodown).add(name)
                    continue
                curves[name] = s.set_index("cpus")
            # options within SAME_WITHIN of each other at every CPU count are one line
            groups = coinciding_groups({n: c["downtime_s"] for n, c in curves.items()}, unsafe)
            lines, short = {}, {}
            for members in groups:
                head = members[0]
                s = curves[head]
                col = color_for(head)
                short[head] = (head if len(members) == 1 else
                               f"{head} (+{len(members) - 1} within {SAME_WITHIN:.0%})")
                label = (head if len(members) == 1 else
                         wrap_names(", ".join(members), 44) + f"\n  (within {SAME_WITHIN:.0%})")
                label += " (misses pages)" if head in unsafe else ""
                ax.plot(s.index, s["downtime_s"], color=col, lw=2.2 if len(members) > 1 else 1.8,
                        ms=4.5, label=label, alpha=0.55 if head in unsafe else 1.0,
                        **style_for(head))
                if has_columns(s, "downtime_low_s", "downtime_high_s") and \
                        s["downtime_low_s"].notna().any():
                    lo = pd.concat([curves[m]["downtime_low_s"] for m in members], axis=1).min(axis=1)
                    hi = pd.concat([curves[m]["downtime_high_s"] for m in members], axis=1).max(axis=1)
                    ax.fill_between(lo.index, lo, hi, color=col, alpha=0.08, lw=0)
                lines[head] = s[["downtime_s"]].rename(columns={"downtime_s": "y"})
            for x, y, a, b in crossings(lines):
                ax.plot([x], [y], "x", color="black", ms=6, mew=1.4, zorder=5)
            # the fastest line at each CPU count: `rank` where the table has it
            head_of = {m: g[0] for g in groups for m in g}
            best = {}
            for cpus, g in d[d["strategy"].isin(head_of)].groupby("cpus"):
                safe = g[~g["strategy"].isin(unsafe)] if len(g[~g["strategy"].isin(unsafe)]) else g
                top = (safe.sort_values("rank").iloc[0] if "rank" in safe and
                       safe["rank"].notna().all() else safe.loc[safe["downtime_s"].idxmin()])
                best[cpus] = head_of[top["strategy"]]
            cpus_sorted = sorted(best)
            for lo_c, hi_c in zip(cpus_sorted, cpus_sorted[1:]):
                if best[lo_c] != best[hi_c]:
                    a, b = best[lo_c], best[hi_c]
                    pts = [p for p in crossings({k: lines[k] for k in (a, b)})
                           if lo_c <= p[0] <= hi_c]
                    x, y = (pts[0][0], pts[0][1]) if pts else (math.sqrt(lo_c * hi_c),
                                                              float(lines[b].loc[hi_c, "y"]))
                    ax.plot([x], [y], "o", ms=13, mfc="none", mec="black", mew=1.6, zorder=6)
                    where = f"between {lo_c:g} and {hi_c:g} CPUs"
                    ax.annotate(f"fastest: {short[a]} →\n{short[b]}, {where}", (x, y),
                                xytext=(10, 22), textcoords="offset points", fontsize=8,
                                arrowprops=dict(arrowstyle="-", color="0.3", lw=0.8),
                                bbox=dict(boxstyle="round", fc="white", ec="0.6", alpha=0.9))
                    leaders_text.append(f"{sc} on {plat}: {short[a]} → {short[b]} {where}")
            scans = []                       # the scan part, measured beside modeled
            if has_measured and "scan_measured_s" in d:
                for name in ordered(d.loc[d["scan_measured_s"].notna(), "strategy"]):
                    s = d[d["strategy"] == name].drop_duplicates("cpus").sort_values("cpus")
                    s = s[s["scan_measured_s"].notna()]
                    col = color_for(name)
                    ax.plot(s["cpus"], s["scan_s"], ls=":", lw=1.1, color=col, alpha=0.9)
                    ax.plot(s["cpus"], s["scan_measured_s"], ls="none", marker="D", ms=6,
                            mfc="none", mec=col, mew=1.4,
                            label=f"{name}: scan measured (◇) / modeled (···)")
                    scans += [s["scan_s"], s["scan_measured_s"]]
                    note = (str(s["scan_measured_note"].iloc[0]).rsplit(" (", 1)[0]
                            if "scan_measured_note" in s else "sharded")
                    scan_notes.setdefault(f"{sc} on {plat}", note)
            ticks = sorted(d["cpus"].unique())
            alls = set(d.loc[d["is_all"], "cpus"])
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda x, _, alls=alls: f"all\n{x:.0f}" if x in alls else f"{x:.0f}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(min(ticks) / 1.2, max(ticks) * 1.2)
            vals = pd.concat([d["downtime_s"]] + ([d["downtime_low_s"], d["downtime_high_s"]]
                                                 if has_columns(d, "downtime_low_s", "downtime_high_s")
                                                 else []) + scans)
            seconds_axis(ax, vals, which="y", room=1.5)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xlabel("CPUs at reset (log scale; 1 = machine_kexec() today)")
            ax.set_ylabel("modeled downtime (s, log scale)" if not scans else
                          "s, log scale: modeled downtime (lines);\nthe scan part: measured ◇, "
                          "modeled ···")
            kind = d["kind"].iloc[0] if "kind" in d else "modeled"
            kind += "; scan part measured" if scans else ""
            ax.set_title(f"{sc} on {plat} [{kind}]", fontsize=10)
    handles = {}
    for ax in axes.flat:
        for h_, l_ in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l_, h_)
    hs, ls = list(handles.values()), list(handles)
    hs += [Line2D([], [], marker="x", ls="none", color="black", mew=1.4),
           Line2D([], [], marker="o", ls="none", ms=11, mfc="none", mec="black", mew=1.6)]
    ls += ["two lines change order", "the fastest line changes"]
    if refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("refuse kexec (no downtime):\n  " + "\n  ".join(ordered(refused)))
    if nodown - refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("no downtime in the table\n(not representable, or not run):\n  "
                  + "\n  ".join(ordered(nodown - refused)))
    fig.legend(hs, ls, loc="center right", fontsize=8, frameon=False,
               title="line = modeled, band = ASSUMED range", title_fontsize=8.5)
    fig.suptitle(title, fontsize=11.5)
    caption(fig, "Modeled (trackers/kexec) at each CPU count at reset; the band spans every "
                  "ASSUMED parameter (clear rate, SEAMCALL costs, load latency, scan costs, "
                  "TDH.SYS.DISABLE rate) at its low and high end (tornado figure). More CPUs "
                  "than 1 model a reset moved before stop_other_cpus(). Options within "
                  f"{SAME_WITHIN:.0%} of each other at every CPU count share a line (the "
                  "clear dominates them). The fastest is taken among the options that miss "
                  "no page. "
                  + ("Changes of the fastest: " + "; ".join(leaders_text) + "."
                     if leaders_text else "The fastest option is the same at every CPU count.")
                  + "".join(f" Scan part on {where} (◇ measured, ··· modeled): {note}."
                            for where, note in scan_notes.items()))
    fig.tight_layout(rect=(0, 0.045, 1 - 3.4 / fig.get_figwidth(), 0.96))
    return fig
