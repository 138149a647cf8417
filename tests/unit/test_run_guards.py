"""What `bench run` refuses before (or instead of) doing harm: resume guards, run ids, bad numbers,
unreadable configs, and a full disk mid-run. All in-process through `bench.cli.main` and no
launches: the cells used here are GPU cells that a CPU host skips, or nothing runs at all.

The tests that start processes are in tests/e2e/test_run_guards.py."""

from __future__ import annotations

import dataclasses
import errno
import math
from pathlib import Path

import pytest
import yaml

import bench.commands.run
import bench.harness.matrix
import bench.harness.runner
from bench.cli import main
from bench.errors import BenchError
from bench.harness.matrix import load_matrix
from bench.harness.topology import load_topology
from bench.paths import ACCELERATE_CONFIGS_DIR
from tests.helpers.run_guards import (
    BINARY,
    cpu_host,  # noqa: F401  (autouse: every GPU cell skipped here)
    one_error_line,
    write_matrix,
)
from workloads import REGISTRY, workload_class


@pytest.mark.parametrize("flag", ["--run-id", "--resume"])
@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".", "", "/tmp/abs", "x\ny"])
def test_a_run_id_must_be_one_safe_folder_name(tmp_path, capsys, flag, bad):
    results = tmp_path / "deep" / "results"
    results.mkdir(parents=True)
    (tmp_path / "deep" / "escape" / "cells").mkdir(parents=True)  # something `--resume ../escape` could find
    (tmp_path / "deep" / "escape" / "run.json").write_text('{"matrix": "smoke"}')
    matrix = write_matrix(tmp_path / "m.yaml")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["run", "--matrix", matrix, "--results-dir", str(results), flag, bad, "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert flag in line and "single folder name" in line, line
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_a_generated_run_id_from_an_odd_matrix_file_name_is_one_folder(tmp_path):
    from bench.harness.runner import new_run_id

    run_id = new_run_id(str(tmp_path / "my matrix;v2.yaml"))
    assert "/" not in run_id and " " not in run_id and ";" not in run_id and run_id.endswith("my_matrix_v2")


def base_spec(**changes) -> dict:
    spec = {"topologies": ["cpu-1proc"], "precisions": ["fp32"], "workloads": {"maintenance": {}}}
    spec.update(changes)
    return spec


def refused(tmp_path: Path, spec: dict | str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    with pytest.raises(BenchError) as err:
        load_matrix(str(path))
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "text, message",
    [
        ("timeout_s: .nan", "timeout_s must be a positive finite number, got nan"),
        ("timeout_s: .inf", "timeout_s must be a positive finite number, got inf"),
        ("timeout_s: -.inf", "timeout_s must be a positive finite number, got -inf"),
        ("workloads: {maintenance: {timeout_s: .nan}}", "workload maintenance: timeout_s must be a positive finite number"),
        ("workloads: {maintenance: {budget: {max_seconds: .nan}}}", "budget max_seconds must be a positive finite number, got nan"),
        ("workloads: {maintenance: {budget: {max_seconds: .inf}}}", "budget max_seconds must be a positive finite number, got inf"),
        ("workloads: {maintenance: {budget: {max_epochs: 2.5}}}", "budget max_epochs must be a whole number, got 2.5"),
        ("workloads: {maintenance: {budget: {max_steps: 10.5}}}", "budget max_steps must be a whole number, got 10.5"),
        ("workloads: {maintenance: {budget: {max_steps: .inf}}}", "budget max_steps must be a whole number, got inf"),
        ("workloads: {maintenance: {budget: {max_epochs: true}}}", "budget max_epochs must be a whole number, got True"),
        ("seeds: [0, 1, 0]", "seeds must not repeat: 0 is listed twice"),
        ("seeds: true", "seeds must be a positive count or a list of non-negative integers"),
        ("seeds: [0, 1.5]", "seeds must be a positive count or a list of non-negative integers"),
    ],
)
def test_non_finite_fractional_or_duplicated_numbers_in_a_matrix_are_refused(tmp_path, text, message):
    head = "topologies: [cpu-1proc]\nprecisions: [fp32]\n"
    body = text if text.startswith("workloads") else text + "\nworkloads: {maintenance: {}}"
    assert message in refused(tmp_path, head + body)


def numeric_params(workload: str) -> list[dataclasses.Field]:
    fields = dataclasses.fields(workload_class(workload).Params)
    return [f for f in fields if {k.strip() for k in str(f.type).split("|")} - {"None"} in ({"int"}, {"float"})]


def test_every_workload_has_numeric_params_to_check():
    assert all(len(numeric_params(w)) >= 8 for w in REGISTRY)


@pytest.mark.parametrize("workload", sorted(REGISTRY))
def test_every_numeric_param_of_every_workload_is_range_checked(tmp_path, workload):
    """No numeric parameter takes -1, NaN or infinity: each declares its range (or the metric's)."""
    for f in numeric_params(workload):
        bad_values = [-1] + ([math.nan, math.inf] if "float" in str(f.type) else [])
        for bad in bad_values:
            message = refused(tmp_path, base_spec(workloads={workload: {"params": {f.name: bad}}}))
            assert f"workload {workload}: parameter {f.name} must be" in message, (f.name, bad, message)


@pytest.mark.parametrize(
    "workload, params, message",
    [
        ("maintenance", {"window": 0}, "parameter window must be at least 1, got 0"),
        ("maintenance", {"hidden": 0}, "parameter hidden must be at least 1, got 0"),
        ("maintenance", {"global_batch": -8}, "parameter global_batch must be at least 1, got -8"),
        ("maintenance", {"threshold": 1.5}, "parameter threshold must be at most 1, got 1.5"),
        ("maintenance", {"dropout": 1.0}, "parameter dropout must be below 1, got 1.0"),
        ("maintenance", {"target": 1.2}, "parameter target must be in the range of f1, [0, 1], got 1.2"),
        ("maintenance", {"target": -0.1}, "parameter target must be in the range of f1, [0, 1], got -0.1"),
        ("maintenance", {"eval_every_steps": 2.5}, "parameter eval_every_steps must be int, got 2.5"),
        ("maintenance", {"lr": 0}, "parameter lr must be above 0, got 0"),
        ("maintenance", {"warmup_fraction": 1.0}, "parameter warmup_fraction must be below 1, got 1.0"),
        ("traffic", {"target": 1.5}, "parameter target must be in the range of roc_auc, [0, 1], got 1.5"),
        ("traffic", {"val_fraction": 0}, "parameter val_fraction must be above 0, got 0"),
        ("traffic", {"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction + test_fraction must be below 1"),
        ("traffic", {"ae_hidden": 1}, "parameter ae_hidden must be at least 2, got 1"),
        ("sentiment", {"target": 90}, "parameter target must be in the range of accuracy, [0, 1], got 90"),
        ("sentiment", {"max_length": 4}, "parameter max_length must be at least 8, got 4"),
        ("sentiment", {"train_subset": -100}, "parameter train_subset must be at least 0, got -100"),
    ],
)
def test_workload_params_out_of_range_are_refused_before_launch(tmp_path, workload, params, message):
    assert message in refused(tmp_path, base_spec(workloads={workload: {"params": params}}))


def test_params_at_the_edges_of_their_ranges_are_accepted(tmp_path):
    path = tmp_path / "m.yaml"
    spec = base_spec(workloads={
        "maintenance": {"params": {"window": 1, "hidden": 1, "threshold": 1.0, "target": 1.0, "dropout": 0.0}},
        "traffic": {"params": {"target": 0.0, "val_fraction": 0.5, "test_fraction": 0.4}},
    })
    path.write_text(yaml.safe_dump(spec))
    assert len(load_matrix(str(path))) == 4


def test_every_target_metric_has_a_known_range():
    from workloads.base import METRIC_RANGES

    assert all(workload_class(w).target_metric in METRIC_RANGES for w in REGISTRY)


@pytest.mark.parametrize("seeds", ["0", "-1", "-3"])
def test_seeds_flag_below_one_is_refused(capsys, seeds):
    assert main(["run", "--seeds", seeds, "--dry-run"]) == 2
    assert f"--seeds must be at least 1, got {seeds}" in one_error_line(capsys)


def test_a_binary_file_as_matrix_is_one_line(tmp_path, capsys):
    (tmp_path / "m.yaml").write_bytes(BINARY)
    assert main(["run", "--matrix", str(tmp_path / "m.yaml"), "--dry-run"]) == 2
    assert "m.yaml: not a text file" in one_error_line(capsys)


def test_a_binary_file_as_accelerate_config_is_one_error(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(BINARY)
    with pytest.raises(BenchError, match=r"bin.yaml: not a text file"):
        load_topology("bin", tmp_path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("num_processes", "two", "num_processes must be int, got 'two'"),
        ("num_processes", 1.5, "num_processes must be int, got 1.5"),
        ("num_machines", True, "num_machines must be int, got True"),
        ("mixed_precision", 3, "mixed_precision must be one of no, fp16, bf16, fp8, got 3"),
        ("mixed_precision", "fp64", "mixed_precision must be one of no, fp16, bf16, fp8, got 'fp64'"),
        ("use_cpu", "yes", "use_cpu must be bool, got 'yes'"),
        ("main_process_port", "abc", "main_process_port must be int, got 'abc'"),
        ("main_process_port", 70000, "main_process_port must be a port number 1-65535, got 70000"),
        ("gpu_ids", 0, "gpu_ids must be str, got 0"),
        ("fsdp_config", "on", "fsdp_config must be a mapping, got 'on'"),
    ],
)
def test_a_wrongly_typed_accelerate_key_is_one_error(tmp_path, key, value, message):
    raw = yaml.safe_load((ACCELERATE_CONFIGS_DIR / "cpu-ddp2.yaml").read_text())
    raw[key] = value
    (tmp_path / "odd.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(BenchError) as err:
        load_topology("odd", tmp_path)
    assert "odd.yaml: " in str(err.value) and message in str(err.value), str(err.value)


def test_a_full_disk_outside_the_runner_is_one_line_too(tmp_path, capsys, monkeypatch):
    """The dry run writes cell files; any command's write on a full disk ends in one line."""

    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(bench.commands.run, "write_json_atomic", full)
    matrix = write_matrix(tmp_path / "m.yaml")
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--dry-run"]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "maintenance-gru__gpu-1__fp32__s0.json" in line, line

