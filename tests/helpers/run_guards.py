"""Helpers for e2e/test_run_guards.py, unit/test_run_guards.py; `cpu_host`, an autouse fixture, applies
where it is imported."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import bench.harness.host
import bench.harness.runner
from bench.harness.host import Host


def write_matrix(path: Path, budget=None, params=None, seeds=1, topologies=("gpu-1", "gpu-ddp2")) -> str:
    spec = {
        "name": "t",
        "seeds": seeds,
        "timeout_s": 60,
        "topologies": list(topologies),
        "precisions": ["fp32"],
        "workloads": {
            "maintenance": {
                "variants": ["gru"],
                "budget": budget or {"max_epochs": 1, "max_steps": 30},
                "params": params or {"target": 0.3},
                "baselines": False,
            }
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert not any(line.startswith("error") or "Traceback" in line for line in err[:-1]), err
    return err[-1]


BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfa"


NO_GPU = Host(gpus=0, bf16_gpu=False, fp8_backend=None)


@pytest.fixture(autouse=True)
def cpu_host(monkeypatch):
    """Every GPU cell is skipped (written by the runner, never launched), whatever this host has."""
    monkeypatch.setattr(bench.harness.host.Host, "detect", classmethod(lambda cls: NO_GPU))
    monkeypatch.setattr(bench.harness.runner, "measure_peak_flops_apart", lambda: ("cpu-test", {"cpu": {}}))
