"""The wait before the next kernel starts (trackers/kexec/wait.py): modeled."""

import math

import numpy as np
import pandas as pd
import pytest

from trackers import kernel
from trackers.extents import count
from trackers.kexec import wait
from trackers.kexec.platform import PLATFORMS

SPR = PLATFORMS["spr-2s"]


def test_the_reference_host_holds_its_tds_sept_and_pamt():
    h = wait.reference_host(1 << 40)
    td = (1 << 40) // 4096
    assert h.td_pages == td
    assert h.max_pfn == -(-int((1 << 40) / 0.7) // (1 << 30)) * (1 << 18)
    pamt = count(h.pamt)
    levels = [h.max_pfn, h.max_pfn // 512, h.max_pfn // (512 * 512)]    # 4K, 2M, 1G
    assert pamt == sum(math.ceil(n * 16 / 4096) for n in levels) == 1_498_112 + 2_926 + 6
    assert h.private_pages == td + td // 512 + pamt
    assert count(h.kvm_visible) == td and count(h.sept) == td // 512


def test_mainline_waits_one_reclaim_and_clear_per_page_on_one_cpu():
    df = wait.wait_table("spr-2s", [1 << 40])
    m = df[df["curve"] == wait.MAINLINE].iloc[0]
    h = wait.reference_host(1 << 40)
    assert m["wait_s"] == pytest.approx(h.private_pages * (SPR.seamcall_s
                                                            + 4096 / SPR.clear_bps_core))
    assert m["cpus"] == 1 and m["wait_low_s"] < m["wait_s"] < m["wait_high_s"]
    assert list(df["curve"]) == list(wait.CURVES) and list(df.columns) == wait.COLUMNS


def test_all_cpus_are_the_platforms_and_the_best_tracker_is_named():
    df = wait.wait_table("spr-2s", [1 << 36, 1 << 44])
    allc = df[df["curve"] == wait.CURVES[2]]
    assert set(allc["cpus"]) == {SPR.cpus_total}
    assert allc["tracker"].isin(list(kernel_trackers())).all()
    # the IDA cannot hold a 23 TiB host: never the best there, never an error
    assert (df.loc[df["td_bytes"] == 1 << 44, "tracker"] != "ida").all()


def kernel_trackers():
    from trackers.kexec.strategies import TRACKER_STRATEGIES
    return [n for n, s in TRACKER_STRATEGIES.items() if s.seamcall_hooked]


def test_best_among_the_given_trackers_only():
    df = wait.wait_table("spr-2s", [1 << 38], trackers=["bitmap"])
    assert set(df.loc[df["tracker"] != "", "tracker"]) == {"bitmap"}
    with pytest.raises(ValueError, match="no SEAMCALL-hooked tracker"):
        wait.wait_table("spr-2s", [1 << 38], trackers=["kvm"])


def test_crossover_where_two_curves_change_order_else_who_leads():
    x = [1, 2, 4, 8]
    t = pd.DataFrame({"td_bytes": x * 2, "curve": ["a"] * 4 + ["b"] * 4,
                      "wait_s": [1, 2, 4, 8, 3, 3, 3, 3], "wait_low_s": [1, 2, 4, 8] + [9] * 4,
                      "wait_high_s": [1, 2, 4, 8, 3, 3, 3, 3]})
    c = wait.crossovers(t, against="a").set_index("values")
    assert c.loc["central", "td_bytes"] == pytest.approx(3.0)
    assert math.isnan(c.loc["fast end", "td_bytes"]) and c.loc["fast end", "ahead"] == "a"
    assert np.isfinite(c.loc["slow end", "td_bytes"])


def test_the_default_grid_spans_64_gib_to_16_tib():
    assert wait.TD_BYTES[0] == 64 << 30 and wait.TD_BYTES[-1] == 16 << 40
    assert all(b % (1 << 30) == 0 for b in wait.TD_BYTES)
    assert kernel.PAGE_SIZE == 4096
