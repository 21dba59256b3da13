"""The report's tables of the model held to publications, and of the wait at kexec.

Tables (file stem -> content):

* ``validation`` one row per published TDX timing (trackers/published.py):
  the publication, the model's prediction on ``spr-2s`` (whose TDX costs are
  the published-derived ones) with its band over the ASSUMED ranges, the
  ratio predicted / published, whether it lies within 0.5-2, the row's role
  (``prediction``, or which parameter it ``derives``) and, outside, the term
  the model lacks (trackers.kexec.teardown.validation).  The two attribute
  settings are predicted from a cost measured here: the kernel's own
  ``xa_reserve()`` + ``xa_store()`` per GFN (lib/xarray.c built in
  userspace) over ``attr_store_gfns`` GFNs, median and min-max of
  ``attr_store_repeat`` runs -- the emulation's per-GFN store where the kernel
  code is not built, and the row's ``predicted_kind`` says which -- with
  ``others_cpu_share``, the share of this machine's CPU time other tasks
  took while it was timed (trackers/machine_load.py), and ``load_1min``;
* ``wait`` TD memory (64 GiB-16 TiB) x curve: how long kexec and kdump wait
  before the next kernel starts -- mainline's one-CPU TDH.SYS.DISABLE, the
  best tracker-based reset on 1 and on all CPUs, each with its band
  (trackers.kexec.wait.wait_table; modeled).  The best tracker is chosen
  among those that run in crash context (qualities.QUALITIES).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from .. import linux, published
from ..bench.measure import time_kvm_store_loop
from ..kexec import teardown, wait
from ..kexec.strategies import TRACKER_STRATEGIES
from ..kexec.strategy import ENGINE_EMULATION, kernel_engine
from ..machine_load import LoadWindow
from .qualities import qualities

#: the platform whose TDX costs are the published-derived ones
PLATFORM = "spr-2s"


def attr_store_cost(gfns: int, repeat: int, kernel_code: bool = True
                    ) -> tuple[tuple[float, float, float], str]:
    """((median, min, max) seconds per GFN, engine) of KVM's attribute store
    (kvm_vm_set_mem_attributes(): xa_reserve(), then xa_store() of one value
    entry per GFN) over one TD of ``gfns`` GFNs, each run into a fresh array:
    the kernel's own lib/xarray.c where it is built and ``kernel_code``, else
    the emulation's per-GFN store (its reserve is a node pre-allocation)."""
    if not (kernel_code and linux.available()[0]):
        r = time_kvm_store_loop(gfns, repeat)                # the emulation's store loop
        return (tuple(r[f"seconds_{k}"] / gfns for k in ("median", "min", "max")),
                ENGINE_EMULATION)
    s, e = np.array([0], np.int64), np.array([gfns], np.int64)
    times = []
    for _ in range(repeat):                    # one mem_attr_array alive at a time
        with linux.KernelXArray() as xa:
            t0 = time.perf_counter()
            xa.reserve_then_store(s, e)
            times.append(time.perf_counter() - t0)
    per = [t / gfns for t in times]
    return (statistics.median(per), min(per), max(per)), kernel_engine()


def validation_rows(cfg) -> list[dict]:
    """validation.csv (module doc), on the machine that runs the report."""
    with LoadWindow() as window:
        cost, engine = attr_store_cost(cfg.attr_store_gfns, cfg.attr_store_repeat,
                                       cfg.kernel_code)
    df = teardown.validation(PLATFORM, attr_store_s=cost,
                             attr_engine=f"{engine}, {cfg.attr_store_gfns:,} GFNs, median "
                                         f"of {cfg.attr_store_repeat}")
    # the load beside the rows predicted from the cost timed here
    timed = df["key"].isin([a.key for a in published.ATTRIBUTES])
    df["others_cpu_share"] = np.where(timed, window.others_cpu_share, np.nan)
    df["load_1min"] = np.where(timed, window.loadavg_1min, np.nan)
    return df.to_dict("records")


def crash_safe_trackers() -> list[str]:
    """The hooked trackers whose kexec-time walk runs in crash context."""
    return [n for n, s in TRACKER_STRATEGIES.items()
            if s.seamcall_hooked and qualities(s.name).crash.startswith("yes")]


def wait_rows(cfg) -> list[dict]:
    """wait.csv (module doc): modeled on the reference platform."""
    return wait.wait_table(PLATFORM, trackers=crash_safe_trackers()).to_dict("records")
