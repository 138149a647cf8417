"""The tests of tests/unit/test_corrupt_checkpoint.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

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

