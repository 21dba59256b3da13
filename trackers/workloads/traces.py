"""Conversion traces from real tools, replayed as events.

Two text formats (docs/kernel-facts.md, "Real input formats"):

* ftrace / trace-cmd text of the ``kvm:kvm_vm_set_mem_attributes``
  tracepoint: ``... kvm_vm_set_mem_attributes: %#016llx -- %#016llx [0x%lx]``
  = GFN start, GFN end (exclusive), attributes; 0x8
  (KVM_MEMORY_ATTRIBUTE_PRIVATE) is private, 0 shared.  ``#`` header lines
  and other events are skipped; a file whose only such lines are comments
  is refused, as is one that holds events of both formats.
* QEMU's trace event ``kvm_convert_memory``:
  ``kvm_convert_memory start 0x<gpa> size 0x<bytes> shared_to_private|private_to_shared``;
  GPA and size must be page aligned.

Every line is checked against what x86-64 can address
(:data:`kernel.MAX_PHYS_ADDR`, 2^52 bytes = 2^40 GFNs): a GFN or a GPA + size
beyond it is refused naming the file, the line and the limit, as is a file
that is not UTF-8 text.

:func:`load_trace` parses a file into a :class:`Trace` (one row per line);
:meth:`Trace.replay` turns it into event batches through a TD's GFN->PFN
binding, allocating PFNs for GFNs that become private and releasing those
that become shared (in KVM's order, see :mod:`.events`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import kernel
from .. import extents as X
from ..events import concat
from .conversions import Binding
from .memmap import read_text

_FTRACE = re.compile(r"kvm_vm_set_mem_attributes:\s+(0x[0-9a-fA-F]+)\s+--\s+(0x[0-9a-fA-F]+)"
                     r"\s+\[(0x[0-9a-fA-F]+)\]\s*$")
_QEMU = re.compile(r"kvm_convert_memory\s+start\s+(0x[0-9a-fA-F]+)\s+size\s+(0x[0-9a-fA-F]+)"
                   r"\s+(shared_to_private|private_to_shared)\s*$")


#: each format's event name (the line that holds it is one event)
_KEYS = {"ftrace": "kvm_vm_set_mem_attributes", "qemu": "kvm_convert_memory"}


@dataclass(frozen=True)
class Trace:
    """Parsed conversions in file order: GFN ranges, direction, line numbers."""

    path: str
    format: str                 # "ftrace" | "qemu"
    gfn_start: np.ndarray
    gfn_end: np.ndarray
    to_private: np.ndarray      # bool
    lineno: np.ndarray

    def __len__(self) -> int:
        return int(self.gfn_start.size)

    @property
    def max_gfn(self) -> int:
        return int(self.gfn_end.max()) if len(self) else 0

    def check_within(self, layout: X.Extents) -> None:
        """Every range must lie in the TD's RAM (a memslot); name the line if not."""
        inside = X.intersect(X.normalize(self.gfn_start, self.gfn_end), layout)
        if X.count(inside) == X.count(X.normalize(self.gfn_start, self.gfn_end)):
            return
        for s, e, n in zip(self.gfn_start.tolist(), self.gfn_end.tolist(), self.lineno.tolist()):
            part = X.intersect((np.array([s]), np.array([e])), layout)
            if X.count(part) != e - s:
                ram = ", ".join(f"[{a:#x}, {b:#x})"
                                for a, b in zip(layout[0].tolist(), layout[1].tolist()))
                raise ValueError(f"{self.path}:{n}: GFNs [{s:#x}, {e:#x}) lie outside "
                                 f"the TD's RAM: GFN ranges {ram} ({X.count(layout):,} "
                                 f"pages, QEMU q35 layout)")

    def replay(self, td: int, binding: Binding, allocate, release) -> list[np.ndarray]:
        """Event batches, one per run of same-direction, non-overlapping lines."""
        batches, i, n = [], 0, len(self)
        while i < n:                                   # one step per trace line
            j, direction = i + 1, bool(self.to_private[i])
            seen = X.normalize(self.gfn_start[i:i + 1], self.gfn_end[i:i + 1])
            while j < n and bool(self.to_private[j]) == direction:
                r = (self.gfn_start[j:j + 1], self.gfn_end[j:j + 1])
                if X.count(X.intersect(seen, r)):
                    break
                seen = X.union(seen, r)
                j += 1
            qs, qe = self.gfn_start[i:j], self.gfn_end[i:j]
            if direction:
                batches.append(binding.to_private(td, qs, qe, allocate))
            else:
                batches.append(binding.to_shared(td, qs, qe, release))
            i = j
        return [concat(batches)] if batches else []


def _bad(path, lineno, text, why) -> ValueError:
    return ValueError(f"{path}:{lineno}: {why}: {text.rstrip()!r}")


def _read_lines(path: Path) -> list[str]:
    """The file's lines; ValueError naming the file and line if it is not text."""
    return read_text(path, "an ftrace or QEMU text log").splitlines()


def _check_gfns(path, lineno, text, start: int, end: int) -> None:
    """GFNs must lie below MAX_PHYS_PFN (2^52 bytes of guest physical address)."""
    for what, v, bad in (("start", start, start >= kernel.MAX_PHYS_PFN),
                         ("end", end, end > kernel.MAX_PHYS_PFN)):
        if bad:
            raise _bad(path, lineno, text,
                       f"GFN {what} {v:#x} is beyond what x86-64 can address: GFNs lie "
                       f"in [0, {kernel.MAX_PHYS_PFN:#x}) (2^{kernel.MAX_PHYSMEM_BITS} "
                       f"bytes, MAX_PHYSMEM_BITS)")


def load_trace(path) -> Trace:
    """Parse an ftrace kvm_vm_set_mem_attributes capture or a QEMU log."""
    path = Path(path)
    lines = _read_lines(path)
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: empty file: expected kvm_vm_set_mem_attributes or "
                         f"kvm_convert_memory lines")
    # the format is what the event lines say (comments, '#', say nothing); one per file
    first = {fmt: next((n for n, line in enumerate(lines, 1)
                        if key in line and not line.lstrip().startswith("#")), None)
             for fmt, key in _KEYS.items()}
    if all(first.values()):
        raise ValueError(f"{path}: two formats: line {first['ftrace']} is an ftrace "
                         f"kvm_vm_set_mem_attributes event and line {first['qemu']} a QEMU "
                         f"kvm_convert_memory one: give one per file (ftrace: the TD's boot and "
                         f"after; QEMU: its conversions after boot)")
    fmt = next((f for f, n in first.items() if n), None)
    if fmt is None:
        commented = [n for n, line in enumerate(lines, 1)
                     if any(k in line for k in _KEYS.values())]
        if commented:
            raise ValueError(f"{path}: no event: its {len(commented)} "
                             f"kvm_vm_set_mem_attributes or kvm_convert_memory line(s) (line "
                             f"{commented[0]}, ...) are comments, starting with '#'")
        raise ValueError(f"{path}: unknown format: no kvm_vm_set_mem_attributes "
                         f"(ftrace) or kvm_convert_memory (QEMU) lines")
    key = _KEYS[fmt]
    rx = _FTRACE if fmt == "ftrace" else _QEMU
    gs, ge, priv, nos = [], [], [], []
    for lineno, text in enumerate(lines, 1):
        if key not in text or text.lstrip().startswith("#"):
            continue
        m = rx.search(text)
        if not m:
            raise _bad(path, lineno, text, f"malformed {key} line")
        if fmt == "ftrace":
            s, e, attrs = (int(x, 16) for x in m.groups())
            _check_gfns(path, lineno, text, s, e)
            if attrs & ~kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE:
                raise _bad(path, lineno, text, f"unknown attribute bits {attrs:#x} "
                           f"(only {kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE:#x} = private)")
            p = bool(attrs & kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        else:
            gpa, size = int(m.group(1), 16), int(m.group(2), 16)
            if gpa + size > kernel.MAX_PHYS_ADDR:
                raise _bad(path, lineno, text,
                           f"start {gpa:#x} + size {size:#x} = {gpa + size:#x} is beyond what "
                           f"x86-64 can address: GPAs lie below {kernel.MAX_PHYS_ADDR:#x} "
                           f"(2^{kernel.MAX_PHYSMEM_BITS}, MAX_PHYSMEM_BITS)")
            if gpa % kernel.PAGE_SIZE or size % kernel.PAGE_SIZE:
                raise _bad(path, lineno, text, "start or size is not 4 KiB aligned")
            s, e = gpa >> kernel.PAGE_SHIFT, (gpa + size) >> kernel.PAGE_SHIFT
            p = m.group(3) == "shared_to_private"
        if s >= e:
            raise _bad(path, lineno, text, f"reversed or empty GFN range [{s:#x}, {e:#x})")
        gs.append(s), ge.append(e), priv.append(p), nos.append(lineno)
    return Trace(str(path), fmt, np.array(gs, np.int64), np.array(ge, np.int64),
                 np.array(priv, bool), np.array(nos, np.int64))


def bundled_traces() -> dict[str, Path]:
    """The samples shipped in trackers/data/traces."""
    root = Path(__file__).resolve().parent.parent / "data" / "traces"
    return {p.name.rsplit(".", 1)[0]: p for p in sorted(root.iterdir()) if p.is_file()}
