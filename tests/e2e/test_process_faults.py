"""Process faults during a real run: one rank killed, the runner interrupted with Ctrl-C.

Each test starts `python -m bench run` on a real maintenance cell, injects the fault once the
cell's ranks are up, and checks what a user is promised (docs/reliability.md): the fault costs
only the cell it hit, no process of the run is left behind, no half-written file is left, and
what completed is kept. The runner killed outright (SIGKILL) and a peer node that never starts are
tested in tests/e2e/test_e2e_run.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, as_at_a_terminal
from tests.helpers.runs import matrix_file, processes_mentioning

pytestmark = pytest.mark.e2e


# Generous: these bound a wait for something that happens in seconds on an idle machine, so that
# a hang fails the test instead of the suite; they are not timings under test.
WAIT_S = 240


def _start_run(matrix: str, results_dir: Path, run_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--matrix", matrix, "--results-dir", str(results_dir), "--run-id", run_id],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_at_a_terminal,  # the test's Ctrl-C must reach it, however pytest was started
    )


def _workers(run_dir: Path) -> dict[int, list[str]]:
    """The environment of each bench.harness.worker process launched for `run_dir`, by pid."""
    workers = {}
    for pid in processes_mentioning(str(run_dir)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "bench.harness.worker" in cmdline:
            workers[pid] = environ
    return workers


def _worker_ranks(run_dir: Path) -> dict[int, int]:
    """pid by RANK of the workers of a multi-process cell (torchrun sets RANK for each)."""
    return {
        int(item.split("=", 1)[1]): pid
        for pid, environ in _workers(run_dir).items()
        for item in environ
        if item.startswith("RANK=")
    }


def _wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _untargeted_matrix(tmp_path: Path, topologies: list[str], precisions: list[str], seconds: float = 6) -> str:
    """Maintenance cells with an unreachable target: each trains `seconds` of its budget unless a
    fault ends it. A test that strikes a cell while it trains gives it long enough that a loaded
    machine cannot finish it first (one under load did, at 6 s)."""
    return matrix_file(
        tmp_path,
        topologies,
        precisions,
        params={"target": 1.0, "eval_every_steps": 10},
        budget={"max_epochs": 50, "max_seconds": seconds},
        timeout_s=600,
    )


def _assert_nothing_left(run_dir: Path) -> None:
    """No process of the run is alive and no half-written result is left."""
    assert processes_mentioning(str(run_dir)) == []
    assert list(run_dir.glob("cells/*.tmp")) == [] and list(run_dir.glob("cells/.*")) == []


def test_a_rank_killed_mid_cell_fails_that_cell_alone_and_the_run_goes_on(tmp_path):
    # Two cells: a 2-process cell whose rank 1 is killed while it trains, then a 1-process cell.
    matrix = _untargeted_matrix(tmp_path, ["cpu-ddp2", "cpu-1proc"], ["fp32"], seconds=30)
    results_dir = tmp_path / "results"
    run_dir = results_dir / "faults"
    runner = _start_run(matrix, results_dir, "faults")
    try:
        ranks = _wait_for(lambda: (r := _worker_ranks(run_dir)) and len(r) == 2 and r, "both ranks of the ddp2 cell")
        time.sleep(5)  # into imports, data loading or training: a dead rank must fail the cell in each
        os.kill(ranks[1], signal.SIGKILL)
        out, err = runner.communicate(timeout=2 * WAIT_S)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, err[-2000:]  # a run with a failed cell exits 1, after the whole matrix
    assert "2 cells in" in out and "1 failed or invalid" in out
    cells = {p.stem: json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")}
    killed = cells["maintenance-gru__cpu-ddp2__fp32__s0"]
    assert killed["status"] == "failed"
    assert "exit codes" in killed["reason"] or "timed out" in killed["reason"]
    # The killed rank cost its own cell only: the next cell ran and trained.
    assert cells["maintenance-gru__cpu-1proc__fp32__s0"]["status"] in ("converged", "not_converged")
    _assert_nothing_left(run_dir)


def test_ctrl_c_stops_the_run_keeps_completed_cells_and_leaves_no_process(tmp_path):
    matrix = _untargeted_matrix(tmp_path, ["cpu-1proc"], ["fp16", "fp32"], seconds=300)
    results_dir = tmp_path / "results"
    run_dir = results_dir / "ctrlc"
    runner = _start_run(matrix, results_dir, "ctrlc")
    try:
        # The fp16 cell comes out `unsupported` in seconds; interrupt the fp32 cell after it.
        _wait_for(lambda: list(run_dir.glob("cells/*.json")), "the first cell's result")
        _wait_for(lambda: _workers(run_dir), "the second cell's worker")
        time.sleep(3)
        runner.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        out, err = runner.communicate(timeout=WAIT_S)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode != 0
    assert "Traceback" not in err
    assert "--resume ctrlc" in out + err
    kept = sorted(p.name for p in run_dir.glob("cells/*.json"))
    assert kept == ["maintenance-gru__cpu-1proc__fp16__s0.json"]
    assert json.loads((run_dir / "cells" / kept[0]).read_text())["status"] == "unsupported"
    time.sleep(1)
    _assert_nothing_left(run_dir)

