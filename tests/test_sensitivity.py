"""Downtime against CPUs at reset and the ASSUMED parameters: exact facts."""

import math

import pandas as pd
import pytest

from trackers.kexec import STRATEGIES, KexecHost, evaluate
from trackers.kexec import platform as platform_mod
from trackers.kexec.platform import Platform, get_platform
from trackers.kexec.sensitivity import (SENSITIVITY_COLUMNS, TORNADO_COLUMNS, assumed_ranges,
                                        cpu_counts, crossovers, largest_swings, sweep)


#: today's names and older reports' (kvm -> kvm-attr, refuse -> refuse-6.18)
KVM = next(n for n in ("kvm-attr", "kvm") if n in STRATEGIES)
REFUSE = next(n for n in ("refuse-6.18", "upstream-refuse", "refuse") if n in STRATEGIES)


def _host():
    # 1 GiB of RAM, 8 MiB private in 4 extents; one TD running
    starts, ends = [1024, 4096, 8192, 20000], [1536, 4608, 9216, 20512]
    return KexecHost(max_pfn=1 << 18, ram=([0], [1 << 18]), private=(starts, ends),
                     kvm_visible=(starts[:2], ends[:2]), tds_running=1, name="hand")


def test_cpu_counts_cap_at_the_platform():
    plat = get_platform("spr-2s")
    assert cpu_counts(plat) == [1, 2, 4, 8, 16, 32, 64, 224]
    small = Platform("two", 1e9, 2e9, 1e9, 2e9, 1e-7, cpus_total=2)
    assert cpu_counts(small) == [1, 2]


def test_assumed_ranges_from_either_table():
    r = assumed_ranges()
    assert r and all(lo <= hi and src for lo, hi, src in r.values())

    class Old:                                  # a platform module without ASSUMED_RANGES
        SCAN_COST_RANGES = {"entry_s": (1e-9, 2e-9)}
        SCAN_COST_SOURCES = {"entry_s": "here"}
    assert assumed_ranges(Old) == {"entry_s": (1e-9, 2e-9, "here")}

    class Bad:
        ASSUMED_RANGES = {"nonsense": (1, 2, "x")}
    with pytest.raises(ValueError, match="nonsense"):
        assumed_ranges(Bad)


def test_sweep_matches_the_verdict_and_its_band():
    host, plat = _host(), get_platform("spr-2s")
    cache = {}
    names = ["bitmap", "xarray", KVM, REFUSE, "clear-all", "mainline-7.2"]
    chosen = [STRATEGIES[n] for n in names]
    kw = {"emulate": False, "kernel_code": False, "cache": cache}
    verdict = evaluate(host, plat, strategies=chosen, emulate=False, kernel_code=False,
                       cache=cache).set_index("strategy")
    sens, torn = sweep(host, plat, chosen, scenario="hand", platform_name="spr-2s",
                       assess_kw=kw, counts=(1, 8))
    df = pd.DataFrame(sens)
    assert list(df.columns) == SENSITIVITY_COLUMNS
    assert list(pd.DataFrame(torn).columns) == TORNADO_COLUMNS
    assert sorted(set(df["cpus_at_reset"])) == [1, 8, 224]
    one = df[df.cpus_at_reset == 1].set_index("strategy")
    for n in names:                              # the 1-CPU column is the verdict's
        if verdict.loc[n, "kexec_allowed"]:
            assert one.loc[n, "downtime_s"] == pytest.approx(verdict.loc[n, "downtime_s"],
                                                             rel=1e-12)
    assert math.isnan(one.loc[REFUSE, "downtime_s"]) and math.isnan(one.loc[REFUSE, "rank"])
    ok = df.dropna(subset=["downtime_s"])
    assert (ok["downtime_low_s"] <= ok["downtime_s"] * (1 + 1e-12)).all()
    assert (ok["downtime_s"] <= ok["downtime_high_s"] * (1 + 1e-12)).all()
    # every CPU count ranks the allowed options 1..k
    for _, g in ok.groupby("cpus_at_reset"):
        assert g["rank"].min() == 1
    # sys-disable's module rate does not scale with CPUs: it falls behind the scans
    at = df[df.cpus_at_reset == 224].set_index("strategy")
    assert at.loc["bitmap", "downtime_s"] < at.loc["mainline-7.2", "downtime_s"]
    t = pd.DataFrame(torn)
    assert set(t["param"]) == set(assumed_ranges(platform=plat))
    assert set(t["cpus_at_reset"]) == {1, 224}
    assert not largest_swings(t, 2).empty


def test_crossovers_on_a_hand_made_table():
    rows = []
    down = {1: {"a": 1.0, "b": 2.0, "c": 3.0}, 2: {"a": 1.0, "b": 2.0, "c": 3.0},
            4: {"a": 2.0, "b": 1.0, "c": 3.0}, 8: {"a": 2.0, "b": 1.5, "c": 1.0}}
    for k, d in down.items():
        for n, x in d.items():
            rows.append({"strategy": n, "scenario": "s", "platform": "p",
                         "cpus_at_reset": k, "downtime_s": x})
    rows.append({"strategy": "z", "scenario": "s", "platform": "p", "cpus_at_reset": 1,
                 "downtime_s": math.nan})
    x = crossovers(pd.DataFrame(rows), top=2)
    assert x[["cpus_before", "cpus_at", "order_before", "order_after",
              "leader_changed"]].values.tolist() == [
        [2, 4, "a < b", "b < a", True], [4, 8, "b < a", "c < b", True]]
    only_ab = crossovers(pd.DataFrame(rows), top=1, among=["a", "b"])
    assert only_ab[["cpus_at", "leader_before", "leader_after"]].values.tolist() == [
        [4, "a", "b"]]
    assert crossovers(pd.DataFrame(rows[:3]), top=2).empty


def test_platform_module_names_its_ranges():
    # sensitivity reads ASSUMED_RANGES where the platform module has it, else SCAN_COST_RANGES
    names = getattr(platform_mod, "ASSUMED_RANGES", platform_mod.SCAN_COST_RANGES)
    assert set(assumed_ranges()) == set(names)


def test_recosting_checked_on_one_platform_is_rechecked_on_the_next():
    """A platform whose CPUs do not matter (all-core rate = one core's) cannot
    vouch for re-costing on another: sys-disable's own assess() still rules."""
    host, spr = _host(), get_platform("spr-2s")
    flat = Platform("flat", 1e10, 1e10, 1e10, 1e10, 1e-7, cpus_total=2)
    kw = {"emulate": False, "kernel_code": False, "cache": {}}
    checked = {}
    s = STRATEGIES["mainline-7.2"]
    sweep(host, flat, [s], scenario="hand", assess_kw=kw, counts=(1,), checked=checked)
    sens, _ = sweep(host, spr, [s], scenario="hand", assess_kw=kw, counts=(1,),
                    checked=checked)
    top = [r for r in sens if r["cpus_at_reset"] == spr.cpus_total][0]
    own = s.assess(host, spr.with_cpus(spr.cpus_total), **kw)
    assert top["downtime_s"] == pytest.approx(own.downtime_s, rel=1e-12)
