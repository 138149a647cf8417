"""The finals: the race's best candidates and the reference, each run to target with seeds, judged.

Every finalist is judged against the reference (the single-process fp32 setup, MLPerf's reference
convergence point) on what a faster step must not cost:
- reaching the target: a finalist whose median seed misses it is out;
- test quality (the target's metric on the test split): out if significantly worse;
- samples to target: out if it needs significantly more (a faster step bought with more samples
  can lose; RCP-style).
The finalists that hold quality are then ranked by time-to-target against an anchor chosen
before the finals' data: the one with the lowest median in the race (choosing the fastest of the
finals' own seeds and then testing the others against it would bias every test its way). Each
other is tested against the anchor, two-sided; one significantly faster displaces it. The quality
and samples claims are decided together by Holm's rule at alpha / 2, the time claims by Holm at
alpha / 2, so that the chance of any false "worse", "more samples", "slower" or "faster" among
them all is at most alpha. Those not told apart from the anchor tie with it: the recommendation is
one setup, or the set the seeds cannot separate.

Every seed of the finals runs in its own launch, the reference's and the finalists' interleaved
(bench.analysis.tune.tuner): seeds sharing a launch share its load, and the tests need
independent values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.analysis import stats
from bench.analysis.tune.space import Candidate
from bench.results import Result


@dataclass(frozen=True)
class Summary:
    """A median over seeds and the range the seeds span: with n seeds, the range covers the true
    median with probability 1 - 2^(1-n) whatever the distribution (94% at 5 seeds)."""

    median: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def coverage(self) -> float:
        return 1 - 2.0 ** (1 - self.n) if self.n > 1 else 0.0

    @classmethod
    def of(cls, values: list[float | None]) -> Summary:
        finite = stats.finite(values)
        span = stats.value_range(finite)
        return cls(stats.median(finite), span[0] if span else None, span[1] if span else None, len(finite))


@dataclass
class Finalist:
    """A candidate's seeds run to target, as the finals read them."""

    candidate: Candidate
    results: list[Result]

    @property
    def converged(self) -> int:
        return sum(r.status == "converged" for r in self.results)

    @property
    def trained(self) -> int:
        return sum(r.trained for r in self.results)

    def time_to_target(self) -> list[float | None]:
        return [r.timings.time_to_target_s for r in self.results if r.status == "converged"]

    def samples_to_target(self) -> list[float | None]:
        return [r.samples_to_target for r in self.results if r.status == "converged"]

    def test_quality(self) -> list[float | None]:
        out = []
        for r in self.results:
            if r.trained and r.target is not None:
                out.append((r.metrics or {}).get("test", {}).get(r.target.metric))
        return out

    def peak_memory_mb(self) -> list[float | None]:
        return [r.memory.peak_rss_mb_max if r.memory.cuda_max_allocated_mb_max is None else r.memory.cuda_max_allocated_mb_max
                for r in self.results if r.trained]

    def refusal(self) -> str | None:
        """Why the finalist has no number at all (every seed refused or failed), else None."""
        if self.trained:
            return None
        first = self.results[0] if self.results else None
        return f"came out {first.status}: {first.reason}" if first else "has no result"


@dataclass
class Claim:
    """One test of the finals; `holds` once Holm's rule has decided them all."""

    candidate: Candidate
    what: str
    """"quality", "samples" or "time"."""
    test: stats.RankTest | None
    against: Candidate
    holds: bool = False


@dataclass
class Verdict:
    """What the finals decided."""

    best: Candidate | None
    ties: list[Candidate]
    """Finalists the seeds cannot tell from the best (they hold quality too)."""
    out: dict[Candidate, str] = field(default_factory=dict)
    """Finalists that lost, each with why."""
    claims: list[Claim] = field(default_factory=list)


def judge_finals(finalists: list[Finalist], reference: Finalist, higher_is_better: bool, alpha: float,
                 prior: Callable[[Candidate], float]) -> Verdict:
    """Quality and samples against the reference, then time-to-target against the anchor: the
    standing finalist with the lowest `prior` (the race's median: data independent of the finals',
    so that choosing it does not bias the tests against it). Each set of claims under Holm at
    `alpha` / 2 (module docstring). A finalist significantly faster than the anchor displaces it."""
    out: dict[Candidate, str] = {}
    everyone = [reference] + [f for f in finalists if f.candidate != reference.candidate]
    for finalist in everyone:
        reason = finalist.refusal() or _missed_target(finalist)
        if reason:
            out[finalist.candidate] = reason
    standing = [f for f in everyone if f.candidate not in out]
    claims = [claim for f in standing if f is not reference for claim in _holding_claims(f, reference, higher_is_better)]
    _decide(claims, alpha / 2)
    for claim in claims:
        if claim.holds:
            out.setdefault(claim.candidate, _loss_words(claim))
    standing = [f for f in standing if f.candidate not in out]
    if not standing:
        return Verdict(None, [], out, claims)
    anchor = min(standing, key=lambda f: (prior(f.candidate), f is not reference))
    time_claims = [Claim(f.candidate, "time", _time_test(f, anchor), anchor.candidate) for f in standing if f is not anchor]
    _decide(time_claims, alpha / 2)
    faster = [c for c in time_claims if c.holds and c.test is not None and c.test.estimate < 1]
    if faster:  # the seeds say another beat the race's favourite: the fastest of those is the answer
        best = min(faster, key=lambda c: stats.median(_finalist(standing, c.candidate).time_to_target()) or math.inf)
        out[anchor.candidate] = (f"slower to target than {best.candidate.label} ({1 / best.test.estimate:.2f}x, "
                                 f"p = {best.test.p_value:.3g})")
        for claim in time_claims:
            if claim is not best:
                out[claim.candidate] = (_loss_words(claim) if claim.holds and claim.test.estimate > 1 else
                                        f"not told apart from {anchor.candidate.label}, which "
                                        f"{best.candidate.label} beat")
        return Verdict(best.candidate, [], out, claims + time_claims)
    ties = []
    for claim in time_claims:
        if claim.holds:
            out[claim.candidate] = _loss_words(claim)
        else:
            ties.append(claim.candidate)
    return Verdict(anchor.candidate, ties, out, claims + time_claims)


def _finalist(finalists: list[Finalist], candidate: Candidate) -> Finalist:
    return next(f for f in finalists if f.candidate == candidate)


def _missed_target(finalist: Finalist) -> str | None:
    n = len(finalist.results)
    if finalist.converged * 2 < n or (finalist.converged * 2 == n and n):
        return f"its median seed missed the target ({finalist.converged} of {n} seeds reached it)"
    return None


def _holding_claims(finalist: Finalist, reference: Finalist, higher_is_better: bool) -> list[Claim]:
    worse = stats.LESS if higher_is_better else stats.GREATER
    quality = stats.rank_sum_test(finalist.test_quality(), reference.test_quality(), worse, ratio=False)
    samples = stats.rank_sum_test(finalist.samples_to_target(), reference.samples_to_target(), stats.GREATER)
    return [Claim(finalist.candidate, "quality", quality, reference.candidate),
            Claim(finalist.candidate, "samples", samples, reference.candidate)]


def _time_test(finalist: Finalist, best: Finalist) -> stats.RankTest | None:
    unconverged = len(finalist.results) - finalist.converged, len(best.results) - best.converged
    return stats.rank_sum_test(finalist.time_to_target(), best.time_to_target(), stats.TWO_SIDED, censored=unconverged)


def _decide(claims: list[Claim], alpha: float) -> None:
    """Holm's rule over every claim with a test (a claim without one cannot hold)."""
    tested = [c for c in claims if c.test is not None]
    for claim, holds in zip(tested, stats.holm([c.test.p_value for c in tested], alpha), strict=True):
        claim.holds = holds


def _loss_words(claim: Claim) -> str:
    test = claim.test
    assert test is not None
    against = claim.against.label
    if math.isnan(test.estimate):
        return f"{claim.what}: significantly worse than {against} (p = {test.p_value:.3g})"
    if claim.what == "quality":
        return (f"worse test quality than the reference {against} (difference {test.estimate:+.3f}, "
                f"one-sided p = {test.p_value:.3g})")
    if claim.what == "samples":
        return (f"needs more samples to target than the reference {against} ({test.estimate:.2f}x, "
                f"one-sided p = {test.p_value:.3g})")
    return f"slower to target than {against} ({test.estimate:.2f}x, p = {test.p_value:.3g})"
