"""One way to load a library this package built: ``ctypes.CDLL``, then
every C function the binding calls typed from one table of signatures.

Used for the kernel library (:mod:`.binding` for the glue, :mod:`.pages` for
pages.c and directmap.c) and for clear.c's (:mod:`.clear`).  Finding the
library (the build record, or a compile on first use) and checking the facts it reports stay
with each binding; what is the same for all three is here: a library that
will not load, or lacks a function, is refused at load, with a message that
names it and says how to rebuild, not at the first call.
"""

from __future__ import annotations

import ctypes
import os

#: C functions of a library: name -> (restype, argtypes)
Signatures = dict[str, tuple[object, list]]


def typed_library(lib: ctypes.CDLL | str | os.PathLike, signatures: Signatures, *,
                  unavailable: type[OSError], what: str, hint: str = "") -> ctypes.CDLL:
    """``lib`` (a path, loaded with ``ctypes.CDLL``; or a library loaded
    already) with each function of ``signatures`` given its restype and
    argtypes.

    Raises ``unavailable`` (an OSError subclass naming why the code cannot
    run here) "cannot load {what}: {why}{hint}" where the loader refuses the
    file, or "{what} lacks {name}{hint}" where a function is missing.
    """
    if not isinstance(lib, ctypes.CDLL):
        try:
            lib = ctypes.CDLL(os.fspath(lib))
        except OSError as exc:
            raise unavailable(f"cannot load {what}: {exc}{hint}") from exc
    for name, (res, args) in signatures.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise unavailable(f"{what} lacks {name}{hint}") from None
        fn.restype, fn.argtypes = res, args
    return lib
