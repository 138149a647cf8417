"""Judge a candidate against a base measured side by side: one check per cell and figure.

Both sides ran the same cells with the same seeds, in rounds (one launch per cell and round, its
seeds sharing it). What each figure is compared over, and why:

- coverage: each seed's status, base against candidate. On one host a seed's outcome is a
  function of the code (the gate's budgets are steps and epochs, never seconds), so no
  statistics: a seed that ran and now does not, that converged and now does not, or that now
  fails, is a regression, with its reason. A cell gone from the candidate is one; a new cell is
  listed.
- quality and samples to target: the target metric on the target split and on test, and the
  samples a converged seed needed, paired by seed (the same seed on both sides), by Wilcoxon's
  signed-rank test, one-sided for worse. Unchanged code reproduces its seeds exactly, and equal
  pairs are no evidence, so such a test cannot claim anything. Quality also fails when the
  candidate's median over seeds misses the target. (Time-to-target is the samples to target at
  the step time, each judged on its own.)
- clocks and memory (metrics.CLOCK_AND_MEMORY): one value per launch (the median of its seeds),
  candidate launches against base launches by the Wilcoxon-Mann-Whitney rank-sum test, one-sided
  for slower or larger. A regression is claimed when the test rejects and the estimated ratio is
  at least 1 + `min_change`.

The rejections are decided in two families, each by Tarone's rule
(bench.analysis.stats.tarone_bonferroni): the step tests at alpha * `step_share` (half), every
other test at the rest (weighted Bonferroni), so the chance that an unchanged commit fails the
gate anywhere is at most `alpha`, however many cells and figures it judges. docs/gate.md gives the measured false-alarm and detection rates.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from bench.analysis.gate.metrics import CLOCK_AND_MEMORY, STEP, GateMetric, score
from bench.analysis.stats import GREATER, LESS, RankTest, rank_sum_test, signed_rank_test, tarone_bonferroni
from bench.results import Result

REGRESSION, OK, IMPROVEMENT, NEW, NOT_JUDGED = "regression", "ok", "improvement", "new", "not judged"
TRAINED = ("converged", "not_converged")
BROKEN = ("failed", "invalid")
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_CHANGE = 0.05
DEFAULT_STEP_SHARE = 0.5


@dataclass(frozen=True)
class GateSettings:
    alpha: float = DEFAULT_ALPHA
    """The most often an unchanged commit may fail the gate, over all its checks together."""
    min_change: float = DEFAULT_MIN_CHANGE
    """The smallest slow-down (0.05 = 5%) worth failing CI for, once it is significant."""
    step_share: float = DEFAULT_STEP_SHARE
    """The share of alpha the step tests get (weighted Bonferroni); the other tests share the rest.
    The step is what most changes to bench's code would slow, and each of the other figures is
    rarely what a regression moves alone: at equal shares a 20% slower step was caught in 49% of
    the calibration's gates, at half of alpha for the step in all of them (docs/gate.md)."""


@dataclass(frozen=True)
class Check:
    """What the gate says of one figure of one cell (its key without the seed)."""

    cell: str
    figure: str
    verdict: str
    base: str = ""
    candidate: str = ""
    change: str = ""
    p_value: float | None = None
    why: str = ""


@dataclass
class Judgement:
    """Every check of one gate run, and the error control they were decided under."""

    checks: list[Check]
    alpha: float
    level: float
    """The per-test level of the step tests (alpha * step_share / the step tests that could decide)."""
    tests: int
    """How many statistical tests were made."""
    notes: list[str] = field(default_factory=list)
    other_level: float | None = None
    """The per-test level of every other test (alpha * (1 - step_share) / those that could decide)."""

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == REGRESSION]

    @property
    def passed(self) -> bool:
        return not self.regressions


Rounds = list[list[Result]]
"""One side's results: per round, the results of every cell that round ran."""


def by_cell(rounds: Rounds) -> dict[str, list[list[Result]]]:
    """cell key without seed -> per round, that round's results of the cell (empty rounds dropped)."""
    cells: dict[str, dict[int, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for index, results in enumerate(rounds):
        for result in results:
            if result.cell.kind != "baseline":
                cells[result.key.without_seed().id][index].append(result)
    return {key: [per_round[i] for i in sorted(per_round)] for key, per_round in cells.items()}


def _seeds(launches: Iterable[list[Result]]) -> dict[int, Result]:
    return {r.cell.seed: r for launch in launches for r in launch}


def _statuses(seeds: dict[int, Result]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in seeds.values():
        counts[r.status] += 1
    return ", ".join(f"{status} {n}/{len(seeds)}" for status, n in sorted(counts.items()))


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def coverage(cell: str, base: list[list[Result]], cand: list[list[Result]]) -> Check:
    """The cell's seeds, base against candidate: lost, unconverged or broken seeds fail."""
    b, c = _seeds(base), _seeds(cand)
    lost = [s for s in b if b[s].status in TRAINED and (s not in c or c[s].status not in TRAINED)]
    broke = [s for s in c if c[s].status in BROKEN and (s not in b or b[s].status not in BROKEN)]
    # A seed stopped by its seconds guard ran out of wall time, which the host's load decides, not
    # the code: not a coverage regression (the gate's budgets are steps and epochs; the seconds only
    # guard against a hang).
    unconverged = [s for s in b if b[s].status == "converged" and s in c and c[s].status == "not_converged"
                   and not c[s].reason.startswith("time budget")]
    shown = {"base": _statuses(b), "candidate": _statuses(c)}
    problems = []
    for label, seeds in (("no longer runs", [s for s in lost if s not in broke]), ("now fails", broke),
                         ("no longer converges", unconverged)):
        if seeds:
            reasons = sorted({_first_line(c[s].reason) for s in seeds if s in c and c[s].reason} or {"no result"})
            problems.append(f"{label} in seed(s) {', '.join(map(str, sorted(seeds)))}: {'; '.join(reasons)}")
    if problems:
        return Check(cell, "status", REGRESSION, **shown, why="; ".join(problems))
    gained = [s for s in c if c[s].status == "converged" and s in b and b[s].status != "converged"]
    if gained:
        return Check(cell, "status", IMPROVEMENT, **shown, why=f"converges in seed(s) {', '.join(map(str, gained))}")
    return Check(cell, "status", OK, **shown)


@dataclass
class _Pending:
    """A check whose verdict waits for the gate-wide error control."""

    index: int
    test: RankTest
    metric: GateMetric | None


def _launch_values(metric: GateMetric, launches: list[list[Result]]) -> list[float]:
    values = []
    for launch in launches:
        found = [v for v in (metric.value(r) for r in launch if r.status in TRAINED) if v is not None]
        if found:
            values.append(statistics.median(found))
    return values


def _clock_checks(cell: str, base: list[list[Result]], cand: list[list[Result]],
                  checks: list[Check], pending: list[_Pending]) -> None:
    for metric in CLOCK_AND_MEMORY:
        b, c = _launch_values(metric, base), _launch_values(metric, cand)
        if not b or not c:
            continue
        test = rank_sum_test(c, b, alternative=GREATER)
        shown = {"base": f"{statistics.median(b):.4g}", "candidate": f"{statistics.median(c):.4g}"}
        if test is None:
            checks.append(Check(cell, metric.name, NOT_JUDGED, **shown, why="not a positive number on a side"))
            continue
        pending.append(_Pending(len(checks), test, metric))
        checks.append(Check(cell, metric.name, OK, **shown, change=f"{test.estimate:.3f}x", p_value=test.p_value,
                            why=f"{len(c)} v {len(b)} launches"))


def _quality_checks(cell: str, base: list[list[Result]], cand: list[list[Result]],
                    checks: list[Check], pending: list[_Pending]) -> None:
    b, c = _seeds(base), _seeds(cand)
    trained = [r for r in b.values() if r.status in TRAINED and r.target is not None]
    if not trained:
        return
    target = trained[0].target
    worse = LESS if target.higher else GREATER
    target_split = target.split or "val"
    for split in dict.fromkeys((target_split, "test")):
        pairs = [(score(c[s], split, target.metric), score(b[s], split, target.metric)) for s in sorted(b) if s in c and c[s].status in TRAINED and b[s].status in TRAINED]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not pairs:
            continue
        figure = f"{split} {target.metric}"
        cand_median = statistics.median(x for x, _ in pairs)
        base_median = statistics.median(y for _, y in pairs)
        shown = {"base": f"{base_median:.4f}", "candidate": f"{cand_median:.4f}",
                 "change": f"{cand_median - base_median:+.4f}"}
        if split == target_split and not target.met_by(cand_median) and target.met_by(base_median):
            checks.append(Check(cell, figure, REGRESSION, **shown,
                                why=f"the candidate's median misses the target {target.value:g}, which the base's met"))
            continue
        test = signed_rank_test(pairs, alternative=worse)
        if test is None:
            continue
        pending.append(_Pending(len(checks), test, None))
        checks.append(Check(cell, figure, OK, **shown, p_value=test.p_value, why=f"{len(pairs)} seeds paired"))


def _samples_check(cell: str, base: list[list[Result]], cand: list[list[Result]],
                   checks: list[Check], pending: list[_Pending]) -> None:
    """Samples to target, paired by seed over the seeds both sides converged in."""
    b, c = _seeds(base), _seeds(cand)
    pairs = [(c[s].samples_to_target, b[s].samples_to_target) for s in sorted(b)
             if s in c and b[s].status == c[s].status == "converged"]
    pairs = [(x, y) for x, y in pairs if x and y]
    test = signed_rank_test(pairs, alternative=GREATER, ratio=True) if pairs else None
    if test is None:
        return
    pending.append(_Pending(len(checks), test, None))
    checks.append(Check(cell, "samples_to_target", OK, f"{statistics.median(y for _, y in pairs):.6g}",
                        f"{statistics.median(x for x, _ in pairs):.6g}", f"{test.estimate:.3f}x", test.p_value,
                        f"{len(pairs)} seeds paired"))


def _decide(checks: list[Check], pending: list[_Pending], settings: GateSettings) -> tuple[float, float, int]:
    """Turn the significant checks into regressions: the step tests under Tarone's rule at
    alpha * step_share, every other test under Tarone's rule at the rest (weighted Bonferroni: the
    two shares add up to alpha, so the gate's false-alarm rate stays at most alpha)."""
    step = [p for p in pending if p.metric is not None and p.metric.name == STEP]
    other = [p for p in pending if p not in step]
    levels = []
    for family, share in ((step, settings.step_share), (other, 1 - settings.step_share)):
        rejected, level = tarone_bonferroni([p.test for p in family], settings.alpha * share)
        levels.append(level)
        for item, reject in zip(family, rejected, strict=True):
            if reject:
                _reject(checks, item, level, settings)
    return levels[0], levels[1], len(pending)


def _reject(checks: list[Check], item: _Pending, level: float, settings: GateSettings) -> None:
    check = checks[item.index]
    if item.metric is not None and item.test.estimate < 1 + settings.min_change:
        checks[item.index] = replace(check, why=f"{check.why}; significant but under the {settings.min_change:.0%} "
                                              "that fails the gate")
        return
    checks[item.index] = replace(check, verdict=REGRESSION, why=f"{check.why}; p {item.test.p_value:.2g} <= {level:.2g}")


def judge(base: Rounds, candidate: Rounds, settings: GateSettings | None = None) -> Judgement:
    """Every check of the candidate against the base, cell by cell in the base's order; new
    candidate cells at the end."""
    settings = settings or GateSettings()
    base_cells, cand_cells = by_cell(base), by_cell(candidate)
    checks: list[Check] = []
    pending: list[_Pending] = []
    for cell, base_launches in base_cells.items():
        cand_launches = cand_cells.get(cell)
        if not cand_launches:
            checks.append(Check(cell, "status", REGRESSION, _statuses(_seeds(base_launches)), "missing",
                                why="the cell no longer exists in the candidate"))
            continue
        checks.append(coverage(cell, base_launches, cand_launches))
        _quality_checks(cell, base_launches, cand_launches, checks, pending)
        _samples_check(cell, base_launches, cand_launches, checks, pending)
        _clock_checks(cell, base_launches, cand_launches, checks, pending)
    for cell, cand_launches in cand_cells.items():
        if cell not in base_cells:
            checks.append(Check(cell, "status", NEW, "missing", _statuses(_seeds(cand_launches)),
                                why="a new cell: not in the base"))
    level, other_level, tests = _decide(checks, pending, settings)
    return Judgement(checks, settings.alpha, level, tests, other_level=other_level)


def package_differences(base: Iterable[Result], candidate: Iterable[Result]) -> list[str]:
    """Notes naming each package whose version differs between two sets of results (two locks)."""
    def versions(results: Iterable[Result]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for r in results:
            for name, version in (r.environment.extra.get("packages") or {}).items():
                found[name].add(str(version))
        return found

    b, c = versions(base), versions(candidate)
    differing = [f"{name} {'/'.join(sorted(b[name]))} -> {'/'.join(sorted(c[name]))}"
                 for name in sorted(b.keys() & c.keys()) if b[name] != c[name]]
    if not differing:
        return []
    return [f"The two sides ran on different package versions (different locks): {', '.join(differing)}. "
            "A difference may come from them, not from the code."]


def judge_alone(candidate: Rounds, why: str, allowed: bool = False) -> Judgement:
    """When the base could not run: the candidate against its own targets only. A seed that fails
    or is invalid, and a target split whose median misses the target, fail; nothing is compared.
    Unless `allowed` (bench gate --allow-no-base), the gate itself fails too: a change that stops
    the base from running the candidate's gate matrix must not pass every check unseen."""
    checks = []
    for cell, launches in by_cell(candidate).items():
        seeds = _seeds(launches)
        broke = sorted(s for s, r in seeds.items() if r.status in BROKEN)
        if broke:
            reasons = sorted({_first_line(seeds[s].reason) for s in broke} - {""})
            checks.append(Check(cell, "status", REGRESSION, candidate=_statuses(seeds),
                                why=f"fails in seed(s) {', '.join(map(str, broke))}: {'; '.join(reasons)}"))
        else:
            checks.append(Check(cell, "status", NOT_JUDGED, candidate=_statuses(seeds), why="no base to compare with"))
        trained = [r for r in seeds.values() if r.status in TRAINED and r.target is not None]
        if trained:
            target = trained[0].target
            split = target.split or "val"
            scores = [v for v in (score(r, split, target.metric) for r in trained) if v is not None]
            if scores and not target.met_by(statistics.median(scores)):
                checks.append(Check(cell, f"{split} {target.metric}", REGRESSION, candidate=f"{statistics.median(scores):.4f}",
                                    why=f"the candidate's median misses the target {target.value:g}"))
    if not allowed:
        checks.insert(0, Check("(the base)", "status", REGRESSION, candidate="not compared",
                               why=f"inconclusive: the base could not run ({why}); --allow-no-base accepts a "
                                   "judgement of the candidate alone"))
    return Judgement(checks, DEFAULT_ALPHA, DEFAULT_ALPHA, 0,
                     notes=[f"The base could not run ({why}): the candidate is judged against its targets alone; "
                            "speed, memory and quality changes are not judged."])
