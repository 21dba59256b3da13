"""The kexec decision: every option of the LKML thread as a strategy.

What users call (the report, the notebook and the benchmarks use only these):

* ``STRATEGIES``, ``get_strategies`` -- one per tracker plus options 2-8
  (the registry, :mod:`.strategies`); ``Strategy`` is the interface they
  share, ``Outcome`` one row of the verdict (:mod:`.strategy`);
* ``KexecHost``, ``from_workload`` -- the host at kexec, from a workload
  (:mod:`.host`);
* ``PLATFORMS``, ``get_platform``, ``Platform`` -- rates a downtime is
  modeled with; ``this-machine`` is measured by ``tdx-trackers calibrate``;
* ``evaluate`` -- every strategy on one host and platform -> the verdict table;
* ``race``, ``failed_reclaim``, ``replay_cuts`` -- kexec fired during
  conversions, and pages whose reclaim failed (:mod:`.race`).

Each strategy lives beside its model: the tracker scans in :mod:`.tracked`;
option 2's direct map in :mod:`.directmap`; KVM's mirror S-EPT walk in
:mod:`.kvm_walk`; guest_memfd's maple trees in :mod:`.gmem`; Dynamic PAMT's
refcounts in :mod:`.dpamt`; mainline's refusal and TDH.SYS.DISABLE in
:mod:`.mainline`; the resets of the TDMR list and the e820 table in
:mod:`.kept_lists`.  :mod:`.states` names the conversion states and what a
walker reads in each; :mod:`.calibrate` measures this machine.
"""

from .evaluate import evaluate
from .host import KexecHost, from_workload
from .platform import PLATFORMS, Platform, get_platform
from .race import failed_reclaim, race, replay_cuts
from .strategies import STRATEGIES, get_strategies
from .strategy import Outcome, Strategy

__all__ = ["STRATEGIES", "get_strategies", "Strategy", "Outcome", "KexecHost", "from_workload",
           "PLATFORMS", "Platform", "get_platform", "evaluate", "race", "failed_reclaim",
           "replay_cuts"]
