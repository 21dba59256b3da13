"""The kexec decision: every option of the LKML thread as a strategy.

What users call (the report, the notebook and the benchmarks use only these):

* ``STRATEGIES``, ``get_strategies`` -- one per tracker plus options 2-7
  (:mod:`.strategies`); ``Outcome`` is one row of the verdict;
* ``KexecHost``, ``from_workload`` -- the host at kexec, from a workload
  (:mod:`.host`);
* ``PLATFORMS``, ``get_platform``, ``Platform`` -- rates a downtime is
  modeled with; ``this-machine`` is measured by ``tdx-trackers calibrate``;
* ``evaluate`` -- every strategy on one host and platform -> the verdict table;
* ``race``, ``failed_reclaim``, ``replay_cuts`` -- kexec fired during
  conversions, and pages whose reclaim failed (:mod:`.race`).

:mod:`.directmap` models option 2's direct map; :mod:`.calibrate` measures
this machine.
"""

from .evaluate import evaluate
from .host import KexecHost, from_workload
from .platform import PLATFORMS, Platform, get_platform
from .race import failed_reclaim, race, replay_cuts
from .strategies import STRATEGIES, Outcome, Strategy, get_strategies

__all__ = ["STRATEGIES", "get_strategies", "Strategy", "Outcome", "KexecHost", "from_workload",
           "PLATFORMS", "Platform", "get_platform", "evaluate", "race", "failed_reclaim",
           "replay_cuts"]
