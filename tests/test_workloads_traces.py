"""Trace samples: parsed and replayed into counts derived by hand."""

import numpy as np
import pytest

from trackers.workloads import (KVM_SET_ATTR_PRIVATE, SEAMCALL_PRIVATE, SEAMCALL_RECLAIM,
                                kvm_private_after, load_trace, private_after, scenario)
from trackers import extents as X
from trackers.workloads.traces import bundled_traces

TD16 = 16 * (1 << 30) // 4096           # 4,194,304 pages


def test_ftrace_sample_parses():
    t = load_trace(bundled_traces()["td16g-boot"])
    assert t.format == "ftrace" and len(t) == 573
    # 2 boot lines + 40 re-privatising lines are [0x8]; 492 + 39 are [0x0]
    assert int(t.to_private.sum()) == 42 and int((~t.to_private).sum()) == 531
    assert t.max_gfn == 0x480000


def test_ftrace_sample_replays_to_hand_counts():
    w = scenario("trace-td16g-boot")
    # boot: [0, 0x80000) + [0x100000, 0x480000) = 0x400000 = 4,194,304 private;
    # 491 chunks [0x442a00, 0x480000) = 0x3d600 = 251,392 pages go shared for good
    # (the SWIOTLB); chunk 492 and 39 more are shared then made private again.
    assert X.count(w.final_kvm()) == TD16 - 251_392 == 3_942_912
    ev = w.events()
    pages = lambda m: int((ev["pfn_end"][m] - ev["pfn_start"][m]).sum())
    g = ev["kind"] == 7
    assert pages(g & (ev["op"] == SEAMCALL_RECLAIM)) == (492 + 39) * 512 == 271_872
    assert pages(g & (ev["op"] == SEAMCALL_PRIVATE)) == TD16 + 40 * 512 == 4_214_784
    assert X.count(kvm_private_after(w.batches)) == 3_942_912
    assert X.count(private_after(w.batches)) == X.count(w.final_private_all())


def test_qemu_sample_replays_to_hand_counts():
    t = load_trace(bundled_traces()["qemu-convert"])
    assert t.format == "qemu" and len(t) == 72
    # 64 x 2 MiB private_to_shared from GPA 15 GiB, then the first 8 back:
    # 56 chunks x 512 = 28,672 pages stay shared
    assert int(((t.gfn_end - t.gfn_start) * np.where(t.to_private, -1, 1)).sum()) == 28_672
    w = scenario("trace-qemu-convert")
    # the TD boots (SWIOTLB 251,392 shared), then the log shares 28,672 more
    assert X.count(w.final_kvm()) == TD16 - 251_392 - 28_672 == 3_914_240


def _w(tmp_path, text, name="t.trace"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_malformed_trace_line(tmp_path):
    p = _w(tmp_path, "# tracer: nop\n x-1 [000] ..... 1.0: kvm_vm_set_mem_attributes: 0x10 -- [0x8]\n")
    with pytest.raises(ValueError, match=r"t\.trace:2: malformed kvm_vm_set_mem_attributes"):
        load_trace(p)


def test_trace_empty_unknown_unaligned(tmp_path):
    with pytest.raises(ValueError, match="empty file"):
        load_trace(_w(tmp_path, ""))
    with pytest.raises(ValueError, match="unknown format"):
        load_trace(_w(tmp_path, "hello\n"))
    with pytest.raises(ValueError, match=":1: start or size is not 4 KiB aligned"):
        load_trace(_w(tmp_path, "1@2:kvm_convert_memory start 0x1000 size 0x800 "
                                "private_to_shared\n"))
    with pytest.raises(ValueError, match="reversed or empty"):
        load_trace(_w(tmp_path, " a: kvm_vm_set_mem_attributes: 0x20 -- 0x10 [0x8]\n"))


def test_trace_outside_td_names_line(tmp_path):
    t = load_trace(_w(tmp_path, " a: kvm_vm_set_mem_attributes: 0x0 -- 0x10 [0x8]\n"
                                " a: kvm_vm_set_mem_attributes: 0x90000 -- 0x90010 [0x8]\n"))
    with pytest.raises(ValueError, match=r":2: GFNs \[0x90000, 0x90010\) lie outside"):
        t.check_within((np.array([0]), np.array([0x80000])))
    assert KVM_SET_ATTR_PRIVATE == 3


FT = " a-1 [000] ..... 1.0: kvm_vm_set_mem_attributes: {} -- {} [0x8]\n"
QE = "1@2.0:kvm_convert_memory start {} size {} private_to_shared\n"
LIMIT_GFN = r"GFNs lie in \[0, 0x10000000000\) \(2\^52 bytes, MAX_PHYSMEM_BITS\)"
LIMIT_GPA = r"GPAs lie below 0x10000000000000 \(2\^52, MAX_PHYSMEM_BITS\)"
NOT_TEXT = r"expected an ftrace or QEMU text log \(UTF-8 or ASCII\)"


@pytest.mark.parametrize("data, msg", [
    # binary: the first non-UTF-8 byte (0x80 at 8 + 128) is on line 2 (0x0a at 8 + 10)
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
     rf"t\.trace:2: unknown format: not a text file: byte 136 is not UTF-8 \(invalid start byte\); {NOT_TEXT}"),
    ((FT.format("0x0", "0x10")).encode("utf-16"),              # with a BOM
     rf"t\.trace:1: unknown format: not a text file: byte 0 is not UTF-8 \(invalid start byte\); {NOT_TEXT}"),
    (("# x\n" + FT.format("0x0", "0x10")).encode("utf-16-le"),  # no BOM: NULs
     rf"t\.trace:1: unknown format: not a text file: NUL byte at offset 1 \(UTF-16 or binary\?\); {NOT_TEXT}"),
    ((FT.format("0x0", "0x10") + FT.format("0x0", "0x8000000000000000")).encode(),
     rf"t\.trace:2: GFN end 0x8000000000000000 is beyond what x86-64 can address: {LIMIT_GFN}"),
    (FT.format("0x10000000000", "0x10000000001").encode(),
     rf"t\.trace:1: GFN start 0x10000000000 is beyond what x86-64 can address: {LIMIT_GFN}"),
    (FT.format("0x0", "0x" + "f" * 20).encode(),
     rf"t\.trace:1: GFN end 0x{'f' * 20} is beyond what x86-64 can address: {LIMIT_GFN}"),
    (QE.format("0xfffffffffffff000", "0x2000").encode(),      # wraps past 2^64 in C
     r"t\.trace:1: start 0xfffffffffffff000 \+ size 0x2000 = 0x10000000000001000 is beyond "
     rf"what x86-64 can address: {LIMIT_GPA}"),
    ((QE.format("0x0", "0x1000") + QE.format("0xffffffffff000", "0x2000")).encode(),
     r"t\.trace:2: start 0xffffffffff000 \+ size 0x2000 = 0x10000000001000 is beyond "
     rf"what x86-64 can address: {LIMIT_GPA}"),
], ids=["binary", "utf-16-bom", "utf-16-le", "gfn-2^63", "gfn-2^40", "gfn-20-digits",
        "qemu-wraps-2^64", "qemu-past-2^52"])
def test_trace_refuses_what_no_x86_64_host_writes(tmp_path, data, msg):
    p = tmp_path / "t.trace"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=msg):
        load_trace(p)


def test_trace_accepts_the_last_addressable_page(tmp_path):
    t = load_trace(_w(tmp_path, FT.format("0xfffffffffe", "0x10000000000")))
    assert (t.gfn_start.tolist(), t.gfn_end.tolist()) == ([0xFFFFFFFFFE], [1 << 40])
    t = load_trace(_w(tmp_path, QE.format("0xffffffffff000", "0x1000")))
    assert (t.gfn_start.tolist(), t.gfn_end.tolist()) == ([(1 << 40) - 1], [1 << 40])


def test_a_trace_whose_only_event_is_a_comment_is_refused(tmp_path):
    p = _w(tmp_path, "# tracer: nop\n# x-1 [000] 1.0: kvm_vm_set_mem_attributes: 0x10 -- "
                     "0x20 [0x8]\n")
    with pytest.raises(ValueError) as exc:
        load_trace(p)
    assert str(exc.value) == (f"{p}: no event: its 1 kvm_vm_set_mem_attributes or "
                              f"kvm_convert_memory line(s) (line 2, ...) are comments, "
                              f"starting with '#'")


def test_a_trace_with_both_formats_is_refused(tmp_path):
    """An ftrace capture that also holds QEMU lines: they were dropped without
    a word; the file is refused, naming a line of each."""
    p = _w(tmp_path, "# tracer: nop\n"
                     " a-1 [000] 1.0: kvm_vm_set_mem_attributes: 0x10 -- 0x20 [0x8]\n"
                     "4242@1.5:kvm_convert_memory start 0x20000 size 0x1000 private_to_shared\n")
    with pytest.raises(ValueError) as exc:
        load_trace(p)
    assert str(exc.value) == (
        f"{p}: two formats: line 2 is an ftrace kvm_vm_set_mem_attributes event and line 3 a "
        f"QEMU kvm_convert_memory one: give one per file (ftrace: the TD's boot and after; "
        f"QEMU: its conversions after boot)")
    # a comment naming the other format is no event of it
    q = _w(tmp_path, "# from kvm_convert_memory\n"
                     " a-1 [000] 1.0: kvm_vm_set_mem_attributes: 0x10 -- 0x20 [0x8]\n")
    assert load_trace(q).format == "ftrace" and len(load_trace(q)) == 1
