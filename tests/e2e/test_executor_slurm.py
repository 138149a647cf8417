"""The tests of tests/unit/test_executor_slurm.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.errors import BenchError
from bench.results import validate_result
from tests.conftest import PROJECT_ROOT, as_at_a_terminal, run_cli
from tests.helpers.executor_slurm import _fake_cluster, _matrix, _one_error
from tests.helpers.runs import cells_by_id, processes_mentioning

pytest.importorskip("submitit")


WAIT_S = 300  # a hang guard for things that take seconds on an idle machine, not a timing under test


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


@pytest.mark.e2e
def test_an_unknown_partition_is_refused_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _fake_cluster(tmp_path)["PATH"])
    results = tmp_path / "results"
    assert main(["run", "--matrix", _matrix(tmp_path), "--executor", "slurm", "--partition", "gpux",
                 "--results-dir", str(results)]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "unknown partition 'gpux'" in line and "cpu, gpu" in line
    assert not (tmp_path / "sbatch.calls").exists() and not results.exists()


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



def _sinfo(tmp_path: Path, monkeypatch, gres: str) -> Path:
    """A `sinfo` that prints `gres` (what a real one prints for --format=%G) and records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sinfo"
    script.write_text(f"#!/usr/bin/env bash\necho \"$@\" >> {tmp_path / 'sinfo.calls'}\nprintf '{gres}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "sinfo.calls"


@pytest.mark.e2e
def test_the_probe_asks_for_the_partitions_gpus_as_sinfo_reports_them(tmp_path, monkeypatch):
    from bench.harness.config import ExecutorOptions
    from bench.harness.executors.node_probe import gpus_to_ask, partition_gpus

    calls = _sinfo(tmp_path, monkeypatch, "gpu:h100:8(S:0-1)\\ngpu:h100:8(S:0-1)\\n")
    slurm = ExecutorOptions(type="slurm", partition="gpu")
    assert partition_gpus("gpu") == 8
    assert "--partition gpu" in calls.read_text()
    assert gpus_to_ask(slurm, None) == 8
    assert gpus_to_ask(slurm, 4) == 4  # --gpus N wins
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sinfo at all: the count must be said
    assert partition_gpus("gpu") is None
    with pytest.raises(BenchError, match="give it with --gpus N"):
        gpus_to_ask(slurm, None)


@pytest.mark.e2e
def test_probe_node_plans_and_records_what_a_job_found_on_the_node(tmp_path):
    # The probe job runs through submitit's LocalExecutor: a real job process, whose facts (this
    # host's, here) the run is planned for and whose environment and peak run.json keeps.
    matrix = _matrix(tmp_path)
    common = ["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--executor", "slurm",
              "--cluster", "local", "--probe-node"]
    dry = run_cli(*common, "--run-id", "dry", "--dry-run", timeout=WAIT_S)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "--probe-node: probing a node of partition (default) for 0 GPU(s) in job" in dry.stderr
    assert "planned for nodes of 0 GPU(s) of compute capability unknown" in dry.stdout
    assert not (tmp_path / "results" / "dry" / "cells").exists()
    done = run_cli(*common, "--run-id", "probed", timeout=WAIT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((tmp_path / "results" / "probed" / "run.json").read_text())
    planned, env = meta["planned_for"], meta["environment"]
    assert planned["gpus"] == 0 and planned["probed_on"] == socket.gethostname()
    job = planned["probe_job"]
    assert env["measured_in_job"] == job  # the job measured it (its JobEnvironment), as the runner recorded its id
    assert env["peak_flops"]["cpu"]["measured"]["fp32"] > 0
    assert list((tmp_path / "results" / "probed" / "slurm" / "probe").glob(f"{job}_*_result.pkl"))
    (cell,) = cells_by_id(tmp_path / "results" / "probed").values()
    assert cell["status"] in ("converged", "not_converged"), cell.get("reason")
    resumed = run_cli("run", "--resume", "probed", "--results-dir", str(tmp_path / "results"), "--probe-node",
                      timeout=WAIT_S)
    assert resumed.returncode == 2 and "--resume plans for the nodes its run was planned for" in resumed.stderr
