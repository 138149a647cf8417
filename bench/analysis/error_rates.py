"""The error rates and power of the report's and `--seeds auto`'s claims, by simulation through
bench.analysis.stats (the figures of docs/report.md):

    python -m bench.analysis.error_rates            # Markdown tables, about a minute

Per-seed values are drawn lognormal: `sigma` is the spread of log(value) over seeds. The default
spreads are the ones measured on this project's machines (docs/report.md says from which runs):
0.17 for time-to-target, 0.045 for throughput. Seeded: the same figures on every run.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from bench.analysis import stats

TTT_SPREAD = 0.17
THROUGHPUT_SPREAD = 0.045
TRIALS = 4000


def claim_rate(n: int, ratio: float, sigma: float, alpha: float = 0.05, trials: int = TRIALS, seed: int = 0) -> float:
    """How often the two-sided rank-sum test on n v n seeds claims a difference at `alpha`."""
    rng = np.random.default_rng(seed)
    claims = 0
    for _ in range(trials):
        test = stats.rank_sum_test(rng.lognormal(math.log(ratio), sigma, n), rng.lognormal(0.0, sigma, n))
        claims += test.p_value <= alpha
    return claims / trials


def smallest_detectable_ratio(n: int, sigma: float, alpha: float = 0.05, power: float = 0.8,
                              trials: int = 1000) -> float | None:
    """The smallest ratio (on a 0.05 grid up to 4x) detected at least `power` of the time; None when
    n v n seeds cannot reach `alpha` at all."""
    if stats.smallest_p(n, n) > alpha:
        return None
    for ratio in np.arange(1.05, 4.0001, 0.05):
        if claim_rate(n, float(ratio), sigma, alpha, trials, seed=n) >= power:
            return round(float(ratio), 2)
    return None


def sequential_rates(design: stats.SequentialDesign, ratio: float, sigma: float, trials: int = TRIALS,
                     seed: int = 0) -> tuple[float, float]:
    """(how often `--seeds auto`'s design claims, the mean seeds a side it used) at `ratio`."""
    rng = np.random.default_rng(seed)
    claims, seeds = 0, 0
    for _ in range(trials):
        claimed, used = stats.sequential_test(rng.lognormal(math.log(ratio), sigma, design.most),
                                              rng.lognormal(0.0, sigma, design.most), design)
        claims += claimed
        seeds += used
    return claims / trials, seeds / trials


def max_seeds_for(ratio: float, start: int, sigma: float = TTT_SPREAD, power: float = 0.8, most: int = 50,
                  trials: int = 400) -> int | None:
    """The fewest seeds a side `--seeds auto` may go up to so that its design (start, that maximum)
    finds a real `ratio` (either way) at least `power` of the time at seed spread `sigma`; None when
    even `most` does not."""
    def finds(top: int) -> bool:
        return sequential_rates(stats.SequentialDesign(start, top), ratio, sigma, trials, seed=top)[0] >= power

    low, high = max(start, 5), most
    if not finds(high):
        return None
    while low < high:  # power grows with the most seeds allowed: a binary search, not a scan
        middle = (low + high) // 2
        if finds(middle):
            high = middle
        else:
            low = middle + 1
    return low


def tables() -> str:
    lines = ["| seeds a side | smallest two-sided p | false claims at 5% (no difference) | smallest ratio found 80% of the time, "
             f"time-to-target (spread {TTT_SPREAD}) | the same, throughput (spread {THROUGHPUT_SPREAD}) |",
             "|---|---|---|---|---|"]
    for n in range(2, 11):
        ttt = smallest_detectable_ratio(n, TTT_SPREAD)
        rate = smallest_detectable_ratio(n, THROUGHPUT_SPREAD)
        lines.append(f"| {n} | {stats.smallest_p(n, n):.2g} | {claim_rate(n, 1.0, TTT_SPREAD):.1%} | "
                     f"{'cannot decide' if ttt is None else f'{ttt:.2f}x'} | {'cannot decide' if rate is None else f'{rate:.2f}x'} |")
    design = stats.SequentialDesign(3, 10)
    null_rate, null_seeds = sequential_rates(design, 1.0, TTT_SPREAD)
    lines += ["", f"`--seeds auto` (start 3, up to 10 seeds; per-look level {design.level:.4f} at the looks "
              f"{design.deciding_looks[0]}-{design.deciding_looks[-1]}):", "",
              "| true ratio | claims | mean seeds a side |", "|---|---|---|",
              f"| 1.0 (no difference) | {null_rate:.1%} | {null_seeds:.1f} |"]
    for ratio in (1.3, 1.5, 2.0):
        claimed, seeds = sequential_rates(design, ratio, TTT_SPREAD, seed=int(ratio * 10))
        lines.append(f"| {ratio} | {claimed:.1%} | {seeds:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(tables() + "\n")
