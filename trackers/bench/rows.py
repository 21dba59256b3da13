"""Which rows bench-core has: the emulations and their ``@kernel`` twins.

One owner for a row's identity: its ``engine`` label (:func:`engine_of`),
whether it runs the kernel's own code (:func:`is_kernel`) and which emulation
it is the twin of (:func:`twin_of`), the rows a command line selects
(:func:`select_rows`), and each kernel-code row's emulation/kernel-code
ratios (:func:`add_ratios`, :func:`ratio_table`).  The rest of bench-core
asks here instead of reading the registry's KERNEL_TRACKERS itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import linux
from ..base import EMULATION
from ..kernel_code import TWINS
from ..registry import KERNEL_TRACKERS, KERNEL_UNAVAILABLE, TRACKERS

#: the measured times of a bench-core row
TIMES = ("populate_s", "scan_extents_s", "scan_pfns_s")
#: suffix of the emulation/kernel-code ratio columns of a kernel-code row
RATIO = "_emulation_over_kernel"
#: the figures a kernel-code row is compared on: its median times and its bytes
RATIO_OF = (*(f"{t}_median" for t in TIMES), "modeled_bytes", "peak_rss_bytes")


def is_kernel(name: str) -> bool:
    """Does the row ``name`` run the kernel's own code (a registered @kernel twin)?"""
    return name in KERNEL_TRACKERS


def twin_of(name: str) -> str | None:
    """The emulation the kernel-code row ``name`` is the twin of; None for
    an emulation row."""
    return getattr(KERNEL_TRACKERS.get(name), "twin", None)


def engine_of(name: str) -> str:
    """The ``engine`` column of a row: "emulation", or "kernel code vX.Y.Z
    (userspace)" with the version of the kernel source the library was built from."""
    if is_kernel(name):
        return linux.engine_label()
    return EMULATION


def select_rows(names, engine: str = "all") -> tuple[list[str], str]:
    """The trackers bench-core measures, in registry order, each emulation
    before its @kernel twin; and why kernel-code rows asked for are missing
    ("" when none are).

    ``names`` (None: every emulation) are registry names: an emulation's name
    selects it and its twin, ``NAME@kernel`` the twin alone; ``engine``
    ("all", "emulation", "kernel") keeps one engine or both.  ValueError
    for a name that is neither."""
    twin_names = {cls.name: twin for twin, cls in TWINS.items()}
    emulations, twins = set(), set()
    for n in names or TRACKERS:
        if n in TRACKERS:
            emulations.add(n)
            twins.add(n)
        elif n in twin_names:
            twins.add(twin_names[n])
        else:
            raise ValueError(f"unknown tracker {n!r}; known: {', '.join(TRACKERS)}")
    rows, missing = [], ""
    for base in TRACKERS:
        if base in emulations and engine in ("all", "emulation"):
            rows.append(base)
        if base in twins and base in TWINS and engine in ("all", "kernel"):
            name = TWINS[base].name
            if name in KERNEL_TRACKERS:
                rows.append(name)
            else:
                missing = KERNEL_UNAVAILABLE or f"{name} is not registered"
    return rows, missing


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Each kernel-code row's emulation/kernel-code ratio of every RATIO_OF
    figure (its twin's median over its own), as NAME_emulation_over_kernel
    columns; NaN on emulation rows and where the twin was not measured."""
    out = df.copy()
    by_name = out.set_index("tracker")
    for col in RATIO_OF:
        ratios = []
        for name in out["tracker"]:
            cls = KERNEL_TRACKERS.get(name)
            twin = getattr(cls, "twin", None)
            if (cls is None or twin not in by_name.index or col not in by_name
                    or pd.isna(by_name.at[twin, col]) or pd.isna(by_name.at[name, col])
                    or by_name.at[name, col] == 0):
                ratios.append(np.nan)
            else:
                ratios.append(by_name.at[twin, col] / by_name.at[name, col])
        out[col.removesuffix("_median") + RATIO] = ratios
    return out


def ratio_table(df: pd.DataFrame) -> pd.DataFrame:
    """The ratio columns of the kernel-code rows that have them, one row per structure."""
    cols = [c for c in df if c.endswith(RATIO)]
    if not cols:
        return pd.DataFrame()
    rows = df[df[cols].notna().any(axis=1)]
    return rows[["tracker", *cols]].rename(columns={c: c.removesuffix(RATIO) for c in cols})
