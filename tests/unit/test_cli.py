"""The command line: `bench --help` lists every command without importing the heavy libraries.

The tests that start processes are in tests/e2e/test_cli.py."""

from __future__ import annotations

import pytest

from bench.cli import chosen_command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], None), (["--help"], None), (["run", "--matrix", "smoke"], "run"), (["-h", "report"], "report"),
     (["nope"], None)],
)
def test_the_command_is_the_first_word_that_is_not_an_option(argv, expected):
    assert chosen_command(argv) == expected

