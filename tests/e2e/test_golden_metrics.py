"""Golden metrics: one real cell, run as users run it, gives the numbers it gave when recorded.

The cell is the maintenance GRU, `cpu-1proc`, fp32, seed 0, 30 optimizer steps with an evaluation
every 10, launched through `python -m bench run` (so `accelerate launch`, the worker and the
training loop all take part). Its deterministic outputs (final metrics, the curve without its
clock readings, step and sample counts, FLOPs) are compared with tests/fixtures/golden/, recorded
with the code of the time. A refactoring of the harness that changes what is computed, even by
one ulp, fails here.

Floating-point results depend on the CPU's kernels (AVX-512 against AVX2 change summation
orders) and on the threads per rank (the runner gives each rank the host's cores), so the
comparison is exact only on the hardware class the fixture was recorded on
(bench.harness.host.hardware_class(): core count and CPU model) with the same torch. Elsewhere
floats are compared within a small tolerance (GOLDEN_TOLERANCE) and counts stay exact.

Re-record (only when a change of numbers is intended, and say why in the commit):

    python -m tests.test_golden_metrics --record
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.e2e


FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "golden" / "maintenance-gru-cpu-1proc-fp32-s0.json"


CELL_ID = "maintenance-gru__cpu-1proc__fp32__s0"


MATRIX: dict[str, Any] = {
    "name": "golden",
    "timeout_s": 300,
    "topologies": ["cpu-1proc"],
    "precisions": ["fp32"],
    "workloads": {
        "maintenance": {
            "variants": ["gru"],
            # A step budget, never the clock, ends the run: max_seconds is out of reach.
            "budget": {"max_epochs": 5, "max_seconds": 3600, "max_steps": 30},
            "params": {"eval_every_steps": 10},
            "baselines": False,
        }
    },
}


GOLDEN_TOLERANCE = {"rel": 1e-3, "abs": 1e-3}


"""Off the recorded hardware class (or torch version): how far a float may move. Thirty steps of a
small GRU keep kernel-order differences well below this; a real change of behaviour moves
losses and AUCs by far more."""


# Curve entries that read the clock; everything else in a curve point is a function of the seed.
CLOCK_KEYS = ("seconds", "time_unix")


def golden_view(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a cell's result that same seed and same hardware must reproduce bit for bit."""
    timings = result["timings"]
    return {
        "status": result["status"],
        "reason": result["reason"],
        "metrics": result["metrics"],
        "curve": [{k: v for k, v in point.items() if k not in CLOCK_KEYS} for point in result["curve"]],
        "counts": {
            "epochs": timings["epochs"],
            "steps": timings["steps"],
            "steps_per_epoch": timings["steps_per_epoch"],
            "samples_seen": result["samples_seen"],
            "samples_to_target": result["samples_to_target"],
        },
        # The configured batch, as recorded before bench observed it (`observed_global`, checked below).
        "batch": {k: v for k, v in result["batch"].items() if k != "observed_global"},
        "flops_per_sample": result["flops_per_sample"],
        "compute_dtype": result["observed"]["compute_dtype"],
    }


def run_golden_cell(workdir: Path) -> dict[str, Any]:
    """Run the golden cell through the command line and return its result."""
    matrix = workdir / "golden.yaml"
    matrix.write_text(yaml.safe_dump(MATRIX))
    proc = run_cli("run", "--matrix", str(matrix), "--results-dir", str(workdir / "results"), "--run-id", "golden")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((workdir / "results" / "golden" / "cells" / f"{CELL_ID}.json").read_text())


def assert_close(actual: Any, expected: Any, where: str = "") -> None:
    """Equal structure; equal ints, strings and None; floats within GOLDEN_TOLERANCE."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{where}: keys differ"
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, (int, float)), f"{where}: {actual!r} is not a number"
        assert math.isfinite(actual) == math.isfinite(expected), f"{where}: {actual} against {expected}"
        assert actual == pytest.approx(expected, **GOLDEN_TOLERANCE), f"{where}: {actual} against {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} against {expected!r}"


def test_the_golden_cell_reproduces_its_recorded_metrics(tmp_path):
    recorded = json.loads(FIXTURE.read_text())
    result = run_golden_cell(tmp_path)
    # What the ranks trained on per optimizer step is the configured global batch (issue 26).
    assert result["batch"]["observed_global"] == result["batch"]["global"]
    env = result["environment"]
    same_host_class = (env["hardware_class"] == recorded["hardware_class"]
                       and env["packages"]["torch"] == recorded["torch"])
    if same_host_class:
        # Same kernels, same threads, same seed: identical to the last bit.
        assert golden_view(result) == recorded["golden"]
    else:
        assert_close(golden_view(result), recorded["golden"])


def record() -> None:
    """Run the golden cell with the code checked out and write the fixture."""
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        result = run_golden_cell(Path(workdir))
    env = result["environment"]
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps({
        "about": "tests/e2e/test_golden_metrics.py: what the golden cell computed when recorded",
        "hardware_class": env["hardware_class"],
        "cpu_precision_flags": env["cpu_precision_flags"],
        "torch": env["packages"]["torch"],
        "accelerate": env["packages"]["accelerate"],
        "git_commit": env["git_commit"],
        "matrix": MATRIX,
        "golden": golden_view(result),
    }, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python -m tests.test_golden_metrics --record")
    record()

