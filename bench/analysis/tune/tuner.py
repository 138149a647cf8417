"""`bench tune`, top to bottom: reference, prune, race, finals, recommendation.

Every stage runs its cells with the runner every `bench run` uses (bench.harness.runner.run_cells),
into one folder:

    <folder>/pilot/       the reference to target, 3 seeds in one launch: the steps every probe
                          is projected to, and its slowest run
    <folder>/race/        the probes, one launch each
    <folder>/to-target/   the reference and the finalists, each run to target with seeds, one
                          launch per seed: a run directory like any other (`bench report` reads it)
    <folder>/tune.json    what was decided, with every candidate's fate (bench.analysis.tune.record)

Each stage's decisions depend only on the results in the folder, so running the same command
again continues where it stopped (completed cells are not run again): that is `--resume`, and,
since the default folder is named after the host's hardware fingerprint, the lock and the
request, a cache too.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analysis import stats
from bench.analysis.tune.facts import cold_compile_floor
from bench.analysis.tune.finals import Finalist, Verdict, judge_finals
from bench.analysis.tune.race import (
    Drop,
    Probe,
    RaceSettings,
    RaceState,
    choose_leader,
    finalists,
    interleaved,
    judge_round,
    projected_seconds,
)
from bench.analysis.tune.space import (
    Candidate,
    HostFacts,
    Pruned,
    SearchSpace,
    enumerate_candidates,
    prune,
    reference_candidate,
    with_reference,
)
from bench.cells import Budget, Cell
from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.host import Host, precision_flags
from bench.harness.matrix import load_matrix
from bench.harness.runner import run_cells
from bench.results import Result
from bench.run_meta import RunMeta

RACE_SEED_BASE = 1000
"""Probe seeds: 1000 + 100 * round + probe, apart from the to-target seeds 0..n-1."""
PILOT_SEED_BASE, PILOT_SEEDS = 900, 3
"""The reference's pilot run to target: seeds 900-902, in one launch."""


@dataclass(frozen=True)
class TuneRequest:
    """What the user asked `bench tune` for."""

    workload: str
    variant: str
    space: SearchSpace
    matrix: str
    """The matrix whose settings (budget, params, timeout) the workload trains with."""
    folder: Path
    seeds: int = 5
    """Seeds each to-target run (the reference, each finalist) gets."""
    race: RaceSettings = field(default_factory=RaceSettings)
    budget_s: float | None = None
    """Stop racing once the next round would pass this many seconds of the whole tune; None: no limit."""
    executor: ExecutorOptions | None = None
    host: Host | None = None
    """The hardware the cells run on, where it is not this host (a SLURM partition's nodes, declared
    with --gpus, or probed with --probe-node); None: this host, detected."""
    planned_for: dict[str, Any] | None = None
    """What run.json records of `host` (bench/commands/nodes.py PlannedNodes)."""
    environment: dict[str, Any] | None = None
    """A probed node's environment and peak FLOP/s, recorded in run.json in place of this host's."""
    command: str = ""


@dataclass
class TuneOutcome:
    """Everything `bench tune` decided, as bench.analysis.tune.record writes and renders it."""

    request: TuneRequest
    reference: Candidate
    pruned: list[Pruned]
    raced: list[Candidate]
    race: RaceState
    behind: list[Candidate]
    """Alive after the race but behind the finalists by median: not run to target."""
    finals: list[Finalist]
    verdict: Verdict
    steps_to_target: int
    facts: HostFacts
    wall_s: float
    rounds_run: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkloadSettings:
    """The workload as the chosen matrix trains it."""

    budget: Budget
    params: dict[str, Any]
    timeout_s: float


def workload_settings(matrix: str, workload: str, variant: str) -> WorkloadSettings:
    """The budget, params and timeout `matrix` gives `workload`'s `variant`; one line if it has none."""
    for cell in load_matrix(matrix, seeds=1):
        if cell.kind == "train" and cell.workload == workload and cell.variant == variant:
            return WorkloadSettings(cell.budget, dict(cell.params), cell.timeout_s)
    raise BenchError(f"matrix {matrix!r} does not train {workload} variant {variant!r}; name a matrix that does (--matrix)")


def tune(request: TuneRequest) -> TuneOutcome:
    started = time.monotonic()
    host = request.host or Host.detect()
    settings = workload_settings(request.matrix, request.workload, request.variant)
    facts = HostFacts(host, tuple(precision_flags()))
    reference = reference_candidate(host)
    candidates = with_reference(enumerate_candidates(request.space), reference)

    say(f"1/4 reference: {reference.label} to target, {PILOT_SEEDS} seeds in one launch")
    pilot = Finalist(reference, _pilot(request, settings, reference))
    steps = reference_steps(pilot)
    facts.reference_slowest_s = max(stats.finite(pilot.time_to_target()))

    kept, pruned = prune(candidates, request.workload, request.variant, settings.params, facts)
    if any(c.compile != "none" for c in kept):
        facts.cold_compile_floor_s = cold_compile_floor()
        kept, more = prune(kept, request.workload, request.variant, settings.params, facts)
        pruned += more
    say(f"2/4 pruned {len(pruned)} of {len(candidates)} candidates; racing {len(kept)}")

    state, rounds_run = _race(request, settings, kept, reference, steps, started)
    chosen, behind = finalists(state, state.alive(kept), reference, request.race.finalists)
    say(f"4/4 finals: {', '.join(c.label for c in [reference, *chosen])} to target, {request.seeds} seeds each, "
        "one launch per seed")
    runs = _finals(request, settings, [reference, *chosen])
    finals = [Finalist(c, runs.get(c, [])) for c in [reference, *chosen]]
    target = next((r.target for r in pilot.results if r.target is not None), None)
    verdict = judge_finals(finals[1:], finals[0], target.higher if target else True, request.race.alpha, state.median)
    return TuneOutcome(request, reference, pruned, kept, state, behind, finals, verdict, steps, facts,
                       time.monotonic() - started, rounds_run)


def say(message: str) -> None:
    print(f"tune: {message}", file=sys.stderr, flush=True)


def reference_steps(reference: Finalist) -> int:
    """The reference's median optimizer steps to target: the work every probe is projected to.
    One line and no race when the reference does not reach its target (nothing to hold others to)."""
    steps = [r.timings.extra.get("steps") for r in reference.results if r.status == "converged"]
    if len(steps) * 2 <= len(reference.results):
        statuses = ", ".join(sorted({f"{r.status}: {r.reason}".rstrip(": ") for r in reference.results}))
        raise BenchError(f"the reference {reference.candidate.label} reached the target in {len(steps)} of "
                         f"{len(reference.results)} seeds ({statuses}); tune needs a reference that converges "
                         "(a larger budget in the matrix, or another --matrix)")
    return int(stats.median([float(s) for s in steps]) or 1)


def _pilot(request: TuneRequest, settings: WorkloadSettings, reference: Candidate) -> list[Result]:
    """The reference to target, PILOT_SEEDS seeds sharing one launch: its steps to target (the work
    probes are projected to) and its slowest run (the compile bound). Not judged: the finals run
    the reference again, interleaved with the finalists."""
    cells = [reference.cell(request.workload, request.variant, seed, settings.budget, settings.params, settings.timeout_s)
             for seed in range(PILOT_SEED_BASE, PILOT_SEED_BASE + PILOT_SEEDS)]
    results = run_cells(cells, request.folder / "pilot", _meta(request, "pilot"), request.executor, request.host)
    return _grouped(cells, results).get(reference, [])


def _finals(request: TuneRequest, settings: WorkloadSettings, candidates: list[Candidate]) -> dict[Candidate, list[Result]]:
    """Each candidate run to target with the request's seeds, one launch per seed, round-robin
    (the order rotated each seed), so that each seed is an independent draw of the host."""
    cells, results = [], []
    for seed in range(request.seeds):
        shift = seed % len(candidates)
        for candidate in candidates[shift:] + candidates[:shift]:
            cell = candidate.cell(request.workload, request.variant, seed, settings.budget, settings.params,
                                  settings.timeout_s)
            cells.append(cell)
            results += run_cells([cell], request.folder / "to-target", _meta(request, "to-target"), request.executor,
                                 request.host)
    return _grouped(cells, results)


def _race(request: TuneRequest, settings: WorkloadSettings, kept: list[Candidate], reference: Candidate,
          steps: int, started: float) -> tuple[RaceState, int]:
    """Successive halving (bench.analysis.tune.race) until no more are left than go to the finals,
    the rounds are spent, or the next round would pass the budget."""
    state = RaceState()
    budget = Budget(max_epochs=settings.budget.max_epochs, max_seconds=settings.budget.max_seconds,
                    max_steps=min(steps, request.race.probe_steps))
    rounds_run = 0
    for round_ in range(1, request.race.rounds + 1):
        alive = state.alive(kept)
        if len([c for c in alive if c != reference]) <= request.race.finalists:
            break  # every one left goes to the finals anyway
        if _over_budget(request, state, alive, started):
            say(f"3/4 race: the budget leaves no time for round {round_}; racing stops")
            break
        leader = choose_leader(state, alive, reference)
        say(f"3/4 race round {round_}: {len(alive)} candidates, leader {leader.label}")
        _probe_round(request, settings, budget, state, round_, alive, leader, steps)
        state.drops += judge_round(state, round_, leader, alive, request.race)
        rounds_run = round_
    return state, rounds_run


def _probe_round(request: TuneRequest, settings: WorkloadSettings, budget: Budget, state: RaceState, round_: int,
                 alive: list[Candidate], leader: Candidate, steps: int) -> None:
    """The round's probes, one launch each, in the interleaved order of race.interleaved."""
    seen: dict[Candidate, int] = {}
    for candidate in interleaved(alive, leader, request.race, round_):
        seed = RACE_SEED_BASE + 100 * round_ + seen.get(candidate, 0)
        seen[candidate] = seen.get(candidate, 0) + 1
        cell = candidate.cell(request.workload, request.variant, seed, budget, settings.params, settings.timeout_s)
        results = run_cells([cell], request.folder / "race", _meta(request, "race"), request.executor, request.host)
        result = next((Result.from_dict(r) for r in results if r["cell"]["id"] == cell.id), None)
        state.probes.append(_probe(candidate, round_, seed, result, steps))


def _probe(candidate: Candidate, round_: int, seed: int, result: Result | None, steps: int) -> Probe:
    if result is None:
        return Probe(candidate, round_, seed, None, "missing", "no result was written")
    return Probe(candidate, round_, seed, projected_seconds(result, steps), result.status, result.reason,
                 result.cell_wall_s)


def _over_budget(request: TuneRequest, state: RaceState, alive: list[Candidate], started: float) -> bool:
    """Whether the next round, at the probes' median cost so far, would pass the budget."""
    if request.budget_s is None:
        return False
    elapsed = time.monotonic() - started
    per_probe = stats.median([p.wall_s for p in state.probes if p.wall_s]) or 0.0
    estimate = per_probe * (request.race.probes * len(alive) + request.race.leader_probes)
    return elapsed + estimate > request.budget_s


def _grouped(cells: list[Cell], results: list[dict[str, Any]]) -> dict[Candidate, list[Result]]:
    by_id = {r["cell"]["id"]: Result.from_dict(r) for r in results}
    out: dict[Candidate, list[Result]] = {}
    for cell in cells:
        if cell.id in by_id:
            out.setdefault(Candidate.of(cell), []).append(by_id[cell.id])
    return out


def _meta(request: TuneRequest, stage: str) -> RunMeta:
    return RunMeta(matrix=request.matrix, command=request.command, seeds=request.seeds,
                   filters={"workload": request.workload}, tune={"stage": stage, "variant": request.variant},
                   executor=request.executor.describe() if request.executor is not None else None,
                   planned_for=request.planned_for, environment=request.environment)


__all__ = ["Drop", "TuneOutcome", "TuneRequest", "tune", "workload_settings"]
