"""`bench report --format parquet` and `bench export`: real runs exported, then read back with the
tools users have (pandas.read_parquet, datasets.load_from_disk)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import pandas as pd
import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parents[2]


FIXTURE = ROOT / "tests" / "fixtures" / "report-run"


# The committed CPU baseline: a real smoke run's cells, every workload and baselines.
BASELINE = next(p for p in sorted((ROOT / "results" / "baselines").iterdir()) if (p / "cells").is_dir())


KEY_COLUMNS = ["run_id", "cell.id", "cell.workload", "cell.variant", "cell.topology", "cell.precision", "cell.seed",
               "status", "timings.time_to_target_s", "throughput.samples_per_s", "memory.peak_rss_mb_max",
               "environment.hardware_class"]


def results_of(run_dir: Path) -> dict[str, dict]:
    """The run's results by cell id, read as plain JSON."""
    found = [json.loads(p.read_text()) for p in sorted((run_dir / "cells").glob("*.json"))]
    return {r["cell"]["id"]: r for r in found}


def test_parquet_has_one_flat_row_per_cell(tmp_path, capsys):
    assert main(["report", str(FIXTURE), "--format", "parquet", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"20 cells written to {tmp_path / 'report.parquet'}"
    frame = pd.read_parquet(tmp_path / "report.parquet")
    results = results_of(FIXTURE)
    assert len(frame) == len(results) == 20
    assert list(frame.columns[:8]) == ["run_id", "cell.id", "cell.workload", "cell.variant", "cell.topology",
                                       "cell.precision", "cell.seed", "cell.kind"]
    assert set(KEY_COLUMNS) - {"memory.peak_rss_mb_max"} <= set(frame.columns)
    assert set(frame["run_id"]) == {"report-run"}
    for _, row in frame.iterrows():
        result = results[row["cell.id"]]
        assert row["status"] == result["status"]
        assert row["cell.seed"] == result["cell"]["seed"]
        if result["status"] in ("converged", "not_converged"):
            metric = result["target"]["metric"]
            assert row[f"metrics.test.{metric}"] == result["metrics"]["test"][metric]
            assert row["timings.time_to_target_s"] == result["timings"]["time_to_target_s"] or (
                pd.isna(row["timings.time_to_target_s"]) and result["timings"]["time_to_target_s"] is None)
            # lists are JSON text: json.loads gives the curve back
            assert json.loads(row["curve"]) == result["curve"]
        else:
            assert pd.isna(row["metrics.test.f1"]) and row["reason"] == result["reason"]


def test_export_saves_a_dataset_that_load_from_disk_reads(tmp_path, capsys):
    results = results_of(BASELINE)
    out = tmp_path / "dataset"
    assert main(["export", str(BASELINE), "--out", str(out)]) == 0
    assert f"{len(results)} cells saved to {out}" in capsys.readouterr().out
    loaded = datasets.load_from_disk(str(out))
    assert loaded.num_rows == len(results) > 0
    assert set(KEY_COLUMNS) <= set(loaded.column_names)
    assert sorted(loaded["cell.id"]) == sorted(results)
    for row in loaded:
        result = results[row["cell.id"]]
        assert row["status"] == result["status"]
        assert row["environment.hardware_class"] == result["environment"]["hardware_class"]
        if result["status"] in ("converged", "not_converged"):
            assert row["throughput.samples_per_s"] == pytest.approx(result["throughput"]["samples_per_s"])
            assert row["memory.peak_rss_mb_max"] == pytest.approx(result["memory"]["peak_rss_mb_max"])
    # The same table as the Parquet export
    assert main(["report", str(BASELINE), "--format", "parquet", "--out", str(tmp_path)]) == 0
    frame = pd.read_parquet(tmp_path / "report.parquet")
    assert list(frame.columns) == loaded.column_names and len(frame) == loaded.num_rows


def test_a_second_export_replaces_the_saved_dataset_and_other_folders_are_kept(tmp_path, capsys):
    out = tmp_path / "dataset"
    assert main(["export", str(FIXTURE), "--out", str(out)]) == 0
    assert main(["export", str(BASELINE), "--out", str(out)]) == 0
    assert datasets.load_from_disk(str(out)).num_rows == len(results_of(BASELINE))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]  # no staging folder left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["export", str(FIXTURE), "--out", str(mine)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {mine}: a non-empty folder that holds no saved dataset; give a new or empty folder"]
    assert (mine / "notes.txt").read_text() == "keep me"


def test_values_of_different_kinds_in_one_column_become_json_text(tmp_path):
    run = tmp_path / "mixed"
    (run / "cells").mkdir(parents=True)
    for i, (name, extra) in enumerate([("a", {"note": [1, 2]}), ("b", {"note": 3}), ("c", {})]):
        result = json.loads((FIXTURE / "cells" / "alpha-gru__cpu-1proc__fp32__s0.json").read_text())
        result["cell"]["seed"] = i
        result["cell"]["id"] = f"alpha-gru__cpu-1proc__fp32__s{i}"
        (run / "cells" / f"{name}.json").write_text(json.dumps({**result, **extra}))
    assert main(["report", str(run), "--format", "parquet", "--out", str(tmp_path)]) == 0
    notes = pd.read_parquet(tmp_path / "report.parquet")["note"].tolist()
    assert notes[:2] == ["[1, 2]", "3"] and pd.isna(notes[2])  # a list and a number: JSON; absent: null


def test_push_to_hub_pushes_the_same_dataset(monkeypatch, capsys):
    pushed = []
    monkeypatch.setattr(datasets.Dataset, "push_to_hub",
                        lambda self, repo, private=False: pushed.append((repo, private, self.num_rows, self.column_names)))
    assert main(["export", str(FIXTURE), "--push-to-hub", "me/bench-runs", "--private"]) == 0
    assert [p[:3] for p in pushed] == [("me/bench-runs", True, 20)]
    assert set(KEY_COLUMNS) - {"memory.peak_rss_mb_max"} <= set(pushed[0][3])
    assert "pushed to https://huggingface.co/datasets/me/bench-runs" in capsys.readouterr().out


def test_a_failed_push_is_one_line(monkeypatch, capsys):
    def offline(self, repo, private=False):
        raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", offline)
    assert main(["export", str(FIXTURE), "--push-to-hub", "me/bench-runs"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --push-to-hub me/bench-runs: Failed to resolve 'huggingface.co'"]


@pytest.mark.parametrize(("module", "argv", "message"), [
    ("pyarrow", ["report", str(FIXTURE), "--format", "parquet", "--out", "{tmp}"],
     "error: --format parquet needs the pyarrow package: pip install pyarrow (or pip install 'accelerate-bench[export]')"),
    ("datasets", ["export", str(FIXTURE), "--out", "{tmp}/ds"],
     "error: bench export needs the datasets package: pip install datasets (or pip install 'accelerate-bench[export]')"),
])
def test_a_missing_export_package_is_one_line(tmp_path, monkeypatch, capsys, module, argv, message):
    monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(("argv", "message"), [
    (["report", str(FIXTURE), "--format", "parquet", "--out", "-"],
     "error: --out - prints CSV or JSON only; Parquet is binary, give a folder"),
    (["export", str(FIXTURE)], "error: give --out DIR, --push-to-hub REPO, or both"),
    (["export", str(FIXTURE), "--out", "x", "--private"], "error: --private goes with --push-to-hub"),
    (["export", "no-such-run", "--out", "x"], "error: no-such-run: no such run directory (nor results/no-such-run)"),
])
def test_bad_export_arguments_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert list(tmp_path.iterdir()) == []


def test_an_older_result_with_nan_inside_a_list_exports_as_strict_json(tmp_path):
    """Results written before bench wrote strict JSON may hold a bare NaN inside a list (a curve
    point); load_run still reads them, and the export writes that NaN as null, not a traceback."""
    run = tmp_path / "old"
    (run / "cells").mkdir(parents=True)
    text = (FIXTURE / "cells" / "alpha-gru__cpu-1proc__fp32__s0.json").read_text()
    result = json.loads(text)
    result["curve"] = [{"step": 1, "f1": float("nan")}, {"step": 2, "f1": 0.5}]
    (run / "cells" / "a.json").write_text(json.dumps(result))  # json.dumps writes a bare NaN
    assert "NaN" in (run / "cells" / "a.json").read_text()
    assert main(["report", str(run), "--format", "parquet", "--out", str(tmp_path)]) == 0
    [curve] = pd.read_parquet(tmp_path / "report.parquet")["curve"].tolist()
    assert json.loads(curve) == [{"step": 1, "f1": None}, {"step": 2, "f1": 0.5}]

