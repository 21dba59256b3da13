"""Host memory maps: the PFN space a tracker must cover, with its holes.

Three real formats (docs/kernel-facts.md, "Real input formats"), detected
from the content, plus synthetic server-shaped hosts:

* boot-log e820: ``BIOS-e820: [mem 0x%016llx-0x%016llx] <type>``, end
  inclusive; old style names RAM ``usable``, the Dec 2025 rework adds a size
  column, ``[gap ...]`` lines and names RAM ``System RAM``.  Only the
  firmware table (``BIOS-e820:`` lines) counts; later ``e820: update`` /
  ``e820: remove`` lines and other dmesg lines are ignored.
* ``/proc/iomem``: ``start-end : name``, end inclusive, two spaces of indent
  per nesting level; RAM is a top-level ``System RAM`` line.
* a ``/sys/firmware/memmap`` directory: ``N/{start,end,type}``, ``0x%llx``,
  end inclusive.

RAM becomes whole PFNs: a range keeps [PFN_UP(start), PFN_DOWN(end + 1)), so
partial pages at its edges are excluded (as memblock does).  ``max_pfn`` is
the end of the highest RAM range (e820__end_of_ram_pfn()).

Every address must lie below what x86-64 can address
(:data:`kernel.MAX_PHYS_ADDR`, 2^52); a line beyond it, or a file that is not
UTF-8 text, is refused naming the file, the line and the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import kernel
from .. import extents as X

GIB = 1 << 30
PAGE = kernel.PAGE_SIZE


@dataclass(frozen=True)
class MemoryMap:
    """RAM of one host as PFN extents.

    ram_starts/ram_ends: sorted, merged, half-open PFN ranges of RAM.
    max_pfn: end of the highest RAM range; trackers cover [0, max_pfn).
    node_starts: first PFN of each NUMA node (node i owns the RAM in
        [node_starts[i], node_starts[i+1])); one node for real dumps.
    name/source: a label and where it came from ("e820", "iomem", "sysfs",
        "synthetic").
    """

    name: str
    source: str
    ram_starts: np.ndarray
    ram_ends: np.ndarray
    max_pfn: int
    node_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    @property
    def ram_ranges(self) -> X.Extents:
        return self.ram_starts, self.ram_ends

    @property
    def ram_pages(self) -> int:
        return X.count(self.ram_ranges)

    @property
    def ram_bytes(self) -> int:
        return self.ram_pages * PAGE

    @property
    def holes(self) -> X.Extents:
        """PFN ranges in [0, max_pfn) that are not RAM."""
        return X.subtract((np.array([0], np.int64), np.array([self.max_pfn], np.int64)),
                          self.ram_ranges)

    @property
    def numa_nodes(self) -> int:
        return int(self.node_starts.size)

    def node_ram(self, node: int) -> X.Extents:
        """RAM of one NUMA node."""
        lo = int(self.node_starts[node])
        hi = int(self.node_starts[node + 1]) if node + 1 < self.numa_nodes else self.max_pfn
        return X.intersect(self.ram_ranges, (np.array([lo], np.int64), np.array([hi], np.int64)))

    def node_of(self, pfns: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.node_starts, pfns, side="right") - 1

    @property
    def vmemmap_bytes(self) -> int:
        """struct pages of the present 128 MiB sections: SPARSEMEM_VMEMMAP
        (vmemmap_populate()) backs no section without RAM, so this follows RAM,
        not max_pfn."""
        sections = X.count_blocks_touched(self.ram_ranges, kernel.SECTION_SIZE_BITS
                                          - kernel.PAGE_SHIFT)
        return sections * kernel.PAGES_PER_SECTION * kernel.STRUCT_PAGE_BYTES

    def ram_blocks_2m(self) -> X.Extents:
        """The whole 2 MiB blocks of RAM: each range's start rounded up and end
        down to 2 MiB (empty ranges dropped)."""
        unit = kernel.PAGES_PER_2M
        s = -(-self.ram_starts // unit) * unit
        e = self.ram_ends // unit * unit
        return s[e > s], e[e > s]

    def lay_over_ram(self, ext: X.Extents) -> X.Extents:
        """A set over [0, n), n = count(ram_blocks_2m()), laid over the RAM's
        whole 2 MiB blocks in address order: page i goes to the i-th page of
        those blocks, so 2 MiB aligned extents stay aligned."""
        bs, be = self.ram_blocks_2m()
        offsets = np.concatenate(([0], np.cumsum(be - bs)))
        if X.count(ext) and int(ext[1][-1]) > int(offsets[-1]):
            raise ValueError(f"set ends at {int(ext[1][-1])}, past the {int(offsets[-1]):,} "
                             f"pages of whole 2 MiB RAM blocks of {self.name}")
        parts = []
        for i in range(bs.size):                      # one step per RAM block
            ps, pe = X.intersect(ext, (offsets[i:i + 1], offsets[i + 1:i + 2]))
            parts.append((ps - offsets[i] + bs[i], pe - offsets[i] + bs[i]))
        return X.normalize(np.concatenate([p[0] for p in parts]),
                           np.concatenate([p[1] for p in parts]))

    def summary(self) -> str:
        return (f"{self.name} ({self.source}): {self.ram_pages:,} RAM pages "
                f"({self.ram_bytes / GIB:.2f} GiB) in {self.ram_starts.size} ranges, "
                f"max_pfn {self.max_pfn:#x}, {self.holes[0].size} holes, "
                f"{self.numa_nodes} NUMA node(s)")


# --------------------------------------------------------------------------
# parsing

_E820 = re.compile(
    r"BIOS-e820:\s+\[(mem|gap)\s+0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\]\s*(.*?)\s*$")
# new style puts a size before the type: "  640 KiB System RAM"
_SIZE_PREFIX = re.compile(r"^\d+(\.\d+)?\s*[KMGTPE]?i?B\s+")
_IOMEM = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*?)\s*$")
_E820_RAM = {"usable", "system ram"}
_SYSFS_RAM = {"system ram"}


def _bad_line(path, lineno: int, text: str, why: str) -> ValueError:
    return ValueError(f"{path}:{lineno}: {why}: {text.rstrip()!r}")


def _address(path, lineno: int, text: str, digits: str) -> int:
    """A hex address from a line; it must lie below 2^52 (MAX_PHYSMEM_BITS)."""
    value = int(digits, 16)
    if value >= kernel.MAX_PHYS_ADDR:
        raise _bad_line(path, lineno, text,
                        f"address {value:#x} is beyond what x86-64 can address: physical "
                        f"addresses lie below {kernel.MAX_PHYS_ADDR:#x} "
                        f"(2^{kernel.MAX_PHYSMEM_BITS}, MAX_PHYSMEM_BITS)")
    return value


def read_text(path: Path, expected: str) -> str:
    """The file as text; ValueError naming the file and line if it is not text
    (bad UTF-8, or a NUL byte: UTF-16 or binary).  ``expected`` names the format."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path}:{lineno}: unknown format: not a text file: byte "
                         f"{exc.start} is not UTF-8 ({exc.reason}); expected {expected} "
                         f"(UTF-8 or ASCII)") from None
    nul = text.find("\0")
    if nul >= 0:
        raise ValueError(f"{path}:{text.count(chr(10), 0, nul) + 1}: unknown format: not a "
                         f"text file: NUL byte at offset {nul} (UTF-16 or binary?); "
                         f"expected {expected} (UTF-8 or ASCII)")
    return text


def _parse_e820(path, lines) -> list[tuple[int, int, str, int]]:
    entries = []
    for lineno, text in enumerate(lines, 1):
        if "BIOS-e820:" not in text:
            continue                      # other dmesg lines, "e820: update" etc.
        m = _E820.search(text)
        if not m:
            raise _bad_line(path, lineno, text, "malformed BIOS-e820 line")
        kind, lo, hi, typ = m.groups()
        lo, hi = _address(path, lineno, text, lo), _address(path, lineno, text, hi)
        if kind == "gap":
            continue
        typ = _SIZE_PREFIX.sub("", typ)
        if not typ:
            raise _bad_line(path, lineno, text, "BIOS-e820 line without a type")
        entries.append((lo, hi, typ, lineno))
    return [(s, e, "ram" if t.lower() in _E820_RAM else t, n) for s, e, t, n in entries]


def _parse_iomem(path, lines) -> list[tuple[int, int, str, int]]:
    entries, all_zero, any_line = [], True, False
    for lineno, text in enumerate(lines, 1):
        if not text.strip():
            continue
        any_line = True
        m = _IOMEM.match(text.rstrip("\n"))
        if not m:
            raise _bad_line(path, lineno, text, "malformed /proc/iomem line")
        indent, lo, hi, name = m.groups()
        lo, hi = _address(path, lineno, text, lo), _address(path, lineno, text, hi)
        if lo or hi:
            all_zero = False
        if len(indent) % 2:
            raise _bad_line(path, lineno, text, "odd indent in /proc/iomem line")
        if indent:
            continue                      # nested: Kernel code, PCI children, ...
        entries.append((lo, hi, "ram" if name == "System RAM" else name, lineno))
    if any_line and all_zero:
        raise ValueError(
            f"{path}: every address in this /proc/iomem is zero: it was read without "
            f"CAP_SYS_ADMIN; read it as root (sudo cat /proc/iomem)")
    return entries


def _parse_sysfs(path: Path) -> list[tuple[int, int, str, int]]:
    subdirs = [d for d in path.iterdir() if d.is_dir()]
    if not subdirs:
        raise ValueError(f"{path}: empty /sys/firmware/memmap directory (no N/ entries)")
    bad = [d.name for d in subdirs if not d.name.isdigit()]
    if bad:
        raise ValueError(f"{path}: unknown format: {bad[0]!r} is not a "
                         f"/sys/firmware/memmap entry number")
    entries = []
    for d in sorted(subdirs, key=lambda d: int(d.name)):
        vals = {}
        for f in ("start", "end", "type"):
            p = d / f
            if not p.is_file():
                raise ValueError(f"{p}: missing (each memmap entry needs start, end, type)")
            lines = read_text(p, f"one line in memmap {f}").splitlines()
            text = lines[0] if lines else ""
            if len(lines) != 1 or not text.strip():
                raise _bad_line(p, 1, text, f"expected one line in memmap {f}")
            vals[f] = text.strip()
            if f != "type":
                if not re.fullmatch(r"0x[0-9a-fA-F]+", vals[f]):
                    raise _bad_line(p, 1, text, f"malformed memmap {f} (want 0x%llx)")
                vals[f] = _address(p, 1, text, vals[f])
        typ = vals["type"]
        entries.append((vals["start"], vals["end"],
                        "ram" if typ.lower() in _SYSFS_RAM else typ, int(d.name)))
    return entries


def _to_map(path, name: str, source: str, entries) -> MemoryMap:
    what = "entry" if source == "sysfs" else "line"
    for s, e, typ, n in entries:
        if s > e:
            raise ValueError(f"{path}: {what} {n}: reversed range: start {s:#x} > end {e:#x}")
    order = sorted(entries, key=lambda t: (t[0], t[1]))
    for (s0, e0, _, n0), (s1, e1, _, n1) in zip(order, order[1:]):
        if s1 <= e0:
            raise ValueError(
                f"{path}: overlapping ranges: {what} {n0} [{s0:#x}-{e0:#x}] and "
                f"{what} {n1} [{s1:#x}-{e1:#x}]")
    ram = [(s, e) for s, e, typ, _ in order if typ == "ram"]
    if not ram:
        raise ValueError(f"{path}: no RAM ranges ({source} format, {len(entries)} entries)")
    starts = np.array([-(-s // PAGE) for s, _ in ram], np.int64)       # PFN_UP
    ends = np.array([(e + 1) // PAGE for _, e in ram], np.int64)       # PFN_DOWN
    starts, ends = X.normalize(starts, ends)
    if starts.size == 0:
        raise ValueError(f"{path}: no whole RAM page in {len(ram)} RAM ranges")
    return MemoryMap(name=name, source=source, ram_starts=starts, ram_ends=ends,
                     max_pfn=int(ends[-1]))


def load_memory_map(path, name: str | None = None) -> MemoryMap:
    """Read a boot-log e820 table, a /proc/iomem dump or a sysfs memmap dir.

    The format is detected from the content.  Raises ValueError naming the
    file (and line) for malformed, reversed or overlapping entries, an empty
    file, an unknown format, or an unprivileged /proc/iomem read.
    """
    path = Path(path)
    name = name or path.name
    if path.is_dir():
        return _to_map(path, name, "sysfs", _parse_sysfs(path))
    text = read_text(path, "a boot log with BIOS-e820 lines or a /proc/iomem dump")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: empty file: expected a boot log with BIOS-e820 lines, "
                         f"a /proc/iomem dump or a /sys/firmware/memmap directory")
    if any("BIOS-e820:" in line for line in lines):
        return _to_map(path, name, "e820", _parse_e820(path, lines))
    first = next(line for line in lines if line.strip())
    if _IOMEM.match(first):
        return _to_map(path, name, "iomem", _parse_iomem(path, lines))
    raise ValueError(
        f"{path}: unknown format: no 'BIOS-e820:' lines and the first line "
        f"{first.strip()!r} is not a /proc/iomem line ('start-end : name')")


# --------------------------------------------------------------------------
# synthetic hosts

LOW_RAM_END = 0xA0000 // PAGE          # 640 KiB: the legacy VGA/BIOS hole above
LOW_HOLE_END = (1 << 20) // PAGE       # 1 MiB
PCI_HOLE_START = (3 * GIB) // PAGE     # 3-4 GiB: MMIO below 4 GiB
FOUR_GIB = (4 * GIB) // PAGE
NODE_GAP_PAGES = (4 * GIB) // PAGE     # HPE UV: ~252 GiB usable then 4 GiB reserved
SYNTH_MIN_BYTES = 4 * GIB
SYNTH_MAX_BYTES = 64 << 40


def default_numa_nodes(ram_bytes: int) -> int:
    """Two sockets up to 512 GiB, then one node per 256 GiB, at most 32."""
    return int(min(32, max(2, ram_bytes // (256 * GIB))))


def synthetic_host(ram_bytes: int, numa_nodes: int | None = None,
                   name: str | None = None) -> MemoryMap:
    """A server-shaped PFN space holding ``ram_bytes`` of RAM.

    Layout (the HPE UV dump in kernel-facts): RAM [0, 640 KiB), a hole to
    1 MiB, RAM [1 MiB, 3 GiB), the PCI hole [3 GiB, 4 GiB), then from 4 GiB one
    block of RAM per NUMA node, each followed by a 4 GiB reserved gap (none
    after the last).  Node 0 also owns the RAM below 4 GiB.  The RAM above
    4 GiB is split evenly in 2 MiB units, the last node taking the remainder.
    Meant for 64 GiB .. 64 TiB; accepts 4 GiB and up for small test hosts.
    """
    ram_bytes = int(ram_bytes)
    if not SYNTH_MIN_BYTES <= ram_bytes <= SYNTH_MAX_BYTES:
        raise ValueError(f"synthetic host RAM {ram_bytes:,} bytes is outside "
                         f"[{SYNTH_MIN_BYTES:,}, {SYNTH_MAX_BYTES:,}] (4 GiB .. 64 TiB)")
    nodes = default_numa_nodes(ram_bytes) if numa_nodes is None else int(numa_nodes)
    if nodes < 1:
        raise ValueError(f"numa_nodes {nodes} must be >= 1")
    low = [(0, LOW_RAM_END), (LOW_HOLE_END, PCI_HOLE_START)]
    low_pages = sum(e - s for s, e in low)
    high = ram_bytes // PAGE - low_pages
    unit = kernel.PAGES_PER_2M
    per_node = (high // nodes) // unit * unit
    if per_node <= 0:
        raise ValueError(f"{ram_bytes:,} bytes leave no RAM above 4 GiB for {nodes} nodes")
    sizes = [per_node] * (nodes - 1) + [high - per_node * (nodes - 1)]
    starts, ends, node_starts = [s for s, _ in low], [e for _, e in low], [0]
    at = FOUR_GIB
    for i, size in enumerate(sizes):
        if i:
            node_starts.append(at)
        starts.append(at)
        ends.append(at + size)
        at += size + NODE_GAP_PAGES
    s, e = X.normalize(np.array(starts), np.array(ends))
    return MemoryMap(name=name or f"synthetic-{ram_bytes / GIB:g}g", source="synthetic",
                     ram_starts=s, ram_ends=e, max_pfn=int(e[-1]),
                     node_starts=np.array(node_starts, np.int64))


def bundled_memmaps() -> dict[str, Path]:
    """The real-format samples shipped in trackers/data/memmaps."""
    root = Path(__file__).resolve().parent.parent / "data" / "memmaps"
    return {p.name.rsplit(".", 1)[0] if p.is_file() else p.name: p
            for p in sorted(root.iterdir()) if not p.name.startswith(".")}
