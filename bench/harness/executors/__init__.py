"""Where a run's cells execute: one protocol, three executors, all writing the same run folder.

    local            one launch after another on this host (the default)    executors/local.py
    local, --parallel N   up to N launches at once on disjoint, pinned
                     slices of this host                                     executors/parallel.py
    slurm            one SLURM job per cell (per seed), through submitit     executors/slurm.py

The runner (bench/harness/runner.py) plans the cells, keeps those already done (--resume) and the
skipped ones, and hands the rest to the executor the options name (`executor_for`) as
`PlannedLaunch`es: `Executor.run(launches, on_done) -> interrupted`. What every executor shares
(launch grouping, each launch's files, collecting its results) is in executors/base.py; the
options (ExecutorOptions, checked with the matrix they come from) in bench/harness/config.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.config import ExecutorOptions
from bench.harness.executors.base import (
    Executor,
    PlannedCell,
    PlannedLaunch,
    launch_groups,
    one_launch_per_cell,
)


def executor_for(options: ExecutorOptions, run_dir: Path, bar: Any) -> Executor:
    """The executor `options` name, running into `run_dir` and reporting on `bar` (a tqdm bar)."""
    if options.type == "slurm":
        from bench.harness.executors.slurm import SlurmExecutor

        return SlurmExecutor(run_dir, options, bar)
    if options.parallel > 1:
        from bench.harness.executors.parallel import ParallelExecutor

        return ParallelExecutor(run_dir, options.parallel, bar)
    from bench.harness.executors.local import LocalExecutor

    return LocalExecutor(run_dir, bar)


def planned_launches(executor: Executor, items: list[PlannedCell]) -> list[PlannedLaunch]:
    """The planned cells `items` as the launches `executor` takes: the seeds of a configuration
    in one launch where it shares launches (launch_groups), else each cell alone."""
    return launch_groups(items) if executor.shares_launches else one_launch_per_cell(items)
