"""The tests of tests/unit/test_extending.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers.extending import BLOBS, BROKEN, install_plugin


def _env(*sites: Path) -> dict[str, str]:
    """PYTHONPATH with the plugin folders first: `bench run` and the ranks accelerate starts see them."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, sites), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _matrix(tmp_path: Path, workload: str, budget: dict | None = None) -> Path:
    spec = {"name": "tiny-plugin", "timeout_s": 900, "topologies": ["cpu-1proc"], "precisions": ["fp32"],
            "workloads": {workload: {"budget": budget or {"max_epochs": 20, "max_seconds": 900}, "baselines": False}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.e2e
def test_bench_run_names_a_broken_entry_point_in_one_line(tmp_path):
    site = install_plugin(tmp_path / "site", {"ghost": "no_such_module_anywhere:Ghost"}, module=False)
    done = run_cli("run", "--matrix", str(_matrix(tmp_path, "ghost")), "--results-dir", str(tmp_path / "runs"),
                   "--dry-run", env=_env(site), timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "'ghost'" in done.stderr and "cannot be imported" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_entry_point_workload_trains_through_bench_run(tmp_path):
    """The tiny workload, found through its entry point by `bench run` and by the worker process that
    `accelerate launch` starts (PYTHONPATH carries the folder), trains to its target. Broken entry
    points of another package are installed beside it and cost it nothing."""
    site = install_plugin(tmp_path / "site", BLOBS)
    broken = install_plugin(tmp_path / "broken", {name: value for name, (value, _) in BROKEN.items()},
                            dist="broken-plugin", module=False)
    done = run_cli("run", "--matrix", str(_matrix(tmp_path, "blobs")), "--results-dir", str(tmp_path / "runs"),
                   env=_env(site, broken), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [cell_file] = (tmp_path / "runs").glob("*/cells/*.json")
    result = json.loads(cell_file.read_text())
    assert result["cell"]["id"] == "blobs-mlp__cpu-1proc__fp32__s0"
    assert result["status"] == "converged", result.get("reason")
    assert result["metrics"]["val"]["accuracy"] >= 0.95
    assert result["timings"]["steps"] > 0 and result["curve"]
    assert result["data"]["samples"] == {"train": 360, "val": 120, "test": 120}
    assert "| blobs" in done.stdout

