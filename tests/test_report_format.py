"""trackers.report.format: the one way bytes and times are written for people.

Facts asserted: the exact string at each edge of each unit (ns below 1 µs,
µs, ms, s below 600 s, min below 1 h, h from 1 h), rounding that would
reach the next unit's threshold, and what a missing number reads as.
"""

import math

import pytest

from trackers.report.format import fmt_bytes, fmt_ns, fmt_seconds


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"),
    (1e-9, "1 ns"),
    (0.5e-9, "0.5 ns"),
    (183e-9, "183 ns"),
    (999e-9, "999 ns"),
    (999.6e-9, "1 µs"),              # rounds to 1.00 µs: the next unit, not "1e+03 ns"
    (1e-6, "1 µs"),
    (1.5e-6, "1.5 µs"),
    (999e-6, "999 µs"),
    (1e-3, "1 ms"),
    (0.1829, "183 ms"),
    (0.99996, "1 s"),
    (1.0, "1 s"),
    (1.97, "1.97 s"),
    (66.4, "66.4 s"),
    (599.0, "599 s"),
    (599.6, "10 min"),               # rounds to 600 s
    (600.0, "10 min"),
    (3_580.0, "59.7 min"),
    (3_600.0, "1 h"),
    (3_723.0, "1.03 h"),
    (35_900.0, "9.97 h"),
    (36_000.0, "10 h"),
    (45_000.0, "12.5 h"),
    (-0.002, "-2 ms"),
])
def test_seconds_switch_units_at_the_rules_edges(seconds, text):
    assert fmt_seconds(seconds) == text


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_a_missing_number_is_na_never_zero(missing):
    assert fmt_seconds(missing) == "n/a"
    assert fmt_ns(missing) == "n/a"
    assert fmt_bytes(missing) == "n/a"


def test_ns_are_written_as_seconds_are():
    assert [fmt_ns(x) for x in (180, 999, 1500, 12_000, 2.5e6)] == [
        "180 ns", "999 ns", "1.5 µs", "12 µs", "2.5 ms"]


@pytest.mark.parametrize("nbytes, text", [
    (0, "0 B"),
    (1023, "1023 B"),
    (1024, "1 KiB"),
    (1536, "1.5 KiB"),
    (10 << 20, "10 MiB"),
    (int(10.4 * (1 << 20)), "10 MiB"),
    (3 << 30, "3 GiB"),
    (int(1.5 * (1 << 30)), "1.5 GiB"),
    (16 << 40, "16 TiB"),
    (2048 << 40, "2048 TiB"),
])
def test_bytes_in_binary_units(nbytes, text):
    assert fmt_bytes(nbytes) == text
