"""The scan figure's note (trackers/report/scan.py model_note): where the model
misses its measurement by more than 2x, the term it lacks, from the facts of
the point.  Exact sentences; no timing."""

import math

import numpy as np

from trackers.kexec import Platform
from trackers.kexec.platform import STRUCTURE_PAGE_TABLES
from trackers.kexec.strategy import (ENGINE_EMULATION, ENGINE_PAGE_TABLES, ScanMeasurement,
                                     kernel_engine)
from trackers.report.scan import model_note

EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64))
LLC = 32 << 20


def _platform(**kw) -> Platform:
    return Platform("this-machine", 10e9, 20e9, 20e9, 40e9, 200e-9, 2, kind="measured",
                    entry_s=1e-9, run_s=10e-9, lookup_s=20e-9, call_s=20e-6, **kw)


def _scan(engine, seconds=1e-3, seconds_min=None, **counts) -> ScanMeasurement:
    return ScanMeasurement(engine=engine, found=EMPTY, provenance="", max_pfn=1 << 20,
                           seconds=seconds, seconds_min=seconds_min or seconds,
                           seconds_max=seconds, repeat=5, **counts)


def test_within_2x_says_nothing():
    assert model_note(_scan(kernel_engine()), _platform(), 1.9, LLC) == ""
    assert model_note(_scan(kernel_engine()), _platform(), 0.51, LLC) == ""


def test_a_structure_in_the_cache_read_repeatedly():
    m = _scan(ENGINE_PAGE_TABLES, scanned_bytes=8 << 20, scan_loads=2053, entries=1 << 18)
    plat = _platform(structure_costs={STRUCTURE_PAGE_TABLES: {
        "load_latency_s": (500e-9, 400e-9, 600e-9, "measured")}}).for_structure(
        STRUCTURE_PAGE_TABLES)
    assert model_note(m, plat, 2.3, LLC) == (
        "model 2.3x the measurement, largest term dependent loads (2,053 x 500 ns); what it "
        "reads fits this machine's 32 MiB cache: the repeated scans read cache, where the "
        "model charges DRAM")


def test_contention_is_named_with_the_share_measured():
    m = _scan(kernel_engine(), seconds=4e-3, seconds_min=2e-3, extents=100_000)
    assert model_note(m, _platform(), 0.3, LLC, others_cpu_share=0.6) == (
        "model 0.3x the measurement, largest term runs (100,000 x 10 ns), other tasks 60% of "
        "the CPU time meanwhile, model/fastest run 0.6; no costs of its own structure "
        "measured (calibrate): modeled with the median over the structures; contention: "
        "other tasks ran while it was timed (others_cpu_share), a term the model of a scan "
        "alone lacks")


def test_an_emulation_and_a_busy_calibration():
    m = _scan(ENGINE_EMULATION, scanned_bytes=1 << 30)
    busy = {"busy": True, "others_cpu_share": 0.7, "loadavg_before": [3.0, 3.0, 3.0]}
    note = model_note(m, _platform(calibration_load=busy), 0.2, LLC, math.nan)
    assert note == (
        "model 0.2x the measurement, largest term streaming read (1,024 MiB at 20.0 GB/s); the "
        "Python/numba emulation's scan, not the kernel's code the model's costs are of; "
        "calibrate measured its rates and latency while other tasks took 70% of the CPU time: "
        "calibrate again on a quiet machine")


def test_an_all_core_read_below_the_one_core_read_caps_the_model():
    plat = Platform("this-machine", 10e9, 20e9, 20e9, 8e9, 200e-9, 2, kind="measured",
                    structure_costs={"struct pages (pages.c)": {
                        "entry_s": (1e-9, 1e-9, 1e-9, "measured")}}).for_structure(
        "struct pages (pages.c)")
    m = _scan("C struct-page scan (trackers/linux/pages.c)", scanned_bytes=1 << 30)
    assert model_note(m, plat, 2.5, LLC) == (
        "model 2.5x the measurement, largest term streaming read (1,024 MiB at 8.0 GB/s); the "
        "calibration's all-core read (8.0 GB/s) measured below its one-core read (20.0 GB/s) "
        "caps the read rate: other tasks held CPUs while calibrate ran")
