"""Helpers for conftest.py, e2e/test_compare_seeds.py, unit/test_compare_seeds.py."""

from __future__ import annotations

import copy
from pathlib import Path

RUN_A = Path(__file__).parent.parent / "fixtures" / "compare" / "run_a"


CELL = "maintenance-gru__cpu-1proc__fp32"


def _seed(result: dict, seed: int, clock: float, memory: float = 1.0) -> dict:
    """`result` as seed `seed`, every step `clock` times as long and its memory peak x `memory`."""
    r = copy.deepcopy(result)
    r["cell"]["seed"], r["cell"]["id"] = seed, f"{CELL}__s{seed}"
    r["throughput"]["samples_per_s"] /= clock
    for key in ("step_time_median_s", "step_time_p90_s", "time_to_target_s", "train_seconds"):
        r["timings"][key] *= clock
    r["timings"]["step_times_s"] = [t * clock for t in r["timings"]["step_times_s"]]
    r["memory"]["peak_rss_mb_max"] *= memory
    return r


def _seeds(result: dict, clocks: list[float], slowdown: float = 1.0) -> list[dict]:
    return [_seed(result, s, c * slowdown) for s, c in enumerate(clocks)]

