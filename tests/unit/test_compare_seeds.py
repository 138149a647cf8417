"""`bench compare` with several seeds per cell: seeds aggregated per CellKey.without_seed(), speed and
memory judged by the 95% interval of the ratio of medians over seeds (the baseline's own spread).

Built from the real fixture run of tests/{unit,e2e}/test_compare.py (tests/fixtures/compare/run_a), its seeds
made by scaling every clock figure by a chosen factor (a seed's run on a slower or faster moment).

The tests that start processes are in tests/e2e/test_compare_seeds.py."""

from __future__ import annotations

import copy

from bench.analysis.gate.against_baseline import NOISE, compare_results
from bench.analysis.gate.against_baseline import BaselineSettings as GateSettings
from bench.analysis.gate.judge import IMPROVEMENT, OK, REGRESSION
from tests.helpers.compare_seeds import _seed, _seeds

SPEED = ("samples_per_s", "step_time_median_s", "time_to_target_s")


def _verdicts(base: list[dict], cand: list[dict]) -> dict[str, object]:
    return {v.metric: v for v in compare_results(base, cand, GateSettings())}


def test_two_runs_of_the_same_commit_with_three_seeds_pass(base_result) -> None:
    verdicts = _verdicts(_seeds(base_result, [1.0, 1.06, 0.95]), _seeds(base_result, [1.03, 0.97, 1.08]))
    assert not any(v.verdict == REGRESSION for v in verdicts.values())
    assert all(verdicts[m].verdict == OK for m in SPEED)


def test_a_30_percent_slowdown_over_three_seeds_is_a_regression_with_its_interval(base_result) -> None:
    verdicts = _verdicts(_seeds(base_result, [1.0, 1.06, 0.95]), _seeds(base_result, [1.03, 0.97, 1.08], 1 / 0.7))
    for metric in SPEED:
        v = verdicts[metric]
        assert v.verdict == REGRESSION, (metric, v.why)
        assert "95% interval of the median ratio" in v.why and "over 3 vs 3 seeds excludes 1" in v.why
        assert v.p_value is None
    assert verdicts["samples_per_s"].change == "-32.0%"  # medians: 0.7 / 1.03 against 1 / 1.0


def test_a_speedup_over_seeds_is_an_improvement(base_result) -> None:
    verdicts = _verdicts(_seeds(base_result, [1.0, 1.06, 0.95]), _seeds(base_result, [1.03, 0.97, 1.08], 0.5))
    assert verdicts["samples_per_s"].verdict == IMPROVEMENT


def test_a_change_inside_the_baselines_own_spread_is_not_significant(base_result) -> None:
    # The baseline's seeds spread 0.8x-1.6x: a candidate 35% slower by the medians is within it.
    verdicts = _verdicts(_seeds(base_result, [0.8, 1.0, 1.6]), _seeds(base_result, [1.35, 1.3, 1.4]))
    assert verdicts["samples_per_s"].verdict == NOISE
    assert "includes 1" in verdicts["samples_per_s"].why
    assert not any(v.verdict == REGRESSION for v in verdicts.values())


def test_one_slow_baseline_seed_of_five_does_not_make_the_cell_lenient(base_result) -> None:
    # One of five baseline seeds ran 60% slow. Saved alone, as one-seed baselines were, it would
    # let a candidate 70% slower than the others pass (+6% against it); with five seeds the medians
    # hold the other four and the slowdown fails.
    slow_seed = _seeds(base_result, [1.6])
    cand = _seeds(base_result, [1.0, 1.02, 0.98, 1.01, 0.99], 1.7)
    assert _verdicts(slow_seed, cand)["samples_per_s"].verdict == OK
    base = _seeds(base_result, [1.0, 1.02, 0.98, 1.01, 1.6])
    verdict = _verdicts(base, cand)["samples_per_s"]
    assert verdict.verdict == REGRESSION and "5 vs 5 seeds excludes 1" in verdict.why
    # A candidate no slower than that slow seed is within the baseline's own spread: not significant.
    within = _verdicts(base, _seeds(base_result, [1.0, 1.02, 0.98, 1.01, 0.99], 1 / 0.7))["samples_per_s"]
    assert within.verdict == NOISE


def test_memory_over_seeds(base_result) -> None:
    base = [_seed(base_result, s, 1.0, m) for s, m in enumerate((1.0, 1.001, 0.999))]
    hungry = [_seed(base_result, s, 1.0, m * 1.3) for s, m in enumerate((1.0, 1.002, 0.998))]
    assert _verdicts(base, hungry)["peak_rss_mb"].verdict == REGRESSION
    assert _verdicts(base, base)["peak_rss_mb"].verdict == OK


def test_one_seed_against_several_keeps_the_single_seed_rules(base_result) -> None:
    # Fewer than 2 seeds on a side: no interval; the step times are tested as before.
    verdicts = _verdicts([_seed(base_result, 0, 1.0)], _seeds(base_result, [1.03, 0.97, 1.08], 1 / 0.7))
    assert verdicts["samples_per_s"].verdict == REGRESSION
    assert "Mann-Whitney U" in verdicts["samples_per_s"].why and verdicts["samples_per_s"].p_value is not None


def _longer_path(result: dict, factor: float) -> dict:
    """`result` as a seed whose optimisation path needs `factor` times the samples (and time) to target."""
    r = copy.deepcopy(result)
    r["samples_to_target"] = int(r["samples_to_target"] * factor)
    r["timings"]["time_to_target_s"] *= factor
    return r


def test_one_seed_is_judged_against_the_same_seed_of_a_baseline_of_several(base_result) -> None:
    # The gate's case: seed 0 needs 1.75x the samples of the other seeds (as the smoke LSTM's does
    # on 2 processes), so it is 1.75x the baseline's median time-to-target with nothing changed.
    baseline = [_longer_path(_seed(base_result, 0, 1.0), 1.75)] + [_seed(base_result, s, c) for s, c in
                                                                   zip(range(1, 5), [1.02, 0.98, 1.01, 0.99], strict=True)]
    unchanged = _verdicts(baseline, [_longer_path(_seed(base_result, 0, 1.03), 1.75)])
    assert unchanged["time_to_target_s"].verdict == OK
    assert "seed for seed: the baseline's seed 0 of 5" in unchanged["time_to_target_s"].why
    slower = _verdicts(baseline, [_longer_path(_seed(base_result, 0, 1.6), 1.75)])
    assert slower["time_to_target_s"].verdict == REGRESSION, slower["time_to_target_s"].why
    assert "seed for seed" in slower["time_to_target_s"].why
    # Without its own seed in the baseline, the median of the baseline's seeds is what it meets.
    other = _verdicts(baseline[1:], [_longer_path(_seed(base_result, 0, 1.0), 1.75)])
    assert other["time_to_target_s"].verdict == REGRESSION and "seed for seed" not in other["time_to_target_s"].why
    # Nor when its seed did not reach the target in the baseline: still judged, never dropped.
    missed = copy.deepcopy(baseline[0])
    missed["status"], missed["timings"]["time_to_target_s"], missed["samples_to_target"] = "not_converged", None, None
    judged = _verdicts([missed, *baseline[1:]], [_longer_path(_seed(base_result, 0, 1.6), 1.75)])
    assert judged["time_to_target_s"].verdict == REGRESSION and "seed for seed" not in judged["time_to_target_s"].why

