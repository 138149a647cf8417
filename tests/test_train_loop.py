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
    assert out["status"] == "converged"
    assert out["curve"][-1]["accuracy"] >= 0.9
    assert all(point["accuracy"] < 0.9 for point in out["curve"][:-1])  # stopped at the FIRST hit
    assert out["timings"]["time_to_target_s"] == pytest.approx(out["curve"][-1]["seconds"])
    assert out["samples_to_target"] == out["curve"][-1]["samples"]
    assert out["samples_to_target"] % 32 == 0  # whole global batches
    assert out["metrics"]["test"]["accuracy"] > 0.85
    assert out["throughput"]["samples_per_s"] > 0
    assert out["memory"]["peak_rss_mb"] > 0
    assert out["flops_per_sample"] > 0


def test_unreachable_target_ends_at_the_epoch_budget(accelerator):
    out = run(accelerator, target=1.01, budget=Budget(max_epochs=3, max_seconds=60))
    assert out["status"] == "not_converged"
    assert "epoch budget of 3" in out["reason"]
    assert out["timings"]["epochs"] == 3
    assert len(out["curve"]) == 3  # one evaluation per epoch
    assert out["timings"]["time_to_target_s"] is None


def test_step_budget(accelerator):
    out = run(accelerator, target=1.01, budget=Budget(max_epochs=50, max_seconds=60, max_steps=5))
    assert out["status"] == "not_converged"
    assert out["timings"]["steps"] == 5
    assert out["samples_seen"] == 5 * 32


def test_nan_loss_is_reported_as_diverged(accelerator):
    set_seed(0)
    workload = TinySeparable(params={"target": 0.99, "global_batch": 32, "lr": 0.05})
    splits = workload.load(0)
    splits.train.tensors[0][5, 0] = float("nan")  # one poisoned sample
    out = train(accelerator, workload, splits, Budget(max_epochs=3, max_seconds=60), 0)
    assert out["status"] == "failed"
    assert "diverged" in out["reason"]


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
    assert outcomes[0]["metrics"] == outcomes[1]["metrics"]
    assert [p["train_loss"] for p in outcomes[0]["curve"]] == [p["train_loss"] for p in outcomes[1]["curve"]]
