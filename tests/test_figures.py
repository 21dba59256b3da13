"""The design-review figures (trackers.report.figures) drawn from hand-made tables.

The tables have exactly the columns the report writes (trackers/report/steps.py
and the column contracts of trackers/kexec/sensitivity.py: sensitivity,
tornado, race with P(miss) and its interval, kexec with a downtime range), with
the strategy names of trackers.kexec.STRATEGIES, so the figures are tested
without running a report.  Facts asserted: what each
figure draws (lines, bars, bands, labels, panels), never pixels or timings.
"""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402

from trackers.report import figures  # noqa: E402
from trackers.report.figures import (bits_per_page, downtime_vs_cpus, kexec_downtime,  # noqa: E402
                                     memory_vs_host, missed_pages, select, style, tornado)

STRATEGIES = ["bitmap", "xarray", "xarray-multi", "ida", "roaring", "maple", "pageflags",
              "kvm-attr", "kvm-sept", "pte-softbit", "refuse-6.18", "refuse-while-td",
              "clear-all", "mainline-7.2", "dpamt-refcount", "gmem-maple"]
REFUSED = {"refuse-6.18", "refuse-while-td"}
MISSING_PAGES = {"kvm-attr": 1337, "kvm-sept": 0}
CPUS = [1, 2, 4, 8, 16, 32, 64, "all"]
#: platform -> (CPUs, one-CPU clear B/s, all-CPU clear B/s, one-CPU read B/s, all read, kind)
PLATFORMS = {"spr-2s": (224, 13.7e9, 460.5e9, 10e9, 491.2e9, "estimate"),
             "this-machine": (2, 7.5e9, 15e9, 10e9, 20e9, "measured")}
#: scenario -> (RAM bytes, private bytes)
SCENARIOS = {"1tib-4td": (1 << 40, 860 << 30), "16tib-dense": (16 << 40, 15 << 40)}
#: strategy -> (scanned bytes per private GiB, dependent loads per private GiB)
SCAN = {"bitmap": (32 << 10, 0), "xarray": (2 << 20, 600), "xarray-multi": (40 << 10, 30),
        "ida": (36 << 10, 8), "roaring": (8 << 10, 2), "maple": (4 << 10, 4),
        "pageflags": (16 << 20, 0), "kvm-attr": (2 << 20, 900), "kvm-sept": (2 << 20, 2600),
        "pte-softbit": (1 << 20, 300), "clear-all": (0, 0), "mainline-7.2": (0, 0),
        "dpamt-refcount": (2 << 10, 0), "gmem-maple": (5 << 10, 6)}
SYS_DISABLE_BPS = (1e9, 13.7e9, 50e9)        # the module's rate: low, base, high


def _downtime(strategy, scenario, platform, cpus, *, clear_scale=1.0, rate_scale=1.0,
              latency_s=110e-9, sys_disable_bps=SYS_DISABLE_BPS[1]):
    """A toy of the kexec model with its shape: scan / min(k * core, all) +
    loads * latency / k + clear / min(k * core, all); TDH.SYS.DISABLE at its
    own rate whatever the CPUs.  Returns (scan_s, clear_s)."""
    total, core_c, all_c, core_r, all_r, _ = PLATFORMS[platform]
    ram, private = SCENARIOS[scenario]
    k = total if cpus == "all" else min(int(cpus), total)
    gib = private / (1 << 30)
    per_b, per_loads = SCAN[strategy]
    scan = per_b * gib / min(k * core_r * rate_scale, all_r) + per_loads * gib * latency_s / k
    reset = ram if strategy == "clear-all" else private
    clear_bps = min(k * core_c * clear_scale, all_c)
    if strategy == "mainline-7.2":
        return 0.0, private / sys_disable_bps
    return scan, reset / clear_bps


def sensitivity_table() -> pd.DataFrame:
    rows = []
    for sc in SCENARIOS:
        for plat, (total, *_rest) in PLATFORMS.items():
            for cpus in CPUS:
                if cpus != "all" and cpus > total:
                    continue
                for s in STRATEGIES:
                    if s in REFUSED:
                        continue
                    scan, clear = _downtime(s, sc, plat, cpus)
                    lo = sum(_downtime(s, sc, plat, cpus, clear_scale=1.5, rate_scale=1.5,
                                       latency_s=80e-9, sys_disable_bps=SYS_DISABLE_BPS[2]))
                    hi = sum(_downtime(s, sc, plat, cpus, clear_scale=0.6, rate_scale=0.6,
                                       latency_s=150e-9, sys_disable_bps=SYS_DISABLE_BPS[0]))
                    rows.append({"strategy": s, "scenario": sc, "platform": plat,
                                 "cpus_at_reset": cpus, "downtime_s": scan + clear,
                                 "downtime_low_s": lo, "downtime_high_s": hi, "scan_s": scan,
                                 "clear_s": clear, "kind": "modeled"})
    df = pd.DataFrame(rows)
    df["rank"] = (df.groupby(["scenario", "platform", "cpus_at_reset"])["downtime_s"]
                  .rank(method="first").astype(int))
    return df[["strategy", "scenario", "platform", "cpus_at_reset", "downtime_s",
               "downtime_low_s", "downtime_high_s", "scan_s", "clear_s", "rank", "kind"]]


TORNADO_PARAMS = {   # param -> (low, base, high, source, toy keyword, its values)
    "clear_bps_core": (7.5e9, 13.7e9, 20e9, "ASSUMED: rep stosq stand-in for MOVDIR64B"),
    "load_latency_s": (80e-9, 110e-9, 150e-9, "ASSUMED: 2S Xeon DRAM load-to-use"),
    "sys_disable_bps": (*SYS_DISABLE_BPS, "ASSUMED: no published TDH.SYS.DISABLE rate"),
}


def tornado_table() -> pd.DataFrame:
    rows = []
    for s in STRATEGIES:
        if s in REFUSED:
            continue
        base = sum(_downtime(s, "1tib-4td", "spr-2s", 1))
        for param, (lo, mid, hi, src) in TORNADO_PARAMS.items():
            if param == "sys_disable_bps" and s != "mainline-7.2":
                continue
            kw = {"clear_bps_core": lambda v: {"clear_scale": v / mid},
                  "load_latency_s": lambda v: {"latency_s": v},
                  "sys_disable_bps": lambda v: {"sys_disable_bps": v}}[param]
            rows.append({"strategy": s, "scenario": "1tib-4td", "platform": "spr-2s",
                         "cpus_at_reset": 1, "param": param, "source": src,
                         "value_low": lo, "value_base": mid, "value_high": hi,
                         "downtime_base_s": base,
                         "downtime_at_low_s": sum(_downtime(s, "1tib-4td", "spr-2s", 1,
                                                            **kw(lo))),
                         "downtime_at_high_s": sum(_downtime(s, "1tib-4td", "spr-2s", 1,
                                                             **kw(hi)))})
    return pd.DataFrame(rows)


def kexec_table() -> pd.DataFrame:
    rows = []
    for sc, (ram, private) in SCENARIOS.items():
        for plat, (total, *_r, kind) in PLATFORMS.items():
            for s in STRATEGIES:
                allowed = s not in REFUSED
                scan, clear = _downtime(s, sc, plat, 1) if allowed else (math.nan, math.nan)
                lo = (sum(_downtime(s, sc, plat, 1, clear_scale=1.5, rate_scale=1.5))
                      if allowed else math.nan)
                hi = (sum(_downtime(s, sc, plat, 1, clear_scale=0.6, rate_scale=0.6,
                                    sys_disable_bps=SYS_DISABLE_BPS[0])) if allowed else math.nan)
                measured = scan * 1.3 if plat == "this-machine" and scan > 0 else math.nan
                rows.append({"strategy": s, "option": f"option of {s}", "kexec_allowed": allowed,
                             "added_bytes": 0, "pages_missed": MISSING_PAGES.get(s, 0),
                             "scan_s": scan, "clear_s": clear, "downtime_s": scan + clear,
                             "downtime_low_s": lo if allowed else math.nan,
                             "downtime_high_s": hi if allowed else math.nan,
                             "scan_measured_s": measured,
                             "scan_measured_min_s": measured * 0.9,
                             "scan_measured_max_s": measured * 1.2,
                             "scan_runs": 5 if measured > 0 else 0,
                             "ram_pages": ram // 4096, "private_pages": private // 4096,
                             "scenario": sc, "platform_name": plat, "platform_kind": kind,
                             "platform_cpus": 1})
    return pd.DataFrame(rows)


def wilson(k: np.ndarray, n: int, z: float = 1.96):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def race_table(crash_differs: bool = False, n: int = 20000) -> pd.DataFrame:
    rows = []
    rates = [1, 4, 16, 64, 256, 1024, 4096]
    window = {"kvm-attr": 4e-4, "kvm-sept": 2e-5}          # s of exposure per MiB/s
    for plat, (*_r, kind) in PLATFORMS.items():
        for level, scale in (("low", 0.5), ("base", 1.0), ("high", 2.0)):
            for crash in ("normal", "crash"):
                for s in STRATEGIES:
                    for rate in rates:
                        w = window.get(s, 0.0) * scale
                        if crash == "normal" and crash_differs:
                            w /= 8
                        p = 1 - math.exp(-rate * w)
                        k = round(p * n)
                        lo, hi = wilson(np.array(k, float), n)
                        rows.append({"strategy": s, "kexec": crash, "rate_mib_s": rate,
                                     "kexec_allowed": s not in REFUSED,
                                     "missed_mean": rate * w * 512,
                                     "missed_expected": rate * w * 512,
                                     "missed_mean_low": rate * w * 500,
                                     "missed_mean_high": rate * w * 524,
                                     "p_miss": k / n, "p_miss_low": float(lo),
                                     "p_miss_high": float(hi), "n_kexec": n,
                                     "seamcall_cost": level, "platform_name": plat,
                                     "platform_kind": kind, "kind": "modeled"})
    return pd.DataFrame(rows)


def memory_table() -> pd.DataFrame:
    rows = []
    hosts = [1 << 24, 1 << 26, 1 << 28, 1 << 30, 1 << 32]
    per_page = {"bitmap": 1 / 8, "xarray": 1.3, "xarray-multi": 0.1, "ida": 1 / 8 + 0.001,
                "roaring": 0.01, "maple": 0.004, "pageflags": 0, "kvm-attr": 0,
                "kvm-sept": 0, "pte-softbit": 1.3, "dpamt-refcount": 4 / 512,
                "gmem-maple": 0.005}
    for h in hosts:
        for s, b in per_page.items():
            private = int(h * 0.61)
            nbytes = (h if s in ("bitmap", "ida", "dpamt-refcount") else private) * b
            nr = s == "ida" and h > 1 << 31
            rows.append({"tracker": s, "option": s, "host_pfns": h, "host_bytes": h * 4096,
                         "host": f"{h * 4096 >> 30} GiB", "set": "reference-1pct",
                         "private_pages": private, "extents": private // 512,
                         "modeled_bytes": math.nan if nr else nbytes,
                         "added_bytes": math.nan if nr else nbytes,
                         "bits_per_private_page": math.nan if nr else nbytes * 8 / private,
                         "kind": "modeled",
                         "not_representable": ("IDA: not representable above 8 TiB "
                                               "(ids <= INT_MAX)") if nr else "",
                         "representable_max_pfns": 1 << 31 if nr else math.nan})
    return pd.DataFrame(rows)


def bits_table() -> pd.DataFrame:
    rows = []
    n_host = 1 << 24
    for f in (0.001, 0.01, 0.1, 0.5, 0.9):
        pages = int(n_host * f)
        for s, fixed, per in (("bitmap", n_host / 8, 0), ("xarray", 0, 1.3),
                              ("ida", n_host / 8, 0.001), ("maple", 0, 0.004),
                              ("pageflags", 0, 0), ("kvm-attr", 0, 0.3)):
            nbytes = fixed + per * pages
            rows.append({"tracker": s, "host_pfns": n_host, "host": "64 GiB",
                         "target_fraction": f, "private_fraction": f, "private_pages": pages,
                         "extents": pages // 512, "modeled_bytes": nbytes,
                         "bits_per_private_page": nbytes * 8 / pages,
                         "bound_bits_per_page": 1.44 * -math.log2(f) + 1,
                         "run_bound_bits_per_page": 0.1 * -math.log2(f) + 0.01,
                         "kind": "modeled", "not_representable": "",
                         "representable_max_pfns": math.nan})
    return pd.DataFrame(rows)


def synthetic_tables() -> dict[str, pd.DataFrame]:
    return {"memory_vs_host": memory_table(), "bits_per_page": bits_table(),
            "kexec": kexec_table(), "sensitivity": sensitivity_table(),
            "tornado": tornado_table(), "race": race_table()}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts] + [ax.get_title()]
        leg = ax.get_legend()
        if leg:
            out += [t.get_text() for t in leg.get_texts()]
    for leg in fig.legends:
        out += [t.get_text() for t in leg.get_texts()] + [leg.get_title().get_text()]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return out


# ---------------------------------------------------------------------------
# every figure, from every table, and from what an older or --quick report lacks

def test_every_figure_draws_from_the_contract_tables_read_back_from_csv(tmp_path):
    tables = {}
    for name, df in synthetic_tables().items():        # empty text cells read back as NaN
        df.to_csv(tmp_path / f"{name}.csv", index=False)
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv")
    for name, spec in figures.FIGURES.items():
        if spec.table not in tables:
            continue
        fig = spec.render(tables)
        text = " ".join(_texts(fig))
        assert "no " + spec.table not in text and "lacks the column" not in text, name
        assert "modeled" in text or "measured" in text, name
        plt.close(fig)


#: per table, columns an older or --quick report may lack: one the figure
#: needs (it says so instead) and ones it draws without (it leaves a part out)
DROPPED = {"memory_vs_host": ["added_bytes", "set", "host_pfns"],
           "bits_per_page": ["private_fraction", "bound_bits_per_page", "not_representable"],
           "kexec": ["scan_s", "downtime_high_s", "platform_cpus", "scan_measured_max_s"],
           "sensitivity": ["cpus_at_reset", "downtime_low_s", "rank"],
           "tornado": ["param", "source", "cpus_at_reset"],
           "race": ["rate_mib_s", "p_miss_high", "seamcall_cost", "n_kexec"]}


def small(df: pd.DataFrame) -> pd.DataFrame:
    """Four options (a tracker, a module reset, one that misses, one refused) of
    the first scenario: what the robustness tests need, drawn fast."""
    col = "tracker" if "tracker" in df else "strategy"
    keep = df[df[col].isin(["bitmap", "mainline-7.2", "kvm-attr", "refuse-6.18"])]
    return keep[keep["scenario"] == "1tib-4td"] if "scenario" in keep else keep


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_a_missing_table_or_column_is_a_note_not_a_crash(name):
    spec = figures.FIGURES[name]
    fig = spec.render({})                               # no table at all
    assert any("no " in t for t in _texts(fig))
    tables = {k: small(v) for k, v in synthetic_tables().items()}
    table = tables.get(spec.table)
    if table is None:
        return
    needed, *optional = DROPPED[spec.table]
    fig = spec.render({**tables, spec.table: table.drop(columns=[needed])})
    assert any(f"lacks the column(s) {needed}" in t for t in _texts(fig))
    for col in optional:
        fig = spec.render({**tables, spec.table: table.drop(columns=[col])})
        assert not any("lacks the column" in t for t in _texts(fig)), col
        plt.close("all")


# ---------------------------------------------------------------------------
# each figure's data, selected apart from its drawing

def test_memory_frame_names_lines_zero_options_and_where_a_line_stops():
    f = memory_vs_host.frame(memory_table())
    assert set(f["layer"]) == {"line", "limit", "zero", "pamt"}
    assert list(dict.fromkeys(f.loc[f["layer"] == "zero", "tracker"])) == [
        "pageflags", "kvm-attr", "kvm-sept"]
    labels = dict(zip(f.loc[f["layer"] == "line", "tracker"], f.loc[f["layer"] == "line", "label"]))
    assert labels["ida"] == "ida (= bitmap)" and labels["pte-softbit"] == "pte-softbit (= xarray)"
    ((tracker, host_bytes),) = f.loc[f["layer"] == "limit", ["tracker", "host_bytes"]].to_numpy()
    assert (tracker, host_bytes) == ("ida", (1 << 31) * 4096)         # ids <= INT_MAX


def test_bits_frame_draws_or_says_why_for_every_option():
    f = bits_per_page.frame(bits_table())
    drawn = list(dict.fromkeys(f.loc[f["why"] == "", "line"]))
    assert drawn == ["bitmap", "xarray", "ida", "maple", "kvm-attr",
                     "bound_bits_per_page", "run_bound_bits_per_page"]
    why = dict(zip(f["line"], f["why"]))
    assert set(why) == set(style.ORDER) | set(bits_per_page.BOUNDS)
    assert why["pageflags"] == "0 bits: no structure of its own (a bit in one the kernel keeps)"


def test_kexec_downtime_frame_holds_each_cpu_count_and_why_not():
    t = synthetic_tables()
    f = kexec_downtime.frame(t["kexec"], t["sensitivity"])
    assert list(f.columns) == kexec_downtime.COLUMNS
    bitmap = f[(f["scenario"] == "1tib-4td") & (f["strategy"] == "bitmap")
               & (f["part"] == "downtime_s")]
    assert list(bitmap["sweep"]) == ["base", "8", "32", "all"]
    assert list(bitmap["cpus"]) == [1, 8, 32, 224]
    refused = f[f["status"] != "drawn"]
    assert set(refused["strategy"]) == REFUSED
    assert set(refused["status"]) == {"kexec refused: no downtime"}


def test_downtime_vs_cpus_frame_groups_options_and_finds_the_fastest():
    t = synthetic_tables()
    f = downtime_vs_cpus.frame(t["sensitivity"], t["kexec"])
    assert list(f.columns) == downtime_vs_cpus.COLUMNS
    p = f[(f["scenario"] == "1tib-4td") & (f["platform"] == "spr-2s")]
    lines = p[p["mark"] == "line"].drop_duplicates("name")
    assert list(lines["name"]) == ["mainline-7.2", "bitmap", "kvm-attr", "clear-all"]
    assert lines.set_index("name").loc["bitmap", "members"] == (
                                        "bitmap, xarray, xarray-multi, ida, roaring, maple, "
                                        "pageflags, kvm-sept, gmem-maple, pte-softbit, "
                                        "dpamt-refcount")
    assert list(lines["unsafe"]) == [False, False, True, False]
    fastest = p[p["mark"] == "fastest"]
    assert fastest[["previous", "name", "lo_cpus", "hi_cpus"]].values.tolist() == [
        ["mainline-7.2", "bitmap", 1, 2]]
    assert f.attrs["refused"] == {"refuse-6.18": [], "refuse-while-td": []}


def test_tornado_frame_sorts_each_panel_by_swing():
    t = tornado_table()
    t.loc[t["strategy"] == "maple", "downtime_base_s"] = 0.0      # as if it refused kexec
    f = tornado.frame(t)
    assert list(f.columns) == tornado.COLUMNS
    assert list(dict.fromkeys(f["name"])) == ["mainline-7.2", "bitmap", "pageflags", "clear-all"]
    assert list(f.loc[f["name"] == "mainline-7.2", "param"]) == [
        "sys_disable_bps", "clear_bps_core", "load_latency_s"]
    assert f.attrs["without"] == ["maple"]


def test_missed_pages_frame_says_who_misses_who_never_does_who_refuses():
    f = missed_pages.frame(race_table())
    assert list(f.columns) == missed_pages.COLUMNS
    status = f.groupby("status")["strategy"].unique()
    assert set(status["drawn"]) == set(MISSING_PAGES)
    assert set(status["refused"]) == REFUSED
    assert set(status["never"]) == set(STRATEGIES) - set(MISSING_PAGES) - REFUSED
    assert set(f["kexec"]) == {"crash"}             # normal kexec: the same within intervals


# ---------------------------------------------------------------------------
# styles

def test_every_registered_option_has_its_own_style():
    styles = [(style.style_for(n)["ls"], style.style_for(n)["marker"], style.color_for(n))
              for n in style.ORDER]
    assert len(set(styles)) == len(styles)
    assert style.style_for("a-name-not-registered") == style.style_for("a-name-not-registered")


# ---------------------------------------------------------------------------
# memory_vs_host

def test_memory_lines_are_named_at_their_end_with_distinct_styles():
    df = memory_table()
    fig = memory_vs_host.figure(df, scan_time=pd.DataFrame({"set": ["reference"]}))
    ax = fig.axes[0]
    drawn = {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}
    assert {"xarray", "pte-softbit", "bitmap", "ida"} <= set(drawn)
    for a, b in (("xarray", "pte-softbit"), ("bitmap", "ida")):
        assert ((drawn[a].get_linestyle(), drawn[a].get_marker())
                != (drawn[b].get_linestyle(), drawn[b].get_marker()))
    ends = {t.get_text() for t in fig.texts}
    added = set(df.loc[df["added_bytes"] > 0, "tracker"]) - {"pte-softbit", "ida"}
    assert added <= ends
    # lines that lie on another are named with it
    assert {"pte-softbit (= xarray)", "ida (= bitmap)"} <= ends
    # the notes on the axes are the not-representable mark alone
    assert [t.get_text() for t in ax.texts] == [
        "IDA: not representable above 8 TiB (ids <= INT_MAX)"]
    title = ax.get_title()
    assert "'reference-1pct'" in title and "the scan figure uses 'reference'" in title
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "add 0 B" in legend and "pageflags" in legend and "kvm-attr" in legend


def test_memory_axes_end_near_the_data():
    df = memory_table()
    ax = memory_vs_host.figure(df).axes[0]
    lo, hi = ax.get_xlim()
    assert hi == pytest.approx(df["host_bytes"].max() * 1.25)
    assert lo == pytest.approx(df["host_bytes"].min() / 1.25)


def test_memory_overlay_rows_go_to_their_hook_not_the_lines(monkeypatch):
    df = memory_table()
    extra = df[df["host_pfns"] == 1 << 28].assign(overlay="sparse-host", host="R7625",
                                                  host_bytes=7.1e12)
    seen = []

    def sparse(ax, rows):
        seen.append(sorted(rows["tracker"]))
        return "Sparse host: marked."
    monkeypatch.setitem(memory_vs_host.MEMORY_OVERLAYS, "sparse-host", sparse)
    fig = memory_vs_host.figure(pd.concat([df.assign(overlay=""), extra]))
    assert seen == [sorted(extra["tracker"])]
    bitmap = next(ln for ln in fig.axes[0].lines if ln.get_label() == "bitmap")
    assert 7.1e12 not in list(bitmap.get_xdata())
    assert any("Sparse host: marked." in t.get_text() for t in fig.texts)
    monkeypatch.delitem(memory_vs_host.MEMORY_OVERLAYS, "sparse-host")
    fig = memory_vs_host.figure(pd.concat([df.assign(overlay=""), extra]))
    assert any("sparse-host host(s) (R7625)" in t.get_text() for t in fig.texts)


# ---------------------------------------------------------------------------
# bits_per_page

def test_bits_per_page_draws_or_names_every_registered_option():
    df = bits_table()
    fig = bits_per_page.figure(df)
    lines = {ln.get_label() for ln in fig.axes[0].lines}
    note = next(t.get_text() for t in fig.texts if t.get_text().startswith("Not drawn"))
    for name in style.ordered(list(style.ORDER) + list(df["tracker"])):
        assert name in lines or f"\n  {name}: " in note, name
    assert "pageflags: 0 bits" in note
    assert "mainline-7.2: no per-page structure: not in this table (7: mainline since 7.2" in note


def test_bits_per_page_names_a_structure_that_cannot_hold_the_set():
    df = bits_table()
    df.loc[df["tracker"] == "ida", ["modeled_bytes", "bits_per_private_page"]] = math.nan
    df.loc[df["tracker"] == "ida", "not_representable"] = "IDA: not representable above 8 TiB"
    fig = bits_per_page.figure(df)
    note = next(t.get_text() for t in fig.texts if t.get_text().startswith("Not drawn"))
    assert "ida: IDA: not representable above 8 TiB" in note


# ---------------------------------------------------------------------------
# kexec_downtime

def test_kexec_downtime_shows_the_scans_on_a_log_axis_and_the_cpu_sweep():
    tables = synthetic_tables()
    fig = figures.FIGURES["kexec_downtime"].render(tables)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 4                                  # 2 scenarios x (scan, downtime)
    scan_ax, down_ax = axes[0], axes[1]
    assert scan_ax.get_xscale() == "log" and down_ax.get_xscale() == "log"
    assert "scan" in scan_ax.get_xlabel() and "modeled" in scan_ax.get_xlabel()
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "8 CPUs" in legend and "32 CPUs" in legend and "all 224 CPUs" in legend
    # the axis ends near the data: the largest scan on spr-2s, 1tib-4td
    s = tables["sensitivity"]
    scans = s[(s["platform"] == "spr-2s") & (s["scenario"] == "1tib-4td") & (s["scan_s"] > 0)]
    assert scan_ax.get_xlim()[1] == pytest.approx(scans["scan_s"].max() * 1.4)
    assert scan_ax.get_xlim()[0] == pytest.approx(scans["scan_s"].min() / 1.5)
    notes = [t.get_text() for t in scan_ax.texts]
    assert notes.count("no scan (0 s)") == 2             # clear-all, mainline-7.2
    assert notes.count("kexec refused: no downtime") == 2
    rows = [t.get_text() for t in down_ax.texts]
    assert "67.4 s → 67.4 s (all 224)" in rows             # mainline-7.2: the module's rate
    assert "67.4 s → 2.01 s (all 224)" in rows             # bitmap: the clear spreads
    assert any("MISSES 1,337 pages" in t for t in rows)
    bars = [c for c in down_ax.containers if isinstance(c, ErrorbarContainer) and c.has_xerr]
    assert len(bars) == len(STRATEGIES) - len(REFUSED)   # the ASSUMED-rate range


def test_kexec_downtime_on_this_machine_draws_the_measured_scans_with_bars():
    tables = synthetic_tables()
    fig = kexec_downtime.figure(tables["kexec"], tables["sensitivity"], platform="this-machine",
                                 scenarios=["1tib-4td"])
    scan_ax = fig.axes[0]
    measured = [c for c in scan_ax.containers if isinstance(c, ErrorbarContainer)
                and c.lines[0].get_marker() == "D"]
    k = tables["kexec"]
    n = ((k["platform_name"] == "this-machine") & (k["scenario"] == "1tib-4td")
         & (k["scan_measured_s"] > 0)).sum()
    assert len(measured) == n > 0
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "measured scan on this machine (median, bar min-max)" in legend


def test_kexec_downtime_without_the_sensitivity_table_says_so():
    fig = kexec_downtime.figure(small(kexec_table()))
    assert any("needs the sensitivity table" in t for t in _texts(fig))


# ---------------------------------------------------------------------------
# downtime_vs_cpus

def test_crossings_are_interpolated_on_log_axes():
    a = pd.DataFrame({"y": [1.0, 4.0]}, index=[1.0, 4.0])
    b = pd.DataFrame({"y": [4.0, 1.0]}, index=[1.0, 4.0])
    ((x, y, na, nb),) = style.crossings({"a": a, "b": b})
    assert (na, nb) == ("a", "b")
    assert x == pytest.approx(2.0) and y == pytest.approx(2.0)
    tie = pd.DataFrame({"y": [1.0, 1.005]}, index=[1.0, 4.0])
    assert style.crossings({"a": pd.DataFrame({"y": [1.004, 1.0]}, index=[1.0, 4.0]),
                               "t": tie}) == []


def test_downtime_vs_cpus_marks_where_the_fastest_changes():
    tables = synthetic_tables()
    fig = figures.FIGURES["downtime_vs_cpus"].render(tables)
    panels = [a for a in fig.axes if a.get_visible() and a.lines]
    # 2 scenarios on spr-2s; this machine's panels only where they draw a measured scan
    assert [a.get_title() for a in panels] == ["1tib-4td on spr-2s [modeled]",
                                               "16tib-dense on spr-2s [modeled]"]
    ax = panels[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "all\n224"
    notes = [t.get_text() for t in ax.texts]
    # mainline-7.2 does not speed up with CPUs: it leads at 1 CPU, then the
    # trackers do (one line: within 3 % of each other, the clear dominates)
    assert notes == ["fastest: mainline-7.2 →\nbitmap (+10 within 3%), between 1 and 2 CPUs"]
    drawn = [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")]
    assert drawn == ["mainline-7.2", "bitmap", "kvm-attr", "clear-all"]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[1].startswith("bitmap, xarray, xarray-multi") and "(within 3%)" in legend[1]
    assert "kvm-attr (misses pages)" in legend    # not merged with the safe ones
    assert legend[-1] == "refuse kexec (no downtime):\n  refuse-6.18\n  refuse-while-td"
    caption = " ".join(t.get_text() for t in fig.texts)
    assert ("1tib-4td on spr-2s: mainline-7.2 → bitmap (+10 within 3%) between 1 and 2 CPUs"
            in caption)


def _legend_entries(fig) -> list[str]:
    """Every legend entry of the figure: its own legends and its axes'."""
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend()]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_no_legend_entry_repeats_within_a_figure(name):
    tables = synthetic_tables()
    s = tables["sensitivity"]
    here = (s["platform"] == "this-machine") & (s["scenario"] == "1tib-4td")
    tables["sensitivity"] = s.assign(scan_measured_s=s["scan_s"].where(here) * 1.3,
                                     scan_measured_note="measured: sharded scan (bitmap)")
    entries = _legend_entries(figures.FIGURES[name].render(tables))
    assert len(entries) == len(set(entries)), entries


def test_downtime_vs_cpus_names_each_group_of_options_once():
    """Groups that differ between panels (an option joins a line on one scenario
    only) are named once in the figure's legend; a panel names only what its
    line holds beyond it."""
    s = sensitivity_table()
    # on 16tib-dense, maple is 10 % slower: it leaves the trackers' line there
    s.loc[(s["strategy"] == "maple") & (s["scenario"] == "16tib-dense"),
          ["downtime_s", "downtime_low_s", "downtime_high_s"]] *= 1.1
    fig = downtime_vs_cpus.figure(s, kexec_table())
    entries = _legend_entries(fig)
    lines = [e for e in entries if "within" in e or e in STRATEGIES or "misses" in e]
    named = [n for e in lines for n in e.replace("\n", " ").replace(",", " ").split()
             if n in STRATEGIES]
    assert len(named) == len(set(named)), lines             # each option in one entry
    assert "maple" in entries                               # its own line, named once
    titles = [a.get_title() for a in fig.axes if a.get_visible() and a.lines]
    assert titles == ["1tib-4td on spr-2s [modeled]\nhere bitmap's line also holds: maple",
                      "16tib-dense on spr-2s [modeled]"]


def test_this_machine_panels_appear_only_with_measured_scans():
    tables = synthetic_tables()
    s = tables["sensitivity"]

    def titles(sens):
        fig = downtime_vs_cpus.figure(sens, tables["kexec"])
        return [a.get_title().split("\n")[0] for a in fig.axes if a.get_visible()]
    assert not [t for t in titles(s) if "this-machine" in t]
    here = (s["platform"] == "this-machine") & (s["scenario"] == "16tib-dense")
    measured = s.assign(scan_measured_s=s["scan_s"].where(here & (s["strategy"] == "bitmap")),
                        scan_measured_note="measured: sharded scan (bitmap)")
    assert titles(measured) == ["1tib-4td on spr-2s [modeled]",
                                "16tib-dense on spr-2s [modeled]",
                                "16tib-dense on this-machine [modeled; scan part measured]"]
    # asked for by name, this machine's panels are drawn without a measured scan
    fig = downtime_vs_cpus.figure(s, tables["kexec"], platforms=["this-machine"])
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [
        "1tib-4td on this-machine [modeled]", "16tib-dense on this-machine [modeled]"]


def test_downtime_vs_cpus_reads_all_as_the_platform_cpus():
    s = sensitivity_table()
    s["platform_cpus_total"] = s["platform"].map({p: v[0] for p, v in PLATFORMS.items()})
    cpus, total = select.cpu_numbers(s[s["platform"] == "spr-2s"])
    assert total == 224 and cpus.max() == 224
    numeric = s.copy()
    numeric["cpus_at_reset"] = pd.to_numeric(numeric["cpus_at_reset"], errors="coerce").fillna(
        numeric["platform_cpus_total"]).astype(int)
    fig = downtime_vs_cpus.figure(small(numeric), platforms=["spr-2s"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][-1] == "all\n224"


# ---------------------------------------------------------------------------
# tornado

def test_tornado_draws_one_panel_per_option_with_a_bar_per_parameter():
    t = tornado_table()
    fig = tornado.figure(t)
    panels = [a for a in fig.axes if a.axison]
    heads = [a.get_title().split(",")[0].split(" (")[0].split("\n")[0] for a in panels]
    # options whose bars agree within 3 % share a panel, named in its title
    assert heads == ["mainline-7.2", "bitmap", "pageflags", "clear-all"]
    title = panels[heads.index("bitmap")].get_title().replace("\n", " ")
    assert "kvm-sept" in title and "(within 3%)" in title
    sd = panels[heads.index("mainline-7.2")]
    assert [x.get_text() for x in sd.get_yticklabels()][0] == "sys_disable_bps"  # widest swing
    bars = [c for c in sd.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and len(bars[0]) == 3                # low and high, 3 parameters
    assert {"1 GB/s", "50 GB/s"} <= {x.get_text() for x in sd.texts}
    assert {"7.5 GB/s", "20 GB/s"} <= {x.get_text() for x in panels[heads.index("bitmap")].texts}
    caption = " ".join(x.get_text() for x in fig.texts)
    assert "sys_disable_bps: ASSUMED: no published TDH.SYS.DISABLE rate" in caption


# ---------------------------------------------------------------------------
# missed_pages

def test_missed_pages_plots_p_miss_with_intervals_and_the_seamcall_band():
    race = race_table()
    fig = missed_pages.figure(race)
    panels = [a for a in fig.axes if a.lines]
    assert len(panels) == 1                         # normal and crash agree
    ax = panels[0]
    assert ax.get_ylabel().startswith("P(≥ 1 private page not reset)")
    assert "normal kexec: the same within the 95 % intervals" in ax.get_title()
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.has_yerr]
    assert len(bars) == 2                            # kvm-attr, kvm-sept
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "band: SEAMCALL costs" in legend and "95 % interval (Wilson)" in legend
    refused = legend.split("refuse kexec (nothing to miss):\n  ")[1].split("\n  ")
    assert sorted(refused) == sorted(REFUSED)
    assert "bitmap" in legend.split("miss no page")[1]


def test_missed_pages_splits_normal_and_crash_when_they_differ():
    fig = missed_pages.figure(race_table(crash_differs=True))
    titles = [a.get_title() for a in fig.axes if a.lines]
    assert titles == ["normal kexec (running steps finish first)",
                      "crash kexec (kdump: NMIs freeze every step)"]


def test_missed_pages_reads_a_race_table_of_the_previous_version():
    old = race_table()
    old = old[old["seamcall_cost"] == "base"].drop(
        columns=["seamcall_cost", "p_miss_low", "p_miss_high", "missed_mean_low",
                 "missed_mean_high"]).rename(columns={"p_miss": "p_missed"})
    fig = missed_pages.figure(old)
    ax = next(a for a in fig.axes if a.lines)
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert ax.get_ylabel().startswith("P(≥ 1")


def test_tornado_and_sweep_read_platform_name_as_the_kexec_table_spells_it():
    t = tornado_table().rename(columns={"platform": "platform_name"})
    fig = tornado.figure(t)
    assert "1tib-4td on spr-2s, 1 CPU at reset" in fig._suptitle.get_text()


def test_kexec_downtime_says_not_representable_instead_of_zero():
    k = small(kexec_table())
    ida = k[k["strategy"] == "bitmap"].assign(strategy="ida", scan_s=math.nan, clear_s=math.nan,
                                              downtime_s=math.nan, representable=False)
    fig = kexec_downtime.figure(pd.concat([k.assign(representable=True), ida]))
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert "not representable on this host" in notes and "no scan (0 s)" in notes
    assert notes.count("no scan (0 s)") == 1                  # mainline-7.2 only


# ---------------------------------------------------------------------------
# wait and validation: from the model's own tables

def test_wait_figure_draws_every_curve_and_says_where_they_cross():
    from trackers.kexec import wait as wait_model
    from trackers.report.figures import wait
    t = wait_model.wait_table("spr-2s", wait_model.TD_BYTES[::4])
    f = wait.frame(t)
    assert list(f.columns) == wait.COLUMNS
    assert set(f.attrs["reaches"]) == set(wait_model.CURVES)
    fig = wait.figure(t)
    ax = fig.axes[0]
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert [x.split(" (best")[0] for x in legend] == list(wait_model.CURVES)
    assert len(set(legend)) == len(legend)
    caption = " ".join(x.get_text() for x in fig.texts)
    assert "is faster than mainline at every size from 64 GiB to 16 TiB" in caption
    assert "Mainline waits 1 min already at 64 GiB of TD memory; 1 h from" in caption


def test_wait_figure_marks_a_crossover():
    from trackers.report.figures import wait
    x = [1 << 36, 1 << 38, 1 << 40]
    t = pd.DataFrame({"td_bytes": x * 2, "curve": ["mainline 7.2: TDH.SYS.DISABLE, 1 CPU"] * 3
                      + ["best tracker, 1 CPU"] * 3, "cpus": [1] * 6, "tracker": [""] * 6,
                      "wait_s": [1, 4, 16, 2, 3, 4], "wait_low_s": [0.5, 2, 8, 1, 1.5, 2],
                      "wait_high_s": [2, 8, 32, 4, 6, 8], "platform": "spr-2s"})
    fig = wait.figure(t)
    assert [ln.get_marker() for ln in fig.axes[0].lines].count("X") == 3
    assert "cross at" in " ".join(x.get_text() for x in fig.texts)


def test_validation_figure_has_a_row_per_publication_and_names_what_is_missing():
    import dataclasses

    from trackers.kexec import teardown
    from trackers.kexec.platform import PLATFORMS
    from trackers.report.figures import validation
    slow = dataclasses.replace(PLATFORMS["spr-2s"], vcpu_kick_s=1e-9)
    t = teardown.validation(slow, attr_store_s=(70e-9, 60e-9, 90e-9))
    f = validation.frame(t)
    assert list(f.columns) == validation.COLUMNS and len(f) == len(t)
    ax = validation.figure(t).axes[0]
    assert len(ax.get_yticklabels()) == len(t)
    notes = [x.get_text() for x in ax.texts]
    assert any(n.startswith("lacks: a per-page cost growing faster") for n in notes)
    assert f.attrs["predictions"] == 6
