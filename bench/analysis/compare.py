"""Judge a candidate run against a baseline run: per cell and metric, a regression or not.

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

Committed baselines live in results/baselines/<hardware-class>/ (one run's cells plus a
baseline.json naming its hardware; the ones it replaced under history/). `find_baseline` picks one
whose hardware matches on what decides the figures (`match_hardware`: cores, the CPU flags that
decide precision, GPUs), else the nearest, against which only status and quality are judged.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu
from tabulate import tabulate

from bench.analysis.stats import ratio_interval
from bench.errors import BenchError
from bench.results import (
    WITH_NUMBERS,
    Target,
    load_run,
    result_key,
    strict_json,
    write_atomic,
    write_json_atomic,
)

# ---------------------------------------------------------------------------------------------
# Metrics and settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A speed or memory figure of one result, with the direction in which it is better."""

    name: str
    kind: str  # "speed" or "memory"
    higher_is_better: bool
    keys: tuple[str, ...]
    """Where the figure is in a result: ("throughput", "samples_per_s")."""
    per_step: int = 0
    """+1 if the metric grows with the step time, -1 if it is its inverse, 0 if not step-derived.
    For step-derived metrics the per-step times are the repeated measurements."""

    def value(self, result: dict[str, Any]) -> float | None:
        return _get(*self.keys)(result)


def _get(*keys: str) -> Callable[[dict[str, Any]], float | None]:
    def value(result: dict[str, Any]) -> float | None:
        node: Any = result
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return float(node) if isinstance(node, (int, float)) and math.isfinite(node) else None

    return value


NUMBER, NOT_FINITE, NULL, ABSENT = "number", "not finite", "null", "absent"


def lookup(result: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, str]:
    """What a result holds at `keys`: (NUMBER, "") for a finite number; (NOT_FINITE, "nan") for
    NaN or an infinity, as older files hold them, or for a null that the writer recorded as one
    under `non_finite` (bench.results.write_json_atomic); (NULL, "") for a plain null (e.g. no
    time-to-target: the target was not met); (ABSENT, "") where the key is missing."""
    node: Any = result
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or keys[-1] not in node:
        return ABSENT, ""
    value = node[keys[-1]]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return NUMBER, ""
        return NOT_FINITE, "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    pointer = "/" + "/".join(k.replace("~", "~0").replace("/", "~1") for k in keys)
    reason = (result.get("non_finite") or {}).get(pointer) if isinstance(result.get("non_finite"), dict) else None
    if value is None:
        return (NOT_FINITE, str(reason)) if reason else (NULL, "")
    return NOT_FINITE, type(value).__name__


SPEED_AND_MEMORY = (
    Metric("samples_per_s", "speed", True, ("throughput", "samples_per_s"), per_step=-1),
    Metric("step_time_median_s", "speed", False, ("timings", "step_time_median_s"), per_step=1),
    Metric("time_to_target_s", "speed", False, ("timings", "time_to_target_s")),
    Metric("peak_rss_mb", "memory", False, ("memory", "peak_rss_mb_max")),
    Metric("cuda_max_allocated_mb", "memory", False, ("memory", "cuda_max_allocated_mb_max")),
)

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
class GateSettings:
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

REGRESSION, IMPROVEMENT, NOISE, OK, NEW = "regression", "improvement", "not significant", "ok", "new"
UNCONFIRMED = "not confirmed"
"""A speed regression that a re-run of the cell did not show again (`--recheck`, bench/analysis/recheck.py)."""
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


def group_key(result: dict[str, Any]) -> str:
    """The id of the result's cell without its seed (`CellKey.without_seed`): what a baseline and a
    candidate result are matched on, and what their seeds are aggregated over."""
    return result_key(result).without_seed().id


def group_by_cell(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(group_key(result), []).append(result)
    return groups


def compare_results(
    baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], settings: GateSettings
) -> list[GateVerdict]:
    """Every verdict, cell by cell, in the baseline's order; new candidate cells at the end."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)
    verdicts: list[GateVerdict] = []
    for key, base in base_groups.items():
        cand = cand_groups.get(key)
        if not cand:
            verdicts.append(GateVerdict(key, "status", REGRESSION, _statuses(base), "missing", why="cell missing from the candidate"))
            continue
        verdicts.extend(_compare_status(key, base, cand, same_hardware=settings.same_hardware))
        base_n = [r for r in base if r["status"] in WITH_NUMBERS and r["status"] != "baseline"]
        cand_n = [r for r in cand if r["status"] in WITH_NUMBERS and r["status"] != "baseline"]
        if base_n and cand_n:
            verdicts.extend(_compare_quality(key, base_n, cand_n, settings))
            if settings.judge_speed:
                verdicts.extend(_compare_speed(key, base_n, cand_n, settings))
    for key, cand in cand_groups.items():
        if key not in base_groups:
            verdicts.append(GateVerdict(key, "status", NEW, "missing", _statuses(cand), why="cell not in the baseline"))
    return verdicts


def data_differences(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> list[str]:
    """Notes naming each data file whose content (`data.sha256` of the results) differs between the two
    runs in a cell both ran. A result without hashes (written before they were recorded, as the
    committed baselines were) is unknown, not different: it gives no note."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)

    def hashes(results: list[dict[str, Any]]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for r in results:
            for name, sha in ((r.get("data") or {}).get("sha256") or {}).items():
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


def _statuses(results: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{status} {n}/{len(results)}" for status, n in counts.items())


def _compare_status(
    key: str, base: list[dict[str, Any]], cand: list[dict[str, Any]], same_hardware: bool = True
) -> list[GateVerdict]:
    def converged(results: list[dict[str, Any]]) -> float:
        return sum(r["status"] == "converged" for r in results) / len(results)

    def broken(results: list[dict[str, Any]]) -> float:
        return sum(r["status"] in ("failed", "invalid") for r in results) / len(results)

    before, after = _statuses(base), _statuses(cand)
    reasons = "; ".join(sorted({r["reason"] for r in cand if r.get("reason") and r["status"] != "converged"}))
    if broken(cand) > broken(base):
        return [GateVerdict(key, "status", REGRESSION, before, after, why=reasons or "now fails")]
    if (not same_hardware and converged(cand) < converged(base)
            and all(r["status"] in ("converged", "unsupported") for r in cand)):
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
    key: str, base: list[dict[str, Any]], cand: list[dict[str, Any]], settings: GateSettings
) -> list[GateVerdict]:
    target = Target.from_dict(base[0]["target"])
    metric, higher = target.metric, target.higher
    sign = 1.0 if higher else -1.0
    splits = [s for s, m in (base[0].get("metrics") or {}).items() if isinstance(m, dict) and metric in m]
    verdicts = []
    for split in splits:
        base_vals = [v for v in (_get("metrics", split, metric)(r) for r in base) if v is not None]
        if not base_vals:
            continue  # the baseline has no number here: nothing to hold the candidate to
        name = f"{split} {metric}"
        missing = _not_numbers(cand, ("metrics", split, metric), absent_too=True)
        if missing:
            b = statistics.mean(base_vals)
            verdicts.append(GateVerdict(key, name, REGRESSION, baseline=f"{b:.4f}", candidate=missing[0], why=missing[1]))
            continue
        cand_vals = [v for v in (_get("metrics", split, metric)(r) for r in cand) if v is not None]
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


def _not_numbers(results: list[dict[str, Any]], keys: tuple[str, ...], absent_too: bool) -> tuple[str, str] | None:
    """(what the candidate shows, why it fails) when any result holds no finite number at `keys`
    where the baseline has one: NaN, an infinity, a null (for a quality metric, where a null is
    never "not measured"), or, with `absent_too`, no value at all. None when every result has one."""
    found: list[str] = []
    for r in results:
        state, reason = lookup(r, keys)
        if state == NOT_FINITE or (state == NULL and absent_too):
            found.append(reason or "null")
        elif state == ABSENT and absent_too:
            found.append("missing")
    if not found:
        return None
    seeds = f" in {len(found)} of {len(results)} seeds" if len(results) > 1 else ""
    label = " ".join(keys[1:])
    if all(f == "missing" for f in found):
        return "missing", f"the candidate has no {label}{seeds}; the baseline has a number"
    shown = ", ".join(dict.fromkeys(f for f in found if f != "missing"))
    return shown, f"not a finite number ({shown}){seeds}; the baseline has a number"


def _allowance(base_vals: list[float]) -> str:
    return f"seed spread over {len(base_vals)} seeds, floored at the tolerance" if len(base_vals) > 1 else "tolerance, 1 seed"


# -- speed and memory -----------------------------------------------------------------------------


def _step_times(results: list[dict[str, Any]]) -> list[float] | None:
    """Steady per-step times pooled over seeds; None if any result predates step_times_s."""
    pooled: list[float] = []
    for r in results:
        times = (r.get("timings") or {}).get("step_times_s")
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
    metric: Metric, base: list[dict[str, Any]], cand: list[dict[str, Any]], cand_larger: bool, alpha: float
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
        b_samples = [r.get("samples_to_target") for r in base]
        c_samples = [r.get("samples_to_target") for r in cand]
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
    metric: Metric, base: list[dict[str, Any]], cand: list[dict[str, Any]], cand_larger: bool
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
    key: str, base: list[dict[str, Any]], cand: list[dict[str, Any]], settings: GateSettings
) -> list[GateVerdict]:
    verdicts = []
    for metric in SPEED_AND_MEMORY:
        # Time-to-target follows each seed's optimisation path (how many samples it needs): a
        # single candidate seed is judged against that same seed of the baseline, not its median.
        # Clocks and memory do not depend on the path: every baseline seed counts for those.
        base_for_metric, note = _same_seeds(base, cand, metric) if metric.name == "time_to_target_s" else (base, "")
        verdicts += _compare_metric(key, metric, base_for_metric, cand, settings, note)
    return verdicts


def _same_seeds(base: list[dict[str, Any]], cand: list[dict[str, Any]],
                metric: Metric) -> tuple[list[dict[str, Any]], str]:
    """The baseline's results of the candidate's own seeds, and a note naming them, when the
    candidate has a single seed and the baseline holds it, with a figure for `metric`, among
    several; else (base, ""): a baseline seed that did not reach the target has no time-to-target,
    and the candidate's is then judged against the baseline's other seeds rather than not at all.

    The gate runs one seed (seed 0) against a baseline of five: the seeds of one cell need
    different numbers of samples to reach the target (27,904 to 48,832 for the smoke LSTM on
    2 processes), so seed 0's time-to-target against the median of five is a comparison of two
    optimisation paths, not of two clocks (it failed a commit that changed nothing, +61%)."""
    seeds = {r["cell"].get("seed") for r in cand}
    if len(cand) != 1 or len(base) < 2:
        return base, ""
    matching = [r for r in base if r["cell"].get("seed") in seeds and metric.value(r) is not None]
    if not matching:
        return base, ""
    return matching, f"seed for seed: the baseline's seed {_listed(sorted(seeds))} of {len(base)}"


def _compare_metric(key: str, metric: Metric, base: list[dict[str, Any]], cand: list[dict[str, Any]],
                    settings: GateSettings, note: str) -> list[GateVerdict]:
    """The verdict of one speed or memory metric of one cell (none when a side has no figure);
    `note` says which baseline seeds it was judged against, when not all of them."""
    base_vals = [v for v in map(metric.value, base) if v is not None]
    if not base_vals:
        return []
    broken = _not_numbers(cand, metric.keys, absent_too=False)
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


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_HEADERS = ["verdict", "cell", "metric", "baseline", "candidate", "change", "p", "why"]


def _rows(verdicts: list[GateVerdict]) -> list[list[str]]:
    return [
        [v.verdict, v.cell, v.metric, v.baseline, v.candidate, v.change, "" if v.p_value is None else f"{v.p_value:.2g}", v.why]
        for v in verdicts
    ]


def render_gate_markdown(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The report: a headline, the regressions and improvements, then changes within noise."""
    order = {REGRESSION: 0, IMPROVEMENT: 1, NEW: 2}
    shown = sorted((v for v in verdicts if v.verdict in order), key=lambda v: order[v.verdict])
    noise = [v for v in verdicts if v.verdict in (NOISE, UNCONFIRMED, HARDWARE_DIFFERS)]
    regressions = sum(v.verdict == REGRESSION for v in verdicts)
    improvements = sum(v.verdict == IMPROVEMENT for v in verdicts)
    cells = len({v.cell for v in verdicts})
    lines = [
        f"# bench compare: {candidate_name} against {baseline_name}",
        "",
        f"**{'FAIL' if regressions else 'PASS'}**: {regressions} regression(s), {improvements} improvement(s) "
        f"over {cells} cell(s) and {len(verdicts)} check(s)."
        + ("" if speed_judged else " Status and quality only: speed and memory not judged (different hardware)."),
        "",
    ]
    lines += [f"> {note}" for note in notes] + ([""] if notes else [])
    if shown:
        lines += [tabulate(_rows(shown), headers=_HEADERS, tablefmt="github"), ""]
    else:
        lines += ["No regressions and no improvements.", ""]
    if noise:
        lines += [
            "Past the threshold but not significant, not confirmed on a re-run, or unsupported on other hardware (not failing):",
            "",
            tabulate(_rows(noise), headers=_HEADERS, tablefmt="github"),
            "",
        ]
    return "\n".join(lines)


NOT_JUDGED = "not judged"
"""A speed or memory metric left unjudged because the runs' hardware differs (`speed_not_judged`).
Only the JSON and JUnit outputs list them; compare_results never returns one."""

FORMATS = ("text", "json", "junit")


def speed_not_judged(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], reason: str) -> list[GateVerdict]:
    """The speed and memory checks compare_results would have made had the hardware matched: one
    per cell both runs have numbers for and metric the baseline has a figure for, with `reason`."""
    base_groups, cand_groups = group_by_cell(baseline), group_by_cell(candidate)
    skipped = []
    for key, base in base_groups.items():
        base_n = [r for r in base if r["status"] in WITH_NUMBERS and r["status"] != "baseline"]
        cand_n = [r for r in cand_groups.get(key, []) if r["status"] in WITH_NUMBERS and r["status"] != "baseline"]
        if not base_n or not cand_n:
            continue
        for metric in SPEED_AND_MEMORY:
            if any(metric.value(r) is not None for r in base_n):
                skipped.append(GateVerdict(key, metric.name, NOT_JUDGED, why=reason))
    return skipped


def _summary(verdicts: list[GateVerdict]) -> tuple[int, int, int]:
    judged = [v for v in verdicts if v.verdict != NOT_JUDGED]
    regressions = sum(v.verdict == REGRESSION for v in judged)
    improvements = sum(v.verdict == IMPROVEMENT for v in judged)
    return regressions, improvements, len({v.cell for v in judged})


def render_json(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The verdicts as one strict JSON document (no NaN: a non-finite p-value is null)."""
    regressions, improvements, cells = _summary(verdicts)
    document = {
        "baseline": baseline_name,
        "candidate": candidate_name,
        "passed": regressions == 0,
        "regressions": regressions,
        "improvements": improvements,
        "cells": cells,
        "checks": sum(v.verdict != NOT_JUDGED for v in verdicts),
        "speed_judged": speed_judged,
        "notes": notes,
        "verdicts": [
            {"cell": v.cell, "metric": v.metric, "verdict": v.verdict, "baseline": v.baseline, "candidate": v.candidate,
             "change": v.change, "p_value": v.p_value, "why": v.why}
            for v in verdicts
        ],
    }
    return strict_json(document)


def render_junit(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The verdicts as JUnit XML, as CI systems read test results: one testcase per (cell, metric),
    its classname the cell and its name the metric. A regression is a <failure> with its reason;
    a check not judged (different hardware: "not judged...") is <skipped> with the reason; every other verdict
    (ok, improvement, not significant, not confirmed, new) passes, its verdict and reason in
    <system-out>."""
    failures = sum(v.verdict == REGRESSION for v in verdicts)
    skipped = sum(v.verdict.startswith(NOT_JUDGED) for v in verdicts)
    counts = {"tests": str(len(verdicts)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "bench compare", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"bench compare: {candidate_name} against {baseline_name}", **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", baseline_name), ("candidate", candidate_name), ("speed_judged", str(speed_judged).lower())):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for i, note in enumerate(notes):
        ET.SubElement(properties, "property", {"name": f"note{i + 1}", "value": note})
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", {"classname": v.cell, "name": v.metric, "time": "0"})
        figures = _figures(v)
        if v.verdict == REGRESSION:
            failure = ET.SubElement(case, "failure", {"type": REGRESSION, "message": v.why or "regression"})
            failure.text = figures
        elif v.verdict.startswith(NOT_JUDGED):  # also a status that other hardware explains
            ET.SubElement(case, "skipped", {"message": v.why or v.verdict})
        else:
            ET.SubElement(case, "system-out").text = f"{v.verdict}: {figures}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _figures(v: GateVerdict) -> str:
    parts = [f"baseline {v.baseline or '-'}", f"candidate {v.candidate or '-'}"]
    if v.change:
        parts.append(f"change {v.change}")
    if v.p_value is not None and math.isfinite(v.p_value):
        parts.append(f"p {v.p_value:.2g}")
    return ", ".join(parts) + (f"; {v.why}" if v.why else "")


RENDERERS = {"text": render_gate_markdown, "json": render_json, "junit": render_junit}


# ---------------------------------------------------------------------------------------------
# Loading runs, and the committed baselines
# ---------------------------------------------------------------------------------------------


def hardware_classes(results: list[dict[str, Any]]) -> set[str]:
    return {r["environment"]["hardware_class"] for r in results if (r.get("environment") or {}).get("hardware_class")}


@dataclass(frozen=True)
class Hardware:
    """What decides a run's speed and memory figures: core count, the CPU flags that decide
    precision (bench.harness.measure.PRECISION_FLAGS) and the GPU models. The CPU model string does not
    (one VM class reports "Intel(R) Xeon(R) Processor @ 2.50GHz" or "AMD EPYC"); it is kept in
    `name` (the hardware class) for people and takes no part in equality."""

    cpu_count: int | None
    flags: tuple[str, ...] | None
    """None: not recorded (results measured before bench recorded them)."""
    gpus: tuple[str, ...]
    """One model name per device, sorted; () on a CPU-only host."""
    name: str = field(default="", compare=False)

    @classmethod
    def of_environment(cls, env: Any) -> Hardware | None:
        """From a result's `environment` (or bench.harness.host.hardware()); None if it records none."""
        if not isinstance(env, dict) or not (env.get("hardware_class") or env.get("cpu_count")):
            return None
        name = str(env.get("hardware_class") or "")
        gpus = tuple(sorted(str(g) for g in env.get("gpus") or ()))
        if not gpus and name.startswith("gpu-"):
            gpus = (name[len("gpu-"):],)  # a result that names its GPUs only in its class
        flags = env.get("cpu_precision_flags")
        return cls(env.get("cpu_count"), None if flags is None else tuple(sorted(flags)), gpus, name)

    def to_json(self) -> dict[str, Any]:
        return {"cpu_count": self.cpu_count, "cpu_precision_flags": None if self.flags is None else list(self.flags),
                "gpus": list(self.gpus), "hardware_class": self.name}

    def describe(self) -> str:
        cores = f"{self.cpu_count} cores" if self.cpu_count else "core count unknown"
        flags = ("CPU precision flags not recorded" if self.flags is None
                 else f"CPU precision flags: {', '.join(self.flags) or 'none'}")
        return f"{cores}, {flags}, {_gpu_text(self.gpus) or 'no GPU'}"


def _gpu_text(gpus: tuple[str, ...]) -> str:
    counts: dict[str, int] = {}
    for g in gpus:
        counts[g] = counts.get(g, 0) + 1
    return " + ".join(f"{n}x {g}" for g, n in counts.items())


def run_hardware(results: list[dict[str, Any]]) -> list[Hardware]:
    """The distinct hardware a run's results were measured on (none where no result records it)."""
    found = (Hardware.of_environment(r.get("environment")) for r in results)
    return list(dict.fromkeys(h for h in found if h is not None))


def hardware_of(results: list[dict[str, Any]]) -> Hardware | None:
    """The one hardware of a run; None when its results record none or more than one."""
    found = run_hardware(results)
    return found[0] if len(found) == 1 else None


def match_hardware(base: Hardware, cand: Hardware) -> tuple[bool, str]:
    """(whether speed and memory figures are comparable, why). A GPU run never matches a CPU run.
    A side that records no precision flags matches on core count and GPUs only, and `why` says so."""
    if base.gpus != cand.gpus:
        if not base.gpus or not cand.gpus:
            return False, (f"a GPU run against a CPU run: baseline {_gpu_text(base.gpus) or 'no GPU'}, "
                           f"candidate {_gpu_text(cand.gpus) or 'no GPU'}")
        return False, f"GPUs differ: baseline {_gpu_text(base.gpus)}, candidate {_gpu_text(cand.gpus)}"
    if base.cpu_count != cand.cpu_count:
        return False, f"core counts differ: baseline {base.cpu_count}, candidate {cand.cpu_count}"
    if base.flags is not None and cand.flags is not None and base.flags != cand.flags:
        return False, (f"CPU precision flags differ: baseline {', '.join(base.flags) or 'none'}, "
                       f"candidate {', '.join(cand.flags) or 'none'}")
    names = (f"; the hardware classes {base.name} and {cand.name} differ only in the CPU model string, "
             "which does not decide the figures") if base.name != cand.name else ""
    if base.flags is None or cand.flags is None:
        who = ("neither run records its" if base.flags is None and cand.flags is None
               else f"{'the baseline' if base.flags is None else 'the candidate'} records no")
        return True, (f"{who} CPU precision flags (measured before bench recorded them), so matched on core count "
                      f"and GPUs only: {cand.cpu_count} cores, {_gpu_text(cand.gpus) or 'no GPU'}{names}")
    return True, f"same core count, CPU precision flags and GPUs: {cand.describe()}{names}"


def compare_hardware(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> tuple[bool, str]:
    """(whether the two runs' speed and memory are comparable, why), from their results' environments."""
    base, cand = run_hardware(baseline), run_hardware(candidate)
    if not base and not cand:
        return True, "neither run records its hardware"
    if len(base) != 1 or len(cand) != 1:
        def listed(hw: list[Hardware]) -> str:
            return "; ".join(h.describe() for h in hw) or "not recorded"

        return False, f"the runs do not each come from one hardware: baseline {listed(base)}; candidate {listed(cand)}"
    return match_hardware(base[0], cand[0])


def load(path: Path) -> list[dict[str, Any]]:
    """A run directory or a single result file (bench.results checks the schema)."""
    if not Path(path).exists():
        raise BenchError(f"{path}: no such run directory or result file")
    return load_run(Path(path))


def latest_run(results_dir: Path) -> Path:
    """The most recently started run directory under results/ (by its run.json, else the folder).

    Not by name: run ids may be given by hand (`--run-id`)."""

    def started(run: Path) -> float:
        meta = run / "run.json"
        return (meta if meta.exists() else run).stat().st_mtime

    runs = sorted((p for p in results_dir.glob("*") if (p / "cells").is_dir() and p.name != "baselines"), key=started)
    if not runs:
        raise BenchError(f"no run directories under {results_dir}")
    return runs[-1]


BASELINE_META = "baseline.json"


def baseline_slug(hardware_class: str) -> str:
    """A folder name for a hardware class (its exact string is kept in baseline.json)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", hardware_class).strip("-")


HISTORY = "history"
"""Inside a baseline's folder: the baselines it replaced, one folder each, named by when they were
saved. `--baseline auto` never looks there."""


@dataclass
class BaselineChoice:
    path: Path
    hardware: Hardware
    matched: bool
    """Whether speed and memory are comparable (`match_hardware`); if not, this is the nearest."""
    how: str


def baseline_hardware(folder: Path, meta: dict[str, Any]) -> Hardware | None:
    """A committed baseline's hardware: from its baseline.json, or, for one saved before
    baseline.json recorded it, from its cells' environments."""
    hardware = Hardware.of_environment(meta.get("hardware"))
    if hardware is not None:
        return hardware
    try:
        return hardware_of(load_run(folder))
    except BenchError:
        return None


def _distance(base: Hardware, want: Hardware) -> tuple:
    """How far a baseline's hardware is from the wanted one, for picking the nearest: a GPU host
    is farther than any CPU of another size; then other GPUs; then the ratio of core counts;
    then the precision flags that differ."""
    kind = bool(base.gpus) != bool(want.gpus)
    cores = abs(math.log2(base.cpu_count / want.cpu_count)) if base.cpu_count and want.cpu_count else math.inf
    flags = len(set(base.flags) ^ set(want.flags)) if base.flags is not None and want.flags is not None else 0
    return kind, base.gpus != want.gpus, cores, flags


def find_baseline(baselines_dir: Path, hardware: Hardware) -> BaselineChoice:
    """The committed baseline for `hardware`: one that matches it (`match_hardware`), preferring a
    match on recorded precision flags, then the same hardware class, then the newest; where none
    matches, the nearest, with `matched` False (judge status and quality only). An error only
    when there is no baseline at all."""
    candidates = []
    for meta_path in sorted(baselines_dir.glob(f"*/{BASELINE_META}")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(meta, dict):
            continue
        found = baseline_hardware(meta_path.parent, meta)
        if found is None:
            continue
        matched, how = match_hardware(found, hardware)
        full = found.flags is not None and hardware.flags is not None
        saved = str(meta.get("saved_utc") or "")
        rank = (not matched, not full, _distance(found, hardware), found.name != hardware.name)
        candidates.append((rank, saved, BaselineChoice(meta_path.parent, found, matched, how)))
    if not candidates:
        raise BenchError(
            f"no committed baseline fits this hardware ({hardware.name or hardware.describe()}): none under {baselines_dir}; "
            "save one with `bench compare --save-baseline RUN_DIR`",
            exit_code=2,
        )
    candidates.sort(key=lambda c: c[1], reverse=True)  # the newest first among equals (the sort is stable)
    candidates.sort(key=lambda c: c[0])
    return candidates[0][2]


def save_baseline(run_dir: Path, baselines_dir: Path) -> Path:
    """Make a run the committed baseline of its hardware: baselines_dir/<hardware-class>/.

    The previous baseline of that folder is kept under its history/<saved time>/. Nothing is
    written in place: the new cells and baseline.json are written whole into a hidden folder
    beside them, the previous baseline is copied whole into history/, and only then do two
    renames swap the new cells in and one replaces baseline.json. A failure before the swap
    leaves the previous baseline as it was."""
    results = load(run_dir)
    if not Path(run_dir).is_dir():
        raise BenchError(f"{run_dir}: --save-baseline wants a run directory, not a single file")
    classes = hardware_classes(results)
    hardware = hardware_of(results)
    if len(classes) != 1 or hardware is None:
        raise BenchError(f"{run_dir}: a baseline needs results from one hardware class, found {max(len(classes), len(run_hardware(results)))}")
    hardware_class = classes.pop()
    target = baselines_dir / baseline_slug(hardware_class)
    commits = sorted({str((r.get("environment") or {}).get("git_commit")) for r in results})
    meta: dict[str, Any] = {
        "hardware_class": hardware_class,
        "hardware": hardware.to_json(),
        "source_run": Path(run_dir).resolve().name,
        "git_commits": commits,
        "cells": len(results),
        "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=target))
        try:
            for cell in sorted((Path(run_dir) / "cells").glob("*.json")):
                write_atomic(staging / "cells" / cell.name, cell.read_bytes())
            (staging / "cells").mkdir(exist_ok=True)
            previous = _archive(target)
            if previous:
                meta["previous"] = f"{HISTORY}/{previous.name}"
            write_json_atomic(staging / BASELINE_META, meta)
            if (target / "cells").exists():
                os.rename(target / "cells", staging / "replaced-cells")
            try:
                os.rename(staging / "cells", target / "cells")
            except OSError:
                if (staging / "replaced-cells").exists():  # put the previous cells back before staging goes
                    os.rename(staging / "replaced-cells", target / "cells")
                raise
            os.replace(staging / BASELINE_META, target / BASELINE_META)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise BenchError(f"cannot save the baseline in {target}: {exc.strerror or exc}") from None
    return target


def _archive(target: Path) -> Path | None:
    """Copy the baseline in `target` (if any) whole into target/history/<saved time>/."""
    meta_path = target / BASELINE_META
    if not meta_path.exists() and not (target / "cells").is_dir():
        return None
    try:
        saved = str(json.loads(meta_path.read_text()).get("saved_utc") or "")
    except (OSError, json.JSONDecodeError, AttributeError):
        saved = ""
    stamp = re.sub(r"[^0-9A-Za-z]", "", saved) or time.strftime(
        "%Y%m%dT%H%M%SZ", time.gmtime(meta_path.stat().st_mtime if meta_path.exists() else time.time()))
    history = target / HISTORY
    history.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".archiving-", dir=history))
    try:
        for path in sorted((target / "cells").glob("*.json")):
            write_atomic(staging / "cells" / path.name, path.read_bytes())
        if meta_path.exists():
            write_atomic(staging / BASELINE_META, meta_path.read_bytes())
        final, n = history / stamp, 1
        while final.exists():
            n += 1
            final = history / f"{stamp}-{n}"
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
