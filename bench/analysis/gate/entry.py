"""The one entry of each gate: what `bench compare` and `bench gate` call once their arguments are checked.

- `compare_with_baseline`: load both runs (the committed baseline of the candidate's hardware for
  `auto`), match their hardware, judge (against_baseline.py), re-run speed-only regressions
  (`--recheck`, recheck.py) and render the report.
- `gate_side_by_side`: measure the base and the candidate in interleaved rounds (side_by_side.py),
  or read a gate folder measured before, judge them (judge.py) and render the report.

Each returns what the command prints or writes; neither prints, writes a report or exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.analysis.gate.against_baseline import (
    DEFAULT_ALPHA,
    DEFAULT_QUALITY_TOLERANCE,
    BaselineSettings,
    compare_results,
    data_differences,
    parse_thresholds,
    speed_not_judged,
)
from bench.analysis.gate.baselines import (
    BaselineChoice,
    Hardware,
    compare_hardware,
    find_baseline,
    hardware_of,
    latest_run,
    load,
    run_hardware,
)
from bench.analysis.gate.judge import (
    REGRESSION,
    GateSettings,
    Judgement,
    judge,
    judge_alone,
    package_differences,
)
from bench.analysis.gate.render import COMPARE_RENDERERS, RENDERERS, render_compare_markdown, render_markdown
from bench.analysis.gate.side_by_side import BASE, CANDIDATE, GatePlan, load_folder, measure, repository_root
from bench.errors import BenchError
from bench.paths import RESULTS_DIR
from bench.results import Result

AUTO, LATEST = "auto", "latest"
"""`bench compare`'s words for the committed baseline of the candidate's hardware, and for the
newest run under the results folder."""


# ---------------------------------------------------------------------------------------------
# bench compare: a run against a baseline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRequest:
    """What `bench compare` was asked, its options checked."""

    baseline: str
    """A run directory or result file, or AUTO."""
    candidate: str
    """A run directory or result file, or LATEST."""
    results_dir: Path = RESULTS_DIR
    """Where run directories and baselines/ live."""
    thresholds: list[str] = field(default_factory=list)
    """--threshold METRIC=FRACTION items, as given."""
    quality_tolerance: float = DEFAULT_QUALITY_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    any_hardware: bool = False
    recheck: bool = False
    format: str = "text"


@dataclass(frozen=True)
class CompareOutcome:
    text: str
    """The Markdown report, for people."""
    report: str
    """The report in the requested format (the same text for "text")."""
    failed: bool
    """Whether any check is a regression (exit 1)."""


def compare_with_baseline(request: CompareRequest) -> CompareOutcome:
    """Judge the candidate against the baseline, as `bench compare` reports it."""
    baselines_dir = request.results_dir / "baselines"
    candidate_path = latest_run(request.results_dir) if request.candidate == LATEST else Path(request.candidate)
    candidate = load(candidate_path)
    notes: list[str] = []
    choice = None
    if request.baseline == AUTO:
        choice = _committed_baseline(candidate, baselines_dir, notes)
        baseline_path = choice.path
    else:
        baseline_path = Path(request.baseline)
    baseline = load(baseline_path)

    same_hardware, how = _hardware_match(baseline, candidate, choice)
    notes.append(_hardware_note(same_hardware, how, request.any_hardware))
    judge_speed = same_hardware or request.any_hardware
    settings = BaselineSettings(
        thresholds=parse_thresholds(request.thresholds),
        quality_tolerance=request.quality_tolerance,
        alpha=request.alpha,
        judge_speed=judge_speed,
        same_hardware=same_hardware,
    )
    verdicts = compare_results(baseline, candidate, settings)
    notes += data_differences(baseline, candidate)  # data files read with different content (SHA-256)
    notes += package_differences(baseline, candidate)  # two locks
    if request.recheck:
        from bench.analysis.gate.recheck import recheck

        verdicts, recheck_notes = recheck(baseline, candidate_path, verdicts, settings)
        notes += recheck_notes
    names = (str(baseline_path), str(candidate_path))
    text = render_compare_markdown(verdicts, *names, notes, speed_judged=judge_speed)
    report = text
    if request.format != "text":
        # JSON and JUnit also list the speed and memory checks left unjudged (different hardware).
        unjudged = [] if judge_speed else speed_not_judged(
            baseline, candidate, f"speed and memory not judged: different hardware ({how})")
        report = COMPARE_RENDERERS[request.format](verdicts + unjudged, *names, notes, speed_judged=judge_speed)
    return CompareOutcome(text, report, any(v.verdict == REGRESSION for v in verdicts))


def _committed_baseline(candidate: list[Result], baselines_dir: Path, notes: list[str]) -> BaselineChoice:
    """The committed baseline for the hardware the candidate ran on (this host's, if its results
    record none); a note in `notes` when none matches and the nearest is used."""
    from bench.harness.host import hardware

    wanted = hardware_of(candidate) or Hardware.of_environment(hardware())
    choice = find_baseline(baselines_dir, wanted)
    if not choice.matched:
        notes.append(f"No committed baseline matches the candidate's hardware ({wanted.describe()}); "
                     f"judged against the nearest, {choice.path.name} ({choice.hardware.describe()}).")
    return choice


def _hardware_match(baseline: list[Result], candidate: list[Result], choice: BaselineChoice | None) -> tuple[bool, str]:
    """(whether speed and memory compare, why). A committed baseline's hardware is its baseline.json's,
    which may record what its cells' environments predate (the CPU flags of the first baselines)."""
    if choice is not None and len(run_hardware(candidate)) <= 1:  # a run measured on several machines matches none
        return choice.matched, choice.how
    return compare_hardware(baseline, candidate)


def _hardware_note(same_hardware: bool, how: str, any_hardware: bool) -> str:
    if same_hardware:
        return f"Hardware matches ({how}): speed and memory judged."
    if any_hardware:
        return f"Different hardware ({how}); speed and memory judged anyway (--any-hardware)."
    return (f"Different hardware ({how}): speed and memory not judged, only status and quality; "
            "the difference alone never fails the comparison.")


# ---------------------------------------------------------------------------------------------
# bench gate: base and candidate side by side
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRequest:
    """What `bench gate` was asked, its options checked."""

    base: str
    """The git revision to compare with."""
    matrix: Path
    rounds: int
    seeds_per_launch: int
    settings: GateSettings
    folder: Path | None = None
    """Where the runs and the report go (None: results/gate-<time>)."""
    allow_no_base: bool = False
    judge_only: Path | None = None
    """A gate folder measured before, to judge again without running anything."""
    format: str = "text"
    """The format of `GateOutcome.report` (text, json, junit)."""


@dataclass(frozen=True)
class GateOutcome:
    judgement: Judgement
    folder: Path
    """The gate's folder, where its report (gate.md) belongs."""
    text: str
    """The Markdown report."""
    report: str
    """The report in the requested format."""


def gate_side_by_side(request: GateRequest, log: Callable[[str], None] = print) -> GateOutcome:
    """Measure (or, with `judge_only`, read) both sides and judge them, as `bench gate` reports it."""
    if request.judge_only:
        folder = request.judge_only
        base_rounds, cand_rounds = load_folder(folder)
        notes = [f"Judged again from {folder}."]
        base_failure = "" if any(base_rounds) else "no base results in the folder"
    else:
        folder = request.folder or RESULTS_DIR / f"gate-{time.strftime('%Y%m%d-%H%M%S')}"
        plan = GatePlan(repository_root(Path.cwd()), request.base, request.matrix.resolve(), request.rounds,
                        request.seeds_per_launch, folder.resolve())
        started = time.monotonic()
        base, candidate, notes = measure(plan, log=log)
        notes.append(f"Measured in {time.monotonic() - started:.0f} s.")
        base_rounds, cand_rounds, base_failure = base.rounds, candidate.rounds, base.failure
        if candidate.failure:
            raise BenchError(f"the candidate could not run: {candidate.failure}")
    if base_failure:
        judgement = judge_alone(cand_rounds, base_failure, allowed=request.allow_no_base)
    else:
        judgement = judge(base_rounds, cand_rounds, request.settings)
        judgement.notes += package_differences(sum(base_rounds, []), sum(cand_rounds, []))
    judgement.notes[:0] = notes
    return GateOutcome(judgement, folder, render_markdown(judgement, BASE, CANDIDATE),
                       RENDERERS[request.format](judgement, BASE, CANDIDATE))
