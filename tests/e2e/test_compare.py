"""The tests of tests/unit/test_compare.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.compare import RUN_A, RUN_B, _slower, _write_run


@pytest.mark.e2e
def test_two_honest_runs_of_the_same_commit_pass(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    proc = run_cli("compare", str(RUN_A), str(RUN_B), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "**PASS**: 0 regression(s)" in proc.stdout
    assert out.read_text().startswith("# bench compare")


@pytest.mark.e2e
def test_recheck_really_re_runs_the_cell(tmp_path: Path) -> None:
    """One real maintenance cell, its result made 10,000x slower. Against a baseline 100x slower
    than the real cell, the re-run clears the injected slowdown; against a baseline 100x faster, the
    re-run confirms it. The answers hang on what the re-run does, not on how fast the machine is:
    only a re-run 50-200x off its own first run could change them, where a loaded 2-core machine
    has been seen to put one time-to-target 5x off (an earlier version of this test used 3x margins
    and failed in a fresh clone for that reason). The injected slowdown is 100x the slow baseline,
    not 3x: under a load average of 6 one cell's own step times spread 85-fold, and 3x between
    baseline and candidate then fell short of significance, so nothing was rechecked (seen twice in
    five runs)."""
    from tests.helpers.runs import matrix_file

    # Converged at its first evaluation, after 20 steps: a short cell keeps the three launches cheap,
    # and 20 steps leave 15 steady ones after the warm-up for the median step time.
    matrix = matrix_file(tmp_path, ["cpu-1proc"], ["fp32"], params={"target": 0.0, "eval_every_steps": 20},
                         budget={"max_epochs": 1, "max_steps": 40, "max_seconds": 900})
    done = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path / "runs"), "--run-id", "cand")
    assert done.returncode == 0, done.stderr[-2000:]
    cand = tmp_path / "runs" / "cand"
    [cell_file] = (cand / "cells").glob("*.json")
    real = json.loads(cell_file.read_text())
    slow_baseline = _write_run(tmp_path / "slow", [_slower(real, 100)])
    fast_baseline = _write_run(tmp_path / "fast", [_slower(real, 1 / 100)])
    cell_file.write_text(json.dumps(_slower(real, 10_000)))
    loose = ["--threshold", "samples_per_s=1", "--threshold", "step_time_median_s=1", "--threshold", "time_to_target_s=1"]

    cleared = run_cli("compare", str(slow_baseline), str(cand), "--recheck", *loose)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    rows = [line.replace(" ", "") for line in cleared.stdout.splitlines()]
    assert "|notconfirmed|maintenance-gru__cpu-1proc__fp32|step_time_median_s|" in "\n".join(rows)
    assert "0 speed regression(s) confirmed" in cleared.stdout

    confirmed = run_cli("compare", str(fast_baseline), str(cand), "--recheck", *loose)
    assert confirmed.returncode == 1, confirmed.stdout + confirmed.stderr
    assert "confirmed, re-run" in confirmed.stdout
    assert len(list(cand.glob("recheck-*/cells/*.json"))) == 2  # one re-run per compare, kept beside the run

