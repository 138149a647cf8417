"""The micro-benchmark gate (`make gate`): this hardware's committed pytest-benchmark baseline.

    python -m tests.benchmarks.gate            # compare against the committed baseline; exit 1 past FAIL twice
    python -m tests.benchmarks.gate --save     # measure and save this hardware's baseline, then commit it

Baselines live in pytest-benchmark's own file storage, one storage folder per hardware class,
results/benchmarks/<class>/, inside which pytest-benchmark keys its runs by its machine id
(`Linux-CPython-3.11-64bit`: OS, Python, bits; it says nothing of the CPU). The class is what
`bench compare` matches baselines on (bench.analysis.gate.baselines.Hardware: cores, the CPU flags that decide
precision, GPUs), not the CPU model string, which one VM class reports several ways.

Where no baseline is committed for this class and machine id, nothing is run or compared and the
gate passes, saying so: new hardware is not a regression. See docs/parity.md for the figures
behind SELECTION and FAIL.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STORAGE_ROOT = PROJECT_ROOT / "results" / "benchmarks"

SELECTION = "maintenance or traffic"
"""The benchmarks the gate runs (a pytest -k expression): 8 of the 12, ~45 s on the loaded 2-core
machine. Sentiment's MiniLM step (seconds each under load, its data tokenised first) is left to
`make benchmarks`; a new workload joins the gate when it is added here."""

FAIL = "median:150%"
"""Fail a benchmark whose median step is more than 2.5x the baseline's. Five runs of one commit on
the loaded 2-core machine (load average 5-6) put one benchmark's median up to 1.75x another run's
(docs/parity.md); a regression must also show in a second run (`main`)."""


def hardware_key(hw: dict[str, Any]) -> str:
    """The storage folder name for a host (bench.harness.host.hardware()): what decides its figures."""
    from bench.analysis.gate.baselines import baseline_slug

    gpus = hw.get("gpus") or []
    if gpus:
        return baseline_slug(f"gpu-{len(gpus)}x{gpus[0]}")
    flags = "-".join(sorted(hw.get("cpu_precision_flags") or [])) or "no-precision-flags"
    return baseline_slug(f"cpu-{hw.get('cpu_count')}core-{flags}")


def machine_id() -> str:
    from pytest_benchmark.utils import get_machine_id

    return get_machine_id()


def saved_runs(storage: Path) -> list[Path]:
    """The runs pytest-benchmark saved in `storage` for this machine id, oldest first."""
    return sorted((storage / machine_id()).glob("*.json"))


def own_session_env() -> dict[str, str]:
    """This environment without what a pytest-xdist worker sets (PYTEST_XDIST_WORKER...): run from a
    test under `pytest -n`, the benchmarks' pytest would otherwise take itself for a worker and
    pytest-benchmark would neither time for real nor save."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_") and k != "PYTEST_CURRENT_TEST"}


def pytest_command(storage: Path, selection: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", str(PROJECT_ROOT / "tests" / "benchmarks"), "-q", "-p", "no:cacheprovider",
            "--benchmark-enable", "-k", selection, f"--benchmark-storage=file://{storage}", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="measure and save this hardware's baseline")
    parser.add_argument("--fail", default=FAIL, help=f"--benchmark-compare-fail expression (default {FAIL})")
    parser.add_argument("-k", dest="selection", default=SELECTION, help=f"benchmarks to run (default {SELECTION!r})")
    parser.add_argument("--storage-root", type=Path, default=STORAGE_ROOT, help="where the per-hardware folders are")
    args = parser.parse_args(argv)

    from bench.harness.host import hardware

    storage = args.storage_root / hardware_key(hardware())
    if args.save:
        done = subprocess.run(pytest_command(storage, args.selection, ["--benchmark-save=baseline"]), cwd=PROJECT_ROOT,
                              env=own_session_env())
        if done.returncode == 0:
            print(f"micro-benchmark baseline saved: {saved_runs(storage)[-1]}; commit it")
        return done.returncode
    runs = saved_runs(storage)
    if not runs:
        print(f"micro-benchmarks: no committed baseline for this hardware ({storage / machine_id()}): not compared, "
              "not failing; save one with `python -m tests.benchmarks.gate --save` and commit it")
        return 0
    print(f"micro-benchmarks against {runs[-1]} (fail past {args.fail})", flush=True)
    command = pytest_command(storage, args.selection, ["--benchmark-compare", f"--benchmark-compare-fail={args.fail}"])
    code, regressed = _run(command)
    if regressed:
        # As `bench compare --recheck`: a burst of other work on a shared machine slows one run;
        # a regression of the code slows the next run too.
        print("micro-benchmarks: past the threshold; running them once more, the gate fails only if that "
              "run regresses too", flush=True)
        code, regressed = _run(command)
    return code


def _run(command: list[str]) -> tuple[int, bool]:
    """Run pytest; (its exit code, whether a benchmark regressed past the threshold). pytest-benchmark
    fails a compare by raising PerformanceRegression: its report is kept, the traceback dropped."""
    done = subprocess.run(command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True, env=own_session_env())
    regressed = "PerformanceRegression" in done.stderr
    err = done.stderr.split("Traceback (most recent call last):")[0] if regressed else done.stderr
    sys.stderr.write(err)
    sys.stderr.flush()
    return done.returncode, regressed


if __name__ == "__main__":
    sys.exit(main())
