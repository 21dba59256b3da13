"""The user's own host (--memmap, --trace, --tds) and the sparse-max_pfn host."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from trackers import extents as X
from trackers.__main__ import main
from trackers.workloads import Policy, TdConfig, load_memory_map, scenario
from trackers.workloads.memmap import bundled_memmaps
from trackers.workloads.scenarios import UserHost, r7625_host
from trackers.workloads.tdx import parse_size, parse_tds, td_covering
from trackers.workloads.traces import bundled_traces

GIB = 1 << 30
MAPS = bundled_memmaps()
TRACES = bundled_traces()

#: a 4 GiB host in boot-log e820 form: RAM [0, 640 KiB), [1 MiB, 3 GiB), [4 GiB, 5 GiB)
SMALL_E820 = (
    "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n"
    "[    0.000000] BIOS-e820: [mem 0x00000000000a0000-0x00000000000fffff] reserved\n"
    "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable\n"
    "[    0.000000] BIOS-e820: [mem 0x00000000c0000000-0x00000000ffffffff] reserved\n"
    "[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable\n")


def _write(tmp_path, text, name="map.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


# --- --tds ------------------------------------------------------------------

def test_parse_tds_sizes_vcpus_policies():
    tds = parse_tds("64G, 512MiB:2 ,1.5T:16:fragmented=0.1,2G::interleaved,4G:1:fragmented")
    assert [t.guest_bytes for t in tds] == [64 * GIB, 512 << 20, 1536 * GIB, 2 * GIB, 4 * GIB]
    assert [t.vcpus for t in tds] == [8, 2, 16, 8, 1]
    assert [t.policy for t in tds] == [Policy(), Policy(), Policy("fragmented", 0.1),
                                       Policy("interleaved"), Policy("fragmented", 0.25)]
    assert parse_size("4k") == 4096 and parse_size("1TB") == 1 << 40


@pytest.mark.parametrize("text, message", [
    ("8X", "--tds '8X': TD 0 ('8X'): size '8X' is not a size: want a number and a unit "
           "K, M, G or T (binary), e.g. 64G"),
    ("8G,3M", "--tds '8G,3M': TD 1 ('3M'): guest memory 3,145,728 bytes must be a positive "
              "multiple of 2 MiB (2,097,152 bytes)"),
    ("0G", "--tds '0G': TD 0 ('0G'): guest memory 0 bytes must be a positive multiple of "
           "2 MiB (2,097,152 bytes)"),
    ("8G:0", "--tds '8G:0': TD 0 ('8G:0'): vCPUs '0' must be an integer in [1, 4096] "
             "(KVM_MAX_VCPUS)"),
    ("8G:4097", "--tds '8G:4097': TD 0 ('8G:4097'): vCPUs '4097' must be an integer in "
                "[1, 4096] (KVM_MAX_VCPUS)"),
    ("8G:2:fragmented=2", "--tds '8G:2:fragmented=2': TD 0 ('8G:2:fragmented=2'): "
                          "fragmentation 2 must lie in [0, 1]"),
    ("8G:2:random", "--tds '8G:2:random': TD 0 ('8G:2:random'): policy 'random': want "
                    "contiguous, interleaved or fragmented=F"),
    ("8G:1:contiguous:x", "--tds '8G:1:contiguous:x': TD 0 ('8G:1:contiguous:x'): want "
                          "SIZE[:VCPUS[:POLICY]],... with SIZE like 64G or 512M (binary "
                          "units K, M, G, T), POLICY contiguous, interleaved or "
                          "fragmented=F (F in [0, 1])"),
    ("8G,,4G", "--tds '8G,,4G': TD 1 ('empty'): want SIZE[:VCPUS[:POLICY]],... with SIZE "
               "like 64G or 512M (binary units K, M, G, T), POLICY contiguous, "
               "interleaved or fragmented=F (F in [0, 1])"),
])
def test_bad_tds_names_td_value_and_limit(text, message):
    with pytest.raises(ValueError) as exc:
        parse_tds(text)
    assert str(exc.value) == message


def test_td_covering_reaches_the_trace():
    # td16g-boot: [0, 0x80000) and [0x100000, 0x480000): the 16 GiB TD of its scenario
    assert td_covering(0x480000).guest_bytes == 16 * GIB
    assert td_covering(0x480001).guest_bytes == 17 * GIB          # whole GiB
    assert td_covering(0x1000).guest_bytes == GIB
    # past 4 GiB the layout skips [2 GiB, 4 GiB): 2.75 GiB or more splits at 2 GiB
    assert td_covering(0x100001).guest_bytes == 3 * GIB
    # qemu-convert ends at GFN 0x3c8000 (15.125 GiB): 13.125 GiB of RAM, 14 whole
    assert td_covering(0x3C8000).guest_bytes == 14 * GIB


# --- UserHost ----------------------------------------------------------------

@pytest.mark.parametrize("key", ["e820-2socket-256g", "iomem-64g", "sysfs-memmap-512g"])
def test_bundled_maps_as_user_hosts(key):
    w = UserHost(MAPS[key]).build(seed=1)
    # a name a bundled scenario has (the sysfs directory) is marked as the user's
    assert w.name == (MAPS[key].name if MAPS[key].is_file() else f"{key} (--memmap)")
    assert len(w.tds) == 2
    # the default layout is the real-map scenarios': 2 x 35 % of RAM, whole GiB
    assert [t.config.guest_bytes for t in w.tds] == [int(0.35 * w.memmap.ram_bytes) // GIB
                                                      * GIB] * 2
    same = scenario(key, seed=1)
    assert X.count(w.final_private_all()) == X.count(same.final_private_all())
    w = UserHost(MAPS[key], tds="2G:2,1G").build()
    assert [t.config.guest_bytes for t in w.tds] == [2 * GIB, GIB]


def test_trace_derives_its_td_and_replays_as_the_bundled_scenario():
    w = UserHost(MAPS["iomem-64g"], trace=TRACES["td16g-boot"]).build()
    assert [t.config for t in w.tds] == [TdConfig(16 * GIB, vcpus=4,
                                                  policy=Policy("fragmented", 0.25))]
    # the same GFNs private as trace-td16g-boot (tests/test_workloads_traces.py)
    assert X.count(w.final_kvm()) == 3_942_912
    w = UserHost(MAPS["iomem-64g"], trace=TRACES["qemu-convert"], tds="16G").build()
    assert X.count(w.final_kvm()) == 3_914_240           # as trace-qemu-convert
    # a 14 GiB TD for the QEMU log: SWIOTLB 6 % = 220,201 pages -> 430 chunks, below
    # the log's 28,672 shared pages (15 GiB .. 15.125 GiB)
    w = UserHost(MAPS["iomem-64g"], trace=TRACES["qemu-convert"]).build()
    assert X.count(w.final_kvm()) == 14 * GIB // 4096 - 430 * 512 - 28_672 == 3_421_184
    # the trace is TD 0's boot; TD 1 boots as the generator boots it (SWIOTLB shared)
    w = UserHost(MAPS["iomem-64g"], trace=TRACES["td16g-boot"], tds="16G,2G:2").build()
    g2 = 2 * GIB // 4096
    # SWIOTLB: 6 % of 2 GiB = 31,457 pages, in whole 2 MiB chunks: 61 x 512
    assert X.count(w.final_kvm()) == 3_942_912 + g2 - 61 * 512


def test_malformed_map_is_refused(tmp_path):
    p = _write(tmp_path, "[0.0] BIOS-e820: [mem 0x0-0xzz] usable\n")
    with pytest.raises(ValueError, match=r"map\.txt:1: malformed BIOS-e820 line"):
        UserHost(p).build()


def test_unprivileged_iomem_says_read_as_root(tmp_path):
    p = _write(tmp_path, "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
                         "  00000000-00000000 : Kernel code\n")
    with pytest.raises(ValueError) as exc:
        UserHost(p).build()
    assert str(exc.value) == (
        f"{p}: every address in this /proc/iomem is zero: it was read without "
        f"CAP_SYS_ADMIN; read it as root (sudo cat /proc/iomem)")


def test_tds_larger_than_free_ram_name_need_and_free(tmp_path):
    p = _write(tmp_path, SMALL_E820)
    with pytest.raises(ValueError) as exc:
        UserHost(p, tds="1G,1G").build()
    # need per TD: 262,144 guest + TDR 1 + TDCS 6 + 8 vCPUs x 6 + S-EPT 512 + 1 + 1
    # = 262,713 pages.  free: RAM below 4 GiB stays the host's, then 1 % of
    # [4 GiB, 5 GiB) (2,621 pages) and the PAMT of TDMRs [0, 3 GiB) (3,072 + 6 + 1)
    # and [4 GiB, 5 GiB) (1,024 + 2 + 1): 262,144 - 2,621 - 4,106 = 255,417 pages
    assert (2 * (262_144 + 1 + 6 + 8 * 6 + 514) * 4096, 255_417 * 4096) == \
        (2_152_144_896, 1_046_188_032)
    assert str(exc.value) == (
        "2 TD(s) need 2,152,144,896 bytes (2.00 GiB) (guest memory, control pages, S-EPT) "
        "but host map.txt has only 1,046,188,032 bytes (0.97 GiB) free for TDs (RAM "
        "4,294,574,080 bytes (4.00 GiB), less PAMT and the host's own share: the host keeps "
        "its 3.00 GiB of RAM below 4 GiB and 1 % of the rest)")
    assert (160 + (3 * GIB - (1 << 20)) // 4096 + GIB // 4096) * 4096 == 4_294_574_080


def test_trace_outside_the_td_names_line_and_ranges():
    with pytest.raises(ValueError) as exc:
        UserHost(MAPS["iomem-64g"], trace=TRACES["qemu-convert"], tds="8G").build()
    assert str(exc.value) == (
        f"{TRACES['qemu-convert']}:1: GFNs [0x3c0000, 0x3c0200) lie outside the TD's RAM: "
        f"GFN ranges [0x0, 0x80000), [0x100000, 0x280000) (2,097,152 pages, QEMU q35 layout)")


# --- the sparse-max_pfn host ---------------------------------------------------

def test_r7625_map_counts_by_hand():
    m = r7625_host()
    assert m.source == "e820" and m.numa_nodes == 2
    # 4 x 192 GiB above 4 GiB; below: 0xa0 + (0x10000 - 0x100) + (0x65fff - 0x10200) + 1
    low = 0xA0 + 0xFF00 + 0x55DFF + 1
    assert m.ram_pages == 4 * 192 * GIB // 4096 + low == 201_743_776
    assert m.max_pfn == 7272 * GIB // 4096 == 0x71A00000          # 7.1 TiB
    assert m.max_pfn / m.ram_pages > 9


def test_lay_over_ram_keeps_2m_alignment_and_counts(tmp_path):
    m = load_memory_map(_write(tmp_path, SMALL_E820))
    # whole 2 MiB blocks: [1 MiB, 3 GiB) rounds to [2 MiB, 3 GiB); [0, 640 KiB) holds none
    bs, be = m.ram_blocks_2m()
    assert bs.tolist() == [512, 1 << 20] and be.tolist() == [3 << 18, 5 << 18]
    first = (3 << 18) - 512                       # 785,920 pages in the first block
    ext = X.normalize(np.array([0, 511, first - 512]), np.array([1, 1024, first + 512]))
    got = m.lay_over_ram(ext)
    # the last extent straddles the end of the first block: split, continued at 4 GiB
    assert got[0].tolist() == [512, 1023, (3 << 18) - 512, 1 << 20]
    assert got[1].tolist() == [513, 1536, 3 << 18, (1 << 20) + 512]
    with pytest.raises(ValueError, match="past the 1,048,064 pages"):
        m.lay_over_ram((np.array([0]), np.array([first + (1 << 18) + 1])))
    # struct pages of present 128 MiB sections: [0, 3 GiB) 24 and [4, 5 GiB) 8
    assert m.vmemmap_bytes == 32 * (2 << 20)


def test_r7625_scenario_places_its_tds_on_both_nodes():
    w = scenario("r7625-sparse")
    assert [t.config.node for t in w.tds] == [0, 1]
    guest = [t.binding.pfn_extents() for t in w.tds]
    assert int(w.memmap.node_of(guest[0][0][:1])[0]) == 0
    assert int(w.memmap.node_of(guest[1][0][:1])[0]) == 1


def test_sparse_host_rows_separate_max_pfn_from_set():
    from trackers.report import config, memory
    cfg = config.quick_config()
    cfg.sweep_shape = "extents-2m"
    df = pd.DataFrame(memory.sparse_host_rows(cfg, "r7625-sparse"))
    m = r7625_host()
    assert (df["host_kind"] == "sparse").all() and (df["host_pfns"] == m.max_pfn).all()
    assert (df["ram_pages"] == m.ram_pages).all()
    by = df.set_index("tracker")
    # the bitmap covers [0, max_pfn): 1 bit per PFN, against 1 bit per page of RAM
    assert by.loc["bitmap", "modeled_bytes"] == m.max_pfn // 8
    assert by.loc["bitmap", "vs_dense"] == pytest.approx(m.max_pfn / by.loc["bitmap",
                                                                             "set_pages_host"])
    assert by.loc["bitmap", "sized_by"] == "max_pfn"
    for name in ("xarray", "roaring", "maple"):
        assert by.loc[name, "sized_by"] == "set"
        assert by.loc[name, "vs_dense"] == pytest.approx(1, abs=1e-3)
    assert by.loc["pageflags", "sized_by"] == "nothing added"
    assert math.isnan(by.loc["pageflags", "vs_dense"])
    # struct pages of the present 128 MiB sections: 14 below 4 GiB, 4 x 1536 above
    assert (df["vmemmap_bytes"] == (14 + 4 * 1536) * (2 << 20)).all()
    assert (df["flat_struct_pages_bytes"] == m.max_pfn * 64).all()
    # the same number of private pages as the dense twin, all of them in RAM
    assert (df["private_pages"] == int(0.7 * df["set_pages_host"].iloc[0] // 512) * 512).all()


def test_memory_figure_draws_the_sparse_host_as_stars():
    from trackers.report import config, memory
    from trackers.report.figures import memory_vs_host
    cfg = config.quick_config()
    cfg.sweep_shape = "extents-2m"
    rows = memory.memory_rows(cfg, 1 << 20) + memory.sparse_host_rows(cfg, "r7625-sparse")
    fig = memory_vs_host.figure(pd.DataFrame(rows))
    ax = fig.axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*" and len(ln.get_xdata())]
    positive = sum(1 for r in rows if r.get("host_kind") == "sparse" and r["added_bytes"] > 0)
    assert len(stars) == positive
    assert all(float(ln.get_xdata()[0]) == r7625_host().ram_bytes for ln in stars)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("r7625-sparse" in t and "sized by max_pfn (bitmap x9.4" in t for t in legend)
    # the dense lines keep their own hosts only
    lines = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    assert all(list(ln.get_xdata()) == [float(1 << 32)] for ln in lines)


def test_memory_figure_without_sparse_rows():
    from trackers.report import config, memory
    from trackers.report.figures import memory_vs_host
    cfg = config.quick_config()
    cfg.sweep_shape = "extents-2m"
    df = pd.DataFrame(memory.memory_rows(cfg, 1 << 20))
    dense, sparse = memory.split_sparse_hosts(df)
    assert len(dense) == len(df) and sparse.empty
    ax = memory_vs_host.figure(df).axes[0]
    assert not [ln for ln in ax.get_lines() if ln.get_marker() == "*"]


# --- the commands --------------------------------------------------------------

@pytest.mark.slow
def test_kexec_on_own_map_fills_the_model_error(tmp_path, capsys):
    p = _write(tmp_path, SMALL_E820, "small.dmesg")
    out = tmp_path / "v.csv"
    assert main(["kexec", "--memmap", str(p), "--tds", "512M:2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kexec on small.dmesg (seed 0)" in text
    df = pd.read_csv(out)
    assert set(df["host"]) == {"small.dmesg"}
    built = df[df["scan_runs"] > 0]
    assert {"bitmap", "xarray", "roaring"} <= set(built["strategy"])
    # kvm-sept and gmem-maple time only part of their walk (the C page-table walk,
    # the tree walk without its lookups), parallel-reset's scan is timed on one CPU
    # and modeled on all: their model error is left blank on purpose
    partial = built["strategy"].isin(["kvm-sept", "gmem-maple", "parallel-reset"])
    assert built.loc[~partial, "scan_model_error"].notna().all()
    assert built.loc[partial, "scan_model_error"].isna().all()


def test_report_adds_the_user_host_as_one_more_kexec_scenario(tmp_path):
    from trackers.report import config
    from trackers.report.steps import kexec_steps
    cfg = config.quick_config()
    cfg.user_host = UserHost(_write(tmp_path, SMALL_E820, "small.dmesg"), tds="512M")
    steps = kexec_steps(cfg)
    labels = [s.label for s in steps]
    assert [x for x in labels if x.startswith("kexec")] == ["kexec tiny", "kexec small.dmesg"]
    assert "sensitivity small.dmesg" in labels
    rows = pd.DataFrame(steps[labels.index("kexec small.dmesg")].run())
    assert set(rows["scenario"]) == {"small.dmesg"} and rows["emulated"].all()
    here = rows[(rows["platform_name"] == "this-machine") & (rows["scan_runs"] > 0)
                & ~rows["strategy"].isin(["kvm-sept", "gmem-maple", "parallel-reset"])]
    assert len(here) >= 5 and here["scan_model_error"].notna().all()


def test_r7625_is_a_default_kexec_scenario():
    from trackers.report import config
    assert "r7625-sparse" in config.default_config().scenarios
    assert config.default_config().sparse_hosts == ["r7625-sparse"]


# --- hosts too small for the default, or for TDX ------------------------------

def _iomem(ranges) -> str:
    return "".join(f"{a:08x}-{b - 1:08x} : System RAM\n" for a, b in ranges)


def test_the_default_tds_shrink_to_fit_and_say_so(tmp_path):
    """10 GiB of RAM, 4 GiB of it below 4 GiB (the host's): 2 x 35 % (3 GiB
    each) does not fit the 5.90 GiB left for TDs; the default is 2 x 2 GiB,
    and the description says why."""
    p = _write(tmp_path, _iomem([(0x1000, 0xA0000), (1 << 20, 4 * GIB), (4 * GIB, 10 * GIB)]),
               "host10g.txt")
    w = UserHost(p).build()
    assert [t.config.guest_bytes for t in w.tds] == [2 * GIB, 2 * GIB]
    assert w.description.endswith(
        "; 2 TD(s) (default: 2 x 2 GiB: 35 % of RAM, 3 GiB each, does not fit the 5.90 GiB "
        "free for TDs)")
    roomy = _write(tmp_path, _iomem([(1 << 20, 3 * GIB), (4 * GIB, 11 * GIB)]), "roomy.txt")
    w = UserHost(roomy).build()
    assert [t.config.guest_bytes for t in w.tds] == [3 * GIB, 3 * GIB]
    assert w.description.endswith("; 2 TD(s) (default: 2 x 3 GiB, 35 % of RAM)")


def test_a_host_without_ram_for_tdx_is_named_with_why(tmp_path):
    low = _write(tmp_path, _iomem([(0x1000, 0xA0000)]), "low.txt")
    with pytest.raises(ValueError) as exc:
        UserHost(low, tds="2M").build()
    assert str(exc.value) == (
        "host low.txt: 0 bytes (0.00 GiB) of RAM above 1 MiB, where TDX memory starts (its "
        "RAM: 651,264 bytes (0.00 GiB)): want at least 2 MiB, a TDMR's smallest page, and in "
        "practice GiBs above 4 GiB")
    below = _write(tmp_path, _iomem([(0x1000, 0xA0000), (1 << 20, 3 * GIB)]), "below4g.txt")
    with pytest.raises(ValueError) as exc:
        UserHost(below).build()
    assert str(exc.value) == (
        "host below4g.txt: all its RAM (3,220,828,160 bytes (3.00 GiB)) lies below 4 GiB, "
        "which the model keeps for the host itself: it places TDX memory (PAMT, TDs) only "
        "above 4 GiB, and this host has none there")


def test_sizes_parse_exactly_however_long():
    assert parse_size("99999999999999999999G") == 99999999999999999999 << 30
    assert parse_size("1.5T") == 3 << 39 and parse_size("0.5K") == 512
    with pytest.raises(ValueError, match=r"^size '1\.0000001K' is not a whole number of bytes"):
        parse_size("1.0000001K")
