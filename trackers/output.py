"""Atomic output, and the checks that run before any work is done.

Every file the project writes (CSV tables, JSON calibration, figures, reports)
goes through here: written to a temporary file in the same directory, flushed,
then renamed over the target with os.replace (atomic on POSIX), so a reader
sees the old file or the new one, never a torn one.

A new file gets the mode open() would give it, 0666 & ~umask; a replaced file
keeps its mode, as open(path, "w") would.  (mkstemp creates 0600 whatever the
umask: the mode is set on the temporary file before it is renamed.)

The command line checks its options before any work: :func:`int_option` and
:func:`output_file` / :func:`output_dir` are argparse ``type=`` functions;
they raise :class:`argparse.ArgumentTypeError`, which argparse reports as
``argument --OPTION: <why>`` and exit status 2.  The path checks cannot prove
a write will succeed (a disk fills, a directory is removed meanwhile); they
catch what a user gets wrong: a path through a file, a directory where a file
goes, a directory this user cannot write.
"""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path


def creation_mode() -> int:
    """The mode open() gives a new file: 0666 & ~umask."""
    try:
        with open("/proc/self/status") as f:          # Linux >= 4.7: no side effect
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)                            # elsewhere: read it by setting it
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)   # replaced: keep its mode
    except FileNotFoundError:
        mode = creation_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_csv_atomic(df, path) -> Path:
    """A pandas DataFrame as CSV, without its index."""
    return write_text_atomic(path, df.to_csv(index=False))


# --------------------------------------------------------------------------
# argparse type= functions: every option checked before any work

def int_option(lo: int, hi: int | None = None, *, multiple_of: int = 1, base: int = 10,
               why: str = ""):
    """An argparse ``type=``: an int in [lo, hi] (hi None: no upper limit) that is a
    multiple of ``multiple_of``; ``base=0`` also takes 0x.. and 0b.. literals;
    ``why`` (e.g. "one 2 MiB extent") follows the limits in the message."""

    def parse(text: str) -> int:
        try:
            value = int(text, base)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        limits = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        if multiple_of > 1:
            limits = f"a multiple of {multiple_of} {limits}"
        if value < lo or (hi is not None and value > hi) or value % multiple_of:
            raise argparse.ArgumentTypeError(
                f"must be {limits}{f' ({why})' if why else ''}, got {text}")
        return value

    parse.__name__ = "int"          # argparse names the type in its own messages
    return parse


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (or is a dangling symlink)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p
    return Path(path.anchor or ".")


def _check_can_create_in(directory: Path, target: Path) -> None:
    """``directory`` is, or can be made, a directory this user may write into."""
    have = _nearest_existing(directory)
    if not have.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot write {target}: {have} is a file, not a directory"
            if have.exists() else f"cannot write {target}: {have} is a dangling symlink")
    if not os.access(have, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {target}: directory {have} is not writable")


def output_file(text: str) -> Path:
    """An argparse ``type=``: a file path that can be written atomically (a file
    that does not exist or is a file, in a directory that is or can be made
    writable)."""
    path = Path(text)
    if not text or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} names no file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: it is a directory")
    _check_can_create_in(path.parent, path)
    return path


def output_dir(text: str) -> Path:
    """An argparse ``type=``: a directory that does not exist or is a directory,
    whose parent is or can be made writable (a report is written beside it and
    renamed into place)."""
    path = Path(text)
    full = Path(os.path.abspath(path))
    if not text or full.parent == full:
        raise argparse.ArgumentTypeError(f"{text!r} names no directory that can be replaced")
    if Path.cwd().resolve().is_relative_to(full.resolve()):
        raise argparse.ArgumentTypeError(
            f"cannot write the report into {text}: it is the current directory or holds it; "
            f"name a subdirectory")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: it is a file, not a directory")
    _check_can_create_in(full.resolve().parent, path)
    return path
