"""What a cell is, without torch: the training budget, the cell, and the key that names it.

The harness, the analysis and the result files all share these definitions, so this module
imports nothing heavier than the standard library (and bench.paths).

A `CellKey` is a cell's identity: what its result file is named after (`CellKey.id`), what a
report groups seeds by and what `bench compare` matches a baseline and a candidate on
(`CellKey.without_seed()`). Everything that names a cell goes through it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.paths import safe_run_id_part

AxisValue = str | int | float | bool

AXIS_DEFAULTS: dict[str, AxisValue] = {"compile": "none", "grad_accum": 1, "checkpointing": "off", "scaling": "strong"}
"""The knob axes of the matrix (docs/knobs.md) with the value every cell had before they existed.
An axis at its default does not appear in a cell's id, so the ids of committed results keep
matching; a cell away from it gets `__<name>=<value>` before its seed."""


@dataclass
class Budget:
    """When to give up on the target. Whichever limit comes first ends training."""

    max_epochs: int = 50
    max_seconds: float = 120.0
    """Training-clock seconds (evaluation included), checked at each evaluation."""
    max_steps: int | None = None


def is_config_path(value: str) -> bool:
    """Whether a topology is given as the path of a config file rather than a built-in name."""
    return isinstance(value, str) and (value.endswith((".yaml", ".yml")) or "/" in value or os.sep in value)


def topology_label(value: str) -> str:
    """The short name a topology goes by in cell ids: a built-in's name, a user file's stem."""
    return safe_run_id_part(Path(value).stem) if is_config_path(value) else value


def _axes(pairs: Iterable[tuple[str, AxisValue]]) -> tuple[tuple[str, AxisValue], ...]:
    """The axes away from their default, sorted by name (so that the id does not depend on order)."""
    return tuple(sorted((name, value) for name, value in pairs if AXIS_DEFAULTS.get(name, object()) != value))


@dataclass(frozen=True, order=True)
class CellKey:
    """A cell's identity. `id` is the name of its result file and the `cell.id` of its result."""

    workload: str
    variant: str
    topology: str
    """The topology's label (`topology_label`): a built-in's name or a user config file's stem."""
    precision: str
    seed: int | None
    """None in a key that stands for every seed of a configuration (`without_seed`)."""
    kind: str = "train"
    axes: tuple[tuple[str, AxisValue], ...] = ()
    """Further axes as sorted (name, value) pairs; those at their AXIS_DEFAULTS value are dropped."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", _axes(self.axes))

    @property
    def id(self) -> str:
        if self.kind == "baseline":
            head = f"{self.workload}__baselines"
        else:
            head = f"{self.workload}-{self.variant}__{self.topology}__{self.precision}"
        axes = "".join(f"__{name}={value}" for name, value in self.axes)
        return head + axes + ("" if self.seed is None else f"__s{self.seed}")

    def without_seed(self) -> CellKey:
        """The key of the cell's configuration: what seeds are aggregated over and runs matched on."""
        return dataclasses.replace(self, seed=None)

    @classmethod
    def of(cls, cell: Mapping[str, Any]) -> CellKey:
        """The key of a cell as a result file or a launch file holds it (`Cell.to_dict`)."""
        axes = tuple((name, cell[name]) for name in AXIS_DEFAULTS if name in cell)
        return cls(cell["workload"], cell["variant"], topology_label(cell["topology"]), cell["precision"],
                   cell["seed"], cell.get("kind", "train"), axes)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Cell:
    """One thing to run: a workload variant under one topology and precision, with one seed."""

    workload: str
    variant: str
    topology: str
    precision: str
    seed: int
    budget: Budget = field(default_factory=Budget)
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "train"  # "train" (launched with accelerate) or "baseline" (classical models)
    timeout_s: float = 600.0
    save_checkpoint: str | None = None
    """Folder where the worker saves the trained model (workloads that support it)."""
    tracking: dict[str, str] | None = None
    """The Accelerate tracker the worker logs the cell to (`bench run --log-with`; bench/harness/trackers.py)."""
    compile: str = "none"
    """torch.compile through Accelerate's dynamo settings: "none" or "inductor" (docs/knobs.md)."""
    grad_accum: int = 1
    """Micro-steps per optimizer step (accelerator.accumulate); the global batch stays fixed."""
    checkpointing: str = "off"
    """Activation checkpointing of the model's blocks: "off" or "on" (workloads that can take it)."""
    scaling: str = "strong"
    """How the batch follows the processes: "strong" keeps the global batch (each of N processes
    takes 1/N of it), "weak" keeps each process's batch (params.device_batch; the global batch
    grows N-fold, the learning rate by sqrt of the growth): bench/harness/train.py weak_scaled."""

    @property
    def axes(self) -> tuple[tuple[str, AxisValue], ...]:
        """The knob axes as (name, value) pairs, in AXIS_DEFAULTS order."""
        return tuple((name, getattr(self, name)) for name in AXIS_DEFAULTS)

    @property
    def key(self) -> CellKey:
        return CellKey(self.workload, self.variant, topology_label(self.topology), self.precision, self.seed, self.kind,
                       self.axes)

    @property
    def id(self) -> str:
        return self.key.id

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # A knob at its default is left out, so that the cell files and results of every cell that
        # existed before the knob axes read exactly as they did (from_dict restores the default).
        for name, default in AXIS_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        data["id"] = self.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        data = {k: v for k, v in data.items() if k != "id"}
        data["budget"] = Budget(**data.get("budget", {}))
        return cls(**data)
