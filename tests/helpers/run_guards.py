"""Helpers for e2e/test_run_guards.py, unit/test_run_guards.py."""

from __future__ import annotations

from pathlib import Path

import yaml


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

