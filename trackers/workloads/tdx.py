"""TDX on a host: TDMRs and PAMT, TDs and where their pages land.

* **TDMRs** (arch/x86/virt/vmx/tdx/tdx.c fill_out_tdmrs()): one TDMR per TDX
  memory block (RAM from 1 MiB up, split at NUMA node boundaries), its start
  rounded down and end up to 1 GiB; a block already covered is skipped and a
  partly covered one starts at the previous TDMR's end.  Holes inside a TDMR
  become reserved areas but still count for the PAMT.
* **PAMT** (tdmr_get_pamt_sz()): per TDMR, entries at 4K, 2M and 1G level
  times the entry size, each level rounded up to a page, allocated as one
  contiguous block on the node of the TDMR's first memory
  (tdmr_set_up_pamt()).  With 16-B entries this is TDMR size / 256 plus
  0.2 %.  *Dynamic PAMT* (Shutemov, 2025) keeps the 2M and 1G levels, turns
  the 4K level into a 1-bit-per-page bitmap, and adds 2 pages per 2 MiB
  range that holds 4K private pages (:meth:`Tdmrs.dynamic_pamt_pages`).
* **TDs** (arch/x86/kvm/vmx/tdx.c): a TDR page, TDCS pages, per vCPU a
  TDVPR and TDCX pages, S-EPT pages (one per 2 MiB, 1 GiB and 512 GiB GFN
  region the TD maps; the root lives in the TDCS), and guest pages mapped
  at 4 KiB.  GFNs follow QEMU's q35 layout: 2 GiB below the 2-4 GiB hole,
  the rest from 4 GiB.  The guest shares its SWIOTLB (6 % of its memory,
  clamped to [64 MiB, 1 GiB], whole 2 MiB chunks) at the top of its GFNs.
* **Host allocation** (:class:`HostAllocator`): free RAM per node as PFN
  extents; policies ``contiguous`` (first fit by address), ``fragmented``
  (a fraction of 2 MiB pageblocks already hold host pages the TD must skip:
  the order-0 scatter a buddy allocator leaves) and ``interleaved``
  (round-robin across nodes in granules, as MPOL_INTERLEAVE would).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .. import kernel
from .. import extents as X
from ..events import (KIND_EXT, KIND_GUEST, KIND_PAMT, KIND_SEPT, KIND_TDCS, KIND_TDCX,
                      KIND_TDR, KIND_TDVPR, SEAMCALL_PRIVATE, make_rows)
from .conversions import Binding
from .memmap import MemoryMap

GIB = 1 << 30
PAGE = kernel.PAGE_SIZE
PMD_SHIFT_PAGES = 9          # 2 MiB = 2^9 pages
PUD_SHIFT_PAGES = 18         # 1 GiB = 2^18 pages


def gib(pages: int) -> str:
    return f"{pages * PAGE:,} bytes ({pages * PAGE / GIB:.2f} GiB)"


# --------------------------------------------------------------------------
# TDMRs and PAMT

def _page_align_bytes(n: np.ndarray) -> np.ndarray:
    return -(-n // PAGE) * PAGE


@dataclass(frozen=True)
class Tdmrs:
    """The TDMR list: base/end PFNs (1 GiB aligned), node, PAMT per level."""

    base: np.ndarray
    end: np.ndarray
    node: np.ndarray
    pamt_entry_bytes: tuple[int, int, int]

    @classmethod
    def build(cls, memmap: MemoryMap,
              pamt_entry_bytes=(kernel.PAMT_4K_ENTRY_BYTES, kernel.PAMT_2M_ENTRY_BYTES,
                                kernel.PAMT_1G_ENTRY_BYTES)) -> "Tdmrs":
        align = kernel.TDMR_ALIGNMENT_PAGES
        usable = X.intersect(memmap.ram_ranges,
                             (np.array([kernel.TDX_MEMORY_START_PFN]), np.array([memmap.max_pfn])))
        # TDX memory blocks: memblock regions, which never span two nodes
        cuts = np.concatenate((memmap.node_starts, [memmap.max_pfn]))
        _, _, ts, te = X.overlaps(cuts[:-1], cuts[1:], *usable)
        order = np.argsort(ts, kind="stable")
        ts, te = ts[order], te[order]
        base, end, node = [], [], []
        for s, e in zip(ts.tolist(), te.tolist()):     # one step per memory block
            start, stop = s // align * align, -(-e // align) * align
            if end:
                if stop <= end[-1]:
                    continue
                start = max(start, end[-1])
            base.append(start)
            end.append(stop)
            node.append(int(memmap.node_of(np.array([s]))[0]))
        return cls(np.array(base, np.int64), np.array(end, np.int64),
                   np.array(node, np.int64), tuple(int(x) for x in pamt_entry_bytes))

    @property
    def count(self) -> int:
        return int(self.base.size)

    @property
    def pages(self) -> int:
        return int((self.end - self.base).sum())

    def pamt_bytes_per_level(self) -> np.ndarray:
        """(n_tdmr, 3) bytes at 4K, 2M, 1G level, each page aligned."""
        size = self.end - self.base
        entries = np.stack((size, size >> PMD_SHIFT_PAGES, size >> PUD_SHIFT_PAGES), axis=1)
        return _page_align_bytes(entries * np.array(self.pamt_entry_bytes, np.int64))

    def pamt_pages(self) -> np.ndarray:
        """Static PAMT pages per TDMR (one contiguous block each)."""
        return self.pamt_bytes_per_level().sum(axis=1) // PAGE

    def dynamic_pamt_static_pages(self) -> np.ndarray:
        """Dynamic PAMT, fixed part per TDMR: the 4K bitmap and the 2M/1G levels."""
        size = self.end - self.base
        bitmap = _page_align_bytes(-(-size * kernel.DPAMT_BITMAP_BITS_PER_PAGE // 8))
        return (bitmap + self.pamt_bytes_per_level()[:, 1:].sum(axis=1)) // PAGE

    @staticmethod
    def dynamic_pamt_pages(private: X.Extents) -> int:
        """Dynamic PAMT, on-demand part: PAMT_4K pages for 2M ranges in use."""
        return X.count_blocks_touched(private, PMD_SHIFT_PAGES) * kernel.DPAMT_PAGES_PER_2M


# --------------------------------------------------------------------------
# host allocation

@dataclass(frozen=True)
class Policy:
    """Where a TD's guest pages come from.

    kind: "contiguous" | "fragmented" | "interleaved".
    fragmentation: fragmented only: fraction of 2 MiB pageblocks that already
        hold host pages (0 = none, 1 = every block).
    holes_per_block: mean host pages in such a block (1 + Poisson).
    interleave_pages: interleaved only: pages per node turn (512 = 2 MiB;
        1 would be MPOL_INTERLEAVE on order-0 folios, one extent per page).
    """

    kind: str = "contiguous"
    fragmentation: float = 0.0
    holes_per_block: float = 4.0
    interleave_pages: int = kernel.PAGES_PER_2M

    def __post_init__(self):
        if self.kind not in ("contiguous", "fragmented", "interleaved"):
            raise ValueError(f"unknown allocation policy {self.kind!r}; known: "
                             f"contiguous, fragmented, interleaved")
        if not 0.0 <= self.fragmentation <= 1.0:
            raise ValueError(f"fragmentation {self.fragmentation} must lie in [0, 1]")
        if self.interleave_pages < 1:
            raise ValueError(f"interleave_pages {self.interleave_pages} must be >= 1")

    def label(self) -> str:
        if self.kind == "fragmented":
            return f"fragmented({self.fragmentation:g})"
        if self.kind == "interleaved":
            return f"interleaved({self.interleave_pages})"
        return self.kind


class HostAllocator:
    """Free host RAM per NUMA node as normalized PFN extents.

    Allocations return a PFN *sequence* (extents in the order their pages
    are handed out).  Host-held pages (the reserve, the holes a fragmented
    allocation skips) leave the pool for good.
    """

    def __init__(self, memmap: MemoryMap, rng: np.random.Generator):
        self.memmap = memmap
        self.rng = rng
        usable = X.intersect(memmap.ram_ranges,
                             (np.array([kernel.TDX_MEMORY_START_PFN]), np.array([memmap.max_pfn])))
        self.free = [X.intersect(usable, self._node_span(k)) for k in range(memmap.numa_nodes)]
        self.host_held = X.empty()
        self.kept = (0, 0, 0.0)          # reserve_host: (below_pfn, pages below it, fraction)

    def _node_span(self, k: int) -> X.Extents:
        lo = int(self.memmap.node_starts[k])
        hi = (int(self.memmap.node_starts[k + 1]) if k + 1 < self.memmap.numa_nodes
              else self.memmap.max_pfn)
        return np.array([lo], np.int64), np.array([hi], np.int64)

    def free_pages(self, node: int | None = None) -> int:
        if node is None:
            return sum(X.count(f) for f in self.free)
        return X.count(self.free[node])

    def reserve_host(self, fraction: float, below_pfn: int = 0) -> None:
        """The host keeps all RAM below ``below_pfn`` and ``fraction`` of each node."""
        held, low_pages = [], 0
        for k in range(len(self.free)):
            low = X.intersect(self.free[k], (np.array([0]), np.array([below_pfn])))
            low_pages += X.count(low)
            f = X.subtract(self.free[k], low)
            take = int(X.count(f) * fraction)
            got, f = take_first_set(f, take)
            self.free[k] = f
            held += [low, got]
        self.host_held = X.union(self.host_held, *held)
        self.kept = (below_pfn, low_pages, fraction)

    def kept_for_host(self) -> str:
        """What :meth:`reserve_host` kept, as a phrase: "the host keeps its
        3.00 GiB below 4 GiB and 1 % of the rest"."""
        below, low, fraction = self.kept
        if not below and not fraction:
            return "the host keeps none of it"
        return (f"the host keeps its {low * PAGE / GIB:.2f} GiB of RAM below "
                f"{below * PAGE / GIB:g} GiB and {fraction * 100:g} % of the rest")

    def release(self, ext: X.Extents) -> None:
        """Freed PFNs return to their node's pool."""
        if ext[0].size == 0:
            return
        for k in range(len(self.free)):
            part = X.intersect(ext, self._node_span(k))
            if part[0].size:
                self.free[k] = X.union(self.free[k], part)

    def _node_order(self, node: int) -> list[int]:
        n = len(self.free)
        return [(node + i) % n for i in range(n)]

    def alloc_block(self, n: int, node: int, what: str) -> X.Extents:
        """One physically contiguous run (alloc_contig_pages()), first fit."""
        for k in self._node_order(node):
            s, e = self.free[k]
            fit = np.flatnonzero(e - s >= n)
            if fit.size:
                i = int(fit[0])
                blk = (np.array([s[i]]), np.array([s[i] + n]))
                self.free[k] = X.subtract(self.free[k], blk)
                return blk
        largest = max((int((e - s).max()) if s.size else 0) for s, e in self.free)
        raise ValueError(f"{what} needs {gib(n)} of contiguous RAM; the largest free run is "
                         f"{gib(largest)} ({self.kept_for_host()}; host RAM "
                         f"{gib(self.memmap.ram_pages)})")

    def alloc(self, n: int, policy: Policy, node: int, what: str) -> X.Extents:
        """``n`` pages as a PFN sequence, by policy, preferring ``node``."""
        if n <= 0:
            return X.empty()
        free = self.free_pages()
        if n > free:
            raise ValueError(f"{what} needs {gib(n)} but only {gib(free)} of host RAM "
                             f"is free ({self.kept_for_host()})")
        if policy.kind == "interleaved" and len(self.free) > 1:
            return self._alloc_interleaved(n, policy, what)
        parts, left = [], n
        for k in self._node_order(node):          # spill like a zonelist fallback
            here = min(left, self.free_pages(k))
            if here == 0:
                continue
            if policy.kind == "fragmented" and policy.fragmentation > 0 and here >= kernel.PAGES_PER_2M:
                got = self._alloc_fragmented(k, here, policy)
            else:
                got, self.free[k] = take_first_set(self.free[k], here)
            parts.append(got)
            left -= X.count(got)
            if left == 0:
                break
        if left:
            raise ValueError(f"{what} needs {gib(n)} but only {gib(n - left)} could be "
                             f"placed (host RAM {gib(self.memmap.ram_pages)})")
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def _alloc_fragmented(self, k: int, n: int, policy: Policy) -> X.Extents:
        """Take ``n`` pages at most from node k, skipping host-held holes.

        Arena = the next free pages by address; in each of its 2 MiB
        pageblocks, with probability ``fragmentation``, 1 + Poisson(h - 1)
        random pages are already the host's.  The TD takes the rest up to n;
        holes below the cut stay host-held, the arena above it returns.
        """
        f, h = policy.fragmentation, policy.holes_per_block
        avail = self.free_pages(k)
        margin = int(n * f * h / kernel.PAGES_PER_2M * 1.5) + 2 * kernel.PAGES_PER_2M
        arena, rest = take_first_set(self.free[k], min(avail, n + margin))
        blocks = X.blocks_touched(arena, PMD_SHIFT_PAGES)
        mixed = blocks[self.rng.random(blocks.size) < f]
        per = 1 + self.rng.poisson(max(h - 1.0, 0.0), mixed.size)
        holes = np.repeat(mixed << PMD_SHIFT_PAGES, per) + self.rng.integers(
            0, kernel.PAGES_PER_2M, int(per.sum()))
        holes.sort()
        if holes.size:
            holes = holes[np.append(True, holes[1:] != holes[:-1])]
            holes = holes[X.contains_points(arena, holes)]
        td = X.subtract(arena, (holes, holes + 1))
        take = min(n, X.count(td))
        got, _ = take_first_set(td, take)
        cut = int(got[1][-1]) if take else int(arena[0][0])
        held = holes[holes < cut]
        back = X.intersect(arena, (np.array([cut]), np.array([np.iinfo(np.int64).max])))
        self.free[k] = X.union(rest, back)
        self.host_held = X.union(self.host_held, (held, held + 1))
        return got

    def _alloc_interleaved(self, n: int, policy: Policy, what: str) -> X.Extents:
        g, nodes = policy.interleave_pages, len(self.free)
        w = -(-n // g)
        win_s = np.arange(w, dtype=np.int64) * g
        win_e = np.minimum(win_s + g, n)
        a_pos, b_pos, lens = [], [], []
        for k in range(nodes):
            ws, we = win_s[k::nodes], win_e[k::nodes]
            need = int((we - ws).sum())
            if need == 0:
                continue
            if need > self.free_pages(k):
                raise ValueError(f"{what} interleaved needs {gib(need)} on node {k}, "
                                 f"which has {gib(self.free_pages(k))} free")
            got, self.free[k] = take_first_set(self.free[k], need)
            ap, bp, ln = X.zip_sequences(got, (ws, we))
            a_pos.append(ap), b_pos.append(bp), lens.append(ln)
        ap, bp, ln = (np.concatenate(v) for v in (a_pos, b_pos, lens))
        order = np.argsort(bp, kind="stable")
        return ap[order], ap[order] + ln[order]


def take_first_set(ext: X.Extents, n: int) -> tuple[X.Extents, X.Extents]:
    """take_first() that tolerates n == 0 and returns arrays."""
    if n <= 0:
        return X.empty(), ext
    return X.take_first(ext, n)


def assign(seq: X.Extents, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a PFN sequence into consecutive items of ``lengths`` pages.

    Returns (item, pfn_start, pfn_end) rows in sequence order.
    """
    ends = np.cumsum(lengths)
    starts = ends - lengths
    ap, bp, ln = X.zip_sequences(seq, (starts, ends))
    item = np.searchsorted(ends, bp, side="right")
    return item, ap, ap + ln


# --------------------------------------------------------------------------
# TDs

def td_gfn_layout(guest_pages: int) -> X.Extents:
    """GFN ranges of a TD's RAM (QEMU q35): below 2 GiB, then from 4 GiB."""
    if guest_pages < kernel.TD_LOWMEM_SPLIT_PAGES:
        return np.array([0], np.int64), np.array([guest_pages], np.int64)
    low = kernel.TD_LOWMEM_PAGES
    hi0 = kernel.TD_HIGHMEM_START_GFN
    return (np.array([0, hi0], np.int64), np.array([low, hi0 + guest_pages - low], np.int64))


def swiotlb_pages(guest_pages: int) -> int:
    """Pages the TD keeps shared for SWIOTLB (whole 2 MiB MapGPA chunks)."""
    size = guest_pages * PAGE * kernel.SWIOTLB_PERCENT // 100
    size = min(max(size, kernel.SWIOTLB_MIN_BYTES), kernel.SWIOTLB_MAX_BYTES)
    chunk = kernel.MAPGPA_CHUNK_PAGES
    return min(size // PAGE // chunk * chunk, guest_pages // chunk * chunk)


def swiotlb_gfns(layout: X.Extents) -> X.Extents:
    """The SWIOTLB GFNs: the top of the TD's RAM (as in the td16g trace)."""
    n = swiotlb_pages(X.count(layout))
    top = int(layout[1][-1])
    if n == 0:
        return X.empty()
    return X.intersect(layout, (np.array([top - n]), np.array([top])))


def sept_pages(layout: X.Extents) -> int:
    """S-EPT pages KVM adds (tdh_mem_sept_add) to map every GFN in layout."""
    return sum(X.count_blocks_touched(layout, kernel.SEPT_ENTRIES_SHIFT * (lvl + 1))
               for lvl in range(kernel.SEPT_ADDED_LEVELS))


@dataclass(frozen=True)
class TdConfig:
    """One TD to place: guest memory, vCPUs, home node, allocation policy."""

    guest_bytes: int
    vcpus: int = 8
    node: int = 0
    policy: Policy = field(default_factory=Policy)

    @property
    def guest_pages(self) -> int:
        return self.guest_bytes // PAGE


@dataclass
class TD:
    """A placed TD: its GFN layout, bindings and control pages."""

    td: int
    config: TdConfig
    layout: X.Extents
    swiotlb: X.Extents
    binding: Binding
    control: dict[str, X.Extents]     # kind name -> PFN extents

    @property
    def private_gfns(self) -> X.Extents:
        """GFNs private after boot: RAM minus the SWIOTLB share."""
        return X.subtract(self.layout, self.swiotlb)

    def control_pages(self) -> int:
        return sum(X.count(v) for v in self.control.values())


# --------------------------------------------------------------------------
# a TD layout from the command line: --tds 64G,64G:16,16G:4:fragmented=0.25

#: KVM_MAX_VCPUS (arch/x86/include/asm/kvm_host.h, 4096 since v5.15): a TD
#: asks for no more vCPUs than KVM creates for any VM
KVM_MAX_VCPUS = 4096
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)
#: a TD's guest memory at most: the physical address space the suite models
#: (kernel.MAX_PHYS_PFN pages, 4 PiB); a host's free RAM limits it further
MAX_TD_BYTES = kernel.MAX_PHYS_PFN * PAGE
_UNIT_SHIFT = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_POLICY = re.compile(r"(contiguous|interleaved|fragmented)(?:=(\d*\.?\d+))?")
TDS_SYNTAX = ("SIZE[:VCPUS[:POLICY]],... with SIZE like 64G or 512M (binary units K, M, G, "
              "T), POLICY contiguous, interleaved or fragmented=F (F in [0, 1])")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes from '64G', '512MiB', '1.5T' (binary units), exactly (no float
    rounding, however many digits); ValueError naming the text."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{what} {text!r} is not a size: want a number and a unit "
                         f"K, M, G or T (binary), e.g. 64G")
    value = Fraction(m.group(1)) * (1 << _UNIT_SHIFT[m.group(2).upper()])
    if value.denominator != 1:
        raise ValueError(f"{what} {text!r} is not a whole number of bytes")
    return int(value)


def parse_tds(text: str) -> list[TdConfig]:
    """TdConfigs from ``--tds`` text (:data:`TDS_SYNTAX`); ValueError naming the
    TD, the value and its limit.  Guest memory is whole 2 MiB (MapGPA chunks,
    2 MiB pageblocks); every TD's home is node 0 (a memory map file names no
    nodes) and spills to the next node when node 0 is full."""
    tds = []
    items = text.split(",")
    for i, item in enumerate(items):
        where = f"--tds {text!r}: TD {i} ({item.strip() or 'empty'!r})"
        parts = [p.strip() for p in item.split(":")]
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"{where}: want {TDS_SYNTAX}")
        try:
            size = parse_size(parts[0], "size")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        chunk = kernel.MAPGPA_CHUNK_PAGES * PAGE
        if size <= 0 or size % chunk:
            raise ValueError(f"{where}: guest memory {size:,} bytes must be a positive "
                             f"multiple of 2 MiB ({chunk:,} bytes)")
        if size > MAX_TD_BYTES:
            raise ValueError(f"{where}: guest memory {size:,} bytes is past the limit of "
                             f"{MAX_TD_BYTES:,} bytes (4 PiB: 2^40 PFNs, the physical address "
                             f"space the suite models, kernel.MAX_PHYS_PFN)")
        vcpus = 8
        if len(parts) > 1 and parts[1]:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= KVM_MAX_VCPUS:
                raise ValueError(f"{where}: vCPUs {parts[1]!r} must be an integer in "
                                 f"[1, {KVM_MAX_VCPUS}] (KVM_MAX_VCPUS)")
            vcpus = int(parts[1])
        policy = Policy()
        if len(parts) > 2:
            m = _POLICY.fullmatch(parts[2])
            if not m or (m.group(2) is not None and m.group(1) != "fragmented"):
                raise ValueError(f"{where}: policy {parts[2]!r}: want contiguous, "
                                 f"interleaved or fragmented=F")
            frac = float(m.group(2)) if m.group(2) is not None else 0.25
            if m.group(1) == "fragmented" and not 0 <= frac <= 1:
                raise ValueError(f"{where}: fragmentation {frac:g} must lie in [0, 1]")
            policy = (Policy("fragmented", frac) if m.group(1) == "fragmented"
                      else Policy(m.group(1)))
        tds.append(TdConfig(size, vcpus=vcpus, policy=policy))
    return tds


def td_covering(max_gfn: int, vcpus: int = 4,
                policy: Policy = Policy("fragmented", 0.25)) -> TdConfig:
    """The smallest TD of whole GiB (a QEMU ``-m`` size) whose q35 GFN layout
    (:func:`td_gfn_layout`) reaches ``max_gfn``: a trace's TD when the user
    gives none (as the bundled trace scenarios: 4 vCPUs, fragmented 0.25).
    Whole GiB keep the SWIOTLB (the top 6 % of GFNs) clear of a trace that
    ends just below the TD's end: td16g-boot's 16 GiB, qemu-convert's 14 GiB."""
    low_hole = kernel.TD_HIGHMEM_START_GFN - kernel.TD_LOWMEM_PAGES
    pages = max_gfn - low_hole if max_gfn > kernel.TD_HIGHMEM_START_GFN else max_gfn
    if max_gfn > kernel.TD_LOWMEM_SPLIT_PAGES and pages < kernel.TD_LOWMEM_SPLIT_PAGES:
        pages = kernel.TD_LOWMEM_SPLIT_PAGES          # past 2.75 GiB q35 splits at 2 GiB
    unit = kernel.PAGES_PER_1G
    pages = max(-(-pages // unit) * unit, unit)
    return TdConfig(pages * PAGE, vcpus=vcpus, policy=policy)


def control_pages_needed(cfg: TdConfig) -> int:
    return (kernel.TDR_PAGES + kernel.TDCS_PAGES
            + cfg.vcpus * kernel.TDVPS_PAGES + sept_pages(td_gfn_layout(cfg.guest_pages)))


def create_td(td: int, cfg: TdConfig, alloc: HostAllocator) -> tuple[TD, np.ndarray]:
    """TD creation up to its memory: TDR, TDCS, vCPUs, S-EPT; rows in order.

    tdh_mng_create, tdh_mng_addcx x TDCS_PAGES, per vCPU tdh_vp_create and
    tdh_vp_addcx x TDCX_PAGES, then tdh_mem_sept_add for every S-EPT table
    the guest RAM needs (added up front here; KVM adds them at first fault).
    """
    layout = td_gfn_layout(cfg.guest_pages)
    nsept = sept_pages(layout)
    per_vcpu = [kernel.TDVPR_PAGES, kernel.TDCX_PAGES] * cfg.vcpus
    lengths = np.array([kernel.TDR_PAGES, kernel.TDCS_PAGES] + per_vcpu + [nsept], np.int64)
    kinds = np.array([KIND_TDR, KIND_TDCS] + [KIND_TDVPR, KIND_TDCX] * cfg.vcpus + [KIND_SEPT],
                     np.uint8)
    seq = alloc.alloc(int(lengths.sum()), Policy("contiguous"), cfg.node,
                      f"TD {td} control and S-EPT pages")
    item, ps, pe = assign(seq, lengths)
    rows = make_rows(SEAMCALL_PRIVATE, kinds[item], td, ps, pe, n=item.size)
    control = {}
    for kind, name in ((KIND_TDR, "tdr"), (KIND_TDCS, "tdcs"), (KIND_TDVPR, "tdvpr"),
                       (KIND_TDCX, "tdcx"), (KIND_SEPT, "sept")):
        sel = kinds[item] == kind
        control[name] = X.normalize(ps[sel], pe[sel])
    return TD(td, cfg, layout, swiotlb_gfns(layout), Binding(), control), rows


def guest_allocator(alloc: HostAllocator, t: TD):
    return lambda n: alloc.alloc(n, t.config.policy, t.config.node, f"TD {t.td} guest memory")


def pamt_rows(tdmrs: Tdmrs, alloc: HostAllocator, dynamic: bool = False):
    """Allocate each TDMR's PAMT block on its node; TDH.SYS.CONFIG rows."""
    pages = tdmrs.dynamic_pamt_static_pages() if dynamic else tdmrs.pamt_pages()
    s, e = [], []
    for i in range(tdmrs.count):                       # one step per TDMR
        blk = alloc.alloc_block(int(pages[i]), int(tdmrs.node[i]), f"PAMT of TDMR {i}")
        s.append(blk[0]), e.append(blk[1])
    s, e = np.concatenate(s), np.concatenate(e)
    return make_rows(SEAMCALL_PRIVATE, KIND_PAMT, -1, s, e, n=s.size), X.normalize(s, e)


def ext_mem_rows(alloc: HostAllocator, nbytes: int = kernel.TDX_EXT_MEM_BYTES, node: int = 0):
    """The TDX module extensions' memory: ``nbytes`` in whole pages, one block on
    ``node``, given at TDX initialisation (TDH.EXT.MEM.ADD rows, no TD's)."""
    pages = -(-int(nbytes) // PAGE)
    s, e = alloc.alloc_block(pages, node, "TDX module extension memory")
    return make_rows(SEAMCALL_PRIVATE, KIND_EXT, -1, s, e, n=s.size), X.normalize(s, e)


__all__ = ["Tdmrs", "Policy", "HostAllocator", "TdConfig", "TD", "create_td",
           "td_gfn_layout", "swiotlb_pages", "swiotlb_gfns", "sept_pages", "pamt_rows",
           "guest_allocator", "control_pages_needed", "ext_mem_rows", "KIND_GUEST", "parse_tds", "parse_size",
           "td_covering", "TDS_SYNTAX"]
