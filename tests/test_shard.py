"""Sharded builds combine exactly: for every tracker (emulations and their
@kernel twins), a set built in aligned shards on a two-worker local cluster
has the unsharded structure's per-level node counts, bytes, pages, extents
and found set; the maple tree within its stated bound per boundary.  The
shards' estimate() combines to the unsharded estimate().  Facts only."""

import numpy as np
import pytest

import trackers
from trackers import kernel
from trackers.maple import level_name
from trackers.sets import reference_set
from trackers.shard import (MAPLE_NODES_PER_BOUNDARY, Extents, check_shards, makespan,
                            sharded_build, structure)

N, S = 1 << 20, 1 << 17             # 8 shards of 512 MiB over a 4 GiB host


def _maple_nodes(breakdown):
    return sum(breakdown.values()) // kernel.MAPLE_NODE_BYTES


def assert_combined(sharded, whole, boundaries):
    assert sharded.pages == whole.pages and sharded.extents == whole.extents
    for a, b in zip(sharded.runs(), whole.runs()):
        assert np.array_equal(a, b)
    assert sharded.estimate_bytes == whole.modeled_bytes == whole.estimate_bytes
    if structure(sharded.tracker) == "maple":
        extra = _maple_nodes(sharded.breakdown) - _maple_nodes(whole.breakdown)
        assert 0 <= extra <= MAPLE_NODES_PER_BOUNDARY * boundaries, extra
        leaves = (sharded.breakdown[level_name(0)] - whole.breakdown[level_name(0)]) \
            // kernel.MAPLE_NODE_BYTES
        assert 0 <= leaves <= boundaries
    else:
        assert sharded.breakdown == whole.breakdown, sharded.tracker


def test_every_tracker_sharded_equals_unsharded(client):
    s, e = reference_set(N, 0)
    names = list(trackers.ALL_TRACKERS)
    src = Extents(s, e)
    sharded = sharded_build(client, names, N, S, src, keep_runs=True, timed=False,
                            progress=False)
    whole = sharded_build(client, names, N, N, src, keep_runs=True, timed=False,
                          progress=False)
    for a, b in zip(sharded, whole):
        assert a.tracker == b.tracker and len(a.shards) == N // S and len(b.shards) == 1
        assert_combined(a, b, N // S - 1)
        assert a.row()["peak_rss_bytes"] > 0


def _set(pairs):
    return Extents(np.array([a for a, _ in pairs], np.int64),
                   np.array([b for _, b in pairs], np.int64))


M, T = 1 << 20, 1 << 16             # 16 shards of 2^16 PFNs
EDGES = {
    "crossing boundaries": [(T - 3, T + 5), (3 * T - 1, 5 * T + 1)],
    "lone local PFN 0 of shards": [(T, T + 1), (7 * T, 7 * T + 1)],
    "lone PFN 0": [(0, 1)],
    "shard 0 only": [(0, 1), (70, 200)],
    "last shard only": [(M - 600, M - 1)],
    "full shards": [(2 * T, 4 * T), (9 * T, 10 * T + 7)],
    "a block of full shards": [(0, 4 * T), (5 * T + 3, 5 * T + 9)],
    "every shard at its top": [(k * T + T - 1, k * T + T) for k in range(16)],
}


@pytest.mark.parametrize("edge", list(EDGES))
def test_edges_combine_exactly(edge):
    names = ["xarray", "xarray-multi", "ida", "kvm", "roaring", "maple", "bitmap"]
    src = _set(EDGES[edge])
    for a, b in zip(sharded_build(None, names, M, T, src, keep_runs=True),
                    sharded_build(None, names, M, M, src, keep_runs=True)):
        assert_combined(a, b, M // T - 1)


def test_bad_shard_sizes_are_refused():
    with pytest.raises(ValueError, match="power of two >= 65,536"):
        check_shards(1 << 20, 3 << 16)
    with pytest.raises(ValueError, match="power of two"):
        check_shards(1 << 20, 1 << 12)
    assert check_shards((1 << 20) + 1, 1 << 16) == 17


def test_scan_on_n_cpus_is_the_largest_share():
    assert makespan([1.0] * 8, 4) == 2.0
    assert makespan([5.0, 1.0, 1.0, 1.0], 2) == 5.0
    assert makespan([3.0, 2.0, 2.0], 1) == 7.0
