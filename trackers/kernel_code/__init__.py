"""The kernel's own code behind the tracker contract: one ``@kernel`` twin per emulation.

Each class here keeps its set in a structure of the kernel's own
lib/xarray.c, lib/idr.c or lib/maple_tree.c (or in a bitmap stored with its
bitmap_set/bitmap_clear and scanned with its find_bit),
built in userspace by :mod:`trackers.linux`, and answers the same contract
(docs/CONTRACT.md) as the emulation it is named after:

=================  =======================================================
``xarray@kernel``        one value entry per PFN: xa_store per index
``xarray-multi@kernel``  xa_store_range() per maximal extent
``ida@kernel``           ida_alloc_range(ida, pfn, pfn) per PFN; ids <= INT_MAX
``maple@kernel``         mtree_store_range() per maximal extent
``bitmap@kernel``        the ``bitmap`` tracker's uint64 bitmap, stored with
                         bitmap_set/bitmap_clear per range, scanned with the
                         kernel's find_next_bit/find_next_zero_bit
``kvm@kernel``           per TD, KVM's mem_attr_array as
                         kvm_vm_set_mem_attributes() fills it (xa_reserve on
                         every GFN, then xa_store) and the guest_memfd page
                         cache, following the same events as ``kvm``
=================  =======================================================

What each reports is the kernel's, not a model's: ``memory()`` walks the
kernel structure for its xa_nodes / maple nodes per level (and ida_bitmaps),
times the struct sizes of :mod:`trackers.kernel`, under the twin's breakdown
labels; ``scan_loads`` is one per node walked (ida: and one per ida_bitmap);
``host_bytes`` is what the harness's allocators hold for this tracker (its
live objects, :func:`trackers.linux.live_objects`, counted across each of
its updates, times their sizes); ``notes`` name the kernel version.
``estimate()`` is the twin's: the analytic model of a fresh build, which
the differential tests hold equal to these counts for a set built at once
(after a history the counts are the structure's as it stands:
``history_shaped``, docs/CONTRACT.md).

Histories.  The XArray-family twins make the kernel calls a kernel user
would, and keep whatever shape those calls leave (the emulations follow the
same calls: tests/test_xa_history.py):

* ``xarray-multi@kernel``: the maximal extents an update touches are erased
  (xa_erase of every entry) and stored again whole (xa_store_range): a
  multi-index entry cannot be cut in place without xas_split;
* ``ida@kernel``: ida_alloc_range/ida_free per id, so a chunk that once held
  an id >= 63 keeps its ida_bitmap until it empties (ida_free never turns
  it back into a value entry);
* ``kvm@kernel``: KVM's own calls per row, so GFN 0 alone keeps the xa_node
  xa_reserve() made for it until an erase runs xas_shrink();
* ``maple@kernel`` is the exception: the tree in-order stores grow.  Extents
  stored above the last one are appended (mtree_store_range: exactly the
  in-order growth); any other update rebuilds the tree in order.  The
  kernel's tree after random-order stores holds 20-25 % more nodes
  (:mod:`trackers.maple`), which is where the twin's model differs from a
  tree grown by arbitrary conversions.

Budget: the structures are real mallocs.  Before an update that could grow
them, the twin's estimate of the resulting set is checked against
``budget_bytes`` (MemoryBudgetError naming the bytes and the budget); a
cheap upper bound (the structure now plus the update alone: node counts are
subadditive) settles most updates without the exact union.  Every bulk
operation is one engine call over whole arrays (the per-page loop runs in
C); Python steps are per update, per run of equal op, or, for guest_memfd
bindings, per run of rows with one GFN-to-PFN offset.

Live objects: the harness counts them process-wide, so each update reads
them before and after (after rcu_barrier(): the frees it queued are done)
and adds the difference to this tracker's.  An update that freed nodes
therefore waits for an RCU grace period (about 10 ms here); the structure's
own time is what :mod:`trackers.linux` callers time, not this.  Not safe for
concurrent use from several threads.  ``close()`` frees the kernel
structures (``__del__`` calls it); a closed tracker refuses further use.
"""

from __future__ import annotations

from ..base import Tracker
from .base import KernelCode
from .bitmap import BitmapKernel
from .ida import IdaKernel
from .kvm import KernelTd, KvmKernel
from .maple import MapleKernel
from .xarray import XArrayKernel, XArrayMultiKernel

__all__ = ["TWINS", "KernelCode", "BitmapKernel", "XArrayKernel", "XArrayMultiKernel",
           "IdaKernel", "MapleKernel", "KernelTd", "KvmKernel"]

#: every twin, by its emulation's registry name (the registry orders them)
TWINS: dict[str, type[Tracker]] = {cls.twin: cls for cls in (
    BitmapKernel, XArrayKernel, XArrayMultiKernel, IdaKernel, MapleKernel, KvmKernel)}

