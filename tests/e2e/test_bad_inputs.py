"""The tests of tests/unit/test_bad_inputs.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

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

