"""A matrix's configuration, checked once when the matrix is loaded, and the command line's
overrides of it.

`MatrixConfig` is what bench/harness/matrix.py `load_config` makes of a matrix YAML: its cells and
its `executor:` section (`ExecutorOptions`, checked by `executor_options` as the matrix is read).
`bench run` applies its flags to it (`MatrixConfig.executor_with`: a resumed run's recorded options
over the matrix's, the command line's over both, the whole checked again) and hands the result to
the runner (bench/harness/runner.py), which picks the executor from it (bench/harness/executors/).

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

from bench.cells import Cell
from bench.errors import BenchError

EXECUTORS = ("local", "slurm")
CLUSTERS = ("slurm", "local")


@dataclass
class ExecutorOptions:
    """How and where the cells of a run execute (the matrix's `executor:` section, then --flags)."""

    type: str = "local"
    """`local` (this host) or `slurm` (a job per cell through submitit); --executor."""
    parallel: int = 1
    """Local only: up to this many launches at once, each pinned to its own slots; --parallel (not in
    the matrix: how many cells share a host is the command's choice)."""
    partition: str | None = None
    """SLURM: the partition to submit to (sbatch --partition)."""
    account: str | None = None
    """SLURM: the account to charge (sbatch --account)."""
    qos: str | None = None
    """SLURM: the quality of service (sbatch --qos)."""
    max_jobs: int = 8
    """SLURM: at most this many jobs of the run at once (each job array's --array=...%max_jobs)."""
    cpus_per_rank: int = 4
    """SLURM: CPUs per rank of a cell (--cpus-per-task = ranks per node x this)."""
    mem_per_rank_gb: float = 16.0
    """SLURM: memory per rank of a cell, in GB (--mem = ranks per node x this)."""
    time_margin_min: int = 5
    """SLURM: minutes added to the cell's timeout_s for the job's --time."""
    sbatch: dict[str, Any] = field(default_factory=dict)
    """SLURM: any further sbatch option, as submitit passes it ({constraint: a100}); --sbatch KEY=VALUE."""
    cluster: str = "slurm"
    """SLURM: `slurm`, or `local` for submitit's LocalExecutor (the same code path on this host)."""
    exclusive: bool = True
    """Each job has its nodes to itself (sbatch --exclusive): a benchmark shares no node."""

    def describe(self) -> dict[str, Any]:
        """What run.json records of the executor (so that --resume keeps it)."""
        return dataclasses.asdict(self)


SECTION_KEYS = {f.name for f in dataclasses.fields(ExecutorOptions)} - {"parallel"}
_WHOLE = ("max_jobs", "cpus_per_rank", "time_margin_min")


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


@dataclass
class MatrixConfig:
    """A matrix as bench/harness/matrix.py load_config read and checked it, once."""

    name: str
    """The matrix as given: a name of bench/configs/matrix/ or the path of a YAML file."""
    path: Path
    """The YAML file it was read from."""
    cells: list[Cell]
    """Its cells in matrix order (per seed: the training cells, then the workload's baseline cell)."""
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    """Its `executor:` section, checked; the defaults (local, one launch at a time) where it has none."""

    def executor_with(self, cli: dict[str, Any], recorded: dict[str, Any] | None = None) -> ExecutorOptions:
        """The executor options of a run of this matrix: a resumed run's `recorded` options
        (run.json) over the matrix's, the command line's (`cli`, None: not given) over both; checked
        as a whole, before anything is planned or submitted. `parallel` is the command line's, else
        the resumed run's."""
        recorded = recorded or {}
        section = {k: v for k, v in dataclasses.asdict(self.executor).items() if k != "parallel"}
        section.update({k: v for k, v in recorded.items() if k != "parallel"})
        cli = {**cli, "parallel": cli.get("parallel") if cli.get("parallel") is not None else recorded.get("parallel")}
        return executor_options(section, cli, f"{self.name}: executor")
