"""Where the project's inputs and outputs live.

Datasets are never shipped with the project: they live in a data directory named by
the environment variable BENCH_DATA_DIR (tests and CI point it at ../shared/data), falling back to
the user's cache directory, where `python -m bench data fetch` puts them.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PROJECT_ROOT / "configs"
ACCELERATE_CONFIGS_DIR = CONFIGS_DIR / "accelerate"
MATRIX_CONFIGS_DIR = CONFIGS_DIR / "matrix"
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", PROJECT_ROOT / "results"))
REPORTS_DIR = PROJECT_ROOT / "reports"

DATA_DIR_ENV = "BENCH_DATA_DIR"


def data_dir() -> Path:
    """The directory that holds the datasets (BENCH_DATA_DIR, else ~/.cache/bench/data)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_home / "bench" / "data"
