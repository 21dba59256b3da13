"""One answer: every choice the summary names comes from one table, and no two
sentences name different choices for one situation and CPU count
(trackers/report/answer.py).  On the quick report here; the same check runs
on a default report's directory with ``python -m pytest tests/test_report_answer.py
--report-dir DIR`` (see conftest)."""

import re

import pandas as pd
import pytest

from trackers.report import answer, recommend


@pytest.fixture(scope="module")
def report(report_dir_for_answer):
    tables = {p.stem: pd.read_csv(p) for p in report_dir_for_answer.glob("*.csv")}
    rec = pd.read_csv(report_dir_for_answer / "recommendation.csv")
    text = (report_dir_for_answer / "summary.md").read_text()
    return tables, rec, text


def _answer(text: str) -> list[str]:
    lines = text.split("\n")
    start = lines.index("## The answer") + 1
    return lines[start:lines.index("", start)]


def test_one_rule_one_choice_per_situation_and_cpu_count(report):
    tables, rec, _ = report
    ch = answer.choices(tables, rec)
    assert set(ch["situation"]) <= set(answer.SITUATIONS)
    assert not ch.duplicated(["situation", "scenario", "cpus"]).any()
    for r in ch.dropna(subset=["choice"]).itertuples():
        among = rec[~rec["strategy"].isin(["parallel-reset", "fallback-bitmap",
                                           "mainline-7.2-old-module", "refuse-no-leaf69"])]
        if r.situation == "kdump":
            among = among[among["crash_context"].astype(str).str.startswith("yes")]
        assert list(among["strategy"]) == list(answer.judged(rec)["strategy"]) or \
            r.situation == "kdump"
        pick, _ = recommend.choose(tables["sensitivity"], among, scenario=r.scenario,
                                   platform=r.platform, cpus=r.cpus)
        assert pick == r.choice


def test_every_sentence_names_the_tables_choice(report):
    """Every choice a sentence names for a situation is the choices table's, and
    two sentences never name two choices for one situation and CPU count."""
    tables, rec, text = report
    ch = answer.choices(tables, rec).dropna(subset=["choice"])
    said: dict[tuple[str, int], set[str]] = {}
    for line in _answer(text):
        m = re.search(r"kexec with TDs running: `([^`]+)` on 1 CPU((?:, `[^`]+` from \d+ CPUs)*)",
                      line)
        if m:
            said.setdefault(("kexec", 1), set()).add(m.group(1))
            for name, k in re.findall(r"`([^`]+)` from (\d+) CPUs", m.group(2)):
                said.setdefault(("kexec", int(k)), set()).add(name)
        m = re.search(r"kdump: `([^`]+)`", line)
        if m:
            said.setdefault(("kdump", 1), set()).add(m.group(1))
        m = re.search(r"\*\*No TD running\*\* \(`[^`]+`[^)]*\): `([^`]+)`", line)
        if m:
            said.setdefault(("no-td", 1), set()).add(m.group(1))
    assert said, "the answer names no choice"
    for (situation, cpus), names in said.items():
        assert len(names) == 1, (situation, cpus, names)
        row = ch[(ch["situation"] == situation) & (ch["cpus"] <= cpus)].iloc[-1]
        assert names == {row["choice"]}, (situation, cpus)


def test_the_first_line_says_what_mainline_does_and_its_16_tib_wait(report):
    tables, _, text = report
    first = _answer(text)[0]
    assert first.startswith("**Mainline today (Linux 7.2)** calls TDH.SYS.DISABLE")
    w = tables["wait"]
    top = w[(w["curve"] == w["curve"].iloc[0]) & (w["td_bytes"] == 1 << 44)].iloc[0]
    assert f"{recommend.fmt_seconds(top['wait_s'])} at 16 TiB" in first
    assert (f"{recommend.fmt_seconds(top['wait_low_s'])} to "
            f"{recommend.fmt_seconds(top['wait_high_s'])} at 16 TiB") in first
    assert len(_answer(text)) <= answer.ANSWER_LINES


def test_the_command_ends_with_the_answer_in_80_columns(report):
    """`tdx-trackers report` ends with the answer and where the files went, no
    line over 80 columns; the wide verdict table only with --verdict."""
    from pathlib import Path

    from trackers.report.cli import ending
    tables, _, _ = report
    written = [Path("/r/summary.md"), Path("/r/memory_vs_host.png")]
    text = ending(tables, {"kernel_code": {"available": False, "reason": "not built"}},
                  written, Path("/r"), 12.0)
    lines = text.split("\n")
    assert max(len(x) for x in lines) <= 80
    assert lines[0] == "TDX private pages at kexec: the answer"
    assert any(x.startswith("Mainline today (Linux 7.2) calls TDH.SYS.DISABLE") for x in lines)
    assert "2 files written to /r/ in 12 s" in text and "verdict (downtime" not in text
    meta = {"kernel_code": {"available": False, "reason": "not built"}}
    wide = ending(tables, meta, written, Path("/r"), 12.0, verdict=True)
    assert wide.startswith("verdict (downtime on ") and wide.endswith(text)
