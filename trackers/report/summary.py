"""The verdict table and summary.md, from the report's tables.

The verdict table has one row per strategy.  It holds numbers (bytes,
seconds, pages) with the unit and [modeled] or [measured] in each column
name, so ``verdict.csv`` loads into pandas as numbers;
:func:`format_verdict` renders it for people (Markdown, the terminal).  The
``verdict`` column applies three rules in order:

1. ``refuses kexec``         -- machine_kexec_prepare() says no;
2. ``UNSAFE: misses pages``  -- some page still private at kexec is not reset;
3. ``safe``                  -- plus ``fastest`` (least downtime among the
   safe ones) and ``adds least`` (least added memory), where they apply.
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd

from ..kexec.strategy import engine_kind
from ..linux.build import INSTALL_HINT
from . import answer, recommend, sharded
from .figures import FIGURES
from .figures.style import ordered
from .format import fmt_bytes, fmt_load, fmt_seconds


VERDICT_PLATFORM = "spr-2s"
#: scenarios shown as columns (the report's first two: the 1 TiB and 16 TiB hosts);
#: the verdict and "pages missed" still cover every scenario
VERDICT_SCENARIOS = 2


def _pick_platform(names) -> str:
    names = list(dict.fromkeys(names))
    return VERDICT_PLATFORM if VERDICT_PLATFORM in names else names[0]


def verdict_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per strategy on the verdict platform: numbers, units in the names."""
    kexec = tables["kexec"]
    plat = _pick_platform(kexec["platform_name"])
    k = kexec[kexec["platform_name"] == plat]
    scenarios = list(dict.fromkeys(k["scenario"]))[:VERDICT_SCENARIOS]
    rows = []
    for name in ordered(k["strategy"]):
        s = k[k["strategy"] == name]
        allowed = bool(s["kexec_allowed"].all())
        # a structure that cannot hold a host's PFNs (NotRepresentable: the
        # IDA beyond 2^31) is no option on that host: NaN numbers, not ranked
        absent = ~s["representable"].astype(bool)
        row = {"strategy": name, "option": s["option"].iloc[0], "kexec_allowed": allowed}
        for sc in scenarios:
            r = s[s["scenario"] == sc]
            if r.empty:
                continue
            r = r.iloc[0]
            row[f"added_bytes [modeled] {sc}"] = (math.nan if pd.isna(r["added_bytes"])
                                                  else int(r["added_bytes"]))
            row[f"downtime_s [modeled] {sc}"] = (float(r["downtime_s"]) if r["kexec_allowed"]
                                                 else math.nan)
        row["pages_missed_max [modeled] all scenarios"] = int(s["pages_missed"].fillna(0).max())
        row["_absent"] = ", ".join(dict.fromkeys(s.loc[absent, "scenario"]))
        row["_down"] = float(s["downtime_s"].max()) if allowed and not absent.any() else math.inf
        row["_added"] = float(s["added_bytes"].max()) if not absent.any() else math.inf
        rows.append(row)
    df = pd.DataFrame(rows)
    missed = df["pages_missed_max [modeled] all scenarios"]
    safe = df["kexec_allowed"] & (missed == 0) & (df["_absent"] == "")
    verdicts = []
    for i, r in df.iterrows():
        if not r["kexec_allowed"]:
            verdicts.append("refuses kexec")
        elif missed[i] > 0:
            verdicts.append("UNSAFE: misses pages")
        elif r["_absent"]:
            verdicts.append(f"not an option on {r['_absent']} (not representable)")
        else:
            v = ["safe"]
            if safe.any() and r["_down"] == df.loc[safe, "_down"].min():
                v.append("fastest")
            if safe.any() and r["_added"] == df.loc[safe, "_added"].min():
                v.append("adds least")
            verdicts.append(", ".join(v))
    df["verdict"] = verdicts
    df.attrs["platform"] = plat
    return df.drop(columns=[c for c in df if c.startswith("_")])


def format_verdict(verdict: pd.DataFrame) -> pd.DataFrame:
    """The verdict table for people: bytes and seconds in readable units."""
    out = verdict.copy()
    for c in out.columns:
        if c.startswith("added_bytes"):
            out[c] = out[c].map(lambda x: "n/a" if pd.isna(x) else fmt_bytes(x))
            out = out.rename(columns={c: c.replace("added_bytes", "added")})
        elif c.startswith("downtime_s"):
            out[c] = [fmt_seconds(x) if not math.isnan(x) else
                      "n/a" if v.startswith("not an option") else "refused"
                      for x, v in zip(out[c], out["verdict"])]
            out = out.rename(columns={c: c.replace("downtime_s", "downtime")})
        elif c.startswith("pages_missed_max"):
            out[c] = out[c].map(lambda x: f"{int(x):,}")
            out = out.rename(columns={c: c.replace("pages_missed_max", "pages missed (max)")})
    out["kexec_allowed"] = out["kexec_allowed"].map({True: "yes", False: "NO"})
    return out


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join("" if (isinstance(v, float) and math.isnan(v))
                                       else str(v).replace("|", "\\|") for v in r) + " |")
    return "\n".join(lines)


def findings(tables) -> list[str]:
    """A few sentences computed from the tables (no judgement that the data do not show)."""
    out = []
    kexec = tables.get("kexec")
    if kexec is not None and not kexec.empty:
        plat = _pick_platform(kexec["platform_name"])
        k = kexec[(kexec["platform_name"] == plat) & kexec["kexec_allowed"]]
        for sc in list(dict.fromkeys(k["scenario"]))[:2]:
            d = k[k["scenario"] == sc]
            hooked = d[d["pages_missed"] == 0]
            if hooked.empty:
                continue
            share = (hooked["clear_s"] / hooked["downtime_s"]).min()
            spread = hooked["scan_s"].max() - hooked["scan_s"].min()
            out.append(f"On `{sc}` ({plat}), clearing is at least {share:.0%} of the modeled "
                       f"downtime of every safe strategy "
                       f"({fmt_seconds(hooked['downtime_s'].min())} to "
                       f"{fmt_seconds(hooked['downtime_s'].max())}); their scans differ by "
                       f"{fmt_seconds(spread)}.")
        missed = kexec[kexec["pages_missed"] > 0]
        for name in ordered(missed["strategy"]):
            m = missed[missed["strategy"] == name]
            worst = m.loc[m["pages_missed"].idxmax()]
            out.append(f"`{name}` misses pages in {m['scenario'].nunique()} of "
                       f"{kexec['scenario'].nunique()} scenarios (up to "
                       f"{int(worst['pages_missed']):,} pages, "
                       f"{fmt_bytes(worst['pages_missed'] * 4096)}, on `{worst['scenario']}`).")
    scan = tables.get("scan_time")
    if scan is not None and not scan.empty and "model_ratio" in scan:
        r = scan.dropna(subset=["model_ratio"])
        if not r.empty:
            inside = r["model_ratio"].between(0.5, 2.0)
            out.append(f"The scan model lies within 2x of the measured scan at "
                       f"{int(inside.sum())} of {len(r)} points on this machine "
                       f"(model/measured {r['model_ratio'].min():.2g} to "
                       f"{r['model_ratio'].max():.2g}, scan_time.csv `model_ratio`)"
                       + (": outside at " + ", ".join(
                           f"`{x.tracker}` {x.host} ({x.model_ratio:.2g}x)"
                           for x in r[~inside].itertuples())
                          + ", each with the term the model lacks there in `model_note`"
                          if (~inside).any() else "")
                       + ".")
    load = timed_load(tables)
    if load:
        out.append(load)
    line = sharded.summary_line(tables.get(sharded.TABLE))
    if line:
        out.append(line)
    mem = tables.get("memory_vs_host")
    if mem is not None and not mem.empty:
        top = mem[mem["host_bytes"] == mem["host_bytes"].max()]
        pos = top[top["added_bytes"] > 0].sort_values("added_bytes")
        if len(pos) >= 2:
            lo, hi = pos.iloc[0], pos.iloc[-1]
            out.append(f"At {fmt_bytes(lo['host_bytes'])} of RAM with the `{lo['set']}` set "
                       f"(memory_vs_host), the structures that add memory "
                       f"range from {fmt_bytes(lo['added_bytes'])} (`{lo['tracker']}`) to "
                       f"{fmt_bytes(hi['added_bytes'])} (`{hi['tracker']}`); PAMT is "
                       f"{fmt_bytes(lo['host_bytes'] / 256)} for comparison.")
    race = tables.get("race")
    if race is not None and not race.empty:
        if "seamcall_cost" in race:
            race = race[race["seamcall_cost"] == "base"]
        allowed = race[race["kexec_allowed"]]
        r = allowed[allowed["missed_expected"] > 0]
        clean = sorted(set(allowed["strategy"]) - set(r["strategy"]))
        for name in ordered(r["strategy"]):
            x = r[r["strategy"] == name].sort_values("rate_mib_s").iloc[-1]
            out.append(f"In the conversion race, `{name}` misses about "
                       f"{x['missed_expected']:.3g} pages per {x['kexec']} kexec at "
                       f"{x['rate_mib_s']:g} MiB/s of private->shared conversions "
                       f"({x['platform_name']}).")
        if clean:
            out.append(f"{len(clean)} strategies that allow kexec miss no page in the race "
                       f"at any rate: {', '.join(ordered(clean))}.")
        out.extend(_order_findings(allowed, tables.get("race_order")))
    return out


#: the tables with numbers timed here, each with its ``others_cpu_share``
TIMED_TABLES = ("scan_time", "kexec", "sensitivity", "conversion_cost", "validation")


def timed_load(tables) -> str:
    """One sentence: how busy this machine was while the report timed
    something (every ``others_cpu_share`` and ``load_1min``), "" where no
    table measured it."""
    named = [t for t in TIMED_TABLES if tables.get(t) is not None
             and "others_cpu_share" in tables[t] and tables[t]["others_cpu_share"].notna().any()]
    if not named:
        return ""
    shares = pd.concat([tables[t]["others_cpu_share"] for t in named])
    loads = pd.concat([tables[t]["load_1min"] for t in named if "load_1min" in tables[t]])
    return (f"Every timed step ran with no other step of the report beside it; "
            f"{fmt_load(shares, loads)} (`others_cpu_share` in "
            + ", ".join(f"{t}.csv" for t in named) + ").")


def _order_findings(premise: pd.DataFrame, zap: pd.DataFrame | None) -> list[str]:
    """What changes when the race runs in mainline's order (race_order.csv:
    the zap before the attribute store) rather than attributes first."""
    if zap is None or zap.empty:
        return []
    keys = ["strategy", "kexec", "rate_mib_s", "platform_name"]
    both = premise.merge(zap[zap["kexec_allowed"]], on=keys, suffixes=("", "_zap"))
    out = []
    for name in ordered(both["strategy"]):
        b = both[both["strategy"] == name]
        if (b["missed_expected"] > 0).any() and (b["missed_expected_zap"] == 0).all():
            out.append(f"`{name}` misses pages in flight only under the attributes-first "
                       f"premise: in mainline's order (kvm_vm_set_mem_attributes() zaps before "
                       f"its xa_store loop; race_order.csv) it misses none.")
        elif (b["missed_expected_zap"] > 0).any():
            x = b.sort_values("rate_mib_s").iloc[-1]
            out.append(f"In mainline's order (race_order.csv) `{name}` still misses about "
                       f"{x['missed_expected_zap']:.3g} pages per {x['kexec']} kexec at "
                       f"{x['rate_mib_s']:g} MiB/s (P(miss) {x['p_miss_zap']:.2f}).")
    return out


def _engines_by_option(tables) -> dict[str, list[str]]:
    """Engine -> the options it measured (scan_time and kexec rows with a timed scan)."""
    out: dict[str, list[str]] = {}
    for name, col in (("scan_time", "tracker"), ("kexec", "strategy")):
        df = tables.get(name)
        if df is None or df.empty or "engine" not in df or "scan_runs" not in df:
            continue
        timed = df[df["scan_runs"].fillna(0) > 0]
        for engine, option in zip(timed["engine"], timed[col]):
            names = out.setdefault(str(engine), [])
            if option not in names:
                names.append(option)
    return {e: ordered(n) for e, n in out.items()}


def engine_line(tables, meta: dict) -> str:
    """summary.md's first line: which engine produced the measured numbers, or
    why the kernel's own code did not and how to get it."""
    engines = _engines_by_option(tables)
    kc = meta.get("kernel_code")
    if kc is not None and not kc.get("available"):
        how = ("run `tdx-trackers report` without it" if kc.get("skipped") else
               kc.get("fix") or
               f"install `{INSTALL_HINT}` (as root) and run `tdx-trackers report` again")
        return (f"**Measured numbers come from the Python/numba emulations, not the "
                f"kernel's own code:** {kc.get('reason', 'unavailable')}. To measure the "
                f"kernel's own code, {how}.")
    kernel = {e: n for e, n in engines.items() if engine_kind(e) == "kernel code"}
    if not kernel:
        return ("**Measured numbers:** " + ("; ".join(f"{e} ({', '.join(n)})"
                                                       for e, n in engines.items())
                                             or "none (modeled only)") + ".")
    version = (f"Linux v{kc['version']}" if kc and kc.get("version")
               else next(iter(kernel)))
    rest = [f"{e}: {', '.join(n)}" for e, n in engines.items() if e not in kernel]
    covered = ordered({x for n in kernel.values() for x in n})
    return (f"**Measured numbers come from the kernel's own code, {version}** (lib/xarray.c, "
            f"lib/idr.c, lib/maple_tree.c, find_bit, built and run in userspace) for every "
            f"tracker with a @kernel twin ({', '.join(covered)})"
            + (f"; elsewhere from {'; '.join(rest)}" if rest else "")
            + ". The `engine` column of scan_time.csv and kexec.csv names it per number."
            + (f" Before this run, tdx-trackers {kc['repaired']}." if kc and kc.get("repaired")
               else ""))


def scenario_lines(tables, meta: dict) -> list[str]:
    """Which scenarios the verdict covers, and each one left out with why."""
    kexec = tables["kexec"]
    ran = list(dict.fromkeys(kexec["scenario"]))
    out = [f"The verdict and \"pages missed (max, all scenarios)\" cover all {len(ran)} "
           f"scenarios run: {', '.join(f'`{x}`' for x in ran)}."]
    left = meta.get("left_out") or {}
    if left:
        out.append("Left out of this run: " + "; ".join(f"`{k}` ({v})" for k, v in left.items())
                   + ".")
    else:
        out.append("No named scenario is left out.")
    return out


def provenance_lines(prov: dict) -> list[str]:
    """What produced this report (provenance.json), for people."""
    if not prov:
        return []
    pk = prov.get("packages", {})
    kc = prov.get("kernel_code") or {}
    out = [f"- git commit: `{prov.get('git_commit', 'unknown')}`"
           + (" (uncommitted changes)" if prov.get("git_dirty") else ""),
           f"- seed: {prov.get('seed')}; command: `{prov.get('command', '')}`",
           f"- machine: {prov.get('cpu_model', 'unknown')}, {prov.get('cpu_count')} CPUs; "
           f"Python {prov.get('python', '?')}",
           "- packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
           "- kernel code: " + (f"Linux v{kc['version']} (built and run in userspace)"
                                if kc.get("version") else kc.get("reason", "not used"))]
    for name, p in (prov.get("platforms") or {}).items():
        out.append(f"- platform `{name}` [{p.get('kind')}]: " + "; ".join(
            f"{k}: {v}" for k, v in (p.get("sources") or {}).items()))
    return out


def answer_text(tables, rec: pd.DataFrame, width: int = 80) -> list[str]:
    """The answer in plain text, no line over ``width`` columns: summary.txt's
    first lines and the end of ``tdx-trackers report``'s output."""
    out = ["TDX private pages at kexec: the answer", ""]
    for line in answer.answer_lines(tables, rec):
        plain = line.replace("**", "").replace("`", "")
        out.extend(textwrap.wrap(plain, width, subsequent_indent="  ",
                                 break_on_hyphens=False, break_long_words=True))
    return out


def summary_text(tables, rec: pd.DataFrame, meta: dict, width: int = 80) -> str:
    """summary.txt: the answer and the recommendation table in plain text, no
    line over ``width`` columns (a plain-text mail to the kernel list)."""
    out = answer_text(tables, rec, width)
    out += ["", "The options (recommendation.csv has every number):", ""]
    out.append(recommend.recommendation_text(rec, width))
    prov = meta.get("provenance") or {}
    if prov:
        out += ["", "Produced by:"]
        for line in provenance_lines(prov)[:5]:
            out.extend(textwrap.wrap(line.replace("`", ""), width, subsequent_indent="  ",
                                     break_on_hyphens=False))
    text = "\n".join(out) + "\n"
    return "\n".join(x if len(x) <= width else x[:width] for x in text.split("\n"))


def summary_markdown(tables, verdict: pd.DataFrame, figures: list[str], meta: dict,
                     rec: pd.DataFrame | None = None) -> str:
    out = [engine_line(tables, meta)]
    if rec is not None and not rec.empty:
        out.append("## The answer")
        out.extend(answer.answer_lines(tables, rec))
    out += ["", "# TDX private-page tracking at kexec: design-review report", ""]
    out.append(f"Generated by `{meta['command']}` in "
               f"{fmt_seconds(meta.get('elapsed_s', 0))} ({meta.get('mode', 'default')} run, seed "
               f"{meta.get('seed', 0)}). Trackers: {', '.join(meta.get('trackers', []))}."
               + (f" {meta['quick_covers']}." if meta.get("quick_covers") else ""))
    out.append("")
    out.append("Every number says whether it is **measured** (timed on this machine; the "
               "`engine` column names what was timed: the kernel's own code, a C layout of "
               "a structure the kernel keeps, or a Python/numba emulation) or **modeled** "
               "(kernel struct sizes from `trackers/kernel.py`, platform rates and "
               "per-entry, per-run and per-lookup scan costs -- measured by `tdx-trackers "
               "calibrate` on `this-machine`, ASSUMED on the presets -- from "
               "`trackers/kexec/platform.py`).")
    out.append("")
    out.append("## Verdict")
    out.append("")
    out.append(f"Platform for downtime: `{verdict.attrs['platform']}`. Rules: refuses kexec > "
               "misses pages > safe (fastest / adds least among the safe). `verdict.csv` "
               "holds the same table as numbers.")
    out.append("")
    out.append(markdown_table(format_verdict(verdict)))
    out.append("")
    facts = findings(tables)
    if facts:
        out.append("What the numbers say (computed from the tables below):")
        out.append("")
        out.extend(f"- {f}" for f in facts)
        out.append("")
    if rec is not None and not rec.empty:
        out.append("## Recommendation")
        out.append("")
        out.append(f"Decision rule of the answer (recommend.choose): among the safe options "
                   f"(kexec allowed, no page missed in any scenario, every host "
                   f"representable), those within {recommend.DOWNTIME_TIE:.0%} of the least "
                   f"modeled downtime are equal; of them, in order, one that runs in crash "
                   f"kexec, one whose conversion path allocates nothing that can fail, the "
                   f"one adding the least memory at the largest host, the cheapest measured "
                   f"hot path (one known only as an upper bound, timed one Python call per "
                   f"conversion, counts as unknown). `recommendation.csv` holds the numbers, `summary.txt` the same "
                   f"in 80 columns.")
        out.append("")
        out.append(recommend.recommendation_markdown(rec))
        out.append("")
    out.append("## Scenarios")
    out.append("")
    out.extend(scenario_lines(tables, meta))
    out.append("")
    out.append("## Figures")
    out.append("")
    for name in figures:
        out.append(f"### {name}")
        out.append("")
        out.append(FIGURES[name].caption)
        out.append("")
        out.append(f"![{name}]({name}.png)  ([SVG]({name}.svg))")
        out.append("")
    out.append("## Data")
    out.append("")
    for name, df in tables.items():
        out.append(f"- `{name}.csv`: {len(df)} rows; columns {', '.join(df.columns)}")
    out.append("")
    out.append("Open `notebooks/design_review.ipynb` with `TRACKERS_REPORT_DIR` set to this "
               "directory to re-plot and change platform parameters.")
    out.append("")
    prov = meta.get("provenance")
    if prov:
        out.append("## Provenance")
        out.append("")
        out.append("`provenance.json` beside the CSVs holds the same, machine-readable.")
        out.append("")
        out.extend(provenance_lines(prov))
        out.append("")
    return "\n".join(out)
