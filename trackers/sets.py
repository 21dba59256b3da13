"""The private sets every benchmark builds, by name and host size.

``reference_set(1 << 28)`` is "the 1 TiB reference set" of bench-core, asv and
the report -- a host's TDX-private pages:

* 60 % of all PFNs in 2 MiB extents (512 pages, 2 MiB aligned) at randomly
  chosen 2 MiB slots — TD memory handed out from large free blocks;
* about 10 % of all PFNs as scattered 4 KiB pages in the remaining slots,
  each page of those slots private with probability 0.10 / 0.40 = 0.25
  (geometric gaps) — control pages, S-EPT pages, fragmented guest memory.

Seeded and deterministic.  Returned as maximal extents (touching scattered
pages merge), so ``extents()`` of any tracker fed it returns it unchanged.

Named shapes (:data:`SET_SHAPES`) fix the two fractions, so the report, the
asv suite and bench-core share one generator:

* ``reference``       60 % in 2 MiB extents + 10 % scattered 4 KiB pages;
* ``reference-1pct``  the same extents, 1 % scattered pages: the shape
  bench-core times estimate() on at 16 TiB, where 10 % scatter would be
  4.3e8 one-page extents (3.4 GB per index array);
* ``extents-2m``      70 % of PFNs in 2 MiB extents, nothing scattered.

A set whose generator input would exceed :data:`MAX_SET_RUNS` extents is
refused with :class:`SetTooLarge` (2^26 extents = 1 GiB of int64 index
arrays, the most this 2-core 24 GiB machine builds in reasonable time).
"""

from __future__ import annotations

import numpy as np

from .extents import normalize_extents
from .kernel import PAGE_SIZE, PAGES_PER_2M

EXTENT_FRACTION = 0.60
SCATTER_FRACTION = 0.10


def reference_set(max_pfn: int, seed: int = 0, *,
                  extent_fraction: float = EXTENT_FRACTION,
                  scatter_fraction: float = SCATTER_FRACTION):
    """(starts, ends) of the reference set over [0, max_pfn); see module doc."""
    if max_pfn < PAGES_PER_2M or max_pfn % PAGES_PER_2M:
        raise ValueError(f"max_pfn {max_pfn} must be a positive multiple of {PAGES_PER_2M}")
    if not 0 <= extent_fraction + scatter_fraction <= 1:
        raise ValueError(f"fractions {extent_fraction} + {scatter_fraction} exceed 1")
    rng = np.random.default_rng(seed)
    n_slots = max_pfn // PAGES_PER_2M
    n_extent = int(round(extent_fraction * n_slots))
    taken = np.zeros(n_slots, bool)
    taken[rng.choice(n_slots, n_extent, replace=False)] = True
    ext_slots = np.flatnonzero(taken)
    free_slots = np.flatnonzero(~taken)

    # scattered pages: Bernoulli(p) over the pages of the free slots, drawn as
    # geometric gaps so the cost is per chosen page, not per page of the host
    free_pages = free_slots.size * PAGES_PER_2M
    p = scatter_fraction * max_pfn / free_pages if free_pages else 0.0
    if p > 0:
        n_draw = int(free_pages * p * 1.02 + 64 * np.sqrt(free_pages * p) + 64)
        idx = np.cumsum(rng.geometric(min(p, 1.0), n_draw)) - 1
        idx = idx[idx < free_pages]
        scatter = free_slots[idx // PAGES_PER_2M] * PAGES_PER_2M + idx % PAGES_PER_2M
    else:
        scatter = np.zeros(0, np.int64)

    # both lists are sorted and disjoint (scattered pages lie in free slots):
    # merge them in O(n) -- an argsort of 4.3e7 starts at 16 TiB took 9 s
    ext_starts = ext_slots.astype(np.int64) * PAGES_PER_2M
    scatter = scatter.astype(np.int64, copy=False)
    at = np.searchsorted(scatter, ext_starts) + np.arange(ext_starts.size)
    starts = np.empty(ext_starts.size + scatter.size, np.int64)
    ends = np.empty_like(starts)
    is_ext = np.zeros(starts.size, bool)
    is_ext[at] = True
    starts[at], ends[at] = ext_starts, ext_starts + PAGES_PER_2M
    starts[~is_ext], ends[~is_ext] = scatter, scatter + 1
    return normalize_extents(starts, ends)


#: host sizes in PFNs, labelled by RAM size
HOST_SIZES: dict[str, int] = {
    "64G": 1 << 24,
    "256G": 1 << 26,
    "1T": 1 << 28,
    "4T": 1 << 30,
    "16T": 1 << 32,
}

#: shape name -> (extent_fraction, scatter_fraction) of reference_set()
SET_SHAPES: dict[str, tuple[float, float]] = {
    "reference": (0.60, 0.10),
    "reference-1pct": (0.60, 0.01),
    "extents-2m": (0.70, 0.00),
}

MAX_SET_RUNS = 1 << 26


class SetTooLarge(ValueError):
    """The set would hold more extents than this machine builds in reasonable time."""


def host_label(max_pfn: int) -> str:
    """'64 GiB', '1 TiB', ... for a PFN count."""
    nbytes = max_pfn * PAGE_SIZE
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):g} {unit}"
    return f"{nbytes} B"


def expected_runs(shape: str, max_pfn: int) -> int:
    """Upper bound on the extents generated for ``shape`` at ``max_pfn`` PFNs."""
    extent_fraction, scatter_fraction = SET_SHAPES[shape]
    return int(extent_fraction * max_pfn / PAGES_PER_2M + scatter_fraction * max_pfn)


def host_set(shape: str, max_pfn: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of ``shape`` over [0, max_pfn); maximal extents, seeded."""
    if shape not in SET_SHAPES:
        raise ValueError(f"unknown set shape {shape!r}; known: {', '.join(SET_SHAPES)}")
    need = expected_runs(shape, max_pfn)
    if need > MAX_SET_RUNS:
        raise SetTooLarge(
            f"set {shape!r} at {host_label(max_pfn)} ({max_pfn:,} PFNs) needs ~{need:,} "
            f"extents, over the limit of {MAX_SET_RUNS:,} this machine builds")
    extent_fraction, scatter_fraction = SET_SHAPES[shape]
    return reference_set(max_pfn, seed, extent_fraction=extent_fraction,
                         scatter_fraction=scatter_fraction)


def fraction_set(private_fraction: float, max_pfn: int, seed: int = 0):
    """A reference-shaped set with ``private_fraction`` of all PFNs private.

    Keeps the reference set's 6 : 1 split between 2 MiB extents and
    scattered pages, so only the density changes along a sweep.
    """
    if not 0 < private_fraction <= 1:
        raise ValueError(f"private_fraction {private_fraction} must lie in (0, 1]")
    extent_fraction = private_fraction * 6 / 7
    scatter_fraction = private_fraction / 7
    need = int(extent_fraction * max_pfn / PAGES_PER_2M + scatter_fraction * max_pfn)
    if need > MAX_SET_RUNS:
        raise SetTooLarge(f"fraction set {private_fraction} at {host_label(max_pfn)} needs "
                          f"~{need:,} extents, over the limit of {MAX_SET_RUNS:,}")
    return reference_set(max_pfn, seed, extent_fraction=extent_fraction,
                         scatter_fraction=scatter_fraction)
