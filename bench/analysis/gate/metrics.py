"""The figures both gates judge, and where each is read in a typed result (bench.results.Result).

`CLOCK_AND_MEMORY` are the side-by-side gate's (`bench gate`, judge.py); `SPEED_AND_MEMORY` are
`bench compare`'s, against a committed baseline (against_baseline.py). A figure in both (peak
memory) is one `GateMetric`. Also here: the target metric's score on a split (`score`), and what a
result holds where a figure should be (`figure_state`: a number, not finite, null or absent).

The side-by-side gate's figures are lower-is-better. Time-to-target is judged in its two parts
there: the step time here, and the samples to target, paired by seed (bench/analysis/gate/judge.py),
since on one host a seed needs the same samples whatever the load. Each is summarised per launch (the
median over the seeds that shared it) before it is compared: the seeds of one launch share its
host conditions, so the launch, not the seed, is the unit the rounds make independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.results import Result, json_pointer

SPEED, MEMORY = "speed", "memory"


def finite(value: object) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class GateMetric:
    """One clock or memory figure of a trained result."""

    name: str
    kind: str
    """SPEED or MEMORY."""
    read: Callable[[Result], Any]
    about: str
    """What the figure covers, for the report."""
    higher_is_better: bool = False
    per_step: int = 0
    """+1 if the figure grows with the step time, -1 if it is its inverse, 0 if not step-derived.
    For step-derived figures `bench compare` takes the per-step times as the repeated measurements."""
    pointer: str = ""
    """Where a result file holds the figure, as a JSON pointer ("/timings/time_to_target_s"): where the
    writer names the non-finite number it wrote as null (Result.non_finite). "" for a derived figure."""

    def value(self, result: Result) -> float | None:
        return finite(self.read(result))


def _low_step(result: Result, quantile: float = 10.0) -> float | None:
    steps = result.timings.step_times_s
    return float(np.percentile(steps, quantile)) if steps else None


STEP = "step_time_p10_s"
"""The gate's primary figure: the training step as the code makes it, what a slower commit moves."""

PEAK_RSS = GateMetric("peak_rss_mb", MEMORY, lambda r: r.memory.peak_rss_mb_max, "peak resident memory of the largest rank",
                      pointer="/memory/peak_rss_mb_max")

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
    PEAK_RSS,
)

SPEED_AND_MEMORY = (
    GateMetric("samples_per_s", SPEED, lambda r: r.throughput.samples_per_s, "training samples per second",
               higher_is_better=True, per_step=-1, pointer="/throughput/samples_per_s"),
    GateMetric("step_time_median_s", SPEED, lambda r: r.timings.step_time_median_s, "median steady training step",
               per_step=1, pointer="/timings/step_time_median_s"),
    GateMetric("time_to_target_s", SPEED, lambda r: r.timings.time_to_target_s, "training clock to the target",
               pointer="/timings/time_to_target_s"),
    PEAK_RSS,
    GateMetric("cuda_max_allocated_mb", MEMORY, lambda r: r.memory.cuda_max_allocated_mb_max,
               "peak CUDA memory allocated on the largest rank", pointer="/memory/cuda_max_allocated_mb_max"),
)
"""`bench compare`'s speed and memory figures, in the order its report lists them."""


def score(result: Result, split: str, metric: str) -> float | None:
    """The result's `metric` on `split` when it is a number (not a bool; NaN and infinities included)."""
    value = ((result.metrics or {}).get(split) or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


NUMBER, NOT_FINITE, NULL, ABSENT = "number", "not finite", "null", "absent"


def figure_state(result: Result, value: Any, pointer: str, present: bool = True) -> tuple[str, str]:
    """What a result holds for a figure read as `value` (at `pointer`): (NUMBER, "") for a finite
    number; (NOT_FINITE, "nan") for NaN or an infinity, as older files hold them, or for a null that
    the writer recorded as one under `non_finite` (bench.results.write_json_atomic); (NULL, "") for a
    plain null (e.g. no time-to-target: the target was not met); (ABSENT, "") where it is not `present`."""
    if not present:
        return ABSENT, ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return NUMBER, ""
        return NOT_FINITE, "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    reasons = result.non_finite
    reason = reasons.get(pointer) if isinstance(reasons, dict) else None
    if value is None:
        return (NOT_FINITE, str(reason)) if reason else (NULL, "")
    return NOT_FINITE, type(value).__name__


def score_state(result: Result, split: str, metric: str) -> tuple[str, str]:
    """`figure_state` of the result's `metric` on `split`, ABSENT where the result has none."""
    scores = (result.metrics or {}).get(split)
    present = isinstance(scores, dict) and metric in scores
    return figure_state(result, scores[metric] if present else None, json_pointer("metrics", split, metric), present)
