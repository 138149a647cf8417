"""Every training cell writes an MLPerf log (bench/harness/mlperf_log.py), and mlperf-logging's own parser
reads it: a real maintenance cell launched by `bench run`, then its results/<run>/mllog/<cell>.log."""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest
from mlperf_logging.compliance_checker.mlp_parser import parse_file

from bench.harness.mlperf_log import mllog_path, mllog_text
from bench.results import load_run_dicts
from tests.conftest import run_cli
from tests.helpers.runs import matrix_file, only_run

pytestmark = pytest.mark.e2e


RULESET = "6.1.0"  # the parser of the newest training ruleset in mlperf-logging 4.1


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """One converged cell: its run folder and its result."""
    tmp_path = tmp_path_factory.mktemp("mllog")
    matrix = matrix_file(tmp_path, ["cpu-1proc"], ["fp32"], params={"target": 0.3})
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = only_run(tmp_path / "results")
    [result] = load_run_dicts(run_dir)
    assert result["status"] == "converged", result.get("reason")
    return run_dir, result


def parsed(path) -> dict[str, list]:
    lines, errors = parse_file(str(path), ruleset=RULESET)
    assert errors == []
    by_key = defaultdict(list)
    for line in lines:
        by_key[line.key].append(line)
    return by_key


def test_the_log_holds_the_run_its_settings_and_every_evaluation(cell):
    run_dir, result = cell
    path = mllog_path(run_dir, result["cell"]["id"])
    log = parsed(path)
    keys = [line.key for line in parse_file(str(path), ruleset=RULESET)[0]]
    # init, then the run; every evaluation inside it
    assert keys[0] == "init_start" and keys[-1] == "run_stop"
    assert keys.index("init_stop") + 1 == keys.index("run_start")
    assert {"seed", "global_batch_size", "opt_base_learning_rate", "submission_benchmark",
            "submission_division", "submission_platform"} <= set(keys[: keys.index("init_stop")])
    assert log["run_stop"][0].value["metadata"]["status"] == "success"
    assert log["seed"][0].value["value"] == result["cell"]["seed"]
    assert log["global_batch_size"][0].value["value"] == result["batch"]["global"] == 64
    assert log["opt_base_learning_rate"][0].value["value"] == result["workload"]["params"]["lr"]
    assert log["submission_benchmark"][0].value["value"] == "maintenance"

    evals, curve = log["eval_accuracy"], result["curve"]
    steps_per_epoch = result["timings"]["steps_per_epoch"]
    assert [e.value["value"] for e in evals] == [p["f1"] for p in curve]
    assert [e.value["metadata"]["samples_count"] for e in evals] == [p["samples"] for p in curve]
    assert [e.value["metadata"]["epoch_num"] for e in evals] == [p["step"] / steps_per_epoch for p in curve]
    assert evals[-1].value["value"] >= 0.3  # the evaluation that met the target ends the run
    assert all(e.value["value"] < 0.3 for e in evals[:-1])
    stamps = [line.timestamp for line in parse_file(str(path), ruleset=RULESET)[0]]
    assert stamps == sorted(stamps)


def test_time_to_train_from_the_log_is_the_results_time_to_target(cell):
    """run_stop - run_start is the interval time-to-target measures: from the first training step to
    the end of the evaluation that met the target. The log's ends are dates taken at the clock's zero
    and when the loop ended, each truncated to a whole millisecond (hence -2 ms). The clock leaves out
    only the loop's bookkeeping between steps (the end of an epoch, the all-reduces after each
    evaluation), microseconds each on one process. 500 ms bounds them with room for a busy machine
    preempting the worker inside those windows; the test below pins init to its own interval."""
    run_dir, result = cell
    log = parsed(mllog_path(run_dir, result["cell"]["id"]))
    time_to_train_ms = log["run_stop"][0].timestamp - log["run_start"][0].timestamp
    time_to_target_ms = result["timings"]["time_to_target_s"] * 1000
    assert -2 <= time_to_train_ms - time_to_target_ms <= 500
    # init_start..init_stop is the result's init_s: the same two instants on another clock.
    init_ms = log["init_stop"][0].timestamp - log["init_start"][0].timestamp
    assert init_ms == pytest.approx(result["timings"]["init_s"] * 1000, abs=2)


def test_a_run_that_missed_its_target_stops_aborted(cell, tmp_path):
    _, result = cell
    missed = copy.deepcopy(result)
    missed["status"] = "not_converged"
    path = tmp_path / "missed.log"
    path.write_text(mllog_text(missed))
    assert parsed(path)["run_stop"][0].value["metadata"]["status"] == "aborted"


def test_only_training_cells_are_given_a_log_to_write(tmp_path):
    from bench.harness.launch import launch_commands
    from bench.harness.topology import load_topology

    cell_file, out, log = tmp_path / "c.json", tmp_path / "r.json", tmp_path / "c.log"
    [train] = launch_commands(load_topology("cpu-1proc"), "fp32", cell_file, out, mllog_file=log)
    assert train[train.index("--mllog") + 1] == str(log)
    [baseline] = launch_commands(None, "fp32", cell_file, out, mllog_file=log)
    assert "--mllog" not in baseline

