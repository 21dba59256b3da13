"""The registry: every tracker by name, in the one order tables and figures use.

``TRACKERS`` maps a registry name to a :class:`~trackers.base.Tracker` class,
option 1 first; ``get_tracker(name, max_pfn=...)`` builds one.  Every layer
above the trackers (workloads, kexec, report, benchmarks) asks this module
for trackers and their order instead of naming tracker modules.
"""

from __future__ import annotations

from .base import Tracker
from .bitmap import Bitmap
from .ida import Ida
from .kvm import KvmAttributes
from .maple import Maple
from .pageflags import PageFlags
from .roaring import Roaring
from .xarray import XArrayMultiTracker, XArrayTracker

# The one order of every table and figure (kexec.STRATEGIES follows it):
# option 1 and its variants, then option 3 (pageflags), then option 4 (kvm).
TRACKERS: dict[str, type[Tracker]] = {
    cls.name: cls
    for cls in (
        Bitmap,
        XArrayTracker,
        XArrayMultiTracker,
        Ida,
        Roaring,
        Maple,
        PageFlags,
        KvmAttributes,
    )
}


def get_tracker(name: str, max_pfn: int, **kwargs) -> Tracker:
    """Build the tracker registered as ``name`` over PFNs [0, max_pfn)."""
    try:
        cls = TRACKERS[name]
    except KeyError:
        raise ValueError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}") from None
    return cls(max_pfn, **kwargs)
