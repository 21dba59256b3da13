"""Every registered tracker against a plain reference, op by op: the
emulations and their @kernel twins (ALL_TRACKERS; the twins where the
kernel's code is built), the same state machine for both.

A hypothesis state machine drives one tracker with random mark/unmark,
mark_ranges/unmark_ranges over a small PFN space biased to the alignments
that matter (64-slot nodes, 2 MiB, 1024-bit IDA leaves, 2^16 roaring
chunks), and after every step compares len, contains, extents(), pfns(),
check(), and estimate() == memory().modeled_bytes (for a history-shaped
tracker: of the set built at once) with a numpy bool array.
"""

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import trackers

SPACES = [1, 64, 65, 4097, 70_000, 200_003]
ALIGNS = [1, 64, 512, 1024, 4096, 1 << 16]


def pfn_in(max_pfn):
    aligned = st.tuples(st.sampled_from(ALIGNS), st.integers(0, max_pfn),
                        st.integers(-2, 2)).map(
        lambda t: min(max((t[1] // t[0]) * t[0] + t[2], 0), max_pfn))
    return st.one_of(st.integers(0, max_pfn), aligned)


def runs_of(ref):
    d = np.diff(np.concatenate(([0], ref.view(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def make_machine(name):
    class TrackerMachine(RuleBasedStateMachine):
        @initialize(max_pfn=st.sampled_from(SPACES))
        def build(self, max_pfn):
            self.t = trackers.get_tracker(name, max_pfn=max_pfn)
            self.ref = np.zeros(max_pfn, bool)

        def _ranges(self, data):
            n = self.ref.size
            pairs = data.draw(st.lists(st.tuples(pfn_in(n), pfn_in(n)), max_size=6))
            starts = np.array([min(a, b) for a, b in pairs], np.int64)
            ends = np.array([max(a, b) for a, b in pairs], np.int64)
            return starts, ends

        @rule(data=st.data())
        def mark_ranges(self, data):
            s, e = self._ranges(data)
            self.t.mark_ranges(s, e)
            for a, b in zip(s, e):
                self.ref[a:b] = True

        @rule(data=st.data())
        def unmark_ranges(self, data):
            s, e = self._ranges(data)
            self.t.unmark_ranges(s, e)
            for a, b in zip(s, e):
                self.ref[a:b] = False

        @rule(data=st.data(), value=st.booleans())
        def mark_pfns(self, data, value):
            n = self.ref.size
            p = np.array(data.draw(st.lists(pfn_in(n - 1), max_size=40)), np.int64)
            (self.t.mark if value else self.t.unmark)(p)
            self.ref[p] = value

        @rule(data=st.data())
        def one_pfn(self, data):
            p = data.draw(pfn_in(self.ref.size - 1))
            self.t.mark(p)
            self.ref[p] = True
            assert p in self.t

        @invariant()
        def agrees(self):
            t, ref = self.t, self.ref
            assert len(t) == int(ref.sum())
            assert np.array_equal(t.contains(np.arange(ref.size)), ref)
            batches = list(t.extents())
            s = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, int)
            e = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0, int)
            rs, re = runs_of(ref)
            assert np.array_equal(s, rs) and np.array_equal(e, re)
            chunks = list(t.pfns(chunk=97))
            assert all(c.dtype == np.uint64 and 0 < c.size <= 97 for c in chunks)
            got = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
            assert np.array_equal(got, np.flatnonzero(ref).astype(np.uint64))
            t.check()
            est = type(t).estimate(rs, re, ref.size)
            if type(t).history_shaped:             # estimate(): the set built at once
                fresh = getattr(type(t), "twin_cls", type(t))(ref.size)
                fresh.mark_ranges(rs, re)
                assert est == fresh.memory().modeled_bytes
            else:
                assert est == t.memory().modeled_bytes

    TrackerMachine.__name__ = f"Machine_{name}"
    return TrackerMachine


#: examples per tracker: the @kernel twins' updates wait for RCU grace periods
#: (their live-object count), so they run fewer
EXAMPLES = {name: 40 if name in trackers.TRACKERS else 25 for name in trackers.ALL_TRACKERS}
#: examples of the fast subset's run of the same machine (-m "not slow"),
#: derandomized as every run (conftest): the same few examples each time
SMOKE_EXAMPLES = 4


def _run(name: str, examples: int) -> None:
    machine = make_machine(name)
    machine.TestCase.settings = settings(max_examples=examples, stateful_step_count=12,
                                         deadline=None)
    machine.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(trackers.ALL_TRACKERS))
def test_differential(name):
    _run(name, EXAMPLES[name])


@pytest.mark.parametrize("name", list(trackers.ALL_TRACKERS))
def test_differential_smoke(name):
    """The same machine, SMOKE_EXAMPLES examples: the fast subset's check of
    every tracker and twin against the reference (the full run is the slow
    test above)."""
    _run(name, SMOKE_EXAMPLES)
