"""The figures the gate judges, and where each is read in a typed result (bench.results.Result).

Every clock and memory figure here is lower-is-better. Time-to-target is judged in its two parts:
the step time here, and the samples to target, paired by seed (bench/analysis/gate/judge.py),
since on one host a seed needs the same samples whatever the load. Each is summarised per launch (the
median over the seeds that shared it) before it is compared: the seeds of one launch share its
host conditions, so the launch, not the seed, is the unit the rounds make independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.results import Result

SPEED, MEMORY = "speed", "memory"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class GateMetric:
    """One clock or memory figure of a trained result."""

    name: str
    kind: str
    """SPEED or MEMORY."""
    read: Callable[[Result], float | None]
    about: str
    """What the figure covers, for the report."""

    def value(self, result: Result) -> float | None:
        return _finite(self.read(result))


def _low_step(result: Result, quantile: float = 10.0) -> float | None:
    steps = result.timings.step_times_s
    return float(np.percentile(steps, quantile)) if steps else None


STEP = "step_time_p10_s"
"""The gate's primary figure: the training step as the code makes it, what a slower commit moves."""

CLOCK_AND_MEMORY = (
    # The 10th percentile of the steady steps, not their median: a code change moves every step,
    # while the host's interference (another process on a core, a page fault) lengthens some. Over
    # the 10 calibration rounds of docs/gate.md, launch-to-launch spread (log sd) was 0.09-0.10 for
    # the DDP cell's p10 against 0.22-0.23 for its median, and no larger for any cell.
    GateMetric(STEP, SPEED, _low_step, "10th percentile of the steady training steps"),
    GateMetric("init_s", SPEED, lambda r: r.timings.init_s, "data, tokenisation and model load"),
    GateMetric("final_eval_s", SPEED, lambda r: r.timings.final_eval_s,
               "the final evaluation on every split"),
    GateMetric("cell_wall_s", SPEED, lambda r: r.cell_wall_s,
               "the seed's whole wall time, with its share of the launch's fixed cost"),
    GateMetric("peak_rss_mb", MEMORY, lambda r: r.memory.peak_rss_mb_max, "peak resident memory of the largest rank"),
)
