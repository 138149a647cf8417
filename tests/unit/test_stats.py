"""bench.analysis.stats.ratio_interval: the ratio with an interval that every comparison of the report rests on."""

from __future__ import annotations

import dataclasses

import pytest

from bench.analysis.stats import RatioInterval, ratio_interval

# Time-to-target of one cell over 5 seeds, twice from the same commit (made-up figures with the
# spread of the smoke cells: about 10% between seeds).
RUN_A = [3.1, 3.4, 2.9, 3.6, 3.2]


RUN_B = [3.3, 3.0, 3.5, 2.8, 3.1]


def test_two_runs_of_the_same_commit_are_no_difference():
    interval = ratio_interval(RUN_B, RUN_A)
    assert interval is not None and not interval.excludes_one
    assert interval.low < 1 < interval.high
    assert (interval.n_candidate, interval.n_reference) == (5, 5)


def test_an_injected_30_percent_slowdown_is_slower():
    slower = [t * 1.3 for t in RUN_B]
    interval = ratio_interval(slower, RUN_A)
    assert interval is not None and interval.excludes_one and interval.low > 1
    assert interval.ratio == pytest.approx(1.3 * 3.1 / 3.2)


def test_a_speedup_lies_below_one():
    interval = ratio_interval([t / 2 for t in RUN_B], RUN_A)
    assert interval.high < 1 and interval.excludes_one


def test_fewer_than_two_finite_values_on_a_side_gives_none():
    assert ratio_interval([3.0], RUN_A) is None
    assert ratio_interval(RUN_A, [3.0, None, float("nan")]) is None
    assert ratio_interval([], []) is None
    assert ratio_interval([1.0, None, 2.0], [1.0, 2.0]) is not None  # None and NaN are dropped, not counted


def test_a_reference_that_is_not_positive_gives_none():
    assert ratio_interval([1.0, 2.0], [0.0, 1.0]) is None


@pytest.mark.parametrize(("cand", "ref", "apart"), [
    ([1.0, 2.0], [3.0, 4.0], True),
    ([1.0, 2.0, 3.0], [3.0, 4.0, 5.0], False),  # touching ranges
    ([1.0, 2.0, 2.9], [3.0, 4.0, 5.0], True),
])
def test_with_two_or_three_seeds_the_interval_is_the_range_rule(cand, ref, apart):
    interval = ratio_interval(cand, ref)
    assert interval.low == pytest.approx(min(cand) / max(ref))
    assert interval.high == pytest.approx(max(cand) / min(ref))
    assert interval.excludes_one == apart


def test_identical_seeds_give_a_point_interval():
    same = ratio_interval([500.0, 500.0, 500.0], [500.0, 500.0])
    assert (same.ratio, same.low, same.high, same.excludes_one) == (1.0, 1.0, 1.0, False)
    more = ratio_interval([600.0, 600.0], [500.0, 500.0])
    assert more.low == pytest.approx(1.2) and more.excludes_one


def test_reproducible_for_a_seed_and_frozen():
    assert ratio_interval(RUN_B, RUN_A, seed=3) == ratio_interval(RUN_B, RUN_A, seed=3)
    interval = ratio_interval(RUN_B, RUN_A)
    assert isinstance(interval, RatioInterval)
    with pytest.raises(dataclasses.FrozenInstanceError):
        interval.ratio = 2.0  # type: ignore[misc]


def test_a_lower_confidence_gives_a_narrower_interval():
    wide, narrow = ratio_interval(RUN_B, RUN_A, 0.95), ratio_interval(RUN_B, RUN_A, 0.5)
    assert wide.low <= narrow.low <= narrow.high <= wide.high

