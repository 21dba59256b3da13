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

from ..format import fmt_bytes, fmt_load, fmt_seconds
from .select import (THIS_MACHINE, cpu_sweep, cpus_label, has_columns, is_true, platform_order,
                     typed)
from .style import absent, caption, color_for, empty_figure, ordered, seconds_axis


TITLE = "kexec downtime per strategy (modeled) — lower is better"

#: the CPU counts at reset drawn beside the kexec table's own (one: today's
#: reset), from the sensitivity table: 8, 32 and all of the platform; marker per count
SWEEP_MARKERS = {"8": "^", "32": "s", "all": "D"}
#: the two columns of panels: the table's column -> what the panel shows
PARTS = {"scan_s": "scan", "downtime_s": "downtime"}

#: the columns of :func:`frame`: one row per point drawn, or per (scenario,
#: strategy, part) not drawn with ``status`` saying why ("drawn" otherwise);
#: ``sweep`` is "base" for the kexec table's CPU count, else a key of
#: SWEEP_MARKERS; ``low_s``/``high_s`` the ASSUMED-rate range of the base
#: downtime; ``measured_*`` the measured scan (this machine only)
COLUMNS = ["scenario", "strategy", "part", "status", "sweep", "cpus", "is_all", "seconds",
           "low_s", "high_s", "measured_s", "measured_min_s", "measured_max_s", "pages_missed"]


# --------------------------------------------------------------------------
# the data

def _status(row, value: float) -> str:
    """Why a strategy has no point in a panel ("drawn" where it has one)."""
    if not is_true(row["kexec_allowed"]):
        return ("kexec refused: no downtime" if pd.notna(row["kexec_allowed"])
                else "not run on this scenario")
    if not np.isfinite(value):                  # no number: the structure cannot hold it
        return ("not representable on this host" if "representable" in row and
                row["representable"] is not None and not is_true(row["representable"])
                else "no number in kexec.csv")
    return "drawn"


def _sweep_points(s: pd.DataFrame, part: str, base_cpus: int) -> list[dict]:
    """The sensitivity table's points of one strategy at the SWEEP_MARKERS counts."""
    out = []
    if part not in s:
        return out
    for key in SWEEP_MARKERS:
        hit = s[s["is_all"]] if key == "all" else s[(s["cpus"] == int(key)) & ~s["is_all"]]
        if len(hit) and float(hit["cpus"].iloc[0]) != base_cpus:
            out.append({"sweep": key, "cpus": float(hit["cpus"].iloc[0]),
                        "is_all": key == "all", "seconds": float(hit[part].iloc[0])})
    return out


def _base_point(row, part: str, base_cpus: int, platform: str) -> dict:
    """The kexec table's own point, its range and (scan, this machine) the measured scan."""
    point = {"sweep": "base", "cpus": base_cpus, "is_all": False, "seconds": float(row[part])}
    if part == "downtime_s":
        if has_columns(row, "downtime_low_s", "downtime_high_s") and \
                pd.notna(row["downtime_low_s"]):
            point["low_s"], point["high_s"] = (float(row["downtime_low_s"]),
                                               float(row["downtime_high_s"]))
        point["pages_missed"] = row.get("pages_missed", 0)
    m = row.get("scan_measured_s", math.nan)
    if part == "scan_s" and platform == THIS_MACHINE and pd.notna(m) and m > 0:
        point["measured_s"] = float(m)
        point["measured_min_s"] = float(row.get("scan_measured_min_s", m))
        point["measured_max_s"] = float(row.get("scan_measured_max_s", m))
    return point


def _scenario_rows(k: pd.DataFrame, sweep: pd.DataFrame, base_cpus: int,
                   platform: str) -> list[dict]:
    """Every strategy's points in both panels of one scenario."""
    rows = []
    for name, row in k.iterrows():
        s = sweep[sweep["strategy"] == name]
        for part in PARTS:
            value = float(row[part])
            status = _status(row, value)
            if status != "drawn":
                rows.append({"strategy": name, "part": part, "status": status})
                continue
            points = [_base_point(row, part, base_cpus, platform),
                      *_sweep_points(s, part, base_cpus)]
            rows += [{"strategy": name, "part": part, "status": "drawn", **p} for p in points]
    return rows


def frame(df: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
          platform: str | None = None, scenarios: list[str] | None = None) -> pd.DataFrame:
    """What :func:`draw` draws (:data:`COLUMNS`): the kexec table's strategies
    on one platform (default: the reference), the first two scenarios.
    ``attrs``: ``platform``, ``platform_kind``, ``strategies`` (the rows of
    every panel), ``scenarios``, ``base_cpus`` (the kexec table's CPU count),
    ``ram`` (scenario -> its RAM and private bytes, in words), ``has_range``,
    ``has_sweep`` (the sensitivity table had this platform's rows), ``load``
    (how busy the machine was while its scans were timed: format.fmt_load,
    "" where none was)."""
    platform = platform or platform_order(df["platform_name"])[0]
    d = df[df["platform_name"] == platform]
    scenarios = scenarios or list(dict.fromkeys(d["scenario"]))[:2]
    strategies = ordered(d["strategy"])
    sweep = cpu_sweep(sensitivity, platform)
    rows, ram, base_cpus = [], {}, 1
    for sc in scenarios:
        here = d[d["scenario"] == sc]
        first = here.iloc[0] if len(here) else d.iloc[0]
        base_cpus = (int(first["platform_cpus"]) if "platform_cpus" in d and
                     pd.notna(first["platform_cpus"]) else 1)
        ram[sc] = (f"{fmt_bytes(first['ram_pages'] * 4096)} RAM, "
                   f"{fmt_bytes(first['private_pages'] * 4096)} private; "
                   if "ram_pages" in first and "private_pages" in first else "")
        k = here.drop_duplicates("strategy").set_index("strategy").reindex(strategies)
        rows += [{"scenario": sc, **r} for r in
                 _scenario_rows(k, sweep[sweep["scenario"] == sc], base_cpus, platform)]
    out = typed(pd.DataFrame(rows, columns=COLUMNS),
                ["cpus", "seconds", "low_s", "high_s", "measured_s", "measured_min_s",
                 "measured_max_s", "pages_missed"], ["is_all"])
    out.attrs = {"platform": platform,
                 "platform_kind": d["platform_kind"].iloc[0] if "platform_kind" in d else "",
                 "strategies": strategies, "scenarios": scenarios, "base_cpus": base_cpus,
                 "ram": ram, "has_range": has_columns(d, "downtime_low_s", "downtime_high_s"),
                 "has_sweep": bool(len(sweep)),
                 "load": fmt_load(*(d.loc[d["scenario"].isin(scenarios), c]
                                    if c in d else () for c in ("others_cpu_share",
                                                                "load_1min")))}
    return out


# --------------------------------------------------------------------------
# the drawing

def _note(ax, i: int, text: str, color="0.35", italic: bool = True) -> None:
    ax.text(0.01, i, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
            color=color, style="italic" if italic else "normal")


def _row_text(p: pd.DataFrame) -> tuple[str, str]:
    """The words right of a strategy's downtime: base → the last CPU count, and
    the pages it misses; and their colour."""
    base = p[p["sweep"] == "base"].iloc[0]
    txt = fmt_seconds(base["seconds"])
    if len(p) > 1:
        last = p.iloc[-1]
        txt += (f" → {fmt_seconds(last['seconds'])} ("
                + (f"all {last['cpus']:.0f}" if last["is_all"] else cpus_label(last["cpus"]))
                + ")")
    missed = base["pages_missed"]
    if pd.notna(missed) and missed > 0:
        txt += f"   MISSES {int(missed):,} pages"
        return txt, "firebrick"
    return txt, "0.15"


def _draw_strategy(ax, i: int, p: pd.DataFrame, part: str) -> list[float]:
    """One strategy's points in one panel at row ``i``; returns the values the
    time axis must show."""
    name = p["strategy"].iloc[0]
    c = color_for(name)
    base = p[p["sweep"] == "base"].iloc[0]
    v = base["seconds"]
    xs = [x for x in p["seconds"] if x > 0]
    values = list(xs)
    if len(xs) > 1:
        ax.plot([min(xs), max(xs)], [i, i], "-", color=c, lw=1, alpha=0.5)
    for r in p[p["sweep"] != "base"].itertuples():
        if r.seconds > 0:
            ax.plot([r.seconds], [i], SWEEP_MARKERS[r.sweep], color=c, ms=5.5, mfc="white",
                    mew=1.3)
    if v > 0:
        err = None
        if pd.notna(base["low_s"]):
            err = [[v - base["low_s"]], [base["high_s"] - v]]
            values += [base["low_s"], base["high_s"]]
        ax.errorbar([v], [i], xerr=err, fmt="o", color=c, ms=7, capsize=3, elinewidth=1.2)
    else:
        _note(ax, i, "no scan (0 s)" if part == "scan_s" else "0 s", color=c, italic=False)
    if pd.notna(base["measured_s"]):
        m, lo, hi = base["measured_s"], base["measured_min_s"], base["measured_max_s"]
        ax.errorbar([m], [i + 0.28], xerr=[[m - lo], [hi - m]], fmt="D", ms=5,
                    color="black", mfc="white", capsize=2, elinewidth=1)
        values += [lo, hi]
    if part == "downtime_s":
        txt, color = _row_text(p)
        ax.annotate(txt, (1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=7.5,
                    annotation_clip=False, color=color)
    return values


def _draw_panel(ax, p: pd.DataFrame, part: str, strategies: list[str], title: str) -> None:
    values = []
    for i, name in enumerate(strategies):
        s = p[p["strategy"] == name]
        if s.empty:
            continue
        if s["status"].iloc[0] != "drawn":
            _note(ax, i, s["status"].iloc[0])
            continue
        values += _draw_strategy(ax, i, s, part)
    seconds_axis(ax, values, room=1.4)
    n = len(strategies)
    ax.set_yticks(range(n))
    ax.set_yticklabels(strategies)
    ax.set_ylim(n - 0.5, -0.5)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.set_xlabel("modeled scan: find the private pages (s, log scale)" if part == "scan_s"
                  else "modeled downtime: scan + clear (s, log scale)")
    ax.set_title(title, fontsize=9.5)


def _legend(fig, f: pd.DataFrame) -> None:
    a = f.attrs
    levels = {}
    for r in f[f["sweep"].notna() & (f["sweep"] != "base")].itertuples():
        levels.setdefault(r.sweep, cpus_label(r.cpus, r.is_all))
    base = cpus_label(a["base_cpus"])
    handles = [Line2D([], [], marker="o", ls="none", color="0.3", ms=7),
               *[Line2D([], [], marker=SWEEP_MARKERS[k], ls="none", color="0.3", mfc="white",
                        ms=6) for k in levels]]
    labels = [f"modeled, {base} at reset"
              + ("; bar: ASSUMED-rate range" if a["has_range"] else ""),
              *[f"modeled, {v} at reset" for v in levels.values()]]
    if f["measured_s"].notna().any():
        handles.append(Line2D([], [], marker="D", ls="none", color="black", mfc="white"))
        labels.append("measured scan on this machine (median, bar min-max)")
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8.5,
               frameon=False, bbox_to_anchor=(0.5, 1 - 0.62 / fig.get_figheight()))
    fig.suptitle(f"{TITLE}\nplatform {a['platform']} [{a['platform_kind']}]; ● {base} at reset "
                 f"(machine_kexec() after stop_other_cpus(): today's kexec)"
                 + ("; hollow: the reset moved where more CPUs run" if levels else ""),
                 fontsize=11)


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: per scenario, the scan and the downtime."""
    a = f.attrs
    n = len(a["strategies"])
    fig, axes = plt.subplots(len(a["scenarios"]), 2, squeeze=False, sharey="row",
                             figsize=(15, (0.3 * n + 1.5) * len(a["scenarios"]) + 2.2))
    for r, sc in enumerate(a["scenarios"]):
        for col, part in enumerate(PARTS):
            _draw_panel(axes[r][col], f[(f["scenario"] == sc) & (f["part"] == part)], part,
                        a["strategies"], f"{sc}: {a['ram'][sc]}{PARTS[part]}")
    _legend(fig, f)
    note = ("" if a["has_sweep"] else " The CPU sweep needs the sensitivity table (not in this "
            "report).")
    load = (f" Measured scans timed with no other step of the report running; "
            f"{a['load']}." if a["load"] else "")
    caption(fig, "Modeled with trackers/kexec: scan = call + max(scanned bytes / read rate, "
                 "scan work) + node loads × latency, with each option's own structure's "
                 "measured costs on this-machine (trackers/kexec/platform.py); clear = pages "
                 "reset × 4 KiB / clear rate (MOVDIR64B stand-in). The clear is the same for "
                 "every option that resets the same pages, so the scans (left) are where they "
                 "differ. Platform kinds: measured (calibrate), estimate "
                 "(docs/kernel-facts.md), fallback (this machine before `tdx-trackers "
                 "calibrate`, not measured)." + load + note)
    # tight_layout counts the words right of the downtime panel but leaves the
    # last of "... MISSES 1,337 pages" on the edge: a quarter inch more
    fig.tight_layout(rect=(0, 0.05, 1 - 0.25 / fig.get_figwidth(),
                           1 - 0.95 / fig.get_figheight()))
    return fig


def figure(df: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
           platform: str | None = None, scenarios: list[str] | None = None):
    """Modeled kexec downtime per strategy on one platform: the scan (left,
    log axis: the only part that differs) and scan + clear (right), at the
    kexec table's CPUs (today: one) and, from ``sensitivity``, at 8, 32 and
    all CPUs; rows: the first two scenarios.  On ``this-machine`` the measured
    scans are drawn too (median, bars min-max)."""
    why = absent(TITLE, "kexec", df, ["strategy", "scenario", "platform_name",
                                      "kexec_allowed", "scan_s", "clear_s", "downtime_s"])
    if why:
        return why
    platform = platform or platform_order(df["platform_name"])[0]
    if not (df["platform_name"] == platform).any():
        return empty_figure(TITLE, f"no kexec rows on platform {platform!r}")
    return draw(frame(df, sensitivity, platform, scenarios))
