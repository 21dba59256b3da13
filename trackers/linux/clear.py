"""ctypes binding to clear.c: the kernel's MOVDIR64B clear of TDX memory, or
its non-temporal-store stand-in where the CPU has no MOVDIR64B, timed over a
buffer for ``tdx-trackers calibrate``.

clear.c (MIT, no kernel code) clears a buffer in *targets*, each one piece
of 64-byte stores then one MFENCE, as tdx_quirk_reset_paddr() issues them:

* ``4k`` -- one 4 KiB page, then the fence: tdx_quirk_reset_page(), 64
  MOVDIR64B and mb() per page;
* ``2m`` -- one call over 2 MiB, then the fence: a range reset at once.

Engines: :data:`ENGINE_MOVDIR64B` where :func:`detect` says the CPU has the
instruction (CPUID.(EAX=7,ECX=0):ECX[28], and the kernel's
``/proc/cpuinfo`` flag ``movdir64b`` where there is one), else
:data:`ENGINE_NT`, 16-byte non-temporal stores (``_mm_stream_si128``), the
stand-in.  Nothing ever executes MOVDIR64B on a CPU without it: :func:`clear`
refuses the engine unless the detection it is given says so, and clear.c
checks CPUID itself before issuing one (``-ENOSYS`` otherwise).

Why ctypes and a C file of its own: the instruction needs a compiler
(``_movdir64b`` from immintrin.h, compiled for one function with
``target("movdir64b")``), and the project already compiles its own C and
calls it through ctypes (pages.c, directmap.c); cffi would add a dependency
for one function.  clear.c is a library apart from the kernel library
(:func:`build_clear`: it needs a C compiler and nothing
else), so the clear is timed on a machine without the kernel source too.

Timing is done here, from Python (``time.perf_counter`` around whole calls),
as :func:`trackers.linux.time_scan` does: :func:`time_clear` gives one rate
per repeat, on one core or one contiguous slice per CPU (threads: ctypes
releases the GIL during the call).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .build import (CFLAGS, KernelCodeUnavailable, cache_root, cache_unwritable, find_compiler,
                    sweep_temporaries, tmp_prefix, write_json)
from .dlopen import typed_library
from .integrity import damage, library_record, seal, taking_turns

#: the clear of TDX memory, MOVDIR64B or its stand-in (MIT; no kernel code).
#: Its own small library, compiled from this one file with the kernel
#: library's CFLAGS, so that `tdx-trackers calibrate` can time the clear on a
#: machine without the kernel source: build_clear()
CLEAR = Path(__file__).with_name("clear.c")
CLEAR_STEM = "libtdxclear"


class ClearCodeUnavailable(OSError):
    """clear.c cannot be compiled here (no C compiler, or it refused the
    file); an OSError, as KernelCodeUnavailable."""


def clear_fingerprint() -> str:
    """Hash of clear.c and its flags: the clear library's key."""
    h = hashlib.sha256(CLEAR.read_bytes())
    h.update(json.dumps([CFLAGS]).encode())
    return h.hexdigest()[:12]


def build_clear(*, force: bool = False) -> Path:
    """Compile clear.c alone (``CFLAGS -shared``, no kernel headers: it
    includes none) into ``cache_root()/clear/libtdxclear-<key>.so``, once per
    key; ``force`` recompiles.  The library appears whole (compiled to a
    temporary name, renamed last), its size and sha256 recorded beside it
    (``libtdxclear-<key>.json``); a cached library that does not match its
    record (:func:`damage`) is compiled again, saying so on stderr.  Raises
    :class:`ClearCodeUnavailable` naming the compiler's complaint, that
    there is no compiler, or that the cache cannot be written."""
    if not CLEAR.is_file():
        raise ClearCodeUnavailable(f"{CLEAR} is missing: install the package from its source "
                                   f"tree (pip install -e .)")
    root = cache_root()
    d = root / "clear"
    try:
        d.mkdir(parents=True, exist_ok=True)
        with taking_turns(d):
            return _build_clear_in(d, force)
    except OSError as exc:
        if isinstance(exc, ClearCodeUnavailable):
            raise
        raise ClearCodeUnavailable(str(cache_unwritable(root, exc))) from None


def _build_clear_in(d: Path, force: bool) -> Path:
    key = clear_fingerprint()
    lib = d / f"{CLEAR_STEM}-{key}.so"
    record = d / f"{CLEAR_STEM}-{key}.json"
    if lib.is_file() and not force:
        try:
            what = damage(lib, json.loads(record.read_text()))
        except (OSError, ValueError):
            what = "has no readable record of its size and sha256"
        if not what:
            return lib
        print(f"tdx-trackers: the clear library {lib} {what}: compiling clear.c again",
              file=sys.stderr)
    try:
        cc = find_compiler()
    except KernelCodeUnavailable as exc:
        raise ClearCodeUnavailable(str(exc).split(";")[0]) from None
    sweep_temporaries(d)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(CLEAR_STEM), suffix=".so", dir=d)
    os.close(fd)
    cmd = [cc, *CFLAGS, "-shared", str(CLEAR), "-o", tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = next((ln for ln in proc.stderr.splitlines() if "error" in ln), "").strip()
            raise ClearCodeUnavailable(f"compiling {CLEAR.name} failed: {last[:300]} "
                                       f"(command: {' '.join(cmd)})")
        seal(Path(tmp))
        write_json(record, {"library": str(lib), "key": key, **library_record(Path(tmp))})
        os.replace(tmp, lib)                          # the library appears whole, last
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib

#: the engines of tdx_clear() (clear.c TDX_CLEAR_*)
ENGINE_NT = "non-temporal stores (_mm_stream_si128), the MOVDIR64B stand-in"
ENGINE_MOVDIR64B = "MOVDIR64B"
_ENGINE_CODES = {ENGINE_NT: 0, ENGINE_MOVDIR64B: 1}
#: clear targets: one fence per target (module doc)
TARGETS = {"4k": 4096, "2m": 2 << 20}
#: a buffer given to clear() must start on this boundary (a page: so 4 KiB
#: targets are pages)
ALIGN = 4096
#: the /proc/cpuinfo flag and the CPUID bit that say the CPU has MOVDIR64B
CPUINFO_FLAG = "movdir64b"
CPUID_BIT = "CPUID.(EAX=7,ECX=0):ECX[28]"

_ENOSYS = 38
#: clear.c's functions: name -> (restype, argtypes)
_SIGNATURES = {
    "tdx_clear": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                 ctypes.c_int]),
    "tdx_clear_cpuid_movdir64b": (ctypes.c_int, []),
    "tdx_clear_has_engine": (ctypes.c_int, [ctypes.c_int]),
}
_lib: ctypes.CDLL | None = None


def clear_library() -> ctypes.CDLL:
    """clear.c's library, compiled on first use (cached: build_clear) and
    loaded once.  Raises :class:`ClearCodeUnavailable` where it cannot be."""
    global _lib
    if _lib is None:
        path = build_clear()
        _lib = typed_library(path, _SIGNATURES, unavailable=ClearCodeUnavailable,
                             what=str(path))
    return _lib


# --------------------------------------------------------------------------
# detection

def cpuinfo_flag(text: str, flag: str = CPUINFO_FLAG) -> bool | None:
    """Whether the first ``flags`` line of /proc/cpuinfo text lists ``flag``;
    None where the text has no flags line."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return flag in value.split()
    return None


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _cpuid_movdir64b() -> bool | None:
    """CPUID's answer through clear.c; None where the library cannot be built."""
    try:
        return bool(clear_library().tdx_clear_cpuid_movdir64b())
    except ClearCodeUnavailable:
        return None


@dataclass(frozen=True)
class Movdir64b:
    """Whether this CPU has MOVDIR64B: CPUID's answer (None: not asked, no
    library) and the kernel's /proc/cpuinfo flag (None: no flags line)."""

    cpuid: bool | None
    cpuinfo: bool | None

    @property
    def present(self) -> bool:
        """The instruction may run: CPUID enumerates it, and the kernel does
        not hide it (a kernel that lists flags lists movdir64b)."""
        return bool(self.cpuid) and self.cpuinfo is not False

    def describe(self) -> str:
        def said(v):
            return {True: "yes", False: "no", None: "unknown"}[v]
        verdict = "has MOVDIR64B" if self.present else "has no MOVDIR64B"
        return (f"this CPU {verdict} ({CPUID_BIT}: {said(self.cpuid)}; /proc/cpuinfo "
                f"'{CPUINFO_FLAG}': {said(self.cpuinfo)})")


def detect(cpuinfo_text: str | None = None, cpuid: bool | None = None,
           ask_cpuid: bool = True) -> Movdir64b:
    """This CPU's MOVDIR64B, from /proc/cpuinfo (``cpuinfo_text`` instead,
    for tests) and CPUID through clear.c (``cpuid`` instead, for tests;
    ``ask_cpuid=False``: not asked)."""
    text = _read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    if cpuid is None and ask_cpuid:
        cpuid = _cpuid_movdir64b()
    return Movdir64b(cpuid=cpuid, cpuinfo=cpuinfo_flag(text))


def engine_for(support: Movdir64b) -> str:
    """The engine a clear runs on: MOVDIR64B where present, else the stand-in."""
    return ENGINE_MOVDIR64B if support.present else ENGINE_NT


# --------------------------------------------------------------------------
# the clear

def aligned_bytes(buf: np.ndarray, multiple: int) -> np.ndarray:
    """The largest uint8 view of ``buf`` that starts on an ALIGN boundary and
    holds a whole number of ``multiple`` bytes (empty if none)."""
    raw = buf.reshape(-1).view(np.uint8)
    skip = -raw.ctypes.data % ALIGN
    usable = max(raw.size - skip, 0) // multiple * multiple
    return raw[skip:skip + usable]


def clear(buf: np.ndarray, target: str, engine: str, support: Movdir64b) -> None:
    """Zero ``buf`` (uint8, C-contiguous, ALIGN-aligned, a whole number of
    targets) in ``target`` pieces on ``engine``.  ``support`` is the detection
    the caller dispatched on: MOVDIR64B is refused (ValueError) unless it says
    present, and clear.c refuses it (OSError ENOSYS) unless CPUID does."""
    if engine not in _ENGINE_CODES:
        raise ValueError(f"unknown clear engine {engine!r}; known: {', '.join(_ENGINE_CODES)}")
    if engine == ENGINE_MOVDIR64B and not support.present:
        raise ValueError(f"MOVDIR64B asked for, but {support.describe()}")
    if target not in TARGETS:
        raise ValueError(f"unknown clear target {target!r}; known: {', '.join(TARGETS)}")
    if buf.dtype != np.uint8 or not buf.flags.c_contiguous:
        raise ValueError("the buffer must be C-contiguous uint8")
    if buf.ctypes.data % ALIGN or buf.size % TARGETS[target]:
        raise ValueError(f"the buffer must start on a {ALIGN}-byte boundary and hold whole "
                         f"{target} targets ({TARGETS[target]} B); got {buf.size} B at "
                         f"{buf.ctypes.data:#x}")
    ret = clear_library().tdx_clear(buf.ctypes.data, buf.size, TARGETS[target],
                                    _ENGINE_CODES[engine])
    if ret == -_ENOSYS:
        raise OSError(_ENOSYS, f"clear.c refused {engine}: not built for this CPU, or CPUID "
                               f"says it has no MOVDIR64B")
    if ret < 0:
        raise OSError(-ret, f"tdx_clear({engine}, {target}) returned errno {-ret}")


def slices(buf: np.ndarray, cpus: int, target: str) -> list[np.ndarray]:
    """``buf`` in ``cpus`` contiguous slices of whole targets (the last may be
    shorter; none is empty where ``buf`` holds at least ``cpus`` targets)."""
    per = TARGETS[target]
    n = buf.size // per
    chunk = -(-n // cpus) * per
    return [buf[i:i + chunk] for i in range(0, buf.size, chunk)]


def time_clear(buf: np.ndarray, target: str, engine: str, support: Movdir64b,
               cpus: int = 1, repeat: int = 5) -> list[float]:
    """``repeat`` rates (bytes per second) of clearing ``buf`` (prepared by
    :func:`aligned_bytes` for ``cpus`` x the target) after one untimed clear:
    on the calling thread where ``cpus`` is 1, else one contiguous slice per
    thread of a pool of ``cpus``, each clearing its own."""
    if cpus < 1 or repeat < 1:
        raise ValueError(f"cpus {cpus} and repeat {repeat} must be >= 1")
    parts = slices(buf, cpus, target)
    if cpus == 1:
        def run():
            clear(buf, target, engine, support)
        return _rates(run, buf.size, repeat)
    with concurrent.futures.ThreadPoolExecutor(cpus) as pool:
        def run():
            for f in [pool.submit(clear, p, target, engine, support) for p in parts]:
                f.result()
        return _rates(run, buf.size, repeat)


def _rates(run, nbytes: int, repeat: int) -> list[float]:
    run()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        out.append(nbytes / (time.perf_counter() - t0))
    return out
