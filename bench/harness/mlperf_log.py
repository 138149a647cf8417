"""A training cell's result as an MLPerf log: `:::MLLOG` lines written by the mlperf-logging package.

results/<run>/mllog/<cell>.log, beside cells/<cell>.json, written by the worker's main process
once the result is written. The log is derived from the result, whose dates (`wall_clock`, and
`time_unix` on each curve point) were taken by the training loop as things happened, so that the
training loop itself logs nothing:

    init_start          the worker starts building data (the result's init_s runs from here)
    submission_*, seed, global_batch_size, opt_base_learning_rate
    init_stop           data built (the end of init_s)
    run_start           the training clock's zero: the first training step starts
    eval_accuracy       per evaluation: the target metric on the validation split, with
                        epoch_num (epochs trained, fractional), samples_count and step
    run_stop            the loop ended; status `success` if the target was met, else `aborted`

run_stop - run_start covers the interval time-to-target measures (first step to the end of the
evaluation that met the target, evaluation included); it is longer only by the loop's bookkeeping
that the clock leaves out. Model building and the precision probe fall between init_stop and
run_start, outside both, as they fall outside both init_s and time-to-target.

The log is not an MLPerf submission: the workloads are not MLPerf benchmarks, so it is written for
the open division with status `research`, and it parses with mlperf-logging's own reader
(mlperf_logging.compliance_checker.mlp_parser); see docs/integrations.md.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants
from mlperf_logging.mllog.mllog import MLLogger

from bench.cells import topology_label
from bench.paths import PROJECT_ROOT
from bench.results import write_atomic


def mllog_path(run_dir: Path, cell_id: str) -> Path:
    return run_dir / "mllog" / f"{cell_id}.log"


def mllog_text(result: dict[str, Any]) -> str:
    """The MLLOG lines of a training cell's result (one that trained: it has `wall_clock`)."""
    buffer = io.StringIO()
    sink = logging.Logger(f"bench.mllog.{id(buffer)}", level=logging.INFO)  # unregistered: nothing global
    sink.addHandler(logging.StreamHandler(buffer))
    # The call site each line names is this file, relative to the project.
    log = MLLogger(logger=sink, root_dir=str(PROJECT_ROOT))

    cell, clock, timings = result["cell"], result["wall_clock"], result["timings"]
    init_start = _ms(clock["init_start"])
    log.start(constants.INIT_START, time_ms=init_start)
    for key, value in (
        (constants.SUBMISSION_BENCHMARK, cell["workload"]),
        (constants.SUBMISSION_DIVISION, constants.OPEN),
        (constants.SUBMISSION_STATUS, constants.RESEARCH),
        (constants.SUBMISSION_PLATFORM, _platform(result)),
        (constants.SEED, cell["seed"]),
        (constants.GLOBAL_BATCH_SIZE, result["batch"]["global"]),
        (constants.OPT_BASE_LR, result["workload"]["params"]["lr"]),
    ):
        log.event(key, value, time_ms=init_start)
    log.end(constants.INIT_STOP, time_ms=_ms(clock["init_stop"]))

    log.start(constants.RUN_START, time_ms=_ms(clock["run_start"]))
    metric, steps_per_epoch = result["target"]["metric"], timings["steps_per_epoch"]
    for point in result["curve"]:
        log.event(
            constants.EVAL_ACCURACY,
            point.get(metric),
            metadata={
                constants.EPOCH_NUM: point["step"] / steps_per_epoch,
                constants.SAMPLES_COUNT: point["samples"],
                "step": point["step"],
                "metric": metric,
            },
            time_ms=_ms(point["time_unix"]),
        )
    status = constants.SUCCESS if result["status"] == "converged" else constants.ABORTED
    log.end(constants.RUN_STOP, metadata={constants.STATUS: status}, time_ms=_ms(clock["run_stop"]))
    return buffer.getvalue()


def write_mllog(path: Path, result: dict[str, Any]) -> None:
    write_atomic(path, mllog_text(result))


def _ms(unix_s: float) -> int:
    return int(unix_s * 1000)


def _platform(result: dict[str, Any]) -> str:
    """The machine and how the cell used it: `<hardware class> <topology> <precision>`."""
    cell = result["cell"]
    hardware = (result.get("environment") or {}).get("hardware_class") or "unknown hardware"
    return f"{hardware} {topology_label(cell['topology'])} {cell['precision']}"
