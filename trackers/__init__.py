"""tdx-page-trackers: how should the kernel find every TDX private page at kexec?

``TRACKERS`` maps a registry name to a :class:`~trackers.base.Tracker` class;
``KERNEL_TRACKERS`` their ``@kernel`` twins on the kernel's own code (when it
is built: ``KERNEL_UNAVAILABLE`` says why not), ``ALL_TRACKERS`` both;
``get_tracker(name, max_pfn=...)`` builds one (:mod:`trackers.registry`).
The contract is in docs/CONTRACT.md and trackers/base.py.  The layers, bottom
to top, are declared once in pyproject.toml ([tool.importlinter]) and checked
by the tests.

The registry is imported on first use of one of its names, not with the
package: the kernel-code twins are registered when the library loads at that
import, so ``trackers.linux.build()`` (an explicit step) may run first::

    import trackers.linux
    trackers.linux.build()          # once per machine and kernel version
    import trackers
    trackers.ALL_TRACKERS           # the emulations and their @kernel twins
"""

from __future__ import annotations

import signal
import sys

# A process multiprocessing spawned (its command line ends in
# --multiprocessing-fork: a Dask worker of a local cluster, trackers/cluster.py)
# ignores SIGINT from its first import of this package: spawn runs the parent's
# main module (the tdx-trackers command) again in the child, so this line runs
# within a second of its start.  A terminal's Ctrl-C reaches the whole process
# group; the parent answers it in one line and stops its workers, which would
# otherwise each print a KeyboardInterrupt traceback.
if "--multiprocessing-fork" in getattr(sys, "orig_argv", ()):
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import importlib
from importlib.metadata import PackageNotFoundError, version as _version

from .base import MemoryBudgetError, MemoryReport, NotRepresentable, Tracker

try:
    __version__ = _version("tdx-page-trackers")
except PackageNotFoundError:          # a source tree that was never installed
    __version__ = "0+unknown"

#: names that trackers.registry owns, imported with it on first use
_REGISTRY_NAMES = ("TRACKERS", "KERNEL_TRACKERS", "KERNEL_UNAVAILABLE", "ALL_TRACKERS",
                   "get_tracker")

__all__ = [*_REGISTRY_NAMES, "Tracker", "MemoryReport", "MemoryBudgetError",
           "NotRepresentable", "__version__"]


def __getattr__(name: str):
    """The registry's names (importing trackers.registry), else a submodule
    (``trackers.kernel``, ``trackers.xarray``, ...), as an eager import of the
    registry used to make them available."""
    if name in _REGISTRY_NAMES:
        from . import registry
        return getattr(registry, name)
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
