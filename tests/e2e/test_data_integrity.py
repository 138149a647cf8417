"""The tests of tests/unit/test_data_integrity.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cells import Budget
from bench.harness import worker
from bench.harness.matrix import Cell
from tests.helpers.data_integrity import AI4I, AI4I_SHA256, _ai4i_copy


def _no_failures(cells: list[list[str]]) -> None:
    header = [h.lstrip("\ufeff") for h in cells[0]]
    for column in ("Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"):
        for row in cells[1:]:
            row[header.index(column)] = "0"


def _run_cell(tmp_path: Path, cell: Cell, capsys) -> tuple[int, dict, list[str]]:
    cell_file, out = tmp_path / "cell.json", tmp_path / "out.json"
    cell_file.write_text(json.dumps(cell.to_dict()))
    code = worker.main(["--cell", str(cell_file), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, json.loads(out.read_text()) if out.exists() else {}, err


def _baseline_cell(workload: str = "maintenance") -> Cell:
    return Cell(workload, "baselines", "host", "fp32", 0, Budget(), {}, "baseline")


@pytest.fixture
def in_process_accelerator():
    """A training cell's Accelerator built in this process: reset accelerate's singletons around it."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.mark.e2e
def test_baseline_cell_on_one_class_labels_fails_with_the_reason_not_a_traceback(tmp_path, monkeypatch, capsys):
    _ai4i_copy(tmp_path / "data", _no_failures)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    code, result, err = _run_cell(tmp_path, _baseline_cell(), capsys)
    assert code == 2 and "Traceback" not in "\n".join(err)
    assert err == [err[-1]] and err[-1].startswith("error: ")
    assert "label column 'Machine failure' holds one class only (0 in all 10,000 rows)" in err[-1]
    assert result["status"] == "failed" and result["reason"] == err[-1].removeprefix("error: ")
    assert "metrics" not in result


@pytest.mark.e2e
def test_training_cell_on_one_class_labels_fails_before_training(tmp_path, monkeypatch, capsys, in_process_accelerator):
    _ai4i_copy(tmp_path / "data", _no_failures)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    cell = Cell("maintenance", "gru", "cpu-1proc", "fp32", 0, Budget(max_steps=2, max_seconds=60), {"target": 0.3})
    code, result, err = _run_cell(tmp_path, cell, capsys)
    assert code == 2
    assert result["status"] == "failed", result.get("reason")
    assert "holds one class only (0 in all 10,000 rows)" in result["reason"]
    assert "curve" not in result and "metrics" not in result  # refused before any training step
    assert err[-1] == f"error: {result['reason']}"


@pytest.mark.e2e
def test_cell_on_rows_cut_at_a_line_boundary_fails_as_truncated(tmp_path, monkeypatch, capsys):
    def first_5000(cells):
        del cells[5001:]

    _ai4i_copy(tmp_path / "data", first_5000)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    code, result, err = _run_cell(tmp_path, _baseline_cell(), capsys)
    assert code == 2 and result["status"] == "failed"
    assert "ai4i2020.csv: 5,000 rows, expected 10,000 (truncated file?)" in result["reason"]


@pytest.mark.e2e
def test_result_records_the_sha256_of_each_file_read_and_the_cleaning(tmp_path, capsys):
    code, result, err = _run_cell(tmp_path, _baseline_cell(), capsys)
    assert code == 0, err
    assert result["status"] == "baseline"
    assert result["data"]["sha256"] == {AI4I: AI4I_SHA256}
    assert result["data"]["cleaning"] == [{"step": "sort rows by UDI", "rows_changed": 0}]

