"""Helpers for:
- e2e/test_atomic_writes.py
- e2e/test_compare.py
- e2e/test_compare_formats.py
- unit/test_atomic_writes.py
- unit/test_compare.py
- unit/test_compare_formats.py
- unit/test_compare_inputs.py
- unit/test_hardware_match.py
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "compare"


RUN_A, RUN_B = FIXTURES / "run_a", FIXTURES / "run_b"


CELL = "maintenance-gru__cpu-1proc__fp32"


def _write_run(folder: Path, results: list[dict]) -> Path:
    (folder / "cells").mkdir(parents=True)
    for r in results:
        (folder / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    return folder


def _slower(result: dict, factor: float) -> dict:
    """The same result with every step taking `factor` times as long."""
    r = copy.deepcopy(result)
    r["throughput"]["samples_per_s"] /= factor
    for key in ("step_time_median_s", "step_time_p90_s", "time_to_target_s", "train_seconds"):
        r["timings"][key] *= factor
    r["timings"]["step_times_s"] = [t * factor for t in r["timings"]["step_times_s"]]
    return r

