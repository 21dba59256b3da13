"""Selecting what a figure draws from the report's tables, as a DataFrame or
as its CSV reads it back: text and boolean cells, the columns a table has,
the order of platforms, CPU counts at reset ("all" included), and what each
private set is.
"""

from __future__ import annotations

import math

import pandas as pd

from ...kexec import PLATFORMS


#: what each private set shape is (the ``set`` column; trackers.sets.SET_SHAPES)
SET_CAPTIONS = {
    "reference": "60 % of RAM in random 2 MiB extents + 10 % scattered 4 KiB pages",
    "reference-1pct": "60 % of RAM in random 2 MiB extents + 1 % scattered 4 KiB pages",
    "extents-2m": "70 % of RAM in random 2 MiB extents",
}


def missing_columns(df, columns) -> list[str]:
    """The columns of ``columns`` that ``df`` lacks (all of them for no table)."""
    if df is None:
        return list(columns)
    return [c for c in columns if c not in df]


def is_true(x) -> bool:
    """A boolean cell, also as a CSV reads it back ("True"/"False" text, NaN)."""
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes")
    return bool(x) if pd.notna(x) else False


def has_columns(d, *columns) -> bool:
    """Does the table (or row) ``d`` have every one of ``columns``?"""
    return all(c in d for c in columns)


def text_cells(col: pd.Series) -> pd.Series:
    """A text column as str, "" where empty (a CSV reads an empty column as NaN floats)."""
    return col.astype(object).where(col.notna(), "").astype(str)


#: the platform whose downtimes the figures show first (a preset, an estimate
#: of a two-socket Sapphire Rapids; summary.py's verdict platform)
REFERENCE_PLATFORM = "spr-2s"
#: the platform of the machine that ran the report (trackers.kexec.PLATFORMS):
#: the only one with measured scans
THIS_MACHINE = "this-machine"


def platform_order(names) -> list[str]:
    """Platform names, the reference platform first, then this machine."""
    names = list(dict.fromkeys(names))
    first = [n for n in (REFERENCE_PLATFORM, THIS_MACHINE) if n in names]
    return first + [n for n in names if n not in first]


def cpu_numbers(d: pd.DataFrame) -> tuple[pd.Series, float | None]:
    """``cpus_at_reset`` as numbers and the number that stands for "all CPUs of
    the platform" (None where the table does not say).  A cell reading "all"
    becomes the platform's CPU count (``platform_cpus_total`` or
    ``cpus_total`` where the table has one, else twice the largest count)."""
    raw = d["cpus_at_reset"]
    num = pd.to_numeric(raw, errors="coerce")
    is_all = text_cells(raw).str.strip().str.lower().eq("all")
    if not is_all.any():
        return num, None
    total = math.nan
    for col in ("platform_cpus_total", "cpus_total"):
        if col in d:
            total = pd.to_numeric(d.loc[is_all, col], errors="coerce").max()
            break
    plat = set(d["platform"]) if "platform" in d else set()
    if not total > 0 and len(plat) == 1 and next(iter(plat)) in PLATFORMS:
        total = PLATFORMS[next(iter(plat))].cpus_total       # the preset's CPUs
    if not total > 0:
        total = 2 * (num.max() if num.notna().any() else 1)
    return num.where(~is_all, total), float(total)


def with_platform_column(df):
    """``df`` with a ``platform`` column (the sensitivity and tornado tables'
    name), made from ``platform_name`` (the kexec table's) where it lacks one."""
    if df is not None and "platform" not in df and "platform_name" in df:
        return df.assign(platform=df["platform_name"])
    return df


def cpu_sweep(sensitivity, platform: str) -> pd.DataFrame:
    """The sensitivity rows of one platform with numeric ``cpus`` and ``is_all``
    (the row for every CPU of the platform); empty where the table lacks them."""
    cols = ["strategy", "scenario", "platform", "cpus_at_reset", "downtime_s"]
    sensitivity = with_platform_column(sensitivity)
    if sensitivity is None or sensitivity.empty or missing_columns(sensitivity, cols):
        return pd.DataFrame(columns=cols + ["cpus", "is_all"])
    d = sensitivity[sensitivity["platform"] == platform].copy()
    cpus, total = cpu_numbers(d)
    d["cpus"] = cpus
    top = total if total is not None else (cpus.max() if len(d) else math.nan)
    known = platform in PLATFORMS and PLATFORMS[platform].cpus_total == top
    d["is_all"] = cpus.eq(top) & (total is not None or known
                                  or ~cpus.isin([2 ** k for k in range(7)]))
    return d.dropna(subset=["cpus"])


def cpus_label(n: float, is_all: bool = False) -> str:
    n = int(n)
    return f"all {n} CPUs" if is_all else f"{n} CPU" + ("s" if n > 1 else "")


def typed(frame: pd.DataFrame, numbers=(), flags=()) -> pd.DataFrame:
    """``frame`` with the columns ``numbers`` as floats and ``flags`` as
    booleans (empty: False): a frame concatenated from parts that lack a
    column, or from no rows, holds it as objects, which matplotlib refuses."""
    out = frame.astype({c: float for c in numbers})
    for c in flags:
        out[c] = out[c].eq(True)
    return out
