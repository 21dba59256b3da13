"""Modeled: what each tracker would cost a kernel, as asv ``track_`` values.

Each value is computed once per run in ``setup_cache`` (one process, every
tracker x host x shape) and only read back by the benchmark, so the numbers
are exact model outputs, not timings.  estimate() works at every host size
the structure can hold (a tracker that cannot, the IDA beyond 2^31 PFNs,
skips with "not representable: ..."); the scanned-bytes figure needs a built
tracker and stops where building does.
"""

import math

from .common import (HOST_SIZES, TRACK_HOSTS, TRACK_SHAPES, TRACKER_NAMES, build_tracker,
                     load_set)

import trackers

try:                                   # asv >= 0.6: skip from inside a benchmark
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:                    # pragma: no cover
    SkipNotImplemented = NotImplementedError

PARAMS = ([n for n in TRACKER_NAMES], TRACK_HOSTS, TRACK_SHAPES)
PARAM_NAMES = ["tracker", "host", "set"]

#: hosts whose scanned bytes are read from a built tracker's memory() (built
#: in setup_cache: 8 trackers x 2 sets per host); larger hosts are n/a
SCAN_HOSTS = ["64G"]


def _modeled_table():
    """(tracker, host, shape) -> {"modeled_bytes", "pages"} or {"skip": reason}."""
    table = {}
    for host in TRACK_HOSTS:
        for shape in TRACK_SHAPES:
            try:
                starts, ends = load_set(shape, host)
            except NotImplementedError as exc:
                for name in TRACKER_NAMES:
                    table[name, host, shape] = {"skip": str(exc)}
                continue
            pages = int((ends - starts).sum())
            for name in TRACKER_NAMES:
                cls = trackers.TRACKERS[name]
                try:
                    nbytes = cls.estimate(starts, ends, HOST_SIZES[host])
                except trackers.NotRepresentable as exc:    # the IDA beyond 2^31 PFNs
                    table[name, host, shape] = {"skip": f"not representable: {exc}"}
                    continue
                except (MemoryError, NotImplementedError, ValueError) as exc:
                    table[name, host, shape] = {"skip": f"{type(exc).__name__}: {exc}"}
                    continue
                entry = {"modeled_bytes": int(nbytes), "pages": pages}
                if host in SCAN_HOSTS:
                    try:
                        t = build_tracker(name, host, starts, ends, shape)
                        entry["scanned_bytes"] = int(t.memory().scanned_bytes)
                        del t
                    except NotImplementedError as exc:
                        entry["scan_skip"] = str(exc)
                table[name, host, shape] = entry
    return table


class Modeled:
    """Modeled kernel bytes, bits per private page and bytes a kexec scan reads."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 60

    def setup_cache(self):
        return _modeled_table()

    setup_cache.timeout = 1800

    def setup(self, table, tracker, host, shape):
        self.entry = table[tracker, host, shape]
        if "skip" in self.entry:
            raise NotImplementedError(self.entry["skip"])

    def track_modeled_bytes(self, table, tracker, host, shape):
        return self.entry["modeled_bytes"]

    track_modeled_bytes.unit = "bytes"

    def track_bits_per_private_page(self, table, tracker, host, shape):
        pages = self.entry["pages"]
        return self.entry["modeled_bytes"] * 8 / pages if pages else math.nan

    track_bits_per_private_page.unit = "bits/page"

    def track_scanned_bytes(self, table, tracker, host, shape):
        if "scanned_bytes" not in self.entry:
            raise SkipNotImplemented(self.entry.get("scan_skip", f"{host} not built"))
        return self.entry["scanned_bytes"]

    track_scanned_bytes.unit = "bytes"
