"""trackers.linux.pages: struct pages and the direct map's page tables laid
out in C (pages.c, directmap.c), against the facts the models rest on:
exact sets, exact bytes (allocated and read), exact refusals.

Skipped, with the reason, where the library cannot be built (pages.c and
directmap.c are compiled into the kernel-code library: no linux-source,
liburcu-dev or gcc, no library).  The first run builds it into the user's cache (~17 s); later
runs load it.
"""

import numpy as np
import pytest

import trackers.linux as linux
from trackers import kernel
from trackers.base import MemoryBudgetError
from trackers.extents import intersect, normalize, subtract, union
from trackers.kexec import directmap
from trackers.kexec.directmap import DirectMap
from trackers.sets import reference_set

P2M, P1G = kernel.PAGES_PER_2M, kernel.PAGES_PER_1G


def runs_of(chunks, cap=None):
    """Scan chunks -> list of (start, end); each chunk ascending, <= cap runs,
    and no two runs touch (runs are maximal across chunks too)."""
    out = []
    for s, e in chunks:
        assert s.dtype == np.int64 and e.dtype == np.int64
        assert cap is None or s.size <= cap
        for a, b in zip(s.tolist(), e.tolist()):
            assert a < b
            if out:
                assert a > out[-1][1], f"run {a, b} touches or overlaps {out[-1]}"
            out.append((a, b))
    return out


def as_list(ext):
    s, e = normalize(*ext)
    return list(zip(s.tolist(), e.tolist()))


def random_set(rng, n, space, longest):
    s = rng.integers(0, space, n)
    return normalize(s, np.minimum(s + rng.integers(1, longest, n), space))


# --------------------------------------------------------------------------
# the bits and sizes

def test_bits_and_levels_are_the_documented_ones(lib):
    assert linux.PG_TDX_PRIVATE == 24            # __NR_PAGEFLAGS, Debian 6.12 amd64
    assert linux.PTE_BIT_TDX_PRIVATE == 10       # _PAGE_BIT_SOFTW2
    from trackers.linux import pages
    assert (pages.LEVEL_4K, pages.LEVEL_2M, pages.LEVEL_1G) == (
        directmap.LEVEL_4K, directmap.LEVEL_2M, directmap.LEVEL_1G)
    pages.pages_library()                        # the library agrees (checked at load)


# --------------------------------------------------------------------------
# option 3: struct pages

def test_struct_pages_allocate_64_bytes_per_pfn(lib):
    for max_pfn in (1, 1000, (1 << 20) + 3):
        with linux.KernelStructPages(max_pfn) as sp:
            assert sp.nbytes == max_pfn * 64 == max_pfn * kernel.STRUCT_PAGE_BYTES
            assert sp.scanned_bytes == sp.nbytes
            assert sp.count() == 0 and runs_of(sp.scan()) == []
            sp.check()


@pytest.mark.parametrize("seed", range(4))
def test_struct_page_scan_is_exactly_the_marked_set(lib, seed):
    rng = np.random.default_rng(seed)
    max_pfn = int(rng.integers(1 << 12, 1 << 18))
    sp = linux.KernelStructPages(max_pfn)
    marked = random_set(rng, 300, max_pfn, 40)
    cleared = random_set(rng, 100, max_pfn, 20)
    sp.mark_ranges(*marked)
    sp.mark_ranges([0, max_pfn - 1], [1, max_pfn])          # the first and the last PFN
    sp.unmark_ranges(*cleared)
    want = subtract(union(marked, (np.array([0, max_pfn - 1]), np.array([1, max_pfn]))),
                    cleared)
    for cap in (1, 7, 1 << 16):                              # chunk boundaries crossed
        assert runs_of(sp.scan(cap), cap) == as_list(want)
    assert sp.count() == int((want[1] - want[0]).sum())
    probe = rng.integers(0, max_pfn, 500)
    inside = np.zeros(max_pfn, bool)
    for a, b in as_list(want):
        inside[a:b] = True
    assert sp.contains(probe).tolist() == inside[probe].tolist()
    # a scan from a cursor: the runs at or after it, the first one cut there
    cut = int(rng.integers(0, max_pfn))
    from_cut = [(max(a, cut), b) for a, b in as_list(want) if b > cut]
    assert runs_of(sp.scan(5, start=cut)) == from_cut
    sp.check()


def test_set_bit_and_clear_bit_give_the_set_the_plain_stores_give(lib):
    """set_bit_ranges/clear_bit_ranges (SetPageTdxPrivate(): an atomic RMW
    per page) flag exactly the pages mark_ranges/unmark_ranges flag, and
    leave every other bit of page->flags as it was."""
    rng = np.random.default_rng(11)
    max_pfn = 1 << 14
    atomic, plain = linux.KernelStructPages(max_pfn), linux.KernelStructPages(max_pfn)
    for _ in range(3):
        marked = random_set(rng, 50, max_pfn, 600)
        cleared = random_set(rng, 30, max_pfn, 300)
        atomic.set_bit_ranges(*marked)
        plain.mark_ranges(*marked)
        atomic.clear_bit_ranges(*cleared)
        plain.unmark_ranges(*cleared)
        assert runs_of(atomic.scan()) == runs_of(plain.scan()) != []
    atomic.check()
    with pytest.raises(ValueError, match="out of range"):
        atomic.set_bit_ranges([0, 10], [5, max_pfn + 1])
    assert runs_of(atomic.scan()) == runs_of(plain.scan())
    atomic.close()
    plain.close()


def test_struct_page_first_and_last_pfn_and_whole_range(lib):
    sp = linux.KernelStructPages(1 << 10)
    sp.mark_ranges([0], [1 << 10])
    assert runs_of(sp.scan(1)) == [(0, 1 << 10)]
    sp.unmark_ranges([1], [(1 << 10) - 1])
    assert runs_of(sp.scan(1)) == [(0, 1), ((1 << 10) - 1, 1 << 10)]


def test_struct_pages_refuse_past_the_budget_naming_bytes_and_budget(lib):
    with pytest.raises(MemoryBudgetError,
                       match=r"1,048,576 struct pages of 64 B needs 67,108,864 host bytes"
                             r".*budget of 1,000,000 bytes"):
        linux.KernelStructPages(1 << 20, budget_bytes=1_000_000)
    linux.KernelStructPages(1 << 14, budget_bytes=1 << 20).close()     # exactly fits


def test_struct_pages_refuse_bad_input(lib):
    sp = linux.KernelStructPages(100)
    with pytest.raises(ValueError, match="out of range"):
        sp.mark_ranges([90], [101])
    with pytest.raises(ValueError, match="out of range"):
        sp.contains([100])
    with pytest.raises(ValueError, match="cap 0"):
        sp.scan(0)
    sp.close()
    with pytest.raises(ValueError, match="closed"):
        sp.count()


def test_struct_page_scan_time_says_measured_or_extrapolated(lib):
    s, e = np.array([3, 5000]), np.array([9, 60000])
    whole = linux.struct_page_scan_time(1 << 16, s, e, budget_bytes=1 << 30, repeat=2)
    assert whole.provenance.startswith("measured: C scan of 65,536 struct pages")
    assert whole.measured_pfns == whole.max_pfn == 1 << 16 and whole.scale == 1
    assert whole.bytes_read == 64 << 16 and whole.runs == 2
    part = linux.struct_page_scan_time(1 << 20, s, e, budget_bytes=64 << 14, repeat=2)
    assert part.provenance.startswith("extrapolated: C scan of 16,384 struct pages")
    assert "budget of 1,048,576 bytes" in part.provenance and "x64" in part.provenance
    assert part.measured_pfns == 1 << 14 and part.max_pfn == 1 << 20 and part.scale == 64
    assert part.runs == 2                               # [3, 9) and [5000, 16384)
    assert part.seconds > 0 and part.ns_per_pfn > 0
    with pytest.raises(MemoryBudgetError, match="64 host bytes.*budget of 10 bytes"):
        linux.struct_page_scan_time(1 << 20, budget_bytes=10)


# --------------------------------------------------------------------------
# option 2: the direct map's page tables

def random_ram(rng, n):
    """RAM ranges as a memory map has them: unaligned edges, holes, some
    ranges spanning 1 GiB regions, one reaching past 512 GiB."""
    gaps = rng.integers(1, 1 << 19, n)
    lens = rng.integers(1, 3 << 18, n)
    big = rng.random(n) < 0.3
    lens[big] = rng.integers(1 << 19, 5 << 20, big.sum())
    starts = np.cumsum(gaps + np.concatenate(([0], lens[:-1])))
    cross = (1 << 27) - int(rng.integers(1, 3 << 18))          # across 512 GiB: 2 PUD pages
    return normalize(np.append(starts, cross), np.append(starts + lens, cross + (5 << 18)))


def random_private(rng, ram, n):
    """Runs mostly inside RAM, some in holes and past its end."""
    end = int(ram[1][-1])
    s = rng.integers(0, end + 4 * P2M, n)
    return normalize(s, s + rng.integers(1, 3 * P2M, n))


def assert_tables_are_the_model(engine, split):
    t = engine.tables()
    a = split.after
    assert (t.pud_pages, t.pmd_pages, t.pte_pages) == (a.pud_pages, a.pmd_pages, a.pte_pages)
    assert (t.pages_4k, t.mappings_2m, t.mappings_1g) == (a.pages_4k, a.mappings_2m,
                                                          a.mappings_1g)
    assert t.meminfo_kb() == a.meminfo_kb()
    assert engine.table_bytes == t.table_bytes == a.table_bytes


@pytest.mark.parametrize("gbpages", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_page_table_walk_is_exactly_the_private_set(lib, seed, gbpages):
    rng = np.random.default_rng(100 + seed)
    ram = random_ram(rng, int(rng.integers(2, 12)))
    private = random_private(rng, ram, int(rng.integers(1, 400)))
    dm = DirectMap(*ram, gbpages=gbpages)

    boot = linux.KernelDirectMap(dm.starts, dm.ends, dm.levels)
    assert_tables_are_the_model(boot, dm.split_for(normalize([], [])))
    assert runs_of(boot.scan()) == []
    boot.close()

    split = dm.split_for(private)
    engine = linux.KernelDirectMap(dm.starts, dm.ends, dm.levels)
    missed = engine.mark_ranges(*private)
    found = intersect(private, ram)
    assert missed == int((private[1] - private[0]).sum()) - split.pages_found
    assert_tables_are_the_model(engine, split)
    assert engine.count() == split.pages_found
    engine.check()

    # one whole walk reads every table page: the model's scanned_bytes
    engine.reset_scanned()
    assert runs_of(engine.scan(1 << 30)) == as_list(found)
    assert engine.scanned_bytes == split.scanned_bytes
    assert sum(engine.entries_read()) == split.scan_loads * kernel.PTRS_PER_PTE
    # chunked: the same runs; each resume re-reads its PUD, PMD and PTE entry
    engine.reset_scanned()
    chunks = list(engine.scan(3))
    assert runs_of(chunks, 3) == as_list(found)
    assert engine.scanned_bytes == split.scanned_bytes + 24 * (max(len(chunks), 1) - 1)

    probe = rng.integers(0, int(ram[1][-1]) + P2M, 300)
    inside = np.isin(probe, np.concatenate([np.arange(a, b) for a, b in as_list(found)])
                     if found[0].size else [])
    assert engine.contains(probe).tolist() == inside.tolist()


def test_marks_in_steps_split_as_one_mark_and_unmark_keeps_splits(lib):
    rng = np.random.default_rng(7)
    ram = (np.array([0, 3 * P1G + 100]), np.array([2 * P1G + 7, 9 * P1G]))
    dm = DirectMap(*ram)
    a = random_set(rng, 50, 9 * P1G, 600)
    b = random_set(rng, 50, 9 * P1G, 600)
    engine = linux.KernelDirectMap.from_directmap(dm, a)
    engine.mark_ranges(*b)
    both = union(a, b)
    split = dm.split_for(both)
    assert_tables_are_the_model(engine, split)
    assert runs_of(engine.scan(4)) == as_list(intersect(both, dm.ram))
    before = engine.tables()
    engine.unmark_ranges(*a)
    after = engine.tables()
    assert after.table_pages == before.table_pages        # one-way splits
    assert runs_of(engine.scan()) == as_list(intersect(subtract(b, a), dm.ram))
    engine.check()


def test_split_placement_changes_where_pages_sit_not_what_the_walk_finds(lib):
    rng = np.random.default_rng(11)
    dm = DirectMap([0], [5 * P1G + 77])
    private = random_set(rng, 200, 5 * P1G + 77, 2000)
    later = random_set(rng, 5, 5 * P1G, 3 * P2M)
    found, tables = [], []
    for placement, seed in (("in-order", 0), ("scattered", 0), ("scattered", 9)):
        engine = linux.KernelDirectMap.from_directmap(dm, private, split_placement=placement,
                                                      seed=seed)
        engine.mark_ranges(*later)                                  # a second mark
        engine.check()
        found.append(runs_of(engine.scan(11)))
        tables.append(engine.tables())
        engine.close()
    assert found[0] == found[1] == found[2]
    assert tables[0].table_pages == tables[1].table_pages == tables[2].table_pages
    with pytest.raises(ValueError, match="split_placement 'random' is not one of"):
        linux.KernelDirectMap(dm.starts, dm.ends, dm.levels, split_placement="random")


def test_first_and_last_pfn_of_the_direct_map(lib):
    end = 2 * P1G + 5 * P2M + 3
    dm = DirectMap([0], [end])
    engine = linux.KernelDirectMap.from_directmap(dm, ([0, end - 1], [1, end]))
    assert runs_of(engine.scan(1)) == [(0, 1), (end - 1, end)]
    assert engine.mark_ranges([end], [end + 10]) == 10     # past RAM: nowhere to put the bit


def test_reference_set_split_is_the_model(lib):
    max_pfn = 1 << 21                                        # 8 GiB, the 1 TiB set's shape
    private = reference_set(max_pfn)
    dm = DirectMap([0], [max_pfn])
    split = dm.split_for(private)
    engine = linux.KernelDirectMap.from_directmap(dm, private)
    assert_tables_are_the_model(engine, split)
    assert engine.table_bytes <= engine.nbytes <= engine.table_bytes + (2 << 20)
    engine.reset_scanned()
    chunks = list(engine.scan())                             # SCAN_CHUNK runs each
    assert len(chunks) > 1 and runs_of(chunks) == as_list(private)
    assert engine.scanned_bytes == split.scanned_bytes + 24 * (len(chunks) - 1)
    t = linux.direct_map_scan_time(engine, repeat=1)
    assert t.provenance.startswith("measured: C walk of")
    assert t.runs == private[0].size and t.max_pfn == max_pfn


def test_direct_map_refuses_past_the_budget_naming_bytes_and_budget(lib):
    dm = DirectMap([0], [4 * P1G], gbpages=False)            # 1 PUD + 4 PMD pages
    with pytest.raises(MemoryBudgetError,
                       match=r"1 PUD, 4 PMD, 0 PTE pages of 4 KiB\) needs 20,480 host bytes"
                             r".*budget of 20,000 bytes"):
        linux.KernelDirectMap(dm.starts, dm.ends, dm.levels, budget_bytes=20_000)
    engine = linux.KernelDirectMap(dm.starts, dm.ends, dm.levels, budget_bytes=24_576)
    with pytest.raises(MemoryBudgetError,
                       match=r"0 1G->2M and 2 2M->4K splits needs 28,672 host bytes"
                             r".*budget of 24,576 bytes"):
        engine.mark_ranges([5, 3 * P2M], [6, 3 * P2M + 1])
    assert engine.tables().pte_pages == 0 and engine.count() == 0    # nothing changed
    engine.mark_ranges([5], [6])                             # one split fits exactly
    assert engine.table_bytes == 24_576


def test_direct_map_refuses_bad_mappings(lib):
    with pytest.raises(ValueError, match="aligned to their level"):
        linux.KernelDirectMap([0], [P2M + 1], [directmap.LEVEL_2M])
    with pytest.raises(ValueError, match="sorted, disjoint"):
        linux.KernelDirectMap([10, 0], [20, 5], [0, 0])
    with pytest.raises(ValueError, match="not LEVEL_4K"):
        linux.KernelDirectMap([0], [1], [3])
    with pytest.raises(ValueError, match="one each"):
        linux.KernelDirectMap([0], [1], [0, 0])
