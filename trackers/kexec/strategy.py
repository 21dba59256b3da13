"""The interface every kexec strategy shares, and the rows it answers.

A :class:`Strategy` is one way to find (or avoid) TDX-private pages at kexec.
For a :class:`KexecHost` and a :class:`Platform`,
``strategy.assess(host, platform)`` answers one :class:`Outcome`:

* kexec_allowed   -- does machine_kexec_prepare() let the kexec proceed;
* pages_reset     -- pages the strategy clears before the jump;
* pages_missed    -- pages TDX-private at kexec that it does not reset;
* added_bytes     -- memory the option adds to a running kernel (modeled);
* scanned_bytes   -- bytes the kexec-time scan reads (modeled);
* scan_s, clear_s, downtime_s = scan_s + clear_s (modeled on the platform);
* scan_measured_s -- where the structure was built, its measured scan
  (median of ``scan_runs`` runs, as many as the strategy's ``scan_repeat``
  rule asks: :mod:`trackers.repeats`; scan_measured_min_s and
  scan_measured_max_s are the spread), with scan_model_error = scan_s /
  median - 1.  ``engine`` says what ran: the kernel's own code (the
  tracker's ``@kernel`` twin, through the kernel's iterators) wherever a twin
  exists and the library loads; the Python/numba emulation only where no
  twin exists (or the kernel's code is unavailable here); nothing where the
  structure was not built (estimate()).
* scan_entries, scan_extents, scan_lookups -- the scan's work as the
  platform model counts it (:meth:`Platform.scan_s`): entries tested,
  maximal runs emitted, per-page lookups in another structure;
* downtime_low_s, downtime_high_s -- downtime_s with every ASSUMED platform
  parameter at the end of its range that makes it shortest and longest
  (:meth:`Platform.bounds`: the scan costs, the TDH.SYS.DISABLE rate, a
  preset's estimated rates);
* pages_overcleared -- pages reset that were not private (dpamt-refcount
  resets whole 2 MiB ranges; clear-all every RAM page).

A strategy that builds a structure measures it once per host
(:class:`ScanMeasurement`, platform-free; :func:`cached_measure` keeps it
across platforms) and costs it on each platform (:func:`scan_outcome`,
:func:`bracket`).  For the race (:mod:`.race`) each strategy also says which
conversion states of a page it still finds: :meth:`Strategy.finds`, from
:data:`.states.STATE_FACTS`.

The strategies live beside their models (:mod:`.tracked`, :mod:`.directmap`,
:mod:`.kvm_walk`, :mod:`.gmem`, :mod:`.dpamt`, :mod:`.mainline`,
:mod:`.kept_lists`); :mod:`.strategies` is their registry.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, replace

from .. import kernel, linux, repeats
from ..base import NotRepresentable
from ..registry import TWINS
from .host import KexecHost
from .platform import Platform
from .states import NEEDS_RESET

PAGE = kernel.PAGE_SIZE
#: how the engine of a measurement through the kernel's own code begins
#: ("kernel code v6.12.117 (userspace)": kernel_engine())
ENGINE_KERNEL_PREFIX = "kernel code"
#: the engine (Outcome.engine) of a measurement of a Python/numba emulation
ENGINE_EMULATION = "emulation (Python/numba)"
#: the engines of the C layouts of structures the kernel keeps (trackers/linux/pages.c,
#: trackers/linux/directmap.c)
ENGINE_STRUCT_PAGES = "C struct-page scan (trackers/linux/pages.c)"
ENGINE_PAGE_TABLES = "C page-table walk (trackers/linux/directmap.c)"
#: the engine of a row where nothing was built or timed
ENGINE_NONE = "none (modeled)"

#: build and scan only up to this PFN space: past 2 TiB the builds (the
#: emulations: xarray ~30 s per TiB scanned here; the kernel's xa_store per
#: page ~12 s per TiB) would dominate a shared machine; estimate() answers beyond it
BUILD_LIMIT_PFNS = 1 << 29
#: how often a built structure's scan is timed (median and min-max reported):
#: until its runs agree, at least 3 (2 for a scan of seconds whose two runs
#: agree; trackers/repeats.py); ``repeat=`` of a
#: measure() or assess() overrides it (kexec --full-repeats: repeats.FULL)
SCAN_REPEAT = repeats.DEFAULT


@dataclass(kw_only=True)
class Outcome:
    """One row of the verdict table; see the module doc for each field.

    Built by keyword; the field order is the table's column order.  Counts
    default to 0 and times to NaN (no kexec, nothing costed): a row states
    what its option does.  provenance says which figures are measured,
    emulated or modeled.
    """

    strategy: str
    option: str
    kexec_allowed: bool
    added_bytes: int = 0
    scanned_bytes: int = 0
    scan_loads: int = 0
    pages_reset: int = 0
    pages_missed: int = 0
    scan_s: float = math.nan
    clear_s: float = math.nan
    downtime_s: float = math.nan
    scan_measured_s: float = math.nan
    scan_measured_min_s: float = math.nan
    scan_measured_max_s: float = math.nan
    scan_runs: int = 0
    scan_model_error: float = math.nan
    provenance: str = ""
    notes: str = ""
    #: False where the option's structure cannot hold this host's PFNs
    #: (NotRepresentable): the row's numbers are NaN and it is no option here
    representable: bool = True
    #: the scan's work as the platform model counts it (Platform.scan_s):
    #: entries tested, extents (maximal runs) emitted, per-page lookups
    scan_entries: int = 0
    scan_extents: int = 0
    scan_lookups: int = 0
    #: what produced scan_measured_s: the kernel's code, an emulation, or nothing
    engine: str = ENGINE_NONE
    #: downtime_s with every ASSUMED parameter at its fast / slow end
    #: (Platform.bounds); NaN where no kexec happens
    downtime_low_s: float = math.nan
    downtime_high_s: float = math.nan
    #: pages reset that were not private (modeled)
    pages_overcleared: int = 0

    def row(self) -> dict:
        return asdict(self)


def bracket(outcome: Outcome, platform: Platform, downtime) -> Outcome:
    """``outcome`` with downtime_low_s / downtime_high_s: ``downtime(p)`` on the
    platform's fast and slow corners (every ASSUMED field at either end)."""
    fast, slow = platform.bounds()
    outcome.downtime_low_s = float(downtime(fast))
    outcome.downtime_high_s = float(downtime(slow))
    return outcome


def modeled_times(platform: Platform, scanned_bytes: int, loads: int, pages_reset: int,
                  entries: int = 0, extents: int = 0):
    """(scan_s, clear_s, downtime_s) on ``platform`` of a scan of that work
    and a clear of ``pages_reset`` pages."""
    scan_s = platform.scan_s(scanned_bytes, loads, entries, extents)
    clear_s = platform.clear_s(pages_reset * PAGE)
    return scan_s, clear_s, scan_s + clear_s


PROV_MODELED = ("modeled: added_bytes, scanned_bytes, scan_loads, pages_reset, "
                "pages_missed, scan_s, clear_s, downtime_s")


class Strategy:
    """One way to find (or avoid) TDX-private pages at kexec."""

    name: str = ""
    option: str = ""
    #: the kernel hooks the SEAMCALL sites (mark before a page turns private,
    #: unmark after it is cleared): finds a page in every NEEDS_RESET state
    seamcall_hooked: bool = False
    #: the tracker whose scan this strategy is (None: no tracker)
    tracker_cls = None
    #: lists the kernel already keeps that the strategy resets besides its
    #: scan, as KexecHost set names (kvm: "pamt", the TDMR list)
    also_resets: tuple[str, ...] = ()
    #: the option has a structure of its own, not a tracker's, whose bytes the
    #: memory figure shows (added_bytes_for_set): pte-softbit, dpamt-refcount,
    #: gmem-maple
    sized_structure: bool = False

    @property
    def measure_key(self) -> tuple:
        """What this strategy's measurement depends on besides the host and the
        arguments: strategies with one key read one structure, built and timed
        once per host (:func:`cached_measure`)."""
        return (self.name,)

    #: the option resets on every CPU of the platform whatever ``cpus_at_reset``
    #: says (parallel-reset): a sweep over CPUs at reset already holds it as its
    #: tracker's row at all CPUs
    on_every_cpu: bool = False
    #: the row is judged on a TDX module without TDH.SYS.DISABLE (leaf 69);
    #: every other row assumes a module with it (mainline 7.2's case)
    old_module: bool = False

    def allowed(self, host: KexecHost, *, crash: bool = False) -> bool:
        return True

    def finds(self, state: str) -> bool:
        """Whether a page in conversion ``state`` is reset by this strategy."""
        return self.seamcall_hooked and state in NEEDS_RESET

    def assess(self, host: KexecHost, platform=None, **kw) -> Outcome:
        raise NotImplementedError

    def added_bytes_for_set(self, max_pfn: int, starts, ends) -> int:
        """Modeled bytes the option adds to a running kernel whose RAM is
        [0, max_pfn) and whose private pages are the set (no host built)."""
        return 0

    def measured_pfns(self, max_pfn: int, kernel_code: bool = True,
                      budget_bytes: int | None = None) -> int:
        """PFNs the scan of a ``max_pfn`` host is measured over: all of them,
        unless the structure is measured smaller and scaled (StructPageStrategy)."""
        return max_pfn

    def scan_structure(self, engine: str) -> str | None:
        """The structure whose measured scan costs model this option's scan
        (Platform.for_structure) when ``engine`` timed it -- ENGINE_NONE: the
        one the kernel's code would run -- as calibrate names it; None: no
        structure of its own was measured (the generic costs)."""
        return None

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def kernel_twin(name: str):
    """The ``@kernel`` twin of tracker ``name`` (the kernel's own code behind
    the same contract) where that code loads here, else None.  Asked at call
    time, not import time: ``tdx-trackers report`` builds the library after
    the registry was imported."""
    if name not in TWINS or not linux.available()[0]:
        return None
    return TWINS[name]


def kernel_engine() -> str:
    """The engine name of a measurement through the kernel's own code."""
    return f"{ENGINE_KERNEL_PREFIX} v{linux.version()} (userspace)"


def engine_kind(engine: str) -> str:
    """What kind of engine produced a measurement (Outcome.engine): "kernel
    code", "C layout" (pages.c, directmap.c), "emulation", or "none"."""
    if engine.startswith(ENGINE_KERNEL_PREFIX):
        return "kernel code"
    if engine in (ENGINE_STRUCT_PAGES, ENGINE_PAGE_TABLES):
        return "C layout"
    return "emulation" if engine == ENGINE_EMULATION else "none"


def scan_entries(modeled_bytes: int, scanned_bytes: int) -> int:
    """Entries a kexec-time scan tests: one per 8-byte word of the structure it
    walks (xa_node slots, maple slots and pivots, bitmap longs, PTEs), and one
    per struct page where it reads struct pages besides (``scanned_bytes`` beyond
    ``modeled_bytes``: MemoryReport says a scan reads more than its structure
    only there)."""
    extra = max(int(scanned_bytes) - int(modeled_bytes), 0)
    return (min(int(modeled_bytes), int(scanned_bytes)) // kernel.SCAN_ENTRY_BYTES
            + extra // kernel.STRUCT_PAGE_BYTES)


@dataclass(frozen=True, kw_only=True)
class ScanMeasurement:
    """What building and scanning (or estimating) one option's structure for
    one host gave; platform-free, so one measurement serves every platform.

    ``engine`` says what ran: the kernel's code (a ``@kernel`` twin), a C
    layout of a structure the kernel keeps (trackers/linux/pages.c or directmap.c), the
    emulation, or nothing (ENGINE_NONE: ``estimate()``).  ``seconds`` is the
    median of ``repeat`` timed whole scans (``seconds_min``/``seconds_max`` the
    spread; NaN and 0 when nothing ran), for ``max_pfn`` PFNs; where the scan
    was measured over fewer PFNs and scaled (the struct-page array past the
    memory budget) ``measured_pfns`` says how many and ``provenance`` says
    "extrapolated".  ``entries``, ``extents`` and ``lookups`` are the scan's
    work as :meth:`Platform.scan_s` counts it; ``populate_s`` the build.
    Built by keyword: ``found``, ``provenance`` and ``max_pfn`` always, the
    rest where they are not 0, NaN or ENGINE_NONE.
    """

    engine: str = ENGINE_NONE
    found: tuple
    modeled_bytes: int = 0
    scanned_bytes: int = 0
    scan_loads: int = 0
    entries: int = 0
    extents: int = 0
    lookups: int = 0
    provenance: str
    notes: str = ""
    seconds: float = math.nan
    seconds_min: float = math.nan
    seconds_max: float = math.nan
    repeat: int = 0
    max_pfn: int
    measured_pfns: int = 0
    populate_s: float = math.nan

    @property
    def extrapolated(self) -> bool:
        return 0 < self.measured_pfns < self.max_pfn


def with_times(m: ScanMeasurement, times: list[float], **changes) -> ScanMeasurement:
    """``m`` with the timed runs ``times``: their median, min-max and count."""
    return replace(m, seconds=statistics.median(times), seconds_min=min(times),
                   seconds_max=max(times), repeat=len(times), **changes)


def kept_list(host: KexecHost, name: str):
    """A list the kernel keeps, by its ``also_resets`` name: "pamt" is what the
    TDMR list names (host.pamt_listed: no Dynamic PAMT page pairs)."""
    return host.pamt_listed if name == "pamt" else getattr(host, name)


def cached_measure(strategy, host: KexecHost, cache: dict | None, **kw):
    """``strategy.measure(host, **kw)`` once per host and arguments while
    ``cache`` is kept (a NotRepresentable is cached and returned, not raised)."""
    key = (strategy.measure_key, id(host), tuple(sorted(kw.items())))
    m = None if cache is None else cache.get(key)
    if m is None:
        try:
            m = strategy.measure(host, **kw)
        except NotRepresentable as exc:
            m = exc
        if cache is not None:
            cache[key] = m
    return m


def scan_outcome(strategy, platform: Platform, m: ScanMeasurement, added: int,
                 pages_reset: int, missed: int, notes: str = "") -> Outcome:
    """The row of a scanning strategy: its measurement costed on ``platform``,
    with the measured costs of the structure it scans where the platform has
    them (Platform.for_structure)."""
    platform = platform.for_structure(strategy.scan_structure(m.engine))
    scan_s = platform.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents, m.lookups)
    clear_s = platform.clear_s(pages_reset * PAGE)
    measured = m.seconds
    err = (scan_s / measured - 1) if (measured > 0 and platform.kind == "measured") else math.nan
    out = Outcome(strategy=strategy.name, option=strategy.option, kexec_allowed=True,
                  added_bytes=int(added), scanned_bytes=m.scanned_bytes,
                  scan_loads=m.scan_loads, pages_reset=pages_reset, pages_missed=missed,
                  scan_s=scan_s, clear_s=clear_s, downtime_s=scan_s + clear_s,
                  scan_measured_s=measured, scan_measured_min_s=m.seconds_min,
                  scan_measured_max_s=m.seconds_max, scan_runs=m.repeat,
                  scan_model_error=err, provenance=m.provenance,
                  notes="; ".join(x for x in (m.notes, notes) if x), scan_entries=m.entries,
                  scan_extents=m.extents, scan_lookups=m.lookups, engine=m.engine)
    return bracket(out, platform, lambda p: (
        p.scan_s(m.scanned_bytes, m.scan_loads, m.entries, m.extents, m.lookups)
        + p.clear_s(pages_reset * PAGE)))
