"""The options that reset a list the kernel already keeps, scanning nothing:

* ``refuse-while-td`` (:class:`RefuseWhileTd`, option 5.1): refuse kexec
  while a TD runs; otherwise reset the PAMT the TDMR list names;
* ``clear-all`` (:class:`ClearAll`, option 6): reset every RAM page of the
  e820 table.

Neither adds a byte; each misses the private pages outside its list.
"""

from __future__ import annotations

from ..extents import count, overlap_pages
from .platform import get_platform
from .states import NEEDS_RESET
from .strategy import PROV_MODELED, Outcome, Strategy, bracket, modeled_times


class RefuseWhileTd(Strategy):
    """Option 5.1: refuse only while a TD runs; otherwise reset the PAMT
    (the kernel's TDMR list) and whatever leaked -- which it cannot see."""

    name = "refuse-while-td"
    option = "5.1: refuse kexec only while TDs run"

    def allowed(self, host, *, crash=False):
        return host.tds_running == 0

    def finds(self, state):
        return False          # a conversion in flight means a TD runs: refused

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        if not self.allowed(host):
            return Outcome(strategy=self.name, option=self.option, kexec_allowed=False,
                           provenance="modeled: no kexec happens",
                           notes=f"{host.tds_running} TDs running: kexec refused")
        return _reset_listed(self, host, platform, host.pamt_listed,
                             "no TD running: PAMT reset from the TDMR list")


class ClearAll(Strategy):
    """Option 6 (Isaku Yamahata): reset every RAM page of the memory map."""

    name = "clear-all"
    option = "6: clear every RAM page of the e820 table"

    def finds(self, state):
        return state in NEEDS_RESET

    def assess(self, host, platform=None, **kw) -> Outcome:
        platform = get_platform(platform or "this-machine")
        return _reset_listed(self, host, platform, host.ram,
                             "scans only the e820 table (a few entries)")


def _reset_listed(strategy, host, platform, listed, notes) -> Outcome:
    """Reset every page of a list the kernel already keeps (no scan, no bytes
    added); private pages outside the list are missed."""
    pages_reset = count(listed)
    found = overlap_pages(host.private, listed)
    missed = host.private_pages - found
    scan_s, clear_s, down = modeled_times(platform, 0, 0, pages_reset)
    out = Outcome(strategy=strategy.name, option=strategy.option, kexec_allowed=True,
                  pages_reset=pages_reset, pages_missed=missed, scan_s=scan_s,
                  clear_s=clear_s, downtime_s=down, provenance=PROV_MODELED, notes=notes,
                  pages_overcleared=pages_reset - found)
    return bracket(out, platform, lambda p: modeled_times(p, 0, 0, pages_reset)[2])
