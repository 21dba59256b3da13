"""trackers.linux.integrity: a cached library is loaded only whole.

A library cut short (a disk that filled during a build, a copy interrupted)
killed every command with SIGBUS at dlopen, even ``--help``.  Now its size
and sha256, recorded at build, are compared before it is loaded; a mismatch
rebuilds it from its source, or, where that is gone, runs the emulations,
saying which in one line.  Each command runs in a child process against a
copy of this session's cache (tests/conftest.py built it), so the session's
own library is never touched.
"""

import errno
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import trackers
import trackers.linux as linux
from trackers.linux import integrity
from trackers.linux.integrity import LOCK_NAME, damage, library_record
from trackers.report import summary
from trackers.report.cli import prepare_kernel_code

# the module (trackers.linux.build is the function)
linux_build = importlib.import_module("trackers.linux.build")
linux_clear = importlib.import_module("trackers.linux.clear")


def test_damage_names_what_differs(tmp_path):
    lib = tmp_path / "libx.so"
    lib.write_bytes(b"\x7fELF" + bytes(996))
    record = library_record(lib)
    assert record["library_bytes"] == 1000 and len(record["library_sha256"]) == 64
    assert damage(lib, record) == ""
    lib.write_bytes(b"\x7fELF" + bytes(596))
    assert damage(lib, record) == "is cut short: 600 of the 1,000 bytes its build wrote"
    lib.write_bytes(b"\x7fELF" + bytes(1996))
    assert damage(lib, record) == "is 2,000 bytes, its build wrote 1,000"
    lib.write_bytes(b"\x7fELF" + b"x" * 996)
    assert damage(lib, record) == "does not hold the bytes its build wrote (its sha256 differs)"
    assert damage(lib, {}) == ("has no recorded size and sha256: it was built before they "
                               "were recorded")
    lib.unlink()
    assert damage(lib, record) == "cannot be read (No such file or directory)"


@pytest.fixture
def cache_copy(tmp_path):
    """A copy of this session's kernel-library cache (the library, its build
    record, the extracted source and its stamp) with its own current.json:
    (cache root, library, build record path)."""
    try:
        lib, info = linux_build.current_library()
    except linux.KernelCodeUnavailable as exc:
        pytest.skip(f"the kernel's code is not built here: {exc}")
    vdir = lib.parent
    if not ((vdir / "src").is_dir() and (vdir / "src.json").is_file()
            and Path(info.get("source", "")).is_file()):
        pytest.skip("the session's library was not built from a source tarball")
    root = tmp_path / "cache"
    copy = root / vdir.name
    shutil.copytree(vdir / "src", copy / "src", symlinks=True)
    shutil.copy2(vdir / "src.json", copy)
    shutil.copy2(lib, copy)
    info_path = copy / f"build-{info['key']}.json"
    info_path.write_text(json.dumps(info))
    (root / "current.json").write_text(json.dumps({"library": str(copy / lib.name),
                                                   "info": str(info_path)}))
    return root, copy / lib.name, info_path


def _run(root, code: str, umask: int = 0o022):
    """``code`` in a child Python whose kernel-library cache is ``root``."""
    env = dict(os.environ, TRACKERS_LINUX_CACHE=str(root))
    return subprocess.run([sys.executable, "-c", f"import os; os.umask({umask:#o})\n{code}"],
                          capture_output=True, text=True, env=env, timeout=600)


def test_import_trackers_never_loads_the_library(cache_copy):
    root, lib, _ = cache_copy
    os.truncate(lib, 1000)
    r = _run(root, "import sys, trackers\n"
                   "print(sorted(m for m in sys.modules if m.startswith('trackers.linux')))")
    assert (r.returncode, r.stdout, r.stderr) == (0, "[]\n", "")


@pytest.mark.slow
def test_a_library_cut_short_is_rebuilt_from_its_source(cache_copy):
    root, lib, info_path = cache_copy
    whole = json.loads(info_path.read_text())["library_bytes"]
    os.truncate(lib, 60_000)
    r = _run(root, "import trackers\nprint(list(trackers.KERNEL_TRACKERS))\n"
                   "import trackers.linux as l\nprint(l.repaired())")
    assert r.returncode == 0, r.stderr
    source = json.loads(info_path.read_text())["source"]
    cut = f"is cut short: 60,000 of the {whole:,} bytes its build wrote"
    said = r.stderr.splitlines()
    assert said[0] == f"tdx-trackers: the kernel library {lib} {cut}: rebuilding it from {source}"
    assert said[1].startswith(f"tdx-trackers: rebuilt the kernel library {lib} from {source} in ")
    assert said[1].endswith(f" s (the cached one {cut})") and len(said) == 2
    twins, note = r.stdout.splitlines()
    assert twins == str(list(trackers.KERNEL_TRACKERS)) and "@kernel" in twins
    assert note == said[1].removeprefix("tdx-trackers: ")
    record = json.loads(info_path.read_text())
    assert damage(lib, record) == "" and lib.stat().st_size == record["library_bytes"]
    # what the rebuild wrote follows the umask (0022), as every other output
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in
             (root / "current.json", info_path, lib, lib.parent / LOCK_NAME)}
    assert modes == {"current.json": "0o644", info_path.name: "0o644", lib.name: "0o755",
                     LOCK_NAME: "0o644"}


@pytest.mark.slow
def test_a_library_cut_short_without_its_source_runs_the_emulations(cache_copy):
    root, lib, info_path = cache_copy
    info = json.loads(info_path.read_text())
    info["source"] = str(root / "gone.tar.xz")
    info_path.write_text(json.dumps(info))
    os.truncate(lib, 150_000)
    cut = f"is cut short: 150,000 of the {info['library_bytes']:,} bytes its build wrote"
    why = (f"the kernel library {lib} {cut}; not rebuilt (the source it was built from, "
           f"{root / 'gone.tar.xz'}, is gone): the emulations run instead")
    r = _run(root, "import trackers\nprint(list(trackers.KERNEL_TRACKERS))\n"
                   "print(trackers.KERNEL_UNAVAILABLE)")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"[]\n{why}\n", f"tdx-trackers: {why}\n")
    # every command starts, as --help does: one line, no SIGBUS
    r = subprocess.run([sys.executable, "-m", "trackers", "--help"], capture_output=True,
                       text=True, env=dict(os.environ, TRACKERS_LINUX_CACHE=str(root)))
    assert (r.returncode, r.stderr) == (0, f"tdx-trackers: {why}\n")
    assert r.stdout.startswith("usage: tdx-trackers")


def test_a_clear_library_cut_short_is_compiled_again(tmp_path, monkeypatch, capsys):
    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler")
    monkeypatch.setenv("TRACKERS_LINUX_CACHE", str(tmp_path))
    lib = linux_clear.build_clear()
    record = json.loads(lib.with_suffix(".json").read_text())
    assert damage(lib, record) == ""
    os.truncate(lib, 1000)
    assert linux_clear.build_clear() == lib
    assert damage(lib, record) == ""                         # the same bytes again
    assert capsys.readouterr().err == (
        f"tdx-trackers: the clear library {lib} is cut short: 1,000 of the "
        f"{record['library_bytes']:,} bytes its build wrote: compiling clear.c again\n")


def _read_only(path, *args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))


def test_a_read_only_cache_names_the_cache_not_packages(tmp_path, monkeypatch):
    root = tmp_path / "ro"
    monkeypatch.setenv("TRACKERS_LINUX_CACHE", str(root))
    monkeypatch.setattr(linux_build, "tarball_version", lambda src: "6.12.1")
    tarball = tmp_path / "linux-6.12.1.tar.xz"
    tarball.write_bytes(b"")
    monkeypatch.setattr(linux_build.Path, "mkdir", _read_only)
    with pytest.raises(linux.KernelCodeUnavailable) as exc:
        linux.build(tarball)
    why = (f"cannot write the kernel-library cache $TRACKERS_LINUX_CACHE={root} (Read-only "
           f"file system: {root / 'linux-6.12.1'})")
    fix = "set $TRACKERS_LINUX_CACHE to a directory you can write"
    assert (str(exc.value), exc.value.fix) == (why, fix)
    # the report runs on the emulations and says what to do: no package is missing
    kc = prepare_kernel_code(skip=False)
    assert kc == {"available": False, "reason": why, "fix": fix}
    assert summary.engine_line({}, {"kernel_code": kc}) == (
        f"**Measured numbers come from the Python/numba emulations, not the kernel's own "
        f"code:** {why}. To measure the kernel's own code, {fix}.")


def test_a_read_only_cache_still_serves_its_library(cache_copy, monkeypatch):
    root, lib, info_path = cache_copy
    info = json.loads(info_path.read_text())
    monkeypatch.setenv("TRACKERS_LINUX_CACHE", str(root))
    monkeypatch.setattr(integrity, "open", _read_only, raising=False)     # no lock file
    monkeypatch.setattr(linux_build, "write_text_atomic", _read_only)     # nothing written
    assert linux.build(info["source"]) == lib


def test_the_report_says_it_rebuilt_a_damaged_library(monkeypatch):
    """prepare_kernel_code keeps what build() rebuilt, and summary.md's first
    line says it after the engine it names."""
    note = ("rebuilt the kernel library /c/libtdxkernel-k.so from /usr/src/l.tar.xz in 9 s "
            "(the cached one is cut short: 60,000 of the 170,216 bytes its build wrote)")
    from trackers.report import cli
    monkeypatch.setattr(cli.linux, "build", lambda: None)
    monkeypatch.setattr(cli.linux, "available", lambda: (True, "/c/libtdxkernel-k.so"))
    monkeypatch.setattr(cli.linux, "version", lambda: "6.12.1")
    monkeypatch.setattr(cli.linux, "repaired", lambda: note)
    kc = prepare_kernel_code(skip=False)
    assert {k: kc[k] for k in ("available", "version", "repaired")} == {
        "available": True, "version": "6.12.1", "repaired": note}
    scan = pd.DataFrame({"tracker": ["xarray@kernel"], "engine": ["kernel code v6.12.1 "
                                                                 "(userspace)"],
                         "scan_runs": [1]})
    line = summary.engine_line({"scan_time": scan}, {"kernel_code": kc})
    assert line.startswith("**Measured numbers come from the kernel's own code, Linux v6.12.1**")
    assert line.endswith(f" Before this run, tdx-trackers {note}.")


def test_another_checkouts_build_does_not_evict_this_ones(cache_copy):
    """Two checkouts with other C sources share one cache: the last build names
    its library in current.json, and each loads the build of its own sources."""
    root, lib, info_path = cache_copy
    other = lib.parent / "libtdxkernel-0123456789ab.so"
    shutil.copy2(lib, other)
    other_info = lib.parent / "build-0123456789ab.json"
    other_info.write_text(json.dumps({**json.loads(info_path.read_text()),
                                      "key": "0123456789ab"}))
    (root / "current.json").write_text(json.dumps({"library": str(other),
                                                   "info": str(other_info)}))
    r = _run(root, "import importlib; b = importlib.import_module('trackers.linux.build')\n"
                   "lib, info = b.current_library()\n"
                   "print(lib.name, info['key'] == b.fingerprint())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [lib.name, "True"]
    lib.unlink()                         # this checkout's build gone: it says so
    r = _run(root, "import importlib\n"
                   "importlib.import_module('trackers.linux.build').current_library()")
    assert "was built from other C sources or another recipe" in r.stderr
