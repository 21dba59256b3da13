"""guest_memfd's per-inode maple trees (in-place conversion), read at kexec.

guest_memfd in-place conversion (Ackerley Tng / Sean Christopherson, RFC v2
Feb 2026 ... v8 Jun 2026, not merged) moves the PRIVATE attribute from the
per-VM ``mem_attr_array`` XArray into each guest_memfd inode: a maple tree
``gi->attributes`` over every index of the inode (kvm_gmem_init_inode()
stores one range over ``0 .. size-1``; kvm_gmem_convert() stores each
converted range).  Private and shared runs alternate as ranges -- the shape
the ``maple`` tracker holds for the private runs with NULL gaps between them,
so its estimate() and its ``@kernel`` twin (lib/maple_tree.c) are the tree.

One inode per TD RAM block: QEMU's q35 guest RAM is one RAM block whose
guest_memfd offsets run in GFN order over the two memslots (below the 2-4 GiB
hole, then from 4 GiB): :meth:`trackers.kexec.host.TdView.index_runs`.  A
host without TD views is one inode over ``[0, max_pfn)`` holding
``kvm_visible`` (GFN = PFN, the kvm tracker's default TD).

The walk (``gmem-maple``): per inode, iterate the maple tree's private
ranges (mas_for_each over the entries), and translate each private index to
its PFN through the inode's page cache -- filemap_get_folio() and
folio_file_pfn() as kvm_gmem_get_pfn() does: one lookup per *folio*
(order-0 today: one per page; ``folio_pages`` for HugeTLB-backed inodes).

Order of a private->shared conversion (kvm_gmem_convert()): the S-EPT is
zapped first (kvm_gmem_zap(): block, track, remove, wbinvd, clear), the maple
tree is stored last (mas_store_prealloc()), and the folio stays in the page
cache (conversion is in place): so the tree still says private for every
page not yet cleared.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import kernel
from ..extents import Extents, count, normalize
from ..registry import TRACKERS
from .host import KexecHost

MAPLE = TRACKERS["maple"]
#: the per-GFN XArray the maple trees replace is shaped as the ``xarray``
#: tracker's (one value entry per private index: kvm_vm_set_mem_attributes())
ATTR_XARRAY = TRACKERS["xarray"]


@dataclass(frozen=True)
class Inode:
    """One guest_memfd inode: its size in pages and its private index runs."""

    pages: int
    private: Extents

    @property
    def private_pages(self) -> int:
        return count(self.private)


def inodes(host: KexecHost) -> list[Inode]:
    """The guest_memfd inodes of ``host``'s TDs (one per TD RAM block)."""
    if host.tds:
        return [Inode(t.pages, t.index_runs()) for t in host.tds]
    return [Inode(host.max_pfn, normalize(*host.kvm_visible))]


def maple_bytes(nodes: list[Inode]) -> int:
    """Modeled bytes of every inode's attribute maple tree."""
    return sum(int(MAPLE.estimate(*i.private, max(i.pages, 1))) for i in nodes)


def attr_xarray_bytes(nodes: list[Inode]) -> int:
    """Modeled bytes of the per-VM attribute XArrays the trees replace (one
    value entry per private GFN; indexed here by inode offset)."""
    return sum(int(ATTR_XARRAY.estimate(*i.private, max(i.pages, 1))) for i in nodes)


def lookups(nodes: list[Inode], folio_pages: int = kernel.GMEM_FOLIO_PAGES) -> int:
    """Page-cache lookups of the index -> PFN translation: one per folio."""
    if folio_pages < 1:
        raise ValueError(f"folio_pages {folio_pages!r} must be >= 1")
    return sum(-(-i.private_pages // folio_pages) for i in nodes)
