"""trackers.linux: the kernel's own lib/xarray.c, lib/idr.c, lib/maple_tree.c
and find_bit, built from this machine's kernel source, against the facts the
models rest on (exact node counts, exact sets, exact errors).

Skipped, with the reason, where the library cannot be built (no
linux-source, liburcu-dev or gcc).  The first run builds it into the user's
cache (~15 s from Debian's tarball); later runs load it.
"""

import errno
import importlib
import io
import os
import tarfile

import numpy as np
import pytest

import trackers.linux as linux
from trackers import kernel
from trackers.extents import normalize_extents
from trackers.xa import XaTree, xa_node_counts

# the module (trackers.linux.build is the function)
linux_build = importlib.import_module("trackers.linux.build")


def runs_of(chunks):
    """Concatenate scan chunks into a list of (start, end), checking that each
    chunk is ascending, disjoint and that no two runs touch."""
    out = []
    for s, e in chunks:
        assert s.dtype == np.int64 and e.dtype == np.int64
        for a, b in zip(s.tolist(), e.tolist()):
            assert a < b
            if out:
                assert a > out[-1][1], f"run {a, b} touches or overlaps {out[-1]}"
            out.append((a, b))
    return out


def extents_list(starts, ends):
    s, e = normalize_extents(np.asarray(starts, np.int64), np.asarray(ends, np.int64))
    return list(zip(s.tolist(), e.tolist()))


def random_extents(rng, n, space, longest):
    s = rng.integers(0, space, n)
    return s, s + rng.integers(1, longest, n)


# --------------------------------------------------------------------------
# the build: sizes, version, errors

def test_static_sizes_are_the_models(lib):
    f = lib.facts()
    assert f["sizeof(struct xa_node)"] == 576 == kernel.XA_NODE_BYTES
    assert f["XA_CHUNK_SHIFT"] == 6 and f["XA_CHUNK_SIZE"] == 64
    assert f["sizeof(struct maple_node)"] == 256 == kernel.MAPLE_NODE_BYTES
    assert f["MAPLE_RANGE64_SLOTS"] == 16 == kernel.MAPLE_RANGE64_SLOTS
    assert f["sizeof(struct ida_bitmap)"] == 128 == kernel.IDA_BITMAP_BYTES
    assert f["IDA_BITMAP_BITS"] == kernel.IDA_BITMAP_BITS
    assert f["INT_MAX"] == 2**31 - 1


def test_version_is_the_kernel_makefiles(lib):
    v = lib.version()
    assert v == lib.build_info()["version"]
    major, minor = (int(x) for x in v.split(".")[:2])
    assert (major, minor) >= (6, 1)


def _fake_tarball(path, makefile: str):
    with tarfile.open(path, "w:xz") as tf:
        data = makefile.encode()
        info = tarfile.TarInfo("linux-9.9/Makefile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def _assert_names_the_fix(msg: str):
    assert "apt-get install linux-source-6.12 liburcu-dev gcc" in msg
    assert "--linux-src" in msg


def test_missing_source_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(linux_build.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(linux.KernelCodeUnavailable, match="no kernel source at") as exc:
        linux.build(tmp_path / "nowhere")
    _assert_names_the_fix(str(exc.value))


def test_missing_compiler_is_named(tmp_path, monkeypatch):
    tarball = tmp_path / "linux-9.9.tar.xz"
    _fake_tarball(tarball, "VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    monkeypatch.setenv(linux_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(linux.KernelCodeUnavailable, match="no C compiler") as exc:
        linux.build(tarball)
    _assert_names_the_fix(str(exc.value))


def test_missing_liburcu_is_named(tmp_path, monkeypatch):
    # a "compiler" that cannot find urcu.h, as gcc without liburcu-dev
    cc = tmp_path / "fakecc"
    cc.write_text("#!/bin/sh\necho 'urcu_probe.c:1:10: fatal error: urcu.h: "
                  "No such file or directory' >&2\nexit 1\n")
    cc.chmod(0o755)
    tarball = tmp_path / "linux-9.9.tar.xz"
    _fake_tarball(tarball, "VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\n")
    monkeypatch.setenv(linux_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(cc))
    with pytest.raises(linux.KernelCodeUnavailable, match="no liburcu") as exc:
        linux.build(tarball)
    _assert_names_the_fix(str(exc.value))
    assert not list((tmp_path / "cache").rglob("*.so"))       # nothing half-built left


def test_old_or_incomplete_source_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(linux_build.CACHE_ENV, str(tmp_path / "cache"))
    old = tmp_path / "old"
    old.mkdir()
    (old / "Makefile").write_text("VERSION = 5\nPATCHLEVEL = 15\nSUBLEVEL = 0\n")
    with pytest.raises(linux.KernelCodeUnavailable, match="older than 6.1"):
        linux.build(old)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 1\n")
    if linux_build.shutil.which("gcc") or linux_build.shutil.which("cc"):
        with pytest.raises(linux.KernelCodeUnavailable, match="lacks lib/xarray.c"):
            linux.build(tree)


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755),
                                                       (0o077, 0o600, 0o700)])
def test_the_extracted_source_follows_the_umask(umask, file_mode, dir_mode, tmp_path):
    """src/ (made by mkdtemp, 0700) and src.json (mkstemp, 0600) get the modes
    mkdir and open give under the umask, as every other output."""
    tarball = tmp_path / "linux-9.9.tar.xz"
    with tarfile.open(tarball, "w:xz") as tf:
        for rel in linux_build.REQUIRED:
            data = b"VERSION = 9\nPATCHLEVEL = 9\n" if rel == "Makefile" else b""
            info = tarfile.TarInfo(f"linux-9.9/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    vdir = tmp_path / "cache" / "linux-9.9.0"
    vdir.mkdir(parents=True)
    old = os.umask(umask)
    try:
        tree, _ = linux_build._prepare_tree(tarball, vdir, force=False)
        linux_build._point_current(vdir.parent, vdir / "x.so", vdir / "x.json")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in
             (tree, vdir / "src.json", vdir.parent / "current.json")}
    assert modes == {"src": dir_mode, "src.json": file_mode, "current.json": file_mode}


def test_extraction_takes_only_what_the_build_reads():
    wanted = linux_build.wanted
    for rel in ("Makefile", "lib/xarray.c", "lib/maple_tree.c", "include/linux/xarray.h",
                "tools/include/linux/bitmap.h", "tools/testing/shared/linux.c",
                "tools/lib/find_bit.c", "tools/arch/x86/include/asm/barrier.h"):
        assert wanted(rel), rel
    for rel in ("drivers/net/e1000/e1000_main.c", "Documentation/core-api/xarray.rst",
                "lib/zstd/common/zstd_common.c", "include/linux/sched/mm.h",
                "tools/lib/bpf/libbpf.c", "arch/x86/kvm/x86.c", "tools/arch/x86/lib/memcpy_64.S"):
        assert not wanted(rel), rel


# --------------------------------------------------------------------------
# XArray: exact node counts

def _levels_after(lib, method, starts, ends):
    with lib.KernelXArray() as xa:
        getattr(xa, method)(starts, ends)
        return xa.levels()


def test_xarray_small_shapes(lib):
    lv = _levels_after(lib, "store_range", [0], [1])
    assert lv.sum() == 0                                  # index 0 alone: in xa_head
    assert _levels_after(lib, "store_range", [0], [64]).tolist()[:2] == [1, 0]
    assert _levels_after(lib, "store_range", [64], [65]).tolist()[:3] == [1, 1, 0]
    # xa_reserve stores XA_ZERO_ENTRY, never kept in xa_head: 1 node remains
    assert _levels_after(lib, "reserve_then_store", [0], [1]).tolist()[:2] == [1, 0]
    every = _levels_after(lib, "store_range", [0], [1 << 16])
    assert every.tolist()[:4] == [1024, 16, 1, 0] and every.sum() == 1041


def test_xarray_2mib_extent_as_the_emulation(lib):
    # tests/test_xarray.py test_multi_2mib_extent_hand_derived: [512000, 512512)
    k = 1000
    s, e = np.array([512 * k]), np.array([512 * (k + 1)])
    with lib.KernelXArray() as xa:
        xa.store_range_multi(s, e)
        assert xa.levels().tolist()[:5] == [0, 1, 1, 1, 0]
        assert (xa.levels() == xa_node_counts(s, e, multi=True)).all()
        assert xa.load([511999, 512000, 512063, 512064, 512511, 512512]).tolist() == \
            [-1, 1, 1, 1, 1, -1]
        assert runs_of(xa.scan()) == [(512000, 512512)]
    single = _levels_after(lib, "store_range", s, e)
    assert single.sum() == 11 and (single == xa_node_counts(s, e)).all()


@pytest.mark.parametrize("s, e", [(0, 64), (5, 64), (0, 4096), (0, 1), (5, 6), (3, 1 << 20),
                                  (1 << 20, (1 << 20) + 777), (0, 1 << 24)])
def test_xarray_multi_quirks_as_the_model(lib, s, e):
    lv = _levels_after(lib, "store_range_multi", [s], [e])
    assert (lv == xa_node_counts(np.array([s]), np.array([e]), multi=True)).all()
    with lib.KernelXArray() as xa:                         # [5, 64): one entry, 58 siblings
        xa.store_range_multi([s], [e])
        assert runs_of(xa.scan(cap=1)) == [(s, e)]
        assert runs_of(xa.scan(start=s + (e - s) // 2)) == [(s + (e - s) // 2, e)]


def test_xarray_random_sets_as_the_model_and_the_emulation(lib):
    rng = np.random.default_rng(9)
    for trial in range(40):
        s, e = random_extents(rng, int(rng.integers(1, 40)), 1 << 22, 3000)
        es, ee = random_extents(rng, 5, 1 << 22, 30000)
        ns, ne = normalize_extents(s, e)
        for multi in (False, True):
            tree = XaTree(multi=multi, budget_bytes=1 << 30)
            tree.store_range(ns, ne)
            with lib.KernelXArray() as xa:
                if multi:
                    xa.store_range_multi(ns, ne)          # maximal extents: the canonical tree
                else:
                    xa.store_range(s, e)                  # overlapping ranges, any order
                assert (xa.levels() == xa_node_counts(ns, ne, multi)).all()
                assert (xa.levels() == tree.node_counts_by_level()).all()
                assert runs_of(xa.scan(cap=3)) == extents_list(s, e)
                if multi:
                    xa.erase_range_multi(es, ee)
                else:
                    xa.erase_range(es, ee)
                tree.erase_range(*normalize_extents(es, ee))
                assert runs_of(xa.scan(cap=2)) == _maximal(tree.walk())
                assert (xa.levels() == tree.node_counts_by_level()).all()


def _maximal(chunks):
    """Runs from (starts, ends) chunks, touching runs merged."""
    return _merge([(a, b) for s, e in chunks for a, b in zip(s.tolist(), e.tolist())])


def _merge(runs):
    out = []
    for a, b in runs:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def test_xarray_reserve_then_store_holds_the_same_set(lib):
    rng = np.random.default_rng(4)
    s, e = random_extents(rng, 30, 1 << 20, 2000)
    with lib.KernelXArray() as a, lib.KernelXArray() as b:
        a.store_range(s, e, value=kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        b.reserve_then_store(s, e, value=kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE)
        assert runs_of(b.scan(cap=5)) == runs_of(a.scan()) == extents_list(s, e)
        assert (a.levels() == b.levels()).all()
        probe = rng.integers(0, 1 << 20, 1000)
        assert (b.load(probe) == a.load(probe)).all()
        assert set(a.load(probe).tolist()) <= {-1, kernel.KVM_MEMORY_ATTRIBUTE_PRIVATE}


def test_xarray_scan_resumes_across_tiny_chunks(lib):
    rng = np.random.default_rng(5)
    pfns = np.unique(rng.integers(0, 1 << 26, 5000))
    with lib.KernelXArray() as xa:
        xa.store_range(pfns, pfns + 1)
        want = extents_list(pfns, pfns + 1)
        for cap in (1, 2, 7, 1 << 16):
            chunks = list(xa.scan(cap=cap))
            assert all(len(s) <= cap for s, _ in chunks)
            assert runs_of(chunks) == want


# --------------------------------------------------------------------------
# IDA

def test_ida_refuses_ids_above_int_max(lib):
    with lib.KernelIda() as ida:
        assert ida.alloc_range(2**31, 2**31) == -errno.ENOSPC        # the kernel's answer
        with pytest.raises(ValueError, match=r"id 2147483648 .*INT_MAX \(2147483647\)"):
            ida.mark([5, 2**31])
        with pytest.raises(ValueError, match="2147483648"):
            ida.mark_range([2**31 - 10], [2**31 + 10])
        assert runs_of(ida.scan()) == []                  # refused before anything changed
        ida.mark([2**31 - 1])
        assert runs_of(ida.scan()) == [(2**31 - 1, 2**31)]


def test_ida_scan_is_the_marked_set(lib):
    rng = np.random.default_rng(6)
    with lib.KernelIda() as ida:
        s, e = random_extents(rng, 60, 1 << 24, 3000)
        ida.mark_range(s, e)
        ida.mark_range(s[:10], e[:10])                    # marking twice changes nothing
        assert runs_of(ida.scan(cap=4)) == extents_list(s, e)
        fs, fe = random_extents(rng, 20, 1 << 24, 20000)
        ida.free_range(fs, fe)
        ida.free_range(fs, fe)                            # freeing twice changes nothing
        have = np.zeros(1 << 25, bool)
        for a, b in zip(s, e):
            have[a:b] = True
        for a, b in zip(fs, fe):
            have[a:b] = False
        idx = np.flatnonzero(have)
        assert runs_of(ida.scan(cap=3)) == extents_list(idx, idx + 1)


def test_ida_leaves_and_live_objects(lib):
    before = lib.live_objects()
    with lib.KernelIda() as ida:
        ida.mark_range([0], [10])                         # bits 0..9: a value entry in xa_head
        assert ida.bitmaps() == 0 and ida.levels().sum() == 0
        ida.mark([100])                                   # bit 100 > 62: an ida_bitmap
        assert ida.bitmaps() == 1 and ida.levels().sum() == 0
        ida.mark([5000])                                  # chunk 4: an xa_node over chunks 0..63
        assert ida.bitmaps() == 2 and ida.levels().tolist()[:2] == [1, 0]
        live = lib.live_objects()
        assert live["kmalloc"] - before["kmalloc"] == ida.bitmaps()
        assert live["xa_node"] - before["xa_node"] == 1
    assert lib.live_objects() == before


# --------------------------------------------------------------------------
# maple tree

def test_maple_scan_is_the_stored_ranges(lib):
    rng = np.random.default_rng(7)
    before = lib.live_objects()
    with lib.KernelMaple() as mt:
        s, e = random_extents(rng, 2000, 1 << 30, 5000)
        mt.store_range(s, e)
        lv = mt.levels()
        assert lv.size >= 2 and (lv > 0).all() and lv[-1] == 1      # leaves first, one root
        assert lib.live_objects()["maple_node"] - before["maple_node"] == lv.sum()
        assert runs_of(mt.scan(cap=7)) == extents_list(s, e)
        es, ee = random_extents(rng, 300, 1 << 30, 1 << 20)
        mt.erase_range(es, ee)
        have = runs_of(mt.scan(cap=5))
        want = _difference(extents_list(s, e), extents_list(es, ee))
        assert have == want
    assert lib.live_objects() == before


def _difference(a, b):
    """Runs of a minus runs of b (both sorted, maximal)."""
    out = []
    j = 0
    for s, e in a:
        cur = s
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < e:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < e:
            out.append((cur, e))
    return _merge(out)


def test_maple_in_order_leaves(lib):
    # in-order growth: 1000 extents with gaps -> 2001 leaf slots (+ a leading
    # gap); leaves are filled as the emulation's dense rule says
    from trackers.maple import level_node_counts
    with lib.KernelMaple() as mt:
        s = np.arange(1000) * 10 + 10
        mt.store_range(s, s + 5)
        assert mt.levels()[0] == level_node_counts(1000, True)[0] == 126


# --------------------------------------------------------------------------
# bitmap and the engines' input checks

def test_bitmap_runs_equal_numpys(lib):
    rng = np.random.default_rng(8)
    for density in (0.001, 0.3, 0.97):
        bits = rng.random(64 * 700) < density
        bits[64 * 300:64 * 310] = True                   # whole words set
        bits[64 * 400:64 * 405] = False
        words = np.packbits(bits, bitorder="little").view(np.uint64)   # bit i: word i // 64
        d = np.diff(np.concatenate([[0], bits.astype(np.int8), [0]]))
        want = list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))
        assert runs_of(lib.kernel_bitmap_runs(words, cap=3)) == want
        n = 64 * 123 + 17
        assert runs_of(lib.kernel_bitmap_runs(words, nbits=n)) == \
            [(a, min(b, n)) for a, b in want if a < n]


def test_bitmap_set_and_clear_equal_numpys(lib):
    """bitmap_set/bitmap_clear per range (lib/bitmap.c's __bitmap_set,
    __bitmap_clear): exactly the bits of the ranges, whatever their start
    and length within words, nothing past them."""
    rng = np.random.default_rng(9)
    nbits = 64 * 500 + 13
    words = np.zeros(-(-nbits // 64), np.uint64)
    want = np.zeros(words.size * 64, bool)
    for _ in range(4):
        s = np.sort(rng.integers(0, nbits, 60))
        e = np.minimum(s + rng.integers(0, 300, 60), nbits)
        lib.kernel_bitmap_set(words, s, e, nbits)
        for a, b in zip(s, e):
            want[a:b] = True
        s = rng.integers(0, nbits, 30)
        e = np.minimum(s + rng.integers(0, 200, 30), nbits)
        lib.kernel_bitmap_clear(words, s, e, nbits)
        for a, b in zip(s, e):
            want[a:b] = False
        got = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
        assert np.array_equal(got, want)
    lib.kernel_bitmap_set(words, [0], [nbits], nbits)        # every bit, none past nbits
    got = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    assert got[:nbits].all() and not got[nbits:].any()


def test_bitmap_stores_reach_past_2_32_bits(lib):
    """__bitmap_set takes an unsigned int start: ranges go from their own
    word, so a bitmap of 2^33 bits (1 GiB of zero pages, never touched but
    here) is set and cleared where the ranges say."""
    words = np.zeros(1 << 27, np.uint64)
    s, e = np.array([(1 << 32) + 5, (1 << 33) - 70]), np.array([(1 << 32) + 700, 1 << 33])
    lib.kernel_bitmap_set(words, s, e)
    assert runs_of(lib.kernel_bitmap_runs(words)) == list(zip(s.tolist(), e.tolist()))
    lib.kernel_bitmap_clear(words, s[:1] + 1, s[:1] + 2)
    assert runs_of(lib.kernel_bitmap_runs(words)) == [
        (int(s[0]), int(s[0]) + 1), (int(s[0]) + 2, int(e[0])), (int(s[1]), int(e[1]))]


def test_bitmap_stores_refuse_before_any_change(lib):
    words = np.zeros(4, np.uint64)
    with pytest.raises(ValueError, match="end 257 is past the bitmap's 256 bits"):
        lib.kernel_bitmap_set(words, [0, 200], [8, 257])
    with pytest.raises(ValueError, match="end 101 is past the bitmap's 100 bits"):
        lib.kernel_bitmap_clear(words, [0], [101], nbits=100)
    with pytest.raises(ValueError, match="start 9 > end 8"):
        lib.kernel_bitmap_set(words, [9], [8])
    with pytest.raises(TypeError, match="writeable, contiguous 1-D uint64"):
        lib.kernel_bitmap_set(np.zeros(4, np.int64), [0], [1])
    with pytest.raises(TypeError, match="writeable, contiguous 1-D uint64"):
        lib.kernel_bitmap_set(np.zeros(8, np.uint64)[::2], [0], [1])
    assert not words.any()


def test_the_build_records_the_verbatim_bitmap_code(lib):
    """__bitmap_set is copied from lib/bitmap.c; tools/lib/bitmap.c's
    __bitmap_clear, its partner, equals lib/bitmap.c's in this tree."""
    verbatim = lib.build_info()["verbatim"]
    assert set(verbatim) == {"lib/bitmap.c:__bitmap_set",
                             "tools/lib/bitmap.c:__bitmap_clear equals lib/bitmap.c's"}
    assert verbatim["tools/lib/bitmap.c:__bitmap_clear equals lib/bitmap.c's"] is True


def test_function_text_is_the_definition_verbatim():
    src = ("void f(int x);\n/* f */\nvoid f(int x)\n{\n\tif (x) {\n\t\tx++;\n\t}\n}\n"
           "EXPORT_SYMBOL(f);\n")
    assert linux_build.function_text(src, "f", "x.c") == \
        "void f(int x)\n{\n\tif (x) {\n\t\tx++;\n\t}\n}\n"
    with pytest.raises(linux.KernelCodeUnavailable, match="no definition of g in x.c"):
        linux_build.function_text(src, "g", "x.c")


def test_engines_check_their_input(lib):
    with lib.KernelXArray() as xa:
        with pytest.raises(TypeError, match="integer"):
            xa.store_range(np.array([1.0]), np.array([2.0]))
        with pytest.raises(ValueError, match="start 5 > end 3"):
            xa.store_range([5], [3])
        with pytest.raises(ValueError, match="negative"):
            xa.load([-1])
        with pytest.raises(ValueError, match="2 starts but 1 ends"):
            xa.erase_range([1, 2], [3])
        with pytest.raises(ValueError, match="cap 0"):
            xa.scan(cap=0)
        assert xa.levels().sum() == 0
    with pytest.raises(ValueError, match="closed"):
        xa.load([1])
    xa.close()                                            # idempotent
    with pytest.raises(TypeError, match="uint64"):
        lib.kernel_bitmap_runs(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="nbits 257"):
        lib.kernel_bitmap_runs(np.zeros(4, np.uint64), nbits=257)


def test_store_range_values_gives_each_range_its_value(lib):
    with lib.KernelXArray() as xa:
        xa.store_range_values([0, 10], [3, 12], [5, 7])
        assert xa.load([0, 2, 3, 10, 11, 12]).tolist() == [5, 5, -1, 7, 7, -1]
        with pytest.raises(ValueError, match="2 ranges but 1 values"):
            xa.store_range_values([0, 10], [3, 12], [5])
        with pytest.raises(ValueError, match="does not fit xa_mk_value"):
            xa.store_range_values([20], [21], [-1])
        assert xa.load([20]).tolist() == [-1]              # refused before any store
