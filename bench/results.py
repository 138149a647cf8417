"""One JSON file per cell: the typed model, the schema, atomic writing, and loading a run directory.

A result is written once, by one process, through a temporary file in the same directory
followed by `os.replace`, so a runner killed at any instant leaves either the whole file or
none of it (SIGKILL mid-write leaves a `.NAME.*.tmp` beside it). Readers ignore `*.tmp`
leftovers and a resumed local run deletes those beside run.json and in cells/
(runner.remove_unfinished_writes). Every file bench writes goes through `write_atomic`.

JSON is written strict: a number that is not finite (NaN, an infinity) is written as null, and
the top-level object gains `non_finite`, a map from the JSON pointer of each such value to what
it was ("nan", "inf", "-inf"). Files written before that may hold bare NaN; they still load.

Versions: 2 records the direction of the target (`target.higher_is_better`). A version 1 file
(every result committed before) is upgraded as it is read (`upgrade`), so the code that reads
results only ever sees version 2. `Result` is the typed view of a result dict; its sections keep
the fields they do not know, so `Result.from_dict(d).to_dict() == d`. The JSON schema published
in bench/result.schema.json is generated from these models: `python -m bench.results --schema`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import tempfile
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from bench.cells import CellKey
from bench.errors import BenchError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Versions `load_result` reads; older ones are upgraded to SCHEMA_VERSION in memory."""
SCHEMA_FILE = Path(__file__).resolve().parent / "result.schema.json"
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
WITHOUT_METRICS = ("unsupported", "invalid", "skipped")

REQUIRED_KEYS = ("schema_version", "cell", "status", "reason")
# What a result with numbers must carry beyond the head: every one of them, and a trained cell more.
NEEDED_WITH_NUMBERS = ("metrics", "environment")
NEEDED_WHEN_TRAINED = ("target", "timings", "throughput", "memory", "curve")

LOWER_IS_BETTER_METRICS = frozenset({"loss", "mse", "rmse", "mae", "mape", "error", "error_rate", "perplexity", "wer", "cer"})
"""Target metrics where lower is better. A version 1 result does not record the direction of its
target; it is derived from the metric's name, never by building the workload (that needs torch).
Every workload bench has shipped targets a score (f1, roc_auc, accuracy): higher is better."""


def target_direction(metric: str) -> bool:
    """Whether a target on `metric` is met from above (higher is better), for results that do not say."""
    return metric not in LOWER_IS_BETTER_METRICS


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


def json_pointer(*keys: str) -> str:
    """The JSON pointer of a value at `keys` ("/metrics/val/f1"), as `non_finite` names it."""
    return "".join(f"/{_escape(key)}" for key in keys)


def _jsonable(value: Any) -> Any:
    # numpy scalars and paths show up in metrics and environments; store them as plain values.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# The typed model of a result
# ---------------------------------------------------------------------------------------------


@dataclass
class Record:
    """A JSON object with typed known fields. Unknown fields are kept in `extra`, and the keys the
    object held (`keys`, in its order) say which known fields were absent rather than null, so that
    `from_dict` then `to_dict` gives back the same object."""

    SECTIONS: ClassVar[dict[str, type[Record]]] = {}
    """Known fields that are themselves records: field name -> its class. A known field without a
    default is required (the schema's `required`)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)
    keys: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "keys"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = cls.known()
        values = {}
        for name in known:
            if name in data:
                value, section = data[name], cls.SECTIONS.get(name)
                values[name] = section.from_dict(value) if section and isinstance(value, dict) else value
        missing = [name for name in known if name not in values and _required_field(cls, name)]
        if missing:
            raise BenchError(f"{cls.__name__.lower()} needs {', '.join(repr(m) for m in missing)}")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the keys it was read with in their order, then any field set since."""
        known = self.known()
        out: dict[str, Any] = {}
        for name in self.keys:
            if name in known:
                out[name] = _plain(getattr(self, name))
            elif name in self.extra:
                out[name] = self.extra[name]
        for name in known:  # fields set programmatically (or never read from a dict)
            value = getattr(self, name)
            if name not in out and value is not None and not (isinstance(value, Record) and not value.to_dict()):
                out[name] = _plain(value)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def not_null() -> Any:
    """An optional field that, where present, is never null (the schema leaves null out of its type)."""
    return field(default=None, metadata={"nullable": False})


def section(cls: type[Record]) -> Any:
    """A sub-object that may be absent: read as an empty record then (so `result.timings.init_s` is
    None rather than an error), and written back only where it was read or has been filled."""
    return field(default_factory=cls, metadata={"nullable": False})


def _required_field(cls: type[Record], name: str) -> bool:
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Record) else value


@dataclass
class ResultCell(Record):
    """The cell a result is of, as `Cell.to_dict` wrote it (budget, params, timeout_s... in `extra`)."""

    workload: str
    variant: str
    topology: str
    precision: str
    seed: int
    id: str
    kind: str | None = not_null()
    """Either "train" or "baseline"; None only in files that predate the field (then "train")."""

    @property
    def key(self) -> CellKey:
        return CellKey.of(self.to_dict())


@dataclass
class Target(Record):
    """The quality target the cell trained to."""

    metric: str
    value: float
    split: str | None = not_null()
    higher_is_better: bool | None = not_null()
    """Recorded since schema version 2; a version 1 result gets it from `target_direction`."""

    @property
    def higher(self) -> bool:
        return target_direction(self.metric) if self.higher_is_better is None else self.higher_is_better

    def met_by(self, score: float) -> bool:
        return score >= self.value if self.higher else score <= self.value


@dataclass
class Timings(Record):
    """Durations in seconds (the training clock unless said otherwise)."""

    init_s: float | None = None
    time_to_target_s: float | None = None
    train_seconds: float | None = None
    step_time_median_s: float | None = None
    step_time_p90_s: float | None = None
    step_times_s: list[float] | None = not_null()
    final_eval_s: float | None = None
    """The final evaluation on every split, after training (not on the training clock)."""


@dataclass
class Throughput(Record):
    samples_per_s: float | None = None
    tokens_per_s: float | None = None


@dataclass
class Memory(Record):
    """Peaks in MB over the cell's ranks (per rank in `extra["per_rank"]`)."""

    peak_rss_mb_max: float | None = None
    peak_rss_mb_sum: float | None = None
    cuda_max_allocated_mb_max: float | None = None
    cuda_max_reserved_mb_max: float | None = None


@dataclass
class Environment(Record):
    """The host the cell ran on (bench.harness.measure.environment)."""

    hardware_class: str | None = not_null()
    cpu_model: str | None = not_null()
    cpu_count: int | None = None
    cpu_precision_flags: list[str] | None = None
    gpus: list[str] | None = not_null()
    usable_cores: int | None = None
    memory_total_mb: float | None = None
    load_average: list[float] | None = None
    git_commit: str | None = None


@dataclass
class HostLoad(Record):
    """The host's load averages (1, 5, 15 min) as the cell started and ended, and its usable cores."""

    start: list[float] | None = None
    end: list[float] | None = None
    cores: int | None = None


@dataclass
class Launch(Record):
    """The `accelerate launch` a cell ran in. The seeds of one configuration share one launch
    (bench/harness/executors/base.py, launch_groups): `seeds` it served, its whole `wall_s`, this seed's
    `own_s` (from the seed's start to its result) and `fixed_share_s` (the launch's imports, set-up
    and teardown split evenly over its seeds); the seed's cell_wall_s is own_s + fixed_share_s."""

    seeds: int | None = None
    wall_s: float | None = None
    own_s: float | None = None
    fixed_share_s: float | None = None
    timeout_s: float | None = None
    log: str | None = None


@dataclass
class DataRecord(Record):
    """What the cell read: the workload's preprocessing record and each file's content SHA-256."""

    sha256: dict[str, str] | None = not_null()


@dataclass
class Result(Record):
    """One cell's result file."""

    SECTIONS: ClassVar[dict[str, type[Record]]] = {
        "cell": ResultCell, "target": Target, "timings": Timings, "throughput": Throughput, "memory": Memory,
        "environment": Environment, "host_load": HostLoad, "data": DataRecord, "launch": Launch,
    }

    schema_version: int
    cell: ResultCell
    status: str
    reason: str
    target: Target | None = not_null()
    metrics: dict[str, dict[str, Any]] | None = not_null()
    """split (or classical model) -> metric -> value."""
    timings: Timings = section(Timings)
    throughput: Throughput = section(Throughput)
    memory: Memory = section(Memory)
    curve: list[dict[str, Any]] | None = not_null()
    """The evaluations during training: training-clock seconds and the metrics of each."""
    samples_to_target: float | None = None
    flops_per_sample: float | None = None
    """The model's training FLOPs per sample (forward and backward, without recomputation): what MFU divides."""
    hardware_flops_per_sample: float | None = None
    """With activation checkpointing, the FLOPs the hardware ran, recomputed forwards included (HFU)."""
    environment: Environment = section(Environment)
    observed: dict[str, Any] | None = not_null()
    topology: dict[str, Any] | None = not_null()
    baselines: list[dict[str, Any]] | None = not_null()
    data: DataRecord = section(DataRecord)
    host_load: HostLoad = section(HostLoad)
    cell_wall_s: float | None = None
    launch: Launch = section(Launch)
    knobs: dict[str, Any] | None = not_null()
    """What the knobs were seen doing (docs/knobs.md): compile {backend, graphs, recompiles, graph_breaks,
    compile_s, cache}, grad_accum {steps, micro_steps, optimizer_steps, sync_on_last_only}, checkpointing
    {recompute_forwards_per_step, peak_rss_mb_max}, sharding {per_rank, sharded, ...}, cpu_affinity
    {asked, per_rank, no_op}; only the knobs a cell set, and cpu_affinity for every training cell."""
    loader: dict[str, Any] | None = not_null()
    """The training loader's settings (bench/harness/train.py loader_settings): num_workers, pin_memory,
    non_blocking, split_batches, dispatch_batches, even_batches, device, eval_batch."""
    stderr_tail: str | None = None
    non_finite: dict[str, str] | None = not_null()

    @property
    def key(self) -> CellKey:
        return self.cell.key

    @property
    def wall_alone_s(self) -> float | None:
        """The seed's end-to-end time as a launch of its own: its own seconds plus the launch's whole
        fixed cost (imports, set-up, teardown), not a share of it. Comparisons use it, so a cell that
        launches per seed (compile, fp8, a tracker) and one whose seeds share a launch compare alike;
        a one-seed launch's is its cell_wall_s."""
        launch = self.launch
        if (launch.seeds or 1) > 1 and launch.own_s is not None and launch.fixed_share_s is not None:
            return round(launch.own_s + launch.fixed_share_s * launch.seeds, 3)
        return self.cell_wall_s

    @property
    def trained(self) -> bool:
        """Whether it carries the numbers of a training run (converged or not)."""
        return self.status in ("converged", "not_converged")


def make_result(cell: dict[str, Any], status: str, reason: str = "", **fields: Any) -> dict[str, Any]:
    """A result dict with the schema's fixed head; `fields` adds metrics, timings, memory...

    A target without its direction gets it from `target_direction` (the workload knows it better:
    pass `higher_is_better` in the target where it is known)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    result = {"schema_version": SCHEMA_VERSION, "cell": cell, "status": status, "reason": reason}
    result.update(fields)
    return _with_direction(result)


def _with_direction(result: dict[str, Any]) -> dict[str, Any]:
    target = result.get("target")
    if isinstance(target, dict) and "higher_is_better" not in target and isinstance(target.get("metric"), str):
        result["target"] = {**target, "higher_is_better": target_direction(target["metric"])}
    return result


def upgrade(result: dict[str, Any]) -> dict[str, Any]:
    """A result of any readable version as a version 2 result (a new dict; the argument is kept).

    1 -> 2: the target's direction, which version 1 did not record, from its metric's name."""
    if result.get("schema_version") == SCHEMA_VERSION:
        return result
    if result.get("schema_version") not in READABLE_VERSIONS:
        raise BenchError(f"schema_version {result.get('schema_version')!r} is not one bench reads "
                         f"({', '.join(map(str, READABLE_VERSIONS))})")
    return _with_direction({**result, "schema_version": SCHEMA_VERSION})


def validate_result(result: dict[str, Any]) -> list[str]:
    """Problems with a result dict (empty list when it is sound), in words a person can act on.

    Every rule of the published schema (`json_schema`) is checked here, without the jsonschema
    package (a test dependency only), plus one a JSON schema cannot state: the target's metric, where
    a split reports it, is a number or null."""
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in result]
    if problems:
        return problems
    version = result["schema_version"]
    if version not in READABLE_VERSIONS:
        problems.append(f"schema_version {version!r} is not one of {', '.join(map(str, READABLE_VERSIONS))}")
    status = result["status"]
    if status not in STATUSES:
        problems.append(f"unknown status {status!r}")
    if status in WITH_NUMBERS:
        needed = NEEDED_WITH_NUMBERS + (NEEDED_WHEN_TRAINED if status != "baseline" else ())
        problems += [f"status {status} needs {key!r}" for key in needed if key not in result]
    elif status != "baseline" and not result.get("reason"):
        problems.append(f"status {status} needs a reason")
    if status in WITHOUT_METRICS and result.get("metrics"):
        problems.append(f"status {status} must carry no metrics")
    target = result.get("target")
    if version == SCHEMA_VERSION and isinstance(target, dict) and "higher_is_better" not in target:
        problems.append(f"target needs 'higher_is_better' (schema version {SCHEMA_VERSION})")
    return problems + _type_problems(result)


# -- field types: what compare and report read must be of the type they read it as -------------------
# The types are the models' annotations (the same ones the published schema is generated from).


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_null(value: Any) -> bool:
    return value is None or _number(value)


def _stored_hint(cls: type[Record], spec: dataclasses.Field) -> Any:
    """A field's annotation as the file stores it: without None where the field is never null."""
    hint = _hints(cls)[spec.name]
    if not spec.metadata.get("nullable", True) and type(None) in typing.get_args(hint):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


@functools.cache
def _hints(cls: type[Record]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conforms(hint: Any, value: Any) -> bool:
    """Whether a JSON value is of an annotation's type (a record: an object; its fields are checked apart)."""
    if hint is Any:
        return True
    if isinstance(hint, type) and issubclass(hint, Record):
        return isinstance(value, dict)
    if hint is float:
        return _number(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return isinstance(value, list) and all(_conforms(args[0], v) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(args[1], v) for v in value.values())
    inner = next(a for a in args if a is not type(None))  # X | None
    return value is None or _conforms(inner, value)


_WANTED = {float: ("a number", "numbers"), int: ("an integer", "integers"), str: ("a string", "strings"),
           bool: ("true or false", "booleans")}


def _wanted(hint: Any, plural: bool = False) -> str:
    """What an annotation asks for, in words: "a list of numbers", "an integer or null"..."""
    if hint in _WANTED:
        return _WANTED[hint][plural]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return ("lists" if plural else "a list") + f" of {_wanted(args[0], plural=True)}"
    if origin is dict and args[1] is not Any:
        return ("objects" if plural else "an object") + f" whose values are {_wanted(args[1], plural=True)}"
    if type(None) in args:
        return f"{_wanted(next(a for a in args if a is not type(None)), plural)} or null"
    return "objects" if plural else "an object"  # a record, or dict[str, Any]


def _record_problems(cls: type[Record], node: dict[str, Any], where: str = "") -> list[str]:
    """The fields of `node` that are missing (where `cls` requires them) or of the wrong type."""
    problems = []
    for spec in dataclasses.fields(cls):
        name = spec.name
        if name in ("extra", "keys"):
            continue
        path = f"{where}.{name}" if where else name
        if name not in node:
            if where and _required_field(cls, name):  # the top level's own are REQUIRED_KEYS
                problems.append(f"{where} needs {name!r}")
            continue
        hint, value = _stored_hint(cls, spec), node[name]
        if not _conforms(hint, value):
            problems.append(f"{path} must be {_wanted(hint)}, not {_kind(value)}")
        elif name in cls.SECTIONS and isinstance(value, dict):
            problems += _record_problems(cls.SECTIONS[name], value, path)
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)


def _type_problems(result: dict[str, Any]) -> list[str]:
    """Fields of the wrong type (a string where a number belongs...), each as `where must be X, not Y`."""
    problems = _record_problems(Result, result)
    metrics, target = result.get("metrics"), result.get("target")
    if isinstance(metrics, dict):
        metric = target.get("metric") if isinstance(target, dict) else None
        for split, values in metrics.items():
            if isinstance(values, dict) and isinstance(metric, str) and metric in values and not _number_or_null(values[metric]):
                problems.append(f"metrics.{split}.{metric} must be a number or null, not {_kind(values[metric])}")
    return problems


def result_path(run_dir: Path, cell_id: str) -> Path:
    return run_dir / "cells" / f"{cell_id}.json"


def load_result(path: Path) -> dict[str, Any]:
    """A result file, checked against the schema and upgraded to the current version."""
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: not a readable result file ({exc})") from None
    problems = validate_result(result) if isinstance(result, dict) else ["not a JSON object"]
    if problems:
        raise BenchError(f"{path}: invalid result: {'; '.join(problems)}")
    return upgrade(result)


def load_run_dicts(run_dir: Path) -> list[dict[str, Any]]:
    """Every result file of a run directory (or a single result file) as the dict it holds, checked
    and upgraded, in a stable order: for code that edits and rewrites result files. Readers use `load_run`."""
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


def load_run(run_dir: Path) -> list[Result]:
    """Every result of a run directory (or a single result file), typed, in a stable order."""
    return [Result.from_dict(r) for r in load_run_dicts(run_dir)]


def as_results(results: Iterable[Result | dict[str, Any]]) -> list[Result]:
    """Results as records: a dict (a result as the harness or `load_run_dicts` gives it) is read into one."""
    return [r if isinstance(r, Result) else Result.from_dict(r) for r in results]


# ---------------------------------------------------------------------------------------------
# The published JSON schema, generated from the models
# ---------------------------------------------------------------------------------------------

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one annotation: plain types, X | None, list[X], dict[str, X], records, Any."""
    if hint is Any:
        return {}
    if isinstance(hint, type) and issubclass(hint, Record):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {}  # reserved first: a record may refer to itself
            defs[hint.__name__] = _record_schema(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs)}
    if type(None) in args:  # X | None
        (inner,) = (a for a in args if a is not type(None))
        schema = _type_schema(inner, defs)
        if "type" in schema:
            return {**schema, "type": [schema["type"], "null"]}
        return {"anyOf": [schema, {"type": "null"}]}
    raise TypeError(f"no JSON schema for {hint!r}")


def _record_schema(cls: type[Record], defs: dict[str, Any]) -> dict[str, Any]:
    properties = {}
    for spec in dataclasses.fields(cls):
        if spec.name in ("extra", "keys"):
            continue
        hint = _stored_hint(cls, spec)
        properties[spec.name] = _type_schema(hint, defs)
        doc = _field_docs(cls).get(spec.name)
        if doc:
            properties[spec.name]["description"] = doc
    required = [name for name in cls.known() if _required_field(cls, name)]
    schema: dict[str, Any] = {"type": "object", "description": " ".join((cls.__doc__ or "").split()),
                              "properties": properties, "additionalProperties": True}
    return {**schema, "required": required} if required else schema


@functools.cache
def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under the fields of a class (field -> text), so the schema explains them."""
    import ast
    import inspect
    import textwrap

    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
    except (OSError, TypeError):
        return {}
    docs = {}
    for statement, following in zip(body, body[1:], strict=False):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _status_rules() -> list[dict[str, Any]]:
    """The rules that depend on a result's status and version, as JSON schema conditionals."""
    def when(statuses: tuple[str, ...], then: dict[str, Any]) -> dict[str, Any]:
        return {"if": {"properties": {"status": {"enum": list(statuses)}}, "required": ["status"]}, "then": then}

    trained = tuple(s for s in WITH_NUMBERS if s != "baseline")
    with_reason = tuple(s for s in STATUSES if s not in WITH_NUMBERS)
    return [
        when(WITH_NUMBERS, {"required": list(NEEDED_WITH_NUMBERS)}),
        when(trained, {"required": list(NEEDED_WHEN_TRAINED)}),
        when(with_reason, {"properties": {"reason": {"minLength": 1}}}),
        when(WITHOUT_METRICS, {"properties": {"metrics": {"maxProperties": 0}}}),
        {"if": {"properties": {"schema_version": {"const": SCHEMA_VERSION}}, "required": ["schema_version"]},
         "then": {"properties": {"target": {"required": ["higher_is_better"]}}}},
    ]


def json_schema() -> dict[str, Any]:
    """The JSON schema of a result file (every version bench reads), generated from `Result`."""
    defs: dict[str, Any] = {}
    _type_schema(Result, defs)
    top = defs.pop("Result")
    top["properties"]["schema_version"] = {"enum": list(READABLE_VERSIONS), "description": (
        f"{SCHEMA_VERSION} is written; older versions are read and upgraded (bench.results.upgrade)")}
    top["properties"]["status"] = {"enum": list(STATUSES)}
    top["properties"]["metrics"]["additionalProperties"] = {"type": "object"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "bench cell result",
        **top,
        "allOf": _status_rules(),
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """The schema as the committed bench/result.schema.json holds it."""
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.results --schema > bench/result.schema.json`: print the generated schema."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--schema"]:
        print("usage: python -m bench.results --schema", file=sys.stderr)
        return 2
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
