"""The TD-teardown model and validation.csv's rows (trackers/kexec/teardown.py)."""

import dataclasses
import math

import pytest

from trackers import published
from trackers.kexec import teardown
from trackers.kexec.platform import PLATFORMS
from trackers.published import AFTER, BEFORE

SPR = PLATFORMS["spr-2s"]


def test_one_page_on_each_path_is_its_seamcalls_kicks_and_clear():
    p = dataclasses.replace(SPR, seamcall_s=3e-6, vcpu_kick_s=0.5e-6, clear_bps_core=4096e6)
    assert teardown.page_s(p, AFTER) == pytest.approx(3e-6 + 1e-6)
    assert teardown.page_s(p, AFTER, clear=False) == pytest.approx(3e-6)
    assert teardown.page_s(p, BEFORE, vcpus=8) == pytest.approx(4 * 3e-6 + 8 * 0.5e-6 + 1e-6)
    assert teardown.teardown_s(1000, p, AFTER) == pytest.approx(1000 * 4e-6)
    assert teardown.clear_share(p) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown teardown path 'during'"):
        teardown.page_s(p, "during")


def test_validation_has_a_row_per_publication_and_says_its_role():
    df = teardown.validation("spr-2s", attr_store_s=(70e-9, 60e-9, 90e-9), attr_engine="x")
    assert list(df.columns) == teardown.COLUMNS
    assert set(df["key"]) == {t.key for t in published.TEARDOWN} | {
        "clear-share", "attributes-1tb", "attributes-1.9tb"}
    derived = df[df["role"] != "prediction"]
    assert set(derived["key"]) == {"teardown-after-32vcpu-107gb",
                                   "teardown-before-4vcpu-18gb", "clear-share"}
    # a derivation reproduces its own row exactly (that is what it is)
    assert all(math.isclose(r, 1.0, rel_tol=1e-9) for r in derived["ratio"])
    assert (df["published_kind"] == "published").all()
    att = df.set_index("key").loc["attributes-1tb"]
    assert att["predicted"] == pytest.approx(1e12 / 4096 * 70e-9)
    assert (att["predicted_low"], att["predicted_high"]) == pytest.approx(
        (1e12 / 4096 * 60e-9, 1e12 / 4096 * 90e-9))


def test_every_central_ratio_is_within_2x_or_names_what_is_missing():
    df = teardown.validation("spr-2s", attr_store_s=(70e-9, 60e-9, 90e-9))
    for r in df.itertuples():
        assert r.within == teardown.reproduced(r.ratio, r.bound)
        assert r.within or r.lacks, r.key
        assert r.predicted_low <= r.predicted <= r.predicted_high, r.key
    assert set(df["bound"]) == {"value", "lower bound", "upper bound"}


def test_a_row_outside_names_its_missing_term():
    slow = dataclasses.replace(SPR, vcpu_kick_s=1e-9)      # no kicks: the 64-vCPU row falls
    df = teardown.validation(slow).set_index("key")
    row = df.loc["teardown-before-64vcpu-400gb"]
    assert not row["within"] and "linearly in vCPUs" in row["lacks"]


def test_without_a_measured_store_the_attribute_rows_say_so():
    df = teardown.validation("spr-2s").set_index("key")
    assert math.isnan(df.loc["attributes-1tb", "predicted"])
    assert df.loc["attributes-1tb", "predicted_kind"] == "not measured in this run"


def test_a_bound_is_contradicted_from_one_side_only():
    assert teardown.reproduced(1.9) and not teardown.reproduced(2.1)
    assert teardown.reproduced(2.25, "lower bound") and not teardown.reproduced(0.4, "lower bound")
    assert teardown.reproduced(0.1, "upper bound") and not teardown.reproduced(2.1, "upper bound")
    assert not teardown.reproduced(float("nan"))
