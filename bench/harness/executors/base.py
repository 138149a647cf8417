"""What every executor shares: the planned launches it is handed, the protocol it implements, and
how a launch's files are prepared and its results collected.

Locally a launch runs the seeds of one configuration (`launch_groups`): cells that differ in seed
only share one `accelerate launch`, whose worker runs them in turn (bench/harness/worker.py);
`collect_launch` then makes each seed's result of what the launch left. An executor gets the
runnable cells as `PlannedLaunch`es and calls `on_done(cell, result)` once per cell whose result is
in; the runner (bench/harness/runner.py) keeps the rest: planning, resume, the run folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.cells import Cell
from bench.harness.host import usable_cores
from bench.harness.launch import Finished, tail
from bench.harness.measure import load_average
from bench.harness.mlperf_log import mllog_path
from bench.results import make_result, write_json_atomic

if TYPE_CHECKING:
    from bench.harness.topology import Topology

OnDone = Callable[[Cell, dict[str, Any]], None]
"""What an executor calls once per cell whose result is in (written to cells/<id>.json already)."""


# -- what an executor is handed: planned cells, grouped into launches -------------------------------


@dataclass
class PlannedCell:
    """One cell as the runner planned it (bench.harness.runner.plan): what runs, under which
    topology, why it is skipped (None: it runs), and the launch it shares with its seeds."""

    cell: Cell
    topology: Topology | None
    """None for a baseline cell, which no accelerate launch runs."""
    skip: str | None
    launch: str = ""
    """The launch's name (launch_id): the configuration, and its seeds when they share it."""
    seeds: int = 1
    """Cells in that launch."""
    commands: list[str] = field(default_factory=list)
    """The exact launch command(s), as the dry run prints them."""


@dataclass
class PlannedLaunch:
    """The planned cells that share one `accelerate launch` (the seeds of one configuration, in
    seed order), or one cell alone: what an executor receives."""

    items: list[PlannedCell]

    @property
    def cells(self) -> list[Cell]:
        return [item.cell for item in self.items]

    @property
    def topology(self) -> Topology | None:
        """The launch's topology (its seeds share it); None for a baseline cell."""
        return self.items[0].topology

    @property
    def id(self) -> str:
        return launch_id(self.cells)

    def __iter__(self) -> Iterator[PlannedCell]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Executor(Protocol):
    """Runs planned launches into the run folder (bench/harness/executors/local.py, parallel.py,
    slurm.py). `shares_launches`: whether it takes the seeds of a configuration as one launch
    (launch_groups) or every cell as a launch of its own (`one_launch_per_cell`)."""

    shares_launches: bool

    def run(self, launches: list[PlannedLaunch], on_done: OnDone) -> bool:
        """Run every launch, calling `on_done(cell, result)` as each cell's result is in; True
        when interrupted (Ctrl-C), after the results already in were handed over."""
        ...


def shares_launch(cell: Cell) -> bool:
    """Whether the cell's seeds may share one launch (bench/harness/worker.py runs them in turn).
    Baselines launch per seed (no accelerate to pay for); so do compile cells, which must each pay
    a cold compile, tracked cells (`--log-with`), whose tracker run ends with the process, and fp16
    and fp8 cells on a GPU: accelerate builds their loss scaler once per Accelerator and
    `free_memory` keeps it, so a later seed would start from an earlier one's loss scale. fp16 on a
    CPU topology builds no scaler (accelerate computes fp32 there) and is refused as unsupported
    before any seed trains, so its seeds share a launch: apart, a 5-seed smoke run spent 15
    launches, 2.3 min, refusing the traffic autoencoder's fp16 cells."""
    if cell.kind != "train" or cell.compile != "none" or cell.tracking or cell.precision == "fp8":
        return False
    if cell.precision == "fp16":
        from bench.harness.topology import load_topology

        return load_topology(cell.topology).use_cpu
    return True


def launch_groups(items: list[PlannedCell]) -> list[PlannedLaunch]:
    """The planned cells in launches: the cells that differ in seed only
    (and in their checkpoint folder, which holds the seed) go in one launch, in the order of their
    first cell; every other cell alone."""
    groups: dict[str, list[PlannedCell]] = {}
    for item in items:
        cell: Cell = item.cell
        key = cell.id
        if shares_launch(cell):
            key = json.dumps({k: v for k, v in cell.to_dict().items() if k not in ("seed", "id", "save_checkpoint")},
                             sort_keys=True, default=str)
        groups.setdefault(key, []).append(item)
    return [PlannedLaunch(group) for group in groups.values()]


def one_launch_per_cell(items: list[PlannedCell]) -> list[PlannedLaunch]:
    """Every planned cell a launch of its own, in their order (a SLURM job per cell)."""
    return [PlannedLaunch([item]) for item in items]


def launch_id(cells: list[Cell]) -> str:
    """A launch's name: its cell's id alone, or the seeds' configuration and seeds (…__seeds-0-1-2)."""
    if len(cells) == 1:
        return cells[0].id
    return f"{cells[0].key.without_seed().id}__seeds-{'-'.join(str(cell.seed) for cell in cells)}"


# -- one launch: the files its seeds are given before launch and the results made of what it left ---


@dataclass
class CellFiles:
    cell_file: Path
    out: Path
    log: Path
    mllog: Path


@dataclass
class LaunchFiles:
    """The files of one launch: each seed's (in launch order) and the log they share."""

    cells: list[Cell]
    files: list[CellFiles]
    log: Path

    @property
    def id(self) -> str:
        return launch_id(self.cells)

    @property
    def timeout_s(self) -> float:
        """A shared launch gets every seed's timeout: the per-cell timeout_s times the seeds it runs
        (the seeds of a launch have the same timeout_s). One seed: the cell's own timeout."""
        return sum(cell.timeout_s for cell in self.cells)

    def also(self) -> list[tuple[Path, Path, Path | None]]:
        """The seeds after the first, as launch_commands(also=...) takes them."""
        return [(f.cell_file, f.out, f.mllog) for f in self.files[1:]]


def prepare_cell(cell: Cell, run_dir: Path) -> CellFiles:
    """Write the cell's launch file and clear what an earlier try left (result, log, MLPerf log)."""
    files = CellFiles(run_dir / "launch" / f"{cell.id}.json", run_dir / "cells" / f"{cell.id}.json",
                      run_dir / "logs" / f"{cell.id}.log", mllog_path(run_dir, cell.id))
    write_json_atomic(files.cell_file, cell.to_dict())
    files.out.unlink(missing_ok=True)  # a failed result from an earlier try is replaced
    files.log.unlink(missing_ok=True)
    files.mllog.unlink(missing_ok=True)  # like the result: an earlier try's log must not stand for this one
    return files


def prepare_launch(cells: list[Cell], run_dir: Path) -> LaunchFiles:
    """Every seed's files (prepare_cell). A shared launch logs to logs/<launch id>.log, and each
    seed's logs/<cell>.log is a link to it: what the cell's processes printed, with the other seeds'."""
    files = [prepare_cell(cell, run_dir) for cell in cells]
    if len(cells) == 1:
        return LaunchFiles(cells, files, files[0].log)
    log = run_dir / "logs" / f"{launch_id(cells)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    for f in files:
        f.log.symlink_to(log.name)
    return LaunchFiles(cells, files, log)


def collect_launch(launch: LaunchFiles, finished: Finished, load_start: list[float] | None,
                   extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each seed's result once the launch's processes are gone (collect_result), in launch order.

    The launch's wall time is split so that the seeds' cell_wall_s add up to it: each seed that
    wrote its result gets its own seconds (`own_s`, timed by the worker from the seed's start to its
    result) plus an equal share of the rest (imports, Accelerator, verification, teardown, and the
    part of a seed that never finished), which every seed of the launch gets. One seed: its
    cell_wall_s is the launch's wall time, as before launches were shared."""
    n = len(launch.cells)
    own = [((read_result(f.out) or {}).get("launch") or {}).get("own_s") for f in launch.files]
    fixed_share = max(0.0, finished.seconds - sum(o for o in own if isinstance(o, (int, float)))) / n
    results = []
    for cell, files, own_s in zip(launch.cells, launch.files, own, strict=True):
        share = {"seeds": n, "wall_s": round(finished.seconds, 3), "own_s": own_s, "fixed_share_s": round(fixed_share, 3),
                 "timeout_s": launch.timeout_s, "log": launch.log.name}
        wall = finished.seconds if n == 1 else (own_s if isinstance(own_s, (int, float)) else 0.0) + fixed_share
        results.append(collect_result(cell, files, finished, load_start, extra, share=share, wall_s=wall,
                                      others=[c.seed for c in launch.cells if c is not cell]))
    return results


def collect_interrupted(launch: LaunchFiles, finished: Finished, load_start: list[float] | None,
                        extra: dict[str, Any] | None = None) -> list[dict[str, Any] | None]:
    """Ctrl-C in a launch: the seeds whose result the worker had written keep it (collect_launch,
    with the launch's wall time so far); the others have none (None), and --resume runs them."""
    written = [read_result(f.out) is not None for f in launch.files]
    if not any(written):
        return [None] * len(written)
    results = collect_launch(launch, dataclasses.replace(finished, interrupted=False), load_start, extra)
    for done, files in zip(written, launch.files, strict=True):
        if not done:
            files.out.unlink(missing_ok=True)  # the failed result collect_launch wrote: the seed was not run
    return [result if done else None for result, done in zip(results, written, strict=True)]


def collect_result(cell: Cell, files: CellFiles, finished: Finished, load_start: list[float] | None,
                   extra: dict[str, Any] | None = None, *, share: dict[str, Any] | None = None,
                   wall_s: float | None = None, others: list[int] | None = None) -> dict[str, Any]:
    """The cell's result once its processes are gone: the worker's, with the launch's wall time and
    the host's load added (and `extra` top-level fields), or a failed one saying what happened.
    In a shared launch (collect_launch): `share` is its record (result["launch"]), `wall_s` this
    seed's part of its wall time, `others` the seeds it ran with."""
    host_load = {"start": load_start, "end": load_average(), "cores": usable_cores()}
    wall = round(finished.seconds if wall_s is None else wall_s, 3)
    launch = share or {"seeds": 1, "wall_s": round(finished.seconds, 3), "timeout_s": cell.timeout_s}
    timeout_s = launch["timeout_s"]
    existing = read_result(files.out)
    if existing is not None:
        # Launch to exit, every process of the cell: what the cell cost the matrix, as opposed
        # to the training clock inside it (imports, data, evaluation and teardown included).
        existing["cell_wall_s"] = wall
        existing["launch"] = {**(existing.get("launch") or {}), **launch}
        existing["host_load"] = host_load
        existing.update(extra or {})
        if finished.timed_out:  # written, then hung on the way out (or a later seed ran out): the numbers stand
            existing.setdefault("notes", []).append(f"processes killed at the {timeout_s:g} s timeout after writing")
        write_json_atomic(files.out, existing)
        return existing
    shared = f" (the launch it shared with seed(s) {', '.join(map(str, others))} ended before this seed's result)" \
        if others else ""
    if finished.timed_out:
        per_seed = f", {cell.timeout_s:g} s for each of its {launch['seeds']} seeds" if launch["seeds"] > 1 else ""
        reason = f"timed out after {timeout_s:g} s{per_seed}; all processes of the cell killed{shared}"
    else:
        reason = f"exit codes {finished.returncodes} and no result written{shared}"
    result = make_result(cell.to_dict(), "failed", reason, stderr_tail=tail(files.log),
                         cell_wall_s=wall, launch=launch, host_load=host_load, **(extra or {}))
    write_json_atomic(files.out, result)
    return result


def read_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
