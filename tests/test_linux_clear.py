"""clear.c through trackers.linux.clear: MOVDIR64B detection, the dispatch that
never runs an instruction the CPU lacks, and the stand-in's clear.  Facts
only: bytes cleared, refusals, detection answers; no timing is asserted."""

import errno

import numpy as np
import pytest

from trackers.linux import clear as c
from trackers.linux.build import cache_root
from trackers.linux.clear import CLEAR_STEM, build_clear, clear_fingerprint

FLAGS = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 {extra} avx2\n\n"
HAS = FLAGS.format(extra="movdiri movdir64b")
LACKS = FLAGS.format(extra="movdiri")


def _cpu_has_movdir64b() -> bool:
    return c.detect().present


def _buffer(nbytes: int, fill: int = 0xA5) -> np.ndarray:
    """An ALIGN-aligned uint8 buffer of nbytes filled with ``fill``."""
    raw = np.empty(nbytes + c.ALIGN, np.uint8)
    buf = c.aligned_bytes(raw, nbytes)[:nbytes]
    buf.fill(fill)
    return buf


def test_cpuinfo_flag_reads_the_flags_line():
    assert c.cpuinfo_flag(HAS) is True
    assert c.cpuinfo_flag(LACKS) is False
    assert c.cpuinfo_flag("processor\t: 0\n") is None        # no flags line: unknown
    assert c.cpuinfo_flag("") is None
    # a flag name inside another flag is no match
    assert c.cpuinfo_flag(FLAGS.format(extra="movdir64bx")) is False


@pytest.mark.parametrize("cpuinfo, cpuid, present", [
    (HAS, True, True),             # both say so
    (HAS, False, False),           # CPUID decides: the instruction is not there
    (LACKS, True, False),          # the kernel hides it: not used
    ("", True, True),              # no /proc/cpuinfo flags: CPUID alone
    (LACKS, False, False),
    (HAS, None, False),            # CPUID not asked (no library): never assumed
])
def test_detection_answers_both_ways(cpuinfo, cpuid, present):
    support = c.detect(cpuinfo_text=cpuinfo, cpuid=cpuid, ask_cpuid=False)
    assert support.present is present
    assert c.engine_for(support) == (c.ENGINE_MOVDIR64B if present else c.ENGINE_NT)
    verdict = "has MOVDIR64B" if present else "has no MOVDIR64B"
    assert support.describe().startswith(f"this CPU {verdict} (CPUID.(EAX=7,ECX=0):ECX[28]: ")


def test_detection_here_reads_cpuid_and_proc_cpuinfo():
    support = c.detect()
    with open("/proc/cpuinfo") as f:
        assert support.cpuinfo == c.cpuinfo_flag(f.read())
    assert support.cpuid in (True, False)                 # the library built and answered
    assert support.cpuid == bool(c.clear_library().tdx_clear_cpuid_movdir64b())


def test_the_movdir64b_path_is_compiled():
    """clear.c's MOVDIR64B function is in the library whatever the CPU: the
    instruction's encoding (66 0F 38 F8, MOVDIR64B r64, m512) is there, and
    the library says it was built with the engine."""
    lib = build_clear()
    assert lib.name == f"{CLEAR_STEM}-{clear_fingerprint()}.so"
    assert lib.parent == cache_root() / "clear"
    assert b"\x66\x0f\x38\xf8" in lib.read_bytes()
    assert c.clear_library().tdx_clear_has_engine(1) == 1        # TDX_CLEAR_MOVDIR64B
    assert c.clear_library().tdx_clear_has_engine(0) == 1        # TDX_CLEAR_NT
    assert build_clear() == lib                     # cached


def test_movdir64b_is_refused_unless_detected():
    buf = _buffer(8192)
    absent = c.Movdir64b(cpuid=False, cpuinfo=False)
    with pytest.raises(ValueError, match="MOVDIR64B asked for, but this CPU has no MOVDIR64B"):
        c.clear(buf, "4k", c.ENGINE_MOVDIR64B, absent)
    assert (buf == 0xA5).all()                                   # nothing was stored


@pytest.mark.skipif(_cpu_has_movdir64b(), reason="this CPU has MOVDIR64B")
def test_clear_c_refuses_movdir64b_on_a_cpu_without_it():
    """A detection that lies (says present) reaches clear.c, which checks
    CPUID itself and stores nothing: ENOSYS, never #UD."""
    buf = _buffer(8192)
    liar = c.Movdir64b(cpuid=True, cpuinfo=True)
    with pytest.raises(OSError) as exc:
        c.clear(buf, "4k", c.ENGINE_MOVDIR64B, liar)
    assert exc.value.errno == errno.ENOSYS
    assert (buf == 0xA5).all()


@pytest.mark.parametrize("target", sorted(c.TARGETS))
def test_the_clear_zeroes_exactly_its_buffer(target):
    size = 2 * c.TARGETS[target]
    whole = _buffer(size + 2 * c.ALIGN)
    inner = whole[c.ALIGN:c.ALIGN + size]
    support = c.detect()
    c.clear(inner, target, c.engine_for(support), support)
    assert not inner.any()
    assert (whole[:c.ALIGN] == 0xA5).all() and (whole[c.ALIGN + size:] == 0xA5).all()


def test_the_clear_refuses_bad_buffers():
    support = c.Movdir64b(cpuid=False, cpuinfo=None)
    buf = _buffer(3 * 4096)
    with pytest.raises(ValueError, match="start on a 4096-byte boundary and hold whole 2m"):
        c.clear(buf, "2m", c.ENGINE_NT, support)
    with pytest.raises(ValueError, match="start on a 4096-byte boundary"):
        c.clear(buf[64:64 + 4096], "4k", c.ENGINE_NT, support)
    with pytest.raises(ValueError, match="unknown clear target '1g'"):
        c.clear(buf, "1g", c.ENGINE_NT, support)
    with pytest.raises(ValueError, match="unknown clear engine 'rep stosb'"):
        c.clear(buf, "4k", "rep stosb", support)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        c.clear(buf.view(np.uint64), "4k", c.ENGINE_NT, support)
    assert (buf == 0xA5).all()


def test_slices_are_whole_targets():
    buf = _buffer(5 * 4096)
    parts = c.slices(buf, 2, "4k")
    assert [p.size for p in parts] == [3 * 4096, 2 * 4096]
    assert parts[1].ctypes.data == buf.ctypes.data + 3 * 4096


@pytest.mark.parametrize("cpus", [1, 2])
def test_time_clear_gives_a_rate_per_repeat_and_clears(cpus):
    buf = _buffer(cpus * c.TARGETS["2m"])
    support = c.Movdir64b(cpuid=False, cpuinfo=None)
    rates = c.time_clear(buf, "2m", c.ENGINE_NT, support, cpus=cpus, repeat=3)
    assert len(rates) == 3 and all(r > 0 for r in rates)
    assert not buf.any()


def test_build_clear_without_a_compiler_says_so(tmp_path, monkeypatch):
    from trackers.linux.clear import ClearCodeUnavailable
    monkeypatch.setenv("TRACKERS_LINUX_CACHE", str(tmp_path))       # nothing cached there
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(ClearCodeUnavailable, match=r"^no C compiler: \$CC=no-such-cc is not "
                                                   r"on PATH$"):
        build_clear()
    # no half library left (the lock file builds take turns on stays: integrity.py)
    assert [p.name for p in (tmp_path / "clear").iterdir()] == [".build.lock"]
