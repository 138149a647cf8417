"""Helpers for e2e/test_seeds_auto.py, unit/test_seeds_auto.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_matrix(path: Path, topologies, seeds=1, budget=None, params=None, grad_accum=None) -> str:
    workload: dict[str, Any] = {"variants": ["gru"], "budget": budget or {"max_epochs": 1, "max_steps": 30},
                                "params": params or {"target": 0.3}, "baselines": False}
    if grad_accum:
        workload["grad_accum"] = grad_accum
    spec = {"name": "t", "seeds": seeds, "timeout_s": 300, "topologies": list(topologies), "precisions": ["fp32"],
            "workloads": {"maintenance": workload}}
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]

