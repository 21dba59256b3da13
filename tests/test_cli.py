"""The command line: every command has --help, errors exit 2 with a message."""

import subprocess
import sys

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


def test_bench_core_small(capsys):
    assert main(["bench-core", "--pfns", "65536", "--repeat", "1",
                 "--estimate-pfns", "1048576", "--trackers", "bitmap"]) == 0
    out = capsys.readouterr().out
    assert "[measured]" in out and "bitmap" in out


def test_unknown_tracker_is_a_clear_error(capsys):
    assert main(["bench-core", "--pfns", "65536", "--trackers", "btree"]) == 2
    assert "unknown tracker 'btree'" in capsys.readouterr().err


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "trackers", "--help"],
                       capture_output=True, text=True, check=True)
    assert "tdx-trackers" in r.stdout
