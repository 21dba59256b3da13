"""bench-core's printed tables: bytes in MiB, each measured time as
"median (min\u2013max)" (:func:`format_table`, :func:`format_range`).  The maple
order and conversion-cost tables are printed by their own modules."""

from __future__ import annotations

import pandas as pd


def format_range(lo: float, hi: float) -> str:
    return f"{lo:.3g}\u2013{hi:.3g}"


def format_table(df: pd.DataFrame) -> str:
    """Bytes in MiB; each measured time as "median (min\u2013max)" under its name;
    a row that is not representable shows "-" for its numbers and says why."""
    out = df.copy()
    for col in [c for c in out if c.endswith("_median")]:
        name = col[:-len("_median")]
        out[name] = ["-" if pd.isna(m) else f"{m:.3g} ({format_range(lo, hi)})" for m, lo, hi in
                     zip(out[col], out[f"{name}_min"], out[f"{name}_max"])]
        out = out.drop(columns=[col, f"{name}_min", f"{name}_max"])
    for col in ("modeled_bytes", "scanned_bytes", "host_bytes", "peak_rss_bytes"):
        if col in out:
            out[col] = (out[col] / 2**20).map(lambda x: "-" if pd.isna(x) else f"{x:,.1f}")
            out = out.rename(columns={col: col.replace("_bytes", "_MiB")})
    for col in ("not_representable", "error"):
        if col in out:
            out[col] = out[col].fillna("")
    return out.to_string(index=False, float_format=lambda x: f"{x:.3g}")
