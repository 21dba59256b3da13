"""The scan-cost microbenchmarks (trackers/kexec/scan_costs.py): what each pair
differs in, the engines and structures recorded.  Facts only; no timing."""

import pytest

from trackers import linux
from trackers.kexec import scan_costs
from trackers.kexec.platform import STRUCTURE_PAGE_TABLES, STRUCTURE_STRUCT_PAGES
from trackers.kexec.strategy import (ENGINE_EMULATION, ENGINE_PAGE_TABLES, ENGINE_STRUCT_PAGES,
                                     kernel_engine)

KERNEL = pytest.mark.skipif(not linux.available()[0], reason="kernel code not built here")

#: the random quarter of [0, 2^17) the run pairs' B marks (seed 0)
RUNS = 24648
#: entries, runs, lookups and loads of A and B of every pair, as the report
#: counts them: the kernel's structures and the emulations' are the same (the
#: differential tests)
COUNTS = {
    "entry_s bitmap": {"entries": [65536, 1048576], "runs": [16, 16], "lookups": [0, 0],
                       "loads": [0, 0]},
    "entry_s xarray": {"entries": [76104, 300744], "runs": [16, 16], "lookups": [0, 0],
                       "loads": [1057, 4177]},
    "entry_s xarray-multi": {"entries": [74952, 148680], "runs": [1024, 1024],
                             "lookups": [0, 0], "loads": [1041, 2065]},
    "entry_s ida": {"entries": [2248, 17896], "runs": [16, 16], "lookups": [0, 0],
                    "loads": [81, 1045]},
    "run_s bitmap": {"entries": [2048, 2048], "runs": [1, RUNS], "lookups": [0, 0],
                     "loads": [0, 0]},
    "run_s xarray": {"entries": [149832, 149832], "runs": [1, RUNS], "lookups": [0, 0],
                     "loads": [2081, 2081]},
    "run_s xarray-multi": {"entries": [72, 149832], "runs": [1, RUNS], "lookups": [0, 0],
                           "loads": [1, 2081]},
    "run_s ida": {"entries": [2264, 2264], "runs": [1, RUNS], "lookups": [0, 0],
                  "loads": [131, 131]},
    "run_s maple": {"entries": [32, 105696], "runs": [1, RUNS], "lookups": [0, 0],
                    "loads": [1, 3303]},
    "run_s kvm": {"entries": [299664, 299664], "runs": [1, RUNS], "lookups": [131072, 32764],
                  "loads": [4162, 4162]},
}
#: the C layouts' pairs, timed where the kernel code is
LAYOUT_COUNTS = {
    f"entry_s {STRUCTURE_STRUCT_PAGES}": {"entries": [4096, 65536], "runs": [16, 16],
                                          "lookups": [0, 0], "loads": [0, 0]},
    f"entry_s {STRUCTURE_PAGE_TABLES}": {"entries": [16896, 532992], "runs": [16, 16],
                                         "lookups": [0, 0], "loads": [33, 1041]},
    f"run_s {STRUCTURE_STRUCT_PAGES}": {"entries": [131072, 131072], "runs": [1, RUNS],
                                        "lookups": [0, 0], "loads": [0, 0]},
    f"run_s {STRUCTURE_PAGE_TABLES}": {"entries": [132096, 132096], "runs": [1, RUNS],
                                       "lookups": [0, 0], "loads": [258, 258]},
    f"load_latency_s {STRUCTURE_PAGE_TABLES}": {"entries": [4203008, 4203008],
                                                "runs": [0, 0], "lookups": [0, 0],
                                                "loads": [8209, 8209]},
}
TRACKERS = {"entry_s": ["bitmap", "xarray", "xarray-multi", "ida"], "lookup_s": ["kvm"],
            "run_s": ["bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm"],
            "call_s": ["bitmap", "xarray", "xarray-multi", "ida", "maple", "kvm"]}
LAYOUTS = {"entry_s": [STRUCTURE_STRUCT_PAGES, STRUCTURE_PAGE_TABLES],
           "run_s": [STRUCTURE_STRUCT_PAGES, STRUCTURE_PAGE_TABLES],
           "call_s": [STRUCTURE_STRUCT_PAGES, STRUCTURE_PAGE_TABLES],
           "load_latency_s": [STRUCTURE_PAGE_TABLES]}


def _check(doc: dict, suffix: str, engine: str, layouts: bool) -> None:
    assert set(doc) == {"samples", "engines", "structures", "structure_engines", "method"}
    assert {c: len(v) for c, v in doc["samples"].items()} == {c: 1 for c in scan_costs.COSTS}
    assert doc["engines"] == {c: engine for c in scan_costs.COSTS}
    want = {c: [s + suffix for s in names] + (LAYOUTS.get(c, []) if layouts else [])
            for c, names in TRACKERS.items()}
    if layouts:
        want["load_latency_s"] = LAYOUTS["load_latency_s"]
    assert {c: list(v) for c, v in doc["structures"].items()} == want
    trackers = {s + suffix: engine for s in TRACKERS["call_s"]}
    assert doc["structure_engines"] == {**trackers, **({
        STRUCTURE_STRUCT_PAGES: ENGINE_STRUCT_PAGES,
        STRUCTURE_PAGE_TABLES: ENGINE_PAGE_TABLES} if layouts else {})}
    pairs = doc["method"]["pairs"]
    counts = {f"{k}{suffix}": v for k, v in COUNTS.items()}
    if layouts:
        counts.update(LAYOUT_COUNTS)
    assert {k: {t: v[t] for t in ("entries", "runs", "lookups", "loads")}
            for k, v in pairs.items()} == counts
    assert doc["method"][f"lookup_s kvm{suffix}"]["lookups"] == [1 << 15, 1 << 17]
    # a cost with one structure is that structure's sample
    assert doc["samples"]["lookup_s"] == doc["structures"]["lookup_s"][f"kvm{suffix}"]


def test_emulation_engines_are_labelled_as_such():
    _check(scan_costs.measure_scan_costs(repeat=1, kernel_code=False), "", ENGINE_EMULATION,
           layouts=False)


@KERNEL
def test_kernel_code_engines_are_the_twins_and_the_c_layouts():
    _check(scan_costs.measure_scan_costs(repeat=1), "@kernel", kernel_engine(), layouts=True)


def test_pairs_differ_in_their_own_term_only():
    """An entry pair holds its runs; a run pair holds its entries, except where
    the structure cannot (charged first); the per-load pair differs only in
    where the split pages sit."""
    charged = {(p.cost, p.structure): p.charged for p in scan_costs.PAIRS if p.charged}
    assert charged == {("run_s", "xarray-multi"): ("entry_s",),
                       ("run_s", "maple"): ("entry_s",), ("run_s", "kvm"): ("lookup_s",)}
    for pair in scan_costs.PAIRS:
        a, b = pair.a, pair.b
        if pair.cost == "entry_s":
            assert a.starts.size == b.starts.size
        else:
            assert a.max_pfn == b.max_pfn and a.starts.size == 1 < b.starts.size
    assert [p.cost for p in scan_costs.PAIRS] == ["entry_s"] * 6 + ["run_s"] * 8
    load = scan_costs.LOAD_PAIR
    assert (load.a.scattered, load.b.scattered) == (False, True)
    assert [x.tolist() for x in load.a.split] == [x.tolist() for x in load.b.split]


def test_the_run_pairs_mark_a_random_quarter():
    b = next(p for p in scan_costs.PAIRS if p.cost == "run_s").b
    pages = int((b.ends - b.starts).sum())
    assert b.starts.size == RUNS and pages == 32764           # of 131072: a quarter
    assert (b.ends - b.starts).max() > 1 and (b.starts[1:] - b.ends[:-1]).max() > 1


def test_repeat_must_be_positive():
    with pytest.raises(ValueError, match="repeat 0 must be >= 1"):
        scan_costs.measure_scan_costs(repeat=0)
