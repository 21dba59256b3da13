"""trackers.linux.dlopen: a library loaded with its functions typed, or
refused at load with the exact message (the C library of this process
stands in for a built one)."""

import ctypes

import pytest

from trackers.linux.dlopen import typed_library


class Refused(OSError):
    pass


def test_functions_get_their_types():
    lib = typed_library(ctypes.CDLL(None), {"strlen": (ctypes.c_size_t, [ctypes.c_char_p])},
                        unavailable=Refused, what="libc")
    assert lib.strlen.restype is ctypes.c_size_t
    assert lib.strlen.argtypes == [ctypes.c_char_p]
    assert lib.strlen(b"tdx") == 3


def test_a_missing_function_is_refused_by_name():
    with pytest.raises(Refused) as err:
        typed_library(ctypes.CDLL(None), {"tdx_no_such_function": (None, [])},
                      unavailable=Refused, what="libc", hint="; rebuild it")
    assert str(err.value) == "libc lacks tdx_no_such_function; rebuild it"


def test_a_file_that_does_not_load_is_refused(tmp_path):
    bad = tmp_path / "libnot.so"
    bad.write_bytes(b"not an ELF file")
    with pytest.raises(Refused, match=rf"^cannot load {bad}: .*; rebuild it$"):
        typed_library(bad, {}, unavailable=Refused, what=str(bad), hint="; rebuild it")
