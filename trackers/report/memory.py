"""The report's memory tables: what each tracker's structure costs, by host
size and by private fraction; every number modeled (estimate(), kernel struct
sizes), nothing built.

Tables (file stem -> content):

* ``memory_vs_host``  tracker x host size: modeled bytes, bytes added to a
  running kernel, bits per private page, with a row per option that has a
  structure of its own (``Strategy.sized_structure``: pte-softbit's split
  tables, dpamt-refcount's array, gmem-maple's tree); the set is ``reference-1pct``
  (see :mod:`trackers.sets`) so 16 TiB fits this machine;
  plus, per sparse host (``host_kind="sparse"``: r7625-sparse, max_pfn 7.1 TiB
  over 770 GiB of RAM), the same shape at its RAM laid over its RAM blocks,
  beside a dense host of that RAM (:func:`sparse_host_rows`);
* ``bits_per_page``   tracker x private fraction at one host size, with the
  information bounds log2 C(N, n) and log2 C(N+1, 2r) per private page;
  in both, a tracker whose structure cannot hold the set at that host size
  (the IDA beyond 2^31 PFNs: ids <= INT_MAX) has NaN bytes, says why in
  ``not_representable`` (empty where the number stands) and gives the
  largest host it can hold in ``representable_max_pfns``.
"""

from __future__ import annotations

import math

import pandas as pd

from .. import extents as X
from ..base import NotRepresentable
from ..kernel import PAGE_SIZE, STRUCT_PAGE_BYTES
from ..kexec import STRATEGIES
from ..kexec.strategies import strategy_for_tracker
from ..registry import TRACKERS
from ..sets import fraction_set, host_label, host_set
from ..workloads import SCENARIOS


# --------------------------------------------------------------------------
# information bounds

def log2_binomial(n: int, k: int) -> float:
    """log2 C(n, k) via lgamma (no scipy)."""
    if k < 0 or k > n:
        return math.nan
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def bound_bits_per_page(max_pfn: int, pages: int) -> float:
    """log2 C(N, n) / n: bits per page any structure needs for an arbitrary set."""
    return log2_binomial(max_pfn, pages) / pages if pages else math.nan


def run_bound_bits_per_page(max_pfn: int, pages: int, runs: int) -> float:
    """log2 C(N+1, 2r) / n: bits per page to name a set of ``runs`` runs (its 2r boundaries)."""
    return log2_binomial(max_pfn + 1, 2 * runs) / pages if pages else math.nan


# --------------------------------------------------------------------------
# the tables

#: the not-representable columns of a row whose number stands
REPRESENTABLE = {"not_representable": "", "representable_max_pfns": math.nan}


def memory_rows(cfg, max_pfn: int) -> list[dict]:
    """A step of memory_vs_host: every row of the sweep's set (``cfg.sweep_shape``)
    at ``max_pfn``.  The set is generated here and dropped when the step
    returns, so a step holds one set (16 TiB sets are large); no two steps of
    a plan use the same set, so none is kept for another."""
    starts, ends = host_set(cfg.sweep_shape, max_pfn, cfg.seed)
    return memory_rows_for_set(cfg, max_pfn, starts, ends)


def memory_rows_for_set(cfg, max_pfn: int, starts, ends) -> list[dict]:
    """memory_vs_host's rows of the private set ``starts``/``ends`` (named
    ``cfg.sweep_shape``) over RAM [0, max_pfn): each tracker's estimate(),
    then each option with a structure of its own."""
    pages = int((ends - starts).sum())
    rows = []
    for name in cfg.trackers:
        cls = TRACKERS[name]
        nbytes, why = _estimate_or_why(cls, starts, ends, max_pfn)
        rows.append({
            "tracker": name, "option": cls.option, "host_pfns": max_pfn,
            "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
            "set": cfg.sweep_shape, "private_pages": pages, "extents": int(starts.size),
            "modeled_bytes": nbytes,
            "added_bytes": (strategy_for_tracker(name).added_bytes(nbytes) if not why
                            else math.nan),
            "bits_per_private_page": nbytes * 8 / pages,
            "kind": "modeled", **REPRESENTABLE, **why,
        })
    rows.extend(_strategy_rows(cfg, max_pfn, starts, ends, pages))
    return rows


def split_sparse_hosts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the dense sweep, the rows of hosts whose max_pfn far exceeds their RAM:
    ``host_kind == "sparse"``, :func:`sparse_host_rows`)."""
    if "host_kind" not in df:
        return df, df.iloc[:0]
    mask = df["host_kind"].astype(str) == "sparse"
    return df[~mask], df[mask]


def sparse_host_rows(cfg, name: str) -> list[dict]:
    """memory_vs_host rows for scenario ``name``'s host, whose max_pfn far
    exceeds its RAM (``host_kind="sparse"``).

    The sweep's set shape at the host's RAM: the set over [0, n) for n = the
    host's RAM in whole 2 MiB, laid over its RAM blocks in address order (the
    2 MiB aligned part of each block, so 2 MiB extents stay aligned).  Every
    row of :func:`memory_rows` at the host's max_pfn, beside the same set on
    a dense host of max_pfn n (``dense_modeled_bytes``, ``dense_added_bytes``):
    ``vs_dense`` near max_pfn / RAM marks a structure sized by max_pfn, near 1
    one sized by the set (``sized_by``).  ``vmemmap_bytes``: the struct pages
    of the present 128 MiB sections (SPARSEMEM_VMEMMAP backs no hole section),
    sized by RAM, beside ``flat_struct_pages_bytes`` over [0, max_pfn).
    Modeled (estimate()), no structure built: about 2 s at 770 GiB.
    """
    host = SCENARIOS[name].host()
    n = X.count(host.ram_blocks_2m())
    dense = host_set(cfg.sweep_shape, n, cfg.seed)
    sparse = host.lay_over_ram(dense)
    at = {r["tracker"]: r for r in memory_rows_for_set(cfg, n, *dense)}
    rows = []
    for r in memory_rows_for_set(cfg, host.max_pfn, *sparse):
        d = at[r["tracker"]]
        ratio = (r["modeled_bytes"] / d["modeled_bytes"] if d["modeled_bytes"] > 0
                 else math.nan)
        rows.append({**r, "host": f"{name} ({host_label(host.ram_pages)} RAM, max_pfn "
                                  f"{host_label(host.max_pfn)})",
                     "host_kind": "sparse", "scenario": name, "ram_pages": host.ram_pages,
                     "ram_bytes": host.ram_bytes, "set_pages_host": n,
                     "dense_modeled_bytes": d["modeled_bytes"],
                     "dense_added_bytes": d["added_bytes"], "vs_dense": ratio,
                     "sized_by": ("nothing added" if not r["modeled_bytes"] > 0 else
                                  "max_pfn" if ratio > 2 else "set"),
                     "vmemmap_bytes": host.vmemmap_bytes,
                     "flat_struct_pages_bytes": host.max_pfn * STRUCT_PAGE_BYTES})
    return rows


def _estimate_or_why(cls, starts, ends, max_pfn) -> tuple[float, dict]:
    """(estimate() bytes, {}) or, where the structure cannot hold the set at
    this host size (NotRepresentable), (NaN, the columns that say why)."""
    try:
        return int(cls.estimate(starts, ends, max_pfn)), {}
    except NotRepresentable as exc:
        return math.nan, {"not_representable": exc.summary,
                          "representable_max_pfns": (math.nan if exc.limit_pfns is None
                                                     else exc.limit_pfns)}


def _strategy_rows(cfg, max_pfn, starts, ends, pages) -> list[dict]:
    """The structures of the options that are not trackers, for this private
    set over RAM [0, max_pfn) (``Strategy.sized_structure``): option 2's
    split page-table pages, Dynamic PAMT's refcount array, guest_memfd's
    maple tree (one inode, GFN = PFN) -- each strategy's
    ``added_bytes_for_set`` (no KexecHost: building one costs ~40 s at 16 TiB
    and adds nothing here)."""
    rows = []
    for strategy in STRATEGIES.values():
        if not strategy.sized_structure:
            continue
        added = strategy.added_bytes_for_set(max_pfn, starts, ends)
        rows.append({
            "tracker": strategy.name, "option": strategy.option, "host_pfns": max_pfn,
            "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
            "set": cfg.sweep_shape, "private_pages": pages, "extents": int(starts.size),
            "modeled_bytes": added, "added_bytes": added,
            "bits_per_private_page": added * 8 / pages,
            "kind": "modeled", **REPRESENTABLE,
        })
    return rows


def fraction_rows(cfg, fraction: float) -> list[dict]:
    """A step of bits_per_page: every row of the set of ``fraction`` private
    pages at ``cfg.fraction_host``, generated here and dropped when the step
    returns (as :func:`memory_rows`)."""
    starts, ends = fraction_set(fraction, cfg.fraction_host, cfg.seed)
    return fraction_rows_for_set(cfg, fraction, starts, ends)


def fraction_rows_for_set(cfg, fraction: float, starts, ends) -> list[dict]:
    """bits_per_page's rows of the private set ``starts``/``ends`` (the
    target ``fraction``) over RAM [0, cfg.fraction_host), with the information
    bounds."""
    max_pfn = cfg.fraction_host
    pages = int((ends - starts).sum())
    runs = int(starts.size)
    bound = bound_bits_per_page(max_pfn, pages)
    run_bound = run_bound_bits_per_page(max_pfn, pages, runs)
    rows = []
    for name in cfg.trackers:
        nbytes, why = _estimate_or_why(TRACKERS[name], starts, ends, max_pfn)
        rows.append({
            "tracker": name, "host_pfns": max_pfn, "host": host_label(max_pfn),
            "target_fraction": fraction, "private_fraction": pages / max_pfn,
            "private_pages": pages, "extents": runs, "modeled_bytes": nbytes,
            "bits_per_private_page": nbytes * 8 / pages,
            "bound_bits_per_page": bound, "run_bound_bits_per_page": run_bound,
            "kind": "modeled", **REPRESENTABLE, **why,
        })
    return rows

