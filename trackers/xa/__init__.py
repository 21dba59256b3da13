"""The XArray engine and its node-count model: the API trackers build on.

As include/linux/xarray.h declares the xas_*/xa_* operations that lib/idr.c
and the page cache use without touching lib/xarray.c's internals, this
package declares what the ``xarray``, ``xarray-multi``, ``ida`` and ``kvm``
trackers may use:

:mod:`trackers.xa.tree` -- the engine
    :class:`XaTree` (store_range, store_mapped, erase_range, store, erase,
    load, walk, reserve, nodes_missing, refuse_early, check, arrays, pool)
    and the compiled functions that take ``*tree.arrays``: xas_load,
    xas_start, xas_find, xas_set_range (:mod:`trackers.xa.xas`, with the
    xa_state operations inside), xa_store, xa_erase, xa_store_ranges,
    xa_store_mapped, xa_erase_ranges, xa_nodes_missing
    (:mod:`trackers.xa.single`), xa_nodes_lower_bound
    (:mod:`trackers.xa.bound`); entries XA_VALUE, XA_SIBLING.  Multi-index
    entries live in :mod:`trackers.xa.multi`, used through XaTree.

:mod:`trackers.xa.model` -- node counts without a tree
    xa_node_counts, estimate_extents, estimate_levels, level_breakdown,
    level_formula; index arithmetic max_index, top_shift, multi_max.

Node pools and the memory budget are :mod:`trackers.pool`'s.
"""

from .model import (XA_LEVELS, estimate_extents, estimate_levels, level_breakdown,
                    level_formula, max_index, multi_max, top_shift, xa_node_counts)
from .bound import xa_nodes_lower_bound
from .single import (xa_erase, xa_erase_ranges, xa_nodes_missing, xa_store, xa_store_mapped,
                     xa_store_ranges)
from .tree import XaTree
from .xas import (NODE_HOST_BYTES, XA_SIBLING, XA_VALUE, xas_find, xas_load, xas_set_range,
                  xas_start)

__all__ = [
    "XA_LEVELS", "XA_VALUE", "XA_SIBLING", "NODE_HOST_BYTES", "XaTree",
    "xa_node_counts", "estimate_extents", "estimate_levels", "level_breakdown",
    "level_formula", "max_index", "multi_max", "top_shift",
    "xas_load", "xas_start", "xas_find", "xas_set_range", "xa_store", "xa_erase",
    "xa_store_ranges", "xa_store_mapped", "xa_erase_ranges", "xa_nodes_missing",
    "xa_nodes_lower_bound",
]
