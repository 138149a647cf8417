"""The tests of tests/unit/test_traffic.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cpu_runs_a_bf16_lstm, run_cli

TESTING_SHA256 = "734fe6642edf758f7c94d7d9149426b49d202fe8e7bf0bef47392489c3c0a559"


@pytest.mark.e2e
def test_tiny_run_of_each_variant(tmp_path: Path, data_dir: Path) -> None:
    """Both variants through `bench run` -> accelerate launch -> worker, on the real testing partition
    (a run checks its data as `bench data verify` does, so a synthetic file is refused before launch)."""
    matrix = tmp_path / "traffic-tiny.yaml"
    matrix.write_text(
        "name: traffic-tiny\ntimeout_s: 900\nseeds: 1\ntopologies: [cpu-1proc]\nprecisions: [bf16]\n"
        "workloads:\n  traffic:\n    variants: [ae, lstm_ae]\n    baselines: false\n"
        "    budget: {max_epochs: 3, max_seconds: 900}\n    params: {target: 0.6}\n"
    )
    done = run_cli("run", "--matrix", str(matrix), "--results-dir", str(tmp_path / "runs"), timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = sorted((tmp_path / "runs").glob("*/cells/*.json"))
    assert [c.name for c in cells] == [
        "traffic-ae__cpu-1proc__bf16__s0.json",
        "traffic-lstm_ae__cpu-1proc__bf16__s0.json",
    ]
    for path in cells:
        result = json.loads(path.read_text())
        if "lstm_ae" in path.name and not cpu_runs_a_bf16_lstm():
            # An AVX2-only CPU has no bf16 LSTM: the cell says so instead of crashing.
            assert result["status"] == "unsupported", result["reason"]
            assert "could not create a primitive descriptor" in result["reason"]
            continue
        assert result["status"] == "converged", result["reason"]
        assert result["observed"]["compute_dtype"] == "bf16"
        assert result["target"] == {"metric": "roc_auc", "value": 0.6, "split": "val", "higher_is_better": True}
        assert result["curve"][-1]["roc_auc"] >= 0.6
        metrics = result["metrics"]
        assert set(metrics["thresholds"]) == {"val_max_f1", "train_p99"}
        assert metrics["test"]["roc_auc"] > 0.6 and 0.0 < metrics["test"]["pr_auc"] <= 1.0
        rates = metrics["test"]["detection_rate"]["train_p99"]
        assert {"Normal", "Generic", "Exploits", "DoS"} <= set(rates)
        assert sum(r["rows"] for r in rates.values()) == result["data"]["rows"]["test"]
        assert result["data"]["layout"] == "single-partition" and result["data"]["dedup"] is True
        # what the cell read and what its cleaning changed
        assert result["data"]["sha256"] == {"unsw_nb15/UNSW_NB15_testing-set.csv.gz": TESTING_SHA256}
        steps = {step["step"]: step["rows_changed"] for step in result["data"]["cleaning"]}
        assert steps["drop exact feature duplicates, first in id order kept"] > 0
        assert steps["fill blank numbers with the median of the training normals"] == 0

