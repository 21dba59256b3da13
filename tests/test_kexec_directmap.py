"""Option 2's direct map: split_mem_range pieces, splits and table bytes,
checked against maps worked by hand (G = 1 GiB = 2^18 pages, M = 2 MiB = 512)."""

import numpy as np
import pytest

from trackers.kexec.directmap import (LEVEL_1G, LEVEL_2M, LEVEL_4K, DirectMap,
                                      split_mem_range)
from trackers.extents import normalize

G, M, K = 1 << 18, 512, 1
PAGE = 4096


def test_split_mem_range_five_pieces():
    # [1 MiB, 3 GiB + 12 MiB + 3 pages): 4K head to 2 MiB, 2M to 1 GiB,
    # 1G x 2, 2M tail x 6, 4K tail x 3 -- arch/x86/mm/init.c split_mem_range()
    s, e, lv = split_mem_range([256], [3 * G + 6 * M + 3])
    assert s.tolist() == [256, 512, G, 3 * G, 3 * G + 6 * M]
    assert e.tolist() == [512, G, 3 * G, 3 * G + 6 * M, 3 * G + 6 * M + 3]
    assert lv.tolist() == [LEVEL_4K, LEVEL_2M, LEVEL_1G, LEVEL_2M, LEVEL_4K]


def test_split_mem_range_small_and_unaligned():
    # below 2 MiB alignment everything is 4K; two ranges in one 2 MiB slot
    s, e, lv = split_mem_range([0, 100], [50, 1000])
    assert list(zip(s.tolist(), e.tolist(), lv.tolist())) == [
        (0, 50, 0), (100, 512, 0), (512, 1000, 0)]
    # no 1G room inside one GiB: 2M head runs to the 2M-aligned end
    s, e, lv = split_mem_range([M], [G - 1])
    assert list(zip(s.tolist(), e.tolist(), lv.tolist())) == [
        (M, G - M, LEVEL_2M), (G - M, G - 1, LEVEL_4K)]
    # touching RAM ranges merge first (memblock): one 1G mapping, no split
    s, e, lv = split_mem_range([0, G // 2], [G // 2, G])
    assert lv.tolist() == [LEVEL_1G]


def test_no_gbpages_maps_2m():
    s, e, lv = split_mem_range([0], [2 * G], gbpages=False)
    assert lv.tolist() == [LEVEL_2M]
    assert DirectMap([0], [2 * G], gbpages=False).counts().mappings_2m == 1024


def test_counts_hand_worked():
    dm = DirectMap([256], [3 * G + 6 * M + 3])
    c = dm.counts()
    assert (c.pages_4k, c.mappings_2m, c.mappings_1g) == (259, 511 + 6, 2)
    # PUD: one 512 GiB slot; PMD: GiB 0 (head) and GiB 3 (tail); PTE: 2 MiB
    # slot 0 (head) and the tail's last 2 MiB slot
    assert (c.pud_pages, c.pmd_pages, c.pte_pages) == (1, 2, 2)
    assert c.table_bytes == 5 * PAGE
    assert c.meminfo_kb() == {"DirectMap4k": 259 * 4, "DirectMap2M": 517 * 2048,
                              "DirectMap1G": 2 << 20}


def test_splits_hand_worked():
    dm = DirectMap([256], [3 * G + 6 * M + 3])
    private = normalize(
        [300,          # inside the 4K head: already a PTE, no split
         G + 5,        # 1G mapping #1, its first 2 MiB
         G + 6,        # same 2 MiB: no second split
         2 * G + 7 * M,  # 1G mapping #2, its 8th 2 MiB
         5 * M],       # a 2M mapping of the head region
        [301, G + 6, G + 7, 2 * G + 7 * M + 1, 5 * M + 512])   # the whole 2 MiB
    sp = dm.split_for(private)
    assert sp.pmd_pages_added == 2                 # both 1G mappings -> 2M
    assert sp.pte_pages_added == 3                 # 2 in split 1G, 1 whole 2M page
    assert sp.added_bytes == 5 * PAGE
    a = sp.after
    assert a.mappings_1g == 0
    assert a.mappings_2m == 517 - 1 + 2 * 512 - 2
    assert a.pages_4k == 259 + 3 * 512
    assert (a.pud_pages, a.pmd_pages, a.pte_pages) == (1, 4, 5)
    assert sp.scanned_bytes == 10 * PAGE and sp.scan_loads == 10
    assert sp.pages_found == 1 + 2 + 1 + 512
    # DirectMap totals still cover RAM exactly
    ram = 3 * G + 6 * M + 3 - 256
    kb = a.meminfo_kb()
    assert kb["DirectMap4k"] + kb["DirectMap2M"] + kb["DirectMap1G"] == ram * 4


def test_split_page_in_every_2m_of_1g():
    # one private page in each 2 MiB of a 1 GiB mapping: 1 PMD + 512 PTE pages
    dm = DirectMap([0], [G])
    starts = np.arange(0, G, M)
    sp = dm.split_for(normalize(starts, starts + 1))
    assert (sp.pmd_pages_added, sp.pte_pages_added) == (1, 512)
    assert sp.added_bytes == 513 * PAGE
    assert sp.after.pages_4k == G and sp.after.mappings_2m == 0


def test_no_private_no_split():
    dm = DirectMap([0], [4 * G])
    sp = dm.split_for(normalize([], []))
    assert sp.added_bytes == 0 and sp.after == sp.before


@pytest.mark.parametrize("tib", [16])
def test_large_map_is_counted_not_walked(tib):
    # 16 TiB, a 4 KiB private page every 2 MiB: 2^23 runs, counted vectorized
    n = tib << 28
    starts = np.arange(0, n, 1 << 12)           # every 16 MiB
    sp = DirectMap([0], [n]).split_for(normalize(starts, starts + 1))
    assert sp.pmd_pages_added == n // G
    assert sp.pte_pages_added == starts.size


# --- against a page-by-page oracle on random small maps ------------------------
from hypothesis import given, settings, strategies as st   # noqa: E402

SPACE = 4 * G                    # 2^20 pages: small enough for a per-page oracle


def _oracle(ram_s, ram_e, priv_s, priv_e):
    """Per-page levels: a page is 1G-mapped iff its aligned GiB lies wholly in
    one RAM range, else 2M iff its aligned 2 MiB does, else 4K."""
    ram = np.zeros(SPACE, bool)
    rid = np.full(SPACE, -1)
    for i, (s, e) in enumerate(zip(ram_s, ram_e)):
        ram[s:e] = True
        rid[s:e] = i
    def whole(shift):
        blk = rid.reshape(-1, 1 << shift)
        ok = (blk == blk[:, :1]).all(axis=1) & (blk[:, 0] >= 0)
        return np.repeat(ok, 1 << shift)
    lvl = np.where(whole(18), 2, np.where(whole(9), 1, 0))
    priv = np.zeros(SPACE, bool)
    for s, e in zip(priv_s, priv_e):
        priv[s:e] = True
    priv &= ram
    slot2 = np.zeros(SPACE >> 9, bool)
    np.logical_or.at(slot2, np.flatnonzero(priv & (lvl >= 1)) >> 9, True)
    slot1 = np.zeros(SPACE >> 18, bool)
    np.logical_or.at(slot1, np.flatnonzero(priv & (lvl == 2)) >> 18, True)
    return {"pages_4k": int((ram & (lvl == 0)).sum()),
            "mappings_2m": int((ram & (lvl == 1)).sum()) >> 9,
            "mappings_1g": int((ram & (lvl == 2)).sum()) >> 18,
            "pte_added": int(slot2.sum()), "pmd_added": int(slot1.sum()),
            "found": int(priv.sum())}


@st.composite
def _maps(draw):
    cuts = sorted(set(draw(st.lists(st.integers(0, SPACE), min_size=2, max_size=8))))
    # alternate RAM / hole between cuts; bias cuts toward 2 MiB and 1 GiB alignment
    cuts = [c // M * M if draw(st.booleans()) else c for c in cuts]
    cuts = sorted(set(cuts))
    ram = [(a, b) for i, (a, b) in enumerate(zip(cuts, cuts[1:])) if i % 2 == 0 and a < b]
    priv = draw(st.lists(st.tuples(st.integers(0, SPACE - 1), st.integers(1, 3 * M)),
                         max_size=6))
    return ram, [(s, min(s + n, SPACE)) for s, n in priv]


@settings(max_examples=40)
@given(_maps())
def test_directmap_matches_page_oracle(case):
    ram, priv = case
    if not ram:
        return
    rs, re_ = [a for a, _ in ram], [b for _, b in ram]
    ps, pe = [a for a, _ in priv], [b for _, b in priv]
    want = _oracle(rs, re_, ps, pe)
    dm = DirectMap(rs, re_)
    c = dm.counts()
    assert (c.pages_4k, c.mappings_2m, c.mappings_1g) == (
        want["pages_4k"], want["mappings_2m"], want["mappings_1g"])
    private = normalize(ps, pe)
    from trackers.extents import intersect
    sp = dm.split_for(intersect(private, dm.ram))
    assert (sp.pte_pages_added, sp.pmd_pages_added) == (want["pte_added"], want["pmd_added"])
    assert sp.pages_found == want["found"]
