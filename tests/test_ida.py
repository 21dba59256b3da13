"""ida: 1024-bit chunks in an XArray, value entries below bit 63."""

import numpy as np
import pytest

from trackers import MemoryBudgetError, NotRepresentable, get_tracker, kernel
from trackers.ida import Ida

NODE, BITMAP = kernel.XA_NODE_BYTES, kernel.IDA_BITMAP_BYTES


def build(starts, ends, max_pfn=1 << 28):
    t = get_tracker("ida", max_pfn=max_pfn)
    t.mark_ranges(np.array(starts), np.array(ends))
    t.check()
    return t


def test_low_bits_are_a_value_entry():
    # chunk 0 with bits 0..62 only: xa_mk_value in xa_head, nothing allocated
    t = build([0], [63])
    assert t.memory().breakdown == {"xa_node L0": 0, "ida_bitmap": 0}
    assert len(t) == 63


def test_bit_63_needs_an_ida_bitmap():
    t = build([0], [64])
    assert t.memory().breakdown == {"xa_node L0": 0, "ida_bitmap": BITMAP}
    t.unmark([63])                 # back to bits < 63: ida_free keeps the ida_bitmap
    t.check()
    assert t.memory().breakdown["ida_bitmap"] == BITMAP and len(t) == 63
    assert Ida.estimate([0], [63], 1 << 28) == 0           # a fresh build: a value entry
    t.unmark_ranges([0], [63])     # the chunk empties: kfree, xas_store NULL
    t.mark([5])                    # a new chunk of low ids: a value entry again
    assert t.memory().modeled_bytes == 0
    t.check()


def test_chunks_index_the_xarray():
    # chunks 0 and 64 (pfn 65536): top shift 6 + leaves 0 and 1; chunk 64 has
    # only bit 0 set (value entry), chunk 0 bit 100 (ida_bitmap)
    t = build([100, 65536], [101, 65537])
    assert t.memory().breakdown == {"xa_node L0": 2 * NODE, "xa_node L1": NODE,
                                    "ida_bitmap": BITMAP}
    assert Ida.estimate([100, 65536], [101, 65537], 1 << 28) == 3 * NODE + BITMAP


def test_all_pfns_estimate():
    # 2^28 PFNs = 2^18 chunks, all ida_bitmaps; XArray over 2^18 indices:
    # 4096 leaves + 64 + 1 (top shift 12)
    assert Ida.estimate([0], [1 << 28], 1 << 28) == (4096 + 64 + 1) * NODE + (1 << 18) * BITMAP


def test_2mib_extent():
    # [512000, 512512) lies in chunk 500 (bits 0..511): one ida_bitmap, one
    # xa_node (top shift 6 holds index 500 >> 6 = 7 < 64)... plus the leaf.
    t = build([512000], [512512])
    assert t.memory().breakdown == {"xa_node L0": NODE, "xa_node L1": NODE,
                                    "ida_bitmap": BITMAP}
    assert [x.tolist() for x in next(t.extents())] == [[512000], [512512]]


def test_estimate_matches_random_sets():
    rng = np.random.default_rng(3)
    starts = np.sort(rng.choice(1 << 22, 300, replace=False))
    ends = starts + rng.integers(1, 3000, 300)
    t = get_tracker("ida", max_pfn=1 << 23)
    t.mark_ranges(starts, ends)
    t.unmark(rng.integers(0, 1 << 23, 500))
    t.mark(rng.integers(0, 1 << 23, 500))
    t.check()
    runs = list(t.extents())
    s = np.concatenate([r[0] for r in runs])
    e = np.concatenate([r[1] for r in runs])
    assert Ida.estimate(s, e, 1 << 23) == t.memory().modeled_bytes
    ref = np.zeros(1 << 23, bool)
    for a, b in zip(s, e):
        ref[a:b] = True
    assert np.array_equal(t.contains(np.arange(1 << 23)), ref)


def test_budget_refusal_leaves_tracker_unchanged():
    t = get_tracker("ida", max_pfn=1 << 30, budget_bytes=1 << 20)
    t.mark_ranges([0], [1024 * 1000])
    before = t.memory().breakdown
    with pytest.raises(MemoryBudgetError, match="budget of 1,048,576"):
        t.mark_ranges([1 << 25], [(1 << 25) + 1024 * 20000])
    assert t.memory().breakdown == before and len(t) == 1024 * 1000
    t.check()


# --------------------------------------------------------------------------
# ids stop at INT_MAX: the IDA cannot track PFNs of hosts beyond 8 TiB

REFUSAL = (r"max_pfn {} is over INT_MAX \+ 1 = 2147483648: the IDA's ids stop at INT_MAX "
           r"\(ida_alloc_range\(\) refuses larger ids with -ENOSPC, lib/idr.c\), so the IDA "
           r"cannot track PFNs of hosts beyond 8 TiB of physical address space")


@pytest.mark.parametrize("max_pfn", [2**31 + 1, 2**32, kernel.MAX_PHYS_PFN])
def test_hosts_beyond_int_max_pfns_are_refused(max_pfn):
    with pytest.raises(NotRepresentable, match=REFUSAL.format(max_pfn)) as exc:
        Ida(max_pfn)
    assert isinstance(exc.value, ValueError)
    assert exc.value.limit_pfns == 2**31
    assert exc.value.summary == "IDA: not representable above 8 TiB (ids <= INT_MAX)"
    with pytest.raises(NotRepresentable, match=REFUSAL.format(max_pfn)):
        Ida.estimate([0], [1], max_pfn)
    with pytest.raises(NotRepresentable, match=REFUSAL.format(max_pfn)):
        Ida.estimate([], [], max_pfn)                  # whatever the set


def test_the_last_id_int_max():
    # max_pfn 2^31: PFNs up to INT_MAX, the largest id ida_alloc_range() gives
    t = build([2**31 - 8], [2**31], max_pfn=2**31)
    assert len(t) == 8 and (2**31 - 1) in t
    assert t.memory().modeled_bytes == Ida.estimate([2**31 - 8], [2**31], 2**31)
    # chunk 2^21 - 1 under a top node of shift 18 (chunks < 2^24): 4 xa_nodes
    assert t.memory().breakdown == {"xa_node L0": NODE, "xa_node L1": NODE,
                                    "xa_node L2": NODE, "xa_node L3": NODE,
                                    "ida_bitmap": BITMAP}


def _host(max_pfn):
    from trackers.kexec.host import KexecHost
    ram = (np.array([0]), np.array([max_pfn]))
    return KexecHost(max_pfn, ram, (np.array([1 << 20]), np.array([(1 << 20) + 512])),
                     name=f"{max_pfn}-pfn host")


def test_not_representable_shows_in_the_kexec_table():
    from trackers.kexec import STRATEGIES
    row = STRATEGIES["ida"].assess(_host(1 << 32), "spr-2s", emulate=True).row()
    assert row["strategy"] == "ida" and row["notes"].startswith(
        "not representable: max_pfn 4294967296 is over INT_MAX + 1")
    for k in ("added_bytes", "scanned_bytes", "scan_loads", "pages_reset", "pages_missed",
              "scan_s", "clear_s", "downtime_s"):
        assert np.isnan(row[k]), k
    held = STRATEGIES["ida"].assess(_host(1 << 31), "spr-2s", emulate=False).row()
    assert held["pages_reset"] == 512 and held["pages_missed"] == 0 and held["notes"] == ""


def test_not_representable_shows_in_the_report_tables():
    from trackers.report import config, memory
    cfg = config.quick_config()
    cfg.trackers = ["bitmap", "ida"]

    def small_set(max_pfn):
        return np.array([0, max_pfn - 512]), np.array([512, max_pfn])
    rows = {(r["tracker"], r["host_pfns"]): r for h in (1 << 31, 1 << 32)
            for r in memory.memory_rows_for_set(cfg, h, *small_set(h))}
    assert rows["ida", 1 << 31]["not_representable"] == ""
    assert rows["ida", 1 << 31]["modeled_bytes"] > 0
    nr = rows["ida", 1 << 32]
    assert np.isnan(nr["modeled_bytes"]) and np.isnan(nr["added_bytes"])
    assert np.isnan(nr["bits_per_private_page"])
    assert nr["not_representable"] == "IDA: not representable above 8 TiB (ids <= INT_MAX)"
    assert nr["representable_max_pfns"] == 1 << 31
    assert rows["bitmap", 1 << 32]["not_representable"] == ""
    cfg.fraction_host = 1 << 32
    frac = {r["tracker"]: r for r in memory.fraction_rows_for_set(cfg, 0.5, *small_set(1 << 32))}
    assert np.isnan(frac["ida"]["modeled_bytes"]) and frac["ida"]["not_representable"]
    assert frac["bitmap"]["modeled_bytes"] == 1 << 29
    import pandas as pd
    from trackers.report.figures import memory_vs_host
    fig = memory_vs_host.figure(pd.DataFrame(list(rows.values())))
    marks = [t.get_text() for t in fig.axes[0].texts]
    assert marks == ["IDA: not representable above 8 TiB (ids <= INT_MAX)"]
    assert fig.axes[0].texts[0].xy[0] == 8 * 2**40           # the ida line stops at 8 TiB


def test_not_representable_shows_in_bench_core(monkeypatch):
    from trackers.bench import measure, tables
    monkeypatch.setattr(measure, "reference_set", lambda m, seed, scatter_fraction=0.1:
                        (np.array([0, 1 << 31]), np.array([512, (1 << 31) + 512])))
    est = measure.time_estimates(["bitmap", "ida"], 1 << 32, seed=0, repeat=1)
    ida = est[est["tracker"] == "ida"].iloc[0]
    assert np.isnan(ida["modeled_bytes"]) and np.isnan(ida["estimate_s_median"])
    assert ida["not_representable"] == "IDA: not representable above 8 TiB (ids <= INT_MAX)"
    table = tables.format_table(est)
    assert "IDA: not representable above 8 TiB (ids <= INT_MAX)" in table
