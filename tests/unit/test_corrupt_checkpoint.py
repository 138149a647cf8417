"""A damaged checkpoint given to `bench serve` or `bench predict`: one line `error: ...`, exit code 2.

Each case copies a real checkpoint (tests/{unit,e2e}/test_serve.py's base MiniLM with a 2-class head) into
tmp_path as symlinks, replaces one file with a damaged version (truncated weights, garbage or
mistyped metadata, a missing file) and runs the command in-process through `bench.cli.main`: an
uncaught exception fails the test, which is what a traceback would be. `bench serve` must refuse
the folder before it opens a port: the server factory is replaced by one that fails the test, so a
checkpoint wrongly accepted cannot leave a server running. Two cases then run as a user runs them,
`python -m bench` in a subprocess, to check the exit code, a single stderr line and no traceback.

The tests that start processes are in tests/e2e/test_corrupt_checkpoint.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.serving.serve
from bench.cli import main
from tests.helpers.corrupt_checkpoint import (
    CORRUPTIONS,
    assert_one_line_error,
    damaged_copy,
)


@pytest.fixture(params=[case[1:] for case in CORRUPTIONS], ids=[case[0] for case in CORRUPTIONS])
def corrupt(request, checkpoint, tmp_path) -> tuple[Path, str]:
    damage, words = request.param
    return damaged_copy(checkpoint, tmp_path / "damaged", damage), words


def test_predict_refuses_a_corrupt_checkpoint(corrupt, reviews, tmp_path, capsys):
    folder, words = corrupt
    assert main(["predict", "--checkpoint", str(folder), "--input", str(reviews),
                 "--output", str(tmp_path / "p.csv")]) == 2
    assert_one_line_error(capsys.readouterr().err, words)
    assert not (tmp_path / "p.csv").exists()


def test_serve_refuses_a_corrupt_checkpoint_before_listening(corrupt, monkeypatch, capsys):
    def no_server(*args, **kwargs):
        raise AssertionError("bench serve accepted the damaged checkpoint and was about to listen")

    monkeypatch.setattr(bench.serving.serve, "make_server", no_server)
    folder, words = corrupt
    assert main(["serve", "--checkpoint", str(folder), "--port", "0"]) == 2
    assert_one_line_error(capsys.readouterr().err, words)

