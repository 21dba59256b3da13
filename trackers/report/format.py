"""Numbers for people: bytes and times written one way in every figure,
table and sentence of the report (figures, recommendation.md, summary.md).

* :func:`fmt_bytes`: binary units, B up to TiB: "512 KiB", "1.5 GiB", "16 TiB";
* :func:`fmt_seconds`: three significant digits in the unit that suits:
  ns below 1 µs, then µs, ms, s below 600 s, min below 1 h, then h
  ("183 ns", "1.5 µs", "12.3 ms", "66 s", "10 min", "5.75 h");
* :func:`fmt_ns`: a time given in ns, by the same rule;
* :func:`fmt_load`: the load beside timed numbers, the share of this
  machine's CPU time other tasks took while they were timed ("other tasks
  took 0-2 % of this machine's CPU time while these were timed, 1-minute
  load 0.1-0.4").

A missing number (None, NaN, ±inf) is written "n/a", never "0".
"""

from __future__ import annotations

import math

#: seconds -> unit, from the largest: a time is written in the first unit
#: whose threshold it reaches (after rounding to three significant digits),
#: so 599.6 s is "10 min" and 0.99996 s is "1 s", never "1e+03 ms"
TIME_UNITS = (
    ("h", 3600.0, 3600.0),        # an hour and more: kdump waits of hours
    ("min", 60.0, 600.0),         # 10 min up to an hour
    ("s", 1.0, 1.0),
    ("ms", 1e-3, 1e-3),
    ("µs", 1e-6, 1e-6),
    ("ns", 1e-9, 0.0),
)

#: binary byte units, from the largest: (unit, log2 of its size)
BYTE_UNITS = (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10))


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(x)
    except TypeError:
        return False


def _digits(v: float) -> str:
    """Three significant digits, without trailing zeros or an exponent."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def fmt_seconds(x) -> str:
    """A time in seconds, in the unit of :data:`TIME_UNITS` that suits it."""
    if not _finite(x):
        return "n/a"
    if x == 0:
        return "0 s"
    r = float(f"{x:.3g}")                 # the unit of the number as written
    for unit, scale, threshold in TIME_UNITS:
        if abs(r) >= threshold:
            return f"{_digits(r / scale)} {unit}"
    raise AssertionError("unreachable: the last threshold is 0")


def fmt_ns(x) -> str:
    """A time in nanoseconds, written as :func:`fmt_seconds` writes it."""
    return fmt_seconds(x * 1e-9) if _finite(x) else "n/a"


def fmt_bytes(x) -> str:
    """A byte count in binary units: whole units from 10 up (and for whole
    values), one decimal below ("1.5 GiB"); plain bytes below 1 KiB."""
    if not _finite(x):
        return "n/a"
    for unit, shift in BYTE_UNITS:
        if abs(x) >= 1 << shift:
            v = x / (1 << shift)
            return f"{v:.0f} {unit}" if abs(v) >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{x:.0f} B"


def _span(values, fmt) -> str:
    lo, hi = min(values), max(values)
    a, b = fmt(lo), fmt(hi)
    return a if a == b else f"{a}-{b}"


def fmt_load(shares, loads=()) -> str:
    """The load beside numbers timed here: the range of ``shares`` (each the
    share of this machine's CPU time other tasks took while one was timed,
    trackers/machine_load.py) and of the 1-minute ``loads``; "" where none
    was measured."""
    s = [float(x) for x in shares if _finite(x)]
    if not s:
        return ""
    text = (f"other tasks took {_span([x * 100 for x in s], lambda v: f'{v:.0f}')} % of this "
            f"machine's CPU time while these were timed")
    l1 = [float(x) for x in loads if _finite(x)]
    if l1:
        text += f", 1-minute load {_span(l1, lambda v: f'{v:.1f}')}"
    return text
