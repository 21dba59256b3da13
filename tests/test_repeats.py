"""How often a timed scan is repeated (trackers/repeats.py): the stop rule on
given runs, never on a clock -- exact counts for exact inputs."""

import pytest

from trackers.repeats import (DEFAULT, FULL, FULL_RUNS, Repeats, as_repeats, median_spread,
                              timed_runs)


def test_the_rule_stops_once_the_median_is_steady_and_never_below_least():
    rule = Repeats(least=3, most=9, spread=0.05, budget_s=100.0)
    assert not rule.enough([1.0, 1.0])                      # below least, however steady
    assert rule.enough([1.0, 1.01, 0.99])                   # deviation 1 % <= 5 %
    # one cold first run: min-max is 200 %, the median's deviation 1 %
    assert rule.enough([3.0, 1.0, 1.01, 0.99])
    assert not rule.enough([1.0, 2.0, 1.5])                  # deviation 33 %
    assert rule.enough([1.0, 2.0, 1.5] + [1.5] * 6)          # most reached


def test_the_budget_stops_a_long_scan_at_least_runs():
    rule = Repeats(least=3, most=9, spread=0.0, budget_s=1.0)
    assert not rule.enough([0.4, 0.5])
    assert rule.enough([0.4, 0.5, 0.6])                      # 1.5 s spent
    assert not rule.enough([0.01, 0.02, 0.03])


def test_a_long_scan_stops_at_two_runs_only_where_they_agree():
    rule = Repeats(least=3, most=9, spread=0.05, budget_s=1.0, least_long=2)
    assert not rule.enough([5.0])                            # one run is no spread
    assert rule.enough([5.0, 5.2])                           # deviation 2 %, 10 s spent
    assert not rule.enough([8.0, 5.2])                       # a cold first run: 21 %
    assert rule.enough([8.0, 5.2, 5.3])                      # the budget, at least
    assert not rule.enough([0.30, 0.31])                     # agree, but 0.61 s: short
    assert rule.enough([0.30, 0.31, 0.30])                   # a short scan's rule
    assert DEFAULT.least_long == 2


def test_fixed_is_that_many_runs_whatever_the_spread():
    assert FULL == Repeats.fixed(FULL_RUNS) and FULL.is_fixed and FULL_RUNS == 5
    assert [FULL.enough([1.0] * n) for n in range(1, 7)] == [False] * 4 + [True] * 2
    assert [FULL.enough([9.0] * n) for n in range(1, 7)] == [False] * 4 + [True] * 2
    assert as_repeats(None) is DEFAULT and as_repeats(2) == Repeats.fixed(2)
    assert as_repeats(FULL) is FULL
    assert DEFAULT.least == 3 and not DEFAULT.is_fixed


def test_median_spread_is_the_median_absolute_deviation_over_the_median():
    assert median_spread([1.0, 2.0, 4.0]) == pytest.approx(1.0 / 2.0)
    assert median_spread([2.0, 2.0, 2.0]) == 0.0
    assert median_spread([0.0, 0.0, 1.0]) == float("inf")


@pytest.mark.parametrize("bad, why", [
    (0, "repeat 0 must be an int >= 1"), (True, "repeat True must be an int >= 1"),
    (2.5, "repeat 2.5 must be an int >= 1")])
def test_as_repeats_refuses_what_is_no_count(bad, why):
    with pytest.raises(ValueError, match=why):
        as_repeats(bad)


def test_a_rule_refuses_impossible_bounds():
    with pytest.raises(ValueError, match="Repeats.most 2 must be >= least 3"):
        Repeats(least=3, most=2)
    with pytest.raises(ValueError, match="Repeats.least 0 must be an int >= 1"):
        Repeats(least=0)
    with pytest.raises(ValueError, match="Repeats.least_long 4 must be <= least 3"):
        Repeats(least=3, least_long=4)


def test_timed_runs_calls_until_the_rule_is_met_and_returns_the_last_result():
    calls = []
    times, last = timed_runs(lambda: calls.append(len(calls)) or len(calls), 4)
    assert len(times) == 4 == len(calls) and last == 4 and all(t >= 0 for t in times)
    assert DEFAULT.describe().startswith("3-9 runs: until the median absolute deviation")
    assert FULL.describe() == "5 runs"
