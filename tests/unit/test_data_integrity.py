"""The data a cell trains on: checked inside the cell as `bench data verify` checks it, cleaning counted,
and the SHA-256 of every file read recorded, so that report and compare can say when data differed.

Cells run in-process through `bench.harness.worker.main` (a baseline cell, or a training cell with the
Accelerator built in this process): the worker is where a launched cell meets its data, and an
uncaught exception would show here as the traceback a user would see.

The tests that start processes are in tests/e2e/test_data_integrity.py."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.datasets import DATASETS
from bench.errors import BenchError
from bench.results import load_run_dicts
from tests.helpers.data_integrity import AI4I, AI4I_SHA256, _ai4i_copy

COMPARE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "compare"


REPORT_FIXTURE = Path(__file__).parent.parent / "fixtures" / "report-run"


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
    base = _write_run(tmp_path / "base", [_with_data(r, base_sha) for r in load_run_dicts(COMPARE_FIXTURES / "run_a")])
    cand = _write_run(tmp_path / "cand", [_with_data(r, cand_sha) for r in load_run_dicts(COMPARE_FIXTURES / "run_b")])
    main(["compare", str(base), str(cand)])
    out = capsys.readouterr().out
    note = f"Different data: {AI4I} has SHA-256 aaaaaaaaaaaa... in the baseline and bbbbbbbbbbbb... in the candidate"
    assert (note in out) is says, out
    assert ("Different data" in out) is says


def test_report_says_when_cells_of_a_run_read_different_data(tmp_path):
    from bench.analysis.report import build_report
    from bench.analysis.report_render import render_markdown

    results = load_run_dicts(REPORT_FIXTURE)
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
    plain = _write_run(tmp_path / "plain", load_run_dicts(REPORT_FIXTURE))
    assert "Different data" not in render_markdown(build_report(plain, measure_peaks=False))


def test_every_workload_names_the_datasets_it_reads():
    """A built-in workload missing from WORKLOAD_DATA would have no data checked before its cells train."""
    from bench.data.datasets import WORKLOAD_DATA
    from workloads import BUILTIN

    assert set(WORKLOAD_DATA) == set(BUILTIN)
    assert all(name in DATASETS for names in WORKLOAD_DATA.values() for name in names)

