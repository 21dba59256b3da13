"""Every published TDX timing the models answer to, and the rates derived from them.

These are the only measurements of TDX memory operations found in public
(docs/kernel-facts.md, "Published TDX timings"; the derivation is written
out in docs/validation.md).  They are data, never results: the TD-teardown
model (:mod:`trackers.kexec.teardown`) predicts each of them from the kexec
model's own parameters, and ``validation.csv`` puts prediction and
publication side by side with their ratio.

Three of them *derive* parameters (their ratio is 1 by construction and the
table says so); the other six are predictions the model can miss:

* the clear and the reclaim SEAMCALL: the after-column of the
  KVM_TDX_TERMINATE_VM table at 107 GB (one TDH.PHYMEM.PAGE.RECLAIM and one
  MOVDIR64B clear of 4 KiB per page, one thread) split by the "up to 40 %"
  that skipping the clear saved (commit 01fb93a363e0);
* the vCPU kick: the before-column at 4 vCPUs (per page: tdh_mem_range_block,
  tdh_mem_track with an exit of every vCPU, tdh_mem_page_remove,
  tdh_phymem_page_wbinvd_hkid, the clear), less its four SEAMCALLs and the
  clear, per vCPU.

"GB" in the table is read as GiB (QEMU's ``-m`` unit); read as 10^9 B every
derived per-page cost moves by 7 % and every ratio stays the same, the model
being linear in pages.  The CPU of the measurements is not stated; the "up to
40 %" was measured where the clear may be skipped, i.e. on a part without the
erratum.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernel import PAGE_SIZE

#: "GB" of the published table, read as GiB (QEMU -m); see the module doc
GB_BYTES = 1 << 30

TERMINATE_VM_SOURCE = ("Sean Christopherson / Adrian Hunter, 11 Jun 2025, \"[PATCH V4 1/1] "
                       "KVM: TDX: Add sub-ioctl KVM_TDX_TERMINATE_VM\" (first as the RFC "
                       "\"KVM: TDX: Defer guest memory removal to decrease shutdown time\", "
                       "13 Mar 2025)")
CLEAR_SKIP_SOURCE = ("Adrian Hunter, commit 01fb93a363e0 \"x86/tdx: Skip clearing reclaimed "
                     "pages unless X86_BUG_TDX_PW_MCE is present\", Aug 2025")
ATTRIBUTES_SOURCE = ("Liam Merwick, commit 47bb584237cc \"KVM: Allow CPU to reschedule while "
                     "setting per-page memory attributes\", Jun 2025, and its cover letter")

#: what a published number is: the value, or a bound the true value lies above
#: ("more than 30 s") or below ("up to 40 %")
VALUE, LOWER_BOUND, UPPER_BOUND = "value", "lower bound", "upper bound"

#: the two paths of the teardown table: "before" = Dynamic Page Removal while
#: the TD is RUNNABLE; "after" = TDH.PHYMEM.PAGE.RECLAIM in TD_TEARDOWN once
#: the HKID is released (KVM_TDX_TERMINATE_VM)
BEFORE, AFTER = "before", "after"


@dataclass(frozen=True)
class Teardown:
    """One published reclaim time of a TD's private memory."""

    vcpus: int
    size_gb: float
    path: str                  # BEFORE or AFTER
    seconds: float

    @property
    def key(self) -> str:
        return f"teardown-{self.path}-{self.vcpus}vcpu-{self.size_gb:g}gb"

    @property
    def pages(self) -> float:
        return self.size_gb * GB_BYTES / PAGE_SIZE

    @property
    def per_page_s(self) -> float:
        return self.seconds / self.pages


#: the KVM_TDX_TERMINATE_VM table (TERMINATE_VM_SOURCE): vCPUs, GB, before, after
TEARDOWN: tuple[Teardown, ...] = tuple(
    Teardown(v, gb, path, s)
    for v, gb, before, after in ((4, 18, 72, 24), (32, 107, 517, 134), (64, 400, 5539, 467))
    for path, s in ((BEFORE, before), (AFTER, after)))

#: shutdown "up to 40 %" faster without the MOVDIR64B clear (CLEAR_SKIP_SOURCE):
#: the clear's share of the per-page reclaim path, an UPPER_BOUND
CLEAR_SHARE = 0.40


@dataclass(frozen=True)
class AttributeSetting:
    """kvm_vm_set_mem_attributes() over a whole guest: one xa_reserve and one
    xa_store per GFN (virt/kvm/kvm_main.c); ``seconds`` is a LOWER_BOUND (a
    soft lockup's report, "more than")."""

    key: str
    guest_bytes: float
    seconds: float
    what: str

    @property
    def gfns(self) -> float:
        return self.guest_bytes / PAGE_SIZE


ATTRIBUTES: tuple[AttributeSetting, ...] = (
    AttributeSetting("attributes-1tb", 1e12, 26.0,
                     "a 1 TB+ SEV-SNP guest: soft lockup, CPU stuck 26 s in xa_store"),
    AttributeSetting("attributes-1.9tb", 1.9e12, 30.0,
                     "setting the attributes of a 1.9 TB guest took more than 30 s"),
)


def teardown_row(vcpus: int, path: str) -> Teardown:
    return next(t for t in TEARDOWN if t.vcpus == vcpus and t.path == path)


#: the rows each derived parameter comes from
DERIVE_CLEAR_FROM = teardown_row(32, AFTER)
DERIVE_KICK_FROM = teardown_row(4, BEFORE)
#: SEAMCALLs per page on each path: after = the reclaim; before = range block,
#: track, page remove, wbinvd (arch/x86/kvm/vmx/tdx.c tdx_sept_remove_private_spte())
SEAMCALLS_PER_PAGE = {AFTER: 1, BEFORE: 4}


@dataclass(frozen=True)
class Derived:
    """Per-page costs derived from the publications (module doc).

    clear_s: one MOVDIR64B clear of a 4 KiB page (tdx_quirk_reset_page());
    seamcall_s: one per-page SEAMCALL, the reclaim's (taken for every
        per-page SEAMCALL: no publication separates them);
    vcpu_kick_s: per vCPU, per page of the before-path (tdh_mem_track's
        exit of every vCPU).
    """

    clear_s: float
    seamcall_s: float
    vcpu_kick_s: float

    @property
    def clear_bps(self) -> float:
        return PAGE_SIZE / self.clear_s


def derive() -> Derived:
    """The per-page costs from DERIVE_CLEAR_FROM, CLEAR_SHARE and DERIVE_KICK_FROM."""
    after = DERIVE_CLEAR_FROM.per_page_s
    clear = CLEAR_SHARE * after
    seamcall = (after - clear) / SEAMCALLS_PER_PAGE[AFTER]
    k = DERIVE_KICK_FROM
    kick = (k.per_page_s - SEAMCALLS_PER_PAGE[BEFORE] * seamcall - clear) / k.vcpus
    return Derived(clear, seamcall, kick)


def clear_rates() -> list[float]:
    """The clear rate (bytes/s) each after-row implies with CLEAR_SHARE, under
    either reading of "GB": the spread an ASSUMED clear range must contain."""
    out = []
    for t in (t for t in TEARDOWN if t.path == AFTER):
        for unit in (GB_BYTES, 1e9):
            per_page = t.seconds / (t.size_gb * unit / PAGE_SIZE)
            out.append(PAGE_SIZE / (CLEAR_SHARE * per_page))
    return out


def check() -> None:
    """The derivation is internally consistent: every derived cost is positive."""
    d = derive()
    for name in ("clear_s", "seamcall_s", "vcpu_kick_s"):
        v = getattr(d, name)
        if not v > 0:
            raise ValueError(f"derived {name} = {v!r} must be > 0: the published rows "
                             f"contradict the model's per-page steps")
