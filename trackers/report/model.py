"""What the report takes from trackers.kexec and trackers.workloads: one thin adapter.

The report reads other packages only through this module, so a missing
piece degrades the report instead of breaking it:

* :func:`kexec_available` / :func:`workloads_available` -- whether the kexec
  model (issue 4) and the workload scenarios (issue 3) are installed;
* :func:`platforms` -- the kexec platform presets (``trackers.kexec.PLATFORMS``);
  without the kexec package, one FALLBACK preset from PERF-NOTES rates;
* :func:`modeled_scan_s` -- a tracker's kexec-time scan on a platform: the
  streaming read of its scanned bytes plus one dependent load per node
  (``trackers.kexec.strategies.TrackerStrategy.scan_loads``), the kexec
  model's own formula;
* :func:`added_bytes` -- what a tracker's strategy adds to a running kernel
  (``kvm`` adds nothing: KVM holds its XArrays anyway);
* :func:`hand_host` -- a ``KexecHost`` for a bare set: RAM = every PFN, all
  private pages are guest pages KVM sees (GFN = PFN, the contract's default TD).

Nothing here models anything itself except the fallback platform, which
says so in its name and ``kind``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

GB = 1e9


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def kexec_available() -> bool:
    if not _importable("trackers.kexec.strategies"):
        return False
    try:
        import trackers.kexec.evaluate  # noqa: F401
        import trackers.kexec.strategies  # noqa: F401
    except ImportError:
        return False
    return True


def workloads_available() -> bool:
    if not _importable("trackers.workloads"):
        return False
    try:
        from trackers import workloads
    except ImportError:
        return False
    return hasattr(workloads, "scenario")


def race_available() -> bool:
    if not (kexec_available() and _importable("trackers.kexec.race")):
        return False
    try:
        from trackers.kexec import race  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class FallbackPlatform:
    """Streaming rates from PERF-NOTES.md, used only while trackers.kexec is absent."""

    name: str = "this-machine"
    kind: str = "fallback"
    read_bps_core: float = 10 * GB      # PERF-NOTES: a.sum() ~10 GB/s on one core
    clear_bps_core: float = 7.5 * GB    # PERF-NOTES: a.fill(0) 6-9 GB/s
    load_latency_s: float = 100e-9
    cpus_at_reset: int = 1

    def read_s(self, nbytes):
        return float(nbytes) / self.read_bps_core

    def clear_s(self, nbytes):
        return float(nbytes) / self.clear_bps_core

    def chase_s(self, loads):
        return float(loads) * self.load_latency_s

    def describe(self):
        return (f"{self.name} [{self.kind}]: read {self.read_bps_core / GB:.1f} GB/s, clear "
                f"{self.clear_bps_core / GB:.1f} GB/s, load {self.load_latency_s * 1e9:.0f} ns, "
                f"1 CPU")


def platforms() -> dict:
    """name -> platform object with read_s/clear_s/chase_s, name and kind."""
    if kexec_available():
        from trackers.kexec import PLATFORMS
        return {name: PLATFORMS[name] for name in PLATFORMS.keys()}
    return {"this-machine": FallbackPlatform()}


def scan_loads(breakdown: dict) -> int:
    """Dependent loads of a scan over ``breakdown`` (0 without the kexec model)."""
    if kexec_available():
        from trackers.kexec.strategies import TrackerStrategy
        return int(TrackerStrategy.scan_loads(breakdown))
    return 0


def modeled_scan_s(platform, scanned_bytes: int, loads: int) -> float:
    return platform.read_s(scanned_bytes) + platform.chase_s(loads)


def added_bytes(tracker_name: str, modeled_bytes: int, host=None) -> int:
    """Bytes the tracker's kexec strategy adds to a running kernel."""
    if kexec_available():
        from trackers.kexec.strategies import STRATEGIES
        strategy = STRATEGIES.get(tracker_name)
        if strategy is not None and hasattr(strategy, "added_bytes"):
            return int(strategy.added_bytes(modeled_bytes, host))
    return 0 if tracker_name == "kvm" else int(modeled_bytes)


def hand_host(max_pfn: int, starts, ends, name: str):
    """A KexecHost for a bare private set over RAM [0, max_pfn) (see module doc)."""
    import numpy as np
    from trackers.kexec.host import KexecHost
    ram = (np.array([0], np.int64), np.array([max_pfn], np.int64))
    return KexecHost(max_pfn=max_pfn, ram=ram, private=(starts, ends),
                     kvm_visible=(starts, ends), name=name)
