"""The tests of tests/unit/test_micro_gate.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.gate import PROJECT_ROOT, machine_id

TIME_FIELDS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "total")


ONE = "traffic and fp32 and plain"  # the fastest benchmark: one is enough to see the gate work


def _gate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.benchmarks.gate", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=900)


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

