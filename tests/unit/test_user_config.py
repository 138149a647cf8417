"""`bench run --config PATH`: a user's own `accelerate config` file as the topology; and fp8
backend detection (torchao, Transformer Engine, MS-AMP) and what a cell records of it.

The tests that start processes are in tests/e2e/test_user_config.py."""

from __future__ import annotations

import importlib.util
import json

import pytest
from accelerate import Accelerator
from accelerate.utils.dataclasses import FP8BackendType

from bench.cli import main
from bench.harness.host import Host
from bench.harness.matrix import load_matrix, skip_reason
from bench.harness.topology import load_topology
from bench.harness.verify import Expected, verify
from tests.helpers.user_config import write_config


def test_a_config_path_runs_every_training_cell_under_it(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative path, as a user types it
    code = main(["run", "--matrix", "smoke", "--config", "my-cpu.yaml", "--results-dir", str(tmp_path / "runs"),
                 "--run-id", "dry", "--dry-run"])
    assert code == 0, capsys.readouterr().err
    launch = sorted(p.name for p in (tmp_path / "runs" / "dry" / "launch").glob("*.json"))
    smoke = load_matrix("smoke")
    # One training cell per workload, variant, precision and seed, whatever topologies smoke lists.
    wanted = {(c.workload, c.variant, c.precision, c.seed) for c in smoke if c.kind == "train"}
    assert len([n for n in launch if "__baselines__" not in n]) == len(wanted)
    assert "traffic-ae__my-cpu__fp32__s0.json" in launch
    assert "traffic__baselines__s0.json" in launch
    cell = json.loads((tmp_path / "runs" / "dry" / "launch" / "traffic-ae__my-cpu__fp32__s0.json").read_text())
    assert cell["topology"] == str(config)  # absolute: the worker runs in another folder
    out = capsys.readouterr().out
    assert f"--config_file {config} " in out


def test_a_matrix_names_config_files_beside_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    config = write_config(folder, "laptop.yaml")
    (folder / "m.yaml").write_text("topologies: [laptop.yaml, cpu-1proc]\nprecisions: [fp32]\n"
                                   "workloads:\n  traffic: {baselines: false}\n")
    monkeypatch.chdir(tmp_path)  # not the matrix's folder
    assert main(["run", "--matrix", "mine/m.yaml", "--results-dir", "runs", "--run-id", "dry", "--dry-run"]) == 0
    launch = tmp_path / "runs" / "dry" / "launch"
    assert sorted(p.name for p in launch.iterdir()) == ["traffic-ae__cpu-1proc__fp32__s0.json", "traffic-ae__laptop__fp32__s0.json"]
    assert json.loads((launch / "traffic-ae__laptop__fp32__s0.json").read_text())["topology"] == str(config)
    (folder / "m.yaml").write_text("topologies: [3]\nprecisions: [fp32]\nworkloads:\n  traffic: {}\n")
    capsys.readouterr()
    assert main(["run", "--matrix", "mine/m.yaml", "--dry-run", "--results-dir", "runs"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown topology 3; valid choices: cpu-1proc")


def test_a_config_path_with_a_wrongly_typed_key_is_one_line(tmp_path, capsys):
    config = write_config(tmp_path, num_processes="two")
    assert main(["run", "--config", str(config), "--dry-run", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {config}: not a valid accelerate config (num_processes must be int, got 'two')"]


def test_a_missing_config_path_is_one_line_naming_the_builtins(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--dry-run", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'nope.yaml'}: no such accelerate config file")
    assert "cpu-1proc" in err[0]


def test_a_config_path_records_the_file_it_ran(tmp_path):
    config = write_config(tmp_path)
    topology = load_topology(str(config))
    assert topology.name == "my-cpu"
    assert topology.describe()["config_file"] == str(config)
    assert load_topology("cpu-1proc").describe()["config_file"] == "configs/accelerate/cpu-1proc.yaml"


@pytest.mark.parametrize(("installed", "chosen"), [
    ({"torchao", "transformer_engine", "msamp"}, "torchao"),  # accelerate's own preference
    ({"torchao"}, "torchao"),
    ({"transformer_engine", "msamp"}, "transformer_engine"),
    ({"msamp"}, "msamp"),
    (set(), None),
])
def test_the_host_finds_torchao_as_an_fp8_backend(monkeypatch, installed, chosen):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in installed else
                        None if name in ("torchao", "transformer_engine", "msamp") else real(name, *a))
    assert Host.detect().fp8_backend == chosen


def test_an_fp8_cell_runs_with_torchao_alone():
    from bench.harness.matrix import Cell

    fp8 = Cell("maintenance", "lstm", "gpu-1", "fp8", 0)
    assert skip_reason(fp8, load_topology("gpu-1"), Host(1, True, "torchao")) is None
    reason = skip_reason(fp8, load_topology("gpu-1"), Host(1, True, None))
    assert reason == "fp8 needs torchao, transformer_engine or MS-AMP installed, found none"


def test_an_fp8_cell_records_which_backend_computed(fresh_state):
    class TorchaoFp8(Accelerator):
        # What an accelerator launched with --mixed_precision fp8 and torchao installed reports
        # (fp8 itself needs a recent GPU; this host has none).
        mixed_precision = "fp8"
        fp8_backend = FP8BackendType.AO

    observed = verify(TorchaoFp8(cpu=True), Expected(1, ("NO",), "cpu", "fp8")).observed
    assert observed["fp8_backend"] == "AO"
    plain = verify(Accelerator(cpu=True), Expected(1, ("NO",), "cpu", "fp32")).observed
    assert "fp8_backend" not in plain

