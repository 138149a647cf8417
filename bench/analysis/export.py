"""A run's results as a flat table, one row per cell: Parquet, or a Hugging Face `datasets.Dataset`.

Each result file (results/<run>/cells/<cell>.json) becomes one row. Nested objects are flattened
the way `pandas.json_normalize` does it, with dotted column names (`cell.workload`,
`timings.time_to_target_s`, `metrics.test.f1`); a `run_id` column names the run. Lists (the
training curve, per-rank memory, baselines, cleaning steps) and columns whose values differ in
kind from cell to cell (an object in one, a number in another) are stored as JSON text, so that
every column has one Arrow type and the table loads anywhere; `json.loads` gives them back.

pyarrow and datasets are optional: `pip install 'accelerate-bench[export]'`.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError
from bench.results import load_run, without_non_finite, write_atomic

# First, in this order; the other columns follow in the order json_normalize gives them.
KEY_COLUMNS = ("run_id", "cell.id", "cell.workload", "cell.variant", "cell.topology", "cell.precision",
               "cell.seed", "cell.kind", "status", "reason")


def require(module: str, purpose: str) -> Any:
    """Import an optional export dependency, or a one-line error naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BenchError(f"{purpose} needs the {module} package: pip install {module} "
                         "(or pip install 'accelerate-bench[export]')") from None


def run_id_of(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    return run_dir.name if run_dir.is_dir() else run_dir.stem


def cells_frame(run_dir: Path) -> pd.DataFrame:
    """One flat row per cell of the run (or of the one result file), key columns first."""
    results = load_run(Path(run_dir))
    run_id = run_id_of(run_dir)
    # Every field of each result, as its file holds it (`Result.to_dict` gives back what was read).
    frame = pd.json_normalize([{"run_id": run_id, **result.to_dict()} for result in results], sep=".")
    for column in frame.columns:
        frame[column] = _one_kind(frame[column])
    first = [c for c in KEY_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def _missing(value: Any) -> bool:
    # json_normalize fills a key that some results lack with NaN; results themselves hold null, never
    # NaN (bench.results writes non-finite numbers as null and lists them under `non_finite`).
    return value is None or (isinstance(value, float) and math.isnan(value))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "json"


def _one_kind(column: pd.Series) -> pd.Series:
    """The column as it is when its values are all numbers, all booleans or all strings (missing
    values allowed); else each value as JSON text (lists, objects, mixed kinds), missing as null."""
    values = [v for v in column if not _missing(v)]
    kinds = {_kind(v) for v in values}
    if len(kinds) == 1 and kinds != {"json"}:
        if kinds == {"number"}:
            return pd.to_numeric(column)
        return column.astype(object).where(~column.map(_missing), None)
    if not kinds:
        return pd.Series([None] * len(column), index=column.index, dtype=object)  # no value at all: nulls
    # Strict JSON text: a NaN inside a list of an older result (written before results were strict) becomes null.
    return column.map(lambda v: None if _missing(v) else json.dumps(without_non_finite(v), allow_nan=False))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    require("pyarrow", "--format parquet")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    data = parquet_bytes(frame)
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise BenchError(f"{path}: cannot write the Parquet file ({exc.strerror or exc})") from None


def to_dataset(frame: pd.DataFrame, run_id: str) -> Any:
    """The table as a `datasets.Dataset` (one row per cell), described as the run it comes from."""
    datasets = require("datasets", "bench export")
    info = datasets.DatasetInfo(description=f"bench run {run_id}: one row per cell (result file); "
                                            "nested fields flattened with dots, lists as JSON text")
    return datasets.Dataset.from_pandas(frame, preserve_index=False, info=info)


def save_dataset(dataset: Any, out: Path) -> None:
    """`dataset.save_to_disk(out)`, whole or not at all: saved beside `out`, then moved in. An `out`
    that already holds a saved dataset is replaced; any other non-empty folder is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset_info.json").is_file():
        raise BenchError(f"--out {out}: a non-empty folder that holds no saved dataset; give a new or empty folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    import datasets

    datasets.disable_progress_bars()  # a few rows: the bar says nothing, and would fill logs
    try:
        dataset.save_to_disk(str(staging))
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(staging, out)
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot save the dataset ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def push_dataset(dataset: Any, repo: str, private: bool) -> None:
    """`dataset.push_to_hub(repo)`: needs network and a Hugging Face token (`hf auth login` or HF_TOKEN)."""
    try:
        dataset.push_to_hub(repo, private=private)
    except Exception as exc:  # noqa: BLE001 - network, auth or a bad repo id: one line, not a traceback
        message = str(exc).strip().splitlines()
        raise BenchError(f"--push-to-hub {repo}: {message[0] if message else type(exc).__name__}") from None
