"""``bitmap@kernel``: the ``bitmap`` tracker's uint64 bitmap, scanned with the
kernel's find_next_bit/find_next_zero_bit (tools/lib/find_bit.c)."""

from __future__ import annotations

from dataclasses import replace

from .. import linux
from ..base import EXTENT_CHUNK, ConversionCalls
from ..bitmap import Bitmap
from .base import KernelCode, check_runs


class BitmapKernel(KernelCode, Bitmap):
    """``bitmap``'s uint64 bitmap, scanned with the kernel's
    find_next_bit/find_next_zero_bit (for_each_set_bitrange)."""

    twin_cls = Bitmap
    twin = twin_cls.name
    name = "bitmap@kernel"
    option = twin_cls.option + " (kernel code)"

    def conversion_calls(self) -> ConversionCalls:
        """The library builds find_bit, not bitmap_set: the bitmap's own
        store, one call per conversion, as the emulation's."""
        return ConversionCalls(lambda s, e: self.twin_cls.mark_ranges(self, s, e),
                               lambda s, e: self.twin_cls.unmark_ranges(self, s, e),
                               "the bitmap's own store per call (no kernel store code)", False,
                               self.extents)

    def _scan(self):
        return linux.kernel_bitmap_runs(self.words, nbits=self.max_pfn, cap=EXTENT_CHUNK)

    def _contains(self, pfns):
        return Bitmap._contains(self, pfns)

    def _count(self):
        return Bitmap._count(self)

    def memory(self):
        m = Bitmap.memory(self)
        return replace(m, notes=self._notes("the bitmap is the kernel's; its scan is "
                                            "find_next_bit/find_next_zero_bit"),
                       host_bytes=self.words.nbytes)

    def check(self):
        Bitmap.check(self)
        s, e = check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and popcount differ"
