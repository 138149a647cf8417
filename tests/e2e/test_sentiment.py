"""The tests of tests/unit/test_sentiment.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.cli import main as bench_main
from tests.conftest import run_cli
from tests.helpers.sentiment import offline  # noqa: F401  (autouse)
from workloads.sentiment import LABELS


@pytest.mark.e2e
def test_unresolvable_model_makes_the_cell_skipped_not_launched(tmp_path):
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        "name: t\ntopologies: [cpu-1proc]\nprecisions: [fp32]\n"
        "workloads:\n  sentiment:\n    baselines: false\n    params: {model: no-such-org/no-such-model}\n"
    )
    # --results-dir: a dry run writes its cells' launch files, which must not land in the project's results/.
    done = run_cli("run", "--matrix", str(matrix), "--results-dir", str(tmp_path / "runs"), "--dry-run",
                   env={"HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skip: cannot resolve model 'no-such-org/no-such-model'" in done.stdout


@pytest.mark.e2e
def test_tiny_fine_tuning_moves_the_loss_and_saves_a_checkpoint(tmp_path, capsys):
    """16 steps over the same 32 training reviews (8 epochs): a model that learns fits them, so the
    mean training loss of steps 9-16 must be clearly below that of steps 1-8."""
    matrix = tmp_path / "tiny.yaml"
    matrix.write_text(
        "name: tiny\ntimeout_s: 800\ntopologies: [cpu-1proc]\nprecisions: [fp32]\n"
        "workloads:\n  sentiment:\n    budget: {max_steps: 16, max_seconds: 600}\n    baselines: false\n"
        "    params: {target: 1.0, max_length: 32, train_subset: 32, val_subset: 32, test_subset: 32,"
        " ood_subset: 40, lr: 2.0e-4, warmup_fraction: 0.0, linear_decay: false, eval_every_steps: 8, eval_batch: 32}\n"
    )
    done = run_cli("run", "--matrix", str(matrix), "--results-dir", str(tmp_path / "runs"),
                   "--save-checkpoint", str(tmp_path / "ckpt"), timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    [cell_file] = (tmp_path / "runs").glob("*/cells/*.json")
    result = json.loads(cell_file.read_text())
    assert result["status"] == "not_converged" and result["timings"]["steps"] == 16
    losses = [point["train_loss"] for point in result["curve"]]
    assert len(losses) == 2 and losses[1] < losses[0] - 0.05, losses
    assert set(result["metrics"]) == {"val", "test", "uci_sentences"}
    assert result["throughput"]["tokens_per_s"] > result["throughput"]["samples_per_s"] > 0
    assert result["data"]["samples"]["uci_sentences"] == 40
    assert result["data"]["positives"]["uci_sentences"] == 20  # stratified: the file is half positive
    assert result["cell_wall_s"] > result["timings"]["train_seconds"] > 0
    assert result["timings"]["final_eval_s"] > 0

    checkpoint = tmp_path / "ckpt" / "sentiment"
    meta = json.loads((checkpoint / "bench_checkpoint.json").read_text())
    assert meta["labels"] == LABELS and meta["max_length"] == 32 and meta["metrics"] == result["metrics"]
    source = tmp_path / "r.txt"
    source.write_text("Excellent, five stars\nAwful. Broke on day one\n")
    assert bench_main(["predict", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(tmp_path / "p.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2

