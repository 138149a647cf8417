"""Accelerate's training step against a plain PyTorch loop: the same fp32 losses, step by step.

bench/harness/train.py (through an in-process Accelerator) and bench/harness/parity.py's plain loop train the
same model on the same data with the same seed; their losses must agree to 1e-6. Every
registered workload is checked; one whose module does not import yet is skipped.

The tests that start processes are in tests/e2e/test_parity.py."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from workloads import REGISTRY

STEPS = 4


def _importable(name: str) -> bool:
    try:
        importlib.import_module(REGISTRY[name].split(":")[0])
    except ImportError:
        return False
    return True


# Sentiment's parity (a MiniLM fine-tuning twice over) is the slow one: in `make test-all`.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "sentiment" else n for n in sorted(REGISTRY)])
def test_accelerate_and_plain_pytorch_losses_agree_in_fp32(name: str, data_dir) -> None:
    if not _importable(name):
        pytest.skip(f"workload {name} does not import yet")
    from bench.harness.parity import losses_side_by_side

    accelerate_losses, plain_losses = losses_side_by_side(name, STEPS)
    # One loss per optimizer step, plus one for the FLOP count where the workload's FLOPs are
    # countable (not for RNNs: FlopCounterMode has no formula for them).
    assert len(accelerate_losses) == len(plain_losses) in (STEPS, STEPS + 1)
    assert np.isfinite(accelerate_losses).all()
    np.testing.assert_allclose(accelerate_losses, plain_losses, rtol=0, atol=1e-6)
    # The losses move: the optimizer really stepped in both loops (equal but frozen would pass above).
    assert len(set(np.round(accelerate_losses[1:], 6))) > 1


def test_a_different_seed_breaks_parity(data_dir) -> None:
    """The comparison can fail: the plain loop with another seed gives other losses."""
    from bench.harness.parity import accelerate_train, loaded, plain_train, recording_losses

    workload, splits = loaded("maintenance")
    with recording_losses(workload) as accelerate_losses:
        accelerate_train(workload, splits, 3, seed=0)
    with recording_losses(workload) as plain_losses:
        plain_train(workload, splits, 3, seed=1)
    assert not np.allclose(accelerate_losses, plain_losses, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_prepared_steps_train_and_agree(precision: str, data_dir) -> None:
    """The micro-benchmarks' step functions (tests/benchmarks) work in both loops: repeated steps on
    one batch lower its loss, and in fp32 both loops give the same losses."""
    from bench.harness.parity import loaded, prepared_step

    workload, splits = loaded("maintenance")
    accelerate_step = prepared_step(workload, splits, precision, use_accelerate=True)
    plain_step = prepared_step(workload, splits, precision, use_accelerate=False)
    accelerate_losses = [accelerate_step() for _ in range(5)]
    plain_losses = [plain_step() for _ in range(5)]
    assert accelerate_losses[-1] < accelerate_losses[0]
    assert plain_losses[-1] < plain_losses[0]
    if precision == "fp32":
        np.testing.assert_allclose(accelerate_losses, plain_losses, rtol=0, atol=1e-6)


def test_the_accelerate_side_times_the_loops_own_step(monkeypatch, data_dir) -> None:
    """prepared_step (what parity and the micro-benchmarks time) runs bench.harness.train.train_step,
    the step every cell runs, not a copy of it."""
    from bench.harness import parity

    calls = []
    original = parity.train_step

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(parity, "train_step", counted)
    workload, splits = parity.loaded("maintenance")
    step = parity.prepared_step(workload, splits, "fp32", use_accelerate=True)
    step()
    step()
    assert len(calls) == 2


def test_cost_interval_brackets_a_known_shift() -> None:
    """The bootstrap interval of median(A) - median(P): zero for identical samples, around a known
    shift (and excluding 0) when A is P plus 1 ms, paired or not; unequal paired lists are refused."""
    from bench.harness.parity import cost_interval

    rng = np.random.default_rng(1)
    plain = list(0.010 + rng.exponential(0.001, 400))
    assert cost_interval(plain, plain, paired=True) == (0.0, 0.0)
    shifted = [t + 0.001 for t in plain]
    for paired in (True, False):
        low, high = cost_interval(shifted, plain, paired=paired)
        assert low <= 0.001 <= high
        assert paired or low > 0
    with pytest.raises(ValueError):
        cost_interval(shifted[:10], plain, paired=True)

