"""The statistics a report and the gate rest on, kept pure (numbers in, numbers out) so they can be
tested, and tested by simulation (tests/unit/test_error_rates.py, docs/report.md, docs/gate.md).

Every claim ("faster", "slower", "regression") comes from an exact test whose error rate holds at
the sample size it is used at:

- `rank_sum_test`: Wilcoxon-Mann-Whitney over two independent samples (seeds, or the gate's
  launches), exact by permutation, with the Hodges-Lehmann ratio and the smallest p-value the
  samples could give (`min_p`: 3 v 3 seeds can never reach 5% two-sided). Seeds that did not reach
  the target enter as censored (slower than every measured one).
- `signed_rank_test`: Wilcoxon's signed-rank test over pairs (the same seed on both sides).
- `holm` (the report: all of its claims together) and `tarone_bonferroni` (the gate: tests that
  could not decide anything take no share of alpha) keep the family-wise error rate at alpha.
- `SequentialDesign`: `--seeds auto` spends alpha over the looks that can decide.
- `olympic_mean` follows MLPerf's rule for runs that did not converge.

`ratio_interval` (a percentile bootstrap of the ratio of medians) is kept for `bench compare`
against committed baselines; the report and the gate no longer use it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import bootstrap, mannwhitneyu, permutation_test, rankdata, wilcoxon

OLYMPIC_MIN_SEEDS = 5
"""MLPerf scores time-to-target over 5+ runs by dropping the fastest and the slowest."""


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers (None and NaN dropped)."""
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def median(values: Sequence[float | None]) -> float | None:
    vals = finite(values)
    return statistics.median(vals) if vals else None


def value_range(values: Sequence[float | None]) -> tuple[float, float] | None:
    """(min, max) of the numbers among `values`, None when there are none."""
    vals = finite(values)
    return (min(vals), max(vals)) if vals else None


def olympic_mean(values: Sequence[float | None], unconverged: int = 0) -> float | None:
    """MLPerf's score of a time-to-target over OLYMPIC_MIN_SEEDS or more runs: drop the fastest and
    the slowest, average the rest. A run that did not converge counts as the slowest (so it is the
    one dropped); a second makes the result invalid (None), as do fewer than OLYMPIC_MIN_SEEDS runs.
    `values` are the converged runs' times; `unconverged` counts the others."""
    vals = sorted(finite(values))
    if unconverged > 1 or len(vals) + unconverged < OLYMPIC_MIN_SEEDS:
        return None
    kept = vals[1:] if unconverged else vals[1:-1]
    return statistics.fmean(kept)


def speedup(reference_seconds: float | None, seconds: float | None) -> float | None:
    """How many times faster than the reference (>1 = faster). None if either side is unknown."""
    if reference_seconds is None or seconds is None or seconds <= 0:
        return None
    return reference_seconds / seconds


def rate_ratio(rate: float | None, reference_rate: float | None) -> float | None:
    """Throughput ratio against the reference (>1 = more samples per second)."""
    if rate is None or reference_rate is None or reference_rate <= 0:
        return None
    return rate / reference_rate


def scaling_efficiency(rate: float | None, single_process_rate: float | None, processes: int) -> float | None:
    """Fraction of the ideal N-fold throughput that N processes delivered (1.0 = perfect scaling)."""
    ratio = rate_ratio(rate, single_process_rate)
    if ratio is None or processes < 1:
        return None
    return ratio / processes


def ranges_overlap(a: Sequence[float | None], b: Sequence[float | None]) -> bool:
    """True when the min-max ranges of the two samples overlap (touching counts as overlap)."""
    ra, rb = value_range(a), value_range(b)
    if ra is None or rb is None:
        return True
    return ra[0] <= rb[1] and rb[0] <= ra[1]


@dataclass(frozen=True)
class Comparison:
    """How `a` stands against `b` given the seed spread."""

    verdict: str
    """'higher', 'lower', 'overlap' (inconclusive: ranges overlap), 'single-seed' or 'unknown'."""

    @property
    def conclusive(self) -> bool:
        return self.verdict in ("higher", "lower")


def compare(a: Sequence[float | None], b: Sequence[float | None]) -> Comparison:
    """Compare two seed samples by their ranges: a difference only where the ranges are apart."""
    va, vb = finite(a), finite(b)
    if not va or not vb:
        return Comparison("unknown")
    if len(va) < 2 or len(vb) < 2:
        return Comparison("single-seed")
    if ranges_overlap(va, vb):
        return Comparison("overlap")
    return Comparison("higher" if min(va) > max(vb) else "lower")


# ---------------------------------------------------------------------------------------------
# Ratios with an interval over seeds
# ---------------------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class RatioInterval:
    """median(candidate) / median(reference) and a confidence interval for it over the seeds."""

    ratio: float
    low: float
    high: float
    n_candidate: int
    n_reference: int

    @property
    def excludes_one(self) -> bool:
        """Whether the interval says the two sides differ (it lies wholly above or below 1)."""
        return self.low > 1.0 or self.high < 1.0


def _median_ratio(candidate: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(candidate, axis=axis) / np.median(reference, axis=axis)


def ratio_interval(candidate: Sequence[float | None], reference: Sequence[float | None],
                   confidence: float = 0.95, seed: int = 0) -> RatioInterval | None:
    """The ratio of the medians of two seed samples, with a percentile-bootstrap interval.

    None when either side has fewer than 2 finite values (no spread to resample) or when the
    reference holds a value that is not positive (a resample could then divide by zero or flip
    the sign: every figure compared this way, seconds, rates, MB, scores, is positive).
    The two samples are resampled independently (they are different cells, not paired seeds).
    The percentile method, not BCa: with 2-5 values BCa's acceleration estimate is undefined
    or wild (scipy warns of degenerate data), while the percentile interval stays inside the
    ratios the seeds can produce. `seed` fixes the resampling, so a report is reproducible.
    """
    cand, ref = finite(candidate), finite(reference)
    if len(cand) < 2 or len(ref) < 2 or min(ref) <= 0:
        return None
    with warnings.catch_warnings():
        # Identical seeds (a memory peak that repeats to the MB) make a degenerate but valid
        # bootstrap distribution: the interval is the single ratio, which is the right answer.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap((np.asarray(cand), np.asarray(ref)), _median_ratio, vectorized=True, paired=False,
                           confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                           rng=np.random.default_rng(seed))
    ratio = float(statistics.median(cand) / statistics.median(ref))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    # The point estimate always lies in its interval; resampling noise could put it a hair outside.
    return RatioInterval(ratio, min(low, ratio), max(high, ratio), len(cand), len(ref))


# ---------------------------------------------------------------------------------------------
# Claims with a known error rate: exact rank tests over seeds or launches, and the control of
# the error rate across the many claims of one gate or report (docs/statistics.md)
# ---------------------------------------------------------------------------------------------

EXACT_ARRANGEMENTS = 200_000
"""Enumerate every arrangement of the values up to this many (exact p-values); beyond it, a Monte
Carlo permutation test whose p-value, (hits + 1) / (resamples + 1), is still valid."""
MONTE_CARLO_RESAMPLES = 99_999
GREATER, LESS, TWO_SIDED = "greater", "less", "two-sided"


@dataclass(frozen=True)
class RankTest:
    """An exact permutation test of a candidate sample against a reference sample.

    `estimate` is the Hodges-Lehmann estimate: for two independent samples the median of the
    pairwise ratios candidate/reference (or differences, `ratio=False`); for paired samples the
    median of the pair ratios (differences). `p_value` is for the alternative the test was asked
    (candidate `greater`, `less`, or `two-sided`); `min_p` is the smallest p-value the test could
    have given on these values in any arrangement, which says whether a sample is large enough to
    decide anything at all (and lets Tarone's rule leave undecidable tests out of the count)."""

    estimate: float
    """NaN when censored values leave a side with no measured one."""
    p_value: float
    min_p: float
    n_candidate: int
    n_reference: int
    paired: bool
    ratio: bool


def _rank_sum(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Wilcoxon's rank sum of `x` in the pooled sample (midranks for ties)."""
    ranks = rankdata(np.concatenate([x, y], axis=axis), axis=axis)
    return np.sum(ranks[..., : x.shape[axis]], axis=axis)


def _signed_rank(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Wilcoxon's signed-rank statistic of paired differences (zeros keep their rank, count 0: Pratt)."""
    return np.sum(np.sign(d) * rankdata(np.abs(d), axis=axis), axis=axis)


def _arrangements(n: int, m: int, paired: bool) -> int:
    return 2**n if paired else math.comb(n + m, n)


def _p_and_min(result: Any, alternative: str, arrangements: int) -> tuple[float, float]:
    null = np.asarray(result.null_distribution)
    eps = 1e-9 * max(1.0, float(np.max(np.abs(null))) if null.size else 1.0)
    exact = arrangements <= EXACT_ARRANGEMENTS
    top = float(np.mean(null >= np.max(null) - eps)) if exact else 1.0 / arrangements
    bottom = float(np.mean(null <= np.min(null) + eps)) if exact else 1.0 / arrangements
    if not exact:  # a Monte Carlo p-value is never below 1 / (resamples + 1)
        top = bottom = max(top, 1.0 / (MONTE_CARLO_RESAMPLES + 1))
    min_p = {GREATER: top, LESS: bottom, TWO_SIDED: min(1.0, 2 * min(top, bottom))}[alternative]
    return float(result.pvalue), min_p


def rank_sum_test(candidate: Sequence[float | None], reference: Sequence[float | None],
                  alternative: str = TWO_SIDED, ratio: bool = True, seed: int = 0,
                  censored: tuple[int, int] = (0, 0)) -> RankTest | None:
    """Wilcoxon-Mann-Whitney rank-sum test of two independent samples, by exact permutation
    (conditional on ties; Monte Carlo past EXACT_ARRANGEMENTS). Its error rate holds at any sample
    size for exchangeable values; a small sample simply cannot reach a small p-value (3 v 3: 0.05
    one-sided at best, `min_p`). None when a side has no value, or (`ratio`) a value is not positive.

    `censored` = (candidate, reference) counts of values known only to lie above every measured
    one: seeds that did not reach the target, whose time-to-target is at least their budget. They
    rank last (tied with each other) in the test and take no part in the estimate, which is None
    when a side has no measured value."""
    cand, ref = np.asarray(finite(candidate)), np.asarray(finite(reference))
    if ratio and ((cand.size and np.min(cand) <= 0) or (ref.size and np.min(ref) <= 0)):
        return None
    if censored != (0, 0):
        return _censored_rank_sum(cand, ref, alternative, ratio, seed, censored)
    if not cand.size or not ref.size:
        return None
    arrangements = _arrangements(cand.size, ref.size, paired=False)
    if np.unique(np.concatenate([cand, ref])).size == cand.size + ref.size:
        # No ties: scipy's exact Mann-Whitney distribution, the same p-value, without enumerating.
        p = float(mannwhitneyu(cand, ref, alternative=alternative, method="exact").pvalue)
        min_p = min(1.0, (1 if alternative != TWO_SIDED else 2) / arrangements)
    else:
        p, min_p = _tied_rank_sum(cand, ref, alternative, seed)
    return RankTest(_hodges_lehmann(cand, ref, ratio), p, min_p, int(cand.size), int(ref.size), paired=False, ratio=ratio)


def _tied_rank_sum(cand: np.ndarray, ref: np.ndarray, alternative: str, seed: int) -> tuple[float, float]:
    """(p, min_p) of the rank-sum test with ties (midranks), conditional on them: every way of
    choosing which pooled values are the candidate's, enumerated; Monte Carlo past EXACT_ARRANGEMENTS."""
    arrangements = _arrangements(cand.size, ref.size, paired=False)
    if arrangements > EXACT_ARRANGEMENTS:  # both sides are large here, as permutation_test needs
        result = permutation_test((cand, ref), _rank_sum, permutation_type="independent", vectorized=True,
                                  alternative=alternative, rng=np.random.default_rng(seed),
                                  n_resamples=MONTE_CARLO_RESAMPLES)
        return _p_and_min(result, alternative, arrangements)
    ranks = rankdata(np.concatenate([cand, ref]))
    chosen = np.array(list(itertools.combinations(range(ranks.size), cand.size)))
    null = ranks[chosen].sum(axis=1)
    observed = ranks[: cand.size].sum()
    eps = 1e-9 * ranks.size**2
    upper, lower = float(np.mean(null >= observed - eps)), float(np.mean(null <= observed + eps))
    top, bottom = float(np.mean(null >= null.max() - eps)), float(np.mean(null <= null.min() + eps))
    p = {GREATER: upper, LESS: lower, TWO_SIDED: min(1.0, 2 * min(upper, lower))}[alternative]
    min_p = {GREATER: top, LESS: bottom, TWO_SIDED: min(1.0, 2 * min(top, bottom))}[alternative]
    return p, min_p


def _hodges_lehmann(cand: np.ndarray, ref: np.ndarray, ratio: bool) -> float | None:
    if not cand.size or not ref.size:
        return None
    if ratio:
        return float(np.exp(np.median(np.subtract.outer(np.log(cand), np.log(ref)))))
    return float(np.median(np.subtract.outer(cand, ref)))


def _censored_rank_sum(cand: np.ndarray, ref: np.ndarray, alternative: str, ratio: bool, seed: int,
                       censored: tuple[int, int]) -> RankTest | None:
    full_cand = np.concatenate([cand, np.full(censored[0], np.inf)])
    full_ref = np.concatenate([ref, np.full(censored[1], np.inf)])
    if not full_cand.size or not full_ref.size:
        return None
    p, min_p = _tied_rank_sum(full_cand, full_ref, alternative, seed)
    estimate = _hodges_lehmann(cand, ref, ratio)
    return RankTest(math.nan if estimate is None else estimate, p, min_p, int(full_cand.size), int(full_ref.size),
                    paired=False, ratio=ratio)


def signed_rank_test(pairs: Sequence[tuple[float, float]], alternative: str = TWO_SIDED,
                     ratio: bool = False, seed: int = 0) -> RankTest | None:
    """Wilcoxon's signed-rank test of (candidate, reference) pairs, by exact sign flips: for
    figures that are a function of the seed, where the same seed on both sides is a pair (a
    quality metric on one host). Pairs that are equal carry no evidence: all equal gives p = 1 and
    min_p = 1. None without a pair of numbers."""
    kept = [(c, r) for c, r in pairs if c is not None and r is not None and math.isfinite(c) and math.isfinite(r)
            and (not ratio or (c > 0 and r > 0))]
    if not kept:
        return None
    cand, ref = np.array([c for c, _ in kept]), np.array([r for _, r in kept])
    diffs = np.log(cand) - np.log(ref) if ratio else cand - ref
    n = diffs.size
    if not np.any(diffs):
        return RankTest(1.0 if ratio else 0.0, 1.0, 1.0, n, n, paired=True, ratio=ratio)
    arrangements = _arrangements(n, n, paired=True)
    if np.all(diffs != 0) and np.unique(np.abs(diffs)).size == n:
        # No zero and no tie: scipy's exact signed-rank distribution.
        p = float(wilcoxon(diffs, alternative=alternative, method="exact").pvalue)
        min_p = min(1.0, (1 if alternative != TWO_SIDED else 2) / arrangements)
    else:
        result = permutation_test((diffs,), _signed_rank, permutation_type="samples", vectorized=True,
                                  alternative=alternative, rng=np.random.default_rng(seed),
                                  n_resamples=np.inf if arrangements <= EXACT_ARRANGEMENTS else MONTE_CARLO_RESAMPLES)
        p, min_p = _p_and_min(result, alternative, arrangements)
    middle = float(np.median(diffs))
    return RankTest(math.exp(middle) if ratio else middle, p, min_p, n, n, paired=True, ratio=ratio)


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rule: which of the hypotheses to reject so that the chance of rejecting
    any true one stays at most `alpha` (family-wise), whatever their dependence."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - step):
            break
        rejected[i] = True
    return rejected


def tarone_count(min_ps: Sequence[float], alpha: float) -> int:
    """Tarone's K: the smallest k such that at most k tests could reach p <= alpha / k at all.
    Tests that could not (too few values, or values identical on both sides) need no share of
    alpha; Bonferroni over the other K keeps the family-wise rate at most alpha (Tarone 1990)."""
    for k in range(1, len(min_ps) + 1):
        if sum(mp <= alpha / k for mp in min_ps) <= k:
            return k
    return max(1, len(min_ps))


def tarone_bonferroni(tests: Sequence[RankTest], alpha: float) -> tuple[list[bool], float]:
    """(which tests reject, the per-test level alpha / K used) under Tarone's rule."""
    k = tarone_count([t.min_p for t in tests], alpha)
    level = alpha / k
    return [t.p_value <= level for t in tests], level


def seeds_to_decide(alpha: float, two_sided: bool = True, most: int = 50) -> int | None:
    """The fewest values per side (equal sides, no ties) at which the rank-sum test can reach
    `alpha` at all: 1 / C(2n, n) (twice that two-sided) <= alpha. None past `most`."""
    for n in range(1, most + 1):
        if (2 if two_sided else 1) / math.comb(2 * n, n) <= alpha:
            return n
    return None


def smallest_p(n: int, m: int, two_sided: bool = True) -> float:
    """The smallest p-value the rank-sum test can give on n v m distinct values."""
    return min(1.0, (2 if two_sided else 1) / math.comb(n + m, n)) if n and m else 1.0


@dataclass(frozen=True)
class SequentialDesign:
    """`bench run --seeds auto`: a look after every round, from `start` to `most` seeds a side.

    Peeking after every round and stopping at the first look that claims would claim far more
    often than alpha (18.5% at start 3, up to 10, with the old bootstrap rule). Here alpha is
    spent evenly over the looks at which the two-sided rank-sum test can claim anything at all
    (Bonferroni over looks, with Tarone's count: a look at 3 v 3, whose smallest p is 0.1, spends
    nothing). The chance of any false claim over all looks is then at most alpha."""

    start: int
    most: int
    alpha: float = 0.05

    @property
    def looks(self) -> list[int]:
        return list(range(self.start, self.most + 1))

    @property
    def level(self) -> float:
        """The level every look tests at."""
        return self.alpha / tarone_count([smallest_p(n, n) for n in self.looks], self.alpha)

    @property
    def deciding_looks(self) -> list[int]:
        """The seed counts at which a claim is possible at `level`."""
        return [n for n in self.looks if smallest_p(n, n) <= self.level]


def sequential_test(candidate: Sequence[float], reference: Sequence[float], design: SequentialDesign) -> tuple[bool, int]:
    """Run `design` over two streams of per-seed values (each at least design.most long): the
    rank-sum test on the first n of each at every look n. Returns (claimed, seeds a side used)."""
    for n in design.looks:
        test = rank_sum_test(candidate[:n], reference[:n], TWO_SIDED)
        if test is not None and test.p_value <= design.level:
            return True, n
    return False, design.most
