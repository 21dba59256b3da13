"""Memory maps: the bundled real dumps, hand-checked, and every bad input."""

import numpy as np
import pytest

from trackers.workloads import load_memory_map, synthetic_host
from trackers.workloads.memmap import bundled_memmaps

GIB = 1 << 30


def test_e820_sample_counts_by_hand():
    m = load_memory_map(bundled_memmaps()["e820-2socket-256g"])
    # usable [0, 0x9ffff]            -> PFN [0, 0xa0)            =        160
    # usable [0x100000, 0x6f9fefff]  -> PFN [0x100, 0x6f9ff)     = 0x6f8ff = 456,959
    # usable [0x7b7ff000, 0x7b7fffff]-> PFN [0x7b7ff, 0x7b800)   =          1
    # usable [4 GiB, 0x407fffffff]   -> PFN [0x100000, 0x4080000)= 0x3f80000 = 66,584,576
    # the later "e820: update ... usable ==> reserved" line is not the firmware table.
    assert m.source == "e820"
    assert m.ram_pages == 160 + 456_959 + 1 + 66_584_576 == 67_041_696
    assert m.max_pfn == 0x4080000
    assert m.ram_starts.tolist() == [0, 0x100, 0x7b7ff, 0x100000]


def test_iomem_sample_counts_by_hand():
    m = load_memory_map(bundled_memmaps()["iomem-64g"])
    # System RAM [0x1000, 0x9ffff]        -> PFN [1, 0xa0)             =        159
    # System RAM [0x100000, 0xbfecffff]   -> PFN [0x100, 0xbfed0)      = 0xbfdd0 = 785,872
    # System RAM [0xbff00000, 0xbfffffff] -> PFN [0xbff00, 0xc0000)    =        256
    # System RAM [4 GiB, 0x103fffffff]    -> PFN [0x100000, 0x1040000) = 0xf40000 = 15,990,784
    # nested lines (Kernel code, Crash kernel) are ignored.
    assert m.source == "iomem"
    assert m.ram_pages == 159 + 785_872 + 256 + 15_990_784 == 16_777_071
    assert m.max_pfn == 0x1040000
    # the RAM at 0xbfed0000 is separated by ACPI tables: a hole of 0x30 pages
    s, e = m.holes
    assert (0xbfed0, 0xbff00) in list(zip(s.tolist(), e.tolist()))


def test_sysfs_sample_counts_by_hand():
    m = load_memory_map(bundled_memmaps()["sysfs-memmap-512g"])
    # 0: [0x0, 0x9fbff]            -> PFN [0, 0x9f) (partial last page dropped) =   159
    # 3: [0x100000, 0x7fedffff]    -> PFN [0x100, 0x7fee0) = 0x7fde0           = 523,744
    # 7: [4 GiB, 0x3fffffffff]     -> PFN [0x100000, 0x4000000) = 0x3f00000 = 66,060,288
    # 9: [0x4080000000, 0x807fffffff] -> PFN [0x4080000, 0x8080000) = 0x4000000 = 67,108,864
    assert m.source == "sysfs"
    assert m.ram_pages == 159 + 523_744 + 66_060_288 + 67_108_864 == 133_693_055
    assert m.max_pfn == 0x8080000


def test_e820_new_style_with_gap_and_size_column(tmp_path):
    p = tmp_path / "new.dmesg"
    p.write_text(
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff]   640 KiB System RAM\n"
        "[    0.000000] BIOS-e820: [gap 0x00000000000a0000-0x00000000000fffff]   384 KiB\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff]  3071 MiB System RAM\n"
        "[    0.000000] BIOS-e820: [mem 0x00000000c0000000-0x00000000ffffffff]     1 GiB reserved\n")
    m = load_memory_map(p)
    assert m.ram_pages == 0xa0 + (0xc0000 - 0x100)


def _write(tmp_path, text, name="map.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_malformed_e820_line_names_file_line_and_text(tmp_path):
    p = _write(tmp_path, "[0.0] Linux version\n[0.0] BIOS-e820: [mem 0x0-0xzz] usable\n")
    with pytest.raises(ValueError, match=r"map\.txt:2: malformed BIOS-e820 line: .*0xzz"):
        load_memory_map(p)


def test_malformed_iomem_line(tmp_path):
    p = _write(tmp_path, "00000000-00000fff : Reserved\n00001000-0009ffff System RAM\n")
    with pytest.raises(ValueError, match=r"map\.txt:2: malformed /proc/iomem line.*System RAM"):
        load_memory_map(p)


def test_reversed_range(tmp_path):
    p = _write(tmp_path, "00100000-000fffff : System RAM\n")
    with pytest.raises(ValueError, match="reversed range: start 0x100000 > end 0xfffff"):
        load_memory_map(p)


def test_overlapping_ranges(tmp_path):
    p = _write(tmp_path, "BIOS-e820: [mem 0x0000000000000000-0x00000000000fffff] usable\n"
                         "BIOS-e820: [mem 0x0000000000080000-0x00000000001fffff] usable\n")
    with pytest.raises(ValueError, match="overlapping ranges: line 1 .* and line 2"):
        load_memory_map(p)


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="empty file"):
        load_memory_map(_write(tmp_path, "\n  \n"))


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        load_memory_map(_write(tmp_path, "MemTotal: 16384 kB\n"))


def test_iomem_without_privilege_says_read_as_root(tmp_path):
    p = _write(tmp_path, "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
                         "  00000000-00000000 : Kernel code\n")
    with pytest.raises(ValueError, match="read it as root"):
        load_memory_map(p)


def test_sysfs_bad_entry(tmp_path):
    d = tmp_path / "memmap"
    (d / "0").mkdir(parents=True)
    (d / "0" / "start").write_text("0x0\n")
    (d / "0" / "end").write_text("banana\n")
    (d / "0" / "type").write_text("System RAM\n")
    with pytest.raises(ValueError, match=r"0/end:1: malformed memmap end.*banana"):
        load_memory_map(d)
    (d / "0" / "end").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_memory_map(d)


def test_synthetic_host_shape():
    m = synthetic_host(64 * GIB)
    assert m.ram_pages == 64 * GIB // 4096
    assert m.numa_nodes == 2
    s, e = m.holes
    # the 640K-1M hole, the 3-4 GiB PCI hole, one 4 GiB gap between the two nodes
    assert list(zip(s.tolist(), e.tolist()))[:2] == [(0xa0, 0x100), (0xc0000, 0x100000)]
    assert len(s) == 3 and int(e[2] - s[2]) == 4 * GIB // 4096
    big = synthetic_host(4 << 40, numa_nodes=16)
    assert big.ram_pages == (4 << 40) // 4096 and big.numa_nodes == 16
    assert sum(int(np.sum(x[1] - x[0])) for x in map(big.node_ram, range(16))) == big.ram_pages


def test_synthetic_host_limits():
    with pytest.raises(ValueError, match="outside"):
        synthetic_host(128 << 40)


BEYOND = r"is beyond what x86-64 can address: physical addresses lie below 0x10000000000000 " \
         r"\(2\^52, MAX_PHYSMEM_BITS\)"
E820 = "[    0.000000] BIOS-e820: [mem 0x{}-0x{}] {}\n"
E820_OK = E820.format("0000000000000000", "000000000009ffff", "usable")


@pytest.mark.parametrize("text, msg", [
    # 20 hex digits: used to raise OverflowError with no file or line
    (E820_OK + E820.format("0000000000100000", "f" * 20, "usable"),
     rf"map\.txt:2: address 0x{'f' * 20} {BEYOND}"),
    (E820_OK + E820.format("0000000000100000", "10000000000000000", "reserved"),
     rf"map\.txt:2: address 0x10000000000000000 {BEYOND}"),
    (E820_OK + E820.format("0010000000000000", "0010000000000fff", "reserved"),
     rf"map\.txt:2: address 0x10000000000000 {BEYOND}"),
    ("00001000-0009ffff : System RAM\n"
     "  10000000000000-10000000000fff : Kernel code\n",
     rf"map\.txt:2: address 0x10000000000000 {BEYOND}"),
    ("00001000-0009ffff : System RAM\n8000000000000000-8000000000000fff : PCI Bus\n",
     rf"map\.txt:2: address 0x8000000000000000 {BEYOND}"),
], ids=["e820-20-digits", "e820-2^64", "e820-2^52", "iomem-nested-2^52", "iomem-2^63"])
def test_addresses_beyond_x86_64_name_file_line_and_limit(tmp_path, text, msg):
    with pytest.raises(ValueError, match=msg):
        load_memory_map(_write(tmp_path, text))


def test_sysfs_address_beyond_x86_64(tmp_path):
    d = tmp_path / "memmap" / "0"
    d.mkdir(parents=True)
    (d / "start").write_text("0x0\n")
    (d / "end").write_text("0x8000000000000000\n")
    (d / "type").write_text("System RAM\n")
    with pytest.raises(ValueError, match=rf"0/end:1: address 0x8000000000000000 {BEYOND}"):
        load_memory_map(tmp_path / "memmap")


def test_last_addressable_byte_is_accepted(tmp_path):
    m = load_memory_map(_write(tmp_path, E820_OK + E820.format(
        "000ffffffffff000", "000fffffffffffff", "usable")))
    assert m.max_pfn == 1 << 40 and m.ram_ends.tolist() == [0xA0, 1 << 40]


NOT_TEXT = r"expected a boot log with BIOS-e820 lines or a /proc/iomem dump \(UTF-8 or ASCII\)"


@pytest.mark.parametrize("data, msg", [
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
     rf"map\.txt:2: unknown format: not a text file: byte 136 is not UTF-8 \(invalid start "
     rf"byte\); {NOT_TEXT}"),
    (E820_OK.encode("utf-16"),
     rf"map\.txt:1: unknown format: not a text file: byte 0 is not UTF-8 \(invalid start "
     rf"byte\); {NOT_TEXT}"),
    (E820_OK.encode("utf-16-le"),
     rf"map\.txt:1: unknown format: not a text file: NUL byte at offset 1 \(UTF-16 or "
     rf"binary\?\); {NOT_TEXT}"),
], ids=["binary", "utf-16-bom", "utf-16-le"])
def test_not_text_names_file_and_line(tmp_path, data, msg):
    p = tmp_path / "map.txt"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=msg):
        load_memory_map(p)


def test_sysfs_file_not_text(tmp_path):
    d = tmp_path / "memmap" / "0"
    d.mkdir(parents=True)
    (d / "start").write_bytes("0x0\n".encode("utf-16"))
    (d / "end").write_text("0xfff\n")
    (d / "type").write_text("System RAM\n")
    with pytest.raises(ValueError, match=r"0/start:1: unknown format: not a text file: byte 0 "
                                         r"is not UTF-8 \(invalid start byte\); expected one "
                                         r"line in memmap start"):
        load_memory_map(tmp_path / "memmap")
