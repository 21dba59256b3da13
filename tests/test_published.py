"""The published TDX timings, the rates derived from them, and the ranges that
must contain those rates (trackers/published.py, docs/validation.md)."""

import math

import pytest

from trackers import kernel, published
from trackers.kexec.platform import ASSUMED_RANGES, PLATFORMS, SPR_ASSUMED
from trackers.published import AFTER, BEFORE


def test_the_teardown_table_as_published():
    rows = {(t.vcpus, t.size_gb, t.path): t.seconds for t in published.TEARDOWN}
    assert rows == {(4, 18, BEFORE): 72, (4, 18, AFTER): 24, (32, 107, BEFORE): 517,
                    (32, 107, AFTER): 134, (64, 400, BEFORE): 5539, (64, 400, AFTER): 467}
    assert published.CLEAR_SHARE == 0.40
    assert [(a.guest_bytes, a.seconds) for a in published.ATTRIBUTES] == [(1e12, 26.0),
                                                                        (1.9e12, 30.0)]


def test_the_derivation_is_the_arithmetic_of_the_docs():
    """107 GiB after-row: 134 s over 28,049,408 pages; 40 % of it is the clear;
    the 4-vCPU before-row less four SEAMCALLs and the clear, per vCPU."""
    d = published.derive()
    after = 134 / (107 * 2**30 / 4096)
    assert d.clear_s == pytest.approx(0.4 * after, rel=1e-12)
    assert d.seamcall_s == pytest.approx(0.6 * after, rel=1e-12)
    before = 72 / (18 * 2**30 / 4096)
    assert d.vcpu_kick_s == pytest.approx((before - 4 * d.seamcall_s - d.clear_s) / 4,
                                          rel=1e-12)
    assert round(d.clear_bps / 1e9, 2) == 2.14
    assert round(d.seamcall_s * 1e6, 2) == 2.87
    assert round(d.vcpu_kick_s * 1e6, 2) == 0.47
    published.check()


def test_every_assumed_range_contains_the_published_derived_value():
    d = published.derive()
    lo, hi, _ = ASSUMED_RANGES["seamcall_s"]
    assert lo <= d.seamcall_s <= hi
    lo, hi, _ = ASSUMED_RANGES["vcpu_kick_s"]
    assert lo <= d.vcpu_kick_s <= hi
    lo, hi, _ = SPR_ASSUMED["clear_bps_core"]
    rates = published.clear_rates()
    assert len(rates) == 6 and all(lo <= r <= hi for r in rates)
    assert lo == min(rates) and hi == kernel.SPR_CLEAR_BPS_CORE_RANGE[1]


def test_the_spr_preset_takes_its_tdx_costs_from_the_publications():
    spr = PLATFORMS["spr-2s"]
    d = published.derive()
    assert spr.clear_bps_core == d.clear_bps
    assert (spr.seamcall_s, spr.vcpu_kick_s) == (d.seamcall_s, d.vcpu_kick_s)
    assert "published-derived" in spr.sources["clear_bps_core"]
    # TDH.SYS.DISABLE: one reclaim and one clear per page, on one CPU
    assert spr.sys_disable_page_s == pytest.approx(d.seamcall_s + d.clear_s, rel=1e-12)
    assert spr.sys_disable_s(1000) == pytest.approx(1000 * spr.sys_disable_page_s)
    assert spr.with_cpus(224).sys_disable_s(1000) == spr.sys_disable_s(1000)


def test_gb_read_as_gib_or_as_1e9_moves_no_ratio():
    """The model is linear in pages: either reading of "GB" gives the same ratios."""
    per_gib = [t.seconds / t.pages for t in published.TEARDOWN]
    per_gb = [t.seconds / (t.size_gb * 1e9 / 4096) for t in published.TEARDOWN]
    ratios = {round(a / b, 12) for a, b in zip(per_gib, per_gb)}
    assert ratios == {round(1e9 / 2**30, 12)}
    assert not math.isclose(per_gib[0], per_gb[0])
