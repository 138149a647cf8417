"""The honest-cell check: what a cell asked for must be what runs."""

from __future__ import annotations

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from bench.verify import Expected, autocast_dtype, verify


@pytest.fixture
def fresh_state(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def single_cpu(precision: str) -> Expected:
    return Expected(num_processes=1, distributed_types=("NO",), device="cpu", precision=precision)


def test_fp16_on_cpu_is_unsupported(fresh_state):
    accelerator = Accelerator(cpu=True, mixed_precision="fp16")
    verdict = verify(accelerator, single_cpu("fp16"))
    assert verdict.status == "unsupported"
    assert "fp16 requested but fp32 computed on cpu" in verdict.reason
    assert verdict.observed["compute_dtype"] == "fp32"


def test_bf16_on_cpu_really_computes_in_bf16(fresh_state):
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    assert autocast_dtype(accelerator) == "bf16"
    verdict = verify(accelerator, single_cpu("bf16"))
    assert verdict.status is None, verdict.reason


def test_fp32_passes(fresh_state):
    verdict = verify(Accelerator(cpu=True), single_cpu("fp32"))
    assert verdict.status is None
    assert verdict.observed["distributed_type"] == "NO"


def test_independent_processes_are_invalid(fresh_state, monkeypatch):
    # What a CPU multi-process launch without the CPU switch looks like from inside one rank:
    # the launcher started 2 processes, but accelerate sees world size 1.
    accelerator = Accelerator(cpu=True)
    monkeypatch.setenv("WORLD_SIZE", "2")  # set after init: accelerate would try to rendezvous
    expected = Expected(num_processes=2, distributed_types=("MULTI_CPU",), device="cpu", precision="fp32")
    verdict = verify(accelerator, expected)
    assert verdict.status == "invalid"
    assert "2 started and each sees world size 1" in verdict.reason
    assert "ACCELERATE_USE_CPU=1" in verdict.reason


def test_wrong_distributed_type_is_invalid(fresh_state):
    expected = Expected(num_processes=1, distributed_types=("FSDP",), device="cpu", precision="fp32")
    verdict = verify(Accelerator(cpu=True), expected)
    assert verdict.status == "invalid"
    assert "accelerate runs NO" in verdict.reason


def test_a_gru_under_cpu_bf16_autocast_is_caught_as_unsupported():
    """CPU autocast runs Linear in bf16 but has no bf16 GRU kernel: the GRU stays fp32."""
    import torch

    from bench.verify import model_compute_dtypes, verify_model_precision
    from workloads.maintenance import RecurrentClassifier

    x = torch.randn(2, 5, 10)
    verdicts = {}
    for cell in ("gru", "lstm"):
        model = RecurrentClassifier(cell, 10, 16, 1, 0.0)

        def forward(model=model):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(x)

        verdicts[cell] = verify_model_precision(model_compute_dtypes(model, forward), "bf16", "cpu")
    assert verdicts["gru"].status == "unsupported"
    assert "GRU (fp32)" in verdicts["gru"].reason
    assert verdicts["gru"].observed["module_dtypes"]["head"]["dtype"] == "bf16"
    assert verdicts["lstm"].status is None
    assert verdicts["lstm"].observed["compute_params_in_requested_dtype"] == 1.0
