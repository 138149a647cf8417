"""The tests of tests/unit/test_cli.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import COMMANDS

HEAVY = ("torch", "accelerate", "transformers")


def _modules_loaded_by(argv: list[str]) -> tuple[int, set[str], str]:
    """Run `bench.cli.main(argv)` in a fresh interpreter; its exit code, the heavy libraries it
    imported, and its stdout."""
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        f"print('HEAVY', *[m for m in {HEAVY!r} if m in sys.modules])\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    heavy_line = [line for line in done.stdout.splitlines() if line.startswith("HEAVY")][-1]
    return done.returncode, set(heavy_line.split()[1:]), done.stdout


@pytest.mark.e2e
def test_help_lists_every_command_without_importing_torch():
    rc, heavy, stdout = _modules_loaded_by(["--help"])
    assert rc == 0
    assert heavy == set()
    for name in COMMANDS:
        assert name in stdout


@pytest.mark.e2e
def test_an_unknown_command_imports_nothing_heavy_and_exits_2():
    rc, heavy, _ = _modules_loaded_by(["no-such-command"])
    assert rc == 2
    assert heavy == set()


@pytest.mark.e2e
def test_a_command_s_own_help_still_lists_its_options():
    rc, _, stdout = _modules_loaded_by(["env", "--help"])
    assert rc == 0
    assert "--json" in stdout

