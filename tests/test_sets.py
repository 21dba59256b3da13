"""The reference set: its documented shape, exactly, and its determinism."""

import numpy as np
import pytest

from trackers.sets import reference_set


def test_shape_and_determinism():
    n = 1 << 20                                     # 4 GiB: 2048 slots of 2 MiB
    s, e = reference_set(n, seed=3)
    s2, e2 = reference_set(n, seed=3)
    assert np.array_equal(s, s2) and np.array_equal(e, e2)
    assert np.all(s[1:] > e[:-1]) and s[0] >= 0 and e[-1] <= n       # maximal runs
    pages = np.zeros(n, bool)
    for a, b in zip(s, e):
        pages[a:b] = True
    slots = pages.reshape(-1, 512)
    full = slots.all(axis=1)
    assert int(full.sum()) == round(0.6 * 2048)                     # 60 % in 2 MiB extents
    scattered = int(slots[~full].sum())
    assert abs(scattered - 0.1 * n) < 0.01 * n                       # ~10 % scattered
    assert not np.array_equal(reference_set(n, seed=4)[0], s)


def test_rejects_unaligned_space():
    with pytest.raises(ValueError, match="max_pfn 1000 must be a positive multiple of 512"):
        reference_set(1000)
