"""The tests of tests/unit/test_trackers.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from bench.results import load_run_dicts
from tests.conftest import run_cli
from tests.helpers.runs import matrix_file, only_run


def events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


@pytest.mark.e2e
def test_a_cell_logged_to_tensorboard_has_its_curve_hparams_and_final_metrics(tmp_path):
    matrix = matrix_file(tmp_path, ["cpu-1proc"], ["fp32"], params={"target": 0.3})
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--log-with", "tensorboard")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = only_run(tmp_path / "results")
    [result] = load_run_dicts(run_dir)
    assert result["status"] == "converged", result.get("reason")
    assert result["cell"]["tracking"]["log_with"] == "tensorboard"
    folder = run_dir / "trackers" / result["cell"]["id"]

    # The convergence curve: one point per evaluation, at step = training samples seen, dated when it ended.
    board, curve = events(folder), result["curve"]
    f1 = board.Scalars("val/f1")
    assert [e.step for e in f1] == [p["samples"] for p in curve]
    assert [e.value for e in f1] == pytest.approx([p["f1"] for p in curve], rel=1e-6)
    assert [e.wall_time for e in f1] == pytest.approx([p["time_unix"] for p in curve], abs=1e-3)
    loss = board.Scalars("train/loss")
    assert [e.value for e in loss] == pytest.approx([p["train_loss"] for p in curve], rel=1e-6)

    # The final metrics, at the last step.
    [test_f1] = board.Scalars("final/test/f1")
    assert test_f1.step == result["samples_seen"]
    assert test_f1.value == pytest.approx(result["metrics"]["test"]["f1"], rel=1e-6)
    assert board.Scalars("final/converged")[0].value == 1.0
    assert board.Scalars("final/time_to_target_s")[0].value == pytest.approx(result["timings"]["time_to_target_s"], rel=1e-6)

    # The cell's configuration as hyperparameters (add_hparams writes them in a subfolder).
    found = [hparams_metadata.parse_session_start_info_plugin_data(content)
             for sub in folder.iterdir() if any(sub.glob("events.out.tfevents.*"))
             for tag, content in events(sub).PluginTagToContent(hparams_metadata.PLUGIN_NAME).items()
             if tag == hparams_metadata.SESSION_START_INFO_TAG]
    assert len(found) == 1
    hparams = found[0].hparams
    assert hparams["workload"].string_value == "maintenance"
    assert hparams["precision"].string_value == "fp32"
    assert hparams["seed"].number_value == 0
    assert hparams["params.target"].number_value == pytest.approx(0.3)
    assert hparams["params.lr"].number_value == pytest.approx(result["workload"]["params"]["lr"])
    assert hparams["global_batch"].number_value == result["batch"]["global"]

