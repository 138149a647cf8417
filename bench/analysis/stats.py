"""The few statistics a report and the gate rest on, kept pure (numbers in, numbers out) so they can be tested.

Every comparison of two configurations is a ratio with an interval over seeds (`ratio_interval`):
the ratio of the medians of the two seed samples, with a 95% percentile-bootstrap interval
(scipy.stats.bootstrap, each side resampled on its own). A difference is called only when the
interval excludes 1. With 2 or 3 seeds on a side the bootstrap median can only land on seeds
that were measured, and the interval then runs from the lowest to the highest seed ratio: it
excludes 1 exactly when the seed ranges (min-max) are apart, the rule the report used before
and that a reader can check by eye in the table. From 4 seeds up it narrows towards the spread
of the median. With a single seed on either side there is no interval and the comparison says
so. docs/report.md says what the interval is over and what it is not.

`compare` (min-max overlap) is the older rule, kept for callers that want it.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

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


def olympic_mean(values: Sequence[float | None]) -> float | None:
    """Mean without the single lowest and highest value, from OLYMPIC_MIN_SEEDS values up.

    Fewer values give None: dropping two of four leaves too little to call a mean.
    """
    vals = sorted(finite(values))
    if len(vals) < OLYMPIC_MIN_SEEDS:
        return None
    return statistics.fmean(vals[1:-1])


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
