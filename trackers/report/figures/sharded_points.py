"""Sharded builds (sharded.csv) as points over memory_vs_host and scan_time:
the rows each figure draws, their marker and the caption's sentence.
"""

from __future__ import annotations

import pandas as pd

from ..format import fmt_bytes
from .select import SET_CAPTIONS, has_columns, text_cells


#: how a sharded build is drawn (memory_vs_host, scan_time): a hexagon in its
#: option's colour, filled for the kernel's own code, hollow for the emulation
SHARDED_MARKER = dict(marker="h", ms=10, mew=1.6)


def sharded_points(sharded: pd.DataFrame | None, column: str) -> pd.DataFrame:
    """The rows of sharded.csv with a positive ``column`` (none without the
    table or the column: the figure is drawn as without --sharded)."""
    if sharded is None or sharded.empty or not has_columns(sharded, "option", "host_bytes", column):
        return pd.DataFrame(columns=["option", "host_bytes", column])
    return sharded[pd.to_numeric(sharded[column], errors="coerce") > 0]


def is_kernel_code(pts: pd.DataFrame) -> pd.Series:
    kind = text_cells(pts["engine"]) if "engine" in pts else pd.Series("", index=pts.index)
    return kind.str.startswith("kernel code")


def sharded_caption(pts: pd.DataFrame) -> str:
    """Which sharded builds a figure draws: sizes, shards, engines, sources."""
    sizes = ", ".join(fmt_bytes(x) for x in sorted(set(pts["host_bytes"])))
    shards = "/".join(str(int(x)) for x in sorted(set(pts["shards"].dropna()))) \
        if "shards" in pts else "?"
    engines = "; ".join(dict.fromkeys(text_cells(pts["engine"]))) if "engine" in pts else "?"
    sources = ", ".join(dict.fromkeys(text_cells(pts["source"]))) if "source" in pts else "?"
    shape = str(pts["set"].iloc[0]) if "set" in pts else "reference"
    return (f"at {sizes}, built in {shards} shards over the '{shape}' set "
            f"({SET_CAPTIONS.get(shape, shape)}), engines: {engines}; from {sources} "
            f"(sharded.csv)")
