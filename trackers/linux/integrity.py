"""A cached library is loaded only whole.

dlopen() maps a shared library's segments by the sizes its ELF headers
give; a file cut short (a disk that filled while the linker wrote it, a copy
interrupted, a cache restored in part) is mapped past its end, and the
first touch of a missing page kills the process with SIGBUS: no Python
error, no message, whatever command was running (even ``--help``, which
loads the registry).  So every build records the library it wrote
(:func:`library_record`: size and sha256, ~1 ms for the 170 KB kernel
library) and every load compares the file with that record first
(:func:`damage`); a library that does not match is never handed to
dlopen().  What is done instead (rebuild, or run on the emulations) is the
loader's choice (trackers/linux/binding.py, clear.py's build_clear).

Builds into one cache directory take turns (:func:`taking_turns`, an
flock), so two commands started together do not both compile, and the
second finds the first's library whole.  A new library gets the mode the
linker gives it under the umask (:func:`seal`), as every output of the
project follows the umask (trackers/output.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

from ..output import directory_mode

#: the build record's keys for the library it describes
RECORD_KEYS = ("library_bytes", "library_sha256")
#: the lock file of a cache directory
LOCK_NAME = ".build.lock"


def library_record(path: Path) -> dict:
    """What the build record keeps of the library it wrote: its size and
    sha256, compared with the file before every load (:func:`damage`)."""
    data = Path(path).read_bytes()
    return {"library_bytes": len(data), "library_sha256": hashlib.sha256(data).hexdigest()}


def damage(path: Path, record: dict) -> str:
    """"" when ``path`` holds the bytes ``record`` (:func:`library_record`'s
    keys) describes; else what differs, as a phrase that follows the path
    ("... libtdxkernel-X.so is cut short: 60,000 of the 170,216 bytes its
    build wrote")."""
    want_bytes, want_sha = (record.get(k) for k in RECORD_KEYS)
    if want_bytes is None or want_sha is None:
        return "has no recorded size and sha256: it was built before they were recorded"
    try:
        got = library_record(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if got["library_bytes"] < want_bytes:
        return (f"is cut short: {got['library_bytes']:,} of the {want_bytes:,} bytes "
                f"its build wrote")
    if got["library_bytes"] != want_bytes:
        return f"is {got['library_bytes']:,} bytes, its build wrote {want_bytes:,}"
    if got["library_sha256"] != want_sha:
        return "does not hold the bytes its build wrote (its sha256 differs)"
    return ""


def seal(path: Path) -> None:
    """Make a freshly linked library durable (fsync, so a crash cannot leave
    the renamed file short) with the mode the linker gives under the umask
    (0777 & ~umask), before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, directory_mode())
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def taking_turns(directory: Path):
    """Builds into ``directory`` take turns: an exclusive flock on its
    ``.build.lock``, released when the block ends or the process dies.  A
    directory this process cannot write has no lock to take: its library is
    only read (a build there fails at its first write, naming the cache)."""
    try:
        f = open(Path(directory) / LOCK_NAME, "a")
    except OSError:
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
