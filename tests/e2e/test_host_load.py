"""The tests of tests/unit/test_host_load.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.analysis.report import BUSY_MARGIN, build_report
from bench.analysis.report_render import render_markdown
from bench.harness.host import usable_cores
from tests.conftest import run_cli


def _matrix(tmp_path: Path, timeout_s: float) -> str:
    from tests.helpers.runs import matrix_file

    return matrix_file(tmp_path, ["cpu-1proc"], ["fp32"], budget={"max_epochs": 1, "max_seconds": 900}, timeout_s=timeout_s)


@pytest.mark.e2e
def test_a_real_cell_records_the_load_at_its_start_and_end_and_the_report_reads_it(tmp_path: Path) -> None:
    proc = run_cli("run", "--matrix", _matrix(tmp_path, 900), "--results-dir", str(tmp_path / "runs"), "--run-id", "r")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "runs" / "r"
    [result] = [json.loads(p.read_text()) for p in (run / "cells").glob("*.json")]
    assert result["status"] in ("converged", "not_converged")
    load = result["host_load"]
    assert load["cores"] == usable_cores()
    for when in ("start", "end"):
        assert len(load[when]) == 3 and all(x >= 0 for x in load[when])
    env = result["environment"]
    assert env["memory_total_mb"] > 0 and len(env["load_average"]) == 3 and env["usable_cores"] == usable_cores()

    # The mark follows the recorded load, whatever this machine's load was during the test.
    busy = max(load["start"][0], load["end"][0]) > load["cores"] + BUSY_MARGIN
    md = render_markdown(build_report(run, measure_peaks=False))
    assert ("**Busy host**: 1 cell" in md) == busy
    assert "when the run started, on" in md  # the environment section gives the load and memory


@pytest.mark.e2e
def test_a_cell_killed_at_its_timeout_records_the_load_too(tmp_path: Path) -> None:
    proc = run_cli("run", "--matrix", _matrix(tmp_path, 1), "--results-dir", str(tmp_path / "runs"), "--run-id", "t")
    [result] = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "t" / "cells").glob("*.json")]
    assert result["status"] == "failed" and "timed out" in result["reason"], proc.stderr[-2000:]
    assert len(result["host_load"]["start"]) == 3 and len(result["host_load"]["end"]) == 3
    assert result["host_load"]["cores"] == usable_cores()

