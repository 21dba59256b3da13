"""The registry: every tracker by name, in the one order tables and figures use.

``TRACKERS`` maps a registry name to a :class:`~trackers.base.Tracker` class,
option 1 first: the emulations, the options of every table and figure.
``KERNEL_TRACKERS`` holds their ``@kernel`` twins (:mod:`trackers.kernel_code`:
the kernel's own lib/xarray.c, lib/idr.c, lib/maple_tree.c and find_bit), in
the same order, when the kernel-code library loads here at import
(``trackers.linux.available()``); ``KERNEL_UNAVAILABLE`` says why it does not
("" when it does).  ``ALL_TRACKERS`` is both.  ``get_tracker(name,
max_pfn=...)`` builds any of them.  Nothing here builds the library: that is
an explicit step (``tdx-trackers kernel-build``, ``trackers.linux.build()``)
before this module is imported.

Every layer above the trackers (workloads, kexec, report, benchmarks) asks
this module for trackers and their order instead of naming tracker modules.
"""

from __future__ import annotations

from . import linux
from .base import Tracker
from .bitmap import Bitmap
from .ida import Ida
from .kernel_code import TWINS
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

#: the suffix of a kernel-code twin's name: "xarray" -> "xarray@kernel"
KERNEL_SUFFIX = "@kernel"

_available, _why = linux.available()

#: the @kernel twins, in TRACKERS order; empty where the library does not load
KERNEL_TRACKERS: dict[str, type[Tracker]] = (
    {TWINS[twin].name: TWINS[twin] for twin in TRACKERS if twin in TWINS}
    if _available else {})

#: why KERNEL_TRACKERS is empty ("" when it is not)
KERNEL_UNAVAILABLE: str = "" if _available else _why

ALL_TRACKERS: dict[str, type[Tracker]] = {**TRACKERS, **KERNEL_TRACKERS}


def get_tracker(name: str, max_pfn: int, **kwargs) -> Tracker:
    """Build the tracker registered as ``name`` (any of ALL_TRACKERS) over
    PFNs [0, max_pfn).  A ``@kernel`` twin that cannot run here raises
    ValueError with the reason."""
    try:
        cls = ALL_TRACKERS[name]
    except KeyError:
        twin = name[:-len(KERNEL_SUFFIX)] if name.endswith(KERNEL_SUFFIX) else None
        if twin in TWINS and KERNEL_UNAVAILABLE:
            raise ValueError(f"tracker {name!r} runs the kernel's own code, which is not "
                             f"available here: {KERNEL_UNAVAILABLE}") from None
        raise ValueError(f"unknown tracker {name!r}; known: {', '.join(ALL_TRACKERS)}") from None
    return cls(max_pfn, **kwargs)
