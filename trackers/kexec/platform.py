"""The platform a kexec runs on: how fast it reads, clears and chases pointers.

A :class:`Platform` turns the byte and access counts of a strategy into
seconds.  Every field is a rate or a latency with its source in
``Platform.sources``; ``Platform.kind`` says whether the figures were
*measured* on this machine (``tdx-trackers calibrate``), are an
*estimate* from docs/kernel-facts.md, or are an uncalibrated *fallback*.

Time model (modeled, never measured here):

* streaming read of B bytes on k CPUs:   B / min(k * read_core, read_all)
* clearing B bytes on k CPUs:            B / min(k * clear_core, clear_all)
* n dependent loads (a pointer walk):    n * load_latency / k
* the scan's own work on k CPUs:         (E * entry + R * run + L * lookup) / k
  for E entries tested (slots, pivots, bitmap longs, PTEs, struct pages), R runs
  emitted and L per-page lookups in another structure (kvm: guest_memfd)
* a kexec-time scan:  call + max(streaming read, its own work) + dependent
  loads -- the prefetcher streams lines while the core tests entries, so the
  two overlap; a dependent load stalls the walk, so it adds; ``call`` is the
  fixed cost of one scan.

The per-entry, per-run and per-lookup costs are ASSUMED on the presets
(trackers/kernel.py SCAN_*_S, each with a (low, high) range
:meth:`Platform.scan_s_range` gives), and the per-call cost is 0 there: the
kernel's loop at kexec has no harness around it.  ``this-machine`` measures
all four (``tdx-trackers calibrate``, :mod:`trackers.kexec.scan_costs`) --
the call is this machine's harness (Python's call into the structure, its
chunk buffers), modeled so that the model predicts what the report times --
and its ``measured`` ranges, the min-max of the calibration's rounds, replace
the ASSUMED ones there.  A calibration file from before those figures keeps
the ASSUMED costs (a call of 0), and its sources say so.  Rates and latency
are measured or estimated per platform.

Per structure.  The kernel's iterators and the C layouts' loops cost very
different amounts per entry and per run (a bitmap long 0.3 ns, an xa_node
slot 3-4 ns here), so calibrate measures every structure the report times
on its own, and ``structure_costs`` keeps them: structure -> field ->
(median, low, high, source).  :meth:`Platform.for_structure` is the platform with
one structure's costs in place of the generic ones (the median over the
structures), field by field where it has them -- and, for the direct map's
scattered page tables, the cost of one table page the prefetcher cannot
follow in place of the pointer-chase latency; the option's strategy names its
structure (``Strategy.scan_structure``).  The presets have none: one cost
per entry and per run for every structure is their simplification.

TDX's own per-page costs are ASSUMED on every platform (no TDX runs here),
their central values derived from the published TD-teardown times
(:func:`trackers.published.derive`, docs/validation.md): ``seamcall_s``, one
per-page SEAMCALL (the reclaim, and each step of Dynamic Page Removal), and
``vcpu_kick_s``, one vCPU's exit per page removed while the TD runs.
TDH.SYS.DISABLE is the TDX module reclaiming and clearing every TD page on one
CPU: per page one reclaim and one clear (:attr:`Platform.sys_disable_page_s`),
the TD-teardown path the kernel's own reclaim takes
(:mod:`trackers.kexec.teardown`).

Assumed parameters, for sensitivity studies: :data:`ASSUMED_RANGES` maps
every Platform field that is ASSUMED on every platform to ``(low, high,
source)``; ``Platform.assumed`` adds the fields a preset assumes besides (the
estimated rates of ``spr-2s``), and :meth:`Platform.assumed_ranges` gives
both.  Varying one is ``dataclasses.replace(platform, **{field: value})``;
every strategy's ``assess`` reads the platform's fields only (no module
constant stands in for one), so a replaced platform changes its row.
:meth:`Platform.bounds` gives the two corners (every assumed field at the
end that makes times shortest, and longest) the verdict's
``downtime_low_s`` / ``downtime_high_s`` come from.

``cpus_at_reset`` is how many CPUs the reset may use.  At the point the
kernel resets TDX pages today -- machine_kexec() -> the reset before
relocate_kernel, or native_machine_crash_shutdown() for kdump -- every other
CPU has already been stopped (stop_other_cpus() / crash_smp_send_stop()), so
the kernel has exactly ONE CPU.  More CPUs are available only if the reset is
moved earlier (e.g. a reboot notifier before the CPUs are stopped); make that
choice explicit by building a Platform with a larger ``cpus_at_reset``.

The clearing rate is a parameter.  The kernel clears with MOVDIR64B
(tdx_quirk_reset_paddr(), 64 B per instruction, one mb() per call) and no
published MOVDIR64B throughput exists (kernel-facts).  ``this-machine`` clears
at the rate calibrate measured over 4 KiB targets (one page, then the fence,
as tdx_quirk_reset_page() resets a page): MOVDIR64B where the CPU has it,
else non-temporal stores, a stand-in its sources name.  A calibration file
without clear figures (an older format, or no C compiler) clears at the
measured streaming-write rate (memset), also a stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .. import kernel, published
from ..linux.clear import ENGINE_MOVDIR64B

GB = 1e9
#: the per-page costs the published TD teardowns imply (docs/validation.md)
DERIVED = published.derive()

#: the ASSUMED scan costs and their (low, high) ranges (trackers/kernel.py)
SCAN_COST_RANGES = {"entry_s": kernel.SCAN_ENTRY_S_RANGE, "run_s": kernel.SCAN_RUN_S_RANGE,
                    "lookup_s": kernel.SCAN_LOOKUP_S_RANGE}
#: the calibration figure (calibrate.py FIGURES) each scan cost is read from
SCAN_COST_FIGURES = {"entry_s": "scan_entry_s", "run_s": "scan_run_s",
                     "lookup_s": "scan_lookup_s", "call_s": "scan_call_s"}
#: the scan costs every calibration with them has; a calibration without
#: ``call_s`` (older) still models with the other three
SCAN_COSTS_REQUIRED = ("entry_s", "run_s", "lookup_s")
#: the calibration's per-structure figures (its ``scan_costs``) -> the field
#: each stands in for: the scan costs, and a structure's own cost per
#: dependent load (the direct map's scattered page tables) for the latency
STRUCTURE_COST_FIGURES = {**{k: f for f, k in SCAN_COST_FIGURES.items()},
                          "load_latency_s": "load_latency_s"}
#: the fields a scan's band varies (scan_s_range): the per-entry, per-run and
#: per-lookup costs over their ranges, and the per-call and per-load costs
#: where they were measured
SCAN_BAND_FIELDS = ("entry_s", "run_s", "lookup_s", "call_s", "load_latency_s")
#: the calibration figures this-machine clears at (one core, all cores): 4 KiB
#: targets, a page then the fence, as tdx_quirk_reset_page() resets a page
CLEAR_RATE_FIGURES = ("clear_4k_bps_core", "clear_4k_bps_all")
#: every Platform field ASSUMED on every platform: field -> (low, high, source).
#: A field whose name holds "bps" is a rate (its high end makes times shorter);
#: every other is a cost in seconds (its low end makes times shorter).
ASSUMED_RANGES: dict[str, tuple[float, float, str]] = {
    "entry_s": (*kernel.SCAN_ENTRY_S_RANGE,
                "ASSUMED: 2-6 instructions per 8-B entry at 2-4 GHz, IPC 1-3 "
                "(trackers/kernel.py SCAN_ENTRY_S)"),
    "run_s": (*kernel.SCAN_RUN_S_RANGE,
              "ASSUMED: a single-page-run microbenchmark of the kernel's iterators gave "
              "11-28 ns (trackers/kernel.py SCAN_RUN_S)"),
    "lookup_s": (*kernel.SCAN_LOOKUP_S_RANGE,
                 "ASSUMED: an xa_load() microbenchmark of a guest_memfd-sized XArray gave "
                 "30 ns (trackers/kernel.py SCAN_LOOKUP_S)"),
    "seamcall_s": (*kernel.TDH_SEAMCALL_S_RANGE,
                   f"ASSUMED 0.5-10 us per per-page SEAMCALL (trackers/kernel.py "
                   f"TDH_SEAMCALL_S_RANGE); central {DERIVED.seamcall_s * 1e6:.2f} us derived "
                   f"from the published TD-teardown times (docs/validation.md)"),
    "vcpu_kick_s": (*kernel.VCPU_KICK_S_RANGE,
                    f"ASSUMED 0.1-2 us per vCPU exit per page removed from a running TD "
                    f"(trackers/kernel.py VCPU_KICK_S_RANGE); central "
                    f"{DERIVED.vcpu_kick_s * 1e6:.2f} us derived from the published "
                    f"TD-teardown times (docs/validation.md)"),
}

#: the Platform fields that are rates (bytes/s) or costs (seconds): all > 0
RATE_AND_COST_FIELDS = ("clear_bps_core", "clear_bps_all", "read_bps_core", "read_bps_all",
                        "load_latency_s", "entry_s", "run_s", "lookup_s", "seamcall_s",
                        "vcpu_kick_s")

#: where every platform's scan costs come from (the same ASSUMED figures)
SCAN_COST_SOURCES = {
    "call_s": "0: the kernel's loop at kexec has no harness call (calibrate measures "
              "this machine's)",
    "entry_s": "ASSUMED 0.5-2 ns per entry tested (trackers/kernel.py SCAN_ENTRY_S)",
    "run_s": "ASSUMED 10-40 ns per run emitted (trackers/kernel.py SCAN_RUN_S; "
             "a single-page-run microbenchmark gave 11-28 ns here)",
    "lookup_s": "ASSUMED 15-60 ns per per-page lookup (trackers/kernel.py SCAN_LOOKUP_S; "
                "an xa_load microbenchmark gave 30 ns here)",
    "seamcall_s": ASSUMED_RANGES["seamcall_s"][2],
    "vcpu_kick_s": ASSUMED_RANGES["vcpu_kick_s"][2],
}


@dataclass(frozen=True)
class Platform:
    """Rates and latencies of one machine; see the module doc for the model.

    clear_bps_core / clear_bps_all: bytes per second one core / all cores
        clear (MOVDIR64B stand-in: streaming write).
    read_bps_core / read_bps_all: streaming-read bytes per second.
    load_latency_s: one dependent load that misses the caches (pointer chase).
    cpus_at_reset: CPUs the reset uses; 1 in machine_kexec (others stopped).
    cpus_total: CPUs of the machine (the bound on a moved-earlier reset).
    kind: "measured", "estimate" or "fallback"; sources: field -> source.
    entry_s / run_s / lookup_s: CPU seconds a scan spends per entry tested,
        per run emitted and per per-page lookup (ASSUMED: trackers/kernel.py).
    call_s: fixed seconds of one scan (0 on the presets; measured here).
    seamcall_s / vcpu_kick_s: one per-page SEAMCALL, one vCPU's exit per page
        removed from a running TD (ASSUMED on every platform: ASSUMED_RANGES).
    assumed: field -> (low, high, source) for the fields this platform
        assumes besides ASSUMED_RANGES (a preset's estimated rates).
    measured: field -> (low, high, source) for fields ASSUMED_RANGES names
        that this platform measured instead (this-machine's scan costs: the
        min-max of the calibration's rounds); they are no longer assumed.
    structure_costs: structure -> field -> (median, low, high, source): each
        structure's own measured scan costs (for_structure).
    cost_structure: the structure whose costs this platform carries ("":
        the generic ones).
    calibration_load: how busy the machine was while it was measured (the
        calibration's ``load``: machine_load.machine_load); {} unmeasured.
    """

    name: str
    clear_bps_core: float
    clear_bps_all: float
    read_bps_core: float
    read_bps_all: float
    load_latency_s: float
    cpus_total: int
    cpus_at_reset: int = 1
    kind: str = "estimate"
    sources: dict = field(default_factory=dict)
    entry_s: float = kernel.SCAN_ENTRY_S
    run_s: float = kernel.SCAN_RUN_S
    lookup_s: float = kernel.SCAN_LOOKUP_S
    seamcall_s: float = DERIVED.seamcall_s
    vcpu_kick_s: float = DERIVED.vcpu_kick_s
    call_s: float = 0.0
    assumed: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)
    structure_costs: dict = field(default_factory=dict)
    cost_structure: str = ""
    calibration_load: dict = field(default_factory=dict)

    def __post_init__(self):
        for f in RATE_AND_COST_FIELDS:
            v = getattr(self, f)
            if not v > 0:
                raise ValueError(f"platform {self.name!r}: {f} must be > 0, got {v!r}")
        if not self.call_s >= 0:
            raise ValueError(f"platform {self.name!r}: call_s must be >= 0, got "
                             f"{self.call_s!r}")
        known = (*RATE_AND_COST_FIELDS, "call_s")
        ranges = [("assumed", f, r) for f, r in self.assumed.items()]
        ranges += [("measured", f, r) for f, r in self.measured.items()]
        for s, costs in self.structure_costs.items():
            for f, (med, lo, hi, _) in costs.items():
                if not lo <= med <= hi:
                    raise ValueError(f"platform {self.name!r}: {s}'s {f} {med!r} must lie "
                                     f"in its range ({lo!r}, {hi!r})")
                ranges.append((f"{s}'s", f, (lo, hi)))
        for what, f, r in ranges:
            if f not in known:
                raise ValueError(f"platform {self.name!r}: {what} field {f!r} is not a "
                                 f"rate or cost; known: {', '.join(known)}")
            if not 0 < r[0] <= r[1]:
                raise ValueError(f"platform {self.name!r}: {what} range of {f} must "
                                 f"satisfy 0 < low <= high, got ({r[0]!r}, {r[1]!r})")
        if not 1 <= self.cpus_at_reset <= self.cpus_total:
            raise ValueError(f"platform {self.name!r}: cpus_at_reset {self.cpus_at_reset} "
                             f"must lie in [1, cpus_total={self.cpus_total}]")

    # --- the time model (modeled) -----------------------------------------
    def read_bps(self, cpus: int | None = None) -> float:
        k = self.cpus_at_reset if cpus is None else cpus
        return min(k * self.read_bps_core, self.read_bps_all)

    def clear_bps(self, cpus: int | None = None) -> float:
        k = self.cpus_at_reset if cpus is None else cpus
        return min(k * self.clear_bps_core, self.clear_bps_all)

    @property
    def sys_disable_page_s(self) -> float:
        """Modeled seconds TDH.SYS.DISABLE spends per TDX page on its one CPU: the
        module's reclaim (one per-page SEAMCALL's work) and one 4 KiB clear."""
        return self.seamcall_s + kernel.PAGE_SIZE / self.clear_bps_core

    @property
    def sys_disable_bps(self) -> float:
        """TDH.SYS.DISABLE's modeled rate, bytes of TDX memory per second."""
        return kernel.PAGE_SIZE / self.sys_disable_page_s

    def sys_disable_s(self, pages: float) -> float:
        """Modeled seconds of TDH.SYS.DISABLE over ``pages`` TDX pages: one CPU,
        whatever cpus_at_reset says (tdx_sys_disable() loops on its caller)."""
        return float(pages) * self.sys_disable_page_s

    def read_s(self, nbytes: float, cpus: int | None = None) -> float:
        """Modeled seconds to stream-read ``nbytes``."""
        return float(nbytes) / self.read_bps(cpus)

    def clear_s(self, nbytes: float, cpus: int | None = None) -> float:
        """Modeled seconds to clear ``nbytes`` (MOVDIR64B stand-in)."""
        return float(nbytes) / self.clear_bps(cpus)

    def chase_s(self, loads: float, cpus: int | None = None) -> float:
        """Modeled seconds for ``loads`` dependent cache-missing loads."""
        k = self.cpus_at_reset if cpus is None else cpus
        return float(loads) * self.load_latency_s / k

    def work_s(self, entries: float = 0, runs: float = 0, lookups: float = 0,
               cpus: int | None = None) -> float:
        """Modeled CPU seconds of a scan's own work: ``entries`` tested,
        ``runs`` emitted, ``lookups`` per page in another structure."""
        k = self.cpus_at_reset if cpus is None else cpus
        return (float(entries) * self.entry_s + float(runs) * self.run_s
                + float(lookups) * self.lookup_s) / k

    def scan_s(self, scanned_bytes: float, loads: float, entries: float = 0, runs: float = 0,
               lookups: float = 0, cpus: int | None = None) -> float:
        """Modeled seconds of a kexec-time scan: its fixed cost per call, then
        the streaming read of its bytes or its own work (entries, runs,
        lookups), whichever is longer (they overlap), plus one dependent load
        per pointer-walked node."""
        return (self.call_s
                + max(self.read_s(scanned_bytes, cpus),
                      self.work_s(entries, runs, lookups, cpus))
                + self.chase_s(loads, cpus))

    def scan_s_range(self, scanned_bytes: float, loads: float, entries: float = 0,
                     runs: float = 0, lookups: float = 0,
                     cpus: int | None = None) -> tuple[float, float]:
        """:meth:`scan_s` with every per-entry, per-run and per-lookup cost at
        the low and at the high end of its range (:meth:`scan_cost_ranges`)."""
        ranges = self.scan_cost_ranges()
        return tuple(dataclasses.replace(self, **{f: r[i] for f, r in ranges.items()})
                     .scan_s(scanned_bytes, loads, entries, runs, lookups, cpus)
                     for i in (0, 1))

    def scan_cost_ranges(self) -> dict[str, tuple[float, float]]:
        """(low, high) of each scan cost: the measured min-max where this
        platform measured it, else the ASSUMED range (trackers/kernel.py) --
        the per-call and per-load costs only where measured (SCAN_BAND_FIELDS)."""
        return {f: tuple(self.measured[f][:2]) if f in self.measured else SCAN_COST_RANGES[f]
                for f in SCAN_BAND_FIELDS if f in self.measured or f in SCAN_COST_RANGES}

    def for_structure(self, structure: str | None) -> "Platform":
        """This platform with ``structure``'s own measured scan costs in place
        of the generic ones, field by field where it has them (module doc);
        itself where it has none (``cost_structure`` says which)."""
        own = self.structure_costs.get(structure) if structure else None
        if not own:
            return self
        return dataclasses.replace(
            self, cost_structure=structure, **{f: v[0] for f, v in own.items()},
            measured={**self.measured, **{f: v[1:] for f, v in own.items()}},
            sources={**self.sources, **{f: v[3] for f, v in own.items()}})

    def costs_label(self) -> str:
        """Which scan costs this platform models with, in words: its
        structure's and the fields it measured, then the generic ones."""
        if not self.cost_structure:
            return "generic"
        own = [f for f in SCAN_BAND_FIELDS if f in self.structure_costs[self.cost_structure]]
        rest = [f for f in ("entry_s", "run_s") if f not in own]   # lookups: kvm's alone
        words = {"load_latency_s": "load"}
        name = lambda fs: ", ".join(words.get(f, f.removesuffix("_s")) for f in fs)  # noqa: E731
        return f"{self.cost_structure} ({name(own)})" + (f"; generic {name(rest)}" if rest
                                                         else "")

    def assumed_ranges(self) -> dict[str, tuple[float, float, str]]:
        """Every ASSUMED field of this platform: ASSUMED_RANGES and ``assumed``,
        less what it ``measured``."""
        return {f: r for f, r in {**ASSUMED_RANGES, **self.assumed}.items()
                if f not in self.measured}

    def bounds(self) -> tuple["Platform", "Platform"]:
        """(fast, slow): this platform with every assumed field at the end of
        its range that makes every modeled time shortest, and longest (a rate's
        high end is fast, a cost's low end is).  Every time of the model is
        monotone in each field, so the two bracket every combination."""
        fast, slow = {}, {}
        for f, (lo, hi, _) in self.assumed_ranges().items():
            rate = "bps" in f
            fast[f], slow[f] = (hi, lo) if rate else (lo, hi)
        return dataclasses.replace(self, **fast), dataclasses.replace(self, **slow)

    def with_cpus(self, cpus_at_reset: int) -> "Platform":
        """The same machine with the reset moved to where ``cpus_at_reset`` CPUs run."""
        return dataclasses.replace(self, cpus_at_reset=int(cpus_at_reset))

    def describe(self) -> str:
        return (f"{self.name} [{self.kind}]: clear {self.clear_bps_core / GB:.1f} GB/s/core, "
                f"{self.clear_bps_all / GB:.1f} GB/s all-core; read "
                f"{self.read_bps_core / GB:.1f} GB/s/core, {self.read_bps_all / GB:.1f} GB/s "
                f"all-core; load latency {self.load_latency_s * 1e9:.0f} ns; scan work "
                f"{self.entry_s * 1e9:.1f} ns/entry, {self.run_s * 1e9:.0f} ns/run, "
                f"{self.lookup_s * 1e9:.0f} ns/lookup, {self.call_s * 1e6:.0f} us/call "
                f"({'measured' if 'entry_s' in self.measured else 'assumed'}"
                f"{'; ' + self.costs_label() if self.cost_structure else ''}); SEAMCALL "
                f"{self.seamcall_s * 1e6:.2f} us/page (assumed), TDH.SYS.DISABLE "
                f"{self.sys_disable_bps / GB:.2f} GB/s; "
                f"{self.cpus_at_reset} of {self.cpus_total} CPUs at reset")


# --------------------------------------------------------------------------
# presets

#: the rates spr-2s estimates rather than measures: field -> (low, high, source)
#: the one-core clear's range: the published-derived MOVDIR64B rates (every row,
#: either reading of "GB") to rep stosq in 1 GiB chunks (kernel.SPR_CLEAR_BPS_CORE_RANGE)
SPR_CLEAR_BPS_CORE_RANGE = (min(*published.clear_rates(), kernel.SPR_CLEAR_BPS_CORE_RANGE[0]),
                            kernel.SPR_CLEAR_BPS_CORE_RANGE[1])
SPR_ASSUMED = {
    "clear_bps_core": (*SPR_CLEAR_BPS_CORE_RANGE,
                       f"ESTIMATE: {SPR_CLEAR_BPS_CORE_RANGE[0] / GB:.2f} GB/s (the slowest "
                       f"MOVDIR64B clear the published TD teardowns imply, docs/validation.md) "
                       f"to 38 GB/s (rep stosq, 1 GiB chunks, one Milan core; "
                       f"docs/kernel-facts.md)"),
    "read_bps_core": (*kernel.SPR_READ_BPS_CORE_RANGE,
                      "ESTIMATE: ~10 GB/s one Xeon core (docs/kernel-facts.md, streaming "
                      "read measured on Xeon-class VMs), +-40 %"),
    "load_latency_s": (*kernel.SPR_LOAD_LATENCY_S_RANGE,
                       "ESTIMATE: 2S server DRAM load-to-use, local 80 ns to remote 150 ns"),
}

def spr_2s() -> Platform:
    """Two-socket Sapphire Rapids, an ESTIMATE from docs/kernel-facts.md."""
    return Platform(
        name="spr-2s",
        clear_bps_core=DERIVED.clear_bps,
        clear_bps_all=kernel.SPR_CLEAR_BPS_ALL,
        read_bps_core=kernel.SPR_READ_BPS_CORE,
        read_bps_all=kernel.SPR_READ_BPS_ALL,
        load_latency_s=kernel.SPR_LOAD_LATENCY_S,
        cpus_total=kernel.SPR_2S_CPUS,
        kind="estimate",
        sources={
            "clear_bps_core": (f"published-derived: {DERIVED.clear_bps / GB:.2f} GB/s, the "
                               f"MOVDIR64B clear of the TD teardown's reclaim path (the 40 % "
                               f"of KVM_TDX_TERMINATE_VM's per-page time; docs/validation.md); "
                               f"no MOVDIR64B rate is published as such"),
            "clear_bps_all": "kernel-facts: 2S SPR peak 614 GB/s, sustained 75-85 %; low end "
                             "(75 %) for writes",
            "read_bps_core": "docs/kernel-facts.md: ~10 GB/s streaming read on one "
                             "Xeon-class core; assumed the same per SPR core (estimate)",
            "read_bps_all": "kernel-facts: 614 GB/s peak x 80 % sustained",
            "load_latency_s": "assumption: ~110 ns local DRAM load-to-use on 2S server "
                              "Xeon; no figure in kernel-facts",
            "cpus_total": "2 sockets x 56 cores (Xeon Platinum 8480+), 2 threads each",
            "cpus_at_reset": "machine_kexec runs after stop_other_cpus(): one CPU",
            **SCAN_COST_SOURCES,
        },
        assumed=SPR_ASSUMED,
    )


def fallback_this_machine() -> Platform:
    """This machine before calibration: figures seen on machines like it
    (docs/kernel-facts.md, "Measured on these machines"; FALLBACK, not measured)."""
    cpus = os.cpu_count() or 1
    return Platform(
        name="this-machine",
        clear_bps_core=7.5 * GB, clear_bps_all=7.5 * GB * cpus,
        read_bps_core=10 * GB, read_bps_all=10 * GB * cpus,
        load_latency_s=100e-9, cpus_total=cpus, kind="fallback",
        sources={"*": "docs/kernel-facts.md (a.fill 6-9 GB/s, a.sum ~10 GB/s on one core of "
                      "a 2-core KVM guest); latency assumed "
                      "100 ns; run `tdx-trackers calibrate` to measure",
                 **SCAN_COST_SOURCES},
    )


def calibration_path() -> Path:
    """Where calibrate stores this machine's figures: $TRACKERS_CALIBRATION, else
    $XDG_CACHE_HOME/tdx-trackers/calibration.json (~/.cache by default)."""
    env = os.environ.get("TRACKERS_CALIBRATION")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tdx-trackers" / "calibration.json"


def platform_from_calibration(doc: dict) -> Platform:
    """A measured Platform from a calibration JSON document (see calibrate.py).
    A document of an older format -- without the clear or the scan-cost
    figures -- still loads: the clear at the streaming-write rate, the scan
    costs ASSUMED, and the sources say which and why."""
    fig = doc["figures"]
    cpus = int(doc["cpus_total"])
    src = f"measured by `tdx-trackers calibrate` at {doc.get('measured_at', '?')}, " \
          f"median of {doc.get('repeat', '?')} repeats"
    clear_core, clear_all, clear_src = _clear_from_calibration(doc, src)
    costs, measured, cost_sources = _scan_costs_from_calibration(doc, src)
    structures = _structure_costs_from_calibration(doc, src)
    # the measurements as they are: an all-core figure below the one-core one
    # caps every CPU count (read_bps(k) = min(k * core, all)); calibrate warns
    return Platform(
        name="this-machine",
        clear_bps_core=clear_core,
        clear_bps_all=clear_all,
        read_bps_core=fig["read_bps_core"],
        read_bps_all=fig["read_bps_all"],
        load_latency_s=fig["load_latency_s"], cpus_total=cpus, kind="measured",
        sources={"*": src,
                 "clear_bps_core": clear_src, "clear_bps_all": clear_src,
                 "cpus_at_reset": "machine_kexec runs after stop_other_cpus(): one CPU",
                 **SCAN_COST_SOURCES, **cost_sources},
        measured=measured, structure_costs=structures, calibration_load=doc.get("load") or {},
        **costs,
    )


def _clear_from_calibration(doc: dict, src: str) -> tuple[float, float, str]:
    """(one core, all cores, source) of the clear: the 4 KiB-target clear the
    calibration timed -- MOVDIR64B, or the stand-in it names -- else its
    streaming write (memset)."""
    fig = doc["figures"]
    engine = doc.get("engines", {}).get(CLEAR_RATE_FIGURES[0])
    if all(k in fig for k in CLEAR_RATE_FIGURES) and engine:
        how = ("MOVDIR64B" if engine == ENGINE_MOVDIR64B
               else f"{engine}: NOT MOVDIR64B, which this CPU lacks")
        return (fig[CLEAR_RATE_FIGURES[0]], fig[CLEAR_RATE_FIGURES[1]],
                f"{src}; 4 KiB targets (a page, then MFENCE, as tdx_quirk_reset_page()), {how}")
    why = ((doc.get("clear") or {}).get("reason")
           or "the calibration file has no clear figures (an older format): run "
              "`tdx-trackers calibrate` again to time the clear")
    return (fig["write_bps_core"], fig["write_bps_all"],
            f"{src}; streaming write (memset), NOT MOVDIR64B ({why})")


def _measured_range(samples, med: float) -> tuple[float, float]:
    """(low, high) of a cost over the calibration's rounds: a disturbed round
    (a difference of two scans that came out <= 0) is no lower bound."""
    lo, hi = min(samples, default=med), max(samples, default=med)
    return (lo if 0 < lo <= med else med), max(hi, med)


def _scan_costs_from_calibration(doc: dict, src: str) -> tuple[dict, dict, dict]:
    """(field -> cost, field -> measured (low, high, source), field -> source)
    of the generic scan costs: the calibration's, where it measured the
    per-entry, per-run and per-lookup costs as costs (> 0) -- and the per-call
    one where it has it -- else nothing (the ASSUMED defaults) and sources
    saying why."""
    fig, spread = doc["figures"], doc.get("spread", {})
    engines = doc.get("engines", {})
    keys = SCAN_COST_FIGURES
    required = {f: keys[f] for f in SCAN_COSTS_REQUIRED}
    if not all(k in fig for k in required.values()):
        why = ("the calibration file has no measured scan costs (an older format): run "
               "`tdx-trackers calibrate` again to measure them")
        return {}, {}, {f: f"{SCAN_COST_SOURCES[f]}; {why}" for f in keys}
    bad = [k for k in keys.values() if k in fig and not fig[k] > 0]
    if bad:
        text = ", ".join(f"{k} {fig[k] * 1e9:.2f} ns" for k in bad)
        why = (f"the calibration measured {text}, not a cost (other tasks disturbed it): "
               f"calibrate again on a quiet machine")
        return {}, {}, {f: f"{SCAN_COST_SOURCES[f]}; {why}" for f in keys}
    costs, measured, sources = {}, {}, {}
    for f, k in keys.items():
        if k not in fig:
            sources[f] = (f"{SCAN_COST_SOURCES[f]}; the calibration file has no per-call "
                          f"figure (an older format)")
            continue
        med = fig[k]
        lo, hi = _measured_range([spread[k]["min"], spread[k]["max"]] if k in spread else [],
                                 med)
        sources[f] = (f"{src}: {_ns(med)} ns per {f[:-2]} ({_ns(lo)}-{_ns(hi)} over the "
                      f"rounds), median over the structures, "
                      f"{engines.get(k, 'engine unknown')} (trackers/kexec/scan_costs.py)")
        costs[f], measured[f] = med, (lo, hi, sources[f])
    return costs, measured, sources


def _ns(seconds: float) -> str:
    return f"{seconds * 1e9:.3g}"


#: the structures of the C layouts whose costs calibrate measures
#: (trackers/kexec/scan_costs.py), named for the file that holds each layout
STRUCTURE_STRUCT_PAGES = "struct pages (pages.c)"
STRUCTURE_PAGE_TABLES = "page tables (directmap.c)"
#: names a calibration file of an earlier version keys a structure's costs
#: by: the page tables were pages.c's until they moved to directmap.c
FORMER_STRUCTURE_NAMES = {"page tables (pages.c)": STRUCTURE_PAGE_TABLES}


def _structure_costs_from_calibration(doc: dict, src: str) -> dict:
    """structure -> field -> (median, low, high, source): every structure's
    own scan costs in the calibration (its ``scan_costs``), those whose
    median is a cost (> 0); none in a file from before them."""
    engines = doc.get("scan_engines", {})
    out: dict[str, dict] = {}
    for figure, by_structure in doc.get("scan_costs", {}).items():
        f = STRUCTURE_COST_FIGURES.get(figure)
        if f is None:
            continue
        for structure, samples in by_structure.items():
            structure = FORMER_STRUCTURE_NAMES.get(structure, structure)
            med = statistics.median(samples)
            if not med > 0:
                continue
            lo, hi = _measured_range(samples, med)
            what = "dependent load" if f == "load_latency_s" else f[:-2]
            out.setdefault(structure, {})[f] = (
                med, lo, hi,
                f"{src}: {_ns(med)} ns per {what} of {structure}'s scan ({_ns(lo)}-{_ns(hi)} "
                f"over the rounds), {engines.get(structure, 'engine unknown')} "
                f"(trackers/kexec/scan_costs.py)")
    return out


def this_machine(path=None) -> Platform:
    """The calibrated Platform if a calibration file exists, else the fallback."""
    p = Path(path) if path else calibration_path()
    try:
        doc = json.loads(p.read_text())
        return platform_from_calibration(doc)
    except FileNotFoundError:
        return fallback_this_machine()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"calibration file {p} (the this-machine platform; "
                         f"$TRACKERS_CALIBRATION) cannot be read: {exc!r}; run "
                         f"`tdx-trackers calibrate` to write it again") from None


class _Presets(dict):
    """name -> Platform; ``this-machine`` is read from the calibration file on
    each lookup, so a fresh ``calibrate`` is seen without re-importing."""

    def __missing__(self, name):
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(self.keys())}")

    def __getitem__(self, name):
        if name == "this-machine":
            return this_machine()
        return super().__getitem__(name)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def values(self):
        return [self[k] for k in self.keys()]

    def items(self):
        return [(k, self[k]) for k in self.keys()]


PLATFORMS: dict[str, Platform] = _Presets({"this-machine": None, "spr-2s": spr_2s()})


def get_platform(platform) -> Platform:
    """A Platform, or a preset name -> Platform; ValueError for an unknown name."""
    if isinstance(platform, Platform):
        return platform
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
    return PLATFORMS[platform]
