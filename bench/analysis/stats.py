"""The few statistics a report rests on, kept pure (numbers in, numbers out) so they can be tested.

Seeds are few (1 to 10), so nothing here pretends to be a significance test: a difference counts
only when the seed ranges (min-max) of the two sides do not overlap, the rule a reader can check
by eye in the table. With a single seed on either side there is no spread to judge, and the
comparison says so instead of guessing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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
