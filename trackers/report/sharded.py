"""The report's sharded points: every tracker built shard by shard at 4, 16
and 64 TiB (trackers/shard.py), measured, beside estimate() of the same shards.

Two sources, one table (``sharded.csv``, :func:`sharded_table`):

* ``report --sharded SIZES``: the report's trackers (and their ``@kernel``
  twins where the kernel code is built) built over the reference shape in
  shards of ``ReportConfig.shard_pfns`` (2^28, 1 TiB), each shard a timed
  step of the report building every tracker in turn (steps.sharded_steps;
  populate and the extents() scan timed), combined by
  trackers.shard.combine as ``bench-core`` combines them;
* ``report --sharded-csv FILE...``: the CSV ``bench-core --pfns N --csv
  FILE`` wrote for an N above its ``--shard-pfns`` (hours at 64 TiB), read
  back as the same rows (:func:`load_csv`), checked before any work.

Both are bench-core's row (trackers.shard.Sharded.row) renamed so each
column says what it is: ``*_measured_*`` times (the sum over the shards:
one CPU at reset; median and min-max over the runs) and peak RSS (the
largest shard task's, per worker); ``modeled_bytes`` (the built structures'
node counts x the kernel struct sizes, combined), ``estimate_bytes``
(estimate() of the same shards, combined the same way) and
``added_bytes`` (what the option adds to a running kernel, as
memory_vs_host) are modeled.  A tracker that cannot hold the whole set
(the IDA beyond 2^31 PFNs) is a row that says so (``not_representable``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..bench.rows import engine_of
from ..kernel import MAPLE_NODE_BYTES, MAX_PHYS_PFN, PAGE_SIZE, PAGES_PER_2M
from ..kexec.strategies import TRACKER_STRATEGIES, strategy_for_tracker
from ..options import MAX_RUNS
from ..registry import ALL_TRACKERS, KERNEL_SUFFIX, TRACKERS
from ..sets import host_label
from ..shard import (MAPLE, MAPLE_NODES_PER_BOUNDARY, ReferenceShards, Sharded, combine,
                     not_representable, shard_units, structure)
from ..workloads.tdx import parse_size
from .format import fmt_seconds

#: the table's name (sharded.csv)
TABLE = "sharded"
#: the set every sharded point is built over (bench-core's: ReferenceShards)
SHAPE = "reference"
#: the ``source`` of rows the report built itself
SOURCE_REPORT = "report --sharded"
#: how the figures name a sharded scan point
SCAN_LABEL = "measured, sharded, sum over shards (1 CPU)"

#: bench-core's measured columns -> sharded.csv's (the word "measured" in each)
MEASURED = {
    **{f"{t}_{stat}": f"{t[:-2]}_measured{'' if stat == 'median' else '_' + stat}_s"
       for t in ("populate_s", "scan_extents_s", "scan_pfns_s")
       for stat in ("median", "min", "max")},
    # one shard's time, over the shards (each a sample of the same shape)
    **{f"{t}_shard_{stat}": f"{t[:-2]}_shard_measured_{stat}_s"
       for t in ("populate_s", "scan_extents_s", "scan_pfns_s")
       for stat in ("median", "min", "max")},
    "scan_extents_max_shard_s": "scan_extents_max_shard_measured_s",
    "peak_rss_bytes": "peak_rss_measured_bytes",
    "baseline_rss_bytes": "baseline_rss_measured_bytes",
}
#: bench-core's modeled and descriptive columns, kept under their names
KEPT = ("tracker", "engine", "pfns", "shards", "shard_pfns", "private_pages", "extents",
        "modeled_bytes", "estimate_bytes", "modeled_over_estimate", "bits_per_private_page")
#: what a bench-core CSV must hold for the table and its figures
REQUIRED = ("tracker", "engine", "pfns", "shards", "modeled_bytes", "estimate_bytes",
            "populate_s_median", "populate_s_min", "populate_s_max", "scan_extents_s_median",
            "scan_extents_s_min", "scan_extents_s_max", "scan_extents_max_shard_s",
            "peak_rss_bytes")
#: sharded.csv's columns, in order
COLUMNS = ("tracker", "option", "engine", "set", "pfns", "host_bytes", "TiB", "shards",
           "shard_pfns", "private_pages", "extents", "modeled_bytes", "added_bytes",
           "estimate_bytes", "modeled_over_estimate", "bits_per_private_page",
           "maple_bound_bytes", *MEASURED.values(), "runs", "not_representable", "source")


# --------------------------------------------------------------------------
# the sizes of --sharded, checked before any work

def parse_sizes(text: str) -> list[int]:
    """An argparse ``type=``: comma-separated sizes, each PFNs (``1048576``,
    ``0x100000``) or bytes in binary units (``4T``, ``64T``: 2^30 and 2^34
    PFNs); ValueError naming the size and the limit."""
    sizes = []
    for item in text.split(","):
        item = item.strip()
        try:
            pfns = int(item, 0)                  # a bare number is PFNs
        except ValueError:
            nbytes = parse_size(item, "--sharded size")
            if nbytes % PAGE_SIZE:
                raise ValueError(f"--sharded size {item!r} is not a whole number of "
                                 f"4 KiB pages") from None
            pfns = nbytes // PAGE_SIZE
        if pfns <= 0 or pfns > MAX_PHYS_PFN or pfns % PAGES_PER_2M:
            raise ValueError(f"--sharded size {item!r} ({pfns:,} PFNs) must be a multiple "
                             f"of {PAGES_PER_2M} PFNs (whole 2 MiB) in [{PAGES_PER_2M}, "
                             f"{MAX_PHYS_PFN:,}] (kernel.MAX_PHYS_PFN, 2^40: 4 PiB)")
        if pfns not in sizes:
            sizes.append(pfns)
    return sorted(sizes)


def sizes_option(text: str) -> list[int]:
    """:func:`parse_sizes` as an argparse ``type=`` (its message, exit status 2)."""
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_sizes(sizes, shard_pfns: int) -> None:
    """ValueError, before any work, for a size the sharded figure does not
    take: one shard or less (a whole build: the scan figure has it), or a
    shard whose reference set would hold more extents than MAX_SET_RUNS."""
    for pfns in sizes:
        if pfns <= shard_pfns:
            raise ValueError(f"--sharded {host_label(pfns)} ({pfns:,} PFNs) is not above "
                             f"the shard size {shard_pfns:,} PFNs ({host_label(shard_pfns)}): "
                             f"a whole build; the scan figure has it")
    if sizes:
        ReferenceShards(SHAPE).check(shard_pfns)


def sharded_names(names, kernel_code: bool) -> list[str]:
    """The trackers of the sharded points: each of ``names``, followed by its
    @kernel twin where ``kernel_code`` and the twin is registered."""
    out = []
    for name in names:
        out.append(name)
        twin = f"{name}{KERNEL_SUFFIX}"
        if kernel_code and twin in ALL_TRACKERS:
            out.append(twin)
    return out


# --------------------------------------------------------------------------
# the report's own sharded builds: one step per shard, every tracker in it

def shard_step(names, pfns: int, shard_pfns: int, fn, args) -> list[dict]:
    """One shard of every tracker's build (trackers.shard.measure_shard_all),
    each tagged with its build: a report step's rows."""
    return [{"tracker": name, "pfns": pfns, "shard_pfns": shard_pfns, "shard": shard}
            for name, shard in zip(names, fn(*args))]


def shard_runs(names, pfns: int, shard_pfns: int, seed: int, repeat: int):
    """(label, fn, args) per shard, every tracker of ``names`` representable
    at ``pfns`` in it (trackers.shard.shard_units; the extents() scan, the one
    the figures draw, not pfns()): the steps of one sharded size, each
    :func:`shard_step` of one shard's unit."""
    built = [n for n in names if not not_representable(n, pfns)]
    if not built:
        return []
    units = shard_units(built, pfns, shard_pfns, ReferenceShards(SHAPE, seed), repeat,
                        scan_pfns=False)
    return [(f"{host_label(pfns)}: {u.label}", shard_step,
             (built, pfns, shard_pfns, u.fn, u.args)) for u in units]


def combine_steps(names, sizes, results: list[dict], repeat: int) -> pd.DataFrame:
    """bench-core's sharded rows (Sharded.row(), and a not-representable row
    where a tracker cannot hold the whole set) from the steps' results, in
    the order of ``sizes`` x ``names``."""
    by_build: dict[tuple[str, int], list[dict]] = {}
    shard_of: dict[int, int] = {}
    for r in results:
        by_build.setdefault((r["tracker"], r["pfns"]), []).append(r["shard"])
        shard_of[r["pfns"]] = r["shard_pfns"]
    rows = []
    for pfns in sizes:
        for name in names:
            why = not_representable(name, pfns)
            if why:
                rows.append({"tracker": name, "engine": engine_of(name), "pfns": pfns,
                             "not_representable": why})
                continue
            shards = sorted(by_build[(name, pfns)], key=lambda sh: sh["shard"])
            sp = shard_of[pfns]
            built = Sharded(name, pfns, sp, shards, combine(name, shards, pfns, sp),
                            combine(name, shards, pfns, sp, estimate=True))
            row = built.row()
            rows.append({"tracker": row.pop("tracker"), "engine": engine_of(name), **row,
                         "runs": repeat})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# bench-core's CSVs

def load_csv(path) -> pd.DataFrame:
    """A bench-core CSV of a sharded run (``bench-core --pfns N --csv FILE``,
    N above --shard-pfns), checked: it exists, parses, has the REQUIRED
    columns, every row built in more than one shard (a row that says
    "not representable" excepted), and every value of every row is one
    bench-core could have written (:func:`check_row`: a known tracker, pfns
    within --sharded's limits, finite bytes and seconds >= 0); ValueError
    naming the file, the row (its line), the column, the value and the
    limit."""
    path = Path(path)
    where = f"--sharded-csv {path}"
    if not path.is_file():
        raise ValueError(f"{where}: no such file" if not path.exists()
                         else f"{where}: not a file")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not a CSV table ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
                         ) from None
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise ValueError(f"{where}: lacks the column(s) {', '.join(missing)} of a sharded "
                         f"bench-core table (bench-core --pfns N --csv FILE, N above "
                         f"--shard-pfns)")
    if df.empty:
        raise ValueError(f"{where}: no rows")
    nr = (df["not_representable"].astype(object).where(df["not_representable"].notna(), "")
          .astype(str) != "") if "not_representable" in df else pd.Series(False, df.index)
    shards = pd.to_numeric(df["shards"], errors="coerce")
    whole = df[~nr & (shards <= 1)]
    if not whole.empty:
        r = whole.iloc[0]
        raise ValueError(f"{where}: row {int(whole.index[0]) + 2} ({r['tracker']}) was built "
                         f"in {r['shards']} shard(s), not sharded: its --pfns was not above "
                         f"--shard-pfns (a whole build; the scan figure has it)")
    text = pd.read_csv(path, dtype=str, keep_default_na=False)   # each value as written
    for i, (row, written, refused) in enumerate(zip(df.to_dict("records"),
                                                    text.to_dict("records"), nr)):
        why = check_row(row, built=not refused, written=written)
        if why:
            named = "" if why.startswith("column tracker ") else f" ({row['tracker']})"
            raise ValueError(f"{where}: row {i + 2}{named} {why}")
    return df


# --------------------------------------------------------------------------
# every value of a bench-core CSV row, checked before any work

#: measured seconds: each a finite number >= 0 (min <= median <= max)
TIME_COLUMNS = tuple(f"{t}_{part}{stat}" for t in ("populate_s", "scan_extents_s", "scan_pfns_s")
                     for part in ("", "shard_") for stat in ("median", "min", "max")) + (
    "scan_extents_max_shard_s",)
#: bytes and counts: each a finite number >= 0
BYTE_COLUMNS = ("modeled_bytes", "estimate_bytes", "peak_rss_bytes", "baseline_rss_bytes")
COUNT_COLUMNS = ("private_pages", "extents")
RATIO_COLUMNS = ("modeled_over_estimate", "bits_per_private_page")
#: what a built row must fill (the others may be empty: not timed, not known)
FILLED = ("pfns", "shards", "modeled_bytes", "estimate_bytes", *(
    f"{t}_{stat}" for t in ("populate_s", "scan_extents_s") for stat in ("median", "min", "max")),
    "scan_extents_max_shard_s")


def _shown_as(value, written: str | None = None) -> str:
    """A value as a message shows it: as the file wrote it where known (a
    number unquoted, text quoted), "empty" where there is nothing."""
    if written is not None:
        if not written.strip():
            return "empty"
        return written if isinstance(_parsed(written), float) else repr(written)
    return "empty" if _empty(value) else repr(value) if isinstance(value, str) else f"{value}"


def _parsed(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value):
    """``value`` as a float (a number, or text that is one), else None (empty,
    other text, bool)."""
    if isinstance(value, str):
        value = _parsed(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _whole(value, lo: int, hi: int, multiple: int = 1) -> bool:
    v = _number(value)
    return (v is not None and math.isfinite(v) and v.is_integer() and lo <= v <= hi
            and int(v) % multiple == 0)


def check_row(row: dict, built: bool = True, written: dict | None = None) -> str:
    """"" if every value of one bench-core sharded row is one bench-core could
    have written; else "column C is V: want LIMIT" for the first that is not.
    ``built``: the row was built (not a "not representable" row), so the
    FILLED columns must hold values; ``written``: the row's values as the
    file has them (text), to show them so."""
    def shown(col, text: bool = False):
        as_written = None if written is None or col not in written else str(written[col])
        if text and as_written and as_written.strip():
            return repr(as_written)                 # a name column: quoted, even "nan"
        return _shown_as(row.get(col), as_written)

    name = row.get("tracker")
    twin = (name[:-len(KERNEL_SUFFIX)]
            if isinstance(name, str) and name.endswith(KERNEL_SUFFIX) else None)
    if not (isinstance(name, str) and (name in ALL_TRACKERS or twin in TRACKERS)):
        return (f"column tracker is {shown('tracker', text=True)}: want a tracker name "
                f"({', '.join(TRACKERS)}, or one of them with {KERNEL_SUFFIX})")
    engine = row.get("engine")
    if not (isinstance(engine, str) and engine.strip()):
        return (f"column engine is {shown('engine', text=True)}: want the engine that measured the "
                f"row (emulation, kernel code vX.Y.Z (userspace), ...)")
    for col in FILLED if built else ():
        if _empty(row.get(col)):
            return f"column {col} is empty: want a value (a built row fills it)"
    pfns = row.get("pfns")
    if not _empty(pfns) and not _whole(pfns, PAGES_PER_2M, MAX_PHYS_PFN, PAGES_PER_2M):
        return (f"column pfns is {shown('pfns')}: want a multiple of {PAGES_PER_2M} in "
                f"[{PAGES_PER_2M}, {MAX_PHYS_PFN:,}] (whole 2 MiB, up to 2^40 PFNs: 4 PiB, "
                f"as --sharded)")
    if built:
        most = int(_number(pfns)) // PAGES_PER_2M
        if not _whole(row.get("shards"), 2, most):
            return (f"column shards is {shown('shards')}: want a whole number in [2, "
                    f"{most:,}] (its pfns {int(_number(pfns)):,} in shards of whole 2 MiB)")
    for cols, what in ((TIME_COLUMNS, "seconds"), (BYTE_COLUMNS, "bytes"),
                       (COUNT_COLUMNS, "a whole number: a count"), (RATIO_COLUMNS, "a ratio")):
        for col in cols:
            if _empty(row.get(col)):
                continue
            n = _number(row.get(col))
            if (n is None or not math.isfinite(n) or n < 0
                    or (cols is COUNT_COLUMNS and not n.is_integer())):
                return f"column {col} is {shown(col)}: want a finite number >= 0 ({what})"
    for t in ("populate_s", "scan_extents_s", "scan_pfns_s"):
        lo, mid, hi = (_number(row.get(f"{t}_{stat}")) for stat in ("min", "median", "max"))
        if None not in (lo, mid, hi) and not lo <= mid <= hi:
            return (f"columns {t}_min, _median, _max are {lo:g}, {mid:g}, {hi:g}: want "
                    f"min <= median <= max")
    modeled, estimate = _number(row.get("modeled_bytes")), _number(row.get("estimate_bytes"))
    if built and estimate == 0 and modeled != 0:
        return (f"column estimate_bytes is {shown('estimate_bytes')} where modeled_bytes is "
                f"{modeled:,.0f}: want estimate() of the same shards, 0 only for a structure "
                f"that adds nothing")
    if not _empty(row.get("runs")) and not _whole(row.get("runs"), 1, MAX_RUNS):
        return f"column runs is {shown('runs')}: want a whole number in [1, {MAX_RUNS}]"
    return ""


def sharded_table(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """sharded.csv's rows (module doc; COLUMNS) from bench-core's sharded
    rows (Sharded.row() or a bench-core CSV), each naming its ``source``."""
    out = pd.DataFrame(index=rows.index)
    for col in KEPT:
        out[col] = rows[col] if col in rows else math.nan
    for old, new in MEASURED.items():
        out[new] = rows[old] if old in rows else math.nan
    out["runs"] = rows["runs"] if "runs" in rows else math.nan    # bench-core's CSV: unknown
    sizes = out["pfns"].dropna().unique()
    if len(sizes) == 1:             # bench-core's not-representable row names no size: its run's
        out["pfns"] = out["pfns"].fillna(sizes[0]).astype(np.int64)
    # a twin this machine has not built (a CSV from another) still names its emulation
    out["option"] = [structure(n) if n in ALL_TRACKERS else str(n).removesuffix(KERNEL_SUFFIX)
                     for n in out["tracker"]]
    out["set"] = SHAPE
    out["host_bytes"] = out["pfns"] * PAGE_SIZE
    out["TiB"] = out["host_bytes"] / 2 ** 40
    out["added_bytes"] = [strategy_for_tracker(o).added_bytes(b)
                          if o in TRACKER_STRATEGIES and pd.notna(b) else math.nan
                          for o, b in zip(out["option"], out["modeled_bytes"])]
    # maple: the combined tree has at most MAPLE_NODES_PER_BOUNDARY more nodes
    # per shard boundary than the unsharded one (trackers/shard.py)
    out["maple_bound_bytes"] = [
        (s - 1) * MAPLE_NODES_PER_BOUNDARY * MAPLE_NODE_BYTES if o == MAPLE and s > 1
        else math.nan for o, s in zip(out["option"], out["shards"])]
    nr = rows["not_representable"] if "not_representable" in rows else ""
    out["not_representable"] = (pd.Series(nr, index=rows.index).astype(object)
                                .where(lambda x: x.notna(), "").astype(str))
    out["source"] = source
    return out[list(COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------
# what summary.md says of them

def _text(col) -> pd.Series:
    return col.astype(object).where(col.notna(), "").astype(str)


def agreement(df: pd.DataFrame) -> pd.DataFrame:
    """Per structure (``option``), over every sharded row: the largest
    |modeled_over_estimate - 1|, and for maple the largest excess of built
    nodes over estimate() beside its bound (nodes)."""
    built = df[(_text(df["not_representable"]) == "") & df["estimate_bytes"].notna()]
    rows = []
    for option, g in built.groupby("option", sort=False):
        # estimate() 0 (pageflags: a bit of struct page): exact when nothing was built
        dev = np.where(g["estimate_bytes"] > 0,
                       (g["modeled_bytes"] / g["estimate_bytes"].where(g["estimate_bytes"] > 0)
                        - 1).abs(), np.where(g["modeled_bytes"] == 0, 0.0, np.inf)).max()
        row = {"option": option, "max_abs_dev": float(dev), "engines": len(set(g["engine"]))}
        if option == MAPLE:
            extra = (g["modeled_bytes"] - g["estimate_bytes"]) / MAPLE_NODE_BYTES
            bound = g["maple_bound_bytes"] / MAPLE_NODE_BYTES
            i = int(np.argmax((extra / bound).to_numpy()))
            row.update(extra_nodes=float(extra.iloc[i]), bound_nodes=float(bound.iloc[i]),
                       boundaries=int(g["shards"].iloc[i]) - 1)
        rows.append(row)
    return pd.DataFrame(rows)


def summary_line(df: pd.DataFrame | None) -> str:
    """One sentence: the largest sharded point measured, where it came from,
    and how far its built bytes lie from estimate() per structure ("" with
    no sharded rows)."""
    if df is None or df.empty:
        return ""
    built = df[_text(df["not_representable"]) == ""]
    if built.empty:
        return ""
    top = built[built["pfns"] == built["pfns"].max()]
    shards = sorted(set(int(s) for s in top["shards"]))
    sources = ", ".join(f"`{s}`" for s in dict.fromkeys(_text(top["source"])))
    scan = top.sort_values("scan_extents_measured_s")
    fast, slow = scan.iloc[0], scan.iloc[-1]
    parts = []
    for r in agreement(df).itertuples():
        part = f"`{r.option}` {r.max_abs_dev:.2g}"
        if r.option == MAPLE and hasattr(r, "extra_nodes"):
            part += (f" ({r.extra_nodes:,.0f} nodes over estimate(), bound "
                     f"{MAPLE_NODES_PER_BOUNDARY} per boundary: {r.bound_nodes:,.0f} over "
                     f"{int(r.boundaries)} boundaries)")
        parts.append(part)
    nr = df[(_text(df["not_representable"]) != "") & (df["pfns"] == df["pfns"].max())]
    why = "; ".join(dict.fromkeys(f"`{t}`: {w}" for t, w in
                                  zip(nr["tracker"], _text(nr["not_representable"]))))
    return (f"Sharded builds (sharded.csv): the largest measured point is "
            f"{host_label(int(top['pfns'].iloc[0]))} ({int(top['pfns'].iloc[0]):,} PFNs, "
            f"'{SHAPE}' set) in {'/'.join(map(str, shards))} shards, {len(top)} tracker rows "
            f"from {sources}; scan [measured, sum over shards, 1 CPU] "
            f"{fmt_seconds(fast['scan_extents_measured_s'])} (`{fast['tracker']}`) to "
            f"{fmt_seconds(slow['scan_extents_measured_s'])} (`{slow['tracker']}`); built bytes "
            f"[modeled] against estimate() of the same shards, max |modeled/estimate - 1| "
            f"per structure over every sharded row: " + ", ".join(parts)
            + (f"; not representable: {why}" if why else "") + ".")


def provenance(cfg_sizes, shard_pfns: int, csvs, repeat: int) -> dict:
    """provenance.json's ``sharded``: what the sharded rows came from."""
    return {"sizes_pfns": list(cfg_sizes), "shard_pfns": shard_pfns if cfg_sizes else None,
            "repeat": repeat if cfg_sizes else None, "set": SHAPE,
            "csv": [str(Path(p).resolve()) for p in csvs]}

