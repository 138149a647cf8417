"""Where the project's inputs and outputs live.

The built-in configs (Accelerate config YAMLs and matrices) are package data, under bench/configs/,
so they are found the same way in a checkout and in an installed wheel.

Run outputs go under the current folder: results/ (BENCH_RESULTS_DIR overrides it) and reports/,
whether bench runs from a checkout or is installed. From the repository root that is the
checkout's results/, whose baselines/ holds the committed baselines `bench compare --baseline auto`
looks for.

Datasets are never shipped with the project: they live in a data directory named by
the environment variable BENCH_DATA_DIR (tests and CI point it at ../shared/data), falling back to
the user's cache directory, where `python -m bench data fetch` puts them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The folder that holds the `bench` and `workloads` packages: the checkout, or site-packages once
# installed. Launched workers import from it (bench/harness/launch.py), so they run the same code as the runner.
PROJECT_ROOT = PACKAGE_DIR.parent
CONFIGS_DIR = PACKAGE_DIR / "configs"
ACCELERATE_CONFIGS_DIR = CONFIGS_DIR / "accelerate"
MATRIX_CONFIGS_DIR = CONFIGS_DIR / "matrix"
# Relative: under the folder bench runs in (never inside an installed package).
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or "results")
REPORTS_DIR = Path("reports")

DATA_DIR_ENV = "BENCH_DATA_DIR"


def data_dir() -> Path:
    """The directory that holds the datasets (BENCH_DATA_DIR, else ~/.cache/bench/data)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_home / "bench" / "data"


# A run id names one folder directly under the results folder: no separators, no `.`/`..`,
# nothing that a shell or another OS would read differently.
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=@,-]{0,199}")


def check_run_id(value: str, flag: str) -> str:
    """`value` if it is a safe run id (one folder name under results/); else a one-line error."""
    from bench.errors import BenchError

    if not _RUN_ID.fullmatch(value):
        raise BenchError(
            f"{flag} {value!r}: a run id must be a single folder name under the results folder "
            "(letters, digits and . _ - + = @ , ; not starting with '.'; no '/' or '..')"
        )
    return value


def safe_run_id_part(text: str) -> str:
    """`text` with every character a run id cannot hold replaced by '_' (for generated ids)."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._+=@,-]", "_", text)).strip("_.") or "run"
