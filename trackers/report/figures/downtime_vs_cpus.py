"""Figure 5: modeled downtime against the CPUs at reset per scenario and
platform, one line per group of coinciding options, its band the ASSUMED
parameter ranges; crossings and changes of the fastest option marked.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..format import fmt_load
from .select import (THIS_MACHINE, cpu_sweep, has_columns, is_true, missing_columns,
                     platform_order, typed, with_platform_column)
from .style import (SAME_WITHIN, absent, caption, coinciding_groups, color_for, crossings,
                    empty_figure, ordered, seconds_axis, style_for, wrap_names)


TITLE = ("kexec downtime against the CPUs at reset (modeled; band: ASSUMED parameter "
         "ranges) — lower is better")

#: the columns of :func:`frame`: one row per thing drawn on a panel, the panel
#: named by (scenario, platform) and the thing by ``mark``:
#:   line      a point of one line: ``name`` its first option, ``members`` every
#:             option it stands for (", "-joined), ``seconds`` the downtime,
#:             ``low_s``/``high_s`` the band over its members;
#:   crossing  where two lines change order (``seconds`` interpolated);
#:   fastest   where the fastest line changes from ``previous`` to ``name``,
#:             between ``lo_cpus`` and ``hi_cpus``;
#:   scan      the scan part of option ``name``: measured ``seconds``, modeled
#:             ``modeled_s``, the measurement's ``note``
COLUMNS = ["scenario", "platform", "mark", "name", "members", "unsafe", "cpus", "is_all",
           "seconds", "low_s", "high_s", "modeled_s", "previous", "lo_cpus", "hi_cpus", "note"]


# --------------------------------------------------------------------------
# the data: what each panel draws

def _measured(d: pd.DataFrame) -> pd.Series:
    """The rows with a measured scan (sensitivity.measured_scans)."""
    return (d["scan_measured_s"].notna() if "scan_measured_s" in d
            else pd.Series(False, index=d.index))


def _default_scenarios(df: pd.DataFrame) -> list[str]:
    """The first two scenarios, and the first with a measured scan."""
    scenarios = list(dict.fromkeys(df["scenario"]))[:2]
    measured = _measured(df)
    if measured.any():
        first = df.loc[measured, "scenario"].iloc[0]
        scenarios += [first] if first not in scenarios else []
    return scenarios


def _kexec_status(kexec, scenarios) -> tuple[set, set]:
    """(options that miss pages, options that refuse kexec) on ``scenarios``."""
    if kexec is None or missing_columns(kexec, ["strategy", "pages_missed", "scenario"]):
        return set(), set()
    here = kexec[kexec["scenario"].isin(scenarios)]
    unsafe = set(here.loc[here["pages_missed"] > 0, "strategy"])
    refused = (set(here.loc[~here["kexec_allowed"].map(is_true), "strategy"])
               if "kexec_allowed" in here else set())
    return unsafe, refused


def _curves(d: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """(option -> its rows with a downtime, indexed by CPUs; the options without one)."""
    curves, without = {}, []
    for name in ordered(d["strategy"]):
        s = d[d["strategy"] == name].drop_duplicates("cpus").sort_values("cpus")
        s = s[s["downtime_s"] > 0]
        if s.empty:
            without.append(name)
        else:
            curves[name] = s.set_index("cpus")
    return curves, without


def _line_rows(curves, groups, unsafe) -> list[dict]:
    """One row per point of each group's line: its first option's downtime and
    the band over every member."""
    rows = []
    for members in groups:
        head = curves[members[0]]
        band = has_columns(head, "downtime_low_s", "downtime_high_s") and \
            head["downtime_low_s"].notna().any()
        lo = (pd.concat([curves[m]["downtime_low_s"] for m in members], axis=1).min(axis=1)
              if band else None)
        hi = (pd.concat([curves[m]["downtime_high_s"] for m in members], axis=1).max(axis=1)
              if band else None)
        for cpus, r in head.iterrows():
            rows.append({"mark": "line", "name": members[0], "members": ", ".join(members),
                         "unsafe": members[0] in unsafe, "cpus": cpus, "is_all": r["is_all"],
                         "seconds": r["downtime_s"],
                         "low_s": lo.get(cpus, math.nan) if band else math.nan,
                         "high_s": hi.get(cpus, math.nan) if band else math.nan})
    return rows


def _fastest_by_cpus(d: pd.DataFrame, groups, unsafe) -> dict[float, str]:
    """CPU count -> the line of the fastest option there, among those that miss
    no page (all of them where every option misses); ``rank`` where the table
    has it."""
    head_of = {m: g[0] for g in groups for m in g}
    best = {}
    for cpus, g in d[d["strategy"].isin(head_of)].groupby("cpus"):
        safe = g[~g["strategy"].isin(unsafe)]
        safe = safe if len(safe) else g
        top = (safe.sort_values("rank").iloc[0] if "rank" in safe and
               safe["rank"].notna().all() else safe.loc[safe["downtime_s"].idxmin()])
        best[cpus] = head_of[top["strategy"]]
    return best


def _fastest_rows(best: dict[float, str], lines) -> list[dict]:
    """Where the fastest line changes: at the crossing of the two lines between
    the CPU counts, else midway (on log axes) on the new fastest."""
    rows = []
    cpus = sorted(best)
    for lo_c, hi_c in zip(cpus, cpus[1:]):
        a, b = best[lo_c], best[hi_c]
        if a == b:
            continue
        at = [p for p in crossings({k: lines[k] for k in (a, b)}) if lo_c <= p[0] <= hi_c]
        x, y = ((at[0][0], at[0][1]) if at else
                (math.sqrt(lo_c * hi_c), float(lines[b].loc[hi_c, "y"])))
        rows.append({"mark": "fastest", "name": b, "previous": a, "cpus": x, "seconds": y,
                     "lo_cpus": lo_c, "hi_cpus": hi_c})
    return rows


def _scan_rows(d: pd.DataFrame) -> list[dict]:
    """The scan part of each option with a measured scan: measured beside modeled."""
    rows = []
    m = d[_measured(d)]
    for name in ordered(m["strategy"]):
        s = m[m["strategy"] == name].drop_duplicates("cpus").sort_values("cpus")
        note = (str(s["scan_measured_note"].iloc[0]).rsplit(" (", 1)[0]
                if "scan_measured_note" in s else "sharded")
        load = fmt_load(*(s[c] if c in s else () for c in ("others_cpu_share", "load_1min")))
        note += f"; {load}" if load else ""
        rows += [{"mark": "scan", "name": name, "cpus": r.cpus, "is_all": r.is_all,
                  "seconds": r.scan_measured_s, "modeled_s": r.scan_s, "note": note}
                 for r in s.itertuples()]
    return rows


def _panel_rows(d: pd.DataFrame, unsafe) -> tuple[list[dict], list[str]]:
    """(what one panel draws, the options without a downtime there)."""
    curves, without = _curves(d)
    # options within SAME_WITHIN of each other at every CPU count are one line
    groups = coinciding_groups({n: c["downtime_s"] for n, c in curves.items()}, unsafe)
    lines = {g[0]: curves[g[0]][["downtime_s"]].rename(columns={"downtime_s": "y"})
             for g in groups}                  # as crossings() reads them: cpus -> y
    rows = _line_rows(curves, groups, unsafe)
    rows += [{"mark": "crossing", "cpus": x, "seconds": y, "name": b, "previous": a}
             for x, y, a, b in crossings(lines)]
    rows += _fastest_rows(_fastest_by_cpus(d, groups, unsafe), lines)
    rows += _scan_rows(d)
    return rows, without


def _panel_shown(d: pd.DataFrame, platform: str, asked: bool) -> bool:
    """Whether a panel is drawn: this machine's only where it draws the
    measured scan (its modeled lines alone repeat the reference platform's
    shape at two CPUs), unless its platform was asked for by name."""
    return asked or platform != THIS_MACHINE or bool(_measured(d).any())


def frame(df: pd.DataFrame, kexec: pd.DataFrame | None = None,
          scenarios: list[str] | None = None, platforms: list[str] | None = None):
    """What :func:`draw` draws (:data:`COLUMNS`), from the sensitivity table
    (``df``) and the kexec table (which options miss pages or refuse kexec);
    a panel per scenario and platform (this machine's: :func:`_panel_shown`).
    ``attrs``: ``panels`` [{scenario, platform, kind}] in order, ``refused``
    (option -> the scenarios of the panels where it has no line), and
    ``no_downtime`` (options without a line, not refused)."""
    df = with_platform_column(df)
    asked = platforms is not None
    platforms = platforms or platform_order(df["platform"])
    scenarios = scenarios or _default_scenarios(df)
    unsafe, refused = _kexec_status(kexec, scenarios)
    rows, panels, without = [], [], {}
    for sc in scenarios:
        for plat in platforms:
            d = cpu_sweep(df, plat)
            d = d[d["scenario"] == sc]
            if not _panel_shown(d, plat, asked):
                continue
            kind = d["kind"].iloc[0] if "kind" in d and len(d) else "modeled"
            panels.append({"scenario": sc, "platform": plat, "kind": kind})
            drawn, none = _panel_rows(d, unsafe)
            rows += [{"scenario": sc, "platform": plat, **r} for r in drawn]
            for name in none:
                without.setdefault(name, {})[sc] = None       # the scenarios, in order
    out = typed(pd.DataFrame(rows, columns=COLUMNS),
                ["cpus", "seconds", "low_s", "high_s", "modeled_s", "lo_cpus", "hi_cpus"],
                ["unsafe", "is_all"])
    # without the kexec table, an option without a downtime is taken to refuse
    refused |= set(without) if kexec is None else set()
    out.attrs = {"panels": panels,
                 "refused": {n: list(without.get(n, ())) for n in ordered(refused)},
                 "no_downtime": ordered(set(without) - refused)}
    return out


# --------------------------------------------------------------------------
# the drawing: only what the frame says

def _short(name: str, members: str) -> str:
    """A line's name in a sentence: its first option and how many more."""
    n = members.count(", ")
    return name if n == 0 else f"{name} (+{n} within {SAME_WITHIN:.0%})"


def line_names(f: pd.DataFrame) -> dict[str, list[str]]:
    """Each line (its first option) -> the options it stands for on every
    panel that draws it: the legend names those once for the figure, a panel
    names only the options its line holds beyond them."""
    lines = f[f["mark"] == "line"].drop_duplicates(["scenario", "platform", "name"])
    out = {}
    for name, g in lines.groupby("name", sort=False):
        held = [m.split(", ") for m in g["members"]]
        out[name] = [m for m in held[0] if all(m in h for h in held)]
    return out


def _line_label(name: str, common: list[str], unsafe: bool) -> str:
    label = (wrap_names(", ".join(common), 44) + f"\n  (within {SAME_WITHIN:.0%})"
             if len(common) > 1 else name)
    return label + (" (misses pages)" if unsafe else "")


def _line_style(name: str, several: bool, unsafe: bool) -> dict:
    return dict(color=color_for(name), lw=2.2 if several else 1.8, ms=4.5,
                alpha=0.55 if unsafe else 1.0, **style_for(name))


def _draw_lines(ax, lines: pd.DataFrame, common: dict[str, list[str]]) -> None:
    for name, s in lines.groupby("name", sort=False):
        ax.plot(s["cpus"], s["seconds"], label=name,
                **_line_style(name, len(common[name]) > 1, bool(s["unsafe"].iloc[0])))
        if s["low_s"].notna().any():
            ax.fill_between(s["cpus"], s["low_s"], s["high_s"], color=color_for(name),
                            alpha=0.08, lw=0)


def _draw_fastest(ax, rows: pd.DataFrame, short: dict[str, str]) -> None:
    for r in rows.itertuples():
        ax.plot([r.cpus], [r.seconds], "o", ms=13, mfc="none", mec="black", mew=1.6, zorder=6)
        ax.annotate(f"fastest: {short[r.previous]} →\n{short[r.name]}, "
                    f"between {r.lo_cpus:g} and {r.hi_cpus:g} CPUs", (r.cpus, r.seconds),
                    xytext=(10, 22), textcoords="offset points", fontsize=8,
                    arrowprops=dict(arrowstyle="-", color="0.3", lw=0.8),
                    bbox=dict(boxstyle="round", fc="white", ec="0.6", alpha=0.9))


def _draw_scans(ax, scans: pd.DataFrame) -> None:
    for name, s in scans.groupby("name", sort=False):
        col = color_for(name)
        ax.plot(s["cpus"], s["modeled_s"], ls=":", lw=1.1, color=col, alpha=0.9)
        ax.plot(s["cpus"], s["seconds"], ls="none", marker="D", ms=6, mfc="none", mec=col,
                mew=1.4, label=f"{name}: scan measured (◇) / modeled (···)")


def _cpu_axis(ax, p: pd.DataFrame) -> None:
    """CPUs at reset on a log2 axis, a tick at each count ("all" under the
    platform's every CPU)."""
    ticks = sorted(p["cpus"].unique())
    alls = set(p.loc[p["is_all"], "cpus"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _, alls=alls: f"all\n{x:.0f}" if x in alls else f"{x:.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(ticks) / 1.2, max(ticks) * 1.2)


def _also(lines: pd.DataFrame, common: dict[str, list[str]]) -> list[str]:
    """What this panel's lines hold beyond the legend's names, one line each."""
    out = []
    for name, members in zip(lines["name"], lines["members"]):
        extra = [m for m in members.split(", ") if m not in common[name]]
        if extra:
            out.append(wrap_names(f"here {name}'s line also holds: " + ", ".join(extra), 70))
    return out


def _draw_panel(ax, p: pd.DataFrame, panel: dict, common: dict[str, list[str]]) -> None:
    where = f"{panel['scenario']} on {panel['platform']}"
    if p.empty:
        ax.set_axis_off()
        ax.set_title(f"{where}: no rows", fontsize=9.5)
        return
    lines, scans = p[p["mark"] == "line"], p[p["mark"] == "scan"]
    short = {n: _short(n, m) for n, m in zip(lines["name"], lines["members"])}
    _draw_lines(ax, lines, common)
    for r in p[p["mark"] == "crossing"].itertuples():
        ax.plot([r.cpus], [r.seconds], "x", color="black", ms=6, mew=1.4, zorder=5)
    _draw_fastest(ax, p[p["mark"] == "fastest"], short)
    _draw_scans(ax, scans)
    _cpu_axis(ax, p[p["mark"].isin(["line", "scan"])])
    seconds_axis(ax, pd.concat([lines["seconds"], lines["low_s"], lines["high_s"],
                                scans["seconds"], scans["modeled_s"]]), which="y", room=1.5)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("CPUs at reset (log scale; 1 = machine_kexec() today)")
    ax.set_ylabel("modeled downtime (s, log scale)" if scans.empty else
                  "s, log scale: modeled downtime (lines);\nthe scan part: measured ◇, "
                  "modeled ···")
    kind = panel["kind"] + ("" if scans.empty else "; scan part measured")
    also = _also(lines.drop_duplicates("name"), common)
    ax.set_title("\n".join([f"{where} [{kind}]", *also]), fontsize=10)


def _legend(fig, f: pd.DataFrame, common: dict[str, list[str]]) -> None:
    """One legend for the figure: each line (group of options) named once,
    each measured scan, the marks, and the options without a line."""
    lines = f[f["mark"] == "line"].drop_duplicates("name")
    hs = [Line2D([], [], **_line_style(r.name, len(common[r.name]) > 1, r.unsafe))
          for r in lines.itertuples()]
    ls = [_line_label(r.name, common[r.name], r.unsafe) for r in lines.itertuples()]
    for name in dict.fromkeys(f.loc[f["mark"] == "scan", "name"]):
        hs.append(Line2D([], [], ls="none", marker="D", ms=6, mfc="none", mec=color_for(name),
                         mew=1.4))
        ls.append(f"{name}: scan measured (◇) / modeled (···)")
    hs += [Line2D([], [], marker="x", ls="none", color="black", mew=1.4),
           Line2D([], [], marker="o", ls="none", ms=11, mfc="none", mec="black", mew=1.6)]
    ls += ["two lines change order", "the fastest line changes"]
    scenarios = set(p["scenario"] for p in f.attrs["panels"])
    refused = [n + (f" (on {', '.join(on)})" if on and set(on) != scenarios else "")
               for n, on in f.attrs["refused"].items()]
    if refused:
        hs.append(Line2D([], [], ls="none"))
        ls.append("refuse kexec (no downtime):\n  " + "\n  ".join(refused))
    if f.attrs["no_downtime"]:
        hs.append(Line2D([], [], ls="none"))
        ls.append("no downtime in the table\n(not representable, or not run):\n  "
                  + "\n  ".join(f.attrs["no_downtime"]))
    fig.legend(hs, ls, loc="center right", fontsize=8, frameon=False,
               title="line = modeled, band = ASSUMED range", title_fontsize=8.5)


def _caption(fig, f: pd.DataFrame) -> str:
    """Draws the caption and returns it."""
    lines = f[f["mark"] == "line"]
    short = {(r.scenario, r.platform, r.name): _short(r.name, r.members)
             for r in lines.itertuples()}
    changes = [f"{r.scenario} on {r.platform}: {short[r.scenario, r.platform, r.previous]} → "
               f"{short[r.scenario, r.platform, r.name]} between {r.lo_cpus:g} and "
               f"{r.hi_cpus:g} CPUs" for r in f[f["mark"] == "fastest"].itertuples()]
    scans = f[f["mark"] == "scan"].drop_duplicates(["scenario", "platform"])
    text = ("Modeled (trackers/kexec) at each CPU count at reset; the band spans every "
            "ASSUMED parameter (clear rate, SEAMCALL costs, load latency, scan costs, "
            "TDH.SYS.DISABLE rate) at its low and high end (tornado figure). More CPUs "
            "than 1 model a reset moved before stop_other_cpus(). Options within "
            f"{SAME_WITHIN:.0%} of each other at every CPU count share a line (the "
            "clear dominates them). The fastest is taken among the options that miss "
            "no page. This machine's panels are drawn where they show its measured "
            "scan. "
            + ("Changes of the fastest: " + "; ".join(changes) + "."
               if changes else "The fastest option is the same at every CPU count.")
            + "".join(f" Scan part on {r.scenario} on {r.platform} (◇ measured, ··· "
                      f"modeled): {r.note}." for r in scans.itertuples()))
    caption(fig, text)
    return text


def draw(f: pd.DataFrame):
    """The figure of :func:`frame`'s rows: its panels two across, one legend."""
    panels = f.attrs["panels"]
    ncol = 1 if len(panels) == 1 else 2
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, squeeze=False,
                             figsize=(7.2 * ncol + 3.6, 5.4 * nrow + 1.2))
    common = line_names(f)
    for ax, panel in zip(axes.flat, panels):
        _draw_panel(ax, f[(f["scenario"] == panel["scenario"])
                          & (f["platform"] == panel["platform"])], panel, common)
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    _legend(fig, f, common)
    fig.suptitle(TITLE, fontsize=11.5)
    text = _caption(fig, f)
    lines = 1 + len(text) // int(16 * fig.get_figwidth())   # at 8 pt, ~16 characters an inch
    fig.tight_layout(rect=(0, (0.2 + 0.14 * lines) / fig.get_figheight(),
                           1 - 3.4 / fig.get_figwidth(), 0.96))
    return fig


def figure(df: pd.DataFrame, kexec: pd.DataFrame | None = None,
           scenarios: list[str] | None = None, platforms: list[str] | None = None):
    """Modeled downtime against the CPUs at reset, one line per option with
    its band (every ASSUMED parameter at its low and high end), crossings
    marked and the changes of the fastest option named; a panel per
    scenario (default: the first two, and the first with a measured scan)
    and platform (the reference first; this machine's only where it draws
    the measured scan, unless ``platforms`` names it).  ``kexec``, when
    given, marks the options that miss pages.  Where the table has
    ``scan_measured_s`` (the sharded scan measured on this machine,
    sensitivity.measured_scans) the scan part is drawn for those options:
    measured as hollow diamonds, the modeled scan_s as a dotted line."""
    why = absent(TITLE, "sensitivity", with_platform_column(df),
                 ["strategy", "scenario", "platform", "cpus_at_reset", "downtime_s"])
    if why:
        return why
    f = frame(df, kexec, scenarios, platforms)
    if not f.attrs["panels"]:
        return empty_figure(TITLE, "no panel to draw: only this machine's rows, without a "
                                   "measured scan (name it in platforms= to draw it)")
    return draw(f)
