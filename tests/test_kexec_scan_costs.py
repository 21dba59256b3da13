"""The scan-cost microbenchmarks (trackers/kexec/scan_costs.py): what each pair
differs in, the engines and structures recorded.  Facts only; no timing."""

import pytest

from trackers import linux
from trackers.kexec import scan_costs
from trackers.kexec.strategy import ENGINE_EMULATION, kernel_engine

KERNEL = pytest.mark.skipif(not linux.available()[0], reason="kernel code not built here")

#: entries and runs of A and B of every pair, as the report counts them: the
#: kernel's structures and the emulations' are the same (the differential tests)
COUNTS = {
    "entry_s bitmap": {"entries": [65536, 1048576], "runs": [16, 16]},
    "entry_s xarray": {"entries": [76104, 300744], "runs": [16, 16]},
    "run_s bitmap": {"entries": [2048, 2048], "runs": [1, 65536]},
    "run_s xarray": {"entries": [149832, 149832], "runs": [1, 65536]},
    "run_s maple": {"entries": [32, 280992], "runs": [1, 65536]},
}
STRUCTURES = {"entry_s": ["bitmap", "xarray"], "run_s": ["bitmap", "xarray", "maple"],
              "lookup_s": ["kvm"]}


def _check(doc: dict, suffix: str, engine: str) -> None:
    assert set(doc) == {"samples", "engines", "structures", "method"}
    assert {c: len(v) for c, v in doc["samples"].items()} == {c: 1 for c in scan_costs.COSTS}
    assert doc["engines"] == {c: engine for c in scan_costs.COSTS}
    assert {c: list(v) for c, v in doc["structures"].items()} == {
        c: [s + suffix for s in names] for c, names in STRUCTURES.items()}
    pairs = doc["method"]["pairs"]
    assert {k: {"entries": v["entries"], "runs": v["runs"]} for k, v in pairs.items()} == {
        f"{k}{suffix}": v for k, v in COUNTS.items()}
    assert doc["method"][f"lookup_s kvm{suffix}"]["lookups"] == [1 << 15, 1 << 17]
    # a cost with one structure is that structure's sample
    assert doc["samples"]["lookup_s"] == doc["structures"]["lookup_s"][f"kvm{suffix}"]


def test_emulation_engines_are_labelled_as_such():
    _check(scan_costs.measure_scan_costs(repeat=1, kernel_code=False), "", ENGINE_EMULATION)


@KERNEL
def test_kernel_code_engines_are_the_twins():
    _check(scan_costs.measure_scan_costs(repeat=1), "@kernel", kernel_engine())


def test_pairs_differ_in_their_own_term_only():
    """An entry pair holds its runs; a run pair holds its entries, except the
    maple tree, whose entries grow with its runs and are charged first."""
    for pair in scan_costs.PAIRS:
        (a_pfn, a_s, _), (b_pfn, b_s, _) = pair.a, pair.b
        if pair.cost == "entry_s":
            assert a_s.size == b_s.size and not pair.charges_entries
        else:
            assert a_pfn == b_pfn and a_s.size < b_s.size
            assert pair.charges_entries == (pair.tracker == "maple")
    assert [p.cost for p in scan_costs.PAIRS] == ["entry_s"] * 2 + ["run_s"] * 3


def test_repeat_must_be_positive():
    with pytest.raises(ValueError, match="repeat 0 must be >= 1"):
        scan_costs.measure_scan_costs(repeat=0)
