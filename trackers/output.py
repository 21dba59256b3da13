"""Atomic output: a reader sees the old file or the new one, never a torn one.

Every file the project writes (CSV tables, JSON calibration, figures, reports)
goes through here: written to a temporary file in the same directory, flushed,
then renamed over the target with os.replace (atomic on POSIX).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
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
