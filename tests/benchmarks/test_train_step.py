"""One training step per workload and precision, through an Accelerator and in plain PyTorch.

Generic over the workload registry: a new workload is benchmarked as soon as it is registered;
one whose module does not import yet is skipped. Each benchmark repeats one step on a fixed
batch (bench.harness.parity.prepared_step), so it times the step alone: no data loading, no evaluation.
Compare `accelerate` against `plain` of the same workload and precision for Accelerate's overhead.

    pytest tests/benchmarks --benchmark-enable --benchmark-json=micro.json
"""

from __future__ import annotations

import importlib
import math

import pytest

from workloads import REGISTRY


def _importable(name: str) -> bool:
    try:
        importlib.import_module(REGISTRY[name].split(":")[0])
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("loop", ["accelerate", "plain"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_train_step(benchmark, name: str, precision: str, loop: str, data_dir) -> None:
    if not _importable(name):
        pytest.skip(f"workload {name} does not import yet")
    from bench.harness.parity import loaded, prepared_step

    workload, splits = loaded(name)
    step = prepared_step(workload, splits, precision, use_accelerate=loop == "accelerate")
    step()  # warm-up outside the clock: first-call allocations and autocast caches
    benchmark.group = f"{name}-{precision}"
    benchmark.extra_info.update({"workload": name, "precision": precision, "loop": loop,
                                 "global_batch": workload.params.global_batch})
    loss = benchmark(step)
    assert math.isfinite(loss)
