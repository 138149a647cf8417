"""The scaling axis: strong (the global batch fixed, each of N processes takes 1/N) against weak
(each process keeps its batch, `device_batch`; the global batch grows N-fold). Matrix expansion and
refusals, the scaled params, and the check that holds what the ranks trained on to what the cell's
own params ask for, so that a weak cell trained at the strong batch (or the reverse) cannot pass.

A real weak cell on 2 processes is in tests/e2e/test_knobs.py."""

from __future__ import annotations

import math

import pytest

from bench.errors import BenchError
from bench.harness.matrix import load_matrix
from bench.harness.train import weak_scaled
from bench.harness.verify import verify_scaling
from tests.helpers.knobs import write_matrix
from workloads import make_workload


def test_weak_cells_are_named_by_the_axis_and_strong_ones_keep_their_ids(tmp_path):
    path = write_matrix(tmp_path, {"topologies": ["cpu-1proc", "cpu-ddp2"], "scaling": ["strong", "weak"],
                                   "workloads": {"traffic": {"baselines": False}}})
    ids = {c.id for c in load_matrix(str(path))}
    assert ids == {"traffic-ae__cpu-1proc__fp32__s0", "traffic-ae__cpu-1proc__fp32__scaling=weak__s0",
                   "traffic-ae__cpu-ddp2__fp32__s0", "traffic-ae__cpu-ddp2__fp32__scaling=weak__s0"}
    weak = next(c for c in load_matrix(str(path)) if c.scaling == "weak")
    assert weak.to_dict()["scaling"] == "weak" and "scaling" not in load_matrix(str(path))[0].to_dict()


@pytest.mark.parametrize("body, words", [
    ({"scaling": ["wide"]}, "unknown scaling value 'wide'; valid choices: strong, weak"),
    ({"scaling": ["weak"], "grad_accum": [3], "workloads": {"traffic": {"baselines": False, "params": {"device_batch": 64}}}},
     "device_batch 64 (scaling=weak) does not divide into grad_accum 3 micro-batches"),
    ({"workloads": {"traffic": {"baselines": False, "params": {"device_batch": 0}}}}, "parameter device_batch must be"),
])
def test_bad_scaling_input_is_refused_when_the_matrix_loads(tmp_path, body, words):
    path = write_matrix(tmp_path, {"topologies": ["cpu-1proc"], "workloads": {"traffic": {"baselines": False}}, **body})
    with pytest.raises(BenchError, match=words.replace("(", "\\(").replace(")", "\\)")):
        load_matrix(str(path))


def test_a_weak_batch_need_not_divide_over_the_processes(tmp_path):
    # 6 samples a process on 2 processes is 12 a step: fine weak, while strong would split 6 into 3 + 3
    path = write_matrix(tmp_path, {"topologies": ["cpu-ddp2"], "scaling": ["weak"],
                                   "workloads": {"traffic": {"baselines": False, "params": {"global_batch": 7,
                                                                                          "device_batch": 6}}}})
    assert [c.scaling for c in load_matrix(str(path))] == ["weak"]


def test_weak_scaling_keeps_each_process_batch_and_raises_the_learning_rate_by_the_square_root():
    params = make_workload("sentiment", params={"global_batch": 16, "device_batch": 32, "lr": 5e-5}).params
    eight = weak_scaled(params, 8)
    assert eight.global_batch == 256 and eight.device_batch == 32
    assert eight.lr == pytest.approx(5e-5 * math.sqrt(256 / 16))
    plain = make_workload("traffic").params  # no device_batch: one process's batch, global_batch
    assert weak_scaled(plain, 1) == plain
    assert weak_scaled(plain, 2).global_batch == 2 * plain.global_batch


def test_the_scaling_check_fails_a_cell_trained_at_the_other_regimes_batch():
    assert verify_scaling("weak", 8, 16, 32, 256.0).status is None
    unscaled = verify_scaling("weak", 8, 16, 32, 16.0)  # weak asked, the global batch never grew
    assert unscaled.status == "invalid" and "asks for a global batch of 256 on 8 process(es)" in unscaled.reason
    assert verify_scaling("strong", 8, 16, 32, 16.0).status is None
    assert verify_scaling("strong", 8, 16, 32, 256.0).status == "invalid"  # strong asked, the batch grew
    assert verify_scaling("weak", 2, 64, None, 128.0).observed["expected_global"] == 128
    assert verify_scaling("weak", 2, 64, None, None).status is None  # no optimizer step: nothing to hold it to


def test_only_weak_cells_carry_the_device_batch_so_strong_cells_read_as_before_the_axis():
    cells = [c for c in load_matrix("gpu", seeds=1) if c.workload == "maintenance" and c.topology == "gpu-ddp8"]
    strong = [c for c in cells if c.scaling == "strong"]
    weak = [c for c in cells if c.scaling == "weak"]
    assert strong and weak
    assert all("device_batch" not in c.params for c in strong)  # a --resume of an older run sees no change
    assert all(c.params["device_batch"] == 256 for c in weak)


def _row(processes: int, samples_per_s: float, axes: dict) -> dict:
    return {"model": "maintenance-gru", "device": "cuda", "precision": "fp32", "processes": processes, "axes": axes,
            "trained": True, "topology": f"gpu-{processes}", "id": f"r{processes}{axes}",
            "time_to_target_s": {"median": 10.0}, "samples_per_s": {"median": samples_per_s}}


def test_weak_scaling_efficiency_is_against_one_gpu_at_the_same_per_gpu_batch_only():
    from bench.analysis.report import add_comparisons

    weak = {"scaling": "weak"}
    rows = [_row(1, 1000.0, {}), _row(1, 4000.0, weak), _row(8, 24000.0, weak), _row(8, 6000.0, {})]
    add_comparisons(rows)
    assert rows[2]["scaling_efficiency"] == pytest.approx(24000 / (8 * 4000))  # weak 8 against weak 1
    assert rows[3]["scaling_efficiency"] == pytest.approx(6000 / (8 * 1000))
    lone = [_row(1, 1000.0, {}), _row(8, 24000.0, weak)]  # no weak one-GPU row: no figure, not 300%
    add_comparisons(lone)
    assert lone[1]["scaling_efficiency"] is None


@pytest.mark.parametrize("args, words", [
    (["--params", "{bad"], "--params is not JSON"),
    (["--params", '{"device_batch": 32}'], "device_batch is a weak-scaled cell's batch per process"),
    (["--params", "[1]"], "--params must be a JSON object"),
])
def test_calibrate_refuses_bad_input_in_one_line(capsys, args, words):
    from bench.harness.calibrate import main

    assert main(["--workload", "maintenance", "--seeds", "1", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]
