"""Workloads: what every tracker is fed, from real hosts and real traces.

* :mod:`.memmap` — host memory maps: :func:`load_memory_map` (boot-log e820,
  /proc/iomem, /sys/firmware/memmap) and :func:`synthetic_host`.
* :mod:`.tdx` — TDMRs and PAMT, TD control pages and S-EPT, GFN layout,
  SWIOTLB share, host allocation policies.
* :mod:`.conversions` — GFN->PFN bindings, the churn generator and the
  replay oracles; the event batch format itself (:data:`EVENT_DTYPE`, op and
  kind constants) is :mod:`trackers.events`, re-exported here.
* :mod:`.traces` — :func:`load_trace` for ftrace kvm_vm_set_mem_attributes and
  QEMU kvm_convert_memory logs.
* :mod:`.scenarios` — :data:`SCENARIOS`, :func:`scenario`, :class:`Workload`;
  :class:`UserHost`: the user's own map, trace and TD layout.

Data flows one way: memory map -> TDX layout -> event batches ->
``tracker.apply(batch)``; ``Workload.final_private()`` is the expected end.
"""

from ..events import (EVENT_DTYPE, GMEM_BIND, GMEM_UNBIND, KIND_GUEST, KIND_NAMES, KIND_NONE,
                      KIND_PAMT, KIND_SEPT, KIND_TDCS, KIND_TDCX, KIND_TDR, KIND_TDVPR,
                      KVM_SET_ATTR_PRIVATE, KVM_SET_ATTR_SHARED, NON_GUEST_KINDS, OP_NAMES,
                      SEAMCALL_PRIVATE, SEAMCALL_RECLAIM)
from .conversions import kvm_private_after, private_after
from .memmap import MemoryMap, bundled_memmaps, load_memory_map, synthetic_host
from .scenarios import SCENARIOS, Churn, UserHost, Workload, build_workload, scenario
from .tdx import Policy, TdConfig, Tdmrs
from .traces import Trace, load_trace

__all__ = [
    "load_memory_map", "bundled_memmaps", "MemoryMap", "synthetic_host", "load_trace", "Trace",
    "SCENARIOS", "scenario", "UserHost", "Workload", "build_workload", "Churn", "TdConfig", "Policy",
    "Tdmrs", "EVENT_DTYPE", "SEAMCALL_PRIVATE", "SEAMCALL_RECLAIM", "KVM_SET_ATTR_PRIVATE",
    "KVM_SET_ATTR_SHARED", "GMEM_BIND", "GMEM_UNBIND", "KIND_NONE", "KIND_PAMT", "KIND_TDR",
    "KIND_TDCS", "KIND_TDVPR", "KIND_TDCX", "KIND_SEPT", "KIND_GUEST", "KIND_NAMES",
    "OP_NAMES", "NON_GUEST_KINDS", "private_after", "kvm_private_after",
]
