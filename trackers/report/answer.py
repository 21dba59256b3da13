"""The answer: what mainline does today, what it costs, when it fails, and what
would do better -- every sentence computed from the report's tables.

One table decides every choice the answer names: :func:`choices` applies the
decision rule (:func:`.recommend.choose`) to each situation and CPU count,

* ``kexec``  -- an erratum part with TDs running, the reference scenario, at
  every CPU count of the sensitivity sweep;
* ``no-td``  -- the same host after every TD is destroyed, at 1 CPU;
* ``kdump``  -- crash kexec, at 1 CPU (the others are stopped by NMI), among
  the options that run in crash context;

each on a TDX module with TDH.SYS.DISABLE (the rows judged on an old module,
``Strategy.old_module``, answer :func:`failure_line`), among the options the
sweep places on its CPUs (``parallel-reset`` is the sweep's all-CPU point);

and every sentence that names a choice reads it from there, so no two
sentences can disagree (tests/test_report_answer.py holds this on the
default and the quick report).  The numbers of mainline's wait come from
``wait.csv`` and those of its validation from ``validation.csv``; which are
measured, modeled or published is said where they are used.
"""

from __future__ import annotations

import math

import pandas as pd

from ..kexec import STRATEGIES
from ..kexec.mainline import FALLBACK_TRACKER
from ..kexec.platform import PLATFORMS
from ..kexec.wait import CURVES, MAINLINE
from . import recommend
from .format import fmt_bytes, fmt_seconds

#: the answer's lines at most: with summary.md's engine line and heading, its
#: first ten lines
ANSWER_LINES = 8
#: the situations of :func:`choices`, in the answer's order
SITUATIONS = ("kexec", "no-td", "kdump")
#: TD memory the answer states mainline's wait at
WAIT_AT = {"1 TiB": 1 << 40, "4 TiB": 1 << 42, "16 TiB": 1 << 44}
#: the suffix of a scenario judged after its TDs are destroyed (report/kexec.py)
NO_TD = "/no-td"


def _names(xs) -> str:
    return ", ".join(f"`{x}`" for x in xs)


def judged(rec: pd.DataFrame) -> pd.DataFrame:
    """The options the situations choose among: on a module with TDH.SYS.DISABLE
    (the old module's rows answer :func:`failure_line`), placed on the CPUs the
    sweep gives them (an option that resets on every CPU whatever the count is
    its tracker's row at all CPUs, which the sweep judges)."""
    return rec[[not (getattr(STRATEGIES.get(n), "on_every_cpu", False)
                     or getattr(STRATEGIES.get(n), "old_module", False))
                for n in rec["strategy"]]]


def choices(tables, rec: pd.DataFrame) -> pd.DataFrame:
    """situation x CPU count -> the rule's choice (``choice``, NaN where no
    option is safe) and the options it judged equal on downtime (``tied``)."""
    sens, kexec = tables.get("sensitivity"), tables["kexec"]
    cols = ["situation", "scenario", "platform", "cpus", "choice", "tied"]
    if sens is None or sens.empty or rec.empty:
        return pd.DataFrame(columns=cols)
    sc = recommend.reference_scenario(kexec)
    plat = recommend.first(sens["platform"], recommend.REFERENCE_PLATFORM)
    rec = judged(rec)
    crash = rec[rec["crash_context"].astype(str).str.startswith("yes")]
    here = sens[(sens["scenario"] == sc) & (sens["platform"] == plat)]
    todo = [("kexec", sc, rec, int(k)) for k in sorted(set(here["cpus_at_reset"]))]
    if f"{sc}{NO_TD}" in set(sens["scenario"]):
        todo.append(("no-td", f"{sc}{NO_TD}", rec, 1))
    todo.append(("kdump", sc, crash, 1))
    rows = []
    for situation, scenario, among, k in todo:
        pick, tied = recommend.choose(sens, among, scenario=scenario, platform=plat, cpus=k)
        rows.append({"situation": situation, "scenario": scenario, "platform": plat,
                     "cpus": k, "choice": pick, "tied": ", ".join(tied)})
    return pd.DataFrame(rows, columns=cols)


def _wait_at(wait: pd.DataFrame, curve: str, td_bytes: int) -> pd.Series:
    w = wait[(wait["curve"] == curve) & (wait["td_bytes"] == td_bytes)]
    return w.iloc[0] if not w.empty else None


def mainline_line(tables) -> str:
    """What mainline 7.2 does and its one-CPU wait at 1, 4 and 16 TiB (wait.csv)."""
    wait = tables.get("wait")
    head = ("**Mainline today (Linux 7.2)** calls TDH.SYS.DISABLE at kexec and at kdump, "
            "on one CPU. The TDX module then reclaims and clears every TDX page itself.")
    if wait is None or wait.empty:
        return head + " No wait table in this run."
    at = {k: _wait_at(wait, MAINLINE, b) for k, b in WAIT_AT.items()}
    if any(v is None for v in at.values()):
        return head
    top = at["16 TiB"]
    return (head + " Modeled from the published TD teardowns, it takes "
            + ", ".join(f"{fmt_seconds(v['wait_s'])} at {k}" for k, v in at.items())
            + f" of TD memory ({fmt_seconds(top['wait_low_s'])} to "
            f"{fmt_seconds(top['wait_high_s'])} at 16 TiB over the assumed ranges; wait.csv). "
            f"At kdump a crashed host waits that long, interrupts off, before the capture "
            f"kernel starts.")


def failure_line(rec: pd.DataFrame) -> str:
    """When mainline is unsafe: a module without leaf 69 (recommendation.csv)."""
    r = rec.set_index("strategy")
    old = "mainline-7.2-old-module"
    if old not in r.index:
        return ""
    x = r.loc[old]
    fb = f"fallback-{FALLBACK_TRACKER}"
    tail = ""
    if "refuse-no-leaf69" in r.index and fb in r.index:
        tail = (f". Checking the leaf, `refuse-no-leaf69` refuses kexec there; `{fb}` "
                f"resets the pages from a {FALLBACK_TRACKER} "
                f"(+{fmt_bytes(r.loc[fb, 'added_bytes_16tib'])} at 16 TiB)")
    return (f"- **It fails on an old TDX module**: without TDH.SYS.DISABLE (leaf 69) the "
            f"call fails and kexec goes on. `{old}` misses all "
            f"{int(x['pages_missed_worst']):,} private pages of "
            f"`{x['pages_missed_worst_scenario']}`" + tail + ".")


def better_line(tables, ch: pd.DataFrame) -> str:
    """What would do better than mainline, from how many CPUs (wait.csv; the
    rule's choices)."""
    wait = tables.get("wait")
    if wait is None or wait.empty:
        return ""
    m = _wait_at(wait, MAINLINE, WAIT_AT["16 TiB"])
    one = _wait_at(wait, CURVES[1], WAIT_AT["16 TiB"])
    allc = _wait_at(wait, CURVES[2], WAIT_AT["16 TiB"])
    if m is None or one is None or allc is None:
        return ""
    ratio = m["wait_s"] / one["wait_s"]
    fast = m["wait_low_s"] / one["wait_low_s"]
    kx = ch[ch["situation"] == "kexec"].dropna(subset=["choice"])
    kd = ch[ch["situation"] == "kdump"].dropna(subset=["choice"])
    picks = ""
    if not kx.empty:
        first = kx.iloc[0]
        changes = kx[kx["choice"] != kx["choice"].shift()]
        picks = (f" By the rule below, kexec with TDs running: `{first['choice']}` on 1 CPU"
                 + "".join(f", `{r.choice}` from {r.cpus} CPUs" for r in
                           changes.iloc[1:].itertuples())
                 + (f"; kdump: `{kd.iloc[0]['choice']}`" if not kd.empty else "") + ".")
    return (f"- **Better**: a tracker-based reset clears the same pages without the "
            f"module's per-page reclaim. On one CPU it is {ratio:.1f}x faster "
            f"({fmt_seconds(one['wait_s'])} at 16 TiB; {fast:.1f}x at the fast end of the "
            f"assumed ranges). Run on all {int(allc['cpus'])} CPUs before they stop "
            f"(`parallel-reset`), it takes {fmt_seconds(allc['wait_s'])}, but the next kernel "
            f"cannot use TDX until a cold boot." + picks)


def no_erratum_line(tables) -> str:
    """Parts without the erratum: nothing to reset, yet mainline pays the reclaim."""
    spr = PLATFORMS[recommend.REFERENCE_PLATFORM]
    per_tib = spr.seamcall_s * ((1 << 40) // 4096)
    return (f"- **Parts without the erratum**: nothing needs a reset "
            f"(`tdx_quirk_reset_paddr()` is a no-op there), yet `tdx_shutdown()` calls "
            f"TDH.SYS.DISABLE on every TDX host. If the module skips the clear there, its "
            f"reclaim alone takes {fmt_seconds(per_tib)} per TiB of TD memory (modeled).")


def no_td_line(tables, ch: pd.DataFrame) -> str:
    x = ch[ch["situation"] == "no-td"].dropna(subset=["choice"])
    if x.empty:
        return ""
    r = x.iloc[0]
    sens = tables["sensitivity"]
    d = sens[(sens["scenario"] == r["scenario"]) & (sens["platform"] == r["platform"])
             & (sens["cpus_at_reset"] == 1)].set_index("strategy")["downtime_s"]
    return (f"- **No TD running** (`{r['scenario']}`: PAMT and leaked pages left): "
            f"`{r['choice']}`, {fmt_seconds(d.get(r['choice'], math.nan))} on 1 CPU.")


def not_options_line(rec: pd.DataFrame) -> str:
    unsafe = rec[rec["kexec_allowed"] & (rec["pages_missed_worst"] > 0)]
    refused = rec[~rec["kexec_allowed"]]["strategy"].tolist()
    bits = [f"`{u['strategy']}` misses up to {int(u['pages_missed_worst']):,} pages "
            f"(`{u['pages_missed_worst_scenario']}`)" for _, u in unsafe.iterrows()]
    if not bits and not refused:
        return ""
    return ("- **Not options**: " + "; ".join(bits)
            + (("; " if bits else "") + f"{_names(refused)} refuse kexec" if refused else "")
            + ".")


def validation_line(tables) -> str:
    """How many published TDX timings the model reproduces (validation.csv)."""
    v = tables.get("validation")
    if v is None or v.empty:
        return "no validation table in this run"
    pred = v[v["role"] == "prediction"].dropna(subset=["ratio"])
    out = v[~v["within"].astype(bool)].dropna(subset=["ratio"])
    return (f"the model reproduces {int(pred['within'].astype(bool).sum())} of {len(pred)} "
            f"published TDX timings it predicts within 2x, {len(v) - len(pred)} more "
            f"derive its TDX costs (validation.csv)"
            + ("; outside: " + "; ".join(f"`{r.key}` {r.ratio:.2g}x, lacking {r.lacks}"
                                         for r in out.itertuples()) if not out.empty else ""))


def change_line(tables, rec: pd.DataFrame, ch: pd.DataFrame) -> str:
    """What would change the 1-CPU kexec choice: an assumed parameter at one end
    of its range (the rule on the tornado's downtimes)."""
    torn = tables.get("tornado")
    kx = ch[(ch["situation"] == "kexec") & (ch["cpus"] == 1)].dropna(subset=["choice"])
    if torn is None or torn.empty or kx.empty:
        return ""
    r = kx.iloc[0]
    flips = param_flips(torn, judged(rec), scenario=r["scenario"], platform=r["platform"],
                        pick=r["choice"])
    return ("- **What would change it**: " + ("; ".join(flips) if flips else
            f"no assumed parameter alone, at either end of its range, changes the 1-CPU "
            f"choice `{r['choice']}`") + " (tornado.csv).")


def param_flips(torn: pd.DataFrame, rec: pd.DataFrame, *, scenario: str, platform: str,
                pick: str, cpus: int = 1) -> list[str]:
    """The ASSUMED parameters whose low or high end alone changes the choice at
    ``cpus`` CPUs (recommend.choose on the tornado's downtimes at that end)."""
    t = torn[(torn["scenario"] == scenario) & (torn["platform"] == platform)
             & (torn["cpus_at_reset"] == cpus)]
    out = []
    for param, g in t.groupby("param", sort=True):
        for end in ("low", "high"):
            alt = pd.DataFrame({"strategy": g["strategy"], "scenario": scenario,
                                "platform": platform, "cpus_at_reset": cpus,
                                "downtime_s": g[f"downtime_at_{end}_s"]})
            other, _ = recommend.choose(alt, rec, scenario=scenario, platform=platform,
                                        cpus=cpus)
            if other is not None and other != pick:
                value = g[f"value_{end}"].iloc[0]
                out.append(f"at its {end} end `{param}` = {value:.3g} the {cpus}-CPU choice "
                           f"becomes `{other}`")
    return out


def sources_line(tables) -> str:
    """What is measured, published and assumed, and how the model fares."""
    torn = tables.get("tornado")
    assumed = sorted(set(torn["param"])) if torn is not None and not torn.empty else []
    return ("- **Measured, published, assumed**: " + validation_line(tables)
            + "; measured here: scans, conversions and the clear (calibrate); assumed: "
            + (_names(assumed) + " (ranges in tornado.csv)" if assumed else "nothing swept")
            + " and the race's SEAMCALL costs (race.csv).")


def answer_lines(tables, rec: pd.DataFrame) -> list[str]:
    """The answer, at most ANSWER_LINES lines (module doc)."""
    if rec.empty:
        return ["- No recommendation table in this run: no answer computed."]
    ch = choices(tables, rec)
    lines = [mainline_line(tables), failure_line(rec), better_line(tables, ch),
             no_erratum_line(tables), no_td_line(tables, ch), not_options_line(rec),
             change_line(tables, rec, ch), sources_line(tables)]
    return [x for x in lines if x][:ANSWER_LINES]


__all__ = ["answer_lines", "choices", "param_flips", "SITUATIONS", "ANSWER_LINES"]
