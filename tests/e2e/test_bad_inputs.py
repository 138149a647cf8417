"""What bad input gets: one line `error: ...` naming the file (or the valid choices), exit code 2.

The table below is the contract documented in docs/data.md. Each case builds a corrupted copy of a
real dataset file (or a bad config) in tmp_path, points BENCH_DATA_DIR there and runs the command.

The table runs in-process through `bench.cli.main` (an uncaught exception fails the test, which is
what a traceback would be): every `python -m bench` subprocess pays several seconds importing torch
and scipy for the whole CLI, too slow for 25 cases. A few cases of each kind are then run again as a
user runs them, in a subprocess, to check exit code, a single stderr line and no traceback.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.helpers.bad_inputs import (
    CASES,
    _argv,
)

# Run again as real subprocesses: one per kind of input (data file, EDA, fetch, config).
SUBPROCESS = ("truncated csv", "UNSW swapped name", "eda on bad data", "offline fetch", "zero budget", "run on truncated rows")


@pytest.mark.e2e
@pytest.mark.parametrize("name", SUBPROCESS)
def test_bad_input_through_the_real_entry_point(name, tmp_path):
    case = next(c for c in CASES if c[0] == name)
    root = tmp_path / "data"
    root.mkdir()
    made = case[1](root)
    argv = _argv(case, root, made)
    result = run_cli(*argv, env={"BENCH_DATA_DIR": str(root)}, timeout=300)
    assert result.returncode == case[4], result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and case[3] in lines[-1], result.stderr
    assert all(not line.startswith("error") for line in lines[:-1])

