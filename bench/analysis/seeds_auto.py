"""`bench run --seeds auto`: after each round of seeds, which configurations need another one.

The comparison judged is the one the report's verdict makes first: a configuration's
time-to-target (a seed that did not converge counts as slower than every seed that did) against
its reference, the single-process fp32 configuration of the same model on the same kind of device
with no knob turned (bench.analysis.report.configuration_rows, report_compare.add_intervals), by
the exact rank-sum test. Looking after every round and stopping at the first look that claims
would claim far more often than 5%; so the looks follow a sequential design
(bench.analysis.stats.SequentialDesign): alpha is spent evenly over the looks that can decide
anything, and at each look Holm's rule over all configurations runs at that per-look level. The
report of such a run decides its claims at the same level. A comparison is decided when

- the test rejects at the look's level (the report will say faster or slower),
- the configuration has no seed that reached the target ("did not converge"),
- the reference has none ("the reference did not converge"), or there is no reference,
- the configuration produced no numbers at all (skipped, unsupported, invalid: "not run"; or
  every seed failed),
- or the configuration has run the maximum of seeds.

Otherwise (the test does not reject at this look) it is open: the configuration gets one more seed, and so does its reference while any comparison
with it is open and it is under the maximum. Classical-baseline cells are compared with nothing
and keep the seeds they started with.

`decide` is pure (result dicts in, one decision per configuration out), so it is tested with
hand-made results; bench/commands/run_auto.py runs the rounds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from bench.analysis.report import configuration_rows, train_results
from bench.analysis.report_compare import add_intervals, control_claims
from bench.analysis.stats import SequentialDesign
from bench.results import WITHOUT_METRICS, Result, as_results

START_SEEDS = 3
"""Seeds every configuration starts with (or the matrix's own count, when it asks for more)."""
DEFAULT_MAX_SEEDS = 10
MAX_SEEDS_CAP = 50
"""The most `--max-seeds` accepts: beyond it, a difference still undecided is too small to chase by seeds."""

REFERENCE = "reference"
BASELINES = "classical baselines: compared with nothing, kept at the seeds they started with"
DID_NOT_CONVERGE = "did not converge"
REFERENCE_DID_NOT_CONVERGE = "the reference did not converge"
NO_REFERENCE = "no single-process fp32 reference on its device in this run"


def excluded_after(seeds: int) -> str:
    return f"decided after {seeds} seeds"


def reached_maximum(max_seeds: int) -> str:
    return f"reached the maximum of {max_seeds} seeds"


def _without_numbers(results: list[Result]) -> str:
    """Why a configuration with no trained seed is decided: 'not run: skipped (needs 1 GPU, found 0)'."""
    first = results[0]
    head = "not run" if first.status in WITHOUT_METRICS else "no numbers"
    reason = (first.reason or "").strip().splitlines()
    return f"{head}: {first.status}" + (f" ({reason[0]})" if reason else "")


def _judged(row: dict[str, Any]) -> dict[str, Any] | None:
    """The time-to-target comparison with the reference, as the report judged it (None without one)."""
    vs = row.get("vs_reference") or {}
    judged = vs.get("time_to_target_s")
    if not judged:
        return None
    return {k: judged.get(k) for k in ("ratio", "low", "high", "verdict", "conclusive", "n_candidate", "n_reference")}


def _decide_row(row: dict[str, Any], ref: dict[str, Any] | None, results: list[Result], seeds: int,
                max_seeds: int) -> tuple[str | None, str | None]:
    """(why the configuration stopped, or None while it needs another seed; why it is still open)."""
    if not row["trained"]:
        return _without_numbers(results), None
    if ref is row:
        return REFERENCE, None  # settled with its comparisons, below
    if ref is None:
        return NO_REFERENCE, None
    if not row["converged"]:
        return DID_NOT_CONVERGE, None
    if not ref["converged"]:
        return REFERENCE_DID_NOT_CONVERGE, None
    judged = row["vs_reference"]["time_to_target_s"]
    if judged["conclusive"]:
        return excluded_after(seeds), None
    open_because = (f"p {judged['p_value']:.2g} above the look's level {judged.get('alpha', 0):.2g}"
                    if judged.get("p_value") is not None else "no numbers on a side")
    if seeds >= max_seeds:
        return reached_maximum(max_seeds), open_because
    return None, open_because


def decide(results: Iterable[Result | dict[str, Any]], max_seeds: int,
           start: int = START_SEEDS) -> dict[str, dict[str, Any]]:
    """One decision per configuration (`CellKey.without_seed().id`) of `results`, every workload.
    Results are read as records (bench.results.Result); a dict, as the harness gives it, is read into one.

    Each is {"workload", "seeds" (how many seeds it has run), "seed_list", "next_seed",
    "reference" (the id of its reference, or None), "stopped" (why no more seeds, or None while it
    needs one), "open" (why the comparison is undecided, else None), "time_to_target" (the
    comparison with the reference as the report judges it, or None)}. A reference is stopped
    ("reference") once every comparison with it is decided or it has run `max_seeds`."""
    records = as_results(results)
    by_config: dict[str, list[Result]] = defaultdict(list)
    for r in records:
        by_config[r.key.without_seed().id].append(r)
    decisions: dict[str, dict[str, Any]] = {}
    for config_id, group in by_config.items():
        seeds = sorted({r.cell.seed for r in group})
        decisions[config_id] = {"workload": group[0].cell.workload, "seeds": len(seeds), "seed_list": seeds,
                                "next_seed": seeds[-1] + 1, "reference": None, "stopped": BASELINES, "open": None,
                                "time_to_target": None}
    by_workload: dict[str, list[Result]] = defaultdict(list)
    for r in train_results(records):
        by_workload[r.cell.workload].append(r)
    level = SequentialDesign(start, max_seeds).level
    workload_rows = []
    for train in by_workload.values():
        rows = configuration_rows(train, None)
        add_intervals(rows)  # the same comparisons, by the same statistics, as the report's
        workload_rows.append(rows)
    # This look's time-to-target claims, decided together (Holm) at the design's per-look level.
    control_claims([row["vs_reference"]["time_to_target_s"] for rows in workload_rows for row in rows
                    if row.get("vs_reference")], level)
    for rows in workload_rows:
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            entry = decisions[row["id"]]
            ref = by_id.get(row.get("reference_id") or "")
            entry["reference"] = ref["id"] if ref is not None else None
            entry["stopped"], entry["open"] = _decide_row(row, ref, by_config[row["id"]], entry["seeds"], max_seeds)
            entry["time_to_target"] = _judged(row) if ref is not None and ref is not row else None
    for config_id, entry in decisions.items():
        if entry["stopped"] != REFERENCE:
            continue
        waiting = [d for d in decisions.values() if d["reference"] == config_id and d is not entry and d["stopped"] is None]
        if waiting and entry["seeds"] < max_seeds:
            entry["stopped"] = None
            entry["open"] = f"reference of {len(waiting)} undecided configuration{'s' if len(waiting) != 1 else ''}"
    return decisions


def needing_a_seed(decisions: dict[str, dict[str, Any]]) -> list[str]:
    """The configurations that get one more seed in the next round (none: the loop is done)."""
    return [config_id for config_id, entry in decisions.items() if entry["stopped"] is None]


def record(decisions: dict[str, dict[str, Any]], start: int, max_seeds: int, rounds: int) -> dict[str, Any]:
    """run.json's `seeds_auto`: what the loop asked for and where each configuration stands."""
    cells = {config_id: {k: entry[k] for k in ("workload", "seeds", "seed_list", "stopped", "reference", "time_to_target")}
             for config_id, entry in sorted(decisions.items())}
    return {"start": start, "max": max_seeds, "rounds": rounds, "done": not needing_a_seed(decisions), "cells": cells}
