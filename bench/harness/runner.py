"""Run a list of cells into a run directory: plan (capability check), resume, and hand the launches
to an executor.

Layout of a run directory (results/<run-id>/):
    run.json              what was asked (matrix, filters, command, host): bench/run_meta.py RunMeta
    launch/<cell>.json    the cell as handed to the worker
    cells/<cell>.json     one result per cell (written atomically, by the worker or here)
    mllog/<cell>.log      a training cell's MLPerf log (bench/harness/mlperf_log.py)
    trackers/             what `--log-with` trackers write locally (bench/harness/trackers.py)
    logs/<cell>.log       everything the cell's processes printed; for the seeds of a shared launch,
                          a link to logs/<cell without seed>__seeds-0-1-2.log, the launch's log

The seeds of one configuration (cells that differ in seed only) share one launch
(bench/harness/executors/base.py launch_groups; the worker runs them in turn, bench/harness/worker.py):
its timeout is the cell's timeout_s times its seeds, each seed keeps its own result file, and a
crash or timeout fails only the seeds without a result. Baseline, compile and tracked cells launch
per seed; so does every cell under --executor slurm. The cells to run are handed, as launches,
to the executor the options name (bench/harness/executors/: local, parallel or SLURM); this module
keeps planning, resume and the run folder.

--resume keeps every completed cell (results.COMPLETED) and re-runs the rest, the seeds of one
configuration that are not completed in one launch again; it refuses, before
running anything, when the matrix now defines a completed cell differently (DEFINING), naming the
cell and the changed fields. A write that fails (a full disk) stops the run with one line; every
result is written atomically, so those already written stay whole for the next --resume.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import sys
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate
from tqdm import tqdm

from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.executors import executor_for, planned_launches
from bench.harness.executors.base import PlannedCell, launch_groups, one_launch_per_cell
from bench.harness.host import Host
from bench.harness.launch import format_command, launch_commands
from bench.harness.matrix import Cell, expected_verdict, skip_reason
from bench.harness.measure import environment
from bench.harness.mlperf_log import mllog_path
from bench.harness.peak import measure_peak_flops_apart
from bench.harness.topology import load_topology
from bench.paths import safe_run_id_part
from bench.results import COMPLETED, Result, make_result, result_path, write_json_atomic
from bench.run_meta import RunMeta, run_json


def plan(cells: list[Cell], run_dir: Path, host: Host) -> list[PlannedCell]:
    """For each cell: its id, skip reason (None = runnable) and the exact launch commands. The
    runnable cells that share a launch (launch_groups: the seeds of one configuration) share its
    commands; "launch" names the launch and "seeds" counts its cells."""
    planned = []
    for cell in cells:
        topology = load_topology(cell.topology) if cell.kind == "train" else None
        planned.append(PlannedCell(cell, topology, skip_reason(cell, topology, host)))
    for group in launch_groups([item for item in planned if not item.skip]) + one_launch_per_cell([i for i in planned if i.skip]):
        cells = group.cells
        also = [(_launch_file(run_dir, c), result_path(run_dir, c.id), mllog_path(run_dir, c.id)) for c in cells[1:]]
        commands = launch_commands(group.topology, cells[0].precision, _launch_file(run_dir, cells[0]),
                                   result_path(run_dir, cells[0].id), mllog_file=mllog_path(run_dir, cells[0].id),
                                   also=also)
        topology = group.topology
        env_note = "ACCELERATE_USE_CPU=1" if topology is not None and topology.use_cpu else ""
        for item in group:
            item.launch, item.seeds = group.id, len(cells)
            item.commands = [format_command(c, env_note, wrap=len(cells) > 1) for c in commands]
    return planned


def _launch_file(run_dir: Path, cell: Cell) -> Path:
    return run_dir / "launch" / f"{cell.id}.json"


def print_dry_run(planned: list[PlannedCell]) -> None:
    """One row per launch: its cells (the seeds that share it, one per line), what would happen,
    and its command(s)."""
    rows, launches = [], {}
    for item in planned:
        if item.skip:
            would = "skip: " + item.skip
        else:
            expected = expected_verdict(item.cell, item.topology)
            would = f"run; expect {expected}" if expected else "run"
            if item.seeds > 1:
                would += f" ({item.seeds} seeds, one launch)"
        if item.launch in launches:  # a later seed of a shared launch: listed in its launch's row
            launches[item.launch][0] += "\n" + item.cell.id
            continue
        launches[item.launch] = [item.cell.id, would, "\n".join(item.commands)]
        rows.append(launches[item.launch])
    print(tabulate(rows, headers=["cell", "would", "launch command(s)"], tablefmt="simple"))


def run_cells(cells: list[Cell], run_dir: Path, meta: RunMeta | dict[str, Any],
              options: ExecutorOptions | None = None, host: Host | None = None) -> list[dict[str, Any]]:
    """Run every cell not yet completed in `run_dir`; return all results in cell order. `options`
    other than the default (one local cell at a time) hand the launches to another executor.
    `host`: what the cells are planned against (GPUs, bf16, fp8), where it is not this host (a
    SLURM partition's nodes, declared); default: this host, detected. `meta`: what run.json records
    of a new run (a dict of its keys is read as RunMeta reads the file)."""
    if not isinstance(meta, RunMeta):
        meta = RunMeta.from_json(meta, run_json(run_dir))
    host = host or Host.detect()
    refuse_changed_cells(cells, run_dir)
    planned = plan(cells, run_dir, host)
    results: dict[str, dict[str, Any]] = {}
    interrupted = False
    bar = tqdm(total=len(planned), unit="cell", file=sys.stderr, dynamic_ncols=True, disable=None)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        options = options or ExecutorOptions()
        if options.type != "slurm":  # SLURM jobs outlive their runner and may be writing right now
            remove_unfinished_writes(run_dir)
        if not run_json(run_dir).exists():
            if meta.environment is None:  # else measured on the node the cells run on (--probe-node)
                # Peak FLOP/s for MFU, measured once before any cell runs (bench/harness/peak.py; ~1-2 s on a CPU).
                # In a child process: the runner must not hold a CUDA context (docs/gpu.md).
                _, peaks = measure_peak_flops_apart()
                meta = dataclasses.replace(meta, environment={**environment(), "peak_flops": peaks})
            meta.write(run_dir)
        interrupted = _run_todo(planned, run_dir, options, results, bar)
    except KeyboardInterrupt:
        interrupted = True
    except OSError as exc:
        # A full disk (or a folder gone read-only) ends the run, not the results: every result is
        # written atomically, so what was written stays whole and --resume takes it from there.
        raise BenchError(_stopped_by(exc, run_dir, len(planned))) from None
    finally:
        bar.close()
    if interrupted:
        print(f"interrupted: {len(results)} of {len(planned)} cells kept in {run_dir}; continue with --resume {run_dir.name}")
        raise KeyboardInterrupt
    return [results[item.cell.id] for item in planned if item.cell.id in results]


def remove_unfinished_writes(run_dir: Path) -> list[Path]:
    """Delete the temporary files of result writes that never finished (`write_atomic`'s
    `.NAME.json.*.tmp` beside run.json and in cells/): a runner or worker killed by SIGKILL
    mid-write cannot remove its own. Readers already ignore them. Only for a run whose writers all
    died with their runner (local launches die with it, bench/harness/lifeline.py): SLURM jobs
    outlive it, and a job's live write must not lose its file. Returns what went."""
    leftovers = [p for folder in (run_dir, run_dir / "cells") for p in folder.glob(".*.json.*.tmp") if p.is_file()]
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _run_todo(planned: list[PlannedCell], run_dir: Path, options: ExecutorOptions,
              results: dict[str, dict[str, Any]], bar: tqdm) -> bool:
    """The completed and skipped cells here, the rest launched: one launch per configuration's
    seeds here (or with --parallel), one SLURM job per cell there; True when interrupted (Ctrl-C)."""
    todo = []
    for item in planned:
        cell: Cell = item.cell
        existing = _load_existing(result_path(run_dir, cell.id))
        if existing and existing["status"] in COMPLETED:
            results[cell.id] = existing  # --resume: done before, not run again
            bar.update(1)
        elif item.skip:
            _done(results, bar, cell, make_result(cell.to_dict(), "skipped", item.skip), run_dir)
        else:
            todo.append(item)  # with --resume, the seeds of a launch not completed: launched together
    if not todo:
        return False

    def on_done(cell: Cell, result: dict[str, Any]) -> None:
        _done(results, bar, cell, result)

    executor = executor_for(options, run_dir, bar)
    return executor.run(planned_launches(executor, todo), on_done)


def _done(results: dict[str, dict[str, Any]], bar: tqdm, cell: Cell, result: dict[str, Any],
          run_dir: Path | None = None) -> None:
    """A cell's result is in: written here when `run_dir` is given (a skipped cell), else already."""
    if run_dir is not None:
        write_json_atomic(result_path(run_dir, cell.id), result)
    results[cell.id] = result
    bar.update(1)
    wall = f" [{result['cell_wall_s']:.0f} s]" if result.get("cell_wall_s") is not None else ""
    bar.write(f"{cell.id}: {_status_line(result)}{wall}")


def _stopped_by(exc: OSError, run_dir: Path, total: int) -> str:
    what = f"{exc.filename}: {exc.strerror}" if exc.filename else (exc.strerror or str(exc))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what += " (the disk is full)"
    written = len(list((run_dir / "cells").glob("*.json")))
    return (
        f"{what}; stopped after {written} of {total} cells, their results kept in {run_dir}; "
        f"make room, then continue with --resume {run_dir.name}"
    )


# What defines a cell's result. A completed cell stored with other values than the matrix gives
# now would put two settings in one report row; the timeout and checkpoint folder do not count.
DEFINING = ("workload", "variant", "kind", "seed", "topology", "precision", "budget", "params")


def definition_changes(stored: dict[str, Any], cell: Cell) -> list[str]:
    """How a stored cell definition differs from `cell`: ["budget.max_steps 30 -> 40", ...]."""
    now = cell.to_dict()
    if not isinstance(stored, dict):
        return [f"cell definition {stored!r} -> {cell.id}"]
    changes = []
    for key in DEFINING:
        old, new = stored.get(key), now.get(key)
        if key == "params":
            old, new = _effective_params(cell.workload, old), _effective_params(cell.workload, new)
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new), key=str):
                if old.get(sub, _ABSENT) != new.get(sub, _ABSENT):
                    changes.append(f"{key}.{sub} {_show(old.get(sub, _ABSENT))} -> {_show(new.get(sub, _ABSENT))}")
        elif old != new:
            changes.append(f"{key} {_show(old)} -> {_show(new)}")
    return changes


_ABSENT = object()


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(unset)"
    return repr(value) if isinstance(value, str) else str(value)


def _effective_params(workload: str, overrides: Any) -> Any:
    """The workload's full params for these overrides, so that `target: 0.55` written out equals
    the default 0.55 left unsaid; the raw overrides when they are not valid (any more)."""
    from workloads import workload_class
    from workloads.base import params_from_dict

    if not isinstance(overrides, dict):
        return overrides
    try:
        return dataclasses.asdict(params_from_dict(workload_class(workload).Params, overrides, workload))
    except (BenchError, TypeError):
        return overrides


def refuse_changed_cells(cells: list[Cell], run_dir: Path) -> None:
    """--resume: refuse, before running anything, if a completed cell was run with another
    definition than the matrix gives it now (params, budget, topology, precision...)."""
    changed = []
    for cell in cells:
        existing = _load_existing(result_path(run_dir, cell.id))
        if isinstance(existing, dict) and existing.get("status") in COMPLETED:
            changes = definition_changes(existing.get("cell"), cell)
            if changes:
                changed.append((cell.id, changes))
    if changed:
        (first, changes), more = changed[0], len(changed) - 1
        others = f" (and {more} more cell{'s' if more > 1 else ''})" if more else ""
        raise BenchError(
            f"cannot resume run {run_dir.name!r}: completed cell {first} no longer matches the matrix "
            f"(stored -> now: {', '.join(changes)}){others}, and its report would mix two settings; "
            f"start a new run, or delete the changed cells' results from {run_dir / 'cells'} to run them again"
        )


def _load_existing(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _status_line(result: dict[str, Any]) -> str:
    status = result["status"]
    if status in ("converged", "not_converged"):
        metric = result["target"]["metric"]
        curve = result.get("curve") or [{}]
        ttt = result["timings"].get("time_to_target_s")
        return (
            f"{status} val {metric} {curve[-1].get(metric, float('nan')):.3f} "
            f"(target {result['target']['value']}), "
            + (f"time-to-target {ttt:.1f} s" if ttt is not None else f"{result['timings']['train_seconds']:.1f} s")
        )
    if status == "baseline":
        return "baselines: " + ", ".join(r["name"] for r in result.get("baselines", []))
    return f"{status}: {result.get('reason', '')}"


def summary_table(results: list[dict[str, Any]]) -> str:
    """The table printed at the end of `bench run`: one row per cell, baselines marked."""
    rows = []
    for r in results:
        cell = r["cell"]
        if r["status"] == "baseline":
            for row in r.get("baselines", []):
                test = row["metrics"].get("test", {})
                rows.append(
                    [cell["workload"], f"{row['name']} (baseline)", "-", "-", cell["seed"], "baseline",
                     _fmt(test.get("f1")), _fmt(test.get("roc_auc")), _fmt(test.get("accuracy")),
                     "-", "-", "-", f"fit {row['fit_seconds']:.1f} s"]
                )
            continue
        typed = Result.from_dict(r)
        test = (typed.metrics or {}).get("test", {})
        rows.append(
            [
                cell["workload"],
                cell["variant"],
                cell["topology"],
                cell["precision"],
                cell["seed"],
                typed.status,
                _fmt(test.get("f1")),
                _fmt(test.get("roc_auc")),
                _fmt(test.get("accuracy")),
                _fmt(typed.timings.time_to_target_s, 1),
                _fmt(typed.throughput.samples_per_s, 0),
                _fmt(typed.memory.peak_rss_mb_max, 0),
                (typed.reason or "")[:70],
            ]
        )
    headers = ["workload", "model", "topology", "precision", "seed", "status", "test F1", "test AUC",
               "test acc", "TTT s", "samples/s", "peak RSS MB", "note"]
    return tabulate(rows, headers=headers, tablefmt="github")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def new_run_id(matrix: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{safe_run_id_part(Path(matrix).stem)}"
