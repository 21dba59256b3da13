"""The transitional-state race: exact state accounting, hooked strategies miss 0."""

import numpy as np
import pytest

import trackers
from trackers.kexec.race import (ORDERS, STATE_INDEX, STATES, ZAP_FIRST, chunk_duration,
                                 failed_reclaim, page_time_by_state, race, replay_cuts,
                                 state_counts, step_times)
from trackers.kexec.states import CONVERSION_STATES
from trackers.kexec.strategies import STRATEGIES

STEPS = dict(attr=1.0, blocked=1.0, tracked=1.0, removed=1.0, written_back=1.0, released=1.0)
S = {s: i for i, s in enumerate(CONVERSION_STATES)}


def test_state_counts_hand_worked():
    # n = 4 pages: attribute loop 4 s, then 5 s per page
    n = np.array([4, 4, 4, 4])
    d = np.array([2.5, 4.0 + 5 + 2.5, 4.0 + 20, 4.0 + 4.5])
    c = state_counts(n, d, STEPS, crash=True)
    assert c.sum(axis=1).tolist() == [4, 4, 4, 4]
    assert c[0, S["private"]] == 2 and c[0, S["attr_shared"]] == 2
    # page 0 released, page 1 blocked then tracked (2 steps done), 2 waiting
    assert c[1, S["released"]] == 1 and c[1, S["tracked"]] == 1 and c[1, S["attr_shared"]] == 2
    assert c[2, S["released"]] == 4
    assert c[3, S["written_back"]] == 1
    # a normal kexec lets the running step finish: the clear completes
    cn = state_counts(n, d, STEPS, crash=False)
    assert cn[3, S["released"]] == 1 and cn[1, S["removed"]] == 1
    assert cn[0, S["attr_shared"]] == 3


@pytest.mark.parametrize("order", list(ORDERS))
def test_page_time_matches_simulated_integral(order):
    n = np.array([8])
    D = chunk_duration(n, STEPS)[0]
    grid = (np.arange(200000) + 0.5) / 200000 * D
    c = state_counts(np.repeat(n, grid.size), grid, STEPS, crash=True, order=order)
    assert (c.sum(axis=1) == 8).all()
    integral = c.mean(axis=0) * D
    keep = np.arange(len(STATES)) != STATE_INDEX["released"]    # released: not closed-form
    np.testing.assert_allclose(integral[keep], page_time_by_state(n, STEPS, order)[0][keep],
                               rtol=1e-3, atol=1e-12)


def test_zap_first_order_the_attribute_walk_finds_every_page_kvm_sept_still_misses():
    """Mainline's order (kvm_vm_set_mem_attributes(): the zap, then xa_store):
    the attribute says private until the page is released, so kvm-attr misses
    nothing in flight; the mirror SPTE is cleared before the zap, so kvm-sept
    misses the page being zapped, in either order."""
    kw = dict(rates_mib_s=(1024,), n_kexec=4000, seed=1)
    zap = race(["kvm-attr", "kvm-sept", "bitmap"], order=ZAP_FIRST, **kw).set_index(
        ["strategy", "kexec"])
    assert (zap.loc["kvm-attr", "missed_mean"] == 0).all()
    assert (zap.loc["bitmap", "missed_mean"] == 0).all()
    assert (zap.loc["kvm-sept", "p_miss"] > 0.5).all()
    assert set(zap["order"]) == {ZAP_FIRST}
    with pytest.raises(ValueError, match="order 'sideways'"):
        race(["bitmap"], order="sideways", **kw)


def test_hooked_strategies_miss_nothing_kvm_misses_under_churn():
    df = race(rates_mib_s=(64, 1024), n_kexec=4000, platform="spr-2s", seed=1)
    hooked = [n for n, s in STRATEGIES.items() if s.seamcall_hooked]
    assert {"bitmap", "pte-softbit", "pageflags"} <= set(hooked)
    assert (df[df.strategy.isin(hooked)]["missed_mean"] == 0).all()
    kvm = df[df.strategy == "kvm-attr"]
    assert (kvm["missed_mean"] > 0).all()
    # simulated mean agrees with Little's law (crash kexec) within sampling noise
    crash = kvm[kvm.kexec == "crash"]
    np.testing.assert_allclose(crash["missed_mean"], crash["missed_expected"], rtol=0.15)
    # missed pages grow with the conversion rate
    assert crash["missed_expected"].is_monotonic_increasing
    assert (df[df.strategy == "refuse-6.18"]["kexec_allowed"] == False).all()   # noqa: E712


def test_failed_reclaim():
    df = failed_reclaim().set_index("strategy")
    assert df.loc["bitmap", "finds_leaked"] and df.loc["pte-softbit", "finds_leaked"]
    assert df.loc["clear-all", "finds_leaked"] and df.loc["mainline-7.2", "finds_leaked"]
    assert not df.loc["kvm-attr", "finds_leaked"] and df.loc["kvm-attr", "leaked_missed"] == 1


def test_step_overrides_validated():
    with pytest.raises(ValueError, match="unknown step"):
        step_times("spr-2s", nope=1)
    assert step_times("spr-2s", removed=5e-6)["removed"] == 5e-6


def test_emulated_cuts_hooked_zero_kvm_misses():
    workloads = pytest.importorskip("trackers.workloads")
    if "kvm" not in trackers.TRACKERS:
        pytest.skip("the kvm tracker is not registered yet")
    wl = workloads.scenario("tiny", 0)
    df = replay_cuts(wl, ("bitmap", "kvm"), n_cuts=8, seed=3)
    assert (df[df.strategy == "bitmap"]["missed"] == 0).all()
    kvm = df[df.strategy == "kvm-attr"].set_index("cut")
    # kvm always misses the TD control and S-EPT pages present at the cut
    assert (kvm["missed"] > 0).all()
    # inside a conversion window it misses more: the pages KVM calls shared
    # whose removal is still pending
    assert kvm.loc[kvm.window, "missed"].max() > kvm.loc[~kvm.window, "missed"].min()


def test_wilson_interval_exact_values():
    from trackers.kexec.race import Z95, wilson_interval
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    # no success in n trials: the interval is [0, z^2 / (n + z^2)], not empty
    lo, hi = wilson_interval(0, 20000)
    assert lo == 0 and hi == pytest.approx(Z95 ** 2 / (20000 + Z95 ** 2))
    lo, hi = wilson_interval(100, 100)
    assert hi == 1 and lo == pytest.approx(100 / (100 + Z95 ** 2))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)
    # the interval holds the proportion exactly at either end (error bars drawn
    # from it are never negative): rounding put hi at 1 - 2e-16 for k = n
    n = np.array([2000, 20000, 12345])
    for k in (n, np.zeros(3, int)):
        lo, hi = wilson_interval(k, n)
        assert (lo <= k / n).all() and (k / n <= hi).all()


def test_mean_interval():
    from trackers.kexec.race import mean_interval
    x = np.array([0.0, 0.0, 2.0, 2.0])             # mean 1, sd 1.1547
    lo, hi = mean_interval(x)
    assert hi - 1 == pytest.approx(1.959963984540054 * 1.1547005 / 2, rel=1e-6)
    assert lo == 0.0                                # clipped: never negative
    with pytest.raises(ValueError, match="at least 2"):
        mean_interval([1.0])


def test_race_intervals_and_seamcall_band():
    from trackers.kexec.race import race_band
    kvm_name = next(n for n in ("kvm-attr", "kvm") if n in STRATEGIES)
    refuse = next(n for n in ("refuse-6.18", "upstream-refuse", "refuse") if n in STRATEGIES)
    df = race_band(("bitmap", kvm_name, refuse), rates_mib_s=(64,), n_kexec=3000,
                   platform="spr-2s", seed=2)
    assert list(dict.fromkeys(df["seamcall_cost"])) == ["low", "base", "high"]
    assert len(df) == 3 * 2 * 3
    assert (df["p_miss_low"] <= df["p_miss"]).all() and (df["p_miss"] <= df["p_miss_high"]).all()
    assert (df["missed_mean_low"] <= df["missed_mean"]).all()
    assert (df["missed_mean"] <= df["missed_mean_high"]).all()
    assert (df["p_missed"] == df["p_miss"]).all()
    bitmap = df[df.strategy == "bitmap"]
    assert (bitmap["p_miss"] == 0).all() and (bitmap["p_miss_high"] > 0).all()
    # a dearer SEAMCALL keeps pages longer in flight: kvm misses more
    kvm = df[(df.strategy == kvm_name) & (df.kexec == "crash")].set_index("seamcall_cost")
    assert kvm.loc["low", "missed_expected"] < kvm.loc["base", "missed_expected"] \
        < kvm.loc["high", "missed_expected"]
    assert kvm.loc["low", "p_miss"] < kvm.loc["high", "p_miss"]
    with pytest.raises(ValueError, match="seamcall_cost"):
        race((kvm_name,), seamcall_cost="medium")
