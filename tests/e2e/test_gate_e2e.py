"""The real gate command on a copy of this checkout: a commit that slows the training step by
30% fails it, naming the traffic cell; an unchanged commit passes. Real launches, real commits,
no edited results (bench/analysis/gate/calibrate.py makes the slower step)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.analysis.gate.calibrate import commit, copy_checkout, slow_commit, slow_step
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]


CELL = "traffic-ae__cpu-1proc__fp32"


pytestmark = pytest.mark.e2e


def _traffic_matrix(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "gate-traffic", "timeout_s": 240, "seeds": 1, "topologies": ["cpu-1proc"], "precisions": ["fp32"],
        "workloads": {"traffic": {"variants": ["ae"], "baselines": False, "budget": {"max_epochs": 30, "max_seconds": 200}}},
    }))
    return path


def _gate(repo: Path, matrix: Path, folder: Path, alpha: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("BENCH_GATE_BASE", None)
    return subprocess.run([sys.executable, "-m", "bench", "gate", "--matrix", str(matrix), "--rounds", "12",
                           "--seeds-per-launch", "1", "--alpha", str(alpha), "--folder", str(folder),
                           "--format", "json", "--out", str(folder / "gate.json")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # two real gates of 12 rounds (one cell): about 10 min; beside make test's other worker the noise hid 30%
def test_a_30_percent_slower_step_fails_the_gate_naming_the_cell_and_an_unchanged_commit_passes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_checkout(ROOT, repo)
    matrix = _traffic_matrix(tmp_path / "gate-traffic.yaml")

    commit(repo, "unchanged: no change to any file")
    # alpha 0.01 here: the gate's 5% is a rate, and this test must not fail one run in twenty.
    same = _gate(repo, matrix, tmp_path / "same", alpha=0.01)
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-2000:]
    assert "**PASS**" in same.stdout

    slow_commit(repo, 0.3)
    slower = _gate(repo, matrix, tmp_path / "slower", alpha=0.05)
    assert slower.returncode == 1, slower.stdout[-3000:] + slower.stderr[-2000:]
    failed = [line for line in slower.stdout.splitlines() if "| regression" in line]
    assert any(CELL in line and "step_time_p10_s" in line for line in failed), slower.stdout[-3000:]


def test_the_slowdown_patch_fails_loudly_when_train_step_changes():
    source = (ROOT / "bench/harness/train.py").read_text()
    assert "_slow.perf_counter()" in slow_step(source, 0.3)
    with pytest.raises(BenchError, match="train_step is not as"):
        slow_step(source.replace("optimizer.zero_grad(set_to_none=True)", "optimizer.zero_grad()"), 0.3)


def test_a_base_that_cannot_run_leaves_the_candidate_judged_alone_and_says_why(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_checkout(ROOT, repo)
    (repo / "bench" / "__main__.py").write_text('raise SystemExit("error: this base predates the gate")\n')
    commit(repo, "a base whose bench cannot run")
    (repo / "bench" / "__main__.py").write_text((ROOT / "bench" / "__main__.py").read_text())
    commit(repo, "the candidate runs again")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("BENCH_GATE_BASE", None)
    done = subprocess.run([sys.executable, "-m", "bench", "gate", "--matrix", str(_traffic_matrix(tmp_path / "m.yaml")),
                           "--rounds", "2", "--seeds-per-launch", "1", "--folder", str(tmp_path / "gate"),
                           "--allow-no-base"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "The base could not run (`bench run` exited 1 with no result: error: this base predates the gate" in done.stdout
    assert "speed, memory and quality changes are not judged" in done.stdout
    # Without --allow-no-base the same measurement is inconclusive, and fails the gate.
    again = subprocess.run([sys.executable, "-m", "bench", "gate", "--judge-only", str(tmp_path / "gate")],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "inconclusive: the base could not run" in again.stdout


def test_bad_gate_input_is_one_line_and_exit_2(tmp_path):
    for args, words in ((["--base", "no-such-rev", "--rounds", "2"], "the gate's base 'no-such-rev' is not a commit"),
                        (["--rounds", "1"], "--rounds must be at least 2"),
                        (["--matrix", str(tmp_path / "missing.yaml")], "no such file")):
        done = subprocess.run([sys.executable, "-m", "bench", "gate", *args, "--folder", str(tmp_path / "g")],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr

