"""The tests of tests/unit/test_user_config.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.helpers.user_config import write_config


@pytest.mark.e2e
def test_a_cell_trains_under_a_users_config_from_another_folder(tmp_path):
    """The real launch: the worker finds the user's file and the cell, though it runs elsewhere."""
    write_config(tmp_path, "laptop.yaml")
    # A few steps of one workload, no baselines: the launch is what is tested, not the training.
    (tmp_path / "tiny.yaml").write_text(
        "topologies: [cpu-ddp2]\nprecisions: [fp32]\n"
        "workloads:\n  maintenance: {variants: [lstm], budget: {max_steps: 4}, baselines: false}\n"
    )
    proc = run_cli("run", "--matrix", "tiny.yaml", "--config", "laptop.yaml", "--run-id", "mine", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "results" / "mine"  # results/ under the folder bench ran in
    result = json.loads((run_dir / "cells" / "maintenance-lstm__laptop__fp32__s0.json").read_text())
    assert result["status"] in ("converged", "not_converged"), result["reason"]
    assert result["topology"]["config_file"] == str(tmp_path / "laptop.yaml")
    assert result["observed"]["distributed_type"] == "NO" and result["observed"]["num_processes"] == 1
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["filters"]["config"] == str(tmp_path / "laptop.yaml")  # what --resume runs again
    assert [p.name for p in (run_dir / "cells").iterdir()] == ["maintenance-lstm__laptop__fp32__s0.json"]

