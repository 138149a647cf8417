"""Helpers for e2e/test_executor_slurm.py, unit/test_executor_slurm.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml


def _matrix(tmp_path: Path, executor: dict | None = None, seeds: int = 1, **workload) -> str:
    spec = {"name": "t", "timeout_s": 900, "seeds": seeds, "topologies": ["cpu-1proc"], "precisions": ["fp32"],
            "workloads": {"maintenance": {"variants": ["gru"], "baselines": False,
                                          "budget": {"max_epochs": 1, "max_seconds": 600, "max_steps": 20},
                                          "params": {"target": 0.0, "eval_every_steps": 10}, **workload}}}
    if executor is not None:
        spec["executor"] = executor
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _one_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _fake_cluster(tmp_path: Path) -> dict[str, str]:
    """sinfo that lists two partitions and an sbatch that records any call (there must be none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"sinfo": "printf 'cpu*\\ngpu\\n'", "sbatch": f"echo \"$@\" >> {tmp_path / 'sbatch.calls'}",
                       "srun": "exit 0"}.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

