"""Shared test setup: where the real data is, and a helper to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.analysis.report import build_report
from bench.results import (
    json_schema,
    load_run_dicts,
)
from tests.helpers.compare_seeds import RUN_A
from tests.helpers.report import FIXTURE
from tests.helpers.schema import jsonschema
from tests.helpers.serve import build_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Tests read the real datasets through BENCH_DATA_DIR; default to the shared copy beside the checkout.
if "BENCH_DATA_DIR" not in os.environ:
    for candidate in (PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT.parent.parent / "shared" / "data"):
        if candidate.is_dir():
            os.environ["BENCH_DATA_DIR"] = str(candidate)
            break


# In-process tests use one thread: on a 2-core machine shared with other jobs, two OpenMP
# threads contending for cores make small RNN steps up to 20x slower (measured), and the tests
# assert behaviour, not speed. Launched cells get their threads from the runner as users do.
torch.set_num_threads(1)


UNIT_TIER = os.environ.get("BENCH_TEST_TIER") == "unit"
"""`make test-unit` sets it: the fast tier, tests that start no process (the e2e marker keeps the others out)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tiers are folders: tests/unit holds the tests that start no process, tests/e2e the ones
    marked e2e (each launches a cell, a server, a script or git). A test in the wrong folder fails
    the collection, naming itself, so `make test-unit` (tests/unit) stays fast and complete."""
    misplaced = [item.nodeid for item in items
                 if item.nodeid.startswith(("tests/unit/", "tests/e2e/"))
                 and item.nodeid.startswith("tests/e2e/") != (item.get_closest_marker("e2e") is not None)]
    if misplaced:
        raise pytest.UsageError("tests in the wrong tier (e2e-marked tests go in tests/e2e, the rest in "
                                "tests/unit): " + ", ".join(misplaced[:5]))


@pytest.fixture(autouse=True)
def _unit_tier_starts_no_process(request, monkeypatch):
    """In the unit tier, a test not marked e2e that starts a process fails, naming itself: the tier
    stays fast, and a launching test cannot slip into it unmarked. (`Failed` is no Exception, so
    code under test that catches exceptions does not swallow it.)"""
    if UNIT_TIER and request.node.get_closest_marker("e2e") is None:
        def refuse(self, args, *rest, **kwargs):
            pytest.fail(f"{request.node.nodeid} starts a process ({args!r:.120}) but is not marked e2e")

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("BENCH_DATA_DIR", ""))
    assert path.is_dir(), "set BENCH_DATA_DIR to the folder holding the datasets (e.g. ../shared/data)"
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 1800, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd or PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_at_a_terminal() -> None:
    """A child's preexec_fn: SIGINT back to its default, as a shell gives its foreground job.

    A test that sends Ctrl-C (SIGINT) to a runner must not inherit an ignored SIGINT: a script that
    starts `make test` in the background of a non-interactive shell (`cmd &`, nohup) ignores it,
    every child inherits that, and Python then installs no KeyboardInterrupt handler. Such a
    runner never sees the test's Ctrl-C (found when three fresh-clone runs were started that way)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cpu_runs_a_bf16_lstm() -> bool:
    """Whether this CPU trains a bf16 LSTM. oneDNN needs AVX-512 for one: an AVX2-only CPU (one
    machine of the project's kind reports "AMD EPYC" with AVX2 only) raises "could not create a
    primitive descriptor for the LSTM forward propagation primitive", and bench reports such a
    cell `unsupported` (bench.harness.verify.probe_kernels). Tests of bf16 LSTMs ask this first."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        try:
            torch.nn.LSTM(4, 8, batch_first=True)(torch.randn(2, 3, 4))[0].float().sum().backward()
        except RuntimeError:
            return False
    return True


@pytest.fixture
def fresh_state(monkeypatch):
    """No Accelerator state left by an earlier test: each test's Accelerator() starts anew."""
    from accelerate.state import AcceleratorState, GradientState

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


# shared by tests/unit and tests/e2e (test_compare_seeds)
@pytest.fixture(scope="module")
def base_result() -> dict:
    return load_run_dicts(RUN_A)[0]


# shared by tests/unit and tests/e2e (test_corrupt_checkpoint)
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("checkpoint"))


# shared by tests/unit and tests/e2e (test_corrupt_checkpoint)
@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reviews") / "reviews.txt"
    path.write_text("Great phone, works well.\nBroke after a day.\n")
    return path


# shared by tests/unit and tests/e2e (test_report)
@pytest.fixture(scope="module")
def report():
    return build_report(FIXTURE, measure_peaks=False)


# shared by tests/unit and tests/e2e (test_schema)
@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(json_schema())

