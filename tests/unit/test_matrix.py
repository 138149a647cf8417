"""Topology configs, matrix expansion and the capability check (no launches here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.errors import BenchError
from bench.harness.host import Host
from bench.harness.matrix import Cell, expected_verdict, filter_cells, load_matrix, skip_reason
from bench.harness.runner import plan, print_dry_run
from bench.harness.topology import available_topologies, load_topology
from bench.paths import ACCELERATE_CONFIGS_DIR

NO_GPU = Host(gpus=0, bf16_gpu=False, fp8_backend=None)


EIGHT_GPUS = Host(gpus=8, bf16_gpu=True, fp8_backend=None)


@pytest.mark.parametrize("name", available_topologies())
def test_every_accelerate_config_loads_with_accelerates_own_classes(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(ACCELERATE_CONFIGS_DIR / f"{name}.yaml")
    topology = load_topology(name)
    assert topology.num_processes == config.num_processes
    assert topology.num_machines == config.num_machines


def test_the_product_topologies_exist():
    assert {"cpu-1proc", "cpu-ddp2", "cpu-2node", "gpu-1", "gpu-ddp2", "gpu-ddp4", "gpu-ddp8", "gpu-2node-x8", "gpu-fsdp2"} <= set(
        available_topologies()
    )


def test_cpu_topologies_promise_multi_cpu_when_multi_process():
    assert load_topology("cpu-1proc").expected("fp32").distributed_types == ("NO",)
    assert load_topology("cpu-ddp2").expected("bf16").distributed_types == ("MULTI_CPU",)
    two_node = load_topology("cpu-2node")
    assert (two_node.num_machines, two_node.num_processes, two_node.processes_per_machine) == (2, 2, 1)
    assert load_topology("gpu-fsdp2").expected("bf16").distributed_types == ("FSDP",)


def test_unknown_keys_in_an_accelerate_config_are_refused(tmp_path):
    (tmp_path / "odd.yaml").write_text("distributed_type: 'NO'\nnum_processes: 1\nnum_gpus_please: 3\n")
    with pytest.raises(BenchError, match="unknown keys"):
        load_topology("odd", directory=tmp_path)


def test_unknown_topology_lists_the_choices():
    with pytest.raises(BenchError, match=r"unknown topology 'cpu-9proc'; valid choices: .*cpu-1proc"):
        load_topology("cpu-9proc")


def test_smoke_matrix_expands_to_workloads_topologies_precisions_and_baselines():
    cells = load_matrix("smoke")
    train = [c for c in cells if c.kind == "train"]
    # The smoke: every workload on every CPU topology in fp32, bf16 on every topology for the
    # workloads whose bf16 cells are cheap on every CPU of the project's kind (not MiniLM:
    # smoke.yaml says why) ...
    for workload in ("maintenance", "traffic", "sentiment"):
        covered = {(c.topology, c.precision) for c in train if c.workload == workload}
        precisions = ("fp32",) if workload == "sentiment" else ("fp32", "bf16")
        assert covered >= {(t, p) for t in ("cpu-1proc", "cpu-ddp2", "cpu-2node") for p in precisions}, workload
    # ... and fp16 somewhere, so that every CI run sees the silent CPU fallback caught
    assert any(c.precision == "fp16" for c in train)
    assert {c.topology for c in train} == {"cpu-1proc", "cpu-ddp2", "cpu-2node"}
    assert len({c.id for c in cells}) == len(cells)  # ids are unique
    baselines = [c for c in cells if c.kind == "baseline"]
    assert {c.workload for c in baselines} == {c.workload for c in train}


def test_seeds_multiply_cells():
    one = load_matrix("smoke", seeds=1)
    three = load_matrix("smoke", seeds=3)
    assert len(three) == 3 * len(one)
    assert {c.seed for c in three} == {0, 1, 2}


def test_cell_round_trips_through_json():
    cell = load_matrix("smoke")[0]
    assert Cell.from_dict(cell.to_dict()) == cell


def test_filters():
    cells = filter_cells(load_matrix("smoke"), workload="maintenance", topology="cpu-ddp2", precision="bf16")
    assert [c.id for c in cells if c.kind == "train"] == ["maintenance-lstm__cpu-ddp2__bf16__s0"]
    with pytest.raises(BenchError, match="unknown precision 'fp64'"):
        filter_cells(load_matrix("smoke"), precision="fp64")


def write_matrix(tmp_path: Path, spec: dict) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


BASE = {"topologies": ["cpu-1proc"], "precisions": ["fp32"], "workloads": {"maintenance": {}}}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"workloads": {"nope": {}}}, "unknown workload 'nope'"),
        ({"topologies": ["cpu-3proc"]}, "unknown topology 'cpu-3proc'"),
        ({"precisions": ["fp64"]}, "unknown precision 'fp64'"),
        ({"workloads": {"maintenance": {"budget": {"max_epochs": 0}}}}, "budget max_epochs must be a positive number"),
        ({"workloads": {"maintenance": {"budget": {"max_seconds": -5}}}}, "budget max_seconds must be a positive number"),
        ({"workloads": {"maintenance": {"budget": {"epochs": 5}}}}, "unknown budget key"),
        ({"workloads": {"maintenance": {"params": {"hiden": 5}}}}, "unknown parameter(s) hiden"),
        ({"workloads": {"maintenance": {"variants": ["rnn"]}}}, "unknown variant 'rnn'"),
        ({"seeds": 0}, "seeds must be"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"colour": "blue"}, "unknown key(s) colour"),
    ],
)
def test_bad_matrices_get_one_line_errors(tmp_path, change, message):
    with pytest.raises(BenchError) as err:
        load_matrix(write_matrix(tmp_path, {**BASE, **change}))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("workloads: [unclosed\n")
    with pytest.raises(BenchError, match="malformed YAML"):
        load_matrix(str(path))


def test_unknown_matrix_name_lists_choices():
    with pytest.raises(BenchError, match="unknown matrix 'huge'; valid choices: .*smoke"):
        load_matrix("huge")


def cell(topology: str, precision: str = "fp32") -> Cell:
    return Cell("maintenance", "gru", topology, precision, 0)


def test_gpu_cells_are_skipped_on_a_cpu_host_with_a_reason():
    assert skip_reason(cell("gpu-ddp2"), load_topology("gpu-ddp2"), NO_GPU) == "needs 2 GPU(s), found 0"
    assert skip_reason(cell("gpu-1"), load_topology("gpu-1"), NO_GPU) == "needs 1 GPU(s), found 0"
    reason = skip_reason(cell("gpu-2node-x8"), load_topology("gpu-2node-x8"), NO_GPU)
    assert reason.startswith("needs 2 nodes x 8 GPUs, found 0 GPU(s)")


def test_cpu_cells_run_and_fp16_on_cpu_is_left_to_the_worker_to_expose():
    for topology in ("cpu-1proc", "cpu-ddp2", "cpu-2node"):
        for precision in ("fp32", "bf16", "fp16"):
            assert skip_reason(cell(topology, precision), load_topology(topology), NO_GPU) is None


def test_the_dry_run_says_fp16_on_cpu_will_come_out_unsupported(capsys):
    cells = [cell("cpu-ddp2", "fp16"), cell("cpu-ddp2", "fp32"), cell("gpu-1", "fp16")]
    assert expected_verdict(cells[0], load_topology("cpu-ddp2")).startswith("unsupported")
    assert expected_verdict(cells[1], load_topology("cpu-ddp2")) is None
    assert expected_verdict(cells[2], load_topology("gpu-1")) is None  # a GPU computes fp16 for real
    print_dry_run(plan(cells, Path("/nonexistent-run"), NO_GPU))
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if "__" in line}
    assert "run; expect unsupported" in lines["maintenance-gru__cpu-ddp2__fp16__s0"]
    assert "expect" not in lines["maintenance-gru__cpu-ddp2__fp32__s0"]
    assert "skip: needs 1 GPU(s), found 0" in lines["maintenance-gru__gpu-1__fp16__s0"]


def test_the_dry_run_says_a_bf16_rnn_on_a_gpu_comes_out_unsupported():
    # torch's AutocastRNN runs cuDNN GRU/LSTM in fp16 under bf16 autocast: the worker refuses such
    # cells (issue 27, item 4), and the dry run must not predict "run" for them.
    gru = Cell("maintenance", "gru", "gpu-1", "bf16", 0)
    assert "AutocastRNN hard-codes Half" in expected_verdict(gru, load_topology("gpu-1"))
    assert "AutocastRNN" in expected_verdict(Cell("traffic", "lstm_ae", "gpu-1", "bf16", 0), load_topology("gpu-1"))
    assert expected_verdict(Cell("traffic", "ae", "gpu-1", "bf16", 0), load_topology("gpu-1")) is None
    assert expected_verdict(Cell("maintenance", "gru", "cpu-1proc", "bf16", 0), load_topology("cpu-1proc")) is None


def test_the_dry_run_says_deepspeed_half_precision_fails_a_model_fed_float_features():
    # DeepSpeed casts weights, not inputs (tests/e2e/test_deepspeed_probe.py shows it on CPU).
    assert "not its float inputs" in expected_verdict(Cell("traffic", "ae", "gpu-zero2-x2", "bf16", 0),
                                                      load_topology("gpu-zero2-x2"))
    assert expected_verdict(Cell("sentiment", "minilm", "gpu-zero2-x2", "bf16", 0), load_topology("gpu-zero2-x2")) is None
    assert expected_verdict(Cell("traffic", "ae", "gpu-zero2-x2", "fp32", 0), load_topology("gpu-zero2-x2")) is None


def test_fp8_needs_a_backend_and_a_gpu():
    assert "needs a GPU" in skip_reason(cell("cpu-1proc", "fp8"), load_topology("cpu-1proc"), NO_GPU)
    assert "transformer_engine or MS-AMP" in skip_reason(cell("gpu-1", "fp8"), load_topology("gpu-1"), EIGHT_GPUS)


def test_a_big_enough_gpu_host_runs_gpu_cells():
    assert skip_reason(cell("gpu-ddp8", "bf16"), load_topology("gpu-ddp8"), EIGHT_GPUS) is None
    assert skip_reason(cell("gpu-ddp8", "bf16"), load_topology("gpu-ddp8"), Host(8, False, None)) == "needs a GPU with native bf16 (this one has none, or only emulates it)"


def test_the_cell_key_names_cells_as_their_result_files_always_have_been(tmp_path) -> None:
    from bench.cells import CellKey

    train = Cell("maintenance", "gru", "cpu-ddp2", "bf16", 3)
    assert train.id == train.key.id == "maintenance-gru__cpu-ddp2__bf16__s3"
    assert train.key.without_seed().id == "maintenance-gru__cpu-ddp2__bf16"
    baseline = Cell("maintenance", "baselines", "host", "fp32", 1, kind="baseline")
    assert baseline.id == "maintenance__baselines__s1" and baseline.key.without_seed().id == "maintenance__baselines"
    user_config = Cell("traffic", "mlp", str(tmp_path / "my ddp.yaml"), "fp32", 0)
    assert user_config.id == "traffic-mlp__my_ddp__fp32__s0"  # a user's config file goes by its stem
    assert CellKey.of(train.to_dict()) == train.key and Cell.from_dict(train.to_dict()).key == train.key


def test_a_future_axis_appears_in_the_id_only_away_from_its_default(monkeypatch) -> None:
    from bench import cells

    monkeypatch.setattr(cells, "AXIS_DEFAULTS", {"compile": False, "grad_accum": 1})
    plain = cells.CellKey("maintenance", "gru", "cpu-1proc", "fp32", 0, axes=(("grad_accum", 1), ("compile", False)))
    assert plain.id == "maintenance-gru__cpu-1proc__fp32__s0" and plain.axes == ()
    away = cells.CellKey("maintenance", "gru", "cpu-1proc", "fp32", 0, axes=(("grad_accum", 4), ("compile", True)))
    assert away.id == "maintenance-gru__cpu-1proc__fp32__compile=True__grad_accum=4__s0"  # sorted by name
    assert away.without_seed().id == "maintenance-gru__cpu-1proc__fp32__compile=True__grad_accum=4"
    assert cells.CellKey.of({"workload": "maintenance", "variant": "gru", "topology": "cpu-1proc", "precision": "fp32",
                             "seed": 0, "grad_accum": 4, "compile": True}) == away

