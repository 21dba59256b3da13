"""ctypes binding to the kernel's own XArray, IDA, maple tree, find_bit and bitmap stores.

The library is the one :func:`trackers.linux.build` made (the
command ``tdx-trackers kernel-build``); :func:`library` loads it, once its
size and sha256 match the build record, and builds only to replace one that
does not (:mod:`trackers.linux.integrity`).  The engines below are thin: each method is one C call over whole
arrays (the per-index loop runs in C, in the kernel's code), and each holds
one kernel structure, freed when the object is closed or collected.

Conventions, as in the rest of the package: indices are integers in
[0, 2^63); ranges are half-open ``[start, end)``; a scan yields ascending,
maximal runs as ``(starts, ends)`` int64 arrays of at most ``cap`` runs
each, so a scan of any size holds a bounded chunk.  A scan resumes from a
cursor between chunks, so the structure may change between chunks (each
chunk is a walk under rcu_read_lock).  An engine is not safe for concurrent
use from several threads; different engines are.

What is measured here is the kernel's code in userspace: the harness's
kmem_cache (malloc behind a small free list, tools/testing/shared/linux.c)
and liburcu stand in for slab and kernel RCU; GFP_NOWAIT allocations
succeed, as in a kernel with free memory (glue.c; the harness's own default,
failing them, is :func:`set_gfp_nowait_fails`).  Time calls from Python
(``time.perf_counter``); nothing is timed in C.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import sys
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import kernel
from .build import KernelCodeUnavailable, KernelLibraryDamaged, build, current_library
from .dlopen import typed_library

#: runs per scan chunk by default (as trackers.base.EXTENT_CHUNK)
SCAN_CHUNK = 1 << 16
#: xa_node levels reported for an XArray: shifts 0, 6, ..., 60
XA_LEVELS = 11
#: the largest index an engine accepts (indices are int64 in the package)
INDEX_LIMIT = np.iinfo(np.int64).max

_DONE = (1 << 64) - 1                           # runs.h TDX_SCAN_DONE
#: what a message about a kernel library that will not do says to run
REBUILD_HINT = "; rebuild with `tdx-trackers kernel-build --force`"
_ENOMEM = 12
_ENOSPC = 28

_P_U64 = ctypes.POINTER(ctypes.c_uint64)
_P_I64 = ctypes.POINTER(ctypes.c_int64)
_I64 = ctypes.c_int64
_VP = ctypes.c_void_p

#: C functions: name -> (restype, argtypes)
_SIGNATURES = {
    "tdx_fact_count": (ctypes.c_int, []),
    "tdx_fact_name": (ctypes.c_char_p, [ctypes.c_int]),
    "tdx_fact_value": (_I64, [ctypes.c_int]),
    "tdx_linux_version": (ctypes.c_char_p, []),
    "tdx_set_nowait_fails": (None, [ctypes.c_int]),
    "tdx_live_objects": (ctypes.c_int, [_P_I64, ctypes.c_int]),
    "tdx_xa_create": (_VP, []),
    "tdx_xa_destroy": (None, [_VP]),
    "tdx_xa_store_range_values": (ctypes.c_int, [_VP, _P_U64, _P_U64, _P_U64, _I64]),
    "tdx_xa_store_range_multi": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_uint64]),
    "tdx_xa_reserve_then_store": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_uint64]),
    "tdx_xa_erase_range": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_xa_erase_range_multi": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_xa_walk_store": (ctypes.c_int, [_VP, _P_U64, _P_U64, _P_U64, _I64]),
    "tdx_xa_walk_reserve_then_store": (ctypes.c_int,
                                       [_VP, _P_U64, _P_U64, _I64, ctypes.c_uint64]),
    "tdx_xa_walk_erase": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_xa_digest": (ctypes.c_uint64, [_VP]),
    "tdx_xa_load": (ctypes.c_int, [_VP, _P_U64, _I64, _P_I64]),
    "tdx_xa_scan": (_I64, [_VP, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_xa_levels": (ctypes.c_int, [_VP, _P_I64, ctypes.c_int]),
    "tdx_ida_create": (_VP, []),
    "tdx_ida_destroy": (None, [_VP]),
    "tdx_ida_alloc_range": (ctypes.c_int, [_VP, ctypes.c_uint64, ctypes.c_uint64]),
    "tdx_ida_mark_range": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, _P_I64]),
    "tdx_ida_free_range": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_ida_scan": (_I64, [_VP, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_ida_levels": (ctypes.c_int, [_VP, _P_I64, ctypes.c_int, _P_I64]),
    "tdx_mt_create": (_VP, []),
    "tdx_mt_destroy": (None, [_VP]),
    "tdx_mt_store_range": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64, ctypes.c_uint64]),
    "tdx_mt_erase_range": (ctypes.c_int, [_VP, _P_U64, _P_U64, _I64]),
    "tdx_mt_scan": (_I64, [_VP, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_mt_levels": (ctypes.c_int, [_VP, _P_I64, ctypes.c_int]),
    "tdx_bitmap_runs": (_I64, [_P_U64, ctypes.c_uint64, _P_U64, _P_I64, _P_I64, _I64]),
    "tdx_bitmap_set_ranges": (ctypes.c_int, [_P_U64, ctypes.c_uint64, _P_U64, _P_U64, _I64]),
    "tdx_bitmap_clear_ranges": (ctypes.c_int, [_P_U64, ctypes.c_uint64, _P_U64, _P_U64, _I64]),
}

#: sizes the models take from trackers.kernel, checked against the library
_EXPECTED_FACTS = {
    "sizeof(struct xa_node)": kernel.XA_NODE_BYTES,
    "XA_CHUNK_SIZE": kernel.XA_CHUNK_SIZE,
    "sizeof(struct maple_node)": kernel.MAPLE_NODE_BYTES,
    "MAPLE_RANGE64_SLOTS": kernel.MAPLE_RANGE64_SLOTS,
    "sizeof(struct ida_bitmap)": kernel.IDA_BITMAP_BYTES,
    "IDA_BITMAP_BITS": kernel.IDA_BITMAP_BITS,
}

#: tdx_live_objects() order
LIVE_OBJECTS = ("xa_node", "maple_node", "kmalloc", "kmem_cache")

_lib: ctypes.CDLL | None = None
_lib_info: dict = {}
#: a damaged library this process could not rebuild: (path, size, mtime) -> the refusal
_refused: dict[tuple, KernelCodeUnavailable] = {}


# --------------------------------------------------------------------------
# the library

def library() -> ctypes.CDLL:
    """The built library, loaded once per process.  Builds only to replace a
    damaged one: raises :class:`KernelCodeUnavailable` if ``tdx-trackers
    kernel-build`` (or :func:`trackers.linux.build.build`) has not built it
    for this package's C sources (build.SOURCES).  A library that does not hold what its build wrote
    (:class:`~trackers.linux.build.KernelLibraryDamaged`: loading it could
    kill the process with SIGBUS) is never loaded: it is rebuilt from the
    source it was built from, saying so on stderr (and
    :func:`trackers.linux.repaired` after), or,
    where that source is gone or the rebuild fails, refused with a reason
    that says the emulations run instead."""
    global _lib, _lib_info
    if _lib is not None:
        return _lib
    try:
        path, info = current_library()
    except KernelLibraryDamaged as exc:
        path, info = _rebuild(exc)
    lib = typed_library(path, _SIGNATURES, unavailable=KernelCodeUnavailable,
                        what=f"the kernel library {path}", hint=REBUILD_HINT)
    got = _facts_of(lib)
    for name, want in _EXPECTED_FACTS.items():
        if got.get(name) != want:
            raise KernelCodeUnavailable(f"the kernel library {path} has {name} = "
                                        f"{got.get(name)}, the models use {want}")
    _lib, _lib_info = lib, dict(info, path=str(path))
    return lib


def _rebuild(exc: KernelLibraryDamaged) -> tuple:
    """Replace the damaged library ``exc`` names by a build from its recorded
    source (build() says so on stderr, and :func:`trackers.linux.repaired`
    after); (path, record) of the new one, or KernelCodeUnavailable saying
    that the emulations run instead, said once on stderr by the command's
    own process.  Tried once per damaged file per process."""
    try:
        st = exc.library.stat()
        key = (str(exc.library), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (str(exc.library), None, None)
    if key in _refused:
        raise _refused[key]
    source = exc.info.get("source")
    try:
        if not source or not Path(source).exists():
            raise KernelCodeUnavailable(f"the source it was built from, {source}, is gone")
        build(source)
        return current_library()
    except KernelCodeUnavailable as why:
        refusal = KernelCodeUnavailable(f"{exc}; not rebuilt ({why}): the emulations run "
                                        f"instead", fix=exc.fix)
        _refused[key] = refusal
        if multiprocessing.parent_process() is None:    # said once, not by every worker
            print(f"tdx-trackers: {refusal}", file=sys.stderr, flush=True)
        raise refusal from None


def available() -> tuple[bool, str]:
    """(True, where the library is and its kernel) or (False, why not)."""
    try:
        library()
    except KernelCodeUnavailable as exc:
        return False, str(exc)
    return True, f"{_lib_info['path']} (Linux {version()})"


def version() -> str:
    """The kernel version the library was built from (its top Makefile)."""
    return library().tdx_linux_version().decode()


def engine_label() -> str:
    """The ``engine`` a measurement of this library's code is labelled with:
    "kernel code vX.Y.Z (userspace)", X.Y.Z the kernel source it was built from."""
    return f"kernel code v{version()} (userspace)"


def build_info() -> dict:
    """The build record: source, flags per object, build seconds, warnings."""
    library()
    return dict(_lib_info)


def _facts_of(lib) -> dict[str, int]:
    return {lib.tdx_fact_name(i).decode(): int(lib.tdx_fact_value(i))
            for i in range(lib.tdx_fact_count())}


def facts() -> dict[str, int]:
    """Sizes and constants as this build has them: ``sizeof(struct
    xa_node)``, ``XA_CHUNK_SIZE``, ``sizeof(struct maple_node)``,
    ``MAPLE_RANGE64_SLOTS``, ``sizeof(struct ida_bitmap)``, ``INT_MAX``, ..."""
    return _facts_of(library())


def live_objects() -> dict[str, int]:
    """Objects the harness's allocators hold now, after rcu_barrier() has
    run the frees already queued: ``xa_node`` (radix_tree_node_cachep, the
    nodes of every XArray and IDA), ``maple_node`` (maple_node_cache),
    ``kmalloc`` (kmalloc'd: here the ida_bitmaps) and ``kmem_cache`` (both
    caches: the harness's global nr_allocated).  Process-wide, every engine."""
    out = np.zeros(len(LIVE_OBJECTS), np.int64)
    library().tdx_live_objects(out.ctypes.data_as(_P_I64), out.size)
    return dict(zip(LIVE_OBJECTS, (int(v) for v in out)))


#: held by a counting window (:func:`counted_objects`) and by every destroy
#: call (:class:`Handle`)
_COUNTING = threading.RLock()


@contextmanager
def counted_objects() -> Iterator[dict[str, int]]:
    """``with counted_objects() as added:`` -- after the block, ``added``
    holds the :func:`live_objects` the block left (after - before, per kind).

    The counts are the process's, so within the window nothing but the block
    frees kernel objects: a structure destroyed on another thread (a Dask
    worker's event loop runs gc.collect()) waits for the window to end, and
    Python's cyclic collector does not run in it (it would destroy
    structures dropped in reference cycles, on this thread)."""
    with _COUNTING:
        collecting = gc.isenabled()
        gc.disable()
        added: dict[str, int] = {}
        before = live_objects()
        try:
            yield added
        finally:
            after = live_objects()
            if collecting:
                gc.enable()
            added.update({k: after[k] - before[k] for k in after})


def _destroy(fn, h) -> None:
    """A structure's destroy call, never inside another's counting window."""
    with _COUNTING:
        fn(h)


def set_gfp_nowait_fails(fails: bool) -> None:
    """False (the default): GFP_NOWAIT allocations succeed, as in a kernel
    with free memory.  True: the harness's behaviour, every one fails and
    the caller's retry path (xas_nomem, mas_nomem) runs.  Structures end the
    same; only the time differs."""
    library().tdx_set_nowait_fails(1 if fails else 0)


# --------------------------------------------------------------------------
# input

def _index_array(values, what: str) -> np.ndarray:
    """Integers (array-like or one int) in [0, INDEX_LIMIT] -> contiguous uint64."""
    if isinstance(values, (bool, np.bool_)):
        raise TypeError(f"{what} must be integers, got bool {values!r}")
    arr = np.asarray(values)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            return np.empty(0, np.uint64)
        raise TypeError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"{what} must be a 1-D array or one int, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise ValueError(f"{what} {lo} is negative; indices are in [0, {INDEX_LIMIT}]")
        if hi > INDEX_LIMIT:
            raise ValueError(f"{what} {hi} is beyond the limit {INDEX_LIMIT} (2^63 - 1)")
    return np.ascontiguousarray(arr, np.uint64)


def _extents(starts, ends) -> tuple[np.ndarray, np.ndarray]:
    s = _index_array(starts, "start")
    e = _index_array(ends, "end")
    if s.shape != e.shape:
        raise ValueError(f"{s.size} starts but {e.size} ends")
    bad = np.flatnonzero(s > e)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"start {int(s[k])} > end {int(e[k])} (ranges are [start, end))")
    return s, e


def _xa_value(value) -> int:
    """``value`` as an int that xa_mk_value() holds, or ValueError."""
    value = int(value)
    if not 0 <= value < 1 << kernel.BITS_PER_XA_VALUE:
        raise ValueError(f"value {value} does not fit xa_mk_value() "
                         f"([0, 2^{kernel.BITS_PER_XA_VALUE}))")
    return value


def _p64(arr: np.ndarray):
    return arr.ctypes.data_as(_P_U64)


def _check(ret: int, what: str) -> None:
    if ret == -_ENOMEM:
        raise MemoryError(f"{what}: the kernel code returned -ENOMEM")
    if ret < 0:
        raise OSError(-ret, f"{what}: the kernel code returned errno {-ret}")


def _runs(fn, handle, cap: int, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Drive a chunked C scan ``fn(handle, &cursor, starts, ends, cap)``:
    (starts, ends) int64 arrays of <= cap runs each.  Arguments are checked
    now, the walk runs as the generator is consumed."""
    cap = int(cap)
    if cap < 1:
        raise ValueError(f"cap {cap} must be >= 1")
    first = int(_index_array(start, "start")[0])

    def chunks():
        cursor = ctypes.c_uint64(first)
        while cursor.value != _DONE:
            s = np.empty(cap, np.int64)
            e = np.empty(cap, np.int64)
            n = fn(handle(), ctypes.byref(cursor), s.ctypes.data_as(_P_I64),
                   e.ctypes.data_as(_P_I64), cap)
            if n:
                yield s[:n], e[:n]

    return chunks()


# --------------------------------------------------------------------------
# engines

class Handle:
    """One C object behind an opaque pointer; freed by close() or GC.  The
    lifecycle every engine here and in :mod:`.pages` shares."""

    def _own(self, lib, h, destroy: str) -> None:
        self._lib = lib
        self._h = h
        self._finalizer = weakref.finalize(self, _destroy, getattr(lib, destroy), h)

    def _handle(self) -> int:
        if not self._finalizer.alive:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._h

    def close(self) -> None:
        """Free the structure now (the kernel's destroy call); idempotent."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Engine(Handle):
    """One kernel structure made by its library's create call."""

    _create = _destroy = ""

    def __init__(self) -> None:
        lib = library()
        h = getattr(lib, self._create)()
        if not h:
            raise MemoryError(f"{self._create}: out of memory")
        self._own(lib, h, self._destroy)


class KernelXArray(_Engine):
    """One ``struct xarray`` of lib/xarray.c (xa_init: no flags), 64-slot
    576-B xa_nodes.

    Entries are value entries ``xa_mk_value(value)``.  ``store_range``
    stores one entry per index (xa_store per index); ``store_range_multi``
    one xa_store_range() per given extent (CONFIG_XARRAY_MULTI: aligned
    multi-index entries; adjacent extents stay separate entries, so pass
    maximal extents for the tree trackers.xa.model counts); ``reserve_then_store`` is KVM's
    kvm_vm_set_mem_attributes() per extent (xa_reserve every index, then
    xa_store every index)."""

    _create, _destroy = "tdx_xa_create", "tdx_xa_destroy"

    def _store(self, fn: str, starts, ends, value: int) -> None:
        s, e = _extents(starts, ends)
        value = _xa_value(value)
        _check(getattr(self._lib, fn)(self._handle(), _p64(s), _p64(e), s.size, value), fn)

    def store_range(self, starts, ends, value: int = 1) -> None:
        """xa_store(xa, i, xa_mk_value(value), GFP_KERNEL) for every i in every range."""
        s, _ = _extents(starts, ends)
        self.store_range_values(starts, ends, np.full(s.shape, _xa_value(value), np.int64))

    def _store_values(self, fn: str, starts, ends, values) -> None:
        s, e = _extents(starts, ends)
        v = np.ascontiguousarray(values, dtype=np.int64)
        if v.shape != s.shape:
            raise ValueError(f"{s.size} ranges but {v.size} values")
        if v.size and not (0 <= int(v.min()) and int(v.max()) < 1 << kernel.BITS_PER_XA_VALUE):
            raise ValueError(f"a value does not fit xa_mk_value() "
                             f"([0, 2^{kernel.BITS_PER_XA_VALUE}))")
        _check(getattr(self._lib, fn)(self._handle(), _p64(s), _p64(e),
                                      _p64(v.view(np.uint64)), s.size), fn)

    def store_range_values(self, starts, ends, values) -> None:
        """xa_store(xa, i, xa_mk_value(values[r]), GFP_KERNEL) for every i in
        range r: ranges of different values in one call."""
        self._store_values("tdx_xa_store_range_values", starts, ends, values)

    def store_range_multi(self, starts, ends, value: int = 1) -> None:
        """xa_store_range(xa, start, end - 1, xa_mk_value(value), GFP_KERNEL) per range."""
        self._store("tdx_xa_store_range_multi", starts, ends, value)

    def reserve_then_store(self, starts, ends, value: int = 1) -> None:
        """Per range: xa_reserve() every index, then xa_store() every index (KVM)."""
        self._store("tdx_xa_reserve_then_store", starts, ends, value)

    def erase_range(self, starts, ends) -> None:
        """xa_erase() of every present index in the ranges (found with
        xa_find).  On a multi-index entry this erases the whole entry, as the
        kernel does: see :meth:`erase_range_multi`."""
        s, e = _extents(starts, ends)
        _check(self._lib.tdx_xa_erase_range(self._handle(), _p64(s), _p64(e), s.size),
               "xa_erase")

    # --- the build walks: the same trees, one xas walk per range -------------
    # (glue_xarray.c): what builds a structure to its state; the per-index
    # calls above are what a kernel user makes and what conversions are timed
    # by.  For arrays of single-index entries; tests/test_kernel_walks.py
    # checks each against its per-index twin by digest().

    def walk_store(self, starts, ends, values) -> None:
        """The tree of :meth:`store_range_values` (``values``: one per range,
        or one for all), built by xas_store() + xas_next() per range."""
        s, _ = _extents(starts, ends)
        if np.ndim(values) == 0:
            values = np.full(s.shape, _xa_value(values), np.int64)
        self._store_values("tdx_xa_walk_store", starts, ends, values)

    def walk_reserve_then_store(self, starts, ends, value: int = 1) -> None:
        """The tree of :meth:`reserve_then_store`, by two xas walks per range."""
        self._store("tdx_xa_walk_reserve_then_store", starts, ends, value)

    def walk_erase(self, starts, ends) -> None:
        """The tree of :meth:`erase_range`: xas_store(NULL) over the present
        entries of each range (xas_for_each)."""
        s, e = _extents(starts, ends)
        _check(self._lib.tdx_xa_walk_erase(self._handle(), _p64(s), _p64(e), s.size),
               "tdx_xa_walk_erase")

    def digest(self) -> int:
        """A 64-bit digest of the whole tree (every node's shift, offset,
        counts, marks and slots): equal digests, equal trees."""
        return int(self._lib.tdx_xa_digest(self._handle()))

    def erase_range_multi(self, starts, ends) -> None:
        """Empty exactly the ranges of an array of multi-index entries: each
        entry overlapping a range is erased whole (xa_erase) and its parts
        outside the range stored back (xa_store_range)."""
        s, e = _extents(starts, ends)
        _check(self._lib.tdx_xa_erase_range_multi(self._handle(), _p64(s), _p64(e), s.size),
               "xa_erase/xa_store_range")

    def load(self, indices) -> np.ndarray:
        """xa_to_value(xa_load(xa, i)) per index as int64; -1 where nothing
        is stored (a reserved index loads as nothing, as xa_load says)."""
        idx = _index_array(indices, "index")
        out = np.empty(idx.size, np.int64)
        self._lib.tdx_xa_load(self._handle(), _p64(idx), idx.size, out.ctypes.data_as(_P_I64))
        return out

    def scan(self, cap: int = SCAN_CHUNK, start: int = 0
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Maximal runs of present indices >= start, ascending, in chunks of
        <= cap runs (xas_for_each; a multi-index entry counts as its
        2^xas_get_order() indices; reserved indices are not present)."""
        return _runs(self._lib.tdx_xa_scan, self._handle, cap, start)

    def levels(self) -> np.ndarray:
        """xa_nodes per level, int64[11]: index k counts nodes with shift 6k
        (as trackers.xa.model.xa_node_counts), found by walking every node."""
        out = np.zeros(XA_LEVELS, np.int64)
        self._lib.tdx_xa_levels(self._handle(), out.ctypes.data_as(_P_I64), out.size)
        return out

    def nodes(self) -> int:
        """xa_nodes in the tree (the sum of :meth:`levels`)."""
        return int(self.levels().sum())


class KernelIda(_Engine):
    """One ``struct ida`` of lib/idr.c: ids in [0, INT_MAX], 1024 per
    128-B ida_bitmap leaf (a chunk whose ids are all below 63 is a value
    entry instead), leaves in an XArray indexed by id / 1024."""

    _create, _destroy = "tdx_ida_create", "tdx_ida_destroy"

    def alloc_range(self, min_id: int, max_id: int) -> int:
        """ida_alloc_range(ida, min, max, GFP_KERNEL) as the kernel answers
        it: the id allocated, or -ENOSPC / -ENOMEM.  Both bounds must fit
        the kernel's unsigned int."""
        for v, what in ((min_id, "min"), (max_id, "max")):
            if not 0 <= int(v) < 1 << 32:
                raise ValueError(f"{what} {v} does not fit unsigned int [0, 2^32)")
        return int(self._lib.tdx_ida_alloc_range(self._handle(), int(min_id), int(max_id)))

    def mark_range(self, starts, ends) -> None:
        """ida_alloc_range(ida, id, id, GFP_KERNEL) for every id of the
        ranges; an id already allocated stays so.  Ids above INT_MAX raise
        ValueError (the kernel's -ENOSPC) before anything changes."""
        s, e = _extents(starts, ends)
        bad = ctypes.c_int64(-1)
        ret = self._lib.tdx_ida_mark_range(self._handle(), _p64(s), _p64(e), s.size,
                                           ctypes.byref(bad))
        if ret == -_ENOSPC:
            raise ValueError(f"id {bad.value} is above INT_MAX ({kernel_int_max()}): "
                             f"ida_alloc_range() refuses it with -ENOSPC")
        _check(ret, "ida_alloc_range")

    def mark(self, ids) -> None:
        """:meth:`mark_range` of single ids."""
        i = _index_array(ids, "id")
        self.mark_range(i, i + 1)

    def free_range(self, starts, ends) -> None:
        """ida_free() of every allocated id of the ranges (ids not allocated
        are skipped: ida_free would WARN)."""
        s, e = _extents(starts, ends)
        _check(self._lib.tdx_ida_free_range(self._handle(), _p64(s), _p64(e), s.size),
               "ida_free")

    def free(self, ids) -> None:
        """:meth:`free_range` of single ids."""
        i = _index_array(ids, "id")
        self.free_range(i, i + 1)

    def scan(self, cap: int = SCAN_CHUNK, start: int = 0
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Maximal runs of allocated ids >= start, ascending, <= cap per
        chunk: the IDA's XArray walked with xas_for_each, each leaf's bits
        with find_next_bit/find_next_zero_bit."""
        return _runs(self._lib.tdx_ida_scan, self._handle, cap, start)

    def levels(self) -> np.ndarray:
        """xa_nodes per level of the IDA's XArray, int64[11] (shift 6k)."""
        return self._levels()[0]

    def bitmaps(self) -> int:
        """struct ida_bitmap leaves (128 B each) in the IDA."""
        return self._levels()[1]

    def _levels(self) -> tuple[np.ndarray, int]:
        out = np.zeros(XA_LEVELS, np.int64)
        nb = ctypes.c_int64(0)
        self._lib.tdx_ida_levels(self._handle(), out.ctypes.data_as(_P_I64), out.size,
                                 ctypes.byref(nb))
        return out, int(nb.value)


class KernelMaple(_Engine):
    """One ``struct maple_tree`` of lib/maple_tree.c (mt_init: no
    MT_FLAGS_ALLOC_RANGE, so maple_range_64 internal nodes and
    maple_leaf_64 leaves, 256 B, 16 slots each).

    ``store_range`` is one mtree_store_range() of ``xa_mk_value(value)`` per
    range; the maple tree keeps adjacent ranges as separate entries, so the
    tree depends on how a set was stored (the scan merges touching runs)."""

    _create, _destroy = "tdx_mt_create", "tdx_mt_destroy"

    def store_range(self, starts, ends, value: int = 1) -> None:
        """mtree_store_range(mt, start, end - 1, xa_mk_value(value), GFP_KERNEL) per range."""
        s, e = _extents(starts, ends)
        value = int(value)
        if not 0 <= value < 1 << kernel.BITS_PER_XA_VALUE:
            raise ValueError(f"value {value} does not fit xa_mk_value()")
        _check(self._lib.tdx_mt_store_range(self._handle(), _p64(s), _p64(e), s.size, value),
               "mtree_store_range")

    def erase_range(self, starts, ends) -> None:
        """mtree_store_range(mt, start, end - 1, NULL, GFP_KERNEL) per range:
        exactly the range becomes empty (mtree_erase would drop whole entries)."""
        s, e = _extents(starts, ends)
        _check(self._lib.tdx_mt_erase_range(self._handle(), _p64(s), _p64(e), s.size),
               "mtree_store_range(NULL)")

    def scan(self, cap: int = SCAN_CHUNK, start: int = 0
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Maximal runs of stored indices >= start (mas_for_each), <= cap per chunk."""
        return _runs(self._lib.tdx_mt_scan, self._handle, cap, start)

    def levels(self) -> np.ndarray:
        """Maple nodes per level, int64[height]: index 0 the leaves, the last
        the root; empty when the tree holds no node (nothing, or one entry
        at the root)."""
        out = np.zeros(64, np.int64)
        h = self._lib.tdx_mt_levels(self._handle(), out.ctypes.data_as(_P_I64), out.size)
        if h < 0:
            raise RuntimeError("maple tree walk found a leaf above level 0")
        return out[:h].copy()

    def nodes(self) -> int:
        return int(self.levels().sum())


def _bitmap_store(fn: str, words, starts, ends, nbits: int | None) -> None:
    lib = library()
    if not (isinstance(words, np.ndarray) and words.dtype == np.uint64 and words.ndim == 1
            and words.flags.c_contiguous and words.flags.writeable):
        raise TypeError("words must be a writeable, contiguous 1-D uint64 array (the bitmap "
                        "is changed in place)")
    total = words.size * 64
    nbits = total if nbits is None else int(nbits)
    if not 0 <= nbits <= total:
        raise ValueError(f"nbits {nbits} is outside [0, {total}] ({words.size} words)")
    s, e = _extents(starts, ends)
    if e.size and int(e.max()) > nbits:
        raise ValueError(f"end {int(e.max())} is past the bitmap's {nbits} bits")
    _check(getattr(lib, fn)(_p64(words), nbits, _p64(s), _p64(e), s.size), fn)


def kernel_bitmap_set(words, starts, ends, nbits: int | None = None) -> None:
    """bitmap_set(map, start, end - start) of every range: lib/bitmap.c's
    __bitmap_set, one C call over every range, into ``words`` in place (bit
    i is bit i % 64 of word i // 64).  ``nbits`` (default every bit of the
    words) bounds the ranges; a range past it is refused before any change."""
    _bitmap_store("tdx_bitmap_set_ranges", words, starts, ends, nbits)


def kernel_bitmap_clear(words, starts, ends, nbits: int | None = None) -> None:
    """bitmap_clear(map, start, end - start) of every range (__bitmap_clear),
    as :func:`kernel_bitmap_set`."""
    _bitmap_store("tdx_bitmap_clear_ranges", words, starts, ends, nbits)


def kernel_bitmap_runs(words, nbits: int | None = None, cap: int = SCAN_CHUNK
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Runs of set bits of a bitmap of 64-bit words (bit i is bit i % 64 of
    word i // 64, the kernel's unsigned long bitmap on x86-64), found with
    the kernel's find_next_bit/find_next_zero_bit as for_each_set_bitrange
    walks them: ``(starts, ends)`` int64 arrays of <= cap runs.  ``nbits``
    (default all the words' bits) bounds the scan."""
    lib = library()
    arr = np.asarray(words)
    if arr.dtype == object or arr.dtype.kind not in "iu" or arr.dtype.itemsize != 8:
        raise TypeError(f"words must be a uint64 (or int64) array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"words must be a 1-D array, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr).view(np.uint64)
    total = arr.size * 64
    nbits = total if nbits is None else int(nbits)
    if not 0 <= nbits <= total:
        raise ValueError(f"nbits {nbits} is outside [0, {total}] ({arr.size} words)")

    def scan(_words, cursor, out_s, out_e, n):
        return lib.tdx_bitmap_runs(_p64(_words), nbits, cursor, out_s, out_e, n)

    return _runs(scan, lambda: arr, cap, 0)


def kernel_int_max() -> int:
    """INT_MAX as the library has it: the largest id an IDA gives."""
    return facts()["INT_MAX"]
