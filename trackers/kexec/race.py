"""The transitional-state race: kexec fired in the middle of conversions.

Isaku Yamahata (31 May 2024): walking KVM's structures "can miss pages in a
transitional private<->shared state".  This module measures that claim on a
model of KVM's private->shared conversion (docs/kernel-facts.md; states in
:data:`.states.CONVERSION_STATES`).  One conversion of n pages (a MapGPA
chunk: 512 for 2 MiB, or 1) runs, on one CPU:

1. kvm_vm_set_mem_attributes(): one xa_store per GFN, ``attr_s`` each --
   page i reads "shared" from (i+1) * attr_s on;
2. then per page (tdx_sept_remove_private_spte()): tdh_mem_range_block,
   tdh_mem_track, tdh_mem_page_remove, tdh_phymem_page_wbinvd_hkid, and the
   clear (PAGE_SIZE at the platform's one-core clear rate) -- after which
   the page is released and needs no reset.

Conversions start as a Poisson process of ``rate_pages_s / mean chunk``
per second.  A kexec lands at a uniformly random time of a stationary run,
so the conversions in flight at that instant are Poisson(lambda * D) with
offsets uniform over their duration D (exact for a stationary Poisson
process).  A *crash* kexec (kdump: crash_smp_send_stop() NMIs) freezes every
conversion where it is; a *normal* kexec (stop_other_cpus(): an IPI taken
only where interrupts are enabled) lets the running step -- a SEAMCALL, an
xa_store, a page clear -- finish first.  Pages in any state but "released"
must be reset; each strategy's ``finds(state)`` says which it resets.

Outputs (all modeled; simulated means beside the analytic expectation, by
Little's law: E[missed] = lambda * page-time per conversion in missed states):
:func:`race` -> DataFrame per strategy x kexec kind x rate, with P(>= 1 page
missed per kexec) and its Wilson 95 % interval and the mean's 95 % interval;
:func:`race_band` -> the same at the low, central and high ASSUMED SEAMCALL
cost (kernel.TDH_SEAMCALL_S_RANGE); :func:`failed_reclaim` -> who still finds
a page whose reclaim failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import kernel
from ..events import KIND_PAMT, KVM_SET_ATTR_SHARED, SEAMCALL_PRIVATE, SEAMCALL_RECLAIM
from ..extents import count, from_tracker, normalize, overlap_pages, subtract, union
from .host import event_batches
from .platform import get_platform
from .states import CONVERSION_STATES, NEEDS_RESET, ZAP_FIRST_STATES
from .strategies import get_strategies
from .strategy import Strategy

#: every state a page of a conversion can be in, under either order: the
#: columns of state_counts() and page_time_by_state()
STATES = CONVERSION_STATES + ZAP_FIRST_STATES
STATE_INDEX = {s: i for i, s in enumerate(STATES)}
# per-page steps after the attribute loop: (state entered when it completes)
PAGE_STEPS = ("blocked", "tracked", "removed", "written_back", "released")
#: the race steps that are SEAMCALLs (their cost is ASSUMED: kernel.TDH_SEAMCALL_S_RANGE)
SEAMCALL_STEPS = ("blocked", "tracked", "removed", "written_back")

#: the two orders of a private->shared conversion.  ATTRIBUTES_FIRST: the
#: xa_store loop, then the zap (Isaku Yamahata's premise, the model's default:
#: the worst case for an attribute walk).  ZAP_FIRST: the zap of every page,
#: then the xa_store loop -- mainline kvm_vm_set_mem_attributes()
#: (virt/kvm/kvm_main.c: pre_set_range -> kvm_arch_pre_set_memory_attributes()
#: -> kvm_unmap_gfn_range(), then xa_store()) and in-place conversion's
#: kvm_gmem_convert() (kvm_gmem_zap(), then mas_store_prealloc()).  Per order:
#: (state of a page waiting for its zap, states it passes through during the zap).
ATTRIBUTES_FIRST, ZAP_FIRST = "attributes-first", "zap-first"
ORDERS = {ATTRIBUTES_FIRST: ("attr_shared", PAGE_STEPS),
          ZAP_FIRST: ("private", ZAP_FIRST_STATES + ("released",))}

#: default conversion rates, MiB converted per second
DEFAULT_RATES_MIB_S = (1, 16, 256, 4096)


def step_times(platform="spr-2s", **overrides) -> dict[str, float]:
    """Seconds per step (modeled): the attribute store per GFN
    (kernel.KVM_ATTR_STORE_S), each SEAMCALL at the platform's per-page
    ``seamcall_s`` (ASSUMED; its central value derived from the published TD
    teardowns, the same the teardown model and TDH.SYS.DISABLE use), the
    clear at its one-core clear rate."""
    plat = get_platform(platform)
    t = {"attr": kernel.KVM_ATTR_STORE_S,
         **{s: plat.seamcall_s for s in SEAMCALL_STEPS},
         "released": kernel.PAGE_SIZE / plat.clear_bps_core}
    for k, v in overrides.items():
        if k not in t:
            raise ValueError(f"unknown step {k!r}; steps: {', '.join(t)}")
        t[k] = float(v)
    return t


def chunk_duration(n: np.ndarray, steps: dict) -> np.ndarray:
    per_page = sum(steps[s] for s in PAGE_STEPS)
    return n * steps["attr"] + n * per_page


def state_counts(n: np.ndarray, delta: np.ndarray, steps: dict, *,
                 crash: bool, order: str = ATTRIBUTES_FIRST) -> np.ndarray:
    """Pages of each conversion in each state at offset ``delta`` into it.

    n, delta: arrays (one conversion each).  Returns int64 (len, len(STATES))
    columns in STATES order; rows sum to n.  Vectorized over conversions.
    """
    n = np.asarray(n, np.int64)
    delta = np.asarray(delta, np.float64)
    a = steps["attr"]
    durs = np.array([steps[s] for s in PAGE_STEPS])
    bounds = np.cumsum(durs)                    # step ends within one page
    per_page = bounds[-1]
    if order == ZAP_FIRST:
        return _zap_first_counts(n, delta, a, bounds, crash)
    _check_order(order)
    A = n * a
    out = np.zeros((n.size, len(STATES)), np.int64)
    in_attr = delta < A
    # attribute loop: k pages already read "shared"
    k = np.floor(delta / a) if crash else np.ceil(delta / a)
    k = np.minimum(k, n).astype(np.int64)
    out[:, STATE_INDEX["private"]] = np.where(in_attr, n - k, 0)
    out[:, STATE_INDEX["attr_shared"]] = np.where(in_attr, k, 0)
    # per-page phase: `done` pages released, one page mid-steps, rest waiting
    u = np.where(in_attr, 0.0, delta - A)
    done = np.minimum(np.floor(u / per_page), n).astype(np.int64)
    r = u - done * per_page
    if crash:
        step = np.searchsorted(bounds, r, side="right")      # steps completed
    else:
        # the running step (r strictly inside it) finishes before the CPU stops
        step = np.searchsorted(bounds, r, side="left") + 1
    current = ~in_attr & (done < n)
    # a current page that finished every step is released
    fin = current & (step >= len(PAGE_STEPS))
    done = np.where(fin, done + 1, done)
    current &= ~fin
    waiting = np.where(in_attr, 0, n - done - current.astype(np.int64))
    out[:, STATE_INDEX["attr_shared"]] += np.where(~in_attr, waiting, 0)
    out[:, STATE_INDEX["released"]] = np.where(in_attr, 0, done)
    # the current page: state index = step (0 -> still attr_shared)
    cur_state = np.array([STATE_INDEX["attr_shared"]] + [STATE_INDEX[s] for s in PAGE_STEPS])
    idx = np.flatnonzero(current)
    np.add.at(out, (idx, cur_state[np.minimum(step[idx], len(PAGE_STEPS))]), 1)
    return out


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: one of {', '.join(ORDERS)}")


def _zap_first_counts(n, delta, a, bounds, crash: bool) -> np.ndarray:
    """state_counts() in mainline's order: the zap of page after page (each
    waiting page still "private"), then the attribute loop over released pages."""
    per_page = bounds[-1]
    waiting, during = ORDERS[ZAP_FIRST]
    out = np.zeros((n.size, len(STATES)), np.int64)
    done = np.minimum(np.floor(delta / per_page), n).astype(np.int64)
    r = delta - done * per_page
    step = (np.searchsorted(bounds, r, side="right") if crash
            else np.searchsorted(bounds, r, side="left") + 1)
    current = done < n
    fin = current & (step >= len(PAGE_STEPS))
    done = np.where(fin, done + 1, done)
    current &= ~fin
    out[:, STATE_INDEX["released"]] = done
    out[:, STATE_INDEX[waiting]] = n - done - current.astype(np.int64)
    cur_state = np.array([STATE_INDEX[waiting]] + [STATE_INDEX[s] for s in during])
    idx = np.flatnonzero(current)
    np.add.at(out, (idx, cur_state[np.minimum(step[idx], len(PAGE_STEPS))]), 1)
    return out


def page_time_by_state(n: np.ndarray, steps: dict,
                       order: str = ATTRIBUTES_FIRST) -> np.ndarray:
    """Page-seconds each conversion spends in each state (closed form).

    Attributes first: page i reads shared from (i+1)a to A + i*P + block; then
    one step each.  Zap first: page i waits "private" i*P + block, then one
    step each; the attribute loop runs over released pages.
    """
    _check_order(order)
    n = np.asarray(n, np.float64)
    a = steps["attr"]
    P = sum(steps[s] for s in PAGE_STEPS)
    out = np.zeros((n.size, len(STATES)))
    if order == ZAP_FIRST:
        out[:, STATE_INDEX["private"]] = P * n * (n - 1) / 2 + n * steps["blocked"]
        for prev, s in zip(ZAP_FIRST_STATES, PAGE_STEPS[1:]):
            out[:, STATE_INDEX[prev]] = n * steps[s]
        return out
    out[:, STATE_INDEX["private"]] = a * n * (n + 1) / 2
    out[:, STATE_INDEX["attr_shared"]] = n * (n * a + steps["blocked"] - a) + (P - a) * n * (n - 1) / 2
    for prev, s in zip(PAGE_STEPS[:-1], PAGE_STEPS[1:]):
        out[:, STATE_INDEX[prev]] = n * steps[s]   # state `prev` lasts until step s ends
    return out


def _missed_mask(strategy: Strategy) -> np.ndarray:
    return np.array([s in NEEDS_RESET and not strategy.finds(s) for s in STATES])


#: z of a two-sided 95 % interval
Z95 = 1.959963984540054
#: seamcall_cost level -> SEAMCALL step cost (None: the platform's seamcall_s)
SEAMCALL_LEVELS = {"low": kernel.TDH_SEAMCALL_S_RANGE[0], "base": None,
                   "high": kernel.TDH_SEAMCALL_S_RANGE[1]}


def wilson_interval(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (95 % by default) of a proportion: ``k`` successes
    of ``n`` trials (arrays or scalars).  Unlike p +- z*se it stays in [0, 1]
    and is not empty at k = 0: the upper end is then z^2 / (n + z^2)."""
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    if (n <= 0).any() or (k < 0).any() or (k > n).any():
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval holds p; at k = 0 and k = n rounding puts an end 1e-16 past it
    return (np.minimum(np.maximum(centre - half, 0.0), p),
            np.maximum(np.minimum(centre + half, 1.0), p))


def mean_interval(x, z: float = Z95) -> tuple[float, float]:
    """95 % interval of a mean from one sample (normal approximation, sample
    standard deviation; the race's n_kexec is in the thousands), clipped at 0:
    missed pages are never negative."""
    x = np.asarray(x, np.float64)
    if x.size < 2:
        raise ValueError(f"a mean's interval needs at least 2 samples, got {x.size}")
    m = float(x.mean())
    half = z * float(x.std(ddof=1)) / np.sqrt(x.size)
    return max(m - half, 0.0), m + half


def race(strategies=None, *, rates_mib_s=DEFAULT_RATES_MIB_S, chunk_pages=(512,),
         n_kexec: int = 20000, platform="spr-2s", seed: int = 0, workload=None,
         seamcall_cost: str = "base", order: str = ATTRIBUTES_FIRST,
         **step_overrides) -> pd.DataFrame:
    """Expected pages missed per kexec against the conversion rate (modeled).

    ``chunk_pages``: conversion sizes sampled uniformly (default: 2 MiB
    MapGPA chunks); with ``workload``, the sizes of its KVM_SET_ATTR_SHARED
    rows.  ``seamcall_cost``: "base" (each SEAMCALL step at the platform's
    ``seamcall_s``), "low" or "high" (every SEAMCALL step at that end of
    kernel.TDH_SEAMCALL_S_RANGE; explicit ``step_overrides`` win).  ``order``:
    ATTRIBUTES_FIRST (Isaku Yamahata's premise) or ZAP_FIRST (mainline's; see
    ORDERS).  Columns: strategy, kexec ("normal"/"crash"), rate_mib_s,
    seamcall_cost, order,
    kexec_allowed, missed_mean (simulated) with its 95 % interval
    missed_mean_low/high, missed_expected (Little's law, crash kexec), p_miss
    (share of the n_kexec kexecs missing >= 1 page; p_missed the same, its
    older name) with its Wilson 95 % interval p_miss_low/high, n_kexec.
    Every strategy sees the same simulated kexecs (common random numbers).
    """
    if seamcall_cost not in SEAMCALL_LEVELS:
        raise ValueError(f"seamcall_cost {seamcall_cost!r}: one of {', '.join(SEAMCALL_LEVELS)}")
    if n_kexec < 2:
        raise ValueError(f"n_kexec {n_kexec} must be >= 2 (an interval needs two kexecs)")
    _check_order(order)
    level = SEAMCALL_LEVELS[seamcall_cost]
    if level is not None:
        step_overrides = {**{k: level for k in SEAMCALL_STEPS}, **step_overrides}
    chosen = get_strategies(strategies)
    steps = step_times(platform, **step_overrides)
    sizes = np.asarray(chunk_sizes(workload) if workload is not None else chunk_pages, np.int64)
    if sizes.size == 0 or (sizes <= 0).any():
        raise ValueError(f"chunk sizes must be positive page counts, got {sizes[:5]}")
    durations = chunk_duration(sizes, steps)
    mean_pages, mean_dur = sizes.mean(), durations.mean()
    time_by_state = page_time_by_state(sizes, steps, order).mean(axis=0)
    rng = np.random.default_rng(seed)
    rows = []
    for rate in rates_mib_s:
        lam = rate * (1 << 20) / kernel.PAGE_SIZE / mean_pages     # conversions / s
        for crash in (False, True):
            # conversions in flight at each kexec: Poisson(lam * D) over the
            # size mix, length-biased by duration (longer ones more often)
            w = durations / durations.sum()
            per = rng.poisson(lam * mean_dur, n_kexec)
            total = int(per.sum())
            pick = rng.choice(sizes.size, total, p=w)
            n = sizes[pick]
            delta = rng.uniform(0, 1, total) * durations[pick]
            counts = state_counts(n, delta, steps, crash=crash, order=order)
            owner = np.repeat(np.arange(n_kexec), per)
            by_mask: dict = {}               # strategies sharing a mask share one count
            for s in chosen:
                mask = _missed_mask(s)
                allowed = s.allowed(_RUNNING_TD, crash=crash)
                key = (allowed and mask.any(), mask.tobytes())
                if key not in by_mask:
                    missed = (np.bincount(owner, counts[:, mask].sum(axis=1), minlength=n_kexec)
                              if key[0] else np.zeros(n_kexec))
                    hits = int((missed > 0).sum())
                    p_low, p_high = wilson_interval(hits, n_kexec)
                    m_low, m_high = mean_interval(missed)
                    by_mask[key] = {"missed_mean": float(missed.mean()),
                                    "missed_mean_low": m_low, "missed_mean_high": m_high,
                                    "p_miss": hits / n_kexec, "p_miss_low": float(p_low),
                                    "p_miss_high": float(p_high)}
                stats = by_mask[key]
                rows.append({
                    "strategy": s.name, "kexec": "crash" if crash else "normal",
                    "rate_mib_s": rate, "seamcall_cost": seamcall_cost, "order": order,
                    "kexec_allowed": allowed, **stats,
                    "missed_expected": (float(lam * time_by_state[mask].sum())
                                        if allowed else 0.0),
                    "p_missed": stats["p_miss"],
                    "n_kexec": n_kexec,
                })
    df = pd.DataFrame(rows)
    df.attrs["provenance"] = ("modeled: simulated (missed_mean, p_miss, 95 % intervals) and "
                              "analytic (missed_expected) on step times " + repr(steps))
    return df


def race_band(strategies=None, **kw) -> pd.DataFrame:
    """:func:`race` at every ``seamcall_cost`` level (low, base, high), one
    table: the band of the ASSUMED SEAMCALL costs (kernel.TDH_SEAMCALL_S_RANGE)."""
    return pd.concat([race(strategies, seamcall_cost=level, **kw) for level in SEAMCALL_LEVELS],
                     ignore_index=True)


def replay_cuts(workload, strategies=("bitmap", "kvm"), *, n_cuts: int = 16,
                seed: int = 0) -> pd.DataFrame:
    """Emulated race: replay a workload's events into real trackers and cut
    the stream (fire kexec) at random rows; count missed pages at each cut.

    Half the cuts land just after a KVM_SET_ATTR_SHARED row whose removal
    has not happened yet (the transitional window), half anywhere.  Each
    tracker is fed once, in order, and scanned at every cut (emulated).
    Truth at a cut: the PFNs private after the SEAMCALL rows so far.
    Columns: cut (row index), window (bool), strategy, private_pages, missed.
    """
    ev = np.concatenate(event_batches(workload))
    rng = np.random.default_rng(seed)
    after_attr = np.flatnonzero(ev["op"][:-1] == KVM_SET_ATTR_SHARED) + 1
    after_attr = after_attr[ev["op"][after_attr] == SEAMCALL_RECLAIM]      # removal still pending
    k = n_cuts // 2
    cuts = np.concatenate((rng.choice(after_attr, min(k, after_attr.size), replace=False)
                           if after_attr.size else np.zeros(0, np.int64),
                           rng.integers(1, ev.size + 1, n_cuts - min(k, after_attr.size))))
    window = np.concatenate((np.ones(min(k, after_attr.size), bool),
                             np.zeros(n_cuts - min(k, after_attr.size), bool)))
    order = np.argsort(cuts, kind="stable")
    cuts, window = cuts[order], window[order]
    chosen = get_strategies(strategies)
    built = {s.name: s.tracker_cls(int(workload.max_pfn)) for s in chosen}
    truth = normalize([], [])
    pos, rows = 0, []
    for cut, win in zip(cuts.tolist(), window.tolist()):     # one step per cut
        chunk = ev[pos:cut]
        for t in built.values():
            t.apply(chunk)
        sc = chunk[(chunk["op"] == SEAMCALL_PRIVATE) | (chunk["op"] == SEAMCALL_RECLAIM)]
        brk = np.flatnonzero(np.diff(sc["op"].astype(np.int64))) + 1
        for part in np.split(sc, brk):                       # one step per run of op
            if part.size:
                ext = normalize(part["pfn_start"], part["pfn_end"])
                truth = (union(truth, ext) if part["op"][0] == SEAMCALL_PRIVATE
                         else subtract(truth, ext))
        pos = cut
        lists = {"pamt": _pamt_so_far(ev[:cut])}       # what the kernel lists so far
        for s in chosen:
            found = union(from_tracker(built[s.name]), *(lists[k] for k in s.also_resets))
            rows.append({"cut": cut, "window": win, "strategy": s.name,
                         "private_pages": count(truth),
                         "missed": count(truth) - overlap_pages(truth, found)})
    df = pd.DataFrame(rows)
    df.attrs["provenance"] = "emulated: trackers fed the event stream up to each cut"
    return df


def _pamt_so_far(ev):
    m = (ev["op"] == SEAMCALL_PRIVATE) & (ev["kind"] == KIND_PAMT)
    return normalize(ev["pfn_start"][m], ev["pfn_end"][m])


def failed_reclaim(strategies=None) -> pd.DataFrame:
    """A page whose reclaim failed is leaked and stays private: who finds it.

    Modeled from each strategy's ``finds("leaked")``: SEAMCALL hooks unmark
    only after a successful clear, so hooked trackers still hold the page;
    KVM's attributes no longer name it (the GFN is shared or the TD gone).
    """
    rows = []
    for s in get_strategies(strategies):
        allowed = s.allowed(_IDLE, crash=False)
        finds = bool(allowed and s.finds("leaked"))
        rows.append({"strategy": s.name, "kexec_allowed": allowed, "finds_leaked": finds,
                     "leaked_missed": int(allowed and not finds)})
    return pd.DataFrame(rows)


class _HostView:
    """The host facts a strategy's ``allowed()`` reads."""

    def __init__(self, tds_running: int):
        self.tds_running = tds_running


_RUNNING_TD = _HostView(1)     # conversions in flight: a TD runs
_IDLE = _HostView(0)           # after the TD that leaked the page is gone


def chunk_sizes(workload) -> np.ndarray:
    """GFN counts of a workload's private->shared conversions: what
    ``race(workload=w)`` samples, so ``race(chunk_pages=chunk_sizes(w))`` is
    the same table (a race task gets these, not the workload)."""
    sizes = [b["gfn_end"][b["op"] == KVM_SET_ATTR_SHARED] - b["gfn_start"][b["op"] == KVM_SET_ATTR_SHARED]
             for b in event_batches(workload)]
    sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    return sizes[sizes > 0]
