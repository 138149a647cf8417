"""Confirm speed regressions by running the cells again (`bench compare --recheck`).

On a shared machine a burst of someone else's work can slow a few seconds of one cell. Measured
here: two runs of the same commit on an idle 2-core VM, and in one of them the 2-node fp32
sentiment cell took 0.78-0.93 s for its first seven steady steps instead of 0.34-0.43 s, then
recovered: +65% on the median step, with a Mann-Whitney p of 1e-5, because inside one cell the
slow steps are real. No threshold tells that from a real slowdown; running the cell again does.
A speed regression stands only if the re-run shows it too, on the same metric.

Only cells whose every regression is a speed metric are re-run. Status and quality are a function
of the seed on a given host (the smoke cells reproduce their metrics to the last digit), and a
memory peak does not vary with load, so a regression there fails at once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from bench.analysis.gate.against_baseline import (
    SPEED_AND_MEMORY,
    UNCONFIRMED,
    BaselineSettings,
    GateVerdict,
    compare_results,
    group_key,
)
from bench.analysis.gate.judge import REGRESSION
from bench.cells import Cell
from bench.errors import BenchError
from bench.results import Result, as_results

SPEED_METRICS = frozenset(m.name for m in SPEED_AND_MEMORY if m.kind == "speed")


def cells_to_recheck(verdicts: list[GateVerdict]) -> list[str]:
    """Keys of the cells whose regressions are all speed metrics, in verdict order."""
    metrics: dict[str, list[str]] = {}
    for v in verdicts:
        if v.verdict == REGRESSION:
            metrics.setdefault(v.cell, []).append(v.metric)
    return [key for key, names in metrics.items() if all(name in SPEED_METRICS for name in names)]


def launched_cells(run_dir: Path, keys: list[str]) -> list[Cell]:
    """The cells of `run_dir` with these keys, as the run launched them (its launch/ files)."""
    files = sorted((run_dir / "launch").glob("*.json")) if run_dir.is_dir() else []
    by_key: dict[str, list[Cell]] = {}
    for path in files:
        cell = Cell.from_dict(json.loads(path.read_text()))
        by_key.setdefault(cell.key.without_seed().id, []).append(cell)
    missing = sorted(set(keys) - set(by_key))
    if missing:
        raise BenchError(f"--recheck needs the candidate run directory made by `bench run`; "
                         f"no launch file for {', '.join(missing)} under {run_dir}")
    return [cell for key in keys for cell in by_key[key]]


def rerun(run_dir: Path, keys: list[str]) -> tuple[Path, list[Result]]:
    """Launch the cells again into a run directory inside `run_dir` (where neither `bench report`
    nor `latest` looks); return it and their results."""
    from bench.harness.runner import run_cells
    from bench.run_meta import RunMeta

    # A re-run measures again; it saves no model and logs to no tracker (that would mix two runs of a cell there).
    cells = [dataclasses.replace(cell, save_checkpoint=None, tracking=None) for cell in launched_cells(run_dir, keys)]
    recheck_dir = run_dir / f"recheck-{time.strftime('%Y%m%d-%H%M%S')}"
    meta = RunMeta(matrix=f"recheck of {run_dir.name}", command="bench compare --recheck", cells=keys)
    return recheck_dir, as_results(run_cells(cells, recheck_dir, meta))


def confirm(first: list[GateVerdict], second: list[GateVerdict], rechecked: list[str]) -> list[GateVerdict]:
    """The first verdicts, with each speed regression of a re-checked cell kept only if the re-run
    regresses on the same metric; otherwise it becomes `not confirmed` (not failing)."""
    again = {(v.cell, v.metric): v for v in second}
    out = []
    for v in first:
        if v.cell in rechecked and v.verdict == REGRESSION:
            redo = again.get((v.cell, v.metric))
            if redo is None:  # the re-run failed or measured nothing: it cannot clear the cell
                v = dataclasses.replace(v, why=f"{v.why}; re-run gave no figure ({_status_of(second, v.cell)})")
            elif redo.verdict == REGRESSION:
                v = dataclasses.replace(v, why=f"{v.why}; confirmed, re-run {redo.change}")
            else:
                v = dataclasses.replace(v, verdict=UNCONFIRMED, why=f"{v.why}; re-run {redo.change or redo.candidate} ({redo.verdict})")
        out.append(v)
    return out


def _status_of(verdicts: list[GateVerdict], cell: str) -> str:
    status = next((v for v in verdicts if v.cell == cell and v.metric == "status"), None)
    return f"status {status.candidate}" if status else "no result"


def recheck(
    baseline: list[Result], candidate_dir: Path, verdicts: list[GateVerdict], settings: BaselineSettings
) -> tuple[list[GateVerdict], list[str]]:
    """Re-run the speed-only regressed cells of `candidate_dir` once; return the confirmed
    verdicts and notes for the report."""
    keys = cells_to_recheck(verdicts)
    if not keys:
        return verdicts, []
    recheck_dir, results = rerun(candidate_dir, keys)
    base = [r for r in baseline if group_key(r) in keys]
    confirmed = confirm(verdicts, compare_results(base, results, settings), keys)
    kept = sum(v.verdict == REGRESSION and v.cell in keys for v in confirmed)
    note = (f"Re-ran {len(keys)} cell(s) whose only regressions were speed ({', '.join(keys)}) into "
            f"{recheck_dir}: {kept} speed regression(s) confirmed, "
            f"{sum(v.verdict == UNCONFIRMED for v in confirmed)} not confirmed.")
    return confirmed, [note]
