"""The recommendation table: one row per option, every cost a review weighs.

Built from the report's tables (never typed): :func:`recommendation_table`
reads ``kexec`` (pages missed, worst over every scenario run), ``race``
(P(>= 1 page missed per kexec) at a stated conversion rate, with its Wilson
95 % interval), ``memory_vs_host`` (bytes added at 1, 4 and 16 TiB on the
``reference-1pct`` set, estimate(); 64 TiB where the run has it, else
extrapolated from the last two sizes and marked so), ``conversion_cost``
(measured ns of one 4 KiB and one 2 MiB conversion, mark + unmark, median
and min-max), ``sensitivity`` (downtime over CPUs at reset 1, 8, 32 and all,
and over the ASSUMED parameter ranges).  The qualitative columns come from
:data:`.qualities.QUALITIES`, one entry per option with a source per cell
(kernel file:function or LKML message; docs/kernel-facts.md "Costs not
counted in bytes").

``recommendation.csv`` holds numbers (units in the column names, ``kind``
columns say measured or modeled); :func:`recommendation_markdown` and
:func:`recommendation_text` render it for people: the markdown as a table
of numbers (one short row per option), then each option's qualities with
its sources, each source once; the text within 80 columns, for a
plain-text mail.

:func:`choose` is the decision rule the summary's answer applies: among the
*safe* options (kexec allowed and no page missed in any scenario run, a
structure that holds every host), those within ``DOWNTIME_TIE`` of the least
downtime are equal on downtime; of them, in order, one that runs in crash
kexec, one with no allocation that can fail on the conversion path, the one
adding the least memory at the largest host, the cheapest hot path wins.  A
hot path known only as an upper bound (timed one Python call per
conversion: ``hot_upper_bound``) is unknown to the rule, ranked as if not
measured, and every rendering says "upper bound" beside it.
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd

from ..sets import host_label
from .format import fmt_bytes, fmt_ns, fmt_seconds
from .memory import split_sparse_hosts
from .qualities import qualities

#: the host sizes of the memory columns (PFNs) and their labels
MEMORY_HOSTS = {"1tib": 1 << 28, "4tib": 1 << 30, "16tib": 1 << 32, "64tib": 1 << 34}
#: how memory_note names a host size the run did not build but extrapolated to
EXTRAPOLATED = ": extrapolated from "
#: the conversion rate (MiB/s) P(miss) is stated at, where the race ran it
STATED_RATE_MIB_S = 1024
#: CPUs at reset of the downtime range (besides all of the platform)
RANGE_CPUS = (1, 8, 32)
#: the platform and the scenario of the downtime columns (first that the run has)
REFERENCE_PLATFORM = "spr-2s"
#: downtimes within this fraction of the least are equal for :func:`choose`
DOWNTIME_TIE = 0.01

#: the erratum fact the answer opens with
NO_ERRATUM = ("tdx_quirk_reset_paddr() is a no-op on parts without X86_BUG_TDX_PW_MCE "
              "(arch/x86/virt/vmx/tdx/tdx.c)")


# --------------------------------------------------------------------------
# the table

def first(names, preferred):
    names = list(dict.fromkeys(names))
    return preferred if preferred in names else (names[0] if names else None)


def reference_scenario(kexec: pd.DataFrame) -> str | None:
    """The scenario of the downtime columns: the run's first."""
    return first(kexec["scenario"], None) if not kexec.empty else None


def _pages_missed(kexec: pd.DataFrame, name: str) -> tuple[float, str, bool, bool]:
    s = kexec[kexec["strategy"] == name]
    if s.empty:
        return math.nan, "", False, False
    missed = s["pages_missed"].fillna(0)
    worst = s.loc[missed.idxmax()]
    allowed = bool(s["kexec_allowed"].astype(bool).all())
    representable = bool(s["representable"].astype(bool).all()) \
        if "representable" in s else True
    return float(missed.max()), str(worst["scenario"]), allowed, representable


def _race_cells(race: pd.DataFrame | None, name: str, platform: str) -> dict:
    nan = math.nan
    out = {"p_miss_rate_mib_s": nan, "p_miss_kexec": "", "p_miss": nan, "p_miss_low": nan,
           "p_miss_high": nan, "p_miss_seamcall_high": nan, "p_miss_kind": "modeled"}
    if race is None or race.empty or "p_miss" not in race:
        return out
    r = race[(race["strategy"] == name) & (race["platform_name"] == first(
        race["platform_name"], platform))]
    if r.empty:
        return out
    rates = sorted(set(r["rate_mib_s"]))
    rate = STATED_RATE_MIB_S if STATED_RATE_MIB_S in rates else rates[-1]
    at = r[r["rate_mib_s"] == rate]
    base = at[at["seamcall_cost"] == "base"] if "seamcall_cost" in at else at
    worst = base.loc[base["p_miss"].idxmax()]
    high = at[at["seamcall_cost"] == "high"] if "seamcall_cost" in at else at.iloc[:0]
    out.update({"p_miss_rate_mib_s": rate, "p_miss_kexec": worst["kexec"],
                "p_miss": float(worst["p_miss"]), "p_miss_low": float(worst["p_miss_low"]),
                "p_miss_high": float(worst["p_miss_high"]),
                "p_miss_seamcall_high": float(high["p_miss"].max()) if not high.empty else nan})
    if not bool(worst["kexec_allowed"]):
        out["p_miss_kind"] = "modeled: kexec refused while a TD runs"
    return out


def _memory_cells(mem: pd.DataFrame | None, name: str) -> dict:
    out = {f"added_bytes_{k}": math.nan for k in MEMORY_HOSTS}
    out["memory_kind"] = "modeled"
    out["memory_note"] = ""
    if mem is None or mem.empty:
        return out
    mem, _ = split_sparse_hosts(mem)    # a sparse host (r7625-sparse) is no point of the sweep
    m = mem[mem["tracker"] == name].set_index("host_pfns")["added_bytes"]
    if m.empty:
        # no structure of its own: options 4-7 add nothing (kexec table: added_bytes)
        return out
    notes = []
    for label, pfns in MEMORY_HOSTS.items():
        if pfns in m.index:
            out[f"added_bytes_{label}"] = float(m[pfns])
    have = sorted(m.index)
    for label, pfns in MEMORY_HOSTS.items():
        # past the largest host run, from the last two (a NaN there -- a structure
        # that cannot hold the host -- stays NaN)
        if pfns > have[-1] and len(have) >= 2 and not m[have[-2:]].isna().any():
            a, b = have[-2], have[-1]
            growth = (m[b] / m[a]) ** (math.log(pfns / b) / math.log(b / a)) if m[a] else 0
            out[f"added_bytes_{label}"] = float(m[b] * growth)
            notes.append(f"{host_label(pfns)}{EXTRAPOLATED}{host_label(b)} and "
                         f"{host_label(a)} at their growth rate (the set at that size is "
                         f"over trackers.sets.MAX_SET_RUNS)")
    if notes:
        out["memory_kind"] = "modeled; extrapolated where memory_note says"
    out["memory_note"] = "; ".join(notes)
    return out


def conversion_cells(conv: pd.DataFrame | None, name: str, hooked: bool) -> dict:
    """The hot-path cells of option ``name`` from the conversion_cost table:
    mark + unmark ns of one 4 KiB and one 2 MiB conversion (median, min,
    max), the engine and calls that timed them, whether they are only an
    upper bound (``hot_upper_bound``) and ``hot_kind``, which says so."""
    nan = math.nan
    out = {f"hot_ns_{s}{x}": nan for s in ("4k", "2m") for x in ("", "_min", "_max")}
    out["hot_engine"] = out["hot_calls"] = ""
    out["hot_upper_bound"] = False
    if not hooked:
        out["hot_kind"] = "none: no hook on the conversion path"
        for s in ("4k", "2m"):
            out[f"hot_ns_{s}"] = out[f"hot_ns_{s}_min"] = out[f"hot_ns_{s}_max"] = 0.0
        return out
    out["hot_kind"] = "not measured: no tracker structure (set_memory_*() split)" \
        if name == "pte-softbit" else "not measured in this run"
    if conv is None or conv.empty or "ns_per_conversion_median" not in conv:
        return out
    c = conv[(conv["option"] == name)] if "option" in conv else conv[conv["tracker"] == name]
    c = c.dropna(subset=["ns_per_conversion_median"])
    if c.empty:
        return out
    for size, key in (("4KiB", "4k"), ("2MiB", "2m")):
        sc = c[c["size"] == size]
        if set(sc["op"]) >= {"mark", "unmark"}:
            out[f"hot_ns_{key}"] = float(sc["ns_per_conversion_median"].sum())
            out[f"hot_ns_{key}_min"] = float(sc["ns_per_conversion_min"].sum())
            out[f"hot_ns_{key}_max"] = float(sc["ns_per_conversion_max"].sum())
    out["hot_engine"] = str(c["engine"].iloc[0])
    out["hot_calls"] = str(c["calls"].iloc[0]) if "calls" in c else ""
    # one call per conversion through Python (an emulation's contract, or a
    # structure whose calls cannot be batched in C): the interpreter's overhead
    # is in it, so it bounds the cost from above; the calls say why
    out["hot_upper_bound"] = bool(c["upper_bound"].iloc[0]) if "upper_bound" in c else True
    out["hot_kind"] = ("measured: one Python call per conversion, an upper bound ("
                       + out["hot_calls"] + ")" if out["hot_upper_bound"] else "measured")
    return out


def _downtime_cells(sens: pd.DataFrame | None, name: str, scenario, platform) -> dict:
    nan = math.nan
    out = {"downtime_scenario": scenario or "", "downtime_platform": "",
           "downtime_1cpu_s": nan, "downtime_all_cpus_s": nan, "downtime_min_s": nan,
           "downtime_max_s": nan, "downtime_kind": "modeled"}
    if sens is None or sens.empty:
        return out
    plat = first(sens["platform"], platform)
    s = sens[(sens["strategy"] == name) & (sens["scenario"] == scenario)
             & (sens["platform"] == plat)]
    out["downtime_platform"] = plat
    if s.empty:
        return out
    top = s["cpus_at_reset"].max()
    pick = s[s["cpus_at_reset"].isin(list(RANGE_CPUS) + [top])]
    one = s[s["cpus_at_reset"] == 1]
    alls = s[s["cpus_at_reset"] == top]
    out.update({"downtime_1cpu_s": float(one["downtime_s"].iloc[0]) if not one.empty else nan,
                "downtime_all_cpus_s": float(alls["downtime_s"].iloc[0]),
                "downtime_all_cpus": int(top),
                "downtime_min_s": float(pick[["downtime_s", "downtime_low_s"]].min().min()),
                "downtime_max_s": float(pick[["downtime_s", "downtime_high_s"]].max().max())})
    return out


def recommendation_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per option of the kexec table, in its order (module doc)."""
    from ..kexec import STRATEGIES
    kexec = tables["kexec"]
    scenario = reference_scenario(kexec)
    sens, race = tables.get("sensitivity"), tables.get("race")
    rows = []
    for name in dict.fromkeys(kexec["strategy"]):
        s = kexec[kexec["strategy"] == name]
        missed, worst_sc, allowed, representable = _pages_missed(kexec, name)
        strat = STRATEGIES.get(name)
        # the structure whose memory and hot path the option pays: its tracker's
        # (fallback-bitmap and parallel-reset keep a bitmap), else its own rows
        structure = strat.tracker_cls.name if getattr(strat, "tracker_cls", None) else name
        hooked = bool(getattr(strat, "seamcall_hooked", False))
        q = qualities(name)
        row = {"strategy": name, "option": s["option"].iloc[0],
               "kexec_allowed": allowed, "representable": representable,
               "scenarios": int(s["scenario"].nunique()),
               "pages_missed_worst": missed, "pages_missed_worst_scenario": worst_sc,
               "pages_missed_kind": "modeled",
               **_race_cells(race, name, REFERENCE_PLATFORM),
               **_memory_cells(tables.get("memory_vs_host"), structure),
               **conversion_cells(tables.get("conversion_cost"), structure, hooked),
               "allocation": q.allocation, "allocation_source": q.allocation_source,
               "crash_context": q.crash, "crash_context_source": q.crash_source,
               **_downtime_cells(sens, name, scenario, REFERENCE_PLATFORM),
               "touch_points": q.touch_points, "touch_points_source": q.touch_source,
               "costs_not_in_bytes": q.unbyte, "costs_not_in_bytes_source": q.unbyte_source}
        if all(math.isnan(row[f"added_bytes_{k}"]) for k in MEMORY_HOSTS):
            added = s["added_bytes"].dropna()
            if not added.empty and (added == 0).all():
                for k in MEMORY_HOSTS:            # options 4-7: nothing of their own
                    row[f"added_bytes_{k}"] = 0.0
        row["safe"] = bool(allowed and representable and missed == 0)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# the decision rule

def choose(sens: pd.DataFrame, rec: pd.DataFrame, *, scenario: str, platform: str,
           cpus: int, tie: float = DOWNTIME_TIE) -> tuple[str | None, list[str]]:
    """The option :func:`choose`'s rule (module doc) picks on ``scenario`` at
    ``cpus`` CPUs at reset, and the safe options it judged equal on downtime."""
    safe = set(rec.loc[rec["safe"], "strategy"])
    s = sens[(sens["scenario"] == scenario) & (sens["platform"] == platform)
             & (sens["cpus_at_reset"] == cpus) & sens["strategy"].isin(safe)]
    s = s.dropna(subset=["downtime_s"])
    if s.empty:
        return None, []
    best = s["downtime_s"].min()
    tied = s[s["downtime_s"] <= best * (1 + tie)]["strategy"].tolist()
    r = rec.set_index("strategy").loc[tied]
    big = [c for c in (f"added_bytes_{k}" for k in reversed(list(MEMORY_HOSTS)))
           if c in r and r[c].notna().all()]
    key = r[big[0]] if big else pd.Series(0.0, index=r.index)
    order = sorted(tied, key=lambda n: (not str(r.at[n, "crash_context"]).startswith("yes"),
                                        str(r.at[n, "allocation"]).startswith("can fail"),
                                        key[n], _hot_key(r, n),
                                        list(rec["strategy"]).index(n)))
    return order[0], order


def _hot_key(r: pd.DataFrame, name: str) -> float:
    """The 4 KiB hot path :func:`choose` ranks on: unknown (last) where it
    was not measured or is only an upper bound."""
    x = r.at[name, "hot_ns_4k"]
    if bool(r.at[name, "hot_upper_bound"]) or x is None or math.isnan(x):
        return math.inf
    return float(x)


def choices_by_cpus(sens: pd.DataFrame, rec: pd.DataFrame, *, scenario: str,
                    platform: str) -> list[tuple[int, str]]:
    """(CPU count, chosen option) where the choice changes, in CPU order."""
    out = []
    s = sens[(sens["scenario"] == scenario) & (sens["platform"] == platform)]
    for k in sorted(set(s["cpus_at_reset"])):
        pick, _ = choose(sens, rec, scenario=scenario, platform=platform, cpus=int(k))
        if pick is not None and (not out or out[-1][1] != pick):
            out.append((int(k), pick))
    return out


# --------------------------------------------------------------------------
# rendering

def fmt_p(p, lo, hi) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3g} [{lo:.2g}, {hi:.2g}]"


def _memory_cell(r, label: str, pfns: int) -> str:
    """Bytes added at one host size; "~" where extrapolated (memory_note)."""
    note = r["memory_note"] if isinstance(r["memory_note"], str) else ""
    x = r[f"added_bytes_{label}"]
    mark = "~" if x and f"{host_label(pfns)}{EXTRAPOLATED}" in note else ""
    return mark + fmt_bytes(x)


def _missed_cell(r) -> str:
    if not r["kexec_allowed"]:
        return "refused"
    if not r["representable"]:
        return "not representable"
    return f"{int(r['pages_missed_worst']):,}" + (
        f" ({r['pages_missed_worst_scenario']})" if r["pages_missed_worst"] > 0 else "")


def _hot_cell(r) -> str:
    if not math.isfinite(r["hot_ns_4k"]):
        return "not measured"
    return (f"{fmt_ns(r['hot_ns_4k'])} / {fmt_ns(r['hot_ns_2m'])}"
            + (" (upper bound)" if r["hot_upper_bound"] else ""))


def _downtime_md(r) -> list[str]:
    if not math.isfinite(r["downtime_1cpu_s"]):
        return ["refused", "", ""]
    return [fmt_seconds(r["downtime_1cpu_s"]), fmt_seconds(r["downtime_all_cpus_s"]),
            f"{fmt_seconds(r['downtime_min_s'])}-{fmt_seconds(r['downtime_max_s'])}"]


def sources(r) -> list[str]:
    """The sources of an option's qualitative cells, each once, in cell order
    (a cell's source may list several, separated by "; ")."""
    cells = (r["allocation_source"], r["crash_context_source"], r["touch_points_source"],
             r["costs_not_in_bytes_source"])
    return list(dict.fromkeys(part.strip() for cell in cells for part in str(cell).split("; ")
                              if part.strip()))


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def recommendation_markdown(rec: pd.DataFrame) -> str:
    """The table for people: the numbers, one short row per option, then
    each option's qualities with its sources listed once."""
    if rec.empty:
        return ""
    plat = rec["downtime_platform"].iloc[0]
    sc = rec["downtime_scenario"].iloc[0]
    rate = rec["p_miss_rate_mib_s"].dropna()
    rate_s = f" at {rate.iloc[0]:g} MiB/s" if not rate.empty else ""
    cpus = rec["downtime_all_cpus"].dropna() if "downtime_all_cpus" in rec else rec.iloc[:0]
    all_cpus = f" ({int(cpus.iloc[0])})" if not cpus.empty else ""
    first_host, *_, last_host = MEMORY_HOSTS.values()
    scenarios = int(rec["scenarios"].max())
    head = ["option", "pages missed", "P(miss) [95 % CI]",
            *(f"+{host_label(pfns)}" for pfns in MEMORY_HOSTS.values()),
            "hot path 4 KiB / 2 MiB", "downtime, 1 CPU", f"all CPUs{all_cpus}", "range"]
    lines = [
        f"Pages missed: worst over the {scenarios} scenario{'s' * (scenarios != 1)} run "
        f"[modeled] (not representable: the structure cannot hold every host). P(miss): "
        f"P(>= 1 page missed per kexec){rate_s}, with its Wilson 95 % interval [modeled]. "
        f"+{host_label(first_host)} ... +{host_label(last_host)}: memory the option adds "
        f"at that host size [modeled; ~: extrapolated from the largest hosts the run "
        f"built]. Hot path: mark + unmark of one 4 KiB and one 2 MiB conversion, median "
        f"[measured; an upper bound where timed one Python call per conversion]. "
        f"Downtime at reset on {sc}, {plat}: on 1 CPU, on all CPUs, and its range over "
        f"CPUs and the ASSUMED parameters [modeled].",
        "",
        _md_row(head), "|" + "---|" * len(head)]
    for _, r in rec.iterrows():
        lines.append(_md_row([
            f"`{r['strategy']}`", _missed_cell(r),
            fmt_p(r["p_miss"], r["p_miss_low"], r["p_miss_high"])
            + ("" if r["kexec_allowed"] else " (refused)"),
            *(_memory_cell(r, label, pfns) for label, pfns in MEMORY_HOSTS.items()),
            _hot_cell(r), *_downtime_md(r)]))
    for _, r in rec.iterrows():
        lines.append("")
        lines.append(f"**`{r['strategy']}`**: {r['option']}")
        lines.append("")
        lines.append(f"- allocation on the conversion path: {r['allocation']}")
        lines.append(f"- crash kexec (after the NMI stop): {r['crash_context']}")
        lines.append(f"- kernel touch points: {r['touch_points']}")
        lines.append(f"- costs not in bytes: {r['costs_not_in_bytes']}")
        if str(r["hot_kind"]).startswith("measured"):
            kind = ("measured, an upper bound (one Python call per conversion)"
                    if r["hot_upper_bound"] else "measured")
            lines.append(f"- hot path: {kind}, 4 KiB {fmt_ns(r['hot_ns_4k_min'])}-"
                         f"{fmt_ns(r['hot_ns_4k_max'])} ({r['hot_engine']}: {r['hot_calls']})")
        elif not math.isfinite(r["hot_ns_4k"]):
            lines.append(f"- hot path: {r['hot_kind']}")
        lines.append(f"- sources: {'; '.join(sources(r))}")
    return "\n".join(lines)


#: the plain-text table's columns: header, width, cell
TEXT_WIDTH = 80


def recommendation_text(rec: pd.DataFrame, width: int = TEXT_WIDTH) -> str:
    """The table in plain text within ``width`` columns: one line of numbers per
    option, then each option's qualities as wrapped paragraphs."""
    if rec.empty:
        return ""
    rate = rec["p_miss_rate_mib_s"].dropna()
    rate_s = f"{rate.iloc[0]:g}" if not rate.empty else "?"
    cols = [("option", 15), ("missed", 7), (f"P(miss)@{rate_s}", 11), ("+16 TiB", 8),
            ("+64 TiB", 7), ("hot 4K", 8), ("1 CPU", 8), ("all CPUs", 8)]
    head = " ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(cols))
    out = [head[:width], "-" * min(len(head), width)]
    for _, r in rec.iterrows():
        cells = [r["strategy"][:15],
                 "refused" if not r["kexec_allowed"] else
                 "n/r" if not r["representable"] else _short(r["pages_missed_worst"]),
                 "refused" if not r["kexec_allowed"] else
                 "n/a" if not math.isfinite(r["p_miss"]) else
                 f"{r['p_miss']:.2g}<{r['p_miss_high']:.1g}",
                 fmt_bytes(r["added_bytes_16tib"]), fmt_bytes(r["added_bytes_64tib"]),
                 "n/a" if not math.isfinite(r["hot_ns_4k"]) else fmt_ns(r["hot_ns_4k"])
                 + ("*" if r["hot_upper_bound"] else ""),
                 fmt_seconds(r["downtime_1cpu_s"]), fmt_seconds(r["downtime_all_cpus_s"])]
        line = " ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                        for i, (c, (_, w)) in enumerate(zip(cells, cols)))
        out.append(line[:width])
    out.append("")
    out.extend(textwrap.wrap(
        f"missed: pages missed, worst over {int(rec['scenarios'].max())} scenarios "
        f"[modeled] (n/r: its structure cannot hold every host); P(miss)@{rate_s}: "
        f"P(>= 1 page missed per kexec) at {rate_s} MiB/s of "
        f"conversions, '<' its 95 % upper bound [modeled]; +16/64 TiB: memory added "
        f"[modeled]; hot 4K: mark + unmark of one 4 KiB conversion [measured; *: one "
        f"Python call per conversion, an upper bound, unknown to the choice]; 1 CPU / all "
        f"CPUs: downtime at reset on {rec['downtime_scenario'].iloc[0]}, "
        f"{rec['downtime_platform'].iloc[0]} [modeled].", width))
    for _, r in rec.iterrows():
        out.append("")
        text = (f"{r['strategy']}: allocation: {r['allocation']}. Crash kexec: "
                f"{r['crash_context']}. Touches: {r['touch_points']}. Not in bytes: "
                f"{r['costs_not_in_bytes']}. Sources: {r['allocation_source']}; "
                f"{r['crash_context_source']}.")
        out.extend(textwrap.wrap(text, width, subsequent_indent="  ",
                                 break_long_words=True, break_on_hyphens=False))
    return "\n".join(out)


def hot_4k(r) -> str:
    """The 4 KiB hot-path cell: ns, and "(Python call)" where that bounds it."""
    if not math.isfinite(r["hot_ns_4k"]):
        return "n/a"
    return fmt_ns(r["hot_ns_4k"]) + (" (Python call, an upper bound)"
                                      if r["hot_upper_bound"] else "")


def _short(x) -> str:
    if not math.isfinite(x):
        return "n/a"
    for unit, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= k:
            return f"{x / k:.1f}{unit}"
    return f"{int(x)}"
