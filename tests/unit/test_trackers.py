"""`bench run --log-with`: a real cell logged through Accelerate's TensorBoard tracker, read back
from its event files with TensorBoard's own reader; and the one-line refusals before any launch.

The tests that start processes are in tests/e2e/test_trackers.py."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from bench.cli import main
from bench.harness.trackers import TRACKERS


def test_the_tracker_is_not_part_of_what_a_resume_compares():
    """A run resumed with another --log-with (or none) keeps its completed cells."""
    from bench.harness.matrix import Cell
    from bench.harness.runner import definition_changes
    from bench.harness.trackers import tracking_for

    cell = Cell("maintenance", "gru", "cpu-1proc", "fp32", 0)
    logged = dataclasses.replace(cell, tracking=tracking_for("tensorboard", Path("results/run")))
    assert definition_changes(logged.to_dict(), cell) == []
    assert definition_changes(cell.to_dict(), logged) == []
    assert definition_changes(logged.to_dict(), dataclasses.replace(cell, seed=1)) == ["seed 0 -> 1"]


def test_an_unknown_tracker_is_refused_in_one_line(tmp_path, capsys):
    assert main(["run", "--matrix", "smoke", "--results-dir", str(tmp_path), "--log-with", "tensorbored"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: unknown --log-with tracker 'tensorbored'; valid choices: mlflow, tensorboard, trackio, wandb"
    ]
    assert not any(tmp_path.iterdir())


def test_a_tracker_whose_package_is_missing_is_refused_before_anything_launches(tmp_path, capsys):
    missing = next((name for name, package in TRACKERS.items() if importlib.util.find_spec(package) is None), None)
    if missing is None:
        pytest.skip("every tracker's package is installed here")
    assert main(["run", "--matrix", "smoke", "--results-dir", str(tmp_path), "--log-with", missing]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --log-with {missing} needs the {TRACKERS[missing]} package: pip install")
    assert not any(tmp_path.iterdir())

