"""The measurement of the reference set: populate and scan every tracker,
time estimate() at a larger host, and time KVM's per-GFN attribute store.

:func:`measure_tracker` is one bench-core row: populate (mark_ranges), a
full extents() scan and a full pfns() scan, ``repeat`` runs each, beside
the structure's memory() and the task's peak RSS; :func:`measure_all` runs
one timed task per tracker (trackers/bench/timing.py).  For the emulations:
:func:`time_estimates` (estimate() at --estimate-pfns) and
:func:`time_kvm_store_loop` (kvm_vm_set_mem_attributes()' loop against the
real-world anchor, :data:`ANCHOR_NS_PER_GFN`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..base import NotRepresentable, memory_budget
from ..cluster import Unit, peak_rss_bytes, reset_peak_rss
from ..kvm import xa_store_per_gfn
from ..registry import ALL_TRACKERS, TRACKERS
from ..sets import reference_set
from ..shard import close_tracker, drain
from ..xa import XaTree, xa_node_counts
from .rows import engine_of
from .timing import STATS, reference, run_outcomes, spread, timed

#: the kvm store loop's real-world anchor: a 1 TB+ guest spent >= 26 s in
#: kvm_vm_set_mem_attributes (Liam Merwick, Jun 2025): ~97 ns per GFN
ANCHOR_NS_PER_GFN = 26e9 / (1 << 28)


def measure_tracker(name: str, max_pfn: int, starts, ends, repeat: int) -> dict:
    """Populate and scan one tracker (any of ALL_TRACKERS); return its
    measured and modeled row."""
    pages = int((ends - starts).sum())
    cls = ALL_TRACKERS[name]
    holder = {}

    def populate():
        close_tracker(holder.pop("t", None))            # one tracker alive at a time
        t = cls(max_pfn)
        t.mark_ranges(starts, ends)
        holder["t"] = t
    warm = cls(max_pfn)                          # warm-up: numba compile, small set
    warm.mark_ranges(starts[:1000], ends[:1000])
    drain(warm.extents()), drain(warm.pfns())
    close_tracker(warm)
    del warm
    populate_s = spread("populate_s", timed(populate, repeat))
    t = holder["t"]
    extents_s = spread("scan_extents_s", timed(lambda: drain(t.extents()), repeat))
    pfns_s = spread("scan_pfns_s", timed(lambda: drain(t.pfns()), repeat))
    n_ext = drain(t.extents())
    assert len(t) == pages and n_ext == starts.size, f"{name}: scan disagrees with the set"
    m = t.memory()
    row = {
        "tracker": name,
        "engine": engine_of(name),
        **populate_s, **extents_s, **pfns_s,
        "populate_ns_per_page": populate_s["populate_s_median"] / pages * 1e9,
        "scan_pfns_ns_per_page": pfns_s["scan_pfns_s_median"] / pages * 1e9,
        "modeled_bytes": m.modeled_bytes,
        "scanned_bytes": m.scanned_bytes,
        "bits_per_private_page": m.modeled_bytes * 8 / pages,
        "host_bytes": m.host_bytes,
        "peak_rss_bytes": peak_rss_bytes(),   # VmHWM since the task's reset (cluster.py)
    }
    close_tracker(t)
    return row


def measure_reference(name: str, max_pfn: int, seed: int, repeat: int) -> dict:
    """measure_tracker on the reference set (:func:`reference`): a bench-core task."""
    starts, ends = reference(max_pfn, seed)
    reset_peak_rss()                  # the set is generated (cached): the peak is the tracker's
    return measure_tracker(name, max_pfn, starts, ends, repeat)


def measure_all(client, names, max_pfn: int, seed: int, repeat: int,
                progress: bool = True) -> list[dict]:
    """One row per tracker, each measured as a timed task (module doc)."""
    units = [Unit(measure_reference, (n, max_pfn, seed, repeat), timed=True, label=n)
             for n in names]
    rows = []
    for name, (status, value) in zip(names, run_outcomes(client, units, "trackers",
                                                          progress)):
        rows.append(value if status == "ok" else
                    {"tracker": name, "engine": engine_of(name), status: value})
    return rows


def time_estimates(names, max_pfn, seed, repeat: int = 1) -> pd.DataFrame:
    """estimate() at max_pfn on the reference shape with 1 % scattered pages,
    timed ``repeat`` times per tracker (median, min, max).

    At 16 TiB the 10 % scatter of the 1 TiB set would be 4.3e8 single-page
    extents (3.4 GB per index array); 1 % keeps the input realistic and in
    memory while the 2 MiB extents still cover 60 % of the host.
    """
    starts, ends = reference_set(max_pfn, seed, scatter_fraction=0.01)
    rows = []
    for name in names:
        cls = TRACKERS[name]
        try:
            cls.estimate(starts[:1000], ends[:1000], max_pfn)  # warm-up: numba compile
        except NotRepresentable as exc:
            rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                         **{f"estimate_s_{k}": np.nan for k in STATS},
                         "modeled_bytes": np.nan, "not_representable": exc.summary})
            continue
        nbytes = []
        times = timed(lambda: nbytes.append(cls.estimate(starts, ends, max_pfn)), repeat)
        rows.append({"tracker": name, "estimate_pfns": max_pfn, "extents": starts.size,
                     **spread("estimate_s", times), "modeled_bytes": nbytes[-1]})
    return pd.DataFrame(rows)


def time_kvm_store_loop(n_gfns: int, repeat: int = 1) -> dict:
    """ns per GFN of kvm_vm_set_mem_attributes' loop -- one xa_store() walk
    from xa_head per GFN -- over one TD of n_gfns private GFNs; ``repeat``
    runs, each into a fresh mem_attr_array (median, min, max)."""
    s, e = np.array([0]), np.array([n_gfns])
    times = []
    for i in range(repeat):
        tree = None                                  # one mem_attr_array alive at a time
        tree = XaTree(budget_bytes=memory_budget(), what="mem_attr_array")
        if i == 0:
            xa_store_per_gfn(*tree.arrays, np.array([0]), np.array([0]))      # compile
        tree.reserve(int(xa_node_counts(s, e).sum()))
        t0 = time.perf_counter()
        xa_store_per_gfn(*tree.arrays, s, e)
        times.append(time.perf_counter() - t0)
        assert len(tree) == n_gfns
    row = {"gfns": n_gfns, **spread("seconds", times)}
    row.update({f"ns_per_gfn_{k}": row[f"seconds_{k}"] / n_gfns * 1e9 for k in STATS})
    row["anchor_ns_per_gfn"] = ANCHOR_NS_PER_GFN
    return row
