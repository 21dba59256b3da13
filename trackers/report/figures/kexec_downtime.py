"""Figure 4: modeled kexec downtime per strategy on one platform, the scan
(the only part that differs) beside scan + clear, at the kexec table's CPUs
and at more CPUs from the sensitivity table.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..format import fmt_bytes, fmt_seconds
from .select import cpu_sweep, cpus_label, has_columns, is_true, platform_order
from .style import absent, caption, color_for, empty_figure, ordered, seconds_axis


#: the CPU counts at reset drawn beside the kexec table's own (one: today's
#: reset), from the sensitivity table: 8, 32 and all of the platform; marker per count
SWEEP_MARKERS = {8: "^", 32: "s", "all": "D"}


def figure(df: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
                   platform: str | None = None, scenarios: list[str] | None = None):
    """Modeled kexec downtime per strategy on one platform: the scan (left,
    log axis: the only part that differs) and scan + clear (right), at the
    kexec table's CPUs (today: one) and, from ``sensitivity``, at 8, 32 and
    all CPUs; rows: the first two scenarios.  On ``this-machine`` the measured
    scans are drawn too (median, bars min-max)."""
    title = "kexec downtime per strategy (modeled) — lower is better"
    why = absent(title, "kexec", df, ["strategy", "scenario", "platform_name",
                                       "kexec_allowed", "scan_s", "clear_s", "downtime_s"])
    if why:
        return why
    platform = platform or platform_order(df["platform_name"])[0]
    d = df[df["platform_name"] == platform]
    if d.empty:
        return empty_figure(title, f"no kexec rows on platform {platform!r}")
    scenarios = scenarios or list(dict.fromkeys(d["scenario"]))[:2]
    strategies = ordered(d["strategy"])
    sweep = cpu_sweep(sensitivity, platform)
    n = len(strategies)
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(15, (0.3 * n + 1.5) * len(scenarios)
                                                         + 2.2), squeeze=False, sharey="row")
    measured_drawn, levels_drawn = False, {}
    for r, sc in enumerate(scenarios):
        k = (d[d["scenario"] == sc].drop_duplicates("strategy").set_index("strategy")
             .reindex(strategies))
        sw = sweep[sweep["scenario"] == sc]
        first = d[d["scenario"] == sc].iloc[0] if (d["scenario"] == sc).any() else d.iloc[0]
        base_cpus = int(first["platform_cpus"]) if "platform_cpus" in d and \
            pd.notna(first["platform_cpus"]) else 1
        for col, what in ((0, "scan_s"), (1, "downtime_s")):
            ax = axes[r][col]
            values = []
            for i, name in enumerate(strategies):
                row = k.loc[name]
                c = color_for(name)
                if not is_true(row["kexec_allowed"]):
                    ax.text(0.01, i, "kexec refused: no downtime" if pd.notna(
                        row["kexec_allowed"]) else "not run on this scenario",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                        color="0.35", style="italic")
                    continue
                v = float(row[what])
                if not np.isfinite(v):             # no number: the structure cannot hold it
                    why = ("not representable on this host" if "representable" in row and
                           row["representable"] is not None and not is_true(row["representable"])
                           else "no number in kexec.csv")
                    ax.text(0.01, i, why, transform=ax.get_yaxis_transform(), va="center",
                            fontsize=7.5, color="0.35", style="italic")
                    continue
                pts = [(base_cpus, v, "o", False)]
                s = sw[sw["strategy"] == name] if what in sw else sw.iloc[0:0]
                for key, mk in SWEEP_MARKERS.items():
                    hit = s[s["is_all"]] if key == "all" else s[(s["cpus"] == key) & ~s["is_all"]]
                    if len(hit) and float(hit["cpus"].iloc[0]) != base_cpus:
                        pts.append((float(hit["cpus"].iloc[0]), float(hit[what].iloc[0]), mk,
                                    key == "all"))
                        levels_drawn[key] = cpus_label(hit["cpus"].iloc[0], key == "all")
                xs = [p[1] for p in pts if p[1] > 0]
                values += xs
                if len(xs) > 1:
                    ax.plot([min(xs), max(xs)], [i, i], "-", color=c, lw=1, alpha=0.5)
                for cpus, x, mk, _ in pts[1:]:
                    if x > 0:
                        ax.plot([x], [i], mk, color=c, ms=5.5, mfc="white", mew=1.3)
                if v > 0:
                    err = None
                    if what == "downtime_s" and has_columns(row, "downtime_low_s", "downtime_high_s") and \
                            pd.notna(row["downtime_low_s"]):
                        err = [[v - float(row["downtime_low_s"])],
                               [float(row["downtime_high_s"]) - v]]
                        values += [float(row["downtime_low_s"]), float(row["downtime_high_s"])]
                    ax.errorbar([v], [i], xerr=err, fmt="o", color=c, ms=7, capsize=3, elinewidth=1.2)
                else:
                    ax.text(0.01, i, "no scan (0 s)" if what == "scan_s" else "0 s",
                            transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                            color=c)
                if what == "scan_s" and platform == "this-machine" and \
                        pd.notna(row.get("scan_measured_s", math.nan)) and row["scan_measured_s"] > 0:
                    m = float(row["scan_measured_s"])
                    lo = float(row.get("scan_measured_min_s", m))
                    hi = float(row.get("scan_measured_max_s", m))
                    ax.errorbar([m], [i + 0.28], xerr=[[m - lo], [hi - m]], fmt="D", ms=5,
                                color="black", mfc="white", capsize=2, elinewidth=1)
                    values += [lo, hi]
                    measured_drawn = True
                if what == "downtime_s":
                    txt = fmt_seconds(v)
                    if len(pts) > 1:
                        cpus, x, _, is_all = pts[-1]
                        txt += (f" → {fmt_seconds(x)} (" + (f"all {cpus:.0f}" if is_all
                                                            else cpus_label(cpus)) + ")")
                    missed = row.get("pages_missed", 0)
                    if pd.notna(missed) and missed > 0:
                        txt += f"   MISSES {int(missed):,} pages"
                    ax.annotate(txt, (1.0, i), xycoords=("axes fraction", "data"),
                                xytext=(6, 0), textcoords="offset points", va="center",
                                fontsize=7.5, annotation_clip=False,
                                color="firebrick" if pd.notna(missed) and missed > 0 else "0.15")
            seconds_axis(ax, values, room=1.4)
            ax.set_yticks(range(n))
            ax.set_yticklabels(strategies)
            ax.set_ylim(n - 0.5, -0.5)
            ax.grid(True, axis="x", which="major", alpha=0.3)
            ax.set_xlabel("modeled scan: find the private pages (s, log scale)" if col == 0
                          else "modeled downtime: scan + clear (s, log scale)")
            ram = (f"{fmt_bytes(first['ram_pages'] * 4096)} RAM, "
                   f"{fmt_bytes(first['private_pages'] * 4096)} private; "
                   if "ram_pages" in first and "private_pages" in first else "")
            ax.set_title(f"{sc}: {ram}{'scan' if col == 0 else 'downtime'}", fontsize=9.5)
    kind = d["platform_kind"].iloc[0] if "platform_kind" in d else ""
    fig.suptitle(f"{title}\nplatform {platform} [{kind}]; ● {cpus_label(base_cpus)} at reset "
                 f"(machine_kexec() after stop_other_cpus(): today's kexec)"
                 + ("; hollow: the reset moved where more CPUs run" if levels_drawn else ""),
                 fontsize=11)
    handles = [Line2D([], [], marker="o", ls="none", color="0.3", ms=7),
               *[Line2D([], [], marker=SWEEP_MARKERS[k], ls="none", color="0.3", mfc="white",
                        ms=6) for k in levels_drawn]]
    labels = [f"modeled, {cpus_label(base_cpus)} at reset"
              + ("; bar: ASSUMED-rate range" if has_columns(d, "downtime_low_s", "downtime_high_s")
                 else ""),
              *[f"modeled, {v} at reset" for v in levels_drawn.values()]]
    if measured_drawn:
        handles.append(Line2D([], [], marker="D", ls="none", color="black", mfc="white"))
        labels.append("measured scan on this machine (median, bar min-max)")
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8.5,
               frameon=False, bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    note = ("" if len(sweep) else " The CPU sweep needs the sensitivity table (not in this "
            "report).")
    caption(fig, "Modeled with trackers/kexec: scan = max(scanned bytes / read rate, scan "
                  "work) + node loads × latency; clear = pages reset × 4 KiB / clear rate "
                  "(MOVDIR64B stand-in). The clear is the same for every option that resets "
                  "the same pages, so the scans (left) are where they differ. Platform kinds: "
                  "measured (calibrate), estimate (docs/kernel-facts.md), fallback "
                  "(PERF-NOTES)." + note)
    fig.tight_layout(rect=(0, 0.05, 0.995, 1 - 0.95 / fig.get_figheight()))
    return fig
