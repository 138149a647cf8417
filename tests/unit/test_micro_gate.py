"""The micro-benchmark gate (tests/benchmarks/gate.py, `make gate`): per-hardware pytest-benchmark
storage, no failure where no baseline is committed, and a real compare that fails on a regression.

The tests that start processes are in tests/e2e/test_micro_gate.py."""

from __future__ import annotations

import json

from tests.benchmarks.gate import STORAGE_ROOT, hardware_key


def test_storage_is_keyed_on_what_decides_the_figures() -> None:
    assert hardware_key({"cpu_count": 2, "cpu_precision_flags": [], "gpus": [], "cpu_model": "AMD EPYC"}) == \
        "cpu-2core-no-precision-flags"
    assert hardware_key({"cpu_count": 56, "cpu_precision_flags": ["avx512_bf16", "amx_tile", "amx_bf16"], "gpus": []}) == \
        "cpu-56core-amx_bf16-amx_tile-avx512_bf16"
    assert hardware_key({"cpu_count": 16, "cpu_precision_flags": [], "gpus": ["NVIDIA H200"] * 8}) == "gpu-8xNVIDIA-H200"


def test_the_committed_baselines_are_pytest_benchmark_runs_of_the_gate_selection() -> None:
    from tests.benchmarks.gate import SELECTION

    saved = sorted(STORAGE_ROOT.glob("*/*/*.json"))
    assert saved, "no micro-benchmark baseline committed under results/benchmarks/"
    for path in saved:
        run = json.loads(path.read_text())
        names = {b["name"] for b in run["benchmarks"]}
        assert names and all(n.startswith("test_train_step[") for n in names)
        workloads = {n.split("[")[1].split("-")[0] for n in names}
        assert workloads == set(SELECTION.split(" or "))

