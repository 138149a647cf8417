"""The micro-benchmark gate (tests/benchmarks/gate.py, `make gate`): per-hardware pytest-benchmark
storage, no failure where no baseline is committed, and a real compare that fails on a regression."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.gate import PROJECT_ROOT, STORAGE_ROOT, hardware_key, machine_id

TIME_FIELDS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "total")
ONE = "traffic and fp32 and plain"  # the fastest benchmark: one is enough to see the gate work


def _gate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.benchmarks.gate", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=900)


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


@pytest.mark.e2e
def test_no_committed_baseline_for_this_hardware_passes_and_says_so(tmp_path: Path) -> None:
    done = _gate("--storage-root", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no committed baseline for this hardware" in done.stdout and machine_id() in done.stdout
    assert "not failing" in done.stdout and "passed" not in done.stdout  # nothing was run


@pytest.mark.e2e
def test_a_real_compare_fails_against_a_much_faster_baseline_and_passes_a_much_slower_one(tmp_path: Path) -> None:
    saved = _gate("--save", "-k", ONE, "--storage-root", str(tmp_path))
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr[-3000:]
    [baseline] = tmp_path.glob(f"*/{machine_id()}/*.json")
    real = json.loads(baseline.read_text())

    def scaled(factor: float) -> None:
        run = json.loads(json.dumps(real))
        for bench in run["benchmarks"]:
            for key in TIME_FIELDS:
                if isinstance(bench["stats"].get(key), (int, float)):
                    bench["stats"][key] *= factor
            bench["stats"]["ops"] /= factor
        baseline.write_text(json.dumps(run))

    scaled(1 / 100)  # the baseline 100x faster: this run is a 100x regression
    failed = _gate("-k", ONE, "--storage-root", str(tmp_path))
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "running them once more" in failed.stdout  # a regression must show twice
    assert failed.stderr.count("Performance has regressed:") == 2
    assert "Field 'median' has failed PercentageRegressionCheck" in failed.stderr
    assert "Traceback" not in failed.stderr

    scaled(100)  # 100x slower: this run is far inside the threshold
    passed = _gate("-k", ONE, "--storage-root", str(tmp_path))
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-3000:]
    assert "running them once more" not in passed.stdout
