"""How long kexec and kdump wait before the next kernel starts, as TD memory grows.

Mainline (v7.2) calls TDH.SYS.DISABLE on one CPU at both: from the syscore
``tdx_shutdown()`` at kexec, and in ``native_machine_crash_shutdown()`` at
kdump, after ``crash_smp_send_stop()`` and with interrupts off; the loop has
no bound and the module's time grows with TD memory
(:meth:`.platform.Platform.sys_disable_s`: one reclaim and one clear a page).
A tracker-based reset scans its structure and clears what it finds; on one
CPU (where kdump resets today) or on every CPU (normal kexec from the syscore
callback, while the others still run; kdump only if each CPU cleared its
share in the NMI callback that stops it).

:func:`wait_table` models both for TD memory from 64 GiB to 16 TiB on one
reference host shape: RAM = TD memory / ``td_share`` (the default TDs, two of
35 % of RAM), whole GiB; the TDs one contiguous block each (a few extents:
the tracker scans at their cheapest), their S-EPT one page per 512, the
PAMT RAM x 16 B / 4 KiB plus its 2 MiB and 1 GiB levels.  Each tracker's
scan comes from ``estimate()`` through its strategy (``measure(emulate=False)``);
the best tracker is the one with the least wait at each size and CPU count.
Bands: every ASSUMED parameter at its fast and slow end (Platform.bounds).
All modeled.

:func:`crossovers` finds the TD memory where two curves change order (central
values and either band end), or says that one stays ahead across the range.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import kernel
from ..base import NotRepresentable
from ..extents import count, normalize
from .host import KexecHost
from .platform import Platform, get_platform
from .strategies import TRACKER_STRATEGIES

#: TD memory of the figure: 64 GiB to 16 TiB, four points per doubling
TD_BYTES = [int(2 ** (36 + k / 4)) // (1 << 30) * (1 << 30) for k in range(8 * 4 + 1)]
#: the default TDs' share of RAM (two of 35 %: trackers.workloads.two_tds)
TD_SHARE = 0.70
MAINLINE = "mainline 7.2: TDH.SYS.DISABLE, 1 CPU"
#: the curves, in legend order
CURVES = (MAINLINE, "best tracker, 1 CPU", "best tracker, all CPUs")

COLUMNS = ["td_bytes", "host_bytes", "private_pages", "curve", "cpus", "tracker", "wait_s",
           "wait_low_s", "wait_high_s", "platform", "kind"]


def reference_host(td_bytes: int, td_share: float = TD_SHARE) -> KexecHost:
    """The host of ``td_bytes`` of TD memory (module doc): two TDs, their S-EPT
    and the PAMT private; nothing leaked, nothing in flight."""
    page = kernel.PAGE_SIZE
    td = int(td_bytes) // page
    ram = -(-int(td_bytes / td_share) // (1 << 30)) * ((1 << 30) // page)
    # PAMT: an entry per 4 KiB, 2 MiB and 1 GiB of RAM, each level whole pages
    pamt = sum(-(-(ram // n) * entry // page) for n, entry in (
        (1, kernel.PAMT_4K_ENTRY_BYTES), (kernel.PAGES_PER_2M, kernel.PAMT_2M_ENTRY_BYTES),
        (kernel.PAGES_PER_1G, kernel.PAMT_1G_ENTRY_BYTES)))
    sept = -(-td // kernel.PTRS_PER_PTE)
    half = td // 2
    starts = np.array([0, pamt, pamt + sept, pamt + sept + half], np.int64)
    ends = np.array([pamt, pamt + sept, pamt + sept + half, pamt + sept + td], np.int64)
    private = normalize(starts + (1 << 18), ends + (1 << 18))   # above the first GiB
    return KexecHost(max_pfn=ram, ram=(np.array([0]), np.array([ram])), private=private,
                     kvm_visible=normalize(starts[2:] + (1 << 18), ends[2:] + (1 << 18)),
                     pamt=normalize(starts[:1] + (1 << 18), ends[:1] + (1 << 18)),
                     sept=normalize(starts[1:2] + (1 << 18), ends[1:2] + (1 << 18)),
                     td_pages=td, tds_running=2, name=f"{td_bytes >> 30} GiB of TDs")


def _tracker_wait(strategy, host: KexecHost, p: Platform, cpus: int) -> float:
    """Scan + clear of ``strategy``'s structure for ``host`` on ``cpus`` CPUs;
    inf where the structure cannot hold the host (the IDA past 2^31 PFNs)."""
    try:
        m = strategy.measure(host, emulate=False)
    except NotRepresentable:
        return math.inf
    pages = count(m.found)
    scan = p.for_structure(strategy.scan_structure(m.engine))     # its structure's costs
    return (scan.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents, m.lookups, cpus)
            + p.clear_s(pages * kernel.PAGE_SIZE, cpus))


def wait_table(platform="spr-2s", td_bytes=TD_BYTES, *, trackers=None,
               td_share: float = TD_SHARE) -> pd.DataFrame:
    """One row per TD memory size and curve (:data:`CURVES`), :data:`COLUMNS`.
    ``trackers``: the tracker names the best is chosen from (default: every
    SEAMCALL-hooked tracker; the report passes those that run in crash context)."""
    p = get_platform(platform)
    corners = (p, *p.bounds())
    names = [n for n in (trackers or TRACKER_STRATEGIES)
             if TRACKER_STRATEGIES[n].seamcall_hooked]
    if not names:
        raise ValueError(f"no SEAMCALL-hooked tracker among {trackers!r}")
    rows = []
    for b in td_bytes:                               # one host per size, ~33 sizes
        host = reference_host(b, td_share)
        base = {"td_bytes": int(b), "host_bytes": host.max_pfn * kernel.PAGE_SIZE,
                "private_pages": host.private_pages, "platform": p.name, "kind": "modeled"}
        w = [c.sys_disable_s(host.private_pages) for c in corners]
        rows.append({**base, "curve": MAINLINE, "cpus": 1, "tracker": "",
                     "wait_s": w[0], "wait_low_s": w[1], "wait_high_s": w[2]})
        for curve, cpus in zip(CURVES[1:], (1, p.cpus_total)):
            per = {n: [_tracker_wait(TRACKER_STRATEGIES[n], host, c, cpus) for c in corners]
                   for n in names}
            best = min(per, key=lambda n: per[n][0])
            rows.append({**base, "curve": curve, "cpus": cpus, "tracker": best,
                         "wait_s": per[best][0],
                         "wait_low_s": min(v[1] for v in per.values()),
                         "wait_high_s": min(v[2] for v in per.values())})
    return pd.DataFrame(rows, columns=COLUMNS)


def _cross(x, a, b) -> float:
    """The first x where a - b changes sign (log-log interpolation), else NaN."""
    d = np.log(np.asarray(a, float)) - np.log(np.asarray(b, float))
    flip = np.flatnonzero(np.sign(d[1:]) != np.sign(d[:-1]))
    if not flip.size:
        return math.nan
    i = int(flip[0])
    lx = np.log(np.asarray(x, float))
    t = d[i] / (d[i] - d[i + 1])
    return float(np.exp(lx[i] + t * (lx[i + 1] - lx[i])))


def crossovers(table: pd.DataFrame, against: str = MAINLINE) -> pd.DataFrame:
    """Where each tracker curve and ``against`` change order, at the central
    values and at each band end (the same end on both curves); ``td_bytes``
    NaN and ``ahead`` naming the faster curve where they do not cross in range."""
    ref = table[table["curve"] == against].set_index("td_bytes")
    rows = []
    for curve in [c for c in dict.fromkeys(table["curve"]) if c != against]:
        t = table[table["curve"] == curve].set_index("td_bytes").loc[ref.index]
        for col, what in (("wait_s", "central"), ("wait_low_s", "fast end"),
                          ("wait_high_s", "slow end")):
            x = _cross(ref.index, ref[col], t[col])
            ahead = "" if math.isfinite(x) else (
                curve if (t[col] < ref[col]).all() else against if (t[col] > ref[col]).all()
                else "")
            rows.append({"curve": curve, "against": against, "values": what, "td_bytes": x,
                         "ahead": ahead,
                         "ratio_at_16tib": float(ref[col].iloc[-1] / t[col].iloc[-1])})
    return pd.DataFrame(rows)
