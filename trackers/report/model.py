"""What the report takes from trackers.kexec and trackers.workloads: one thin adapter.

The report reads the kexec model only through this module:

* :func:`platforms` -- the kexec platform presets (``trackers.kexec.PLATFORMS``);
* :func:`modeled_scan_s` -- a tracker's kexec-time scan on a platform: the
  streaming read of its scanned bytes plus one dependent load per node
  (``trackers.kexec.strategies.TrackerStrategy.scan_loads``), the kexec
  model's own formula;
* :func:`added_bytes` -- what a tracker's strategy adds to a running kernel
  (``kvm`` adds nothing: KVM holds its XArrays anyway);
* :func:`hand_host` -- a ``KexecHost`` for a bare set: RAM = every PFN, all
  private pages are guest pages KVM sees (GFN = PFN, the contract's default TD).

Nothing here models anything itself.
"""

from __future__ import annotations

def platforms() -> dict:
    """name -> platform object with read_s/clear_s/chase_s, name and kind."""
    from trackers.kexec import PLATFORMS
    return {name: PLATFORMS[name] for name in PLATFORMS.keys()}


def scan_loads(breakdown: dict) -> int:
    """Dependent loads of a scan over ``breakdown`` (one per pointer-walked node)."""
    from trackers.kexec.strategies import TrackerStrategy
    return int(TrackerStrategy.scan_loads(breakdown))


def modeled_scan_s(platform, scanned_bytes: int, loads: int) -> float:
    return platform.read_s(scanned_bytes) + platform.chase_s(loads)


def added_bytes(tracker_name: str, modeled_bytes: int, host=None) -> int:
    """Bytes the tracker's kexec strategy adds to a running kernel."""
    from trackers.kexec.strategies import STRATEGIES
    strategy = STRATEGIES.get(tracker_name)
    if strategy is not None and hasattr(strategy, "added_bytes"):
        return int(strategy.added_bytes(modeled_bytes, host))
    return int(modeled_bytes)


def hand_host(max_pfn: int, starts, ends, name: str):
    """A KexecHost for a bare private set over RAM [0, max_pfn) (see module doc)."""
    import numpy as np
    from trackers.kexec.host import KexecHost
    ram = (np.array([0], np.int64), np.array([max_pfn], np.int64))
    return KexecHost(max_pfn=max_pfn, ram=ram, private=(starts, ends),
                     kvm_visible=(starts, ends), name=name)
