"""Command-line option checks: every option is checked before any work.

:func:`int_option`, :func:`input_file` and :func:`output_file` /
:func:`output_dir` are argparse ``type=`` functions; they raise :class:`argparse.ArgumentTypeError`, which
argparse reports as ``argument --OPTION: <why>`` and exit status 2.  The path
checks cannot prove a write will succeed (a disk fills, a directory is
removed meanwhile); they catch what a user gets wrong: a path through a file,
a directory where a file goes, a directory this user cannot write.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: the most timed runs (repeats, seeds) a command accepts for one figure: the
#: median of 1,000 runs is as steady as this machine gets, and a run of one
#: figure at 1 TiB takes seconds, so more would only delay the answer by hours
MAX_RUNS = 1000


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


def input_file(what: str):
    """An argparse ``type=``: a regular file that exists and this user can
    read; ``what`` (e.g. "a trace file: ...") says what the option wants in
    the message for a directory."""

    def parse(text: str) -> Path:
        path = Path(text)
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a directory: want {what}")
        if not os.access(path, os.R_OK):
            raise argparse.ArgumentTypeError(f"{text}: not readable by this user")
        return path

    parse.__name__ = "file"
    return parse
