"""Helpers for:
- e2e/test_compare.py
- e2e/test_e2e_run.py
- e2e/test_executor_slurm.py
- e2e/test_host_load.py
- e2e/test_mlperf_log.py
- e2e/test_parallel.py
- e2e/test_process_faults.py
- e2e/test_shared_launch.py
- e2e/test_trackers.py
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from bench.results import load_run_dicts


# The work is bounded by epochs (and steps); the seconds and the timeout are hang guards, sized for
# a 2-core machine shared with other CPU-heavy work, where a cell has taken over 180 s.
def matrix_file(tmp_path: Path, topologies, precisions, params=None, budget=None, timeout_s=900, baselines=False) -> str:
    spec = {
        "name": "test",
        "timeout_s": timeout_s,
        "topologies": topologies,
        "precisions": precisions,
        "workloads": {
            "maintenance": {
                "variants": ["gru"],
                "budget": budget or {"max_epochs": 15, "max_seconds": 900},
                "params": params or {},
                "baselines": baselines,
            }
        },
    }
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def only_run(results_dir: Path) -> Path:
    runs = [p for p in results_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def cells_by_id(run_dir: Path) -> dict[str, dict]:
    return {r["cell"]["id"]: r for r in load_run_dicts(run_dir)}


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids

