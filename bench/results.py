"""One JSON file per cell: the schema, atomic writing, and loading a run directory.

A result is written once, by one process, through a temporary file in the same directory
followed by `os.replace`, so a runner killed at any instant leaves either the whole file or
none of it. Readers ignore `*.tmp` leftovers.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SCHEMA_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)

# What a cell can end as. `converged` and `not_converged` carry numbers; the others carry a reason.
STATUSES = (
    "converged",  # met the quality target within budget
    "not_converged",  # trained to the budget without meeting the target
    "failed",  # crashed, timed out, or diverged (NaN loss); stderr tail attached
    "unsupported",  # the host ran something other than what was asked (e.g. fp16 on CPU runs fp32)
    "invalid",  # the launch was not what it claimed (e.g. N independent processes instead of DDP)
    "skipped",  # the host cannot run it at all (e.g. needs 2 GPUs, found 0); never launched
    "baseline",  # a classical reference model (RandomForest, SVM, TF-IDF...), not an Accelerate cell
)
WITH_NUMBERS = ("converged", "not_converged", "baseline")
# A cell in one of these states is done; `--resume` does not run it again. Failed cells are retried.
COMPLETED = ("converged", "not_converged", "unsupported", "invalid", "skipped", "baseline")

REQUIRED_KEYS = ("schema_version", "cell", "status", "reason")


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` so that the file is either complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False, default=_jsonable)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    # numpy scalars and paths show up in metrics and environments; store them as plain values.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def make_result(cell: dict[str, Any], status: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """A result dict with the schema's fixed head; `fields` adds metrics, timings, memory..."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    result = {"schema_version": SCHEMA_VERSION, "cell": cell, "status": status, "reason": reason}
    result.update(fields)
    return result


def validate_result(result: dict[str, Any]) -> list[str]:
    """Problems with a result dict (empty list when it is sound)."""
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in result]
    if problems:
        return problems
    if result["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version {result['schema_version']} != {SCHEMA_VERSION}")
    status = result["status"]
    if status not in STATUSES:
        problems.append(f"unknown status {status!r}")
    if status in WITH_NUMBERS:
        for key in ("metrics", "environment"):
            if key not in result:
                problems.append(f"status {status} needs {key!r}")
        if status != "baseline":
            for key in ("target", "timings", "throughput", "memory", "curve"):
                if key not in result:
                    problems.append(f"status {status} needs {key!r}")
    elif status != "baseline" and not result.get("reason"):
        problems.append(f"status {status} needs a reason")
    if status in ("unsupported", "invalid", "skipped") and result.get("metrics"):
        problems.append(f"status {status} must carry no metrics")
    return problems


def result_path(run_dir: Path, cell_id: str) -> Path:
    return run_dir / "cells" / f"{cell_id}.json"


def load_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: not a readable result file ({exc})") from None
    problems = validate_result(result) if isinstance(result, dict) else ["not a JSON object"]
    if problems:
        raise BenchError(f"{path}: invalid result: {'; '.join(problems)}")
    return result


def load_run(run_dir: Path) -> list[dict[str, Any]]:
    """Every result of a run directory (or a single result file), in a stable order."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return [load_result(run_dir)]
    cells_dir = run_dir / "cells"
    if not cells_dir.is_dir():
        raise BenchError(f"{run_dir}: not a run directory (no cells/ folder inside)")
    results = [load_result(p) for p in sorted(cells_dir.glob("*.json"))]
    if not results:
        raise BenchError(f"{run_dir}: the run holds no results yet")
    return results
