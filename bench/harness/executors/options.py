"""The executor options of a run: which executor runs its cells and how (bench/harness/executors/).

They come from the command line and from the `executor:` section of the matrix YAML
(bench/harness/matrix.py accepts that key and leaves it to this module); the command line wins.
Every value is checked here (`executor_options`), before anything is planned or submitted.

    executor:
      type: slurm            # the default for --executor (local when absent)
      partition: gpu
      account: my-project
      qos: normal
      max_jobs: 8            # concurrency limit of each job array (sbatch --array=...%8)
      cpus_per_rank: 8       # CPUs each rank of a cell gets (--cpus-per-task = ranks per node x this)
      mem_per_rank_gb: 32
      time_margin_min: 5     # added to the cell's timeout_s for the job's --time
      sbatch: {constraint: a100, exclusive: ""}   # any further sbatch option, as submitit passes it
      cluster: slurm         # `local`: submitit's LocalExecutor, the same code path on this machine
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError
from bench.paths import MATRIX_CONFIGS_DIR

EXECUTORS = ("local", "slurm")
CLUSTERS = ("slurm", "local")


@dataclass
class ExecutorOptions:
    """How and where the cells of a run execute (see the module docstring for each option)."""

    type: str = "local"
    parallel: int = 1
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    max_jobs: int = 8
    cpus_per_rank: int = 4
    mem_per_rank_gb: float = 16.0
    time_margin_min: int = 5
    sbatch: dict[str, Any] = field(default_factory=dict)
    cluster: str = "slurm"
    exclusive: bool = True
    """Each job has its nodes to itself (sbatch --exclusive): a benchmark shares no node."""

    def describe(self) -> dict[str, Any]:
        """What run.json records of the executor (so that --resume keeps it)."""
        return dataclasses.asdict(self)


SECTION_KEYS = {f.name for f in dataclasses.fields(ExecutorOptions)} - {"parallel"}
_WHOLE = ("max_jobs", "cpus_per_rank", "time_margin_min")


def matrix_executor_section(matrix: str) -> dict[str, Any]:
    """The `executor:` section of a matrix (a name or a YAML path), {} when it has none. The matrix
    itself has been read (and its errors reported) by bench/harness/matrix.py already."""
    path = Path(matrix)
    if not path.suffix:
        path = MATRIX_CONFIGS_DIR / f"{matrix}.yaml"
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    section = spec.get("executor") if isinstance(spec, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise BenchError(f"{path}: executor must be a mapping of {', '.join(sorted(SECTION_KEYS))}, got {section!r}")
    return section


def executor_options(section: dict[str, Any], cli: dict[str, Any], where: str = "executor") -> ExecutorOptions:
    """Options from the matrix's section overridden by the command line's (None = not given);
    every value checked here, before anything is planned or submitted."""
    unknown = set(section) - SECTION_KEYS
    if unknown:
        raise BenchError(f"{where}: unknown option(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"valid: {', '.join(sorted(SECTION_KEYS))}")
    merged = {**section, **{k: v for k, v in cli.items() if v is not None}}
    if isinstance(section.get("sbatch"), dict) and cli.get("sbatch"):
        merged["sbatch"] = {**section["sbatch"], **cli["sbatch"]}
    options = ExecutorOptions(**merged)
    if options.type not in EXECUTORS:
        raise BenchError(f"{where}: executor {options.type!r} is not one of {', '.join(EXECUTORS)}")
    if options.cluster not in CLUSTERS:
        raise BenchError(f"{where}: cluster {options.cluster!r} is not one of {', '.join(CLUSTERS)}")
    for name in ("partition", "account", "qos"):
        value = getattr(options, name)
        if value is not None and (not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value)):
            raise BenchError(f"{where}: {name} must be one name without spaces, got {value!r}")
    for name in (*_WHOLE, "parallel"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "time_margin_min" else 1):
            raise BenchError(f"{where}: {name} must be a whole number of at least "
                             f"{0 if name == 'time_margin_min' else 1}, got {value!r}")
    if isinstance(options.mem_per_rank_gb, bool) or not isinstance(options.mem_per_rank_gb, (int, float)) \
            or not math.isfinite(options.mem_per_rank_gb) or options.mem_per_rank_gb <= 0:
        raise BenchError(f"{where}: mem_per_rank_gb must be a positive number, got {options.mem_per_rank_gb!r}")
    if not isinstance(options.sbatch, dict) or not all(isinstance(k, str) and k for k in options.sbatch):
        raise BenchError(f"{where}: sbatch must map sbatch option names to values, got {options.sbatch!r}")
    if not isinstance(options.exclusive, bool):
        raise BenchError(f"{where}: exclusive must be true or false, got {options.exclusive!r}")
    if options.type == "slurm" and options.parallel > 1:
        raise BenchError("--parallel is for the local executor; on SLURM, max_jobs limits how many cells run at once")
    return options


def parse_sbatch_options(pairs: list[str] | None) -> dict[str, str] | None:
    """--sbatch KEY=VALUE (repeatable) -> {KEY: VALUE}; KEY alone means a flag without a value."""
    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not key:
            raise BenchError(f"--sbatch {pair!r}: expected OPTION=VALUE, e.g. --sbatch constraint=a100")
        out[key] = value
    return out
