"""The honest-cell check: what a cell asked for must be what runs.

The tests that start processes are in tests/e2e/test_verify.py."""

from __future__ import annotations

import pytest
from accelerate import Accelerator

from bench.harness.verify import Expected, autocast_dtype, verify
from tests.conftest import cpu_runs_a_bf16_lstm


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

    from bench.harness.verify import model_compute_dtypes, verify_model_precision
    from workloads.maintenance import RecurrentClassifier

    x = torch.randn(2, 5, 10)
    verdicts = {}
    for cell in ("gru", "lstm"):
        model = RecurrentClassifier(cell, 10, 16, 1, 0.0)

        def forward(model=model):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(x)

        if cell == "lstm" and not cpu_runs_a_bf16_lstm():
            continue  # an AVX2-only CPU has no bf16 LSTM at all: the next test covers that host
        verdicts[cell] = verify_model_precision(model_compute_dtypes(model, forward), "bf16", "cpu")
    assert verdicts["gru"].status == "unsupported"
    assert "GRU (fp32)" in verdicts["gru"].reason
    assert verdicts["gru"].observed["module_dtypes"]["head"]["dtype"] == "bf16"
    if "lstm" in verdicts:
        assert verdicts["lstm"].status is None
        assert verdicts["lstm"].observed["compute_params_in_requested_dtype"] == 1.0


def test_a_precision_this_cpu_has_no_kernel_for_is_unsupported_not_a_crash():
    """The worker's kernel probe: a model whose bf16 step raises (as a bf16 LSTM does on an
    AVX2-only CPU) makes the cell `unsupported` with the library's words; in fp32 it raises."""
    import torch

    from bench.harness.verify import probe_kernels

    class NoBf16Kernel(torch.nn.Module):
        def forward(self, x):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive.")
            return x * 2

    def step(precision):
        def forward_backward():
            x = torch.ones(2, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                NoBf16Kernel()(x).sum().backward()
        return forward_backward

    verdict = probe_kernels(step("bf16"), "bf16", "cpu")
    assert verdict.status == "unsupported"
    assert "could not create a primitive descriptor" in verdict.reason
    assert probe_kernels(step("fp32"), "fp32", "cpu").status is None
    with pytest.raises(RuntimeError):
        probe_kernels(lambda: (_ for _ in ()).throw(RuntimeError("a real bug")), "fp32", "cpu")
    # Any other error in bf16 is a bug too, not a missing kernel: the cell must fail, not hide.
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        probe_kernels(lambda: (_ for _ in ()).throw(RuntimeError("mat1 and mat2 shapes cannot be multiplied")), "bf16", "cpu")


def test_the_kernel_probe_agrees_with_a_real_bf16_lstm_step_on_this_cpu():
    """On any CPU: the probe calls the maintenance LSTM unsupported in bf16 exactly when a bf16
    training step of it fails here (AVX2-only CPUs), and lets it run where it runs."""
    import torch

    from bench.harness.verify import probe_kernels
    from workloads.maintenance import RecurrentClassifier

    model = RecurrentClassifier("lstm", 10, 16, 1, 0.0)

    def forward_backward():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.randn(2, 5, 10)).float().sum().backward()

    verdict = probe_kernels(forward_backward, "bf16", "cpu")
    assert (verdict.status is None) == cpu_runs_a_bf16_lstm()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_model_probe_sees_the_real_workload_model(precision, fresh_state, data_dir):
    """probe_model_precision on the maintenance GRU, as the worker calls it before training: it
    runs in fp32; in bf16 the kernel probe passes but the GRU stays fp32, so the cell is unsupported."""
    from bench.harness.verify import probe_model_precision
    from workloads import make_workload

    workload = make_workload("maintenance", "gru")
    accelerator = Accelerator(cpu=True, mixed_precision="no" if precision == "fp32" else precision)
    verdict = probe_model_precision(accelerator, workload, workload.load(0), precision)
    assert verdict.observed["kernel_probe"] == "ok"
    assert verdict.observed["module_dtypes"]["rnn"]["dtype"] == "fp32"
    if precision == "fp32":
        assert verdict.status is None
    else:
        assert verdict.status == "unsupported"
        assert "GRU (fp32)" in verdict.reason


def test_tf32_as_torch_is_set_is_recorded():
    """What fp32 means on a GPU depends on torch's TF32 switches; the record follows them."""
    import torch

    from bench.harness.verify import tf32_in_effect

    before = torch.backends.cuda.matmul.allow_tf32  # a property of torch's, not an attribute to patch
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        assert tf32_in_effect()["matmul"] is False
        torch.backends.cuda.matmul.allow_tf32 = True
        recorded = tf32_in_effect()
        assert recorded["matmul"] is True
        assert recorded["cudnn"] == torch.backends.cudnn.allow_tf32
        assert recorded["float32_matmul_precision"] == torch.get_float32_matmul_precision() == "high"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize(("precision", "reduce"), [("bf16", "bf16"), ("fp16", "fp16"), ("fp8", "bf16")])
@pytest.mark.parametrize("version", [1, 2])
def test_accelerates_fsdp_policy_reduces_in_the_low_precision(precision, reduce, version):
    """The policy accelerate's FSDP plugin builds for a mixed precision (what `verify` reads under FSDP
    on a GPU): gradients are reduced in the low precision, bf16 for fp8."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    from bench.harness.verify import _policy_dtypes

    plugin = FullyShardedDataParallelPlugin(fsdp_version=version)
    assert _policy_dtypes(plugin.mixed_precision_policy)["dtype"] == "fp32"  # fp32 cells: no policy
    plugin.set_mixed_precision(precision)
    assert _policy_dtypes(plugin.mixed_precision_policy) == {"dtype": reduce, "param_dtype": reduce, "reduce_dtype": reduce}


def test_one_process_reduces_nothing_and_records_it(fresh_state):
    observed = verify(Accelerator(cpu=True), single_cpu("fp32")).observed
    assert observed["grad_reduce_dtype"] is None
    assert observed["grad_reduce"]["by"] is None


def test_the_sharding_check_never_passes_on_an_empty_optimizer_state():
    """ZeRO-1 shards the optimizer state; after a probe step skipped for fp16 overflow no rank holds
    any, which once read as "each rank holds at most 3/4 of it": sharded."""
    from bench.harness.verify import verify_sharding

    zero1 = {"family": "deepspeed", "stage": 1, "shards": "optimizer"}
    empty = [{"param_elements": 100, "optimizer_state_elements": 0}] * 2
    verdict = verify_sharding(empty, 100, 200, zero1, "DEEPSPEED")
    assert verdict.status == "invalid" and "hold 0 of the model's 200 optimizer state elements" in verdict.reason
    halves = [{"param_elements": 100, "optimizer_state_elements": 100}] * 2
    assert verify_sharding(halves, 100, 200, zero1, "DEEPSPEED").status is None
    whole = [{"param_elements": 100, "optimizer_state_elements": 200}] * 2
    assert verify_sharding(whole, 100, 200, zero1, "MULTI_CPU").status == "unsupported"


def test_fsdp2_reshard_choice_on_a_root_only_wrap_is_refused_as_the_same_run_under_two_names():
    from bench.harness.verify import Verdict, verify_reshard_choice

    reshard = {"family": "fsdp", "version": 2, "reshard_after_forward": True, "shards": "params"}
    passed = Verdict(None, "", {"sharding": {"sharded": True}})
    root_only = verify_reshard_choice(reshard, 1, 32_192, passed)
    assert root_only.status == "unsupported" and "wrapped only the root" in root_only.reason
    assert root_only.observed["sharding"]["fsdp2_units"] == 1
    no_reshard = {**reshard, "reshard_after_forward": False}  # what a root-only wrap runs anyway: it stands
    assert verify_reshard_choice(no_reshard, 1, 32_192, Verdict(None, "", {"sharding": {}})).status is None
    by_block = verify_reshard_choice(reshard, 7, 22_713_216, Verdict(None, "", {"sharding": {"sharded": True}}))
    assert by_block.status is None and by_block.observed["sharding"]["fsdp2_units"] == 7
    zero3 = {"family": "deepspeed", "stage": 3, "shards": "params"}
    assert verify_reshard_choice(zero3, 0, 100, Verdict(None, "", {"sharding": {}})).status is None


def test_fp32_arithmetic_is_checked_after_training_from_the_switches_and_a_matmul():
    import torch

    from bench.harness.verify import tf32_effect, verify_fp32_arithmetic_held

    off = {"matmul": False, "cudnn": False}
    on = {"matmul": True, "cudnn": False}
    cpu = tf32_effect(torch.device("cpu"))
    assert cpu == {"measured": False, "why": "no TF32 on a CPU: fp32 matmuls are IEEE fp32 whatever the switches say"}
    assert verify_fp32_arithmetic_held("fp32", off, off, cpu).status is None
    switched = verify_fp32_arithmetic_held("fp32", off, on, cpu)  # a library turned TF32 on mid-run
    assert switched.status == "unsupported" and "TF32 for matmul changed during the run" in switched.reason
    ran_tf32 = {"measured": True, "relative_error": 2e-3, "computed": "tf32"}
    assert "computed tf32" in verify_fp32_arithmetic_held("fp32", off, off, ran_tf32).reason
    assert verify_fp32_arithmetic_held("tf32", {"matmul": True, "cudnn": True}, {"matmul": True, "cudnn": True},
                                       ran_tf32).status is None
    assert verify_fp32_arithmetic_held("bf16", off, on, cpu).status is None  # autocast cells: not this check


def test_the_ranks_must_be_spread_over_the_nodes_asked_for():
    from bench.harness.verify import verify_nodes

    def layout(*nodes_and_locals, local_world=1):
        return [{"node": n, "local_rank": r, "local_world_size": local_world} for n, r in nodes_and_locals]

    assert verify_nodes(layout((0, 0), (1, 0)), 2, 2) is None  # cpu-2node: one rank on each of 2 nodes
    assert "the ranks report 1 ([0])" in verify_nodes(layout((0, 0), (0, 1), local_world=2), 2, 2)
    assert verify_nodes(layout((0, 0), (0, 1), local_world=2), 1, 2) is None  # cpu-ddp2
    assert "node 1 runs local ranks [0, 0]" in verify_nodes(layout((0, 0), (0, 1), (1, 0), (1, 0), local_world=2), 2, 4)
    assert "local world size 4" in verify_nodes(layout((0, 0), (0, 1), (1, 0), (1, 1), local_world=4), 2, 4)

