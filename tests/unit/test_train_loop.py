"""The shared training loop, in process: reaches a reachable target, stops at the budget,
records a sound curve, and is deterministic for a seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import TensorDataset

from bench.cells import Budget
from bench.harness.train import train
from workloads.base import Splits, Workload
from workloads.metrics import binary_metrics


class TinySeparable(Workload):
    """Two Gaussian blobs in 4-D: a linear model separates them within a few epochs."""

    name = "tiny"
    variants = ("linear",)
    target_metric = "accuracy"

    def load(self, seed: int) -> Splits:
        rng = np.random.default_rng(seed)

        def part(n: int) -> TensorDataset:
            y = rng.integers(0, 2, n)
            x = rng.normal(size=(n, 4)) + (2 * y[:, None] - 1) * 1.5
            return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))

        return Splits(train=part(512), val=part(256), test=part(256))

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 1)

    def loss(self, model, batch):
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1).float(), y)

    def eval_outputs(self, model, batch):
        x, y = batch
        return {"score": torch.sigmoid(model(x).squeeze(-1).float()), "label": y}

    def val_metrics(self, outputs):
        return binary_metrics(outputs["label"], outputs["score"] >= 0.5, outputs["score"])

    def final_metrics(self, evaluate):
        return {"test": self.val_metrics(evaluate("test"))}


@pytest.fixture
def accelerator():
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def run(accelerator, target: float, budget: Budget, seed: int = 0):
    set_seed(seed)
    workload = TinySeparable(params={"global_batch": 32, "lr": 0.05})
    # Set past validation: 1.01 (an unreachable target) is refused in a matrix, not by the loop.
    workload.params = dataclasses.replace(workload.params, target=target)
    return train(accelerator, workload, workload.load(seed), budget, seed)


def test_reaches_a_reachable_target_and_stops_there(accelerator):
    out = run(accelerator, target=0.9, budget=Budget(max_epochs=20, max_seconds=60))
    assert out.status == "converged"
    assert out.curve[-1]["accuracy"] >= 0.9
    assert all(point["accuracy"] < 0.9 for point in out.curve[:-1])  # stopped at the FIRST hit
    assert out.timings["time_to_target_s"] == pytest.approx(out.curve[-1]["seconds"])
    assert out.samples_to_target == out.curve[-1]["samples"]
    assert out.samples_to_target % 32 == 0  # whole global batches
    assert out.metrics["test"]["accuracy"] > 0.85
    assert out.throughput["samples_per_s"] > 0
    assert out.memory["peak_rss_mb"] > 0
    assert out.flops_per_sample > 0


def test_unreachable_target_ends_at_the_epoch_budget(accelerator):
    out = run(accelerator, target=1.01, budget=Budget(max_epochs=3, max_seconds=60))
    assert out.status == "not_converged"
    assert "epoch budget of 3" in out.reason
    assert out.timings["epochs"] == 3
    assert len(out.curve) == 3  # one evaluation per epoch
    assert out.timings["time_to_target_s"] is None


def test_step_budget(accelerator):
    out = run(accelerator, target=1.01, budget=Budget(max_epochs=50, max_seconds=60, max_steps=5))
    assert out.status == "not_converged"
    assert out.timings["steps"] == 5
    assert out.samples_seen == 5 * 32


def test_nan_loss_is_reported_as_diverged(accelerator):
    set_seed(0)
    workload = TinySeparable(params={"target": 0.99, "global_batch": 32, "lr": 0.05})
    splits = workload.load(0)
    splits.train.tensors[0][5, 0] = float("nan")  # one poisoned sample
    out = train(accelerator, workload, splits, Budget(max_epochs=3, max_seconds=60), 0)
    assert out.status == "failed"
    assert "diverged" in out.reason


def test_global_batch_must_divide_over_processes(accelerator):
    from bench.errors import BenchError

    workload = TinySeparable(params={"global_batch": 32})
    workload.params = dataclasses.replace(workload.params, global_batch=33)
    accelerator.state.num_processes = 2  # simulate 2 ranks for the check only
    try:
        with pytest.raises(BenchError, match="does not divide"):
            train(accelerator, workload, workload.load(0), Budget(max_epochs=1), 0)
    finally:
        accelerator.state.num_processes = 1


def test_same_seed_same_metrics_on_real_maintenance_data(accelerator):
    """Same seed, same cell, fp32, one process: identical metrics twice."""
    from workloads.maintenance import Maintenance

    outcomes = []
    for _ in range(2):
        set_seed(7)
        workload = Maintenance("gru")
        workload.params = dataclasses.replace(workload.params, target=1.01)  # never stop early
        outcomes.append(train(accelerator, workload, workload.load(7), Budget(max_epochs=1, max_seconds=120, max_steps=40), 7))
    assert outcomes[0].metrics == outcomes[1].metrics
    assert [p["train_loss"] for p in outcomes[0].curve] == [p["train_loss"] for p in outcomes[1].curve]


def test_should_evaluate_every_n_steps_or_each_epoch_and_after_the_last_step():
    from bench.harness.train import should_evaluate

    # End of each epoch (10 steps per epoch) when no interval is set.
    assert [s for s in range(1, 31) if should_evaluate(s, 10, None, None)] == [10, 20, 30]
    # Every 4 steps when set, whatever the epoch length.
    assert [s for s in range(1, 13) if should_evaluate(s, 10, 4, None)] == [4, 8, 12]
    # The last step of a step budget is always evaluated, so that a run ends on a curve point.
    assert [s for s in range(1, 8) if should_evaluate(s, 10, 4, 7)] == [4, 7]


def test_should_stop_in_its_order_divergence_target_clock():
    from bench.harness.train import should_stop
    from workloads.base import Target

    target = Target("accuracy", 0.9)
    budget = Budget(max_epochs=5, max_seconds=10.0)
    met, unmet = {"accuracy": 0.95}, {"accuracy": 0.5}
    assert should_stop(0.3, unmet, target, 1.0, budget, 7) is None
    assert should_stop(0.3, met, target, 1.0, budget, 7) == ("converged", "")
    # The target met on the last second still counts: converged beats the clock.
    assert should_stop(0.3, met, target, 11.0, budget, 7) == ("converged", "")
    assert should_stop(0.3, unmet, target, 10.0, budget, 7) == ("not_converged", "time budget of 10 s spent")
    # A diverged loss fails the cell even where the metric looks fine.
    assert should_stop(float("nan"), met, target, 1.0, budget, 7) == ("failed", "diverged: non-finite training loss at step 7")
    assert should_stop(float("inf"), unmet, target, 1.0, budget, 3)[0] == "failed"


def test_train_step_takes_one_optimizer_step_and_returns_the_detached_loss(accelerator):
    from bench.harness.train import lr_schedule, train_step

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(0.5, 4, True))
    model, optimizer = accelerator.prepare(model, optimizer)
    workload = TinySeparable(params={"global_batch": 8})
    batch = (torch.randn(8, 4), torch.ones(8))
    before = model.weight.detach().clone()
    loss = train_step(accelerator, workload, model, optimizer, scheduler, batch, grad_clip=1.0)
    assert not loss.requires_grad and loss.ndim == 0
    assert not torch.equal(model.weight, before)  # the optimizer stepped
    assert all(p.grad is None for p in model.parameters())  # gradients cleared for the next step
    assert scheduler.last_epoch == 1  # the schedule advanced once: warm-up factor 2/2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_to_device_moves_nested_batches_and_keeps_the_rest():
    from transformers import BatchEncoding

    from bench.harness.train import to_device

    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "n": 3}
    moved = to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["x"], batch["x"]) and moved["n"] == 3
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    # A tokenizer's batch (a mapping, not a dict) comes back as a dict of moved tensors.
    encoded = to_device(BatchEncoding({"input_ids": torch.ones(1, 3)}), torch.device("cpu"))
    assert type(encoded) is dict and torch.equal(encoded["input_ids"], torch.ones(1, 3))


def test_peak_memory_of_one_process_gathers_to_itself(accelerator):
    from bench.harness import measure

    rank = measure.rank_peak_memory(measure.reset_peak_rss(), on_cuda=False)
    assert rank["cuda"] is None and rank["peak_rss_window"] in ("training", "process lifetime (VmHWM reset refused)")
    memory = measure.gather_peak_memory(accelerator, rank)
    assert memory["per_rank"]["peak_rss_mb"] == [pytest.approx(rank["peak_rss_mb"])]
    assert memory["peak_rss_mb_max"] == memory["peak_rss_mb_sum"] == pytest.approx(rank["peak_rss_mb"])
    assert memory["cuda_max_allocated_mb_max"] is None


def test_a_compiled_run_whose_first_step_compiled_no_graph_stops_there(accelerator):
    """An RNN under compile: dynamo runs it eagerly, so the knob check refuses the cell after
    training; the loop stops after the first step instead of spending the budget first."""
    from torch._dynamo.utils import counters

    from workloads.maintenance import Maintenance

    torch._dynamo.reset()
    counters.clear()
    set_seed(7)
    workload = Maintenance("lstm")
    workload.params = dataclasses.replace(workload.params, target=1.01)  # never stop at the target
    budget = Budget(max_epochs=1, max_seconds=120, max_steps=40)
    compiled = train(accelerator, workload, workload.load(7), budget, 7, compiled=True)
    assert compiled.timings["steps"] == 1
    assert "dynamo compiled no graph" in compiled.reason
    # the same run not compiled trains its whole budget
    assert train(accelerator, workload, workload.load(7), budget, 7).timings["steps"] == 40



def test_every_step_is_timed_including_those_after_the_last_evaluation(accelerator):
    # 16 steps an epoch, an evaluation every 5: steps 31 and 32 end the epoch budget unevaluated,
    # and their times are read at the end (the step clock reads its stamps before each evaluation).
    set_seed(0)
    workload = TinySeparable(params={"global_batch": 32, "lr": 0.05, "eval_every_steps": 5})
    workload.params = dataclasses.replace(workload.params, target=1.01)
    out = train(accelerator, workload, workload.load(0), Budget(max_epochs=2, max_seconds=60), 0)
    assert out.timings["steps"] == 32
    assert len(out.timings["step_times_s"]) == 32 - 5  # every step timed; the first 5 are warm-up
    assert out.timings["train_seconds"] >= sum(out.timings["step_times_s"])
    assert [point["step"] for point in out.curve] == [5, 10, 15, 20, 25, 30]


def test_on_a_device_clock_the_loop_waits_once_per_evaluation_and_never_per_step(accelerator, monkeypatch):
    # The CUDA path of the loop, driven on the CPU: the step clock gets a stand-in for torch.cuda.Event
    # (tests/helpers/step_clock.py) whose device advances 10 ms per recorded event.
    from bench.harness import measure
    from tests.helpers.step_clock import Device

    device = Device()

    def event():
        device.now += 0.010
        return device.event()

    monkeypatch.setattr(measure.StepClock, "for_device", classmethod(lambda cls, _device: cls(event)))
    set_seed(0)
    workload = TinySeparable(params={"global_batch": 32, "lr": 0.05, "eval_every_steps": 5})
    workload.params = dataclasses.replace(workload.params, target=1.01)
    out = train(accelerator, workload, workload.load(0), Budget(max_epochs=2, max_seconds=60), 0)
    # 6 evaluations (steps 5..30) and the end: one wait each, none for the 32 steps themselves
    assert device.waits == 7
    # every step is one 10 ms device interval, across the epoch's restart too
    assert out.timings["step_times_s"] == [pytest.approx(0.010)] * (32 - 5)
    assert out.timings["train_seconds"] > 32 * 0.010  # the evaluations, by the wall clock, on top
