"""TF32: fp32 means strict fp32 (TF32 off), tf32 is its own precision (TF32 on, Ampere or newer),
skipped where it cannot run, verified from torch's own switches, and measured as its own peak.

The tests that start processes are in tests/e2e/test_tf32.py."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from bench.harness.host import Host
from bench.harness.matrix import Cell, load_matrix, skip_reason
from bench.harness.peak import cuda_dtypes, datasheet_peak
from bench.harness.topology import ACCELERATE_PRECISION, PRECISIONS, Expected, load_topology
from bench.harness.verify import verify

TF32_REASON = "tf32 needs an NVIDIA GPU of compute capability 8.0 or newer (Ampere)"


@pytest.fixture
def tf32_switches():
    """torch's two TF32 switches put back as they were after the test (they are process-wide)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def single_cpu(precision: str) -> Expected:
    return Expected(num_processes=1, distributed_types=("NO",), device="cpu", precision=precision)


def tf32_cell(topology: str) -> Cell:
    return Cell("traffic", "ae", topology, "tf32", 0)


def test_tf32_is_a_precision_that_accelerate_runs_as_no_mixed_precision():
    assert "tf32" in PRECISIONS
    assert ACCELERATE_PRECISION["tf32"] == "no"


def test_tf32_cells_are_skipped_on_a_cpu_host_with_the_reason():
    no_gpu = Host(gpus=0, bf16_gpu=False, fp8_backend=None)
    for topology in ("cpu-1proc", "cpu-ddp2", "cpu-2node"):
        reason = skip_reason(tf32_cell(topology), load_topology(topology), no_gpu)
        assert reason is not None and reason.startswith(TF32_REASON), reason
    assert skip_reason(tf32_cell("gpu-1"), load_topology("gpu-1"), no_gpu) == "needs 1 GPU(s), found 0"


@pytest.mark.parametrize(("capability", "skipped"), [
    (None, True),  # no NVIDIA numbering (a ROCm GPU), or unreadable: TF32 cannot be promised
    ((7, 0), True),  # V100
    ((7, 5), True),  # T4
    ((8, 0), False),  # A100
    ((8, 6), False),
    ((9, 0), False),  # H100 / H200
])
def test_tf32_needs_compute_capability_8_0(capability, skipped):
    host = Host(gpus=8, bf16_gpu=True, fp8_backend=None, gpu_capability=capability)
    reason = skip_reason(tf32_cell("gpu-ddp2"), load_topology("gpu-ddp2"), host)
    if skipped:
        assert reason is not None and reason.startswith(TF32_REASON)
        assert ("unknown" if capability is None else f"{capability[0]}.{capability[1]}") in reason
    else:
        assert reason is None
    # a CPU topology on that GPU host computes no TF32 either
    assert skip_reason(tf32_cell("cpu-1proc"), load_topology("cpu-1proc"), host).startswith(TF32_REASON)


def test_an_fp32_cell_runs_strict_fp32_whatever_torch_had_on(fresh_state, tf32_switches):
    torch.backends.cuda.matmul.allow_tf32 = True  # as accelerate leaves it with dynamo on a GPU
    torch.backends.cudnn.allow_tf32 = True  # torch's own default
    verdict = verify(Accelerator(cpu=True), single_cpu("fp32"))
    assert verdict.status is None, verdict.reason
    tf32 = verdict.observed["tf32"]
    assert (tf32["matmul"], tf32["cudnn"], tf32["set_by_bench"]) == (False, False, True)
    assert tf32["float32_matmul_precision"] == "highest"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)


def test_the_tf32_expectation_verifies_from_the_switches(fresh_state, tf32_switches):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    verdict = verify(Accelerator(cpu=True), single_cpu("tf32"))
    assert verdict.status is None, verdict.reason
    assert verdict.observed["compute_dtype"] == "fp32"
    assert verdict.observed["mixed_precision_setting"] == "no"
    assert (verdict.observed["tf32"]["matmul"], verdict.observed["tf32"]["cudnn"]) == (True, True)


def test_tf32_under_an_autocast_is_not_tf32(fresh_state, tf32_switches):
    """A tf32 cell launched with a mixed precision (a user's config that sets one) computes bf16."""
    verdict = verify(Accelerator(cpu=True, mixed_precision="bf16"), single_cpu("tf32"))
    assert verdict.status == "unsupported"
    assert "tf32 requested but bf16 autocast" in verdict.reason


def test_the_mixed_precisions_leave_the_switches_alone(fresh_state, tf32_switches):
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    verdict = verify(Accelerator(cpu=True, mixed_precision="bf16"), single_cpu("bf16"))
    assert verdict.observed["tf32"]["set_by_bench"] is False
    assert (verdict.observed["tf32"]["matmul"], verdict.observed["tf32"]["cudnn"]) == (False, True)


def test_the_gpu_matrices_list_tf32_without_the_knob_axes():
    for name in ("gpu", "full"):
        cells = [c for c in load_matrix(name) if c.kind == "train" and c.precision == "tf32"]
        assert cells, name
        assert {c.compile for c in cells} == {"none"} and {c.grad_accum for c in cells} == {1}


def test_tf32_peaks_only_where_tf32_exists():
    assert "tf32" not in cuda_dtypes(None)
    assert "tf32" not in cuda_dtypes((7, 0))
    assert "tf32" in cuda_dtypes((8, 0)) and "tf32" in cuda_dtypes((9, 0))
    assert datasheet_peak("NVIDIA H100 80GB HBM3")[1]["tf32"] == 494.7e12
    assert datasheet_peak("NVIDIA H200")[1]["tf32"] == 494.7e12
    assert datasheet_peak("NVIDIA A100-SXM4-80GB")[1]["tf32"] == 156e12
    assert "tf32" not in datasheet_peak("Tesla V100-SXM2-16GB")[1]

