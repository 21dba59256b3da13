"""The TD-teardown model, held to every published TDX timing.

KVM returns a TD's private memory one 4 KiB page at a time, on the one
thread that destroys the VM.  The model charges each page the kexec model's
own parameters (:class:`~.platform.Platform`): ``seamcall_s`` per
per-page SEAMCALL, ``vcpu_kick_s`` per vCPU exit, the one-core clear
``clear_bps_core`` (tdx_quirk_reset_page(): MOVDIR64B over 4 KiB, then
``mb()``).  Two paths (:data:`trackers.published.BEFORE` / ``AFTER``):

* **before** -- Dynamic Page Removal while the TD is RUNNABLE
  (arch/x86/kvm/vmx/tdx.c tdx_sept_remove_private_spte()): per page
  tdh_mem_range_block, tdh_mem_track (every vCPU exits: ``vcpus x
  vcpu_kick_s``), tdh_mem_page_remove, tdh_phymem_page_wbinvd_hkid, the clear;
* **after** -- KVM_TDX_TERMINATE_VM: the HKID is released first, then
  TDH.PHYMEM.PAGE.RECLAIM per page in TD_TEARDOWN, and the clear.

Since commit 01fb93a363e0 the clear runs only on parts with the erratum
(``clear=False`` elsewhere).  TDH.SYS.DISABLE is the after-path run by the
module on one CPU (:attr:`.platform.Platform.sys_disable_page_s`): the same
reclaim and clear per page, the same parameters.

:func:`validation` puts every publication of :mod:`trackers.published`
beside the model's prediction on a platform, with the ratio: modeled
(``predicted_s``, its band over the ASSUMED ranges), published
(``published``), and where a prediction rests on a cost timed on this machine
(the attribute settings: the kernel's own xa_reserve + xa_store per GFN,
measured by the caller) that cost's median and spread.  A row whose central
ratio is not :func:`reproduced` (within [0.5, 2] of a published value; not
below 0.5 of a lower bound, not above 2 of an upper one) names the term the
model lacks (:data:`LACKS`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pandas as pd

from .. import published
from ..kernel import PAGE_SIZE
from ..published import AFTER, BEFORE
from .platform import Platform, get_platform

#: a prediction within this factor of its publication is reproduced
WITHIN = 2.0

#: row key -> the term the model lacks, said where a ratio falls outside WITHIN
LACKS = {
    f"teardown-{BEFORE}-64vcpu-400gb": (
        "a per-page cost growing faster than linearly in vCPUs (every tdh_mem_track "
        "waits for all vCPUs to exit; the model charges one kick each, serially)"),
    f"teardown-{BEFORE}-32vcpu-107gb": (
        "a per-page cost growing faster than linearly in vCPUs (every tdh_mem_track "
        "waits for all vCPUs to exit; the model charges one kick each, serially)"),
    f"teardown-{AFTER}-4vcpu-18gb": (
        "a fixed per-TD cost (TDH.MNG.VPFLUSHDONE, TDH.PHYMEM.CACHE.WB, the HKID's "
        "release) that a small TD does not amortise"),
    f"teardown-{AFTER}-64vcpu-400gb": (
        "the reclaim's dependence on the TD's size (PAMT walks per page; the model's "
        "per-page SEAMCALL is flat)"),
    "attributes-1tb": (
        "the in-kernel costs of kvm_vm_set_mem_attributes() that the userspace "
        "harness lacks (slab allocation under GFP_KERNEL_ACCOUNT, memcg charging, the "
        "SNP host's RMP updates); the publication is a lower bound"),
    "attributes-1.9tb": (
        "the in-kernel costs of kvm_vm_set_mem_attributes() that the userspace "
        "harness lacks (slab allocation under GFP_KERNEL_ACCOUNT, memcg charging); "
        "the publication is a lower bound"),
}

#: the columns of validation.csv, in order
COLUMNS = ["key", "what", "published", "published_unit", "published_kind", "bound", "source",
           "predicted", "predicted_low", "predicted_high", "predicted_kind", "ratio",
           "within", "role", "lacks", "platform", "terms"]


def page_s(platform: Platform, path: str, vcpus: int = 0, clear: bool = True) -> float:
    """Modeled seconds to return one 4 KiB page of a TD on ``path``."""
    p = platform
    if path not in published.SEAMCALLS_PER_PAGE:
        raise ValueError(f"unknown teardown path {path!r}; known: {BEFORE}, {AFTER}")
    t = published.SEAMCALLS_PER_PAGE[path] * p.seamcall_s
    if path == BEFORE:
        t += vcpus * p.vcpu_kick_s
    return t + (PAGE_SIZE / p.clear_bps_core if clear else 0.0)


def teardown_s(pages: float, platform: Platform, path: str, vcpus: int = 0,
               clear: bool = True) -> float:
    """Modeled seconds to return ``pages`` private pages of one TD (one thread)."""
    return float(pages) * page_s(platform, path, vcpus, clear)


def clear_share(platform: Platform) -> float:
    """The share of the after-path's per-page time the clear takes: what
    skipping it saves (modeled)."""
    return 1.0 - page_s(platform, AFTER, clear=False) / page_s(platform, AFTER)


def _corners(platform: Platform, fields: tuple[str, ...]):
    """``platform`` at every combination of the ends of ``fields``' ASSUMED ranges."""
    ranges = platform.assumed_ranges()
    for ends in itertools.product(*((ranges[f][0], ranges[f][1]) for f in fields)):
        yield dataclasses.replace(platform, **dict(zip(fields, ends)))


def _role(key: str) -> str:
    derived = {published.DERIVE_CLEAR_FROM.key: "derives seamcall_s and clear_bps_core",
               published.DERIVE_KICK_FROM.key: "derives vcpu_kick_s",
               "clear-share": "derives clear_bps_core (with the 107 GB after row)"}
    return derived.get(key, "prediction")


def reproduced(ratio: float, bound: str = published.VALUE) -> bool:
    """A central ratio (predicted / published) reproduces a published value
    within WITHIN either way; a lower bound (the truth lies above it) is only
    contradicted by a prediction WITHIN below it, an upper bound by one above."""
    if not math.isfinite(ratio):
        return False
    low = 1 / WITHIN if bound != published.UPPER_BOUND else 0.0
    high = WITHIN if bound != published.LOWER_BOUND else math.inf
    return bool(low <= ratio <= high)


def _row(key, what, pub, unit, source, pred, low, high, kind, platform, terms,
         bound=published.VALUE) -> dict:
    ratio = pred / pub if pub and math.isfinite(pred) else math.nan
    within = reproduced(ratio, bound)
    return {"key": key, "what": what, "published": pub, "published_unit": unit,
            "published_kind": "published", "bound": bound, "source": source,
            "predicted": pred,
            "predicted_low": low, "predicted_high": high, "predicted_kind": kind,
            "ratio": ratio, "within": within, "role": _role(key),
            "lacks": "" if within else LACKS.get(key, "not identified"),
            "platform": platform, "terms": terms}


def validation(platform="spr-2s", attr_store_s: tuple[float, float, float] | None = None,
               attr_engine: str = "") -> pd.DataFrame:
    """Every published TDX timing beside the model's prediction on ``platform``.

    ``attr_store_s``: (median, min, max) seconds per GFN of KVM's attribute
    store (xa_reserve + xa_store of one value entry), measured by the caller
    on the kernel's own code (``attr_engine`` names it); without it the
    attribute rows have no prediction.  Rows in :data:`COLUMNS` order."""
    p = get_platform(platform)
    fast, slow = p.bounds()
    rows = []
    for t in published.TEARDOWN:
        what = (f"reclaim of a TD of {t.size_gb:g} GB, {t.vcpus} vCPUs, "
                + ("Dynamic Page Removal while RUNNABLE" if t.path == BEFORE
                   else "KVM_TDX_TERMINATE_VM (TD_TEARDOWN)"))
        terms = (f"{t.pages:,.0f} pages x ({published.SEAMCALLS_PER_PAGE[t.path]} SEAMCALL"
                 + (f" + {t.vcpus} vCPU kicks" if t.path == BEFORE else "") + " + 4 KiB clear)")
        rows.append(_row(t.key, what, t.seconds, "s", published.TERMINATE_VM_SOURCE,
                         teardown_s(t.pages, p, t.path, t.vcpus),
                         teardown_s(t.pages, fast, t.path, t.vcpus),
                         teardown_s(t.pages, slow, t.path, t.vcpus), "modeled", p.name, terms))
    # a share is not monotone in the fast/slow corners: every corner of its two fields
    shares = [clear_share(c) for c in _corners(p, ("seamcall_s", "clear_bps_core"))]
    rows.append(_row("clear-share", "shutdown time saved by skipping the MOVDIR64B clear "
                     "(\"up to 40 %\")", published.CLEAR_SHARE, "fraction",
                     published.CLEAR_SKIP_SOURCE, clear_share(p), min(shares), max(shares),
                     "modeled", p.name,
                     "clear / (reclaim SEAMCALL + clear), per page of the after path",
                     published.UPPER_BOUND))
    for a in published.ATTRIBUTES:
        if attr_store_s is None:
            pred = low = high = math.nan
            kind = "not measured in this run"
        else:
            med, lo, hi = attr_store_s
            pred, low, high = a.gfns * med, a.gfns * lo, a.gfns * hi
            kind = f"modeled from a cost measured here ({attr_engine or 'kernel code'})"
        rows.append(_row(a.key, a.what, a.seconds, "s",
                         published.ATTRIBUTES_SOURCE, pred, low, high, kind, p.name,
                         f"{a.gfns:,.0f} GFNs x (xa_reserve + xa_store) per GFN",
                         published.LOWER_BOUND))
    return pd.DataFrame(rows, columns=COLUMNS)
