"""The tests of tests/unit/test_run_guards.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import bench.commands.run
import bench.harness.matrix
import bench.harness.runner
from bench.cli import main
from bench.results import load_run_dicts, validate_result
from tests.helpers.run_guards import (
    BINARY,
    cpu_host,  # noqa: F401  (autouse: every GPU cell skipped here)
    one_error_line,
    write_matrix,
)


def start_run(tmp_path: Path, matrix: str, run_id: str = "r1") -> Path:
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--run-id", run_id]) == 0
    return tmp_path / "results" / run_id


@pytest.mark.e2e
def test_resume_refuses_cells_whose_definition_changed_naming_the_cell_and_fields(tmp_path, capsys):
    matrix = write_matrix(tmp_path / "m.yaml")
    run_dir = start_run(tmp_path, matrix)
    kept = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*.json")}
    assert len(kept) == 2
    write_matrix(tmp_path / "m.yaml", budget={"max_epochs": 1, "max_steps": 40}, params={"target": 0.5})
    capsys.readouterr()
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--resume", "r1", "--dry-run"]) == 2
    assert "maintenance-gru__gpu-1__fp32__s0" in one_error_line(capsys)  # the dry run says so too
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--resume", "r1"]) == 2
    line = one_error_line(capsys)
    assert "maintenance-gru__gpu-1__fp32__s0" in line and "(and 1 more cell)" in line, line
    assert "budget.max_steps 30 -> 40" in line and "params.target 0.3 -> 0.5" in line, line
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*.json")} == kept  # nothing touched


@pytest.mark.e2e
def test_resume_with_the_same_matrix_keeps_completed_cells(tmp_path):
    matrix = write_matrix(tmp_path / "m.yaml")
    run_dir = start_run(tmp_path, matrix)
    kept = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*.json")}
    assert main(["run", "--results-dir", str(tmp_path / "results"), "--resume", "r1"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*.json")} == kept


@pytest.mark.e2e
@pytest.mark.parametrize("damage", ["missing", "not JSON", "not a mapping", "no matrix", "bad filters"])
def test_resume_refuses_a_run_without_a_readable_run_json(tmp_path, capsys, monkeypatch, damage):
    run_dir = start_run(tmp_path, write_matrix(tmp_path / "m.yaml"))
    run_json = run_dir / "run.json"
    meta = json.loads(run_json.read_text())
    if damage == "missing":
        run_json.unlink()
    elif damage == "not JSON":
        run_json.write_text('{"matrix": "t", ')
    elif damage == "not a mapping":
        run_json.write_text("[1, 2]")
    elif damage == "no matrix":
        run_json.write_text(json.dumps({**meta, "matrix": None}))
    else:
        run_json.write_text(json.dumps({**meta, "filters": "maintenance"}))

    def must_not_run(*args, **kwargs):
        raise AssertionError("a run was started")

    monkeypatch.setattr(bench.commands.run, "run_cells", must_not_run)
    capsys.readouterr()
    assert main(["run", "--results-dir", str(tmp_path / "results"), "--resume", "r1"]) == 2
    line = one_error_line(capsys)
    assert "run.json" in line and "r1" in line, line


@pytest.mark.e2e
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_what_completed(tmp_path, capsys, monkeypatch):
    matrix = write_matrix(tmp_path / "m.yaml", topologies=("gpu-1", "gpu-ddp2", "gpu-ddp4"))
    real = bench.harness.runner.write_json_atomic
    written = []

    def fills_up(path, payload):
        if path.parent.name == "cells" and written:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, payload)
        if path.parent.name == "cells":
            written.append(path)

    monkeypatch.setattr(bench.harness.runner, "write_json_atomic", fills_up)
    results = tmp_path / "results"
    assert main(["run", "--matrix", matrix, "--results-dir", str(results), "--run-id", "r1"]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "1 of 3 cells" in line and "--resume r1" in line, line
    [kept] = written
    assert [validate_result(r) for r in load_run_dicts(results / "r1")] == [[]]
    assert json.loads(kept.read_text())["cell"]["topology"] == "gpu-1"

    monkeypatch.setattr(bench.harness.runner, "write_json_atomic", real)  # space freed: the resume finishes
    mtime = kept.stat().st_mtime_ns
    assert main(["run", "--results-dir", str(results), "--resume", "r1"]) == 0
    assert len(load_run_dicts(results / "r1")) == 3 and kept.stat().st_mtime_ns == mtime


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["binary matrix", "unsafe run id", "NaN timeout"])
def test_refusals_through_the_real_entry_point(tmp_path, case):
    """As a user meets them: exit 2, one `error:` line on stderr, no traceback."""
    from tests.conftest import run_cli

    matrix = tmp_path / "m.yaml"
    argv = ["run", "--matrix", str(matrix), "--results-dir", str(tmp_path / "results"), "--dry-run"]
    if case == "binary matrix":
        matrix.write_bytes(BINARY)
        expected = "m.yaml: not a text file"
    elif case == "unsafe run id":
        write_matrix(matrix)
        argv += ["--run-id", "../../escape"]
        expected = "--run-id '../../escape': a run id must be a single folder name"
    else:
        matrix.write_text("timeout_s: .nan\ntopologies: [cpu-1proc]\nprecisions: [fp32]\nworkloads: {maintenance: {}}\n")
        expected = "timeout_s must be a positive finite number, got nan"
    proc = run_cli(*argv, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not (tmp_path / "escape").exists()

