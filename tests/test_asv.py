"""The asv suite imports, and every benchmark's signature fits its parameters.

`asv check` discovers benchmarks/ in the current Python (environment_type
"existing") without running any; the timed and modeled runs are
`asv run --python=same --quick` (benchmarks/README.md).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _asv() -> list[str]:
    exe = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if exe is None:
        pytest.skip("asv is not installed (pip install -e '.[dev]')")
    return [exe]


def test_asv_check():
    proc = subprocess.run(_asv() + ["check", "--python=same"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "No problems found" in out, out


def test_asv_conf_dirs_are_ignored():
    """asv writes results, html and cached sets under .asv/, which git ignores."""
    conf = (ROOT / "asv.conf.json").read_text()
    for key in ('"results_dir": ".asv/results"', '"html_dir": ".asv/html"',
                '"env_dir": ".asv/env"', '"benchmark_dir": "benchmarks"',
                '"environment_type": "existing"'):
        assert key in conf
    assert ".asv/" in (ROOT / ".gitignore").read_text().split()
