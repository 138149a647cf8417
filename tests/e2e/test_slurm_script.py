"""The tests of tests/unit/test_slurm_script.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench.paths import ACCELERATE_CONFIGS_DIR, PROJECT_ROOT
from tests.helpers.slurm_script import SCRIPT

SRUN = """#!/usr/bin/env bash
# Test stand-in for srun: the command once per node, in the background, SLURM_NODEID set.
args="$*"; echo "srun ${args//$'\\n'/ }" >> "$SRUN_LOG"  # one line per call
nodes=$SLURM_NNODES
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) nodes=${1#--nodes=}; shift ;;
    --*) shift ;;
    *) break ;;
  esac
done
pids=()
for ((node = 0; node < nodes; node++)); do SLURM_NODEID=$node "$@" & pids+=($!); done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


SCONTROL = "#!/usr/bin/env bash\necho 127.0.0.1\n"


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _plan_cell(tmp_path: Path) -> tuple[Path, Path]:
    """The 2-node maintenance cell's launch file, as `bench run --dry-run` writes it."""
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "--matrix", "smoke", "--workload", "maintenance", "--config", "cpu-2node",
         "--precision", "fp32", "--dry-run", "--run-id", "cluster", "--results-dir", str(tmp_path)],
        check=True, capture_output=True, timeout=300)
    run_dir = tmp_path / "cluster"
    cell_id = "maintenance-lstm__cpu-2node__fp32__s0"
    return run_dir / "launch" / f"{cell_id}.json", run_dir / "cells" / f"{cell_id}.json"


def _sbatch(tmp_path: Path, args: list[str], nodes: int, cpus: int = 1, timeout_s: float = 600) -> subprocess.CompletedProcess:
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    _executable(shims / "srun", SRUN)
    _executable(shims / "scontrol", SCONTROL)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(shims), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "BENCH_PYTHON": sys.executable,
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "SLURM_NNODES": str(nodes),
        "SLURM_CPUS_ON_NODE": str(cpus),
        "SLURM_JOB_NODELIST": "node[1-2]",
        "BENCH_MAIN_PORT": str(29600 + os.getpid() % 300),
    }
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s, start_new_session=True)


def _srun_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "srun.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.e2e
@pytest.mark.slow
def test_a_two_node_cell_runs_through_the_script_and_writes_its_result_and_run_json(tmp_path):
    cell_file, out = _plan_cell(tmp_path)
    done = _sbatch(tmp_path, [str(ACCELERATE_CONFIGS_DIR / "cpu-2node.yaml"), "fp32", str(cell_file), str(out)], nodes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["status"] in ("converged", "not_converged"), result.get("reason")
    assert result["observed"]["num_processes"] == 2
    run = json.loads((out.parent.parent / "run.json").read_text())
    assert run["environment"]["peak_flops"]["cpu"]["measured"]["fp32"] > 0
    calls = _srun_calls(tmp_path)
    launch = [c for c in calls if "accelerate launch" in c]
    assert len(launch) == 1
    # Each node's launcher gets every core of its node, and one failing node ends the others.
    assert "--cpus-per-task=1" in launch[0] and "--kill-on-bad-exit=1" in launch[0]
    assert "--num_processes 2" in launch[0] and "--num_cpu_threads_per_process 1" in launch[0]


@pytest.mark.e2e
def test_an_allocation_with_the_wrong_node_count_is_refused_before_anything_runs(tmp_path):
    cell_file, out = _plan_cell(tmp_path)
    done = _sbatch(tmp_path, [str(ACCELERATE_CONFIGS_DIR / "cpu-2node.yaml"), "fp32", str(cell_file), str(out)], nodes=3)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {ACCELERATE_CONFIGS_DIR / 'cpu-2node.yaml'} is for 2 node(s), this allocation has 3; "
        "submit with sbatch --nodes=2"]
    assert _srun_calls(tmp_path) == []
    assert not out.exists()


@pytest.mark.e2e
def test_an_unknown_precision_is_refused(tmp_path):
    done = _sbatch(tmp_path, [str(ACCELERATE_CONFIGS_DIR / "cpu-2node.yaml"), "int4", "cell.json", "out.json"], nodes=2)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: precision 'int4' is not one of fp32, tf32, fp16, bf16, fp8"


@pytest.mark.e2e
@pytest.mark.slow
def test_a_cell_past_its_timeout_is_ended_and_gets_a_failed_result(tmp_path):
    cell_file, out = _plan_cell(tmp_path)
    cell = json.loads(cell_file.read_text())
    cell_file.write_text(json.dumps({**cell, "timeout_s": 3}))  # less than the imports take
    done = _sbatch(tmp_path, [str(ACCELERATE_CONFIGS_DIR / "cpu-2node.yaml"), "fp32", str(cell_file), str(out)], nodes=2)
    assert done.returncode == 124
    result = json.loads(out.read_text())
    assert result["status"] == "failed"
    assert result["reason"] == "timed out after 3 s (the cell's timeout_s)"

