"""A damaged checkpoint given to `bench serve` or `bench predict`: one line `error: ...`, exit code 2.

Each case copies a real checkpoint (tests/{unit,e2e}/test_serve.py's base MiniLM with a 2-class head) into
tmp_path as symlinks, replaces one file with a damaged version (truncated weights, garbage or
mistyped metadata, a missing file) and runs the command in-process through `bench.cli.main`: an
uncaught exception fails the test, which is what a traceback would be. `bench serve` must refuse
the folder before it opens a port: the server factory is replaced by one that fails the test, so a
checkpoint wrongly accepted cannot leave a server running. Two cases then run as a user runs them,
`python -m bench` in a subprocess, to check the exit code, a single stderr line and no traceback.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.helpers.corrupt_checkpoint import (
    CORRUPTIONS,
    assert_one_line_error,
    damaged_copy,
)


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["serve", "predict"])
def test_truncated_weights_through_python_m_bench(command, checkpoint, reviews, tmp_path):
    folder = damaged_copy(checkpoint, tmp_path / "damaged", CORRUPTIONS[0][1])
    args = ["--port", "0"] if command == "serve" else ["--input", str(reviews), "--output", str(tmp_path / "p.csv")]
    result = run_cli(command, "--checkpoint", str(folder), *args, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert_one_line_error(result.stderr, "model.safetensors")

