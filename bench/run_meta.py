"""run.json: what a run was asked, and on what it ran. One writer (`RunMeta.write`) and one reader
(`RunMeta.read`); no other code parses the file.

`bench run` writes it once, before the first cell (bench/harness/runner.py), and `--seeds auto`
rewrites its `seeds_auto` after every round; `--resume` reads it back to continue the run as it
was started (matrix, filters, seeds, executor, the nodes it was planned for), and `bench report`
takes the command, matrix, filters, environment and peak FLOP/s from it. `bench tune` and
`bench compare --recheck` write one for their runs, and scripts/slurm-multinode.sbatch one with the
command and environment alone (bench/harness/peak.py).

On disk it is a JSON object of the fields below that are recorded (None: not written), in this
order; keys this version does not know are kept (`extra`) and written back, so a run.json of any
version reads and rewrites whole.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.results import write_json_atomic

RUN_JSON = "run.json"

AUTO = "auto"
"""`seeds` of a `--seeds auto` run."""


def run_json(run_dir: Path) -> Path:
    """Where a run folder keeps its run.json."""
    return Path(run_dir) / RUN_JSON


class RunMetaError(BenchError):
    """A run.json that exists but cannot be used: `problem` says why (unreadable, not a JSON object,
    a field of the wrong type)."""

    def __init__(self, path: Path, problem: str, unreadable: bool = False) -> None:
        self.path, self.problem, self.unreadable = path, problem, unreadable
        super().__init__(f"{path}: {'not readable JSON' if unreadable else 'damaged'} ({problem})")


@dataclass
class RunMeta:
    """The contents of a run's run.json."""

    matrix: str | None = None
    """The matrix the cells came from (a name or a YAML path); a `--resume` must name the same one."""
    command: str | None = None
    """The command line that started the run, as the report prints it."""
    filters: dict[str, str | None] | None = None
    """`bench run`'s --workload, --config and --precision (None where not given)."""
    seeds: int | str | None = None
    """--seeds: a count, "auto", or None for the matrix's own. Written with `filters` (a `bench run`
    or `bench tune` records both, null included) or when not None."""
    seeds_auto: dict[str, Any] | None = None
    """`--seeds auto`: the loop's record (bench/analysis/seeds_auto.py record), checked where it is
    resumed (bench/commands/run_auto.py recorded)."""
    executor: dict[str, Any] | None = None
    """The executor options the run was started with (ExecutorOptions.describe()), kept by --resume."""
    planned_for: dict[str, Any] | None = None
    """`--gpus`: the declared nodes the cells were planned for (Host.record()), kept by --resume."""
    tune: dict[str, Any] | None = None
    """`bench tune`: the stage (pilot, race, to-target) and variant this run folder holds."""
    cells: list[str] | None = None
    """`bench compare --recheck`: the keys of the cells it ran again."""
    environment: dict[str, Any] | None = None
    """The host the run started on (bench/harness/measure.py environment) and its measured
    `peak_flops`, for MFU."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept as they were."""

    @property
    def peak_flops(self) -> dict[str, Any] | None:
        """The peak FLOP/s measured as the run started (environment's `peak_flops`), None if not recorded."""
        return (self.environment or {}).get("peak_flops")

    def to_json(self) -> dict[str, Any]:
        """The JSON object run.json holds."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if f.name == "environment":
                out.update(self.extra)
            if value is not None or (f.name == "seeds" and self.filters is not None):
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, raw: Any, path: Path) -> RunMeta:
        """The fields of a run.json object; RunMetaError when it is not an object or a field has
        the wrong type."""
        if not isinstance(raw, dict):
            raise RunMetaError(path, "not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        meta = cls(**{k: v for k, v in raw.items() if k in known},
                   extra={k: v for k, v in raw.items() if k not in known})
        problem = meta._problem()
        if problem:
            raise RunMetaError(path, problem)
        return meta

    def _problem(self) -> str | None:
        if self.matrix is not None and (not isinstance(self.matrix, str) or not self.matrix):
            return f"'matrix' must name the matrix, got {self.matrix!r}"
        filters = self.filters
        if filters is not None and (not isinstance(filters, dict)
                                    or not all(v is None or isinstance(v, str) for v in filters.values())):
            return f"'filters' must map workload/config/precision to names, got {filters!r}"
        seeds = self.seeds
        if seeds not in (None, AUTO) and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
            return f"'seeds' must be a positive count, 'auto' or null, got {seeds!r}"
        for name in ("executor", "planned_for", "tune", "environment"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                return f"'{name}' must be a JSON object, got {getattr(self, name)!r}"
        if self.command is not None and not isinstance(self.command, str):
            return f"'command' must be a string, got {self.command!r}"
        return None

    @classmethod
    def read(cls, run_dir: Path) -> RunMeta | None:
        """The run.json of `run_dir`; None when it has none, RunMetaError when it cannot be used."""
        path = run_json(run_dir)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunMetaError(path, getattr(exc, "strerror", None) or str(exc).splitlines()[0], unreadable=True) from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunMetaError(path, str(exc).splitlines()[0], unreadable=True) from None
        return cls.from_json(raw, path)

    def write(self, run_dir: Path) -> None:
        """Write (or rewrite) the run's run.json, atomically."""
        self.write_file(run_json(run_dir))

    def write_file(self, path: Path) -> None:
        """Write this record to `path` (a run.json written outside a run folder's own writer)."""
        write_json_atomic(Path(path), self.to_json())
