"""Atomic output: a reader sees the old file or the new one, never a torn one.

Every file the project writes (CSV tables, JSON calibration, figures, reports)
goes through here: written to a temporary file in the same directory, flushed,
then renamed over the target with os.replace (atomic on POSIX), so a reader
sees the old file or the new one, never a torn one.

A new file gets the mode open() would give it, 0666 & ~umask; a replaced file
keeps its mode, as open(path, "w") would.  (mkstemp creates 0600 whatever the
umask: the mode is set on the temporary file before it is renamed.)  A
directory made by mkdtemp (0700) and renamed into place is given
:func:`directory_mode`, 0777 & ~umask, as mkdir would.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def umask() -> int:
    """This process's umask."""
    try:
        with open("/proc/self/status") as f:          # Linux >= 4.7: no side effect
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)                             # elsewhere: read it by setting it
    os.umask(mask)
    return mask


def creation_mode() -> int:
    """The mode open() gives a new file: 0666 & ~umask."""
    return 0o666 & ~umask()


def directory_mode() -> int:
    """The mode mkdir() gives a new directory (and the linker a new
    executable): 0777 & ~umask."""
    return 0o777 & ~umask()


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
