"""What a report run covers: :class:`ReportConfig`, the default and the
``--quick`` run, and the named scenarios the default run leaves out.

The default run fits 3 minutes on 2 shared cores; ``--quick`` runs the same
computation on small inputs in seconds (:func:`quick_covers` says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kexec.sensitivity import CPU_COUNTS
from ..registry import TRACKERS
from ..sets import host_label
from ..shard import DEFAULT_SHARD_PFNS
from ..workloads import SCENARIOS, UserHost


@dataclass
class ReportConfig:
    """What a report run covers; DEFAULT takes under 3 minutes on 2 cores (its
    scan figure builds the kernel-code twins up to 256 GiB), QUICK seconds."""

    sweep_hosts: list[int]                 # memory_vs_host sizes (PFNs)
    sweep_shape: str
    fraction_host: int                     # bits_per_page host (PFNs)
    fractions: list[float]
    scan_hosts: list[int]                  # scan_time sizes (PFNs), built and timed
    scan_shape: str
    scenarios: list[str]                   # trackers.workloads scenario names
    emulate_max_pfn: int                   # kexec: build trackers up to this host size
    conversion_rates: list[float]          # race: MiB converted private->shared per second
    race_kexecs: int = 20000               # simulated kexecs per rate (and kexec kind)
    scan_repeat: int = 5                   # timed scans per built structure
    scan_time_budget_s: float = 25.0       # build + scans a tracker may take at one size
    #: kexec: scenarios whose trackers are built and timed (within emulate_max_pfn);
    #: None: every scenario within emulate_max_pfn
    emulate_scenarios: list[str] | None = None
    #: sensitivity: CPU counts at reset (besides each platform's total)
    sensitivity_cpus: tuple[int, ...] = CPU_COUNTS
    #: conversion_cost: the reference set's host (PFNs), timings per figure,
    #: conversions per timing, and the longest one timing of per-call trackers runs
    conversion_pfns: int = 1 << 22
    conversion_repeat: int = 5
    conversions: int = 200
    conversion_seconds: float = 0.02
    #: scenarios also judged after every TD is destroyed (scenario NAME + NO_TD:
    #: PAMT and leaked pages private, no TD running), for the answer's "no TD" case
    idle_scenarios: list[str] = field(default_factory=lambda: ["1tib-4td"])
    seed: int = 0
    quick: bool = False
    trackers: list[str] = field(default_factory=lambda: list(TRACKERS))
    #: time the kernel's own code (@kernel twins) and the C layouts where
    #: the library loads; False: the emulations only (--no-kernel-code, or no library)
    kernel_code: bool = True
    #: host memory one structure of the scan figure may take (and the largest
    #: struct-page array measured: past it the scan is scaled, and says so); every
    #: structure at 1 TiB fits (xarray@kernel 2.3 GiB, the split page tables 2.0 GiB)
    #: but kvm@kernel, which the time budget stops first.  None: the memory budget
    scan_budget_bytes: int | None = 3 << 30
    #: memory_vs_host: scenarios whose host's max_pfn far exceeds its RAM, one
    #: set of rows each (``host_kind="sparse"``, memory.sparse_host_rows)
    sparse_hosts: list[str] = field(default_factory=list)
    #: the user's own host (--memmap/--trace/--tds): one more kexec scenario,
    #: built and timed up to the strategies' build limit
    user_host: UserHost | None = None
    #: sharded points (--sharded, trackers/report/sharded.py): hosts (PFNs) whose
    #: trackers are built in shards of shard_pfns, sharded_repeat timed runs each
    sharded_pfns: list[int] = field(default_factory=list)
    shard_pfns: int = DEFAULT_SHARD_PFNS
    sharded_repeat: int = 1
    #: validation: GFNs of the KVM attribute store timed here, and its runs
    attr_store_gfns: int = 1 << 22
    attr_store_repeat: int = 5


def default_config(seed: int = 0) -> ReportConfig:
    """The default run, fitted to 3 minutes on 2 shared cores: the scan figure
    stops at 256 GiB (building the twins at 1 TiB took 1-3 minutes alone) and
    a tracker predicted over 10 s at one size keeps its model only; trackers
    are built and timed in the kexec table on iomem-64g only (every other
    scenario: estimate())."""
    return ReportConfig(
        sweep_hosts=[1 << 24, 1 << 26, 1 << 28, 1 << 30, 1 << 32],   # 64 GiB .. 16 TiB
        sweep_shape="reference-1pct",
        fraction_host=1 << 24,                                       # 64 GiB
        fractions=[0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9],
        scan_hosts=[1 << 20, 1 << 22, 1 << 24, 1 << 26],             # 4 GiB .. 256 GiB
        scan_shape="reference",
        scenarios=default_scenarios(),
        emulate_max_pfn=1 << 25,                                     # 128 GiB: iomem-64g
        emulate_scenarios=["iomem-64g"],
        conversion_rates=[1, 4, 16, 64, 256, 1024, 4096],
        scan_time_budget_s=10.0,
        seed=seed,
        sparse_hosts=["r7625-sparse"],
    )


def quick_config(seed: int = 0) -> ReportConfig:
    return ReportConfig(
        sweep_hosts=[1 << 18, 1 << 20, 1 << 22],                     # 1 GiB .. 16 GiB
        sweep_shape="reference-1pct",
        fraction_host=1 << 18,
        fractions=[0.01, 0.1, 0.5, 0.9],
        scan_hosts=[1 << 16, 1 << 18, 1 << 20],
        scan_shape="reference",
        scenarios=["tiny"],
        emulate_max_pfn=1 << 22,
        conversion_rates=[16, 1024],
        race_kexecs=2000,
        scan_time_budget_s=5.0,
        sensitivity_cpus=(1, 2, 8, 32),
        idle_scenarios=["tiny"],
        conversion_pfns=1 << 18,
        conversions=50,
        attr_store_gfns=1 << 18,
        seed=seed,
        quick=True,
    )


def quick_covers() -> str:
    """What ``--quick`` covers, for the summary (from quick_config itself)."""
    q = quick_config()
    return (f"`--quick` covers hosts of {host_label(q.sweep_hosts[0])}-"
            f"{host_label(q.sweep_hosts[-1])} (memory) and {host_label(q.scan_hosts[0])}-"
            f"{host_label(q.scan_hosts[-1])} (scans), the scenario(s) "
            f"{', '.join(f'`{x}`' for x in q.scenarios)}, {q.race_kexecs:,} simulated kexecs "
            f"per race point at {', '.join(f'{r:g}' for r in q.conversion_rates)} MiB/s, "
            f"CPUs at reset {', '.join(map(str, q.sensitivity_cpus))} and all, and "
            f"conversions into a {host_label(q.conversion_pfns)} set: the same computation "
            f"on small inputs, seconds")


#: scenarios the default run leaves out, and why (the summary names them)
LEFT_OUT = {"tiny": "an 8 GiB test fixture (the --quick run and the tests use it)"}


def default_scenarios() -> list[str]:
    """Every named scenario but those of LEFT_OUT: the 1 TiB and 16 TiB hosts
    first (the verdict's columns), then the rest in registry order."""
    first = ["1tib-4td", "16tib-dense"]
    return first + [k for k in SCENARIOS if k not in first and k not in LEFT_OUT]


def left_out(cfg: ReportConfig) -> dict[str, str]:
    """Named scenarios this run does not cover -> why."""
    why = "not in the --quick run (run without --quick)" if cfg.quick else \
        "not in this run's scenarios"
    return {k: ("" if cfg.quick else LEFT_OUT.get(k, "")) or why
            for k in SCENARIOS if k not in cfg.scenarios}

