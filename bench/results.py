"""One JSON file per cell: the schema, atomic writing, and loading a run directory.

A result is written once, by one process, through a temporary file in the same directory
followed by `os.replace`, so a runner killed at any instant leaves either the whole file or
none of it. Readers ignore `*.tmp` leftovers. Every file bench writes goes through `write_atomic`.

JSON is written strict: a number that is not finite (NaN, an infinity) is written as null, and
the top-level object gains `non_finite`, a map from the JSON pointer of each such value to what
it was ("nan", "inf", "-inf"). Files written before that may hold bare NaN; they still load.
"""

from __future__ import annotations

import json
import math
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


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that the file is either complete (new) or as it was before:
    a temporary file in the same directory, flushed to disk, then renamed over `path`."""
    payload = data.encode() if isinstance(data, str) else data  # an encoding error leaves no file behind
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as strict JSON (see the module's docstring) so that the file is either
    complete or absent. The caller's dict is not changed."""
    write_atomic(path, strict_json(payload))


def strict_json(payload: Any) -> str:
    """`payload` as JSON that strict parsers read: non-finite numbers as null, with a reason
    under `non_finite` (merged with one the payload already carries) when it is an object."""
    reasons: dict[str, str] = {}
    clean = _finite(payload, "", reasons)
    if reasons and isinstance(clean, dict):
        clean["non_finite"] = {**(clean.get("non_finite") or {}), **reasons}
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def _finite(value: Any, pointer: str, reasons: dict[str, str]) -> Any:
    """A copy of `value` with plain JSON types only and every non-finite float replaced by None
    (its JSON pointer and "nan"/"inf"/"-inf" recorded in `reasons`)."""
    if isinstance(value, dict):
        return {k: _finite(v, f"{pointer}/{_escape(str(k))}", reasons) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{pointer}/{i}", reasons) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if not isinstance(value, float):
        return _finite(_jsonable(value), pointer, reasons)
    if math.isfinite(value):
        return float(value)
    reasons[pointer] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return None


def without_non_finite(value: Any) -> Any:
    """`value` with every NaN or infinity, however deep, replaced by None (for strict JSON)."""
    return _finite(value, "", {})


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


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
    return problems + _type_problems(result)


# -- field types: what compare and report read must be of the type they read it as -------------------

def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_null(value: Any) -> bool:
    return value is None or _number(value)


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _list_of(check: Any) -> Any:
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


# Optional fields: checked where present. (section, key) -> check; section "" is the top level.
_FIELD_TYPES: dict[tuple[str, str], tuple[Any, str]] = {
    ("", "reason"): (_string, "a string"),
    ("", "metrics"): (_object, "an object"),
    ("", "environment"): (_object, "an object"),
    ("", "target"): (_object, "an object"),
    ("", "timings"): (_object, "an object"),
    ("", "throughput"): (_object, "an object"),
    ("", "memory"): (_object, "an object"),
    ("", "curve"): (_list_of(_object), "a list of objects"),
    ("", "baselines"): (_list_of(_object), "a list of objects"),
    ("", "observed"): (_object, "an object"),
    ("", "topology"): (_object, "an object"),
    ("", "non_finite"): (_object, "an object"),
    ("", "data"): (_object, "an object"),
    ("data", "sha256"): (_object, "an object"),
    ("", "samples_to_target"): (_number_or_null, "a number or null"),
    ("", "flops_per_sample"): (_number_or_null, "a number or null"),
    ("", "cell_wall_s"): (_number_or_null, "a number or null"),
    ("", "stderr_tail"): (lambda v: v is None or _string(v), "a string"),
    ("target", "metric"): (_string, "a string"),
    ("target", "value"): (_number, "a number"),
    ("target", "split"): (_string, "a string"),
    ("target", "higher_is_better"): (lambda v: isinstance(v, bool), "true or false"),
    ("timings", "step_times_s"): (_list_of(_number), "a list of numbers"),
    ("environment", "cpu_count"): (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    ("environment", "cpu_precision_flags"): (lambda v: v is None or _list_of(_string)(v), "a list of strings"),
    ("environment", "gpus"): (_list_of(_string), "a list of strings"),
    ("environment", "hardware_class"): (_string, "a string"),
    ("environment", "cpu_model"): (_string, "a string"),
}
# The host's load as a cell started and ended (bench/harness/runner.py), which the report reads to mark busy hosts.
_LOAD = (lambda v: v is None or _list_of(_number)(v), "a list of numbers or null")
_FIELD_TYPES.update({
    ("", "host_load"): (_object, "an object"),
    ("host_load", "start"): _LOAD,
    ("host_load", "end"): _LOAD,
    ("host_load", "cores"): (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    ("environment", "load_average"): _LOAD,
    ("environment", "usable_cores"): (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    ("environment", "memory_total_mb"): (_number_or_null, "a number or null"),
})
for _key in ("time_to_target_s", "train_seconds", "init_s", "step_time_median_s", "step_time_p90_s"):
    _FIELD_TYPES[("timings", _key)] = (_number_or_null, "a number or null")
for _key in ("samples_per_s", "tokens_per_s"):
    _FIELD_TYPES[("throughput", _key)] = (_number_or_null, "a number or null")
for _key in ("peak_rss_mb_max", "peak_rss_mb_sum", "cuda_max_allocated_mb_max", "cuda_max_reserved_mb_max"):
    _FIELD_TYPES[("memory", _key)] = (_number_or_null, "a number or null")
_CELL_TYPES = {"id": _string, "workload": _string, "variant": _string, "topology": _string, "precision": _string,
               "seed": lambda v: isinstance(v, int) and not isinstance(v, bool)}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)


def _type_problems(result: dict[str, Any]) -> list[str]:
    """Fields of the wrong type (a string where a number belongs...), each as `where: want, got`."""
    problems = []
    cell = result["cell"]
    if not isinstance(cell, dict):
        problems.append(f"cell must be an object, not {_kind(cell)}")
    else:
        for key, check in _CELL_TYPES.items():
            if key not in cell:
                problems.append(f"cell needs {key!r}")
            elif not check(cell[key]):
                problems.append(f"cell.{key} must be {'an integer' if key == 'seed' else 'a string'}, not {_kind(cell[key])}")
    for (section, key), (check, want) in _FIELD_TYPES.items():
        node = result if not section else result.get(section)
        if not isinstance(node, dict) or key not in node:
            continue
        if not check(node[key]):
            where = f"{section}.{key}" if section else key
            problems.append(f"{where} must be {want}, not {_kind(node[key])}")
    metrics, target = result.get("metrics"), result.get("target")
    if isinstance(metrics, dict):
        metric = target.get("metric") if isinstance(target, dict) else None
        for split, values in metrics.items():
            if not isinstance(values, dict):
                problems.append(f"metrics.{split} must be an object, not {_kind(values)}")
            elif isinstance(metric, str) and metric in values and not _number_or_null(values[metric]):
                problems.append(f"metrics.{split}.{metric} must be a number or null, not {_kind(values[metric])}")
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
