"""The kexec decision: every option of the LKML thread as a strategy.

* :mod:`.platform`   -- ``Platform``, ``PLATFORMS`` (this-machine, spr-2s)
* :mod:`.calibrate`  -- ``python -m trackers calibrate`` (measures this-machine)
* :mod:`.directmap`  -- option 2's x86 direct map, its splits and its scan
* :mod:`.strategies` -- ``STRATEGIES``: one per tracker plus options 2-7
* :mod:`.race`       -- kexec fired during private->shared conversions
* :mod:`.evaluate`   -- ``evaluate(workload, platform)`` -> the verdict table
"""

from .platform import PLATFORMS, Platform, get_platform

__all__ = ["PLATFORMS", "Platform", "get_platform"]
