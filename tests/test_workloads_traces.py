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
