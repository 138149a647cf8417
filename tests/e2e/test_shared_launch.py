"""The tests of tests/unit/test_shared_launch.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.results import validate_result
from tests.conftest import PROJECT_ROOT, run_cli
from tests.helpers.runs import cells_by_id, processes_mentioning
from tests.helpers.shared_launch import CELL

WAIT_S = 240  # a hang guard for what takes seconds on an idle machine, not a timing under test


def seeds_matrix(tmp_path: Path, seeds: list[int], budget: dict, name: str = "matrix.yaml", timeout_s: int = 600) -> str:
    spec = {
        "name": "shared", "timeout_s": timeout_s, "seeds": seeds, "topologies": ["cpu-1proc"], "precisions": ["fp32"],
        "workloads": {"maintenance": {"variants": ["gru"], "baselines": False, "budget": budget,
                                      "params": {"target": 1.0, "eval_every_steps": 10}}},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def without_clocks(curve: list[dict]) -> list[dict]:
    """A curve's points without the clock readings (seconds, dates): the numbers the seed computed."""
    return [{k: v for k, v in point.items() if k not in ("seconds", "time_unix")} for point in curve]


def launches_in(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("$ "))


@pytest.mark.e2e
def test_seeds_share_one_launch_and_a_seed_gives_the_numbers_it_gives_alone(tmp_path):
    budget = {"max_epochs": 1, "max_seconds": 600, "max_steps": 20}
    shared = run_cli("run", "--matrix", seeds_matrix(tmp_path, [0, 1], budget), "--results-dir", str(tmp_path),
                     "--run-id", "shared")
    assert shared.returncode == 0, shared.stderr[-2000:]
    cells = cells_by_id(tmp_path / "shared")
    s0, s1 = cells[f"{CELL}__s0"], cells[f"{CELL}__s1"]
    for result in (s0, s1):
        assert validate_result(result) == [] and result["status"] == "not_converged", result.get("reason")
        assert result["launch"]["seeds"] == 2 and result["launch"]["own_s"] > 0
    # One launch for both seeds: one command in its log, which each seed's log links to.
    log = tmp_path / "shared" / "logs" / f"{CELL}__seeds-0-1.log"
    assert launches_in(log) == 1
    assert (tmp_path / "shared" / "logs" / f"{CELL}__s1.log").resolve() == log.resolve()
    assert (tmp_path / "shared" / "mllog" / f"{CELL}__s1.log").is_file()
    # The launch's wall time is split over its seeds: their cell_wall_s add up to it.
    assert s0["launch"]["wall_s"] == s1["launch"]["wall_s"]
    assert s0["cell_wall_s"] + s1["cell_wall_s"] == pytest.approx(s0["launch"]["wall_s"], abs=0.01)
    assert s0["metrics"] != s1["metrics"]  # two seeds, two trainings

    alone = run_cli("run", "--matrix", seeds_matrix(tmp_path, [1], budget, "alone.yaml"), "--results-dir", str(tmp_path),
                    "--run-id", "alone")
    assert alone.returncode == 0, alone.stderr[-2000:]
    [by_itself] = cells_by_id(tmp_path / "alone").values()
    assert by_itself["launch"]["seeds"] == 1 and by_itself["cell_wall_s"] == by_itself["launch"]["wall_s"]
    # Every random generator is seeded again and the model built anew for each seed: seed 1 after
    # seed 0 in one process computes exactly what seed 1 computes alone.
    assert by_itself["metrics"] == s1["metrics"]
    assert without_clocks(by_itself["curve"]) == without_clocks(s1["curve"])
    assert by_itself["samples_seen"] == s1["samples_seen"]


@pytest.mark.e2e
def test_a_launch_killed_after_its_first_seed_costs_only_the_seeds_not_done_and_resume_runs_those(tmp_path):
    # Each seed trains 6 s of its budget (the target is out of reach), so that the launch is killed
    # while its second seed runs, not after it.
    matrix = seeds_matrix(tmp_path, [0, 1, 2], {"max_epochs": 50, "max_seconds": 6})
    run_dir = tmp_path / "killed"
    runner = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--matrix", matrix, "--results-dir", str(tmp_path), "--run-id", "killed"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not (run_dir / "cells" / f"{CELL}__s0.json").exists():
            time.sleep(0.1)
        assert (run_dir / "cells" / f"{CELL}__s0.json").exists(), "the first seed wrote no result in time"
        [worker] = [pid for pid in processes_mentioning(str(run_dir))
                    if "bench.harness.worker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    and "accelerate" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
        os.kill(worker, signal.SIGKILL)
        out, err = runner.communicate(timeout=WAIT_S)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, err[-2000:]  # failed seeds: the run says so
    assert "3 cells in" in out and "2 failed or invalid" in out
    cells = cells_by_id(run_dir)
    kept = cells[f"{CELL}__s0"]
    assert kept["status"] == "not_converged" and validate_result(kept) == []
    for seed in (1, 2):
        lost = cells[f"{CELL}__s{seed}"]
        assert lost["status"] == "failed" and validate_result(lost) == []
        assert "exit codes" in lost["reason"] and "shared with seed(s)" in lost["reason"], lost["reason"]
    # The three seeds' cell_wall_s still add up to the launch's wall time.
    assert sum(cells[f"{CELL}__s{s}"]["cell_wall_s"] for s in range(3)) == pytest.approx(kept["launch"]["wall_s"], abs=0.02)
    time.sleep(1)
    assert processes_mentioning(str(run_dir)) == []
    kept_mtime = (run_dir / "cells" / f"{CELL}__s0.json").stat().st_mtime_ns

    resumed = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path), "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    cells = cells_by_id(run_dir)
    assert (run_dir / "cells" / f"{CELL}__s0.json").stat().st_mtime_ns == kept_mtime  # not run again
    for seed in (1, 2):
        redone = cells[f"{CELL}__s{seed}"]
        assert redone["status"] == "not_converged" and redone["launch"]["seeds"] == 2
    # The resume launched the two seeds not done, together, and nothing else.
    assert launches_in(run_dir / "logs" / f"{CELL}__seeds-1-2.log") == 1
    assert "__s0.json" not in (run_dir / "logs" / f"{CELL}__seeds-1-2.log").read_text().splitlines()[0]


@pytest.mark.e2e
def test_the_dry_run_shows_one_launch_per_configuration(tmp_path):
    proc = run_cli("run", "--matrix", "smoke", "--seeds", "3", "--workload", "maintenance", "--config", "cpu-1proc",
                   "--precision", "fp32", "--dry-run", "--results-dir", str(tmp_path), "--run-id", "dry")
    assert proc.returncode == 0, proc.stderr[-2000:]
    launches = [line for line in proc.stdout.splitlines() if "bench.harness.worker" in line]
    train = [line for line in launches if "accelerate" in line]
    assert len(train) == 1 and "3 seeds, one launch" in train[0]
    assert len([line for line in launches if "baselines" in line]) == 3  # classical models: a launch per seed
    for seed in range(3):
        assert f"--out {tmp_path}/dry/cells/maintenance-lstm__cpu-1proc__fp32__s{seed}.json" in proc.stdout


@pytest.mark.e2e
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores for two 1-core launches")
def test_parallel_runs_a_cells_seeds_in_one_pinned_launch(tmp_path):
    spec = yaml.safe_load(Path(seeds_matrix(tmp_path, [0, 1], {"max_epochs": 1, "max_seconds": 600, "max_steps": 20})).read_text())
    spec["precisions"] = ["fp32", "bf16"]  # two launches side by side, a core each
    (tmp_path / "par.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cli("run", "--matrix", str(tmp_path / "par.yaml"), "--parallel", "2", "--results-dir", str(tmp_path),
                   "--run-id", "par", env={"BENCH_CPU_CORES": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = cells_by_id(tmp_path / "par")
    assert len(cells) == 4
    for precision in ("fp32", "bf16"):
        s0, s1 = (cells[f"maintenance-gru__cpu-1proc__{precision}__s{seed}"] for seed in (0, 1))
        assert s0["launch"]["seeds"] == s1["launch"]["seeds"] == 2 and s0["launch"]["wall_s"] == s1["launch"]["wall_s"]
        assert s0["placement"]["cores"] == s1["placement"]["cores"] and len(s0["placement"]["cores"]) == 1
        assert s0["placement"]["pinned"] is True
        assert launches_in(tmp_path / "par" / "logs" / f"maintenance-gru__cpu-1proc__{precision}__seeds-0-1.log") == 1
    assert cells[f"{CELL}__s1"]["status"] == "not_converged"

