"""Check that what a cell asked for is what actually runs.

Accelerate falls back without a word in several cases (../shared/docs/accelerate-on-cpu.md):
- `mixed_precision="fp16"` on a CPU computes in fp32: no autocast to fp16, no scaler, no warning;
- a multi-process CPU launch without the CPU switch starts N processes that each believe they
  are alone (DistributedType.NO, world size 1) and train independently.
So the worker asks the running Accelerator, not the config, and refuses to report numbers for
a cell that is not what it claims to be.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator

from bench.harness.topology import Expected
from bench.harness.train import to_device
from workloads.base import Splits, Workload

DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Verdict:
    status: str | None  # None when the cell is what it claims; else "invalid" or "unsupported"
    reason: str
    observed: dict


def autocast_dtype(accelerator: Accelerator) -> str:
    """The dtype a Linear layer really produces under the accelerator's autocast."""
    layer = torch.nn.Linear(8, 8).to(accelerator.device)
    with torch.no_grad(), accelerator.autocast():
        out = layer(torch.ones(2, 8, device=accelerator.device))
    return DTYPE_NAMES.get(out.dtype, str(out.dtype))


def verify(accelerator: Accelerator, expected: Expected) -> Verdict:
    started = int(os.environ.get("WORLD_SIZE", "1"))  # processes the launcher actually started
    observed = {
        "distributed_type": accelerator.distributed_type.name,
        "num_processes": accelerator.num_processes,
        "processes_started": started,
        "device": accelerator.device.type,
        "mixed_precision_setting": accelerator.mixed_precision,
        "compute_dtype": autocast_dtype(accelerator),
        "backend": getattr(accelerator.state, "backend", None),
        "torch_threads": torch.get_num_threads(),
    }
    if accelerator.mixed_precision == "fp8":
        # Which library computes the fp8 matmuls (accelerate picks torchao, then TE, then MS-AMP).
        backend = getattr(accelerator, "fp8_backend", None)
        observed["fp8_backend"] = getattr(backend, "value", backend)
    # Topology first: numbers from a broken launch mean nothing whatever the precision.
    if accelerator.num_processes != expected.num_processes or started != expected.num_processes:
        return Verdict(
            "invalid",
            f"asked for {expected.num_processes} synchronised process(es); {started} started and each sees "
            f"world size {accelerator.num_processes} ({observed['distributed_type']})"
            + (" - on CPU, multi-process needs ACCELERATE_USE_CPU=1" if expected.device == "cpu" else ""),
            observed,
        )
    if observed["distributed_type"] not in expected.distributed_types:
        return Verdict(
            "invalid",
            f"asked for {'/'.join(expected.distributed_types)}, accelerate runs {observed['distributed_type']}",
            observed,
        )
    if observed["device"] != expected.device:
        return Verdict("invalid", f"asked for device {expected.device}, running on {observed['device']}", observed)
    # fp8 computes its matmuls in fp8 inside torchao / Transformer Engine / MS-AMP layers; the plain-Linear
    # probe cannot see that, so only the setting is checked for it.
    if expected.precision != "fp8" and observed["compute_dtype"] != expected.precision:
        return Verdict(
            "unsupported",
            f"{expected.precision} requested but {observed['compute_dtype']} computed on {observed['device']} "
            f"(accelerate accepted mixed_precision={observed['mixed_precision_setting']!r} and fell back silently)",
            observed,
        )
    return Verdict(None, "", observed)


# Modules whose work is matrix products, which autocast is meant to run in lower precision.
# Embeddings (lookups) and norms (kept in fp32 by autocast on purpose) are not counted.
_COMPUTE_MODULES = (torch.nn.Linear, torch.nn.RNNBase, torch.nn.modules.conv._ConvNd, torch.nn.MultiheadAttention)


def model_compute_dtypes(model: torch.nn.Module, forward: Callable[[], object]) -> dict[str, dict]:
    """Run `forward` once with hooks and record the output dtype of every compute module.

    Returns {module name: {"type", "params", "dtype"}}. The first-layer probe in `verify` sees
    only a Linear; this sees the real model, e.g. that CPU autocast has no bf16 GRU kernel and
    leaves a GRU in fp32 while its Linear head runs in bf16.
    """
    seen: dict[str, dict] = {}
    hooks = []
    for name, module in model.named_modules():
        if not isinstance(module, _COMPUTE_MODULES):
            continue

        def record(mod, _inputs, output, name=name):
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                params = sum(p.numel() for p in mod.parameters())
                seen[name] = {"type": type(mod).__name__, "params": params, "dtype": DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype))}

        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def verify_model_precision(modules: dict[str, dict], precision: str, device: str) -> Verdict:
    """`unsupported` when most of the model's compute parameters do not run in the asked dtype."""
    observed = {"module_dtypes": modules}
    if precision in ("fp32", "fp8") or not modules:
        return Verdict(None, "", observed)
    total = sum(m["params"] for m in modules.values())
    in_precision = sum(m["params"] for m in modules.values() if m["dtype"] == precision)
    share = in_precision / total if total else 0.0
    observed["compute_params_in_requested_dtype"] = share
    if share < 0.5:
        others = sorted({f"{m['type']} ({m['dtype']})" for m in modules.values() if m["dtype"] != precision})
        return Verdict(
            "unsupported",
            f"{precision} requested but only {share:.0%} of the model's compute parameters run in {precision} on {device}: "
            f"{', '.join(others)} (autocast has no {precision} kernel for it there)",
            observed,
        )
    return Verdict(None, "", observed)


MISSING_KERNEL = (
    "could not create a primitive",  # oneDNN: no implementation of this op for this dtype on this CPU
    "not implemented for 'BFloat16'",  # ATen: no kernel for the dtype
    "not implemented for 'Half'",
)
"""The words of the errors that mean "no kernel for this precision here", as opposed to a bug."""


def probe_kernels(forward_backward: Callable[[], object], precision: str, device: str) -> Verdict:
    """Run one forward and backward of a throwaway copy of the model in the cell's precision.

    Some CPUs have no kernel at all for a precision: on an AVX2-only CPU (no AVX-512) oneDNN
    cannot build a bf16 LSTM and raises "could not create a primitive descriptor for the LSTM
    forward propagation primitive", where an AVX-512 CPU without bf16 instructions emulates it.
    Such a cell is `unsupported` on this host, with the library's own words as the reason, not a
    crashed cell. Only the errors a library gives for a kernel it lacks count (MISSING_KERNEL);
    any other error, and any error in fp32, is a bug and is raised: the cell fails."""
    try:
        forward_backward()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if precision == "fp32" or not any(words in first for words in MISSING_KERNEL):
            raise
        return Verdict(
            "unsupported",
            f"{precision} does not run on this {device}: one forward and backward of the model failed with "
            f"{first!r} (no {precision} kernel for a layer of this model here)",
            {"kernel_probe": "failed"},
        )
    return Verdict(None, "", {"kernel_probe": "ok"})


def probe_model_precision(accelerator: Accelerator, workload: Workload, splits: Splits, precision: str) -> Verdict:
    """What the cell's precision does to this model on this device, on a throwaway copy of it.

    `verify`'s Linear probe says what autocast does to a Linear; the model may hold layers that
    autocast leaves alone on this device. First one forward and backward (`probe_kernels`: does
    the model run in this precision here at all), then one forward with hooks
    (`model_compute_dtypes`: in which dtype its compute layers really run). Draws random numbers
    (the copy's initialisation): seed again before training."""
    model = workload.build_model().to(accelerator.device)
    batch = workload.collate([splits.train[i] for i in range(min(2, len(splits.train)))])
    batch = to_device(batch, accelerator.device)

    def forward() -> torch.Tensor:
        with accelerator.autocast():
            return workload.loss(model, batch)

    def forward_backward() -> None:
        forward().float().backward()

    device = accelerator.device.type
    kernels = probe_kernels(forward_backward, precision, device)
    if kernels.status:
        return kernels
    verdict = verify_model_precision(model_compute_dtypes(model, forward), precision, device)
    verdict.observed.update(kernels.observed)
    return verdict
