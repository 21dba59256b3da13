"""The reference set every benchmark builds: a host's TDX-private pages.

``reference_set(1 << 28)`` is "the 1 TiB reference set" of bench-core, asv and
the report:

* 60 % of all PFNs in 2 MiB extents (512 pages, 2 MiB aligned) at randomly
  chosen 2 MiB slots — TD memory handed out from large free blocks;
* about 10 % of all PFNs as scattered 4 KiB pages in the remaining slots,
  each page of those slots private with probability 0.10 / 0.40 = 0.25
  (geometric gaps) — control pages, S-EPT pages, fragmented guest memory.

Seeded and deterministic.  Returned as maximal extents (touching scattered
pages merge), so ``extents()`` of any tracker fed it returns it unchanged.
"""

from __future__ import annotations

import numpy as np

from .extents import normalize_extents
from .kernel import PAGES_PER_2M

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

    starts = np.concatenate((ext_slots * PAGES_PER_2M, scatter)).astype(np.int64)
    ends = np.concatenate((ext_slots * PAGES_PER_2M + PAGES_PER_2M, scatter + 1)).astype(np.int64)
    return normalize_extents(starts, ends)
