"""Scenarios: deterministic, consistent, and every tracker agrees on them."""

import hashlib

import numpy as np
import pytest

import trackers
from trackers.__main__ import main
from trackers.workloads import (EVENT_DTYPE, NON_GUEST_KINDS, SCENARIOS, SEAMCALL_PRIVATE,
                                kvm_private_after, private_after, scenario)
from trackers import extents as X


def _digest(w) -> str:
    h = hashlib.sha256()
    for b in w.batches:
        h.update(b.tobytes())
    for k, (s, e) in sorted(w.final_private().items()):
        h.update(k.encode()), h.update(s.tobytes()), h.update(e.tobytes())
    return h.hexdigest()


SMALL = [n for n in SCENARIOS if n not in ("16tib-dense", "1tib-fragmented", "4tib-16td",
                                             "1tib-churn")]


@pytest.mark.parametrize("name", SMALL)
def test_small_scenarios_deterministic_and_consistent(name):
    a, b = scenario(name, seed=3), scenario(name, seed=3)
    assert _digest(a) == _digest(b)
    same = lambda x, y: np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
    assert same(private_after(a.batches), a.final_private_all())
    assert same(kvm_private_after(a.batches), a.final_kvm())
    assert all(x.dtype == EVENT_DTYPE for x in a.batches)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["16tib-dense", "1tib-fragmented", "4tib-16td", "1tib-churn"])
def test_large_scenarios_deterministic(name):
    assert _digest(scenario(name, seed=1)) == _digest(scenario(name, seed=1))


def test_seed_matters():
    assert _digest(scenario("tiny", 0)) != _digest(scenario("tiny", 1))


def test_unknown_scenario():
    with pytest.raises(ValueError, match="unknown scenario 'huge'"):
        scenario("huge")


def _extents(t):
    parts = list(t.extents())
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return (np.concatenate([p[0] for p in parts]).astype(np.int64),
            np.concatenate([p[1] for p in parts]).astype(np.int64))


GENERIC = [n for n in trackers.TRACKERS if n != "kvm"]


@pytest.mark.parametrize("name", GENERIC)
def test_generic_trackers_agree_on_tiny(name):
    w = scenario("tiny")
    t = trackers.get_tracker(name, max_pfn=w.max_pfn)
    for b in w.batches:
        t.apply(b)
    s, e = _extents(t)
    want = w.final_private_all()
    assert np.array_equal(s, want[0]) and np.array_equal(e, want[1])
    assert len(t) == X.count(want)


def test_kvm_differs_exactly_by_non_td_pages():
    if "kvm" not in trackers.TRACKERS:
        pytest.skip("kvm tracker not registered yet")
    w = scenario("tiny")
    t = trackers.get_tracker("kvm", max_pfn=w.max_pfn)
    for b in w.batches:
        t.apply(b)
    s, e = _extents(t)
    fin = w.final_private()
    non_td = X.union(*[fin[k] for k in NON_GUEST_KINDS if k in fin])
    want = X.subtract(w.final_private_all(), non_td)
    assert np.array_equal(s, want[0]) and np.array_equal(e, want[1])


def test_apply_rejects_bad_events_and_changes_nothing():
    t = trackers.get_tracker("bitmap", max_pfn=1000)
    with pytest.raises(TypeError, match="structured"):
        t.apply(np.arange(4))
    ev = np.zeros(2, EVENT_DTYPE)
    ev["op"] = SEAMCALL_PRIVATE
    ev["pfn_start"], ev["pfn_end"] = [10, 990], [20, 1001]
    with pytest.raises(ValueError, match="max_pfn"):
        t.apply(ev)
    assert len(t) == 0


def test_cli_lists_tiny(capsys):
    assert main(["scenarios", "--only", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "guest" in out
