"""Result files: schema, atomic writes, loading a run directory."""

from __future__ import annotations

import json

import pytest

from bench.errors import BenchError
from bench.results import (
    load_run,
    load_run_dicts,
    make_result,
    result_path,
    validate_result,
    write_json_atomic,
)

CELL = {"workload": "maintenance", "variant": "gru", "topology": "cpu-1proc", "precision": "fp32", "seed": 0, "id": "x"}


def converged() -> dict:
    return make_result(
        CELL,
        "converged",
        metrics={"test": {"f1": 0.6}},
        target={"metric": "f1", "value": 0.5, "split": "val"},
        timings={"time_to_target_s": 3.0},
        throughput={"samples_per_s": 100.0},
        memory={"peak_rss_mb_max": 400.0},
        curve=[{"seconds": 3.0, "f1": 0.55}],
        environment={"cpu_model": "x"},
    )


def test_a_converged_result_validates():
    assert validate_result(converged()) == []


def test_missing_fields_are_reported():
    result = converged()
    del result["curve"]
    assert validate_result(result) == ["status converged needs 'curve'"]


def test_non_result_statuses_need_a_reason_and_no_numbers():
    assert validate_result(make_result(CELL, "skipped", "needs 2 GPU(s), found 0")) == []
    assert "status skipped needs a reason" in validate_result(make_result(CELL, "skipped"))
    bad = make_result(CELL, "unsupported", "fp16 requested", metrics={"test": {"f1": 0.5}})
    assert "status unsupported must carry no metrics" in validate_result(bad)


def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        make_result(CELL, "great")


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    path = result_path(tmp_path, "x")
    write_json_atomic(path, converged())
    assert json.loads(path.read_text())["status"] == "converged"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path):
    path = result_path(tmp_path, "x")
    write_json_atomic(path, converged())
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text())["status"] == "converged"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_load_run_ignores_temporary_leftovers_and_rejects_broken_files(tmp_path):
    write_json_atomic(result_path(tmp_path, "a"), converged())
    (tmp_path / "cells" / ".b.json.123.tmp").write_text("{half")
    assert len(load_run(tmp_path)) == 1
    (tmp_path / "cells" / "c.json").write_text("{half")
    with pytest.raises(BenchError, match="not a readable result file"):
        load_run(tmp_path)


def test_a_resumed_run_clears_the_leftovers_of_killed_writes_and_nothing_else(tmp_path):
    from bench.harness.runner import remove_unfinished_writes

    write_json_atomic(result_path(tmp_path, "a"), converged())
    (tmp_path / "cells" / ".b.json.123.tmp").write_text("{half")
    (tmp_path / ".run.json.9.tmp").write_text("{")
    (tmp_path / "cells" / "notes.tmp").write_text("a user's file, not one of ours")
    (tmp_path / "cells" / ".notes.tmp").write_text("a user's hidden file, not one of ours either")
    gone = remove_unfinished_writes(tmp_path)
    assert sorted(p.name for p in gone) == [".b.json.123.tmp", ".run.json.9.tmp"]
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [".notes.tmp", "a.json", "notes.tmp"]


def test_a_resumed_slurm_run_keeps_temporary_files_its_live_jobs_may_be_writing(tmp_path):
    from bench.harness.config import ExecutorOptions
    from bench.harness.runner import run_cells

    write_json_atomic(tmp_path / "run.json", {"matrix": "t"})  # a run to resume: no peak to measure
    leftover = tmp_path / "cells" / ".a.json.1.tmp"
    leftover.parent.mkdir()
    leftover.write_text("{")
    assert run_cells([], tmp_path, {"matrix": "t"}, ExecutorOptions(type="slurm")) == []
    assert leftover.exists()  # a SLURM job outlives its runner: its write may still be under way
    assert run_cells([], tmp_path, {"matrix": "t"}) == []
    assert not leftover.exists()  # local launches die with their runner: nothing is writing it


def test_load_run_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(BenchError, match="not a run directory"):
        load_run(tmp_path)


def _strict_loads(text: str):
    def refuse(constant: str):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_with_a_reason(tmp_path):
    import numpy as np

    result = converged()
    result["metrics"]["test"]["roc_auc"] = float("nan")
    result["metrics"]["val"] = {"f1": np.float32("inf"), "pr_auc": np.float64("-inf")}
    path = result_path(tmp_path, "x")
    write_json_atomic(path, result)
    written = _strict_loads(path.read_text())  # a strict parser reads it
    assert written["metrics"]["test"] == {"f1": 0.6, "roc_auc": None}
    assert written["metrics"]["val"] == {"f1": None, "pr_auc": None}
    assert written["non_finite"] == {"/metrics/test/roc_auc": "nan", "/metrics/val/f1": "inf", "/metrics/val/pr_auc": "-inf"}
    assert load_run_dicts(tmp_path)[0]["metrics"]["test"]["roc_auc"] is None
    assert result["metrics"]["test"]["roc_auc"] != result["metrics"]["test"]["roc_auc"]  # the caller's dict is untouched

