"""Named scenarios: a host, TDX on it, TDs and what they do, from a seed.

:func:`build_workload` is the one generator; :data:`SCENARIOS` names the
configurations the benchmarks and the report share.  Generation order is the
life of a host:

1. the host keeps its own memory (all RAM below 4 GiB, ``host_reserve`` of
   each node);
2. TDX module init: a PAMT block per TDMR (TDH.SYS.CONFIG);
3. per TD: TDR, TDCS, vCPUs, S-EPT, then guest RAM set private, bound and
   accepted (tdh_mem_page_add/aug), then the guest shares its SWIOTLB in
   2 MiB chunks;
4. churn batches or a trace replay.

Everything is extents and numpy batches; a Python step per TD, TDMR, batch
or trace line, never per page.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import kernel
from .. import extents as X
from ..events import KIND_NAMES, KIND_PAMT, SEAMCALL_PRIVATE, concat, make_rows
from .conversions import Churner
from .memmap import FOUR_GIB, GIB, MemoryMap, bundled_memmaps, load_memory_map, synthetic_host
from .tdx import (TD, HostAllocator, Policy, TdConfig, Tdmrs, control_pages_needed, ext_mem_rows,
                  create_td, guest_allocator, pamt_rows, gib, parse_tds, td_covering)
from .traces import Trace, bundled_traces, load_trace

PAGE = kernel.PAGE_SIZE
KINDS = ("pamt", "tdr", "tdcs", "tdvpr", "tdcx", "sept", "guest", "ext")


@dataclass
class Workload:
    """One host's TDX life as ordered event batches, plus the expected end.

    memmap: the host (ram ranges, max_pfn, holes, nodes).
    tdmrs: TDMRs and their PAMT sizes.
    tds: the placed TDs (layout, SWIOTLB, final binding, control pages).
    batches / labels: event batches (EVENT_DTYPE arrays) in stream order and
        what each is ("tdx-init", "td3-build", "churn-7", ...).
    """

    name: str
    seed: int
    description: str
    memmap: MemoryMap
    tdmrs: Tdmrs
    tds: list[TD]
    batches: list[np.ndarray]
    labels: list[str]
    pamt: str
    host_held: X.Extents
    build_seconds: float = 0.0
    _final: dict[str, X.Extents] = field(default_factory=dict, repr=False)
    #: Dynamic PAMT page pairs (tdh_phymem_pamt_add), part of the "pamt" kind;
    #: the TDMR list does not name them
    dynamic_pamt: X.Extents = field(default_factory=X.empty)

    @property
    def max_pfn(self) -> int:
        return self.memmap.max_pfn

    def events(self) -> np.ndarray:
        """All batches as one array (a copy)."""
        return concat(self.batches)

    @property
    def n_events(self) -> int:
        return sum(b.size for b in self.batches)

    def final_private(self) -> dict[str, X.Extents]:
        """Expected TDX-private PFN extents at the end, by kind (normalized)."""
        return {k: (v[0].copy(), v[1].copy()) for k, v in self._final.items()}

    def final_private_all(self) -> X.Extents:
        return X.union(*self._final.values())

    def final_kvm(self) -> X.Extents:
        """What KVM's attributes and bindings reach: guest pages only."""
        return self._final["guest"]

    def pages_by_kind(self) -> dict[str, int]:
        return {k: X.count(v) for k, v in self._final.items()}

    def summary(self) -> dict:
        by = self.pages_by_kind()
        return {"name": self.name, "ram_pages": self.memmap.ram_pages, "max_pfn": self.max_pfn,
                "tdmrs": self.tdmrs.count, "tds": len(self.tds), "events": self.n_events,
                "batches": len(self.batches),
                "private_pages": sum(by.values()), **{f"{k}_pages": v for k, v in by.items()},
                "private_extents": int(self.final_private_all()[0].size),
                "seconds": round(self.build_seconds, 3)}


#: the share of each NUMA node's RAM above 4 GiB the host keeps for itself
#: (build_workload's default host_reserve)
HOST_RESERVE = 0.01


@dataclass(frozen=True)
class Churn:
    batches: int = 8
    per_batch: int = 64          # conversions per TD per batch
    frac_2m: float = 0.5


def build_workload(name: str, memmap: MemoryMap, tds: list[TdConfig], seed: int = 0, *,
                   churn_cfg: Churn | None = None, trace: Trace | None = None,
                   trace_after_boot: bool = True, host_reserve: float = HOST_RESERVE,
                   pamt: str = "static", ext_mem_bytes: int = 0,
                   description: str = "") -> Workload:
    """Generate a workload; ValueError (nothing returned) if the TDs do not fit.
    ``ext_mem_bytes``: memory given to the TDX module's extensions at TDX
    initialisation (kind "ext"; 0: a module without extensions)."""
    t0 = time.perf_counter()
    if pamt not in ("static", "dynamic"):
        raise ValueError(f"pamt {pamt!r} must be 'static' or 'dynamic'")
    for i, cfg in enumerate(tds):
        if not 0 <= cfg.node < memmap.numa_nodes:
            raise ValueError(f"TD {i}: node {cfg.node} does not exist "
                             f"(host has {memmap.numa_nodes} nodes)")
    rng = np.random.default_rng(seed)
    alloc, tdmrs, init_rows, pamt_ext, ext = _host_for_tdx(memmap, rng, host_reserve, pamt,
                                                           ext_mem_bytes)
    need = sum(cfg.guest_pages + control_pages_needed(cfg) for cfg in tds)
    free = alloc.free_pages()
    if need > free:
        raise ValueError(
            f"{len(tds)} TD(s) need {gib(need)} (guest memory, control pages, S-EPT) but "
            f"host {memmap.name} has only {gib(free)} free for TDs (RAM {gib(memmap.ram_pages)}"
            f", less PAMT and the host's own share: {alloc.kept_for_host()})")
    batches, labels = [init_rows], ["tdx-init"]
    placed: list[TD] = []
    dpamt_regions = np.empty(0, np.int64)
    dpamt_ext = []
    for i, cfg in enumerate(tds):                      # one step per TD
        t, rows = create_td(i, cfg, alloc)
        allocate = guest_allocator(alloc, t)
        boot = trace is None or trace_after_boot or i > 0   # a trace is TD 0's
        if boot:
            rows = concat([rows, t.binding.to_private(i, t.layout[0], t.layout[1], allocate)])
        if pamt == "dynamic":        # PAMT_4K pages must exist before the 4K pages go private
            rows, dpamt_regions = _with_dynamic_pamt(rows, alloc, cfg.node, dpamt_regions,
                                                     dpamt_ext)
        if boot:
            cs, ce = _chunks(t.swiotlb)
            rows = concat([rows, t.binding.to_shared(i, cs, ce, alloc.release)])
        batches.append(rows)
        labels.append(f"td{i}-build")
        placed.append(t)
    if trace is not None:
        t = placed[0]
        trace.check_within(t.layout)
        for b in trace.replay(0, t.binding, guest_allocator(alloc, t), alloc.release):
            batches.append(b)
            labels.append(f"trace-{trace.format}")
    if churn_cfg is not None:
        churners = [Churner(rng, t.td, t.binding, t.private_gfns, churn_cfg.per_batch,
                            churn_cfg.frac_2m, guest_allocator(alloc, t), alloc.release)
                    for t in placed]
        for k in range(churn_cfg.batches):            # one step per batch and TD
            batches.append(concat([c.step() for c in churners]))
            labels.append(f"churn-{k}")
    final = {"pamt": X.union(pamt_ext, *dpamt_ext)}
    if ext_mem_bytes:
        final["ext"] = ext
    for kind in ("tdr", "tdcs", "tdvpr", "tdcx", "sept"):
        final[kind] = X.union(*[t.control[kind] for t in placed]) if placed else X.empty()
    final["guest"] = X.union(*[t.binding.pfn_extents() for t in placed]) if placed else X.empty()
    return Workload(name=name, seed=seed, description=description, memmap=memmap, tdmrs=tdmrs,
                    tds=placed, batches=batches, labels=labels, pamt=pamt,
                    host_held=alloc.host_held, build_seconds=time.perf_counter() - t0,
                    _final=final, dynamic_pamt=X.union(*dpamt_ext) if dpamt_ext else X.empty())


def _host_for_tdx(memmap: MemoryMap, rng, host_reserve: float = HOST_RESERVE,
                  pamt: str = "static", ext_mem_bytes: int = 0):
    """The host as TDX initialisation leaves it, before any TD: (allocator,
    TDMRs, the init rows, the PAMT's extents, the extension memory's).  The
    host keeps its RAM below 4 GiB (the model places no TDX memory there)
    and ``host_reserve`` of the rest (HostAllocator.reserve_host); ValueError naming the host
    where it has no RAM for TDX at all."""
    usable = X.count(X.intersect(memmap.ram_ranges, (np.array([kernel.TDX_MEMORY_START_PFN]),
                                                     np.array([memmap.max_pfn]))))
    if usable < kernel.PAGES_PER_2M:
        raise ValueError(f"host {memmap.name}: {gib(usable)} of RAM above 1 MiB, where TDX "
                         f"memory starts (its RAM: {gib(memmap.ram_pages)}): want at least "
                         f"2 MiB, a TDMR's smallest page, and in practice GiBs above 4 GiB")
    alloc = HostAllocator(memmap, rng)
    alloc.reserve_host(host_reserve, below_pfn=FOUR_GIB)
    if alloc.free_pages() == 0:
        raise ValueError(f"host {memmap.name}: all its RAM ({gib(memmap.ram_pages)}) lies "
                         f"below 4 GiB, which the model keeps for the host itself: it places "
                         f"TDX memory (PAMT, TDs) only above 4 GiB, and this host has none "
                         f"there")
    tdmrs = Tdmrs.build(memmap)
    init_rows, pamt_ext = pamt_rows(tdmrs, alloc, dynamic=(pamt == "dynamic"))
    ext = X.empty()
    if ext_mem_bytes:
        ext_rows, ext = ext_mem_rows(alloc, ext_mem_bytes)
        init_rows = concat([init_rows, ext_rows])
    return alloc, tdmrs, init_rows, pamt_ext, ext


def room_for_tds(memmap: MemoryMap) -> int:
    """Pages free for TDs on ``memmap`` once TDX is initialised (static
    PAMT, no extension memory): what :func:`build_workload` compares their
    need with."""
    return _host_for_tdx(memmap, np.random.default_rng(0))[0].free_pages()


def _chunks(ext: X.Extents) -> tuple[np.ndarray, np.ndarray]:
    """Split GFN extents into 2 MiB MapGPA chunks (the last may be short)."""
    c = kernel.MAPGPA_CHUNK_PAGES
    s, e = ext
    n = -(-(e - s) // c)
    base = np.repeat(s - (np.cumsum(n) - n) * c, n)
    starts = base + np.arange(int(n.sum()), dtype=np.int64) * c
    ends = np.minimum(starts + c, np.repeat(e, n))
    return starts, ends


def _with_dynamic_pamt(build: np.ndarray, alloc: HostAllocator, node: int,
                       have: np.ndarray, out: list) -> tuple[np.ndarray, np.ndarray]:
    """Prepend tdh_phymem_pamt_add rows for 2M ranges the TD's pages newly use.

    Dynamic PAMT pages are refcounted per 2 MiB range; this model adds them
    when a TD first puts 4K private pages in a range and never drops them
    (an upper bound: ranges emptied by SWIOTLB sharing keep their pages).
    """
    priv = build[build["op"] == SEAMCALL_PRIVATE]
    regions = X.blocks_touched(X.normalize(priv["pfn_start"], priv["pfn_end"]), 9)
    if have.size:
        at = np.minimum(np.searchsorted(have, regions), have.size - 1)
        regions = regions[have[at] != regions]
    new = regions
    if new.size == 0:
        return build, have
    seq = alloc.alloc(int(new.size) * kernel.DPAMT_PAGES_PER_2M, Policy("contiguous"), node,
                      "Dynamic PAMT_4K pages")
    rows = make_rows(SEAMCALL_PRIVATE, KIND_PAMT, -1, seq[0], seq[1], n=seq[0].size)
    out.append(X.normalize(*seq))
    return concat([rows, build]), np.sort(np.concatenate((have, new)))


# --------------------------------------------------------------------------
# the catalogue

@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[int], Workload]
    #: the host alone (no TDs), for a scenario whose memory map is the point
    host: Callable[[], MemoryMap] | None = None


def _gib_pages_2m(bytes_: float) -> int:
    """Bytes rounded down to whole 2 MiB."""
    return int(bytes_) // (2 << 20) * (2 << 20)


def _tiny(seed: int) -> Workload:
    host = synthetic_host(8 * GIB, numa_nodes=2, name="synthetic-8g")
    tds = [TdConfig(1 * GIB, vcpus=2, node=0),
           TdConfig(1 * GIB, vcpus=2, node=1, policy=Policy("fragmented", 0.5)),
           TdConfig(512 << 20, vcpus=1, node=0, policy=Policy("interleaved"))]
    return build_workload("tiny", host, tds, seed, churn_cfg=Churn(4, 8, 0.5),
                          description=SCENARIOS["tiny"].description)


def _same_tds(n, size, vcpus, policies, nodes):
    return [TdConfig(size, vcpus=vcpus, node=i % nodes, policy=policies[i % len(policies)])
            for i in range(n)]


def _1tib_4td(seed):
    host = synthetic_host(1 << 40)
    return build_workload("1tib-4td", host, _same_tds(4, 200 * GIB, 32, [Policy()], 4), seed,
                          description=SCENARIOS["1tib-4td"].description)


def _4tib_16td(seed):
    host = synthetic_host(4 << 40)
    pol = [Policy(), Policy("fragmented", 0.1), Policy("interleaved"), Policy()]
    return build_workload("4tib-16td", host, _same_tds(16, 200 * GIB, 16, pol, 16), seed,
                          description=SCENARIOS["4tib-16td"].description)


def _16tib_dense(seed):
    host = synthetic_host(16 << 40)
    n = host.numa_nodes
    size = _gib_pages_2m(0.9 * host.ram_bytes / n)
    return build_workload("16tib-dense", host,
                          _same_tds(n, size, 64, [Policy("fragmented", 0.02)], n), seed,
                          description=SCENARIOS["16tib-dense"].description)


def _1tib_fragmented(seed):
    host = synthetic_host(1 << 40)
    pol = [Policy("fragmented", 0.5, holes_per_block=8)]
    return build_workload("1tib-fragmented", host, _same_tds(4, 200 * GIB, 32, pol, 4), seed,
                          description=SCENARIOS["1tib-fragmented"].description)


def _1tib_churn(seed):
    host = synthetic_host(1 << 40)
    return build_workload("1tib-churn", host, _same_tds(4, 200 * GIB, 32, [Policy()], 4), seed,
                          churn_cfg=Churn(64, 512, 0.5),
                          description=SCENARIOS["1tib-churn"].description)


def _1tib_next(seed):
    host = synthetic_host(1 << 40)
    return build_workload("1tib-next", host, _same_tds(4, 200 * GIB, 32, [Policy()], 4), seed,
                          pamt="dynamic", ext_mem_bytes=kernel.TDX_EXT_MEM_BYTES,
                          description=SCENARIOS["1tib-next"].description)


def two_tds(host: MemoryMap) -> list[TdConfig]:
    """The real maps' TDs: 2 x 35 % of RAM (whole GiB), contiguous and fragmented
    0.25, homed on the first and the last NUMA node."""
    size = int(0.35 * host.ram_bytes) // GIB * GIB
    return [TdConfig(size, vcpus=8),
            TdConfig(size, vcpus=8, node=host.numa_nodes - 1,
                     policy=Policy("fragmented", 0.25))]


def fitting_tds(host: MemoryMap) -> tuple[list[TdConfig], str]:
    """The user's host's TDs when --tds is not given: :func:`two_tds` (2 x 35 %
    of RAM, whole GiB), each made smaller, a GiB at a time down to 1 GiB,
    until both fit the RAM free for TDs (:func:`room_for_tds`); and a phrase
    saying which.  A host with room for not even two 1 GiB TDs keeps them
    (build_workload refuses it, naming the room)."""
    tds = two_tds(host)
    want = tds[0].guest_bytes
    room = room_for_tds(host)

    def need(size: int) -> int:
        return sum(cfg.guest_pages + control_pages_needed(cfg)
                   for cfg in (dataclasses.replace(t, guest_bytes=size) for t in tds))

    size = want
    while size > GIB and need(size) > room:
        size -= GIB
    tds = [dataclasses.replace(t, guest_bytes=max(size, GIB)) for t in tds]
    said = f"default: 2 x {tds[0].guest_bytes // GIB} GiB"
    if tds[0].guest_bytes == want:
        return tds, f"{said}, 35 % of RAM"
    return tds, (f"{said}: 35 % of RAM, {want // GIB} GiB each, does not fit the "
                 f"{room * PAGE / GIB:.2f} GiB free for TDs")


def _real_map(key: str):
    def build(seed):
        host = load_memory_map(bundled_memmaps()[key], name=key)
        return build_workload(key, host, two_tds(host), seed,
                              description=SCENARIOS[key].description)
    return build


# A host whose max_pfn far exceeds its RAM: ~770 GB of RAM with the 64-bit MMIO
# windows of its root complexes between the RAM blocks, up to ~7.1 TB of
# physical address space, as reported for a Dell R7625 (AMD Genoa, 2
# sockets; the report itself was not found in the searchable corpora).  The
# bundled map is constructed in the boot-log e820 format from those two figures
# (it is not a capture, and an AMD host runs no TDX: the map is here for its
# shape).  An e820 table names no NUMA nodes (the SRAT does): node 1 starts at
# its third RAM block, 3.5 TiB.
R7625_MAP = "e820-r7625-sparse"
R7625_NODE1_PFN = (3584 * GIB) // PAGE


def r7625_host() -> MemoryMap:
    """The sparse host: its bundled e820 map, 2 NUMA nodes."""
    host = load_memory_map(bundled_memmaps()[R7625_MAP], name="r7625-sparse")
    return dataclasses.replace(host, node_starts=np.array([0, R7625_NODE1_PFN], np.int64))


def _r7625_sparse(seed):
    host = r7625_host()
    return build_workload("r7625-sparse", host, two_tds(host), seed,
                          description=SCENARIOS["r7625-sparse"].description)


# --------------------------------------------------------------------------
# the user's own host: a memory map file, an optional trace, a TD layout

@dataclass(frozen=True)
class UserHost:
    """A host the user names by its files (``--memmap``, ``--trace``, ``--tds``).

    memmap: boot-log e820, /proc/iomem or a /sys/firmware/memmap directory.
    trace: an ftrace or QEMU conversion log, replayed into TD 0.  An ftrace
        capture of kvm_vm_set_mem_attributes holds the boot's own conversions
        (it replaces the generated boot, as trace-td16g-boot); a QEMU
        kvm_convert_memory log holds conversions after boot (as
        trace-qemu-convert).
    tds: the TD layout as ``--tds`` text (tdx.TDS_SYNTAX); None: one TD that
        covers the trace's GFNs (with a trace) or two TDs of 35 % of RAM (as
        the bundled real maps), smaller where those do not fit the RAM free
        for TDs (:func:`fitting_tds`; the description says so).
    """

    memmap: Path
    trace: Path | None = None
    tds: str | None = None

    @property
    def name(self) -> str:
        """Named after the map file (marked when a named scenario has that name)."""
        name = Path(self.memmap).name
        return f"{name} (--memmap)" if name in SCENARIOS else name

    def build(self, seed: int = 0) -> Workload:
        """The workload; ValueError naming the file, value and limit for a
        malformed map, trace or --tds, TDs larger than the host's free RAM, or
        a trace outside TD 0's RAM (nothing is built then)."""
        host = load_memory_map(self.memmap, name=self.name)
        trace = load_trace(self.trace) if self.trace is not None else None
        said = "--tds"
        if self.tds is not None:
            tds = parse_tds(self.tds)
        elif trace is not None:
            tds, said = [td_covering(trace.max_gfn)], "default: the trace's"
        else:
            tds, said = fitting_tds(host)
        what = f"{len(tds)} TD(s) ({said})"
        desc = (f"{host.summary()}; {what}"
                + (f"; trace {Path(self.trace).name} ({trace.format}, {len(trace)} lines)"
                   if trace is not None else ""))
        return build_workload(self.name, host, tds, seed, trace=trace,
                              trace_after_boot=trace is None or trace.format == "qemu",
                              description=desc)


def _trace(key: str, after_boot: bool):
    def build(seed):
        host = synthetic_host(64 * GIB, numa_nodes=1, name="synthetic-64g")
        tr = load_trace(bundled_traces()[key])
        return build_workload(f"trace-{key}", host,
                              [TdConfig(16 * GIB, vcpus=4, policy=Policy("fragmented", 0.25))],
                              seed, trace=tr, trace_after_boot=after_boot,
                              description=SCENARIOS[f"trace-{key}"].description)
    return build


SCENARIOS: dict[str, Scenario] = {}


def _register(name, description, build):
    SCENARIOS[name] = Scenario(name, description, build)


_register("tiny", "8 GiB, 2 nodes; 3 small TDs (contiguous, fragmented 0.5, interleaved); "
          "4 churn batches: for tests", _tiny)
_register("1tib-4td", "1 TiB, 4 nodes; 4 TDs x 200 GiB, 32 vCPUs, contiguous on their node",
          _1tib_4td)
_register("4tib-16td", "4 TiB, 16 nodes; 16 TDs x 200 GiB; contiguous, fragmented 0.1, "
          "interleaved", _4tib_16td)
_register("16tib-dense", "16 TiB (2^32 RAM pages), 32 nodes; 90 % of RAM in 32 TDs, "
          "fragmented 0.02", _16tib_dense)
_register("1tib-fragmented", "1 TiB; 4 TDs x 200 GiB, half the 2 MiB pageblocks hold ~8 "
          "host pages", _1tib_fragmented)
_register("1tib-churn", "1 TiB; 4 TDs x 200 GiB; 64 batches x 512 conversions per TD "
          "(half 2 MiB, half 4 KiB)", _1tib_churn)
_register("1tib-next", "1tib-4td as linux-next has it: Dynamic PAMT (tip x86/tdx, Sep 2026: "
          "4K bitmap + 2 pages per used 2 MiB) and 50 MB of TDX module extension memory",
          _1tib_next)
for _key in ("e820-2socket-256g", "iomem-64g", "sysfs-memmap-512g"):
    _register(_key, f"real map {_key}; 2 TDs x 35 % of RAM (contiguous, fragmented 0.25)",
              _real_map(_key))
SCENARIOS["r7625-sparse"] = Scenario(
    "r7625-sparse", "sparse host: 770 GiB RAM in 4 blocks between MMIO holes up to max_pfn "
    "7.1 TiB (e820-r7625-sparse); 2 TDs x 35 % of RAM", _r7625_sparse, r7625_host)
_register("trace-td16g-boot", "64 GiB host; a 16 GiB TD booted by the bundled "
          "kvm_vm_set_mem_attributes ftrace capture", _trace("td16g-boot", False))
_register("trace-qemu-convert", "64 GiB host; a 16 GiB TD booted, then the bundled QEMU "
          "kvm_convert_memory log", _trace("qemu-convert", True))


def scenario(name: str, seed: int = 0) -> Workload:
    """Generate the named scenario; the same seed gives the same workload."""
    try:
        sc = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    return sc.build(int(seed))


__all__ = ["Workload", "Churn", "build_workload", "SCENARIOS", "scenario", "KINDS",
           "KIND_NAMES", "UserHost", "r7625_host", "two_tds"]
