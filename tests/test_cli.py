"""The command line: every command has --help, errors exit 2 with a message."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from trackers.__main__ import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_core_small(capsys):
    assert main(["bench-core", "--pfns", "65536", "--repeat", "1",
                 "--estimate-pfns", "1048576", "--trackers", "bitmap"]) == 0
    out = capsys.readouterr().out
    assert "[measured]" in out and "bitmap" in out


def test_unknown_tracker_is_a_clear_error(capsys):
    assert main(["bench-core", "--pfns", "65536", "--trackers", "btree"]) == 2
    assert "unknown tracker 'btree'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "trackers", "--help"],
                       capture_output=True, text=True, check=True)
    assert "tdx-trackers" in r.stdout


# --- every option checked before any work ------------------------------------

def _max_cpus():
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def _ram_mib():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20


IOMEM = str(Path(__file__).resolve().parent.parent / "trackers" / "data" / "memmaps"
            / "iomem-64g.txt")

WANT_SCHEDULER = ("want a Dask scheduler's address, tcp://HOST:PORT as `dask scheduler` "
                  "prints it (or tls://, ws://, wss://)")

PFNS_LIMIT = ("must be a multiple of 512 in [512, 1099511627776] "
              "(whole 2 MiB extents, up to 2^40 PFNs)")

#: (argv, the exact last line on stderr[, environment]); {file} is a regular
#: file, {dir} a directory, {dir}/x-race.csv a directory too.  One case per option.
BAD_OPTIONS = {
    "bench-core --repeat": (["bench-core", "--repeat", "0"],
                            "argument --repeat: must be in [1, 1000] (timed runs per figure), "
                            "got 0"),
    "bench-core --pfns": (["bench-core", "--pfns", "1000"],
                          f"argument --pfns: {PFNS_LIMIT}, got 1000"),
    "bench-core --estimate-pfns": (["bench-core", "--estimate-pfns", "0x10000000001"],
                                   f"argument --estimate-pfns: {PFNS_LIMIT}, got 0x10000000001"),
    "bench-core --repeat over": (["bench-core", "--repeat", "1001"],
                                 "argument --repeat: must be in [1, 1000] (timed runs per "
                                 "figure), got 1001"),
    "bench-core --maple-seeds": (["bench-core", "--maple-seeds", "99999999999999999999"],
                                 "argument --maple-seeds: must be in [1, 1000] (timed runs per "
                                 "figure), got 99999999999999999999"),
    "bench-core --conversions": (["bench-core", "--conversions", "1000001"],
                                 "argument --conversions: must be in [1, 1000000] (16 "
                                 "candidate pages drawn for each: 128 MB at the limit), got "
                                 "1000001"),
    "bench-core --timed-workers": (["bench-core", "--timed-workers", "{cores+1}"],
                                   "argument --timed-workers: must be in [1, {cores}] (this "
                                   "machine's cores), got {cores+1}"),
    "bench-core --seed": (["bench-core", "--seed", "-5"],
                          "argument --seed: must be >= 0, got -5"),
    "bench-core --trackers": (["bench-core", "--trackers"],
                              "argument --trackers: expected at least one argument"),
    "bench-core --trackers NAME": (["bench-core", "--trackers", "btree"],
                                   "tdx-trackers bench-core: error: unknown tracker 'btree'; "
                                   "known: {trackers}"),
    "bench-core --csv": (["bench-core", "--csv", "{file}/x.csv"],
                         "argument --csv: cannot write {file}/x.csv: {file} is a file, "
                         "not a directory"),
    "scenarios --seed": (["scenarios", "--seed", "-1"],
                         "argument --seed: must be >= 0, got -1"),
    "scenarios --only": (["scenarios", "--only", "nope"],
                         "argument --only: invalid choice: 'nope' (choose from {scenarios})"),
    "kexec SCENARIO": (["kexec", "nope"],
                       "argument SCENARIO: invalid choice: 'nope' (choose from {scenarios})"),
    "kexec --seed": (["kexec", "tiny", "--seed", "-5"],
                     "argument --seed: must be >= 0, got -5"),
    "kexec --platform": (["kexec", "tiny", "--platform", "nope"],
                         "argument --platform: invalid choice: 'nope' "
                         "(choose from 'this-machine', 'spr-2s')"),
    "kexec --cpus": (["kexec", "tiny", "--cpus", "-3"],
                     "argument --cpus: must be >= 1, got -3"),
    "kexec --cpus over the platform": (["kexec", "tiny", "--platform", "spr-2s", "--cpus", "225"],
                                       "tdx-trackers kexec: error: --cpus 225: must be in "
                                       "[1, 224] (the CPUs of platform spr-2s)"),
    "kexec --emulate-limit": (["kexec", "tiny", "--emulate-limit", "-1"],
                              "argument --emulate-limit: must be in [1, 1099511627776], got -1"),
    "kexec --emulate-limit with --no-emulate": (
        ["kexec", "tiny", "--no-emulate", "--emulate-limit", "0x1000"],
        "tdx-trackers kexec: error: --emulate-limit has no effect with --no-emulate: "
        "give one of them"),
    "kexec --out through a file": (["kexec", "tiny", "--out", "{file}/x.csv"],
                                   "argument --out: cannot write {file}/x.csv: {file} is a "
                                   "file, not a directory"),
    "kexec --out a directory": (["kexec", "tiny", "--out", "{dir}"],
                                "argument --out: cannot write {dir}: it is a directory"),
    "kexec --out with --race": (["kexec", "tiny", "--race", "--out", "{dir}/x.csv"],
                                "tdx-trackers kexec: error: --out {dir}/x.csv with --race: "
                                "cannot write {dir}/x-race.csv: it is a directory"),
    # the user's own host: kexec and report --memmap/--trace/--tds
    "kexec without a host": (["kexec"], "tdx-trackers kexec: error: give one host: a "
                                        "SCENARIO name or --memmap FILE"),
    "kexec SCENARIO and --memmap": (["kexec", "tiny", "--memmap", "{file}"],
                                    "tdx-trackers kexec: error: give one host: a SCENARIO "
                                    "name or --memmap FILE, not both"),
    "kexec SCENARIO a file": (["kexec", "{file}"],
                              "argument SCENARIO: '{file}' is a file, not a named scenario: "
                              "give your own host as --memmap {file}"),
    "kexec --memmap missing": (["kexec", "--memmap", "{dir}/nope"],
                               "argument --memmap: {dir}/nope: no such file or directory"),
    "kexec --memmap empty": (["kexec", "--memmap", "{file}"],
                             "tdx-trackers kexec: error: {file}: empty file: expected a boot "
                             "log with BIOS-e820 lines, a /proc/iomem dump or a "
                             "/sys/firmware/memmap directory"),
    "kexec --builds-at-once": (["kexec", "tiny", "--builds-at-once", "0"],
                               "argument --builds-at-once: must be in [1, 64] (structures "
                               "built at once), got 0"),
    "kexec --tds": (["kexec", "--memmap", IOMEM, "--tds", "8G:0"],
                    "tdx-trackers kexec: error: --tds '8G:0': TD 0 ('8G:0'): vCPUs '0' must "
                    "be an integer in [1, 4096] (KVM_MAX_VCPUS)"),
    "kexec --tds past the physical address space": (
        ["kexec", "--memmap", IOMEM, "--tds", "99999999999999999999G"],
        "tdx-trackers kexec: error: --tds '99999999999999999999G': TD 0 "
        "('99999999999999999999G'): guest memory 107,374,182,399,999,999,998,926,258,176 bytes "
        "is past the limit of 4,503,599,627,370,496 bytes (4 PiB: 2^40 PFNs, the physical "
        "address space the suite models, kernel.MAX_PHYS_PFN)"),
    "report --tds past the physical address space": (
        ["report", "--memmap", IOMEM, "--tds", "4097T"],
        "tdx-trackers report: error: --tds '4097T': TD 0 ('4097T'): guest memory "
        "4,504,699,138,998,272 bytes is past the limit of 4,503,599,627,370,496 bytes (4 PiB: "
        "2^40 PFNs, the physical address space the suite models, kernel.MAX_PHYS_PFN)"),
    "kexec --tds over the host's RAM": (
        ["kexec", "--memmap", IOMEM, "--tds", "32G,32G", "--out", "{dir}/v.csv"],
        # per TD: 8,388,608 guest + 16,384 + 32 + 1 S-EPT + 55 control pages
        "tdx-trackers kexec: error: 2 TD(s) need 68,854,415,360 bytes (64.13 GiB) (guest "
        "memory, control pages, S-EPT) but host iomem-64g.txt has only 64,574,304,256 bytes "
        "(60.14 GiB) free for TDs (RAM 68,718,882,816 bytes (64.00 GiB), less PAMT and the "
        "host's own share: the host keeps its 3.00 GiB of RAM below 4 GiB and 1 % of the "
        "rest)"),
    "kexec --trace a directory": (["kexec", "--memmap", IOMEM, "--trace", "{dir}"],
                                  "argument --trace: {dir} is a directory: want a trace file: "
                                  "an ftrace kvm_vm_set_mem_attributes capture or a QEMU "
                                  "kvm_convert_memory log"),
    "kexec --scheduler without a port": (["kexec", "tiny", "--scheduler", "garbage"],
                                         f"argument --scheduler: 'garbage': no HOST:PORT: "
                                         f"{WANT_SCHEDULER}"),
    "kexec --scheduler inproc": (["kexec", "tiny", "--scheduler", "inproc://x"],
                                 f"argument --scheduler: 'inproc://x': inproc:// names a "
                                 f"scheduler inside one process: {WANT_SCHEDULER}"),
    "bench-core --scheduler ucx": (["bench-core", "--scheduler", "ucx://10.0.0.1:8786"],
                                   f"argument --scheduler: 'ucx://10.0.0.1:8786': ucx:// is not "
                                   f"a scheme this command connects with: {WANT_SCHEDULER}"),
    "report --scheduler port": (["report", "--scheduler", "tcp://127.0.0.1:99999"],
                                f"argument --scheduler: 'tcp://127.0.0.1:99999': port '99999' "
                                f"must be in [1, 65535]: {WANT_SCHEDULER}"),
    "kexec $TRACKERS_SCHEDULER": (["kexec", "tiny", "--no-emulate"],
                                  f"tdx-trackers kexec: error: $TRACKERS_SCHEDULER='host:port': "
                                  f"port 'port' must be in [1, 65535]: {WANT_SCHEDULER}",
                                  {"TRACKERS_SCHEDULER": "host:port"}),
    "kexec --trace without --memmap": (["kexec", "tiny", "--trace", "{file}"],
                                       "tdx-trackers kexec: error: --trace describes your "
                                       "own host: give --memmap FILE too"),
    "report --memmap": (["report", "--memmap", "{file}"],
                        "tdx-trackers report: error: {file}: empty file: expected a boot log "
                        "with BIOS-e820 lines, a /proc/iomem dump or a /sys/firmware/memmap "
                        "directory"),
    "report --tds without --memmap": (["report", "--tds", "8G"],
                                      "tdx-trackers report: error: --tds describes your own "
                                      "host: give --memmap FILE too"),
    "calibrate --repeat": (["calibrate", "--repeat", "0"],
                           "argument --repeat: must be in [1, 1000] (timed runs per figure), "
                           "got 0"),
    "calibrate --cpus": (["calibrate", "--cpus", "-3"],
                         "argument --cpus: must be in [1, {cpus}] (numba's threads), got -3"),
    "calibrate --cpus over the machine": (
        ["calibrate", "--cpus", "{cpus+1}"],
        "argument --cpus: must be in [1, {cpus}] (numba's threads), got {cpus+1}"),
    "calibrate --mib": (["calibrate", "--mib", "8"],
                        "argument --mib: must be in [16, {ram/2}] (out of the caches, at most "
                        "half this machine's RAM), got 8"),
    "calibrate --mib over the RAM": (
        ["calibrate", "--mib", "{ram}"],
        "argument --mib: must be in [16, {ram/2}] (out of the caches, at most half this "
        "machine's RAM), got {ram}"),
    "calibrate --chase-mib": (["calibrate", "--chase-mib", "-1"],
                              "argument --chase-mib: must be in [16, {ram/4}] (out of the "
                              "caches, at most a quarter of this machine's RAM: the chase "
                              "builds two arrays), got -1"),
    "calibrate --out": (["calibrate", "--out", "{file}/cal.json"],
                        "argument --out: cannot write {file}/cal.json: {file} is a file, "
                        "not a directory"),
    "calibrate $TRACKERS_CALIBRATION": (
        ["calibrate"],
        "tdx-trackers calibrate: error: the calibration file (set --out or "
        "$TRACKERS_CALIBRATION): cannot write {file}/cal.json: {file} is a file, "
        "not a directory", {"TRACKERS_CALIBRATION": "{file}/cal.json"}),
    "report --seed": (["report", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    "report --trackers": (["report", "--trackers"],
                          "argument --trackers: expected at least one argument"),
    "report --trackers NAME": (["report", "--quick", "--trackers", "btree"],
                               "tdx-trackers report: error: unknown tracker 'btree'; "
                               "known: {trackers}"),
    "report $TRACKERS_CALIBRATION": (
        ["report"],
        "tdx-trackers report: error: the calibration file (set $TRACKERS_CALIBRATION, or give "
        "--no-calibrate): cannot write {file}/cal.json: {file} is a file, not a directory",
        {"TRACKERS_CALIBRATION": "{file}/cal.json"}),
    "report --out a file": (["report", "--out", "{file}"],
                            "argument --out: cannot write {file}: it is a file, "
                            "not a directory"),
    "report --out through a file": (["report", "--out", "{file}/report"],
                                    "argument --out: cannot write {file}/report: {file} is a "
                                    "file, not a directory"),
    "report --out the current directory": (
        ["report", "--out", "."],
        "argument --out: cannot write the report into .: it is the current directory or "
        "holds it; name a subdirectory"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_option_is_refused_before_any_work(case, tmp_path, monkeypatch, capsys):
    import trackers
    from trackers.workloads import SCENARIOS
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    (tmp_path / "dir" / "x-race.csv").mkdir(parents=True)
    subst = {"{file}": str(tmp_path / "file"), "{dir}": str(tmp_path / "dir"),
             "{trackers}": ", ".join(trackers.TRACKERS),
             "{scenarios}": ", ".join(repr(s) for s in SCENARIOS),
             "{cpus+1}": str(_max_cpus() + 1), "{cpus}": str(_max_cpus()),
             "{cores+1}": str(os.cpu_count() + 1), "{cores}": str(os.cpu_count()),
             "{ram/2}": str(_ram_mib() // 2), "{ram/4}": str(_ram_mib() // 4),
             "{ram}": str(_ram_mib())}

    def fill(text):
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    argv, message, *env = BAD_OPTIONS[case]
    monkeypatch.setenv("TRACKERS_CALIBRATION", str(tmp_path / "absent.json"))
    for key, value in (env[0] if env else {}).items():
        monkeypatch.setenv(key, fill(value))
    argv = [fill(a) for a in argv]
    message = fill(message)
    if not message.startswith("tdx-trackers "):          # argparse's own line
        message = f"tdx-trackers {argv[0]}: error: {message}"
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2
    assert err.splitlines()[-1] == message
    assert out == ""                                       # nothing was computed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]   # nor written


def test_version(capsys):
    import trackers
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"tdx-trackers {trackers.__version__}\n"


@pytest.mark.slow
def test_version_of_the_installed_command():
    import trackers
    r = subprocess.run([sys.executable, "-m", "trackers", "--version"],
                       capture_output=True, text=True, check=True)
    assert r.stdout == f"tdx-trackers {trackers.__version__}\n"


def _raise(exc):
    def run(args):
        raise exc
    return run


def test_out_of_memory_is_one_line(monkeypatch, capsys):
    import trackers.workloads.cli as scenarios_cli
    monkeypatch.setattr(scenarios_cli, "run", _raise(MemoryError(
        "Unable to allocate 8.00 GiB for an array with shape (1073741824,) and data type "
        "uint64")))
    assert main(["scenarios"]) == 1
    assert capsys.readouterr().err == (
        "tdx-trackers scenarios: error: out of memory: Unable to allocate 8.00 GiB for an "
        "array with shape (1073741824,) and data type uint64\n")


def test_bare_memory_error_is_one_line(monkeypatch, capsys):
    import importlib
    kexec_cli = importlib.import_module("trackers.kexec.evaluate")
    monkeypatch.setattr(kexec_cli, "run", _raise(MemoryError()))
    assert main(["kexec", "tiny"]) == 1
    assert capsys.readouterr().err == "tdx-trackers kexec: error: out of memory\n"


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    import trackers.report.cli as report_cli
    monkeypatch.setattr(report_cli, "run", _raise(KeyboardInterrupt()))
    assert main(["report", "--quick"]) == 130
    assert capsys.readouterr().err == "tdx-trackers report: interrupted\n"


@pytest.mark.slow
def test_sigint_of_the_command_exits_130():
    """A real SIGINT while a command runs: status 130, one line, no traceback.
    The child restores Python's own SIGINT handler first: a test run started in
    the background inherits SIGINT ignored, where no terminal's Ctrl-C is."""
    script = ("import os, signal, sys, trackers.workloads.cli as c\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "from trackers.__main__ import main\n"
              "c.run = lambda args: os.kill(os.getpid(), signal.SIGINT)\n"
              "sys.exit(main(['scenarios']))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (130, "tdx-trackers scenarios: interrupted\n")


#: the shape of the installed `tdx-trackers` script (a multiprocessing worker
#: runs it again as __mp_main__), restoring Python's SIGINT handler first in
#: the command's own process only: a test run started in the background
#: inherits SIGINT ignored, where no terminal's Ctrl-C is
COMMAND_SCRIPT = """import signal, sys
from trackers.__main__ import main
if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
"""


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-o", "args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if "spawn_main" in line]


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_is_one_line(tmp_path):
    """A terminal's Ctrl-C reaches the command and its Dask workers (one
    process group): the command exits 130 with its one line; no worker
    prints a traceback, nor distributed a log line, while the cluster stops.
    (Progress bars aside.)"""
    import re
    import signal
    import time
    script = tmp_path / "tdx-trackers"
    script.write_text(COMMAND_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), "bench-core", "--pfns", str(1 << 22)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_children(p.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)                                   # the workers are measuring
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    said = [line.split("\r")[-1] for line in err.split("\n")]
    said = [line for line in said if line.strip() and not re.search(r"\d+%\|", line)]
    assert (p.returncode, said) == (130, ["tdx-trackers bench-core: interrupted"])


# --- kexec writes only what it is asked to, where it is asked ---------------

@pytest.mark.slow
def test_kexec_writes_no_file_without_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["kexec", "tiny", "--no-emulate", "--race"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "written to" not in capsys.readouterr().out


def test_kexec_race_csv_sits_beside_out(tmp_path, monkeypatch, capsys, on_session_cluster):
    """X.csv -> X-race.csv in the same directory; a 'kexec-' in a directory name
    is not the file name's."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "kexec-results" / "x.csv"
    assert main(["kexec", "tiny", "--no-emulate", "--race", "--out", str(out)]) == 0
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "kexec-results", "kexec-results/x-race.csv", "kexec-results/x.csv"]
    assert out.read_text().startswith("strategy,")
    assert (out.parent / "x-race.csv").read_text().startswith("strategy,")
    printed = capsys.readouterr().out
    assert f"written to {out}\n" in printed and f"written to {out.parent / 'x-race.csv'}\n" in printed


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_kexec_csv_gets_the_umask_mode(umask, mode, tmp_path, on_session_cluster):
    out = tmp_path / "x.csv"
    old = os.umask(umask)
    try:
        assert main(["kexec", "tiny", "--no-emulate", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_rewritten_file_keeps_its_mode(tmp_path, on_session_cluster):
    """As open(path, "w") would: a file that exists keeps its permissions."""
    out = tmp_path / "x.csv"
    out.write_text("old")
    out.chmod(0o640)
    assert main(["kexec", "tiny", "--no-emulate", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.read_text().startswith("strategy,")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_unwritable_directory_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["kexec", "tiny", "--out", str(locked / "x.csv")])
    finally:
        locked.chmod(0o700)
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"tdx-trackers kexec: error: argument --out: cannot write {locked / 'x.csv'}: "
        f"directory {locked} is not writable")
