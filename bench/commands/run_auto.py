"""`bench run --seeds auto`: run rounds of seeds until every comparison with a reference is decided.

Round 1 runs every configuration with START_SEEDS seeds (or the matrix's own seeds when it has
more). After each round bench/analysis/seeds_auto.py decides, with the statistics the report
uses, which configurations are still undecided against their reference; each of those, and its
reference, gets one more seed (the next seed number) in the next round, until none is undecided
or they have run --max-seeds. The decisions go into run.json's `seeds_auto` after every round
(atomically), so an interrupted auto run continues with `--resume`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from bench.analysis.seeds_auto import (
    DEFAULT_MAX_SEEDS,
    MAX_SEEDS_CAP,
    START_SEEDS,
    decide,
    needing_a_seed,
    record,
)
from bench.errors import BenchError
from bench.harness.config import MatrixConfig
from bench.harness.matrix import load_config
from bench.harness.runner import run_cells
from bench.run_meta import AUTO, RunMeta


def parse_seeds(value: str | int | None) -> int | str | None:
    """--seeds: a positive whole number, or 'auto'; anything else is one line `error: ...`."""
    if value is None or value == AUTO:
        return value
    try:
        count = int(str(value).strip())
    except ValueError:
        raise BenchError(f"--seeds takes a positive whole number or 'auto', got {value!r}") from None
    if count < 1:
        raise BenchError(f"--seeds must be at least 1, got {count}")
    return count


def parse_max_seeds(value: str | int | None, start: int) -> int:
    """--max-seeds: a whole number from the start count up to MAX_SEEDS_CAP (default DEFAULT_MAX_SEEDS)."""
    if value is None:
        return max(DEFAULT_MAX_SEEDS, start)
    try:
        count = int(str(value).strip())
    except ValueError:
        raise BenchError(f"--max-seeds takes a whole number, got {value!r}") from None
    if count < start:
        raise BenchError(f"--max-seeds {count} is below the {start} seeds every configuration starts with")
    if count > MAX_SEEDS_CAP:
        raise BenchError(f"--max-seeds must be at most {MAX_SEEDS_CAP}, got {count}")
    return count


def start_cells(matrix: str) -> tuple[MatrixConfig, int]:
    """The matrix with its cells for round 1, and how many seeds each configuration starts with:
    START_SEEDS (0..2), or the matrix's own seeds where it lists more."""
    config = load_config(matrix)
    count = len({cell.seed for cell in config.cells})
    if count >= START_SEEDS:
        return config, count
    return load_config(matrix, START_SEEDS), START_SEEDS


def recorded(meta: RunMeta, where: str) -> dict[str, Any] | None:
    """run.json's `seeds_auto`, checked: None when the run has none yet (stopped in its first round)."""
    entry = meta.seeds_auto
    if entry is None:
        return None
    cells = entry.get("cells") if isinstance(entry, dict) else None
    bad_max = isinstance(entry, dict) and (isinstance(entry.get("max"), bool) or not isinstance(entry.get("max"), int)
                                           or not 1 <= entry["max"] <= MAX_SEEDS_CAP)
    bad_cells = not isinstance(cells, dict) or not all(
        isinstance(c, dict) and isinstance(c.get("seed_list"), list)
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in c["seed_list"])
        for c in cells.values())
    if not isinstance(entry, dict) or bad_max or bad_cells:
        raise BenchError(f"{where} is damaged ('seeds_auto' must hold max (1-{MAX_SEEDS_CAP}) and each configuration's "
                         "seed_list); start a new run (--run-id) instead of resuming this one")
    return entry


def with_seeds(cells: list, seed_lists: dict[str, list[int]]) -> list:
    """`cells` plus, for each configuration named in seed_lists, a cell for every listed seed it lacks."""
    have = {cell.id for cell in cells}
    out = list(cells)
    for template in _templates(cells).values():
        for seed in seed_lists.get(template.key.without_seed().id, []):
            cell = _with_seed(template, seed)
            if cell.id not in have:
                have.add(cell.id)
                out.append(cell)
    return out


def _templates(cells: list) -> dict[str, Any]:
    templates: dict[str, Any] = {}
    for cell in cells:
        templates.setdefault(cell.key.without_seed().id, cell)
    return templates


def _with_seed(template, seed: int):
    # A seed added here saves no checkpoint: --save-checkpoint keeps the first cell's model.
    return dataclasses.replace(template, seed=seed, save_checkpoint=None)


def run_rounds(cells: list, run_dir: Path, meta: RunMeta, options, start: int, max_seeds: int,
               host=None) -> list[dict[str, Any]]:
    """Round after round until no configuration needs a seed; every result of the rounds, in cell order."""
    templates = _templates(cells)
    results: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    pending = cells
    rounds = (meta.seeds_auto or {}).get("rounds", 0)
    while True:
        rounds += 1
        for result in run_cells(pending, run_dir, meta, options, host):
            cell_id = result["cell"]["id"]
            order += [] if cell_id in results else [cell_id]
            results[cell_id] = result
        decisions = decide([results[i] for i in order], max_seeds, start)
        _write_record(run_dir, record(decisions, start, max_seeds, rounds))
        more = [config_id for config_id in needing_a_seed(decisions) if config_id in templates]
        if not more:
            return [results[i] for i in order]
        pending = [_with_seed(templates[config_id], decisions[config_id]["next_seed"]) for config_id in more]
        print(f"--seeds auto, round {rounds + 1}: one more seed for {len(more)} configuration"
              f"{'s' if len(more) != 1 else ''}: " + ", ".join(f"{c} (seed {decisions[c]['next_seed']}, "
                                                             f"{decisions[c]['open']})" for c in more),
              file=sys.stderr)


def _write_record(run_dir: Path, entry: dict[str, Any]) -> None:
    meta = RunMeta.read(run_dir)  # written by run_cells before its first cell
    # "auto" also where a --resume turned a counted run automatic
    dataclasses.replace(meta, seeds=AUTO, seeds_auto=entry).write(run_dir)


def summary_lines(run_dir: Path) -> list[str]:
    """Each configuration's seed count and why it stopped, as run.json records it."""
    entry = RunMeta.read(run_dir).seeds_auto or {}
    lines = [f"--seeds auto: {entry.get('rounds')} round(s), at most {entry.get('max')} seeds per configuration"]
    for config_id, cell in (entry.get("cells") or {}).items():
        lines.append(f"  {config_id}: {cell['seeds']} seed{'s' if cell['seeds'] != 1 else ''}, {cell['stopped']}")
    return lines
