"""The report's scan figure: every option's kexec-time scan built and timed
at each host size, beside the platform model of the same scan; and the
machine it ran on (:func:`machine`).

Table (file stem -> content):

* ``scan_time``       option x host size x platform: the measured kexec-time
  scan (median and min-max over the repeats) beside the modeled one, and
  ``model_ratio`` = modeled / measured on this machine.  ``engine`` says what
  was timed: a tracker's ``@kernel`` twin through the kernel's own iterators
  wherever one exists and the kernel's code is available; for ``pageflags``
  and ``pte-softbit`` the C layouts of struct pages and of the direct map's
  page tables (trackers/linux/pages.c, directmap.c; the struct-page array is
  measured up to the memory budget and scaled past it, ``scan_extrapolated``); the
  Python/numba emulation where no twin exists (``roaring``) or the kernel's
  code is unavailable.  The model's counts (``scan_entries``,
  ``scan_extents``, ``scan_lookups``, ``scanned_bytes``, ``scan_loads``)
  come from the structure built; its costs are the structure's own where
  calibrate measured it (``scan_costs`` says which, Platform.for_structure),
  the generic ones otherwise; ``model_note`` says where the model lies
  outside 2x of the measurement and which term it lacks there.
  ``others_cpu_share`` is the share of this machine's CPU time other tasks
  took while the point was built and timed (/proc/stat,
  trackers/machine_load.py), ``load_1min`` the 1-minute load average at its
  end: a scan is timed alone (steps.run_steps runs no other step meanwhile),
  so on a quiet machine both are near 0.
"""

from __future__ import annotations

import math
import os
import platform as platform_mod
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..base import NotRepresentable, memory_budget
from ..kernel import PAGE_SIZE
from ..kexec import PLATFORMS, STRATEGIES, KexecHost
from ..kexec.strategies import TRACKER_STRATEGIES, strategy_for_tracker
from ..kexec.strategy import ENGINE_EMULATION, engine_kind
from ..machine_load import BUSY_CPU_SHARE, LoadWindow
from ..sets import host_label, host_set
from .format import fmt_seconds


def last_level_cache_bytes() -> int:
    """This machine's largest CPU cache (sysfs), 0 where it cannot be read."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        m = re.fullmatch(r"(\d+)([KMG]?)", f.read_text().strip())
        if m:
            sizes.append(int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)])
    return max(sizes, default=0)


def cpu_model() -> str:
    """This machine's CPU model name (/proc/cpuinfo), else what Python knows."""
    cpu = platform_mod.processor() or platform_mod.machine() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine() -> str:
    """One line naming this machine: CPU model, CPUs, last-level cache."""
    cpu = cpu_model()
    llc = last_level_cache_bytes()
    return (f"{cpu}, {os.cpu_count()} CPUs" + (f", {llc >> 20} MiB last-level cache"
                                                if llc else ""))


#: the option whose kexec scan walks the direct map (no tracker: a strategy)
PTE_SOFTBIT = STRATEGIES["pte-softbit"].name
#: the model lies within this factor of a measurement, or model_note says why not
MODEL_WITHIN = 2.0


def model_note(m, plat, ratio: float, llc: int, others_cpu_share: float = math.nan) -> str:
    """Why a modeled scan lies outside MODEL_WITHIN of its measurement on this
    machine ("" within): the model's largest term, then each term the model
    lacks that the measurement shows (``plat``: the platform with the
    structure's own costs, Platform.for_structure; ``others_cpu_share``: the
    share of the CPU time other tasks took while it was timed)."""
    if not (ratio > MODEL_WITHIN or ratio < 1 / MODEL_WITHIN):
        return ""
    terms = {"dependent loads": (plat.chase_s(m.scan_loads),
                                 f"{m.scan_loads:,} x {fmt_seconds(plat.load_latency_s)}"),
             "streaming read": (plat.read_s(m.scanned_bytes),
                                f"{m.scanned_bytes / 2**20:,.0f} MiB at "
                                f"{plat.read_bps() / 1e9:.1f} GB/s"),
             "runs": (plat.work_s(runs=m.extents), f"{m.extents:,} x {fmt_seconds(plat.run_s)}"),
             "entries": (plat.work_s(entries=m.entries),
                         f"{m.entries:,} x {fmt_seconds(plat.entry_s)}"),
             "lookups": (plat.work_s(lookups=m.lookups),
                         f"{m.lookups:,} x {fmt_seconds(plat.lookup_s)}"),
             "call": (plat.call_s, fmt_seconds(plat.call_s))}
    top, (_, how) = max(terms.items(), key=lambda kv: kv[1][0])
    why = [f"model {ratio:.2g}x the measurement, largest term {top} ({how})"]
    if m.engine == ENGINE_EMULATION:
        why.append("the Python/numba emulation's scan, not the kernel's code the model's "
                   "costs are of")
    elif not plat.cost_structure:
        why.append("no costs of its own structure measured (calibrate): modeled with the "
                   "median over the structures")
    if top == "streaming read" and plat.read_bps_all < plat.read_bps_core * plat.cpus_at_reset:
        why.append(f"the calibration's all-core read ({plat.read_bps_all / 1e9:.1f} GB/s) "
                   f"measured below its one-core read ({plat.read_bps_core / 1e9:.1f} GB/s) "
                   f"caps the read rate: other tasks held CPUs while calibrate ran")
    calibrated = plat.calibration_load
    if calibrated.get("busy") and top in ("dependent loads", "streaming read"):
        share = calibrated.get("others_cpu_share")
        what = (f"other tasks took {share:.0%} of the CPU time" if share is not None
                else f"the 1-minute load average was {calibrated['loadavg_before'][0]:.1f}")
        why.append(f"calibrate measured its rates and latency while {what}: calibrate again "
                   f"on a quiet machine")
    if ratio > MODEL_WITHIN and llc and m.scanned_bytes <= llc and top in (
            "dependent loads", "streaming read"):
        why.append(f"what it reads fits this machine's {llc >> 20} MiB cache: the repeated "
                   f"scans read cache, where the model charges DRAM")
    if ratio < 1 / MODEL_WITHIN:
        fastest = ratio * m.seconds / m.seconds_min
        busy = others_cpu_share >= BUSY_CPU_SHARE
        if busy or 1 / MODEL_WITHIN <= fastest <= MODEL_WITHIN:
            # the numbers in the head, so that one sentence explains every such point
            if math.isfinite(others_cpu_share):
                why[0] += f", other tasks {others_cpu_share:.0%} of the CPU time meanwhile"
            why[0] += f", model/fastest run {fastest:.2g}"
            why.append("contention: other tasks ran while it was timed (others_cpu_share), "
                       "a term the model of a scan alone lacks")
    return "; ".join(why)


def _scan_budget(cfg) -> int:
    """The memory budget of the scan figure's structures: the report's cap, never
    above $TRACKERS_MEMORY_BUDGET."""
    return (memory_budget() if cfg.scan_budget_bytes is None
            else min(cfg.scan_budget_bytes, memory_budget()))


@dataclass
class ScanCosts:
    """What each scan of the figure (a tracker's, or pte-softbit's) cost at the
    last size it was built: name -> (seconds of its build and timed scans,
    PFNs measured).

    :func:`scan_rows` predicts its cost at the next size from it, linearly in
    the PFNs measured, and does not build one predicted over
    ``cfg.scan_time_budget_s`` (its model still stands).  steps.plan makes one
    for the scan chain, whose steps run in order of size in one task
    (steps.run_steps); a scan step run alone predicts nothing."""

    last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def predicted_s(self, name: str, measured_pfns: int) -> float | None:
        """Seconds ``name`` would take measuring ``measured_pfns`` PFNs; None
        before its first size."""
        if name not in self.last:
            return None
        spent, measured = self.last[name]
        return spent * measured_pfns / measured

    def record(self, name: str, seconds: float, measured_pfns: int) -> None:
        self.last[name] = (seconds, measured_pfns)


def scan_rows(cfg, max_pfn: int, costs: ScanCosts) -> list[dict]:
    """A step of scan_time: build and time every option's kexec-time scan at
    ``max_pfn`` (the measurement of
    :meth:`trackers.kexec.tracked.TrackerStrategy.measure` and
    ``PteSoftbit.measure``: the @kernel twin, the C layout or the
    emulation) over ``cfg.scan_shape``'s set, generated here and dropped when
    the step returns; an option ``costs`` predicts over
    ``cfg.scan_time_budget_s`` is not built -- its model still is (estimate())."""
    starts, ends = host_set(cfg.scan_shape, max_pfn, cfg.seed)
    pages = int((ends - starts).sum())
    # every option scans the same set: the hooks mark it, and KVM's walk finds it
    # (one default TD, GFN = PFN, as the kvm tracker's contract has it)
    host = KexecHost(max_pfn=max_pfn, ram=([0], [max_pfn]), private=(starts, ends),
                     kvm_visible=(starts, ends), name=f"{cfg.scan_shape} {host_label(max_pfn)}")
    llc = last_level_cache_bytes()
    where = machine()
    rows = []
    for name in [*cfg.trackers, PTE_SOFTBIT]:
        strategy = (strategy_for_tracker(name) if name in TRACKER_STRATEGIES
                    else STRATEGIES[name])
        base = {"tracker": name, "option": strategy.option, "host_pfns": max_pfn,
                "host_bytes": max_pfn * PAGE_SIZE, "host": host_label(max_pfn),
                "set": cfg.scan_shape, "private_pages": pages, "extents": int(starts.size),
                "machine": where}
        skipped = ""
        predicted = costs.predicted_s(name, strategy.measured_pfns(
            max_pfn, cfg.kernel_code, _scan_budget(cfg)))
        if predicted is not None and predicted > cfg.scan_time_budget_s:
            skipped = (f"not built: predicted {fmt_seconds(predicted)}, over the "
                       f"{fmt_seconds(cfg.scan_time_budget_s)} budget of one size")
        try:
            with LoadWindow() as window:          # how busy the machine was meanwhile
                m = strategy.measure(host, emulate=not skipped, build_limit_pfns=max_pfn,
                                     kernel_code=cfg.kernel_code, repeat=cfg.scan_repeat,
                                     budget_bytes=_scan_budget(cfg))
        except NotRepresentable as exc:
            rows.append({**base, "skipped": f"not representable: {exc}"})
            continue
        if m.repeat:
            assert m.extents == starts.size, \
                f"{name}: scan returned {m.extents} extents, set has {starts.size}"
            costs.record(name, m.populate_s + m.seconds / m.max_pfn * m.measured_pfns
                         * m.repeat, m.measured_pfns)
        else:
            skipped = skipped or m.notes or "not built"
        structure = strategy.scan_structure(m.engine)
        for pname, generic in PLATFORMS.items():
            plat = generic.for_structure(structure)
            modeled = plat.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents,
                                  m.lookups)
            low, high = plat.scan_s_range(m.scanned_bytes, m.scan_loads, m.entries,
                                          m.extents, m.lookups)
            here = pname == "this-machine" and m.repeat > 0
            ratio = modeled / m.seconds if here else math.nan
            rows.append({**base,
                         "engine": m.engine, "engine_kind": engine_kind(m.engine),
                         "scan_measured_s": m.seconds,
                         "scan_measured_min_s": m.seconds_min,
                         "scan_measured_max_s": m.seconds_max,
                         "scan_runs": m.repeat,
                         "scan_measured_pfns": m.measured_pfns,
                         "scan_extrapolated": m.extrapolated,
                         "scan_provenance": m.provenance,
                         "modeled_bytes": m.modeled_bytes,
                         "scanned_bytes": m.scanned_bytes, "scan_loads": m.scan_loads,
                         "scan_entries": m.entries, "scan_extents": m.extents,
                         "scan_lookups": m.lookups,
                         "platform": pname, "platform_kind": plat.kind,
                         "scan_costs": plat.costs_label(),
                         "platform_cpus": plat.cpus_at_reset,
                         "scan_modeled_s": modeled, "scan_modeled_low_s": low,
                         "scan_modeled_high_s": high, "model_ratio": ratio,
                         "model_note": (model_note(m, plat, ratio, llc,
                                                   window.others_cpu_share) if here else ""),
                         "others_cpu_share": window.others_cpu_share if m.repeat else math.nan,
                         "load_1min": window.loadavg_1min if m.repeat else math.nan,
                         "skipped": skipped})
    return rows
