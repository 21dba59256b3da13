"""``bitmap@kernel``: the ``bitmap`` tracker's uint64 bitmap, stored with the
kernel's bitmap_set()/bitmap_clear() (lib/bitmap.c's __bitmap_set,
tools/lib/bitmap.c's __bitmap_clear) and scanned with its
find_next_bit/find_next_zero_bit (tools/lib/find_bit.c)."""

from __future__ import annotations

from dataclasses import replace

from .. import linux
from ..base import EXTENT_CHUNK, ConversionCalls
from ..bitmap import Bitmap
from .base import KernelCode, check_runs


class BitmapKernel(KernelCode, Bitmap):
    """``bitmap``'s uint64 bitmap of max_pfn bits, stored with the kernel's
    bitmap_set/bitmap_clear per range and scanned with
    find_next_bit/find_next_zero_bit (for_each_set_bitrange)."""

    twin_cls = Bitmap
    twin = twin_cls.name
    name = "bitmap@kernel"
    option = twin_cls.option + " (kernel code)"

    def _mark_ranges(self, starts, ends):
        linux.kernel_bitmap_set(self.words, starts, ends, self.max_pfn)

    def _unmark_ranges(self, starts, ends):
        linux.kernel_bitmap_clear(self.words, starts, ends, self.max_pfn)

    def _mark_pfns(self, pfns):
        self._mark_ranges(pfns, pfns + 1)

    def _unmark_pfns(self, pfns):
        self._unmark_ranges(pfns, pfns + 1)

    def conversion_calls(self) -> ConversionCalls:
        """bitmap_set()/bitmap_clear() of each conversion on the bitmap of the
        host's size, one C call over every conversion."""
        return self.kernel_calls(
            lambda s, e: linux.kernel_bitmap_set(self.words, s, e, self.max_pfn),
            lambda s, e: linux.kernel_bitmap_clear(self.words, s, e, self.max_pfn),
            "bitmap_set / bitmap_clear (__bitmap_set, __bitmap_clear) per range")

    def _scan(self):
        return linux.kernel_bitmap_runs(self.words, nbits=self.max_pfn, cap=EXTENT_CHUNK)

    def _contains(self, pfns):
        return Bitmap._contains(self, pfns)

    def _count(self):
        return Bitmap._count(self)

    def memory(self):
        m = Bitmap.memory(self)
        return replace(m, notes=self._notes("the bitmap is the kernel's, stored with "
                                            "bitmap_set/bitmap_clear; its scan is "
                                            "find_next_bit/find_next_zero_bit"),
                       host_bytes=self.words.nbytes)

    def check(self):
        Bitmap.check(self)
        s, e = check_runs(self._scan(), self.name)
        assert int((e - s).sum()) == len(self), f"{self.name}: scan and popcount differ"
