"""fp8: the compute parameters that really sit in fp8 layers after accelerate's conversion, the
under-half verdict, and the skip rules (compute capability 8.9, MS-AMP with FSDP).

torchao is not a dependency of the project: the counting is tested on the real workload models
converted with accelerate's own torchao filter (accelerate.utils.ao, which needs no torchao) into a
stand-in class named and placed like torchao's Float8Linear; where torchao is installed, the last
tests convert through accelerate's own `prepare` for real (conversion runs on a CPU; fp8 matmuls
would not)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils.ao import filter_linear_layers, find_first_last_linear_layers

from bench.harness.host import Host
from bench.harness.matrix import Cell, skip_reason
from bench.harness.topology import Expected, load_topology
from bench.harness.verify import (
    FP8_MIN_FRACTION,
    compute_param_sizes,
    fp8_layer_kind,
    fp8_layer_share,
    verify,
    verify_fp8,
)


class Float8Linear(torch.nn.Linear):
    """Named and placed like torchao.float8.float8_linear.Float8Linear (a subclass of nn.Linear)."""

    __module__ = "torchao.float8.float8_linear"


def convert_like_accelerate_torchao(model: torch.nn.Module) -> torch.nn.Module:
    """What accelerate's convert_model_to_fp8_ao does, with its own default filter: every nn.Linear
    but the first and the last, and only those whose in and out features are multiples of 16."""
    first, last = find_first_last_linear_layers(model)
    chosen = [(name, module) for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and filter_linear_layers(module, name, [first, last])]
    for name, module in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        swapped = Float8Linear(module.in_features, module.out_features, bias=module.bias is not None)
        swapped.load_state_dict(module.state_dict())
        setattr(parent, child, swapped)
    return model


def workload_model(name: str, variant: str | None) -> torch.nn.Module:
    from workloads import make_workload

    workload = make_workload(name, variant)
    workload.load(0)  # the model's input width comes from the data
    return workload.build_model()


def mlp(*widths: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def test_the_layer_classes_are_told_apart_by_name_and_package():
    assert fp8_layer_kind(Float8Linear(16, 16)) == "torchao"
    assert fp8_layer_kind(torch.nn.Linear(16, 16)) is None

    class Linear(torch.nn.Module):  # Transformer Engine's te.Linear is not an nn.Linear
        __module__ = "transformer_engine.pytorch.module.linear"

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(32, 16))

    class ScalingParameter(torch.nn.Parameter):  # MS-AMP keeps an fp8 weight in one of these
        __module__ = "msamp.nn.parameter"

    class LayerNormLinear(torch.nn.Module):
        __module__ = "my_project.layers"  # the right name in the wrong package is not an fp8 layer

    plain = torch.nn.Linear(16, 16)
    plain.weight = ScalingParameter(torch.zeros(16, 16))
    assert fp8_layer_kind(Linear()) == "transformer_engine"
    assert fp8_layer_kind(plain) == "msamp"
    assert fp8_layer_kind(LayerNormLinear()) is None


def test_an_mlp_counts_only_the_converted_middle_layers():
    """64 -> 128 -> 128 -> 48 -> 10: the first and last Linear stay out; 128x128 and 128x48 go in."""
    model = mlp(64, 128, 128, 48, 10)
    sizes = compute_param_sizes(model)
    record = fp8_layer_share(convert_like_accelerate_torchao(model), "torchao", sizes)
    assert record["layers"] == ["2", "4"]
    middle = 128 * 128 + 128 + 128 * 48 + 48
    assert record["fp8_params"] == middle
    assert record["compute_params"] == sum(p.numel() for p in model.parameters())
    assert record["fraction"] == round(middle / record["compute_params"], 4)
    assert record["not_fp8"] == {"Linear": 64 * 128 + 128 + 48 * 10 + 10}
    assert verify_fp8(record, "cuda").status is None


def test_sizes_not_multiples_of_16_stay_out_of_fp8_and_make_the_cell_unsupported():
    """The same depth with widths of 100 and 50: nothing converts, 0% fp8, unsupported."""
    model = convert_like_accelerate_torchao(mlp(64, 100, 100, 50, 10))
    record = fp8_layer_share(model, "torchao")
    assert record["fp8_params"] == 0 and record["layers"] == []
    verdict = verify_fp8(record, "cuda")
    assert verdict.status == "unsupported"
    assert "only 0% of the model's compute parameters" in verdict.reason
    assert "multiples of 16" in verdict.reason
    assert verdict.observed["fp8"] is record


def test_the_threshold_is_half():
    def record(fp8, compute):
        return {"backend": "torchao", "fp8_params": fp8, "compute_params": compute,
                "fraction": fp8 / compute, "layers": [], "not_fp8": {"Linear": compute - fp8}}

    assert FP8_MIN_FRACTION == 0.5
    assert verify_fp8(record(50, 100), "cuda").status is None
    assert verify_fp8(record(49, 100), "cuda").status == "unsupported"


def test_wrapper_names_do_not_break_the_count():
    """Counted through a DDP-like `module.` prefix with the sizes taken before wrapping."""
    inner = mlp(64, 128, 128, 48, 10)
    sizes = compute_param_sizes(inner)

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    record = fp8_layer_share(Wrapper(convert_like_accelerate_torchao(inner)), "torchao", sizes)
    assert record["layers"] == ["2", "4"]
    assert record["compute_params"] == sum(sizes.values())


@pytest.mark.parametrize(("workload", "variant", "verdict"), [
    ("maintenance", "gru", "unsupported"),  # a GRU and a 64 -> 1 head that is first and last Linear
    ("maintenance", "lstm", "unsupported"),
    ("traffic", "lstm_ae", "unsupported"),  # LSTMs, and two Linear layers: the first and the last
    ("traffic", "ae", None),  # the 128 -> 64 and 64 -> 128 middle layers: just over half
])
def test_the_workload_models_under_accelerates_torchao_rule(workload, variant, verdict, data_dir):
    model = workload_model(workload, variant)
    sizes = compute_param_sizes(model)
    record = fp8_layer_share(convert_like_accelerate_torchao(model), "torchao", sizes)
    result = verify_fp8(record, "cuda")
    assert result.status == verdict, result.reason
    if workload == "maintenance" or variant == "lstm_ae":
        assert record["fp8_params"] == 0
        rnn = "GRU" if variant == "gru" else "LSTM"
        assert rnn in result.reason and "0%" in result.reason
    else:
        assert record["layers"] == ["encoder.2", "decoder.2"]
        assert 0.5 <= record["fraction"] < 0.6


def test_an_fp8_cell_that_accelerate_ran_in_fp16_is_unsupported(fresh_state):
    """Below compute capability 8.9 accelerate switches fp8 to fp16 with a log line only; what runs
    is then an fp16 accelerator, which is what the worker sees."""
    verdict = verify(Accelerator(cpu=True, mixed_precision="fp16"), Expected(1, ("NO",), "cpu", "fp8"))
    assert verdict.status == "unsupported"
    assert "accelerate runs mixed_precision='fp16'" in verdict.reason


def fp8_cell(topology: str) -> Cell:
    return Cell("traffic", "ae", topology, "fp8", 0)


def test_fp8_is_skipped_below_compute_capability_8_9():
    a100 = Host(gpus=8, bf16_gpu=True, fp8_backend="torchao", gpu_capability=(8, 0))
    reason = skip_reason(fp8_cell("gpu-1"), load_topology("gpu-1"), a100)
    assert reason == ("fp8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); this one has 8.0 "
                      "(accelerate would run fp16 instead)")
    for capability in ((8, 9), (9, 0), (10, 0)):
        host = Host(gpus=8, bf16_gpu=True, fp8_backend="torchao", gpu_capability=capability)
        assert skip_reason(fp8_cell("gpu-1"), load_topology("gpu-1"), host) is None


def test_ms_amp_with_fsdp_is_skipped_and_with_ddp_runs():
    h100_msamp = Host(gpus=8, bf16_gpu=True, fp8_backend="msamp", gpu_capability=(9, 0))
    for fsdp in ("gpu-fsdp2", "gpu-fsdp2-reshard-x2"):
        reason = skip_reason(fp8_cell(fsdp), load_topology(fsdp), h100_msamp)
        assert reason is not None and "MS-AMP under FSDP" in reason and "accelerate refuses it" in reason
    assert skip_reason(fp8_cell("gpu-ddp2"), load_topology("gpu-ddp2"), h100_msamp) is None
    h100_torchao = Host(gpus=8, bf16_gpu=True, fp8_backend="torchao", gpu_capability=(9, 0))
    assert skip_reason(fp8_cell("gpu-fsdp2"), load_topology("gpu-fsdp2"), h100_torchao) is None


needs_torchao = pytest.mark.skipif(importlib.util.find_spec("torchao") is None,
                                   reason="torchao not installed (pip install torchao): the stand-in tests above cover the count")


@needs_torchao
@pytest.mark.parametrize(("workload", "variant", "verdict"), [("maintenance", "gru", "unsupported"), ("traffic", "ae", None)])
def test_accelerate_prepare_with_real_torchao_converts_what_the_rule_says(workload, variant, verdict, fresh_state, data_dir):
    """Accelerator(mixed_precision="fp8") with torchao installed, on the CPU: prepare converts the
    model (no fp8 matmul runs), and the count on the prepared copy agrees with the stand-in's."""
    from bench.harness.verify import probe_fp8_layers
    from workloads import make_workload

    accelerator = Accelerator(cpu=True, mixed_precision="fp8")
    assert getattr(accelerator.fp8_backend, "value", None) == "AO"
    work = make_workload(workload, variant)
    work.load(0)
    result = probe_fp8_layers(accelerator, work)
    stand_in = fp8_layer_share(convert_like_accelerate_torchao(work.build_model()), "torchao")
    assert result.status == verdict, result.reason
    record = result.observed["fp8"]
    assert record["backend"] == "torchao"
    assert (record["fp8_params"], record["compute_params"], record["layers"]) == \
        (stand_in["fp8_params"], stand_in["compute_params"], stand_in["layers"])

