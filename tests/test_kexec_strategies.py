"""Kexec strategies on hand-built hosts and on the tiny scenario: exact pages."""

import math

import pytest

import trackers
from trackers.kexec.evaluate import COLUMNS, evaluate
from trackers.kexec.host import KexecHost
from trackers.kexec.platform import PLATFORMS
from trackers.extents import (normalize, count, intersect, overlap_pages,
                                   subtract, union)
from trackers.kexec import strategy as st
from trackers.kexec.strategies import STRATEGIES, strategy_for_tracker
from trackers.kexec.tracked import TrackerStrategy, present_pfns

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
    assert math.isclose(row.clear_s, h.ram_pages * 4096 / PLATFORMS["spr-2s"].clear_bps_core)


def test_refusals():
    h = host()
    assert not STRATEGIES["refuse-6.18"].assess(h, "spr-2s").kexec_allowed
    assert not STRATEGIES["refuse-while-td"].assess(h, "spr-2s").kexec_allowed
    idle = host(tds_running=0)
    r = STRATEGIES["refuse-while-td"].assess(idle, "spr-2s")
    assert r.kexec_allowed and r.pages_reset == 64           # the PAMT only
    assert r.pages_missed == idle.private_pages - 64


def test_rows_are_built_by_keyword_with_zero_counts_and_nan_times():
    with pytest.raises(TypeError):
        st.Outcome("refuse-6.18", "5", False)
    with pytest.raises(TypeError):
        st.ScanMeasurement(st.ENGINE_NONE, ((), ()), provenance="modeled", max_pfn=1)
    # a refusal states only that: no pages, no bytes, no kexec to time
    row = STRATEGIES["refuse-6.18"].assess(host(), "spr-2s")
    assert (row.added_bytes, row.scanned_bytes, row.scan_loads, row.pages_reset,
            row.pages_missed, row.scan_runs, row.pages_overcleared) == (0,) * 7
    assert all(math.isnan(x) for x in (row.scan_s, row.clear_s, row.downtime_s,
                                       row.downtime_low_s, row.downtime_high_s))
    assert row.engine == st.ENGINE_NONE


def test_hooked_trackers_find_every_private_page():
    h = host()
    for name in trackers.TRACKERS:
        if name == "kvm":
            continue
        row = strategy_for_tracker(name).assess(h, "spr-2s")
        assert row.pages_missed == 0, name
        assert row.pages_reset == h.private_pages, name
        assert row.scan_measured_s >= 0, name


def test_kvm_misses_non_guest_pages():
    h = host()
    row = STRATEGIES["kvm-attr"].assess(h, "spr-2s")
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
    row = STRATEGIES["mainline-7.2"].assess(h, "spr-2s")
    assert row.pages_missed == 0 and row.scanned_bytes == 0
    assert h.td_pages == h.private_pages - 64
    spr = PLATFORMS["spr-2s"]
    assert math.isclose(row.downtime_s,
                        h.private_pages * (spr.seamcall_s + 4096 / spr.clear_bps_core))


def test_private_outside_ram_rejected():
    with pytest.raises(ValueError, match="outside RAM"):
        host(private=([100], [300]))


def test_evaluate_table_on_tiny():
    workloads = pytest.importorskip("trackers.workloads")
    wl = workloads.scenario("tiny", 0)
    df = evaluate(wl, "spr-2s", strategies=["bitmap", "pte-softbit", "kvm", "clear-all",
                                            "refuse-6.18", "mainline-7.2"])
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS
    r = df.set_index("strategy")
    private = sum(count(v) for v in wl.final_private().values())
    assert r.loc["bitmap", "pages_missed"] == 0
    assert r.loc["bitmap", "pages_reset"] == private
    assert r.loc["clear-all", "pages_reset"] == wl.memmap.ram_pages
    # kvm misses every non-guest page but the PAMT: control and S-EPT pages
    fp = wl.final_private()
    non_td = sum(count(fp[k]) for k in fp if k not in ("guest", "pamt"))
    assert non_td > 0 and r.loc["kvm-attr", "pages_missed"] >= non_td
    assert not r.loc["refuse-6.18", "kexec_allowed"]
    assert all(("modeled" in p) for p in df["provenance"])
    assert df["downtime_s"].dropna().ge(0).all()


# --- which engine a measured scan comes from ----------------------------------

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
        row = strategy_for_tracker(name).assess(h, plat)
        assert row.engine == f"kernel code v{linux.version()} (userspace)", name
        assert row.provenance.startswith(f"measured: kernel code (v{linux.version()}, "
                                         f"userspace)"), name
        assert TrackerStrategy.scan_repeat.least_long <= row.scan_runs \
            <= TrackerStrategy.scan_repeat.most, name
        assert row.scan_measured_min_s <= row.scan_measured_s <= row.scan_measured_max_s, name
        assert row.scan_model_error == pytest.approx(row.scan_s / row.scan_measured_s - 1)
        if name != "kvm":
            assert row.pages_missed == 0 and row.pages_reset == h.private_pages, name
    # the kernel's bitmap is scanned word by word; the set has three runs
    row = STRATEGIES["bitmap"].assess(h, plat)
    assert row.scan_entries == h.max_pfn // 64 and row.scan_extents == 3
    assert row.scan_s == pytest.approx(plat.scan_s(row.scanned_bytes, 0, h.max_pfn // 64, 3))
    # KVM's walk looks every page it finds up in guest_memfd
    row = STRATEGIES["kvm-attr"].assess(h, plat)
    assert row.scan_lookups == 4 and row.scan_extents == 1


def test_the_emulation_is_timed_only_where_no_twin_runs(monkeypatch):
    h = host()
    row = STRATEGIES["roaring"].assess(h, "spr-2s")              # no @kernel twin
    assert row.engine == st.ENGINE_EMULATION and "emulated" in row.provenance
    for name in ("bitmap", "xarray"):
        row = STRATEGIES[name].assess(h, "spr-2s", kernel_code=False)
        assert row.engine == st.ENGINE_EMULATION and "emulated" in row.provenance
        assert "kernel code (v" not in row.provenance
    monkeypatch.setattr(trackers.linux, "available", lambda: (False, "no library (test)"))
    row = STRATEGIES["xarray"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_EMULATION
    assert STRATEGIES["pte-softbit"].assess(h, "spr-2s").engine == st.ENGINE_NONE
    assert STRATEGIES["pageflags"].assess(h, "spr-2s").engine == st.ENGINE_EMULATION
    # not built at all: modeled, no engine
    row = STRATEGIES["xarray"].assess(h, "spr-2s", emulate=False)
    assert row.engine == st.ENGINE_NONE and row.scan_runs == 0


def test_pageflags_and_pte_softbit_are_timed_on_their_c_layouts():
    from trackers.registry import KERNEL_TRACKERS
    if not KERNEL_TRACKERS:
        pytest.skip("kernel code unavailable here")
    h = host()
    row = STRATEGIES["pageflags"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_STRUCT_PAGES and row.provenance.startswith("measured: C scan")
    # one struct page per PFN of the sections holding RAM: RAM [256, 262151) and
    # [524288, 1048476) touch sections 0-8 and 16-31 of 32768 PFNs
    assert row.scan_entries == present_pfns(h) == 25 * 32768 and row.scan_extents == 3
    assert row.pages_reset == h.private_pages and row.pages_missed == 0
    row = STRATEGIES["pte-softbit"].assess(h, "spr-2s")
    assert row.engine == st.ENGINE_PAGE_TABLES and row.provenance.startswith("measured: C walk")
    assert row.scan_entries == row.scanned_bytes // 8
    assert (TrackerStrategy.scan_repeat.least_long <= row.scan_runs
            <= TrackerStrategy.scan_repeat.most)
    assert row.added_bytes == 3 * 4096 and row.pages_missed == 0


def test_evaluate_builds_each_structure_once_across_platforms(monkeypatch):
    h = host()
    calls = []
    real = TrackerStrategy.measure

    def counted(self, *args, **kwargs):
        calls.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TrackerStrategy, "measure", counted)
    cache = {}
    a = evaluate(h, "spr-2s", strategies=["bitmap", "kvm"], cache=cache)
    b = evaluate(h, "this-machine", strategies=["bitmap", "kvm"], cache=cache)
    assert calls == ["bitmap", "kvm-attr"]
    assert (a["scan_measured_s"] == b["scan_measured_s"]).all()
    assert list(a["engine"]) == list(b["engine"])


# --- every option as its authors meant it ------------------------------------

import dataclasses                                                  # noqa: E402

from trackers.kexec import dpamt as dp                              # noqa: E402
from trackers.kexec import gmem                                     # noqa: E402
from trackers.kexec.host import TdView, from_workload               # noqa: E402
from trackers.kexec.kvm_walk import mirror_walk                     # noqa: E402
from trackers.kexec.platform import get_platform                   # noqa: E402
from trackers.kexec.states import NEEDS_RESET                       # noqa: E402


@pytest.fixture(scope="module")
def tiny_host():
    workloads = pytest.importorskip("trackers.workloads")
    return from_workload(workloads.scenario("tiny", 0))


def _with_leaked(h, leaked):
    """``h`` with ``leaked`` pages (taken from its guest pages) whose reclaim
    failed: still private, gone from KVM's guest set."""
    guest = subtract(h.guest, leaked)
    return dataclasses.replace(h, leaked=leaked, guest=guest, kvm_visible=guest,
                               td_pages=None)


def test_kvm_sept_misses_exactly_the_leaked_pages(tiny_host):
    s = STRATEGIES["kvm-sept"]
    row = s.assess(tiny_host, "spr-2s", emulate=False)
    assert row.pages_missed == 0 and row.pages_reset == tiny_host.private_pages
    assert row.added_bytes == 0 and row.engine == "none (modeled)"
    g0 = int(tiny_host.guest[0][0])
    leaked = normalize([g0, g0 + 100], [g0 + 3, g0 + 107])
    h = _with_leaked(tiny_host, leaked)
    row = s.assess(h, "spr-2s", emulate=False)
    assert row.pages_missed == count(leaked) == 10
    # the walk: every S-EPT page a mirror table plus one root per TD (3 TDs, 5 vCPUs)
    w = mirror_walk(tiny_host)
    sept = count(tiny_host.sept)
    assert (w.tables, w.roots, w.tds, w.vcpus) == (sept + 3, 3, 3, 5)
    assert row.scanned_bytes == ((sept + 3) * 4096 + sept * 2 * 64 + 8 * 64
                                 + count(tiny_host.control) * 8)
    assert row.scan_loads == (sept + 3) + 2 * sept + 2 * 8
    assert row.scan_entries == (sept + 3) * 512 + count(tiny_host.control)
    assert row.scan_lookups == 0
    # where directmap.c loads, the walk of tables shaped as the mirror S-EPT is timed:
    # its leaves are exactly the guest pages, its table bytes the model's
    from trackers import linux
    if linux.available()[0]:
        row = s.assess(tiny_host, "spr-2s", repeat=1)
        assert row.engine.startswith("C page-table walk") and row.scan_runs == 1
        assert row.notes.startswith("walks") and f"{(sept + 3) * 4096 / 2**20:,.1f} MiB" \
            in row.provenance
    # race: it finds a page while its mirror SPTE names it, never after the zap
    assert [st for st in sorted(NEEDS_RESET) if s.finds(st)] == ["attr_shared", "private"]


def test_kvm_attr_misses_exactly_control_sept_and_leaked(tiny_host):
    g0 = int(tiny_host.guest[0][0])
    h = _with_leaked(tiny_host, normalize([g0], [g0 + 5]))
    row = STRATEGIES["kvm-attr"].assess(h, "spr-2s", emulate=False)
    assert row.pages_missed == count(h.control) + count(h.sept) + 5
    assert row.pages_missed == 51 + 1286 + 5


def test_gmem_maple_finds_exactly_the_guest_private_pages(tiny_host):
    s = STRATEGIES["gmem-maple"]
    nodes = gmem.inodes(tiny_host)
    assert [n.pages for n in nodes] == [t.pages for t in tiny_host.tds]
    assert sum(n.private_pages for n in nodes) == count(tiny_host.guest)
    m = s.measure(tiny_host, repeat=1)
    assert count(m.found) == count(tiny_host.guest)
    assert overlap_pages(m.found, tiny_host.guest) == count(tiny_host.guest)
    assert m.lookups == count(tiny_host.guest)           # order-0 folios: one per page
    row = s.assess(tiny_host, "spr-2s", emulate=False)
    assert row.pages_missed == count(tiny_host.control) + count(tiny_host.sept)
    assert row.added_bytes == gmem.maple_bytes(nodes) < gmem.attr_xarray_bytes(nodes)
    # kvm_gmem_convert() stores the tree after the zap: every state but leaked
    assert all(s.finds(st) for st in NEEDS_RESET - {"leaked"}) and not s.finds("leaked")


def test_td_view_numbers_guest_memfd_offsets_in_gfn_order():
    t = TdView(gfns=([0, 1000], [100, 1100]), private_gfns=([50, 1000], [100, 1010]))
    assert t.pages == 200
    s, e = t.index_runs()
    assert s.tolist() == [50] and e.tolist() == [110]     # 50..99 then 100..109: one run


def test_dpamt_refcount_over_clear_and_misses_by_hand():
    # RAM [0, 8 * 512); a control page at 10, S-EPT pages 600..601, guest pages:
    # 4K ones at 1030..1040 and the whole 2 MiB block [1536, 2048); PAMT: a static
    # block 3000..3010 (TDMR list) and a Dynamic PAMT pair 3500..3502 alone in its range
    M = 512
    h = KexecHost(max_pfn=8 * M, ram=([0], [8 * M]),
                  private=([10, 600, 1030, 1536, 3000, 3500],
                           [11, 602, 1040, 2048, 3010, 3502]),
                  guest=([1030, 1536], [1040, 2048]), kvm_visible=([1030, 1536], [1040, 2048]),
                  sept=([600], [602]), control=([10], [11]),
                  pamt=([3000, 3500], [3010, 3502]), dynamic_pamt=([3500], [3502]))
    row = STRATEGIES["dpamt-refcount"].assess(h, "spr-2s")
    # counted ranges: blocks 0 (control), 1 (S-EPT), 2 (4K guest), 3 (the 2M block
    # mapped at 4K in mainline); reset = those 4 blocks + the listed PAMT (10 pages)
    assert row.pages_reset == 4 * M + 10
    assert row.pages_missed == 2                       # the lone PAMT pair
    assert row.pages_overcleared == 4 * M - (1 + 2 + 10 + 512)
    assert row.added_bytes == row.scanned_bytes == 8 * 4 == dp.refcount_array_bytes(8 * M)
    # with the 2 MiB guest block mapped at 2 MiB it takes no reference: missed
    r = dp.refcount_scan(h, 1.0)
    assert (r.missed, r.missed_2m, r.missed_dpamt) == (2 + 512, 512, 2)
    assert r.overcleared == 3 * M - (1 + 2 + 10)
    assert dp.refcount_array_bytes(1 << 28) == 2 << 20      # 2 MiB per TiB
    # the TDMR list names the static PAMT only: KVM's walks miss the lone pair too
    assert STRATEGIES["kvm-sept"].assess(h, "spr-2s", emulate=False).pages_missed == 2
    assert STRATEGIES["kvm-attr"].assess(h, "spr-2s", emulate=False).pages_missed == 2 + 1 + 2
    # a reference is held from tdx_pamt_get() to after the clear, and by leaked pages
    assert all(STRATEGIES["dpamt-refcount"].finds(st) for st in NEEDS_RESET)
    with pytest.raises(ValueError, match="guest_2m_fraction"):
        dp.guest_2m_blocks(h.guest, 1.5)


def test_upstream_refuse_refuses_on_every_host(tiny_host):
    s = STRATEGIES["refuse-6.18"]
    for h in (host(), host(tds_running=0), tiny_host):
        row = s.assess(h, "spr-2s")
        assert not row.kexec_allowed and row.pages_missed == 0
        assert "never initialised" in row.notes
    assert not any(s.finds(st) for st in NEEDS_RESET)


def test_mainline_downtime_range_brackets_its_base():
    h = host()
    plat = get_platform("spr-2s")
    row = STRATEGIES["mainline-7.2"].assess(h, plat)
    fast, slow = plat.bounds()
    assert row.downtime_low_s < row.downtime_s < row.downtime_high_s
    assert math.isclose(row.downtime_low_s, h.private_pages * fast.sys_disable_page_s)
    assert math.isclose(row.downtime_high_s, h.private_pages * slow.sys_disable_page_s)
    # the platform's fields are honoured: a replaced platform changes the row
    other = dataclasses.replace(plat, seamcall_s=1e-6, clear_bps_core=4096e6)
    assert math.isclose(STRATEGIES["mainline-7.2"].assess(h, other).downtime_s,
                        h.private_pages * 2e-6)
    # one CPU, whatever the CPUs at reset
    assert STRATEGIES["mainline-7.2"].assess(h, plat.with_cpus(64)).downtime_s == \
        row.downtime_s


# --- mainline since 7.2 in both module cases, and the fixes ------------------

def test_a_module_without_leaf_69_misses_every_private_page():
    h = host()
    row = STRATEGIES["mainline-7.2-old-module"].assess(h, "spr-2s")
    assert row.kexec_allowed and row.pages_reset == 0
    assert row.pages_missed == h.private_pages > 0
    assert not any(STRATEGIES["mainline-7.2-old-module"].finds(s) for s in NEEDS_RESET)
    assert all(STRATEGIES["mainline-7.2"].finds(s) for s in NEEDS_RESET)


def test_refusing_old_modules_refuses_and_the_fallback_is_the_bitmap_reset():
    h = host()
    assert not STRATEGIES["refuse-no-leaf69"].assess(h, "spr-2s").kexec_allowed
    fb = STRATEGIES["fallback-bitmap"].assess(h, "spr-2s", emulate=False)
    bm = STRATEGIES["bitmap"].assess(h, "spr-2s", emulate=False)
    for f in ("pages_reset", "pages_missed", "added_bytes", "downtime_s"):
        assert getattr(fb, f) == getattr(bm, f), f
    assert fb.pages_missed == 0


def test_the_parallel_reset_runs_on_every_cpu_of_the_platform():
    h = host()
    plat = get_platform("spr-2s")
    par = STRATEGIES["parallel-reset"].assess(h, plat, emulate=False)
    allc = STRATEGIES["bitmap"].assess(h, plat.with_cpus(plat.cpus_total), emulate=False)
    assert par.downtime_s == allc.downtime_s < STRATEGIES["bitmap"].assess(
        h, plat, emulate=False).downtime_s
    assert "cold boot" in par.notes


def test_the_fixes_share_the_bitmaps_build():
    h = host()
    cache = {}
    for name in ("bitmap", "fallback-bitmap", "parallel-reset"):
        STRATEGIES[name].assess(h, "spr-2s", emulate=False, cache=cache)
    assert len([m for m in cache.values() if isinstance(m, st.ScanMeasurement)]) == 1


def test_every_tdx_page_kind_is_covered_by_mainline_and_the_hooks_only():
    """1tib-next: Dynamic PAMT pairs and the module extensions' memory, beside
    the guest, S-EPT and control pages: TDH.SYS.DISABLE and the SEAMCALL hooks
    reset them; KVM's walks and the refcount scan do not."""
    from trackers.workloads import scenario
    h = from_workload(scenario("1tib-next"))
    assert count(h.ext) == -(-50_000_000 // 4096) and count(h.dynamic_pamt) > 0
    df = evaluate(h, "spr-2s", emulate=False).set_index("strategy")
    for name in ("mainline-7.2", "fallback-bitmap", "parallel-reset", "bitmap", "clear-all"):
        assert df.loc[name, "pages_missed"] == 0, name
    kinds = count(h.ext) + count(h.dynamic_pamt)
    assert df.loc["kvm-sept", "pages_missed"] == kinds
    assert df.loc["mainline-7.2-old-module", "pages_missed"] == h.private_pages
    assert df.loc["dpamt-refcount", "pages_missed"] > count(h.dynamic_pamt)


def test_every_allowed_row_has_a_downtime_range(tiny_host):
    df = evaluate(tiny_host, "spr-2s", emulate=False)
    ok = df[df["kexec_allowed"]]
    assert (ok["downtime_low_s"] <= ok["downtime_s"]).all()
    assert (ok["downtime_s"] <= ok["downtime_high_s"]).all()
    assert df[~df["kexec_allowed"]]["downtime_low_s"].isna().all()
    assert {"kvm-attr", "kvm-sept", "gmem-maple", "dpamt-refcount", "refuse-6.18",
            "mainline-7.2"} <= set(df["strategy"])


def test_tracker_names_map_to_their_strategies():
    from trackers.kexec.strategies import TRACKER_STRATEGIES, get_strategies
    assert strategy_for_tracker("kvm").name == "kvm-attr"
    assert set(TRACKER_STRATEGIES) == set(trackers.TRACKERS)
    assert [s.name for s in get_strategies(["kvm", "kvm-sept"])] == ["kvm-attr", "kvm-sept"]
    with pytest.raises(ValueError, match="no strategy scans tracker"):
        strategy_for_tracker("nope")


def test_memory_rows_show_every_structure_of_its_own():
    from trackers.report import config, memory
    from trackers.sets import host_set
    cfg = config.quick_config()
    n = 1 << 18                                                    # 1 GiB
    rows = memory.memory_rows(cfg, n)
    by = {r["tracker"]: r for r in rows}
    assert {"pte-softbit", "dpamt-refcount", "gmem-maple"} <= set(by)
    assert by["dpamt-refcount"]["added_bytes"] == (n // 512) * 4 == 2048
    starts, ends = host_set(cfg.sweep_shape, n, cfg.seed)
    assert by["gmem-maple"]["modeled_bytes"] == trackers.TRACKERS["maple"].estimate(
        starts, ends, n) == by["maple"]["modeled_bytes"]
    assert by["kvm"]["added_bytes"] == 0                     # kvm-attr adds nothing
    assert all(set(r) == set(by["bitmap"]) for r in rows)    # one set of columns


def test_pageflags_scan_reads_the_struct_pages_of_present_sections_only():
    """pfn_valid() skips the 128 MiB sections without RAM: on r7625-sparse
    (770 GiB of RAM up to a 7.1 TiB max_pfn) the scan reads the vmemmap of
    its present sections, not a struct page per PFN below max_pfn."""
    from trackers.kexec.host import from_workload
    from trackers.workloads import scenario
    from trackers.workloads.scenarios import r7625_host
    host = from_workload(scenario("r7625-sparse"))
    row = STRATEGIES["pageflags"].assess(host, "spr-2s", emulate=False)
    assert row.scanned_bytes == r7625_host().vmemmap_bytes < host.max_pfn * 64


@pytest.mark.parametrize("kernel_code", [False, True])
def test_a_built_structure_reports_what_its_history_left(kernel_code):
    # the hooks mark 100 and 4095, then unmark 4095: xarray-multi keeps the
    # L2 that 4095's xa_store_range grew (xas_max asks for 4096), 3 xa_nodes,
    # where a fresh build of {100} holds 2; the row counts the built tree
    if kernel_code and not trackers.KERNEL_TRACKERS:
        pytest.skip(f"kernel code unavailable: {trackers.KERNEL_UNAVAILABLE}")

    def feed(t):
        t.mark([100])
        t.mark([4095])
        t.unmark([4095])
    h = KexecHost(max_pfn=4096, ram=([0], [4096]), private=([100], [101]), feed=feed)
    cls = trackers.TRACKERS["xarray-multi"]
    m = TrackerStrategy(cls).measure(h, kernel_code=kernel_code, repeat=1)
    assert m.modeled_bytes == 3 * trackers.kernel.XA_NODE_BYTES == m.scanned_bytes
    assert cls.estimate([100], [101], 4096) == 2 * trackers.kernel.XA_NODE_BYTES
    assert m.provenance.endswith("memory() of the structure as the host's replayed events "
                                 "left it")
