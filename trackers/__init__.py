"""tdx-page-trackers: how should the kernel find every TDX private page at kexec?

``TRACKERS`` maps a registry name to a :class:`~trackers.base.Tracker` class;
``get_tracker(name, max_pfn=...)`` builds one.  The contract is in
docs/CONTRACT.md and trackers/base.py.
"""

from __future__ import annotations

from .base import MemoryBudgetError, MemoryReport, Tracker
from .bitmap import Bitmap
from .ida import Ida
from .kvm import KvmAttributes
from .maple import Maple
from .pageflags import PageFlags
from .roaring import Roaring
from .xarray import XArrayMultiTracker, XArrayTracker

# Registry order is the order of tables and figures: option 1 first.
TRACKERS: dict[str, type[Tracker]] = {
    cls.name: cls
    for cls in (
        Bitmap,
        XArrayTracker,
        XArrayMultiTracker,
        Ida,
        Roaring,
        PageFlags,
        KvmAttributes,
        Maple,
    )
}


def get_tracker(name: str, max_pfn: int, **kwargs) -> Tracker:
    """Build the tracker registered as ``name`` over PFNs [0, max_pfn)."""
    try:
        cls = TRACKERS[name]
    except KeyError:
        raise ValueError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}") from None
    return cls(max_pfn, **kwargs)


__all__ = ["TRACKERS", "get_tracker", "Tracker", "MemoryReport", "MemoryBudgetError"]
