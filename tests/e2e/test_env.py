"""The tests of tests/unit/test_env.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json

import pytest
import torch

from bench.commands.env import render
from bench.harness.host import PRECISION_FLAGS
from bench.harness.measure import environment
from tests.conftest import run_cli


def _strict_loads(text: str):
    def refuse(constant: str):
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.e2e
def test_bench_env_names_the_flags_memory_load_and_gpus() -> None:
    proc = run_cli("env", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for flag in PRECISION_FLAGS:  # every flag named, with whether this CPU has it
        assert f"{flag} yes" in out or f"{flag} no" in out
    memory = next(line for line in out.splitlines() if line.startswith("- Memory: "))
    assert "GiB" in memory and "unknown" not in memory
    load = next(line for line in out.splitlines() if line.startswith("- Load average: "))
    assert "(1, 5, 15 min)" in load
    assert "- deepspeed: " in out and "- torch: " in out
    if not torch.cuda.is_available():
        for line in ("- GPUs: none", "- NVIDIA driver: none", "- NCCL: none"):
            assert line in out
    assert proc.stderr == ""


@pytest.mark.e2e
def test_bench_env_json_is_what_results_record() -> None:
    proc = run_cli("env", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    env = _strict_loads(proc.stdout)
    assert set(env) == set(environment())  # the same fields a result's environment carries
    assert env["memory_total_mb"] > 0
    assert len(env["load_average"]) == 3 and all(x >= 0 for x in env["load_average"])
    assert 1 <= env["usable_cores"] <= env["cpu_count"]
    assert set(env["cpu_precision_flags"]) <= set(PRECISION_FLAGS)
    assert "deepspeed" in env["packages"]
    if not torch.cuda.is_available():
        assert env["gpus"] == [] and env["gpu_memory_mb"] == [] and env["cuda_driver"] is None


@pytest.mark.e2e
def test_a_gpu_host_is_listed_with_its_models_memory_and_versions() -> None:
    env = {**environment(), "gpus": ["NVIDIA H200", "NVIDIA H200"], "gpu_memory_mb": [143771.0, 143771.0],
           "cuda_version": "12.8", "cuda_driver": "570.124.06", "nccl_version": "2.26.2",
           "cpu_precision_flags": ["amx_bf16", "amx_tile"], "load_average": [30.5, 20.0, 10.0], "usable_cores": 16}
    out = render(env)
    assert "- GPUs: 0: NVIDIA H200, 140.4 GiB (143,771 MiB); 1: NVIDIA H200, 140.4 GiB" in out
    assert "- CUDA: 12.8 (torch build)" in out
    assert "- NVIDIA driver: 570.124.06" in out and "- NCCL: 2.26.2" in out
    assert "amx_bf16 yes, amx_tile yes, avx512_bf16 no, avx512_fp16 no, avx512f no (native bf16/fp16 compute)" in out
    assert "above the 16 usable cores: busy" in out


@pytest.mark.e2e
def test_a_quiet_host_is_not_called_busy() -> None:
    out = render({**environment(), "load_average": [0.5, 0.4, 0.3], "usable_cores": 2})
    assert "0.50, 0.40, 0.30 (1, 5, 15 min)" in out and "busy" not in out


@pytest.mark.e2e
def test_a_cpu_cell_is_recorded_as_a_cpu_cell_whatever_gpus_the_host_has(monkeypatch):
    """A CPU cell on a GPU host must match the CPU baseline of its cores and flags: its record
    leaves the GPUs out and takes a CPU hardware class. By default the record follows
    ACCELERATE_USE_CPU, which the launcher sets for every CPU topology."""
    from bench.harness.measure import environment

    cpu = environment(cpu_only=True)
    assert cpu["gpus"] == [] and cpu["hardware_class"].startswith("cpu-")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert environment()["gpus"] == [] and environment()["hardware_class"] == cpu["hardware_class"]
    monkeypatch.setenv("ACCELERATE_USE_CPU", "0")
    assert environment()["hardware_class"] == environment(cpu_only=False)["hardware_class"]

