"""Platform presets and calibration: structure only, never timed assertions."""

import argparse
import json
import math

import pytest

from trackers.kexec import PLATFORMS, Platform, get_platform
from trackers.kexec import calibrate
from trackers.kexec.platform import platform_from_calibration, this_machine


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
                "load_latency_s"):
        assert doc["figures"][key] > 0
        assert len(doc["samples"][key]) == 1
    p = platform_from_calibration(doc)
    assert p.kind == "measured" and p.cpus_at_reset == 1 and p.cpus_total == 2
    assert p.clear_bps_core == doc["figures"]["write_bps_core"]
    assert p.read_bps_all >= p.read_bps_core and set(doc["best"]) == set(doc["figures"])
    assert this_machine(out) == p
    assert not list(tmp_path.glob(".cal.json.*"))     # no temp file left behind


def test_calibrate_rejects_small_buffers():
    with pytest.raises(ValueError, match="16 MiB"):
        calibrate.measure(mib=1)
