"""The maple order effect, on the kernel's own tree.

The kernel's maple tree (lib/maple_tree.c) holding the reference set's
extents stored in order against stored in random orders: nodes, leaves,
height, bytes and store time per extent (:func:`maple_order`), and its
printed table (:func:`format_maple_order`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import linux
from ..kernel import MAPLE_NODE_BYTES
from ..maple import Maple
from ..sets import reference_set
from .timing import spread

#: random store orders of the maple order table (seeds 1..N)
MAPLE_SEEDS = 5


def maple_order(max_pfn: int, seed: int = 0, seeds: int = MAPLE_SEEDS) -> pd.DataFrame:
    """Node counts of the kernel's maple tree (lib/maple_tree.c,
    :class:`trackers.linux.KernelMaple`) holding the reference set's maximal
    extents, each stored with mtree_store_range(): once in ascending order,
    and in ``seeds`` random orders (permutations seeded 1..seeds).

    One row per order: nodes, leaves and height (random: median and min-max
    over the seeds), kernel-counted bytes, the store time per extent, and
    the ratio of nodes to the in-order tree's (median, min, max).  The
    in-order row also gives the ``maple`` model's node count
    (:meth:`trackers.maple.Maple.estimate`), which it equals.  Runs in this
    process: bench-core runs it as a timed task."""
    starts, ends = reference_set(max_pfn, seed)

    def store(order):
        mt = linux.KernelMaple()
        try:
            s, e = (starts, ends) if order is None else (starts[order], ends[order])
            t0 = time.perf_counter()
            mt.store_range(s, e)
            seconds = time.perf_counter() - t0
            levels = mt.levels()
        finally:
            mt.close()
        return int(levels.sum()), int(levels[0]) if levels.size else 0, int(levels.size), seconds

    nodes, leaves, height, seconds = store(None)
    common = {"engine": linux.engine_label(), "pfns": max_pfn,
              "extents": int(starts.size)}
    rows = [{**common, "order": "in order", "seeds": "-", "runs": 1,
             **spread("nodes", [nodes]), **spread("leaves", [leaves]),
             **spread("height", [height]),
             **spread("kernel_bytes", [nodes * MAPLE_NODE_BYTES]),
             **spread("store_ns_per_extent", [seconds / max(starts.size, 1) * 1e9]),
             **spread("ratio", [1.0]),
             "model_nodes": int(Maple.estimate(starts, ends, max_pfn)) // MAPLE_NODE_BYTES}]
    got = [store(np.random.default_rng(s).permutation(starts.size))
           for s in range(1, seeds + 1)]
    rn, rl, rh, rs = (list(x) for x in zip(*got))
    rows.append({**common, "order": "random", "seeds": f"1-{seeds}" if seeds > 1 else "1",
                 "runs": seeds, **spread("nodes", rn), **spread("leaves", rl),
                 **spread("height", rh),
                 **spread("kernel_bytes", [n * MAPLE_NODE_BYTES for n in rn]),
                 **spread("store_ns_per_extent", [x / max(starts.size, 1) * 1e9 for x in rs]),
                 **spread("ratio", [n / nodes if nodes else np.nan for n in rn]),
                 "model_nodes": np.nan})
    return pd.DataFrame(rows)


def format_maple_order(df: pd.DataFrame) -> str:
    """The maple order table: node counts in full, the ratio to 4 places,
    each as "median (min\u2013max)" over the seeds."""
    out = df[["order", "seeds", "extents", "model_nodes"]].copy()
    out["model_nodes"] = out["model_nodes"].map(lambda x: "-" if pd.isna(x) else f"{x:,.0f}")
    for name, fmt in (("nodes", ",.0f"), ("leaves", ",.0f"), ("height", ".0f"),
                      ("kernel_bytes", ",.0f"), ("store_ns_per_extent", ",.0f"),
                      ("ratio", ".4f")):
        out[name] = [f"{m:{fmt}} ({lo:{fmt}}\u2013{hi:{fmt}})" for m, lo, hi in
                     zip(df[f"{name}_median"], df[f"{name}_min"], df[f"{name}_max"])]
    return out.to_string(index=False)
