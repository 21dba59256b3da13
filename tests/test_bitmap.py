import trackers
from trackers.bitmap import Bitmap


def test_one_tib_bitmap_is_32_mib():
    # 2^28 PFNs / 8 bits per byte: the thread's "number of total RAM pages / 8"
    assert Bitmap.estimate([], [], 1 << 28) == 33_554_432


def test_modeled_bytes_round_up_to_whole_longs():
    t = trackers.get_tracker("bitmap", max_pfn=65)
    t.mark_ranges([0], [65])
    m = t.memory()
    assert m.modeled_bytes == m.host_bytes == 16
    assert m.breakdown == {"bitmap": 16}
    assert Bitmap.estimate([0], [65], 65) == 16


def test_bit_numbering_matches_kernel_bitops():
    t = trackers.get_tracker("bitmap", max_pfn=256)
    t.mark([0, 63, 64, 130])
    assert t.words.tolist() == [1 | (1 << 63), 1, 1 << 2, 0]


def test_scan_streams_word_chunks():
    t = trackers.get_tracker("bitmap", max_pfn=1 << 22)
    t.mark_ranges([0, (1 << 22) - 64], [1 << 21, 1 << 22])
    assert [(s.tolist(), e.tolist()) for s, e in t.extents()] == \
        [([0], [1 << 21]), ([(1 << 22) - 64], [1 << 22])]
    assert sum(c.size for c in t.pfns()) == (1 << 21) + 64
