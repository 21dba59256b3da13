"""tdx-page-trackers: how should the kernel find every TDX private page at kexec?

``TRACKERS`` maps a registry name to a :class:`~trackers.base.Tracker` class;
``get_tracker(name, max_pfn=...)`` builds one (:mod:`trackers.registry`).
The contract is in docs/CONTRACT.md and trackers/base.py.  The layers, bottom
to top, are declared once in pyproject.toml ([tool.importlinter]) and checked
by the tests.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from .base import MemoryBudgetError, MemoryReport, NotRepresentable, Tracker
from .registry import TRACKERS, get_tracker

try:
    __version__ = _version("tdx-page-trackers")
except PackageNotFoundError:          # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["TRACKERS", "get_tracker", "Tracker", "MemoryReport", "MemoryBudgetError",
           "NotRepresentable", "__version__"]
