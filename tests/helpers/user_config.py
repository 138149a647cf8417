"""Helpers for e2e/test_user_config.py, unit/test_user_config.py."""

from __future__ import annotations

from pathlib import Path

import yaml

# What `accelerate config` writes for "This machine, no distributed training, CPU only".
ACCELERATE_CONFIG_CPU = {
    "compute_environment": "LOCAL_MACHINE",
    "debug": False,
    "distributed_type": "NO",
    "downcast_bf16": "no",
    "enable_cpu_affinity": False,
    "machine_rank": 0,
    "main_training_function": "main",
    "mixed_precision": "no",
    "num_machines": 1,
    "num_processes": 1,
    "rdzv_backend": "static",
    "same_network": True,
    "tpu_env": [],
    "tpu_use_cluster": False,
    "tpu_use_sudo": False,
    "use_cpu": True,
}


def write_config(folder: Path, name: str = "my-cpu.yaml", **changes) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**ACCELERATE_CONFIG_CPU, **changes}))
    return path

