"""Judge a candidate run against a baseline run (`bench compare`): per cell and metric, a regression or not.

Cells are matched by their key without the seed (bench.cells.CellKey: workload-variant, topology,
precision) and aggregated over seeds. Each metric has a direction and a kind, and each kind its own rule:

- status: a cell that disappears, that converged in fewer of its seeds, or that now fails or is
  invalid, is a regression (the reverse is an improvement).
- quality (the workload's target metric on every evaluated split; higher is better unless the
  result's target says otherwise): a regression when the candidate misses the target the baseline met,
  or falls below the baseline by more than the baseline's own seed spread (max - min over seeds),
  never less than an absolute tolerance (the only allowance with a single seed).
- speed and memory: a regression only when the relative change of the medians over seeds is past
  a per-metric threshold AND significant: with 2+ seeds on each side, when the 95% interval of the
  ratio of medians over seeds (which carries the baseline's own spread) excludes 1; with one seed
  on a side, by a one-sided Mann-Whitney U at level alpha over the repeated measurements there
  are (per-step times). A shared CPU makes timings noisy; the threshold says what size of change
  matters, the interval or test says whether it is more than noise. See `_significance`.

Which baseline, and whether its hardware lets speed be judged: bench/analysis/gate/baselines.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import mannwhitneyu

from bench.analysis.gate.judge import IMPROVEMENT, NEW, NOT_JUDGED, OK, REGRESSION
from bench.analysis.gate.metrics import (
    ABSENT,
    NOT_FINITE,
    NULL,
    SPEED_AND_MEMORY,
    GateMetric,
    figure_state,
    finite,
    score,
    score_state,
)
from bench.analysis.stats import ratio_interval
from bench.errors import BenchError
from bench.results import WITH_NUMBERS, Result, as_results

# ---------------------------------------------------------------------------------------------
# Settings (the figures: metrics.SPEED_AND_MEMORY)
# ---------------------------------------------------------------------------------------------


# Relative change that counts, per metric: past the noise of honest runs of the same commit, inside
# the 30% a slowdown worth failing for shows. Throughput (a mean over steady steps) is the steadiest
# speed figure: two honest runs in tests/fixtures/compare differ by 0.3%. The median step time is
# not: on a loaded machine step times are bimodal and the same two runs' medians differ by 19%,
# hence 25%. Time-to-target also moves by whole evaluation intervals, hence 30%.
DEFAULT_THRESHOLDS = {
    "samples_per_s": 0.20,
    "step_time_median_s": 0.25,
    "time_to_target_s": 0.30,
    "peak_rss_mb": 0.15,
    "cuda_max_allocated_mb": 0.10,
}
DEFAULT_QUALITY_TOLERANCE = 0.02
DEFAULT_ALPHA = 0.01


@dataclass
class BaselineSettings:
    """How strict the gate is. Thresholds are relative changes (0.2 = 20%)."""

    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    quality_tolerance: float = DEFAULT_QUALITY_TOLERANCE
    """Absolute drop of a quality metric always allowed (the whole allowance with one seed)."""
    alpha: float = DEFAULT_ALPHA
    """Significance level of the one-sided Mann-Whitney U test."""
    judge_speed: bool = True
    """False when the two runs come from different hardware: speed and memory are not comparable."""
    same_hardware: bool = True
    """Whether the two runs' hardware matches. Where it does not, a cell the candidate's host
    reports `unsupported` (no kernel there) is not a status regression. Apart from judge_speed:
    --any-hardware judges speed on other hardware but does not make it the same hardware."""


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """`["samples_per_s=0.15", ...]` -> the default thresholds with those replaced."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in thresholds:
            raise BenchError(f"--threshold wants METRIC=FRACTION with METRIC one of {', '.join(thresholds)}; got {item!r}")
        try:
            fraction = float(value)
        except ValueError:
            raise BenchError(f"--threshold {item!r}: {value!r} is not a number") from None
        if not 0 < fraction < 10:
            raise BenchError(f"--threshold {item!r}: the fraction must be positive (0.2 = 20%)")
        thresholds[name] = fraction
    return thresholds


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

NOISE = "not significant"
"""Past the threshold but not significant. (REGRESSION, IMPROVEMENT, OK, NEW and NOT_JUDGED are the
side-by-side gate's words, from judge.py; NOT_JUDGED here: speed or memory left unjudged because the
runs' hardware differs, listed only by the JSON and JUnit outputs, never by compare_results.)"""
UNCONFIRMED = "not confirmed"
"""A speed regression that a re-run of the cell did not show again (`--recheck`, bench/analysis/gate/recheck.py)."""
HARDWARE_DIFFERS = "not judged (other hardware)"
"""A status that other hardware explains: the candidate's host has no kernel for the cell."""


@dataclass
class GateVerdict:
    """What the gate says of one check: a cell's (`group_key`) metric, baseline against candidate.
    (Not bench.harness.verify.Verdict, which says whether a launch was what it claimed.)"""

    cell: str
    metric: str
    verdict: str
    baseline: str = ""
    candidate: str = ""
    change: str = ""
    p_value: float | None = None
    why: str = ""


def group_key(result: Result | dict[str, Any]) -> str:
    """The id of the result's cell without its seed (`CellKey.without_seed`): what a baseline and a
    candidate result are matched on, and what their seeds are aggregated over. A dict (a result file's object,
    as the harness writes it) is read as a Result first."""
    return as_results([result])[0].key.without_seed().id


def group_by_cell(results: Iterable[Result | dict[str, Any]]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = {}
    for result in as_results(results):
        groups.setdefault(group_key(result), []).append(result)
    return groups


def _with_numbers(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status in WITH_NUMBERS and r.status != "baseline"]


def compare_results(
    baseline: Iterable[Result | dict[str, Any]], candidate: Iterable[Result | dict[str, Any]], settings: BaselineSettings
) -> list[GateVerdict]:
    """Every verdict, cell by cell, in the baseline's order; new candidate cells at the end. Results
    are read as records (bench.results.Result); a dict (a result file's object) is read into one."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)
    verdicts: list[GateVerdict] = []
    for key, base in base_groups.items():
        cand = cand_groups.get(key)
        if not cand:
            verdicts.append(GateVerdict(key, "status", REGRESSION, _statuses(base), "missing", why="cell missing from the candidate"))
            continue
        verdicts.extend(_compare_status(key, base, cand, same_hardware=settings.same_hardware))
        base_n, cand_n = _with_numbers(base), _with_numbers(cand)
        if base_n and cand_n:
            verdicts.extend(_compare_quality(key, base_n, cand_n, settings))
            if settings.judge_speed:
                verdicts.extend(_compare_speed(key, base_n, cand_n, settings))
    for key, cand in cand_groups.items():
        if key not in base_groups:
            verdicts.append(GateVerdict(key, "status", NEW, "missing", _statuses(cand), why="cell not in the baseline"))
    return verdicts


def data_differences(baseline: Iterable[Result | dict[str, Any]], candidate: Iterable[Result | dict[str, Any]]) -> list[str]:
    """Notes naming each data file whose content (`data.sha256` of the results) differs between the two
    runs in a cell both ran. A result without hashes (written before they were recorded, as the
    committed baselines were) is unknown, not different: it gives no note."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)

    def hashes(results: list[Result]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for r in results:
            for name, sha in (r.data.sha256 or {}).items():
                found.setdefault(name, set()).add(sha)
        return found

    differing: dict[str, tuple[set[str], set[str], set[str]]] = {}
    for key in base_groups.keys() & cand_groups.keys():
        base, cand = hashes(base_groups[key]), hashes(cand_groups[key])
        for name in base.keys() & cand.keys():
            if base[name] != cand[name]:
                base_shas, cand_shas, keys = differing.setdefault(name, (set(), set(), set()))
                base_shas.update(base[name])
                cand_shas.update(cand[name])
                keys.add(key)

    def short(shas: set[str]) -> str:
        return " / ".join(f"{sha[:12]}..." for sha in sorted(shas))

    return [
        f"Different data: {name} has SHA-256 {short(base)} in the baseline and {short(cand)} in the candidate "
        f"({len(keys)} cell(s)); their figures do not compare like for like."
        for name, (base, cand, keys) in sorted(differing.items())
    ]


def _statuses(results: list[Result]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{status} {n}/{len(results)}" for status, n in counts.items())


def _compare_status(
    key: str, base: list[Result], cand: list[Result], same_hardware: bool = True
) -> list[GateVerdict]:
    def converged(results: list[Result]) -> float:
        return sum(r.status == "converged" for r in results) / len(results)

    def broken(results: list[Result]) -> float:
        return sum(r.status in ("failed", "invalid") for r in results) / len(results)

    before, after = _statuses(base), _statuses(cand)
    reasons = "; ".join(sorted({r.reason for r in cand if r.reason and r.status != "converged"}))
    if broken(cand) > broken(base):
        return [GateVerdict(key, "status", REGRESSION, before, after, why=reasons or "now fails")]
    if (not same_hardware and converged(cand) < converged(base)
            and all(r.status in ("converged", "unsupported") for r in cand)):
        # Other hardware may lack a kernel the baseline's had (a bf16 LSTM needs AVX-512 on a
        # CPU): a cell that this host reports `unsupported` says what the host can do, not that
        # the change broke it. `failed` and `invalid` still fail above.
        return [GateVerdict(key, "status", HARDWARE_DIFFERS, before, after,
                        why=f"unsupported on this hardware, which differs from the baseline's: {reasons}")]
    if converged(cand) < converged(base):
        return [GateVerdict(key, "status", REGRESSION, before, after, why=reasons or "converges in fewer seeds")]
    if broken(cand) < broken(base) or converged(cand) > converged(base):
        return [GateVerdict(key, "status", IMPROVEMENT, before, after, why="converges in more seeds or no longer fails")]
    return [GateVerdict(key, "status", OK, before, after)]


# -- quality ------------------------------------------------------------------------------------


def _compare_quality(
    key: str, base: list[Result], cand: list[Result], settings: BaselineSettings
) -> list[GateVerdict]:
    target = base[0].target
    metric, higher = target.metric, target.higher
    sign = 1.0 if higher else -1.0
    splits = [s for s, m in (base[0].metrics or {}).items() if isinstance(m, dict) and metric in m]
    verdicts = []
    for split in splits:
        base_vals = [v for v in (finite(score(r, split, metric)) for r in base) if v is not None]
        if not base_vals:
            continue  # the baseline has no number here: nothing to hold the candidate to
        name = f"{split} {metric}"
        missing = _not_numbers([score_state(r, split, metric) for r in cand], name, absent_too=True)
        if missing:
            b = statistics.mean(base_vals)
            verdicts.append(GateVerdict(key, name, REGRESSION, baseline=f"{b:.4f}", candidate=missing[0], why=missing[1]))
            continue
        cand_vals = [v for v in (finite(score(r, split, metric)) for r in cand) if v is not None]
        b, c = statistics.mean(base_vals), statistics.mean(cand_vals)
        spread = max(base_vals) - min(base_vals)
        allowed = max(spread, settings.quality_tolerance)
        shown = dict(baseline=f"{b:.4f}", candidate=f"{c:.4f}", change=f"{c - b:+.4f}")
        if split == (target.split or "val") and target.met_by(b) and not target.met_by(c):
            verdicts.append(GateVerdict(key, name, REGRESSION, **shown, why=f"below the target {target.value:g}"))
        elif sign * (c - b) < -allowed:
            verdicts.append(GateVerdict(key, name, REGRESSION, **shown, why=f"worse by more than {allowed:.4f} ({_allowance(base_vals)})"))
        elif sign * (c - b) > allowed:
            verdicts.append(GateVerdict(key, name, IMPROVEMENT, **shown, why=f"better by more than {allowed:.4f}"))
        else:
            verdicts.append(GateVerdict(key, name, OK, **shown))
    return verdicts


def _not_numbers(states: list[tuple[str, str]], label: str, absent_too: bool) -> tuple[str, str] | None:
    """(what the candidate shows, why it fails) when any of its results holds no finite number for
    the figure `label` (`states`: its `metrics.figure_state` in each result) where the baseline has
    one: NaN, an infinity, a null (for a quality metric, where a null is never "not measured"), or,
    with `absent_too`, no value at all. None when every result has one."""
    found: list[str] = []
    for state, reason in states:
        if state == NOT_FINITE or (state == NULL and absent_too):
            found.append(reason or "null")
        elif state == ABSENT and absent_too:
            found.append("missing")
    if not found:
        return None
    seeds = f" in {len(found)} of {len(states)} seeds" if len(states) > 1 else ""
    if all(f == "missing" for f in found):
        return "missing", f"the candidate has no {label}{seeds}; the baseline has a number"
    shown = ", ".join(dict.fromkeys(f for f in found if f != "missing"))
    return shown, f"not a finite number ({shown}){seeds}; the baseline has a number"


def _allowance(base_vals: list[float]) -> str:
    return f"seed spread over {len(base_vals)} seeds, floored at the tolerance" if len(base_vals) > 1 else "tolerance, 1 seed"


# -- speed and memory -----------------------------------------------------------------------------


def _step_times(results: list[Result]) -> list[float] | None:
    """Steady per-step times pooled over seeds; None if any result predates step_times_s."""
    pooled: list[float] = []
    for r in results:
        times = r.timings.step_times_s
        if not times:
            return None
        pooled.extend(times)
    return pooled


def _one_sided_p(base: list[float], cand: list[float], cand_larger: bool) -> float:
    """P-value that the candidate's values are stochastically larger (or smaller) by chance."""
    return float(mannwhitneyu(cand, base, alternative="greater" if cand_larger else "less").pvalue)


def _can_reach(n1: int, n2: int, alpha: float) -> bool:
    """Whether an exact one-sided Mann-Whitney test on n1 vs n2 values can reach p <= alpha at all
    (its smallest p is 1 / C(n1+n2, n1): 1 vs 1 values give 0.5, 3 vs 3 give 0.05)."""
    return n1 > 0 and n2 > 0 and 1.0 / math.comb(n1 + n2, n1) <= alpha


def _significance(
    metric: GateMetric, base: list[Result], cand: list[Result], cand_larger: bool, alpha: float
) -> tuple[float | None, bool, str]:
    """(p-value, significant?, how it was decided) for a change in the direction observed
    (`cand_larger`: the candidate's value of the metric is the larger one).

    - With 2 or more seeds on each side: the 95% interval of the ratio of medians over seeds
      (`_seed_interval`), which carries the baseline's own spread, decides; no p-value.
    Otherwise, with a single seed on a side, as before seeds were aggregated:

    - Step-derived metrics (throughput, step time): the per-step times of all seeds are the
      repeated measurements; the test asks whether the candidate's steps are slower (faster).
    - Other metrics: the per-seed values, when there are enough seeds for the test to reach alpha.
    - With too few seeds, time-to-target borrows the step-time test when the same number of
      samples was needed (then only the step speed moved it); a change in samples-to-target is a
      different optimisation path, not clock noise, and counts as significant.
    - With too few seeds, peak memory is judged on the threshold alone: a high-water mark of a
      seeded run repeats to within a few MB (440.0 vs 439.7 MB here), it is not a noisy clock.
    """
    seeded = _seed_interval(metric, base, cand, cand_larger)
    if seeded is not None:
        return seeded
    step_base, step_cand = _step_times(base), _step_times(cand)
    if metric.per_step and step_base and step_cand:
        # Higher throughput means shorter steps: test the step times in the matching direction.
        steps_larger = cand_larger if metric.per_step > 0 else not cand_larger
        p = _one_sided_p(step_base, step_cand, steps_larger)
        return p, p <= alpha, f"Mann-Whitney U over {len(step_base)} vs {len(step_cand)} step times"
    base_vals = [v for v in map(metric.value, base) if v is not None]
    cand_vals = [v for v in map(metric.value, cand) if v is not None]
    if _can_reach(len(base_vals), len(cand_vals), alpha):
        p = _one_sided_p(base_vals, cand_vals, cand_larger)
        return p, p <= alpha, f"Mann-Whitney U over {len(base_vals)} vs {len(cand_vals)} seeds"
    if metric.name == "time_to_target_s":
        b_samples = [r.samples_to_target for r in base]
        c_samples = [r.samples_to_target for r in cand]
        if b_samples != c_samples:
            return None, True, f"samples to target changed ({_listed(b_samples)} -> {_listed(c_samples)})"
        if step_base and step_cand:
            p = _one_sided_p(step_base, step_cand, cand_larger)
            return p, p <= alpha, "same samples to target; Mann-Whitney U over the step times"
        return None, False, "too few seeds and no step times to test"
    if metric.kind == "memory":
        return None, True, "one measurement per side: threshold only (peak memory repeats closely)"
    return None, False, "too few measurements to test"


def _seed_interval(
    metric: GateMetric, base: list[Result], cand: list[Result], cand_larger: bool
) -> tuple[None, bool, str] | None:
    """Significance from the seeds themselves, when each side has 2 or more values of the metric:
    the change counts when the 95% interval of median(candidate) / median(baseline) lies wholly on
    the side of 1 the medians moved to (bench.analysis.stats.ratio_interval). The interval's width
    comes from the spread of the baseline's seeds and the candidate's, so a noisy baseline cell
    asks for a larger change and a steady one for less. Pooled step times are not used here: they
    are hundreds of values from each run, and what varies between runs (the host's load, the
    seed's path) is exactly what they leave out. None with a single value on a side (the rules
    that follow, unchanged, judge that)."""
    base_vals = [v for v in map(metric.value, base) if v is not None]
    cand_vals = [v for v in map(metric.value, cand) if v is not None]
    interval = ratio_interval(cand_vals, base_vals) if len(base_vals) >= 2 and len(cand_vals) >= 2 else None
    if interval is None:
        return None
    beyond = interval.low > 1 if cand_larger else interval.high < 1
    return None, beyond, (f"95% interval of the median ratio {interval.ratio:.2f}x [{interval.low:.2f}-{interval.high:.2f}] "
                          f"over {len(base_vals)} vs {len(cand_vals)} seeds {'excludes' if beyond else 'includes'} 1")


def _listed(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def _compare_speed(
    key: str, base: list[Result], cand: list[Result], settings: BaselineSettings
) -> list[GateVerdict]:
    verdicts = []
    for metric in SPEED_AND_MEMORY:
        # Time-to-target follows each seed's optimisation path (how many samples it needs): a
        # single candidate seed is judged against that same seed of the baseline, not its median.
        # Clocks and memory do not depend on the path: every baseline seed counts for those.
        base_for_metric, note = _same_seeds(base, cand, metric) if metric.name == "time_to_target_s" else (base, "")
        verdicts += _compare_metric(key, metric, base_for_metric, cand, settings, note)
    return verdicts


def _same_seeds(base: list[Result], cand: list[Result], metric: GateMetric) -> tuple[list[Result], str]:
    """The baseline's results of the candidate's own seeds, and a note naming them, when the
    candidate has a single seed and the baseline holds it, with a figure for `metric`, among
    several; else (base, ""): a baseline seed that did not reach the target has no time-to-target,
    and the candidate's is then judged against the baseline's other seeds rather than not at all.

    The gate runs one seed (seed 0) against a baseline of five: the seeds of one cell need
    different numbers of samples to reach the target (27,904 to 48,832 for the smoke LSTM on
    2 processes), so seed 0's time-to-target against the median of five is a comparison of two
    optimisation paths, not of two clocks (it failed a commit that changed nothing, +61%)."""
    seeds = {r.cell.seed for r in cand}
    if len(cand) != 1 or len(base) < 2:
        return base, ""
    matching = [r for r in base if r.cell.seed in seeds and metric.value(r) is not None]
    if not matching:
        return base, ""
    return matching, f"seed for seed: the baseline's seed {_listed(sorted(seeds))} of {len(base)}"


def _compare_metric(key: str, metric: GateMetric, base: list[Result], cand: list[Result],
                    settings: BaselineSettings, note: str) -> list[GateVerdict]:
    """The verdict of one speed or memory metric of one cell (none when a side has no figure);
    `note` says which baseline seeds it was judged against, when not all of them."""
    base_vals = [v for v in map(metric.value, base) if v is not None]
    if not base_vals:
        return []
    broken = _not_numbers([figure_state(r, metric.read(r), metric.pointer) for r in cand], metric.name,
                          absent_too=False)
    if broken:
        b = statistics.median(base_vals)
        return [GateVerdict(key, metric.name, REGRESSION, baseline=f"{b:.4g}", candidate=broken[0], why=broken[1])]
    cand_vals = [v for v in map(metric.value, cand) if v is not None]
    if not cand_vals:
        return []
    b, c = statistics.median(base_vals), statistics.median(cand_vals)
    if b == 0:
        return []
    change = (c - b) / b
    worse = change < 0 if metric.higher_is_better else change > 0
    shown = dict(baseline=f"{b:.4g}", candidate=f"{c:.4g}", change=f"{change:+.1%}")
    threshold = settings.thresholds[metric.name]
    if abs(change) < threshold:
        return [GateVerdict(key, metric.name, OK, **shown, why=note)]
    p, significant, how = _significance(metric, base, cand, change > 0, settings.alpha)
    verdict = (REGRESSION if worse else IMPROVEMENT) if significant else NOISE
    why = f"{'worse' if worse else 'better'} by {abs(change):.0%} (threshold {threshold:.0%}); {how}"
    return [GateVerdict(key, metric.name, verdict, **shown, p_value=p, why=f"{why}; {note}" if note else why)]



def speed_not_judged(
    baseline: Iterable[Result | dict[str, Any]], candidate: Iterable[Result | dict[str, Any]], reason: str
) -> list[GateVerdict]:
    """The speed and memory checks compare_results would have made had the hardware matched: one
    per cell both runs have numbers for and metric the baseline has a figure for, with `reason`."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)
    skipped = []
    for key, base in base_groups.items():
        base_n, cand_n = _with_numbers(base), _with_numbers(cand_groups.get(key, []))
        if not base_n or not cand_n:
            continue
        for metric in SPEED_AND_MEMORY:
            if any(metric.value(r) is not None for r in base_n):
                skipped.append(GateVerdict(key, metric.name, NOT_JUDGED, why=reason))
    return skipped

