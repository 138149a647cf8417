"""The data a cell trains on: checked inside the cell as `bench data verify` checks it, cleaning counted,
and the SHA-256 of every file read recorded, so that report and compare can say when data differed.

Cells run in-process through `bench.harness.worker.main` (a baseline cell, or a training cell with the
Accelerator built in this process): the worker is where a launched cell meets its data, and an
uncaught exception would show here as the traceback a user would see.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from bench.cells import Budget
from bench.cli import main
from bench.data.datasets import DATASETS
from bench.errors import BenchError
from bench.harness import worker
from bench.harness.matrix import Cell
from bench.results import load_run

AI4I = "ai4i2020/ai4i2020.csv"
AI4I_SHA256 = DATASETS["ai4i2020"].files[0].sha256
COMPARE_FIXTURES = Path(__file__).parent / "fixtures" / "compare"
REPORT_FIXTURE = Path(__file__).parent / "fixtures" / "report-run"


def _ai4i_copy(root: Path, edit=None) -> Path:
    """The real AI4I file under root (CRLF and BOM kept), with `edit` applied to its cells (row 0 = header)."""
    from bench.paths import data_dir

    lines = (data_dir() / AI4I).read_bytes().decode("utf-8").split("\r\n")
    cells = [line.split(",") for line in lines if line]
    if edit:
        edit(cells)
    path = root / AI4I
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(",".join(c) for c in cells) + "\r\n").encode("utf-8"))
    return path


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


# -- inside the cell: the same checks as `bench data verify` ----------------------------------------


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


def test_workload_data_check_refuses_what_verify_refuses(tmp_path, monkeypatch):
    """The one function the runner's pre-flight and the worker call: verify's table checks per file."""
    import gzip

    import pandas as pd

    from bench.data.datasets import check_workload_data
    from bench.paths import data_dir

    real = data_dir()
    root = tmp_path / "data"
    (root / "amazon_reviews").mkdir(parents=True)
    shutil.copyfile(real / "amazon_reviews/amazon_cells_labelled.txt", root / "amazon_reviews/amazon_cells_labelled.txt")
    frame = pd.read_csv(real / "amazon_reviews/amazon_polarity_subset.csv.gz")
    frame.loc[6, "text"] = "   "
    (root / "amazon_reviews/amazon_polarity_subset.csv.gz").write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    with pytest.raises(BenchError, match=r"amazon_polarity_subset.csv.gz: column 'text' has 1 empty value\(s\), first at data row 7"):
        check_workload_data("sentiment")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "nothing"))
    with pytest.raises(BenchError, match="ai4i2020.csv not found; run `python -m bench data fetch ai4i2020`"):
        check_workload_data("maintenance")


# -- what the result records --------------------------------------------------------------------------


@pytest.mark.e2e
def test_result_records_the_sha256_of_each_file_read_and_the_cleaning(tmp_path, capsys):
    code, result, err = _run_cell(tmp_path, _baseline_cell(), capsys)
    assert code == 0, err
    assert result["status"] == "baseline"
    assert result["data"]["sha256"] == {AI4I: AI4I_SHA256}
    assert result["data"]["cleaning"] == [{"step": "sort rows by UDI", "rows_changed": 0}]


def test_check_workload_data_hashes_each_file_once_per_version(tmp_path, monkeypatch):
    import os

    from bench.data.datasets import check_workload_data

    _ai4i_copy(tmp_path / "data")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    assert check_workload_data("maintenance") == {AI4I: AI4I_SHA256}
    path = _ai4i_copy(tmp_path / "data", lambda cells: cells[9].__setitem__(7, "1"))  # Tool wear of row 9
    os.utime(path, ns=(1, 1))  # a new version of the file, whatever the clock's resolution
    edited = check_workload_data("maintenance")[AI4I]
    assert edited != AI4I_SHA256  # not served from the cache of the first version
    assert len(edited) == 64


# -- report and compare say when data differed --------------------------------------------------------


def _with_data(result: dict, sha: str | None) -> dict:
    r = copy.deepcopy(result)
    if sha is not None:
        r.setdefault("data", {})["sha256"] = {AI4I: sha}
    return r


def _write_run(folder: Path, results: list[dict]) -> Path:
    (folder / "cells").mkdir(parents=True)
    for r in results:
        (folder / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    return folder


@pytest.mark.parametrize(
    "base_sha, cand_sha, says",
    [
        ("a" * 64, "b" * 64, True),
        (AI4I_SHA256, AI4I_SHA256, False),
        (None, "b" * 64, False),  # the committed baselines record no hashes: unknown, not different
    ],
)
def test_compare_says_when_the_two_runs_read_different_data(tmp_path, capsys, base_sha, cand_sha, says):
    base = _write_run(tmp_path / "base", [_with_data(r, base_sha) for r in load_run(COMPARE_FIXTURES / "run_a")])
    cand = _write_run(tmp_path / "cand", [_with_data(r, cand_sha) for r in load_run(COMPARE_FIXTURES / "run_b")])
    main(["compare", str(base), str(cand)])
    out = capsys.readouterr().out
    note = f"Different data: {AI4I} has SHA-256 aaaaaaaaaaaa... in the baseline and bbbbbbbbbbbb... in the candidate"
    assert (note in out) is says, out
    assert ("Different data" in out) is says


def test_report_says_when_cells_of_a_run_read_different_data(tmp_path):
    from bench.analysis.report import build_report
    from bench.analysis.report_render import render_markdown

    results = load_run(REPORT_FIXTURE)
    alpha = [r for r in results if r["cell"]["workload"] == "alpha"]
    shas = {}
    for i, r in enumerate(alpha):
        r.setdefault("data", {})["sha256"] = {"alpha/data.csv": "c" * 64 if i == 0 else "d" * 64}
        shas[r["cell"]["id"]] = r["data"]["sha256"]["alpha/data.csv"]
    run = _write_run(tmp_path / "run", results)
    text = render_markdown(build_report(run, measure_peaks=False))
    first = next(cell for cell, sha in shas.items() if sha == "c" * 64)
    assert (
        f"**Different data**: alpha/data.csv has SHA-256 cccccccccccc... in 1 cell (`{first}`) "
        f"and dddddddddddd... in {len(alpha) - 1} cells" in text
    ), text
    # cells that record no hashes (older results) say nothing either way
    plain = _write_run(tmp_path / "plain", load_run(REPORT_FIXTURE))
    assert "Different data" not in render_markdown(build_report(plain, measure_peaks=False))


def test_every_workload_names_the_datasets_it_reads():
    """A built-in workload missing from WORKLOAD_DATA would have no data checked before its cells train."""
    from bench.data.datasets import WORKLOAD_DATA
    from workloads import BUILTIN

    assert set(WORKLOAD_DATA) == set(BUILTIN)
    assert all(name in DATASETS for names in WORKLOAD_DATA.values() for name in names)
