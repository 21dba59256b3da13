"""Platform presets and calibration: structure only, never timed assertions."""

import argparse
import json
import math
import os

import pytest

from trackers import kernel, linux
from trackers.kexec import PLATFORMS, Platform, get_platform
from trackers.kexec import calibrate
from trackers.kexec.platform import (SCAN_COST_FIGURES, STRUCTURE_PAGE_TABLES,
                                     STRUCTURE_STRUCT_PAGES, platform_from_calibration,
                                     this_machine)
from trackers.kexec.strategy import ENGINE_EMULATION, ENGINE_PAGE_TABLES, kernel_engine
from trackers.linux import clear as clear_c


def test_presets():
    assert {"this-machine", "spr-2s"} <= set(PLATFORMS)
    spr = PLATFORMS["spr-2s"]
    assert spr.kind == "estimate" and spr.cpus_at_reset == 1
    # every figure of the estimate names its source
    for f in ("clear_bps_core", "clear_bps_all", "read_bps_core", "read_bps_all",
              "load_latency_s", "cpus_at_reset"):
        assert spr.sources[f]
    assert get_platform("spr-2s") is spr or get_platform("spr-2s") == spr
    with pytest.raises(ValueError, match="unknown platform"):
        get_platform("nope")


def test_time_model():
    p = Platform("t", clear_bps_core=1e9, clear_bps_all=3e9, read_bps_core=2e9,
                 read_bps_all=5e9, load_latency_s=100e-9, cpus_total=8)
    assert p.clear_s(1e9) == 1.0                       # one CPU at reset
    assert p.with_cpus(8).clear_s(3e9) == 1.0          # capped at all-core
    assert p.with_cpus(2).read_s(4e9) == 1.0
    assert math.isclose(p.chase_s(1e7), 1.0)
    with pytest.raises(ValueError, match="cpus_at_reset"):
        p.with_cpus(9)
    with pytest.raises(ValueError, match="clear_bps_core"):
        Platform("bad", 0, 1, 1, 1, 1e-9, 1)


def test_fallback_without_calibration(tmp_path):
    p = this_machine(tmp_path / "absent.json")
    assert p.kind == "fallback" and p.name == "this-machine"


def test_calibrate_writes_json(tmp_path, monkeypatch):
    out = tmp_path / "cal.json"
    args = argparse.Namespace(out=str(out), mib=16, chase_mib=16, repeat=1, cpus=2)
    # shrink the chase so the test stays fast; structure is what is checked
    orig = calibrate.measure

    def small(**kw):
        return orig(chase_steps=1 << 12, **kw)

    monkeypatch.setattr(calibrate, "measure", small)
    assert calibrate.run(args) == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "measured" and doc["cpus_total"] == 2 and doc["repeat"] == 1
    for key in ("read_bps_core", "read_bps_all", "write_bps_core", "write_bps_all",
                "clear_4k_bps_core", "clear_4k_bps_all", "clear_2m_bps_core",
                "clear_2m_bps_all", "load_latency_s"):
        assert doc["figures"][key] > 0
    for key in calibrate.FIGURES:
        assert len(doc["samples"][key]) == 1
        assert doc["spread"][key] == {"min": doc["samples"][key][0],
                                      "max": doc["samples"][key][0]}
    assert list(doc["spread"]) == list(doc["figures"]) == list(calibrate.FIGURES)
    assert list(doc["engines"]) == list(calibrate.FIGURES)
    assert set(doc["load"]) == {"loadavg_before", "loadavg_after", "others_cpu_share",
                                "steal_share", "busy"}
    assert isinstance(doc["warnings"], list)
    # the clear: the engine detection chose, on this CPU
    support = clear_c.detect()
    engine = clear_c.engine_for(support)
    assert doc["clear"]["engine"] == engine
    assert doc["clear"]["stand_in"] is (engine == clear_c.ENGINE_NT)
    assert doc["clear"]["movdir64b"] == {"cpuid": support.cpuid, "cpuinfo": support.cpuinfo,
                                         "present": support.present}
    assert {doc["engines"][k] for k in calibrate.CLEAR_FIGURES} == {engine}
    # the scan costs: one engine each, the structures behind it
    kernel = linux.available()[0]
    scan_engine = kernel_engine() if kernel else ENGINE_EMULATION
    suffix = "@kernel" if kernel else ""
    assert {doc["engines"][k] for k in SCAN_COST_FIGURES.values()} == {scan_engine}
    layouts = [STRUCTURE_STRUCT_PAGES, STRUCTURE_PAGE_TABLES] if kernel else []
    names = lambda *n: [x + suffix for x in n] + layouts          # noqa: E731
    assert {k: list(v) for k, v in doc["scan_costs"].items()} == {
        "scan_entry_s": names("bitmap", "xarray", "xarray-multi", "ida"),
        "scan_lookup_s": ["kvm" + suffix],
        "scan_run_s": names("bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm"),
        "scan_call_s": names("bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm"),
        **({"load_latency_s": [STRUCTURE_PAGE_TABLES]} if kernel else {})}
    assert {s: e for s, e in doc["scan_engines"].items() if s not in layouts} == {
        n + suffix: scan_engine for n in ("bitmap", "xarray", "xarray-multi", "ida", "maple",
                                          "kvm")}
    p = platform_from_calibration(doc)
    assert p.kind == "measured" and p.cpus_at_reset == 1 and p.cpus_total == 2
    assert p.clear_bps_core == doc["figures"]["clear_4k_bps_core"]
    assert p.clear_bps_all == doc["figures"]["clear_4k_bps_all"]
    assert p.read_bps_all == doc["figures"]["read_bps_all"]      # as measured
    assert set(doc["best"]) == set(doc["figures"])
    assert this_machine(out) == p
    assert not list(tmp_path.glob(".cal.json.*"))     # no temp file left behind


def test_calibrate_rejects_small_buffers():
    with pytest.raises(ValueError, match="16 MiB"):
        calibrate.measure(mib=1)


def _fake_doc(**figures):
    """A calibration document of the format before the clear and scan-cost
    figures, with the figures given (GB/s, ns) and three samples each."""
    fig = {"read_bps_core": 29.9e9, "read_bps_all": 3.73e9, "write_bps_core": 25e9,
           "write_bps_all": 33e9, "load_latency_s": 170e-9, **figures}
    samples = {k: [v * 0.9, v, v * 1.1] for k, v in fig.items()}
    load = {"loadavg_before": [0.1, 0.1, 0.1], "loadavg_after": [0.2, 0.1, 0.1],
            "others_cpu_share": 0.02, "steal_share": 0.0, "busy": False}
    return {"name": "this-machine", "kind": "measured", "measured_at": "now", "cpu": "CPU X",
            "cpus_total": 2, "repeat": 3, "figures": fig,
            "spread": {k: {"min": min(v), "max": max(v)} for k, v in samples.items()},
            "samples": samples, "load": load,
            "warnings": calibrate.warnings_for(fig, samples, load)}


SCAN_ENGINE = "kernel code v6.12.118 (userspace)"


def _full_doc(clear_engine=clear_c.ENGINE_NT, **figures):
    """A calibration document of the current format: _fake_doc's figures, the
    clear's and the scan costs', their engines and per-structure samples."""
    doc = _fake_doc(**{"clear_4k_bps_core": 9e9, "clear_4k_bps_all": 14e9,
                       "clear_2m_bps_core": 20e9, "clear_2m_bps_all": 30e9,
                       "scan_entry_s": 3e-9, "scan_run_s": 40e-9, "scan_lookup_s": 35e-9,
                       "scan_call_s": 20e-6, **figures})
    stand_in = clear_engine == clear_c.ENGINE_NT
    support = clear_c.Movdir64b(cpuid=not stand_in, cpuinfo=not stand_in)
    doc["figures"] = {k: doc["figures"][k] for k in calibrate.FIGURES}
    doc["engines"] = {**calibrate.ENGINES, **{k: clear_engine for k in calibrate.CLEAR_FIGURES},
                      **{k: SCAN_ENGINE for k in SCAN_COST_FIGURES.values()}}
    doc["clear"] = {"movdir64b": {"cpuid": support.cpuid, "cpuinfo": support.cpuinfo,
                                  "present": support.present},
                    "detection": support.describe(), "targets": dict(clear_c.TARGETS),
                    "engine": clear_engine, "stand_in": stand_in, "reason": ""}
    doc["scan_costs"] = {"scan_entry_s": {"bitmap@kernel": [1e-9, 1.1e-9, 1.2e-9],
                                          "xarray@kernel": [5e-9, 5.5e-9, 6e-9]},
                         "scan_run_s": {"bitmap@kernel": [50e-9, 55e-9, 60e-9],
                                        "xarray@kernel": [20e-9, 25e-9, 30e-9],
                                        "maple@kernel": [40e-9, 45e-9, 50e-9]},
                         "scan_lookup_s": {"kvm@kernel": [30e-9, 35e-9, 40e-9]},
                         "scan_call_s": {"bitmap@kernel": [20e-6, 22e-6, 30e-6]},
                         "load_latency_s": {STRUCTURE_PAGE_TABLES: [400e-9, 500e-9, 600e-9]}}
    doc["scan_engines"] = {"bitmap@kernel": SCAN_ENGINE, "xarray@kernel": SCAN_ENGINE,
                           "maple@kernel": SCAN_ENGINE, "kvm@kernel": SCAN_ENGINE,
                           STRUCTURE_PAGE_TABLES: ENGINE_PAGE_TABLES}
    return doc


def test_calibrate_prints_the_measurement_not_a_substitute(tmp_path, monkeypatch, capsys):
    """All-core read 3.73 GB/s under one-core 29.9: printed as measured, with
    its spread and engine, and a warning -- never the one-core figure in its
    place.  The clear says it is a stand-in; each scan cost lists its structures."""
    monkeypatch.setattr(calibrate, "measure", lambda **kw: _full_doc())
    args = argparse.Namespace(out=tmp_path / "cal.json", mib=16, chase_mib=16, repeat=3, cpus=2)
    assert calibrate.run(args) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    nt = clear_c.ENGINE_NT
    assert lines[:26] == [
        "[measured] this machine (CPU X), median (min\u2013max) of 3 runs; all cores = 2 CPUs:",
        "  read, one core                29.9 GB/s (26.9\u201332.9)   numba: sum of uint64, one "
        "core",
        "  read, all cores                3.7 GB/s (3.4\u20134.1)     numba: sum of uint64, one "
        "slice per thread",
        "  write, one core               25.0 GB/s (22.5\u201327.5)   memset (ndarray.fill)",
        "  write, all cores              33.0 GB/s (29.7\u201336.3)   numba: slice assignment, "
        "one slice per thread",
        f"  clear 4 KiB, one core          9.0 GB/s (8.1\u20139.9)     {nt}",
        f"  clear 4 KiB, all cores        14.0 GB/s (12.6\u201315.4)   {nt}",
        f"  clear 2 MiB, one core         20.0 GB/s (18.0\u201322.0)   {nt}",
        f"  clear 2 MiB, all cores        30.0 GB/s (27.0\u201333.0)   {nt}",
        "  load latency                   170 ns   (153\u2013187)     numba: pointer chase "
        "around one Sattolo cycle",
        "    page tables (directmap.c)    500 ns   (400\u2013600)",
        f"  scan, per entry                3.0 ns   (2.7\u20133.3)     {SCAN_ENGINE}",
        "    bitmap@kernel                1.1 ns   (1.0\u20131.2)",
        "    xarray@kernel                5.5 ns   (5.0\u20136.0)",
        f"  scan, per run                   40 ns   (36\u201344)       {SCAN_ENGINE}",
        "    bitmap@kernel                 55 ns   (50\u201360)",
        "    xarray@kernel                 25 ns   (20\u201330)",
        "    maple@kernel                  45 ns   (40\u201350)",
        f"  scan, per lookup                35 ns   (32\u201339)       {SCAN_ENGINE}",
        "    kvm@kernel                    35 ns   (30\u201340)",
        f"  scan, per call                  20 \u00b5s   (18\u201322)       {SCAN_ENGINE}",
        "    bitmap@kernel                 22 \u00b5s   (20\u201330)",
        "  clear: this CPU has no MOVDIR64B (CPUID.(EAX=7,ECX=0):ECX[28]: no; /proc/cpuinfo "
        f"'movdir64b': no): timed with {nt}",
        "  machine load: 1-minute load average 0.10 -> 0.20; other tasks used 2% of the CPU "
        "time during the run (steal 0%)",
        f"[measured] written to {tmp_path / 'cal.json'}"]
    assert "29.9 GB/s all-core" not in out
    assert err.splitlines() == [
        "tdx-trackers calibrate: warning: all-core read (3.7 GB/s) measured below one-core "
        "(29.9 GB/s): other tasks held CPUs during the run"]


def test_an_old_calibration_file_loads_with_assumed_costs_and_the_memset_clear():
    """A file from before the clear and scan-cost figures: the platform clears
    at its streaming write and keeps the ASSUMED scan costs, and says so."""
    p = platform_from_calibration(_fake_doc())
    assert p.kind == "measured"
    assert (p.clear_bps_core, p.clear_bps_all) == (25e9, 33e9)
    assert "streaming write (memset), NOT MOVDIR64B (the calibration file has no clear " \
           "figures (an older format)" in p.sources["clear_bps_core"]
    assert (p.entry_s, p.run_s, p.lookup_s) == (
        kernel.SCAN_ENTRY_S, kernel.SCAN_RUN_S, kernel.SCAN_LOOKUP_S)
    for f in ("entry_s", "run_s", "lookup_s"):
        assert p.sources[f].startswith("ASSUMED ")
        assert p.sources[f].endswith("; the calibration file has no measured scan costs (an "
                                     "older format): run `tdx-trackers calibrate` again to "
                                     "measure them")
    assert p.measured == {}
    assert {"entry_s", "run_s", "lookup_s"} <= set(p.assumed_ranges())
    assert p.scan_cost_ranges() == {"entry_s": kernel.SCAN_ENTRY_S_RANGE,
                                    "run_s": kernel.SCAN_RUN_S_RANGE,
                                    "lookup_s": kernel.SCAN_LOOKUP_S_RANGE}


def test_this_machine_models_scans_from_measured_costs_only():
    doc = _full_doc()
    p = platform_from_calibration(doc)
    assert (p.entry_s, p.run_s, p.lookup_s, p.call_s) == (3e-9, 40e-9, 35e-9, 20e-6)
    for f, key in SCAN_COST_FIGURES.items():
        lo, hi = doc["spread"][key]["min"], doc["spread"][key]["max"]
        assert p.measured[f][:2] == (lo, hi)
        assert p.scan_cost_ranges()[f] == (lo, hi)
        assert p.sources[f].startswith("measured by `tdx-trackers calibrate` at now")
        assert SCAN_ENGINE in p.sources[f] and "ASSUMED" not in p.sources[f]
    assert p.sources["run_s"].split(": ", 1)[1] == (
        f"40 ns per run (36-44 over the rounds), median over the structures, {SCAN_ENGINE} "
        f"(trackers/kexec/scan_costs.py)")
    # measured: no longer among the assumed fields (sensitivity, bounds)
    assert not {"entry_s", "run_s", "lookup_s"} & set(p.assumed_ranges())
    fast, slow = p.bounds()
    assert fast.run_s == slow.run_s == p.run_s
    assert p.scan_s(2e3, 0, 1000, 100, 10) == pytest.approx(
        20e-6 + 1000 * 3e-9 + 100 * 40e-9 + 10 * 35e-9)
    lo, hi = p.scan_s_range(2e3, 0, 1000, 100, 10)
    assert lo == pytest.approx(18e-6 + 1000 * 2.7e-9 + 100 * 36e-9 + 10 * 31.5e-9)
    assert hi == pytest.approx(22e-6 + 1000 * 3.3e-9 + 100 * 44e-9 + 10 * 38.5e-9)
    assert "ns/lookup, 20 us/call (measured)" in p.describe()
    # the presets keep the ASSUMED costs
    spr = get_platform("spr-2s")
    assert all(spr.sources[f].startswith("ASSUMED") for f in ("entry_s", "run_s", "lookup_s"))
    assert {"entry_s", "run_s", "lookup_s"} <= set(spr.assumed_ranges())


@pytest.mark.parametrize("engine, how", [
    (clear_c.ENGINE_NT, f"{clear_c.ENGINE_NT}: NOT MOVDIR64B, which this CPU lacks"),
    (clear_c.ENGINE_MOVDIR64B, "MOVDIR64B"),
])
def test_this_machine_clears_at_the_4k_clear_and_names_its_engine(engine, how):
    p = platform_from_calibration(_full_doc(clear_engine=engine))
    assert (p.clear_bps_core, p.clear_bps_all) == (9e9, 14e9)
    assert p.sources["clear_bps_core"] == p.sources["clear_bps_all"] == (
        "measured by `tdx-trackers calibrate` at now, median of 3 repeats; 4 KiB targets (a "
        f"page, then MFENCE, as tdx_quirk_reset_page()), {how}")


def test_a_disturbed_scan_cost_keeps_the_assumed_costs():
    doc = _full_doc(scan_run_s=-2e-9)
    p = platform_from_calibration(doc)
    assert (p.entry_s, p.run_s, p.lookup_s) == (
        kernel.SCAN_ENTRY_S, kernel.SCAN_RUN_S, kernel.SCAN_LOOKUP_S)
    assert p.sources["run_s"].endswith("; the calibration measured scan_run_s -2.00 ns, not a "
                                       "cost (other tasks disturbed it): calibrate again on "
                                       "a quiet machine")
    assert "scan, per run measured -2.00 ns, not a cost" in " ".join(doc["warnings"])


def test_each_structure_models_with_its_own_costs_where_it_has_them():
    """for_structure: field by field the structure's median and min-max, the
    generic figure elsewhere; the page tables' own load cost in place of the
    latency; a structure calibrate did not measure is the generic platform."""
    p = platform_from_calibration(_full_doc())
    assert set(p.structure_costs) == {"bitmap@kernel", "xarray@kernel", "maple@kernel",
                                      "kvm@kernel", STRUCTURE_PAGE_TABLES}
    bitmap = p.for_structure("bitmap@kernel")
    assert (bitmap.entry_s, bitmap.run_s, bitmap.lookup_s, bitmap.call_s) == (
        1.1e-9, 55e-9, 35e-9, 22e-6)
    assert bitmap.measured["run_s"][:2] == (50e-9, 60e-9)
    assert bitmap.sources["run_s"] == (
        f"measured by `tdx-trackers calibrate` at now, median of 3 repeats: 55 ns per run of "
        f"bitmap@kernel's scan (50-60 over the rounds), {SCAN_ENGINE} "
        f"(trackers/kexec/scan_costs.py)")
    assert bitmap.costs_label() == "bitmap@kernel (entry, run, call)"
    assert bitmap.scan_s(0, 0, 1000, 100) == pytest.approx(22e-6 + 1000 * 1.1e-9 + 100 * 55e-9)
    maple = p.for_structure("maple@kernel")
    assert (maple.entry_s, maple.run_s, maple.call_s) == (3e-9, 45e-9, 20e-6)
    assert maple.costs_label() == "maple@kernel (run); generic entry"
    tables = p.for_structure(STRUCTURE_PAGE_TABLES)
    assert tables.load_latency_s == 500e-9 and p.load_latency_s == 170e-9
    assert tables.scan_cost_ranges()["load_latency_s"] == (400e-9, 600e-9)
    assert "load_latency_s" not in p.scan_cost_ranges()
    assert tables.costs_label() == (f"{STRUCTURE_PAGE_TABLES} (load); generic entry, run")
    assert ENGINE_PAGE_TABLES in tables.sources["load_latency_s"]
    for absent in (None, "roaring", "ida@kernel"):
        assert p.for_structure(absent) is p and p.costs_label() == "generic"
    # the presets have no structures: one cost per entry and per run
    spr = get_platform("spr-2s")
    assert spr.structure_costs == {} and spr.for_structure("bitmap@kernel") is spr
    assert spr.call_s == 0


def test_a_structure_cost_that_is_no_cost_falls_back_to_the_generic_one():
    doc = _full_doc()
    doc["scan_costs"]["scan_run_s"]["xarray@kernel"] = [-3e-9, -1e-9, 2e-9]
    p = platform_from_calibration(doc)
    assert p.for_structure("xarray@kernel").run_s == 40e-9
    assert p.for_structure("xarray@kernel").entry_s == 5.5e-9


def test_a_calibration_without_the_call_cost_models_none():
    doc = _full_doc()
    for k in ("figures", "spread", "samples", "engines"):
        doc[k].pop("scan_call_s")
    p = platform_from_calibration(doc)
    assert p.call_s == 0 and "call_s" not in p.measured
    assert p.sources["call_s"].endswith("; the calibration file has no per-call figure (an "
                                        "older format)")
    assert p.run_s == 40e-9


def test_a_round_below_zero_is_no_lower_bound():
    doc = _full_doc()
    doc["spread"]["scan_entry_s"]["min"] = -1e-9
    p = platform_from_calibration(doc)
    assert p.measured["entry_s"][:2] == (3e-9, doc["spread"]["scan_entry_s"]["max"])


def test_the_clear_never_runs_movdir64b_the_cpu_lacks():
    """Detection injected both ways: absent -> the stand-in, recorded as one;
    present on a CPU without it -> clear.c refuses (ENOSYS), nothing runs."""
    import errno

    import numpy as np
    a = np.ones((8 << 20) // 8, np.uint64)
    absent = clear_c.Movdir64b(cpuid=False, cpuinfo=False)
    samples, record = calibrate.measure_clear(a, 2, 1, movdir64b=absent)
    assert list(samples) == list(calibrate.CLEAR_FIGURES)
    assert record["engine"] == clear_c.ENGINE_NT and record["stand_in"] is True
    assert record["movdir64b"] == {"cpuid": False, "cpuinfo": False, "present": False}
    if not clear_c.detect().present:
        liar = clear_c.Movdir64b(cpuid=True, cpuinfo=True)
        a.fill(1)
        with pytest.raises(OSError) as exc:
            calibrate.measure_clear(a, 1, 1, movdir64b=liar)
        assert exc.value.errno == errno.ENOSYS
        assert (a == 1).all()


def test_without_the_clear_library_the_platform_clears_at_memset(monkeypatch):
    from trackers.linux.clear import ClearCodeUnavailable

    def no_compiler():
        raise ClearCodeUnavailable("no C compiler (gcc or cc) on PATH")

    monkeypatch.setattr(clear_c, "clear_library", no_compiler)
    doc = calibrate.measure(mib=16, chase_mib=16, chase_steps=1 << 12, repeat=1)
    assert not set(calibrate.CLEAR_FIGURES) & set(doc["figures"])
    assert doc["clear"]["engine"] is None
    assert doc["clear"]["reason"] == "not timed: no C compiler (gcc or cc) on PATH"
    assert doc["warnings"][0] == ("the clear was not timed: no C compiler (gcc or cc) on PATH: "
                                  "the platform clears at the streaming-write rate")
    assert "  clear: not timed: no C compiler (gcc or cc) on PATH" in \
        calibrate.format_figures(doc).splitlines()
    p = platform_from_calibration(doc)
    assert p.clear_bps_core == doc["figures"]["write_bps_core"]
    assert p.sources["clear_bps_core"].endswith(
        "; streaming write (memset), NOT MOVDIR64B (not timed: no C compiler (gcc or cc) "
        "on PATH)")


def test_calibrate_warns_when_the_machine_was_busy(tmp_path, monkeypatch, capsys):
    """Another job on the machine: the JSON records the load, stderr says so."""
    hz = os.sysconf("SC_CLK_TCK")
    cpus = os.cpu_count()
    snaps = iter([{"loadavg": [1.9, 1.0, 0.5], "jiffies": (0, 0), "self_cpu_s": 0.0,
                   "wall_s": 0.0},
                  {"loadavg": [2.3, 1.1, 0.5], "jiffies": (int(0.6 * cpus * hz), 0),
                   "self_cpu_s": 0.0, "wall_s": 1.0}])
    monkeypatch.setattr(calibrate, "load_snapshot", lambda: next(snaps))
    out = tmp_path / "cal.json"
    args = argparse.Namespace(out=out, mib=16, chase_mib=16, repeat=1, cpus=1)
    orig = calibrate.measure
    monkeypatch.setattr(calibrate, "measure", lambda **kw: orig(chase_steps=1 << 12, **kw))
    assert calibrate.run(args) == 0
    doc = json.loads(out.read_text())
    assert doc["load"]["busy"] is True
    assert doc["load"]["others_cpu_share"] == pytest.approx(0.6)
    assert doc["load"]["loadavg_before"] == [1.9, 1.0, 0.5]
    busy = ("the machine was busy (other tasks used 60% of its CPU time during the run): the "
            "figures may be off by several times; calibrate again on a quiet machine")
    assert doc["warnings"][0] == busy
    assert capsys.readouterr().err.splitlines()[0] == \
        f"tdx-trackers calibrate: warning: {busy}"


def test_calibrate_warns_when_repeats_spread():
    fig = {k: 1.0 for k in calibrate.FIGURES}
    samples = {k: [1.0, 1.0, 1.0] for k in calibrate.FIGURES}
    samples["write_bps_all"] = [0.7, 1.0, 1.1]
    load = {"busy": False}
    assert calibrate.warnings_for(fig, samples, load) == [
        "write, all cores varied by 40% of its median over 3 repeats (over 25%): the machine "
        "was not steady"]


def test_calibrate_uses_the_cpus_asked_and_restores_numba_threads(monkeypatch):
    import numba
    threads = numba.get_num_threads()
    seen = []
    real = numba.set_num_threads
    monkeypatch.setattr(numba, "set_num_threads", lambda n: (seen.append(n), real(n)))
    doc = calibrate.measure(mib=16, chase_mib=16, chase_steps=1 << 12, repeat=1, cpus=1)
    assert doc["cpus_total"] == 1
    assert seen == [1, threads] and numba.get_num_threads() == threads


def _gufunc_ir(kernel, callees, *args):
    """LLVM IR of the prange bodies of ``kernel``, compiled afresh (cached code
    cannot be inspected) with fresh copies of the njit functions it calls."""
    import re
    import types

    from numba import njit
    f = kernel.py_func
    scope = dict(f.__globals__)
    for name in callees:
        scope[name] = njit(scope[name].py_func)
    fresh = njit(parallel=True)(types.FunctionType(f.__code__, scope, f.__name__))
    fresh(*args)
    ir = fresh.overloads[fresh.signatures[0]].library.get_llvm_str()
    return [fn for fn in re.split(r"\n(?=define )", ir)
            if fn.startswith("define") and "parfor_gufunc" in fn.split("(")[0]]


def test_all_core_read_loads_memory_in_vectors():
    """The all-core read measured 2.6-3.9 GB/s against 30-37 GB/s on one core:
    each thread's loop indexed ``a[i]`` for i from a computed ``lo``, so every
    load kept numba's negative-index wrap-around and LLVM left the loop scalar.
    Its prange body must load the buffer in vectors, as the one-core loop does."""
    import re

    import numpy as np
    a = np.ones(1 << 12, np.uint64)
    sums = np.zeros(2, np.uint64)
    (body,) = _gufunc_ir(calibrate._read_sum_parallel, ["_read_sum"], a, sums)
    assert re.search(r"load <\d+ x i64>", body)
    assert int(sums.sum()) == a.size


def test_calibration_is_used_as_measured(tmp_path):
    """No silent substitution: an all-core read below the one-core read stays
    what was measured, and caps every CPU count."""
    from trackers.kexec.platform import platform_from_calibration
    doc = {"cpus_total": 2, "figures": {"write_bps_core": 8e9, "write_bps_all": 6e9,
                                        "read_bps_core": 30e9, "read_bps_all": 4e9,
                                        "load_latency_s": 1e-7}}
    p = platform_from_calibration(doc)
    assert p.read_bps_all == 4e9 and p.clear_bps_all == 6e9
    assert p.read_bps(1) == 4e9 and p.read_bps(2) == 4e9


@pytest.mark.parametrize("content", ["{not json", '{"figures": {}}'])
def test_unreadable_calibration_names_the_file(tmp_path, content):
    from trackers.kexec.platform import this_machine
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="calibration file .*calibration.json.*tdx-trackers calibrate"):
        this_machine(path)


def test_calibration_path_through_a_file_names_the_file(tmp_path):
    from trackers.kexec.platform import this_machine
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="calibration file .*f/calibration.json"):
        this_machine(tmp_path / "f" / "calibration.json")


def test_scan_model_adds_entries_runs_and_lookups():
    """scan = max(streaming read, entries + runs + lookups work) + dependent loads;
    the ASSUMED per-entry, per-run and per-lookup costs come from trackers.kernel."""
    p = Platform("t", clear_bps_core=1e9, clear_bps_all=3e9, read_bps_core=2e9,
                 read_bps_all=5e9, load_latency_s=100e-9, cpus_total=8,
                 entry_s=1e-9, run_s=10e-9, lookup_s=20e-9)
    assert p.work_s(1000, 100, 10) == pytest.approx(1000e-9 + 1000e-9 + 200e-9)
    # bytes dominate: the work hides under the stream
    assert p.scan_s(2e6, 0, 1000, 100, 10) == pytest.approx(1e-3)
    # work dominates: the stream hides under it; loads add either way
    assert p.scan_s(2e3, 10, 1000, 100, 10) == pytest.approx(2.2e-6 + 1e-6)
    assert p.scan_s(2e3, 10) == pytest.approx(1e-6 + 1e-6)       # the old two terms
    assert p.with_cpus(2).work_s(1000, 100, 10) == pytest.approx(2.2e-6 / 2)
    lo, hi = p.scan_s_range(2e3, 10, 1000, 100, 10)
    assert lo == pytest.approx(1000 * kernel.SCAN_ENTRY_S_RANGE[0]
                               + 100 * kernel.SCAN_RUN_S_RANGE[0]
                               + 10 * kernel.SCAN_LOOKUP_S_RANGE[0] + 1e-6)
    assert hi == pytest.approx(1000 * kernel.SCAN_ENTRY_S_RANGE[1]
                               + 100 * kernel.SCAN_RUN_S_RANGE[1]
                               + 10 * kernel.SCAN_LOOKUP_S_RANGE[1] + 1e-6)
    plat = PLATFORMS["spr-2s"]                  # a preset: ASSUMED (this-machine measures)
    assert (plat.entry_s, plat.run_s, plat.lookup_s) == (
        kernel.SCAN_ENTRY_S, kernel.SCAN_RUN_S, kernel.SCAN_LOOKUP_S)
    assert all("ASSUMED" in plat.sources[f] for f in ("entry_s", "run_s", "lookup_s"))
    for cost in ("SCAN_ENTRY_S", "SCAN_RUN_S", "SCAN_LOOKUP_S"):
        low, high = getattr(kernel, cost + "_RANGE")
        assert low < getattr(kernel, cost) < high
    with pytest.raises(ValueError, match="run_s"):
        Platform("bad", 1, 1, 1, 1, 1e-9, 1, run_s=0)


def test_assumed_ranges_name_every_assumed_field_and_bound_the_model():
    import dataclasses

    from trackers.kexec.platform import ASSUMED_RANGES, SCAN_COST_RANGES, get_platform
    assert set(SCAN_COST_RANGES) | {"seamcall_s", "vcpu_kick_s"} == set(ASSUMED_RANGES)
    spr = get_platform("spr-2s")
    ranges = spr.assumed_ranges()
    assert {"clear_bps_core", "read_bps_core", "load_latency_s"} <= set(ranges)
    for f, (lo, hi, src) in ranges.items():
        base = getattr(spr, f)
        assert lo <= base <= hi and src, f
        dataclasses.replace(spr, **{f: lo})                # every end is a valid platform
    fast, slow = spr.bounds()
    assert fast.seamcall_s == ranges["seamcall_s"][0]
    assert fast.clear_bps_core == ranges["clear_bps_core"][1]
    assert fast.sys_disable_bps > spr.sys_disable_bps > slow.sys_disable_bps
    assert slow.entry_s == ranges["entry_s"][1] and fast.entry_s == ranges["entry_s"][0]
    args = (1 << 30, 1000, 1 << 20, 500, 100)
    assert fast.scan_s(*args) < spr.scan_s(*args) < slow.scan_s(*args)
    assert fast.clear_s(1 << 30) < spr.clear_s(1 << 30) < slow.clear_s(1 << 30)


def test_bad_assumed_ranges_are_refused():
    import dataclasses

    from trackers.kexec.platform import get_platform
    spr = get_platform("spr-2s")
    with pytest.raises(ValueError, match="not a rate or cost"):
        dataclasses.replace(spr, assumed={"cpus_total": (1, 2, "x")})
    with pytest.raises(ValueError, match="0 < low <= high"):
        dataclasses.replace(spr, assumed={"entry_s": (2e-9, 1e-9, "x")})
    with pytest.raises(ValueError, match="measured range of run_s must satisfy 0 < low"):
        dataclasses.replace(spr, measured={"run_s": (0.0, 1e-9, "x")})
    with pytest.raises(ValueError, match="measured field 'cpus_total' is not a rate"):
        dataclasses.replace(spr, measured={"cpus_total": (1, 2, "x")})
    with pytest.raises(ValueError, match="seamcall_s must be > 0"):
        dataclasses.replace(spr, seamcall_s=0)


def test_a_calibration_from_before_directmap_c_keeps_its_page_table_costs():
    """A file that keys the page tables' costs by their former name (the walk
    was pages.c's) gives them to the structure under its name now."""
    doc = _full_doc()
    doc["scan_costs"]["load_latency_s"] = {"page tables (pages.c)": [400e-9, 500e-9, 600e-9]}
    own = platform_from_calibration(doc).structure_costs[STRUCTURE_PAGE_TABLES]
    assert own["load_latency_s"][:3] == (500e-9, 400e-9, 600e-9)
