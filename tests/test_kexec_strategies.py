"""Kexec strategies on hand-built hosts and on the tiny scenario: exact pages."""

import math

import pytest

import trackers
from trackers.kexec.evaluate import COLUMNS, evaluate
from trackers.kexec.host import KexecHost
from trackers.extents import (normalize, count, intersect, overlap_pages,
                                   subtract, union)
from trackers.kexec.strategies import STRATEGIES

G, M = 1 << 18, 512


def host(**kw):
    base = dict(max_pfn=4 * G, ram=([256, 2 * G], [G + 7, 4 * G - 100]),
                private=([G, 2 * G + 5, 3 * G], [G + 5, 2 * G + 7, 3 * G + 64]),
                kvm_visible=([G], [G + 4]), pamt=([3 * G], [3 * G + 64]), tds_running=1)
    base.update(kw)
    return KexecHost(**base)


def test_extent_ops():
    a = normalize([0, 10, 20], [5, 15, 30])
    b = normalize([3, 12], [11, 25])
    assert overlap_pages(a, b) == 2 + 1 + 3 + 5
    i = intersect(a, b)
    assert count(i) == 11 and i[0].tolist() == [3, 10, 12, 20]
    assert subtract(a, b)[0].tolist() == [0, 11, 25] and count(subtract(a, b)) == 3 + 1 + 5
    assert count(union(a, b)) == 30


def test_clear_all_resets_exactly_ram():
    h = host()
    row = STRATEGIES["clear-all"].assess(h, "spr-2s")
    assert row.pages_reset == (G + 7 - 256) + (4 * G - 100 - 2 * G) == h.ram_pages
    assert row.pages_missed == 0 and row.scanned_bytes == 0
    assert math.isclose(row.clear_s, h.ram_pages * 4096 / 13.7e9)


def test_refusals():
    h = host()
    assert not STRATEGIES["refuse"].assess(h, "spr-2s").kexec_allowed
    assert not STRATEGIES["refuse-while-td"].assess(h, "spr-2s").kexec_allowed
    idle = host(tds_running=0)
    r = STRATEGIES["refuse-while-td"].assess(idle, "spr-2s")
    assert r.kexec_allowed and r.pages_reset == 64           # the PAMT only
    assert r.pages_missed == idle.private_pages - 64


def test_hooked_trackers_find_every_private_page():
    h = host()
    for name in trackers.TRACKERS:
        if name == "kvm":
            continue
        row = STRATEGIES[name].assess(h, "spr-2s")
        assert row.pages_missed == 0, name
        assert row.pages_reset == h.private_pages, name
        assert row.scan_measured_s >= 0, name


def test_kvm_misses_non_guest_pages():
    h = host()
    row = STRATEGIES["kvm"].assess(h, "spr-2s")
    # finds its guest pages and the PAMT; misses the rest
    assert row.pages_missed == h.private_pages - 4 - 64
    assert row.added_bytes == 0


def test_pte_softbit_row():
    h = host()
    row = STRATEGIES["pte-softbit"].assess(h, "spr-2s")
    # RAM [256, G+7): 4K head, 2M to G (511), 4K tail 7 pages; [2G, 4G-100):
    # 1G at 2G, 2M up to 4G-512, 4K tail.  Private pages at G..G+5 sit in the
    # 4K tail (no split); 2G+5 splits the 1G (PMD) and its first 2M (PTE);
    # 3G..3G+64 sits in a 2M mapping (one PTE page).
    assert row.added_bytes == 3 * 4096
    assert row.pages_missed == 0 and row.pages_reset == h.private_pages


def test_sys_disable_time_follows_td_memory():
    h = host()
    row = STRATEGIES["sys-disable"].assess(h, "spr-2s")
    assert row.pages_missed == 0 and row.scanned_bytes == 0
    assert h.td_pages == h.private_pages - 64
    assert math.isclose(row.downtime_s, h.private_pages * 4096 / 13.7e9)


def test_private_outside_ram_rejected():
    with pytest.raises(ValueError, match="outside RAM"):
        host(private=([100], [300]))


def test_evaluate_table_on_tiny():
    workloads = pytest.importorskip("trackers.workloads")
    wl = workloads.scenario("tiny", 0)
    df = evaluate(wl, "spr-2s", strategies=["bitmap", "pte-softbit", "kvm", "clear-all",
                                            "refuse", "sys-disable"])
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS
    r = df.set_index("strategy")
    private = sum(count(v) for v in wl.final_private().values())
    assert r.loc["bitmap", "pages_missed"] == 0
    assert r.loc["bitmap", "pages_reset"] == private
    assert r.loc["clear-all", "pages_reset"] == wl.memmap.ram_pages
    # kvm misses every non-guest page but the PAMT: control and S-EPT pages
    fp = wl.final_private()
    non_td = sum(count(fp[k]) for k in fp if k not in ("guest", "pamt"))
    assert non_td > 0 and r.loc["kvm", "pages_missed"] >= non_td
    assert not r.loc["refuse", "kexec_allowed"]
    assert all(("modeled" in p) for p in df["provenance"])
    assert df["downtime_s"].dropna().ge(0).all()


# --- which engine a measured scan comes from (issue 9) ------------------------

def _measured_platform():
    from trackers.kexec import Platform
    return Platform("m", clear_bps_core=1e10, clear_bps_all=1e10, read_bps_core=1e10,
                    read_bps_all=1e10, load_latency_s=1e-7, cpus_total=1, kind="measured")


def test_a_twin_is_timed_through_the_kernel_code():
    """Where a @kernel twin exists and the library loads, the strategy's measured
    scan is the twin's; its provenance names the kernel version; the model error
    compares with that time."""
    from trackers import linux
    from trackers.registry import KERNEL_TRACKERS, TWINS
    if not KERNEL_TRACKERS:
        pytest.skip("kernel code unavailable here")
    h = host()
    plat = _measured_platform()
    for name in TWINS:
        row = STRATEGIES[name].assess(h, plat)
        assert row.engine == f"kernel code v{linux.version()} (userspace)", name
        assert row.provenance.startswith(f"measured: kernel code (v{linux.version()}, "
                                         f"userspace)"), name
        assert row.scan_runs == 3 and row.scan_measured_min_s <= row.scan_measured_s \
            <= row.scan_measured_max_s, name
        assert row.scan_model_error == pytest.approx(row.scan_s / row.scan_measured_s - 1)
        if name != "kvm":
            assert row.pages_missed == 0 and row.pages_reset == h.private_pages, name
    # the kernel's bitmap is scanned word by word; the set has three runs
    row = STRATEGIES["bitmap"].assess(h, plat)
    assert row.scan_entries == h.max_pfn // 64 and row.scan_extents == 3
    assert row.scan_s == pytest.approx(plat.scan_s(row.scanned_bytes, 0, h.max_pfn // 64, 3))
    # KVM's walk looks every page it finds up in guest_memfd
    row = STRATEGIES["kvm"].assess(h, plat)
    assert row.scan_lookups == 4 and row.scan_extents == 1


def test_the_emulation_is_timed_only_where_no_twin_runs(monkeypatch):
    import trackers.kexec.strategies as st
    h = host()
    row = STRATEGIES["roaring"].assess(h, "spr-2s")              # no @kernel twin
    assert row.engine == st.ENGINE_EMULATION and "emulated" in row.provenance
    for name in ("bitmap", "xarray"):
        row = STRATEGIES[name].assess(h, "spr-2s", kernel_code=False)
        assert row.engine == st.ENGINE_EMULATION and "emulated" in row.provenance
        assert "kernel code (v" not in row.provenance
    monkeypatch.setattr(st.linux, "available", lambda: (False, "no library (test)"))
    row = STRATEGIES["xarray"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_EMULATION
    assert STRATEGIES["pte-softbit"].assess(h, "spr-2s").engine == st.ENGINE_NONE
    assert STRATEGIES["pageflags"].assess(h, "spr-2s").engine == st.ENGINE_EMULATION
    # not built at all: modeled, no engine
    row = STRATEGIES["xarray"].assess(h, "spr-2s", emulate=False)
    assert row.engine == st.ENGINE_NONE and row.scan_runs == 0


def test_pageflags_and_pte_softbit_are_timed_on_their_c_layouts():
    import trackers.kexec.strategies as st
    from trackers.registry import KERNEL_TRACKERS
    if not KERNEL_TRACKERS:
        pytest.skip("kernel code unavailable here")
    h = host()
    row = STRATEGIES["pageflags"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_STRUCT_PAGES and row.provenance.startswith("measured: C scan")
    assert row.scan_entries == h.max_pfn and row.scan_extents == 3
    assert row.pages_reset == h.private_pages and row.pages_missed == 0
    row = STRATEGIES["pte-softbit"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_PAGE_TABLES and row.provenance.startswith("measured: C walk")
    assert row.scan_entries == row.scanned_bytes // 8 and row.scan_runs == 3
    assert row.added_bytes == 3 * 4096 and row.pages_missed == 0


def test_evaluate_builds_each_structure_once_across_platforms(monkeypatch):
    import trackers.kexec.strategies as st
    h = host()
    calls = []
    real = st.TrackerStrategy.measure

    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(st.TrackerStrategy, "measure", counted)
    cache = {}
    a = evaluate(h, "spr-2s", strategies=["bitmap", "kvm"], cache=cache)
    b = evaluate(h, "this-machine", strategies=["bitmap", "kvm"], cache=cache)
    assert calls == ["bitmap", "kvm"]
    assert (a["scan_measured_s"] == b["scan_measured_s"]).all()
    assert list(a["engine"]) == list(b["engine"])
