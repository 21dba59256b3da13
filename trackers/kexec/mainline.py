"""What mainline does at kexec on a TDX host: refuse, then TDH.SYS.DISABLE.

* ``upstream-refuse`` (:class:`UpstreamRefuse`, option 5 as merged,
  b18651f70ce0, 6.18 to 7.1): machine_kexec_prepare() returns -EOPNOTSUPP on
  every part with the partial-write erratum; kdump reboots through the BIOS;
* ``sys-disable`` (:class:`SysDisable`, option 7, tip x86/tdx 5b25f249be32,
  since 7.2): TDH.SYS.DISABLE, the TDX module reclaims and clears every TDX
  page itself, at the platform's ASSUMED ``sys_disable_bps``.

Neither scans nor adds anything.
"""

from __future__ import annotations

from .. import kernel
from .platform import get_platform
from .states import NEEDS_RESET
from .strategy import PROV_MODELED, Outcome, Strategy, bracket

PAGE = kernel.PAGE_SIZE


class UpstreamRefuse(Strategy):
    """Option 5 as merged (b18651f70ce0, "x86/kexec: Disable kexec/kdump on
    platforms with TDX partial write erratum", 6.18): machine_kexec_prepare()
    returns -EOPNOTSUPP on every part with X86_BUG_TDX_PW_MCE (Sapphire and
    Emerald Rapids) -- whether or not TDX was ever initialised; kdump reboots
    through the BIOS.  Elsewhere kexec proceeds after a WBINVD
    (tdx_cpu_flush_cache_for_kexec()) and resets nothing, the erratum being
    absent.  Every host here is taken to be an erratum part."""

    name = "upstream-refuse"
    option = ("5: upstream 6.18: kexec/kdump -EOPNOTSUPP on X86_BUG_TDX_PW_MCE parts, "
              "TDX initialised or not (b18651f70ce0)")

    def allowed(self, host, *, crash=False):
        return False

    def finds(self, state):
        return False

    def assess(self, host, platform=None, **kw) -> Outcome:
        return Outcome(strategy=self.name, option=self.option, kexec_allowed=False,
                       provenance="modeled: no kexec happens (downtime is a BIOS reboot, "
                       "not modeled)",
                       notes=(f"kexec refused on an X86_BUG_TDX_PW_MCE part even with TDX never "
                              f"initialised ({host.tds_running} TDs running here): nothing "
                              f"to miss"))


class SysDisable(Strategy):
    """Option 7 (Verma/Edgecombe, "fuller TDX kexec support" v3, Apr 2026; tip
    x86/tdx 5b25f249be32): TDH.SYS.DISABLE from tdx_shutdown() (syscore) and
    native_machine_crash_shutdown().  The TDX module reclaims every page PAMT
    assigns to TDX -- TD, control, S-EPT and leaked pages, the PAMT itself --
    and clears partial-write poison; the kernel resets nothing and scans
    nothing.  Its time "depends on the amount of memory allocated to TDs";
    no figure is published: private pages at the platform's ASSUMED
    ``sys_disable_bps`` (one CPU's streaming clear: the SEAMCALL loops on the
    calling CPU), range in ASSUMED_RANGES."""

    name = "sys-disable"
    option = "7: TDH.SYS.DISABLE (the TDX module reclaims and clears; tip x86/tdx)"

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        pages_reset = host.private_pages

        def downtime(p):
            return pages_reset * PAGE / p.sys_disable_bps

        lo, hi = platform.assumed_ranges()["sys_disable_bps"][:2]
        clear_s = downtime(platform)
        out = Outcome(strategy=self.name, option=self.option, kexec_allowed=True,
                      pages_reset=pages_reset, scan_s=0.0, clear_s=clear_s, downtime_s=clear_s,
                      provenance=(PROV_MODELED + "; ASSUMED: the module's clear rate "
                                  "sys_disable_bps"),
                      notes=(f"module clears {host.td_pages:,} TD + "
                             f"{pages_reset - host.td_pages:,} PAMT/leaked pages at "
                             f"{platform.sys_disable_bps / 1e9:.1f} GB/s, ASSUMED range "
                             f"{lo / 1e9:g}-{hi / 1e9:g} GB/s (no published figure)"))
        return bracket(out, platform, downtime)
