"""What mainline does at kexec on a TDX host, and the fixes a reviewer asks for next.

Mainline's history (docs/kernel-facts.md, "Mainline today"):

* ``refuse-6.18`` (:class:`Refuse618`; b18651f70ce0, mainline from 6.18 to
  7.1): machine_kexec_prepare() returns -EOPNOTSUPP on every part with the
  partial-write erratum; kdump reboots through the BIOS;
* ``mainline-7.2`` (:class:`Mainline72`; b7d2173946ef, 5b25f249be32, merged
  for 7.2): TDH.SYS.DISABLE (leaf 69) from the syscore ``tdx_shutdown()`` at
  kexec and from ``native_machine_crash_shutdown()`` at kdump.  The TDX
  module reclaims and clears every page PAMT gives to TDX -- TD, control,
  S-EPT, leaked and extension pages, the PAMT itself, Dynamic PAMT's pairs --
  on the one calling CPU, in an unbounded loop (interrupts off at kdump):
  :meth:`.platform.Platform.sys_disable_s`, one reclaim and one clear a page,
  the TD teardown's after-path (:mod:`.teardown`);
* ``mainline-7.2-old-module`` (:class:`Mainline72OldModule`): the same kernel
  on a TDX module without leaf 69.  The enumeration bit (TDX_FEATURES0 bit
  53) is not checked: the SEAMCALL fails ("TDH.SYS.DISABLE failed:
  0xc000010000000000"), tdx_sys_disable() returns, and kexec goes on with
  every private page left for the next kernel.

The fixes, each judged where it differs from mainline (a module without
leaf 69, or the CPUs at reset):

* ``refuse-no-leaf69`` (:class:`RefuseNoLeaf69`): check the enumeration bit
  and refuse kexec/kdump at load where the leaf is absent (the 6.18 refusal,
  narrowed to old modules);
* ``fallback-bitmap`` (:class:`FallbackBitmap`): where the leaf is absent,
  reset from a bitmap over [0, max_pfn) that SEAMCALL hooks keep, allocated
  at TDX init only then.  A bitmap because it is the tracker that needs no
  lock, allocation or RCU in crash context and allocates nothing on the
  conversion path (recommendation.csv; the report's rule picks among the
  trackers and says whether it agrees);
* ``parallel-reset`` (:class:`ParallelReset`): the same bitmap reset moved to
  before the other CPUs stop and run on all of them -- from the syscore
  callback at kexec (the other CPUs still run there), from the NMI callback
  that stops each CPU at kdump -- against the module's one-CPU call.  The
  next kernel then cannot initialise TDX until a cold boot (the module stays
  initialised), as before 7.2.
"""

from __future__ import annotations

import math

from ..registry import TRACKERS
from .host import KexecHost
from .platform import get_platform
from .states import NEEDS_RESET
from .strategy import PROV_MODELED, Outcome, Strategy, bracket
from .tracked import TrackerStrategy

#: the tracker the fixes reset from where the module cannot (module doc)
FALLBACK_TRACKER = "bitmap"


class Refusal(Strategy):
    """A kernel that refuses kexec and kdump at load on every host it is
    judged on: nothing found, reset or missed, since no kexec happens.
    ``refused_provenance`` says so; :meth:`refused_notes` says why."""

    refused_provenance = "modeled: no kexec happens"

    def allowed(self, host, *, crash=False):
        return False

    def finds(self, state):
        return False

    def refused_notes(self, host: KexecHost) -> str:
        raise NotImplementedError

    def assess(self, host, platform=None, **kw) -> Outcome:
        return Outcome(strategy=self.name, option=self.option, kexec_allowed=False,
                       provenance=self.refused_provenance, notes=self.refused_notes(host))


class Refuse618(Refusal):
    """Option 5 as mainline had it from 6.18 to 7.1 (b18651f70ce0, "x86/kexec:
    Disable kexec/kdump on platforms with TDX partial write erratum"):
    machine_kexec_prepare() returns -EOPNOTSUPP on every part with
    X86_BUG_TDX_PW_MCE (Sapphire and Emerald Rapids), whether or not TDX was
    ever initialised; kdump reboots through the BIOS.  Removed in 7.2
    (5b25f249be32).  Every host here is taken to be an erratum part."""

    name = "refuse-6.18"
    option = ("5: mainline 6.18-7.1: kexec/kdump -EOPNOTSUPP on X86_BUG_TDX_PW_MCE parts, "
              "TDX initialised or not (b18651f70ce0)")
    refused_provenance = "modeled: no kexec happens (downtime is a BIOS reboot, not modeled)"

    def refused_notes(self, host):
        return (f"kexec refused on an X86_BUG_TDX_PW_MCE part even with TDX never "
                f"initialised ({host.tds_running} TDs running here): nothing to miss")


class Mainline72(Strategy):
    """Option 7 as mainline runs it since 7.2, on a TDX module with
    TDH.SYS.DISABLE (module doc): nothing scanned, nothing added, every TDX
    page reset by the module on one CPU."""

    name = "mainline-7.2"
    option = ("7: mainline since 7.2: TDH.SYS.DISABLE at kexec and kdump, on one CPU "
              "(5b25f249be32); a module with leaf 69")

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        pages = host.private_pages
        wait = platform.sys_disable_s(pages)
        out = Outcome(
            strategy=self.name, option=self.option, kexec_allowed=True,
            pages_reset=pages, scan_s=0.0, clear_s=wait, downtime_s=wait,
            provenance=(PROV_MODELED + "; ASSUMED: the per-page SEAMCALL seamcall_s and "
                        "the clear, central values derived from the published TD "
                        "teardowns (docs/validation.md)"),
            notes=(f"the module reclaims and clears {host.td_pages:,} TD + "
                   f"{pages - host.td_pages:,} PAMT, extension and leaked pages on one CPU "
                   f"whatever the CPUs at reset, {platform.sys_disable_page_s * 1e6:.2f} us "
                   f"a page ({platform.sys_disable_bps / 1e9:.2f} GB/s); at kdump with "
                   f"interrupts off, in a loop without bound"))
        return bracket(out, platform, lambda p: p.sys_disable_s(pages))


class Mainline72OldModule(Strategy):
    """Mainline 7.2 on a TDX module without TDH.SYS.DISABLE: the call fails at
    once and kexec goes on, resetting nothing (module doc)."""

    name = "mainline-7.2-old-module"
    old_module = True
    option = ("7 on a module without leaf 69: TDH.SYS.DISABLE fails, kexec goes on "
              "(TDX_FEATURES0 bit 53 unchecked)")

    def finds(self, state):
        return False

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        out = Outcome(
            strategy=self.name, option=self.option, kexec_allowed=True, pages_reset=0,
            pages_missed=host.private_pages, scan_s=0.0, clear_s=0.0,
            downtime_s=platform.seamcall_s,
            provenance=PROV_MODELED + "; the one failing SEAMCALL at seamcall_s",
            notes=(f"\"TDH.SYS.DISABLE failed: 0xc000010000000000\"; all "
                   f"{host.private_pages:,} private pages are left for the next kernel "
                   f"(partial-write poison on an erratum part)"))
        return bracket(out, platform, lambda p: p.seamcall_s)


class RefuseNoLeaf69(Refusal):
    """Mainline 7.2 that checks the enumeration bit and refuses kexec and kdump
    at load on a module without TDH.SYS.DISABLE (judged on such a module; with
    the leaf it is ``mainline-7.2``)."""

    name = "refuse-no-leaf69"
    old_module = True
    option = ("7 + refuse kexec/kdump at load where the module lacks leaf 69 (judged on "
              "such a module)")
    refused_provenance = "modeled: no kexec happens on such a module"

    def refused_notes(self, host):
        return "refused at load: TDX_FEATURES0 bit 53 clear; with the leaf, mainline-7.2"


class FallbackBitmap(TrackerStrategy):
    """Mainline 7.2 that resets from a bitmap where the module lacks
    TDH.SYS.DISABLE (judged on such a module): the ``bitmap`` tracker's scan
    and reset on the CPUs at reset, its bytes added only on such a module."""

    def __init__(self):
        super().__init__(TRACKERS[FALLBACK_TRACKER])
        self.name = f"fallback-{FALLBACK_TRACKER}"
        self.old_module = True
        self.option = (f"7 + a {FALLBACK_TRACKER} reset where the module lacks leaf 69 "
                       f"(judged on such a module)")


class ParallelReset(TrackerStrategy):
    """The bitmap reset moved to before the other CPUs stop, on every CPU of
    the platform (``cpus_total``), whatever ``cpus_at_reset`` says: the
    syscore callback at kexec, each CPU's NMI stop callback at kdump (module
    doc)."""

    def __init__(self):
        super().__init__(TRACKERS[FALLBACK_TRACKER])
        self.name = "parallel-reset"
        self.on_every_cpu = True
        self.option = (f"7's reset moved before the CPUs stop: a {FALLBACK_TRACKER} reset "
                       f"on every CPU (syscore at kexec, NMI stop callback at kdump)")

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        out = super().assess(host, platform.with_cpus(platform.cpus_total), **kw)
        if out.representable:
            # the scan is timed on one CPU here, modeled on all: no like-for-like error
            out.scan_model_error = math.nan
            out.notes = "; ".join(x for x in (out.notes, (
                f"on all {platform.cpus_total} CPUs; the next kernel cannot initialise "
                f"TDX until a cold boot")) if x)
        return out

