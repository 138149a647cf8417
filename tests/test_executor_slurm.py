"""`bench run --executor slurm` without a cluster.

The jobs' resources are read from the sbatch script submitit itself generates for them (nothing
submitted). Real runs go through submitit's own LocalExecutor (`--cluster local`): the same
job function, job records, progress, cancel and re-attach code as on a cluster, with real
processes; only sbatch/sacct are replaced by submitit's local controller. No mocks.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.cells import Cell
from bench.cli import main
from bench.harness.config import ExecutorOptions, executor_options
from bench.harness.executors.slurm import job_parameters, sbatch_script
from bench.harness.topology import load_topology
from bench.results import validate_result
from tests.conftest import PROJECT_ROOT, as_at_a_terminal, run_cli
from tests.test_e2e_run import cells_by_id, processes_mentioning

pytest.importorskip("submitit")

WAIT_S = 300  # a hang guard for things that take seconds on an idle machine, not a timing under test


def _script(topology: str, **options) -> str:
    cell = Cell("maintenance", "lstm", topology, "fp32", 0, timeout_s=600)
    params = job_parameters(cell, load_topology(topology), ExecutorOptions(type="slurm", **options))
    return sbatch_script(params, Path("/shared/run/slurm"))


def _sbatch_lines(script: str) -> set[str]:
    return {line.strip() for line in script.splitlines() if line.startswith("#SBATCH")}


def test_each_cell_is_a_job_with_the_resources_its_topology_needs():
    one = _sbatch_lines(_script("cpu-1proc", cpus_per_rank=4, mem_per_rank_gb=8, partition="cpu", max_jobs=3))
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8GB",
            "#SBATCH --time=15", "#SBATCH --partition=cpu"} <= one
    assert not any("gpus" in line for line in one)
    two = _sbatch_lines(_script("cpu-ddp2", cpus_per_rank=4, mem_per_rank_gb=8))
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16GB"} <= two
    nodes = _sbatch_lines(_script("cpu-2node", cpus_per_rank=4, mem_per_rank_gb=8, account="proj", qos="high",
                                  sbatch={"constraint": "avx512"}))
    # Two nodes, one task (one `accelerate launch`) on each, each with its own rank's CPUs.
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --account=proj",
            "#SBATCH --qos=high", "#SBATCH --constraint=avx512"} <= nodes
    gpu = _sbatch_lines(_script("gpu-2node-x8", cpus_per_rank=8, mem_per_rank_gb=32))
    assert {"#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=64", "#SBATCH --mem=256GB"} <= gpu


def test_jobs_are_exclusive_and_srun_gives_each_task_its_cpus():
    script = _script("cpu-ddp2", cpus_per_rank=4)
    assert "#SBATCH --exclusive" in _sbatch_lines(script)
    srun = next(line for line in script.splitlines() if line.startswith("srun"))
    assert "--cpus-per-task 8" in srun  # the task's CPUs on the srun line too, not only in #SBATCH
    shared = _sbatch_lines(_script("cpu-ddp2", cpus_per_rank=4, exclusive=False))
    assert "#SBATCH --exclusive" not in shared


def test_the_job_array_is_capped_at_max_jobs():
    cell = Cell("maintenance", "lstm", "cpu-1proc", "fp32", 0, timeout_s=600)
    params = job_parameters(cell, load_topology("cpu-1proc"), ExecutorOptions(type="slurm", max_jobs=3))
    script = sbatch_script({**params, "map_count": 10}, Path("/shared/run/slurm"))
    assert "#SBATCH --array=0-9%3" in script


def test_submitits_slurm_executor_takes_each_cells_parameters(tmp_path, monkeypatch):
    """What run_on_slurm hands SlurmExecutor.update_parameters, checked by submitit itself (its
    own validation renders the sbatch script); no sbatch is called."""
    import submitit

    monkeypatch.setenv("PATH", _fake_cluster(tmp_path)["PATH"])  # submitit looks for srun
    for topology in ("cpu-1proc", "cpu-ddp2", "cpu-2node", "gpu-2node-x8"):
        cell = Cell("maintenance", "lstm", topology, "fp32", 0, timeout_s=600)
        params = job_parameters(cell, load_topology(topology), ExecutorOptions(type="slurm", partition="p"))
        executor = submitit.SlurmExecutor(folder=tmp_path / "slurm")
        executor.update_parameters(**params)
        script = executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
        assert f"#SBATCH --nodes={load_topology(topology).num_machines}" in script
    assert not (tmp_path / "sbatch.calls").exists()


def test_options_come_from_the_matrix_section_and_the_command_line_wins():
    options = executor_options({"type": "slurm", "partition": "a", "sbatch": {"constraint": "x"}, "max_jobs": 4},
                               {"partition": "b", "sbatch": {"exclusive": ""}, "max_jobs": None})
    assert (options.type, options.partition, options.max_jobs) == ("slurm", "b", 4)
    assert options.sbatch == {"constraint": "x", "exclusive": ""}


# -- bad input: one line, exit 2, nothing submitted ------------------------------------------------


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


@pytest.mark.e2e
def test_slurm_without_submitit_installed_is_one_line(tmp_path):
    # submitit hidden from this interpreter only: None in sys.modules makes `import submitit` fail.
    code = "import sys; sys.modules['submitit'] = None; from bench.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "run", "--matrix", _matrix(tmp_path), "--executor", "slurm",
                           "--cluster", "local", "--results-dir", str(tmp_path / "results")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 2
    assert "submitit" in _one_error(proc.stderr)
    assert not (tmp_path / "results").exists()


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


@pytest.mark.e2e
def test_an_unknown_partition_is_refused_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _fake_cluster(tmp_path)["PATH"])
    results = tmp_path / "results"
    assert main(["run", "--matrix", _matrix(tmp_path), "--executor", "slurm", "--partition", "gpux",
                 "--results-dir", str(results)]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "unknown partition 'gpux'" in line and "cpu, gpu" in line
    assert not (tmp_path / "sbatch.calls").exists() and not results.exists()


def test_an_unknown_executor_option_in_the_matrix_is_one_line(tmp_path, capsys):
    matrix = _matrix(tmp_path, executor={"type": "slurm", "partiton": "gpu"})
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results")]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "unknown option(s) partiton" in line and "partition" in line
    assert not (tmp_path / "results").exists()


# -- real runs through submitit's LocalExecutor ----------------------------------------------------


def _numbers(result: dict) -> tuple:
    return result["status"], result.get("metrics"), [row.get("f1") for row in result.get("curve") or []]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_maintenance_smoke_cells_through_the_slurm_path_match_the_local_executor(tmp_path):
    # The smoke matrix's maintenance cells in fp32 (whose numbers must match) and its baselines, but
    # bound by 30 steps: the smoke budget's 90 s training clock ends a cell early on a loaded machine,
    # and the two runs would then differ by the load, not by the executor. What is compared is the
    # path (launch, job, result), which 30 steps and three evaluations exercise as fully as 40 epochs.
    smoke = yaml.safe_load((PROJECT_ROOT / "bench" / "configs" / "matrix" / "smoke.yaml").read_text())
    maintenance = smoke["workloads"]["maintenance"]
    maintenance["budget"] = {"max_epochs": 40, "max_steps": 30, "max_seconds": 3600}
    maintenance["params"] = {**maintenance.get("params", {}), "eval_every_steps": 10}
    spec = {"name": "smoke-fp32", "timeout_s": 1800, "seeds": 1, "topologies": smoke["topologies"],
            "precisions": ["fp32"], "workloads": {"maintenance": maintenance}}
    matrix = tmp_path / "smoke-fp32.yaml"
    matrix.write_text(yaml.safe_dump(spec))
    common = ["run", "--matrix", str(matrix), "--results-dir", str(tmp_path)]
    local = run_cli(*common, "--run-id", "local", timeout=1800)
    assert local.returncode == 0, local.stderr[-2000:]
    # One job at a time: each cell gets the whole host, as in the local run (the same threads).
    slurm = run_cli(*common, "--run-id", "slurm", "--executor", "slurm", "--cluster", "local", "--max-jobs", "1",
                    timeout=1800)
    assert slurm.returncode == 0, slurm.stderr[-2000:]
    here, there = cells_by_id(tmp_path / "local"), cells_by_id(tmp_path / "slurm")
    assert sorted(here) == sorted(there) and len(there) == 4  # 3 topologies in fp32, and the baselines
    jobs = json.loads((tmp_path / "slurm" / "slurm" / "jobs.json").read_text())
    assert sorted(jobs) == sorted(there)
    for cell_id, result in there.items():
        assert validate_result(result) == [], cell_id
        assert result["status"] == here[cell_id]["status"], (cell_id, result.get("reason"))
        assert result["placement"]["executor"] == "slurm"
        assert result["placement"]["job_id"] == jobs[cell_id]["job_id"]
        if result["cell"]["precision"] == "fp32" and result["status"] != "baseline":
            assert _numbers(result) == _numbers(here[cell_id]), cell_id  # same seed, fp32: same numbers


def _long_run(tmp_path: Path, run_id: str, seconds: float = 40) -> subprocess.Popen:
    # Two cells (two seeds) that cannot reach their target: they train until max_seconds. The
    # output goes to files, not pipes: a local job's controller keeps the runner's stdout open.
    matrix = _matrix(tmp_path, seeds=2, params={"target": 1.0, "eval_every_steps": 10},
                     budget={"max_epochs": 50, "max_seconds": seconds})
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--matrix", matrix, "--executor", "slurm", "--cluster", "local",
         "--max-jobs", "2", "--results-dir", str(tmp_path / "results"), "--run-id", run_id],
        cwd=PROJECT_ROOT, stdout=(tmp_path / "out.txt").open("w"), stderr=(tmp_path / "err.txt").open("w"), text=True,
        preexec_fn=as_at_a_terminal)  # the Ctrl-C test's SIGINT must reach it, however pytest was started


def _wait_for_workers(run_dir: Path, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        # The worker processes themselves, one per cell: `accelerate launch` names the worker module
        # in its own command line too, and counting it would take one started cell for two.
        workers = [pid for pid in processes_mentioning(str(run_dir))
                   if _is_worker(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))]
        if len(workers) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{count} workers of {run_dir} never started")


def _is_worker(argv: list[bytes]) -> bool:
    return b"bench.harness.worker" in argv and not any(b"accelerate" in arg for arg in argv)


def _gone(run_dir: Path) -> list[int]:
    deadline = time.monotonic() + 60
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return processes_mentioning(str(run_dir))


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_cancels_every_job_of_the_run(tmp_path):
    run_dir = tmp_path / "results" / "r"
    # Long enough that no cell can end before the Ctrl-C, however loaded the machine (a 40 s budget
    # once did, under load): the cells are cancelled, so the budget costs nothing.
    runner = _long_run(tmp_path, "r", seconds=600)
    _wait_for_workers(run_dir, 2)
    time.sleep(3)
    jobs = json.loads((run_dir / "slurm" / "jobs.json").read_text())
    runner.send_signal(signal.SIGINT)
    runner.wait(timeout=WAIT_S)
    err = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
    assert runner.returncode != 0
    assert "cancelled 2 job(s)" in err and all(job["job_id"] in err for job in jobs.values()), err[-2000:]
    assert _gone(run_dir) == []  # the jobs' controllers, launchers and workers
    assert list((run_dir / "cells").glob("*.json")) == []  # nothing half-done is kept as a result


@pytest.mark.e2e
@pytest.mark.slow
def test_resume_re_attaches_to_jobs_still_running_instead_of_submitting_again(tmp_path):
    run_dir = tmp_path / "results" / "r"
    runner = _long_run(tmp_path, "r")
    _wait_for_workers(run_dir, 2)
    runner.kill()  # the runner dies; its jobs, like SLURM's, live on
    runner.wait(timeout=WAIT_S)
    jobs = json.loads((run_dir / "slurm" / "jobs.json").read_text())
    submitted = sorted(p.name for p in (run_dir / "slurm").glob("*_submitted.pkl"))
    resumed = run_cli("run", "--results-dir", str(tmp_path / "results"), "--resume", "r", timeout=WAIT_S)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for cell_id, job in jobs.items():
        assert f"{cell_id}: re-attached to job {job['job_id']}" in resumed.stdout + resumed.stderr, resumed.stdout[-2000:]
    assert json.loads((run_dir / "slurm" / "jobs.json").read_text()) == jobs
    assert sorted(p.name for p in (run_dir / "slurm").glob("*_submitted.pkl")) == submitted  # nothing resubmitted
    results = cells_by_id(run_dir)
    assert sorted(results) == sorted(jobs)
    for cell_id, result in results.items():
        assert result["status"] == "not_converged", (cell_id, result.get("reason"))
        assert result["placement"]["job_id"] == jobs[cell_id]["job_id"]
    assert _gone(run_dir) == []
