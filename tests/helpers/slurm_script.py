"""Helpers for e2e/test_slurm_script.py, unit/test_slurm_script.py."""

from __future__ import annotations

from bench.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "slurm-multinode.sbatch"

