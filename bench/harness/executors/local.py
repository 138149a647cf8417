"""`bench run` (the default executor): one launch after another on this host.

A launch is a cell, or the seeds of one configuration sharing it (bench/harness/executors/base.py
launch_groups). Each gets the whole host: `accelerate launch` under the topology's settings, its
processes killed at the launch's timeout or at Ctrl-C (bench/harness/launch.py run_group), and each
seed's result collected from what the launch left (collect_launch). While a launch runs, the
progress bar shows the latest evaluation line of its log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cells import Cell
from bench.harness.executors.base import (
    OnDone,
    PlannedLaunch,
    collect_interrupted,
    collect_launch,
    prepare_launch,
)
from bench.harness.launch import free_port, latest_progress, launch_commands, launch_env, run_group
from bench.harness.measure import load_average


class LocalExecutor:
    """One launch at a time on this host, into `run_dir`; `bar` (a tqdm bar) shows the running
    launch and its progress."""

    shares_launches = True

    def __init__(self, run_dir: Path, bar: Any) -> None:
        self.run_dir, self.bar = run_dir, bar

    def run(self, launches: list[PlannedLaunch], on_done: OnDone) -> bool:
        for launch in launches:
            self.bar.set_postfix_str(launch.id)
            done, interrupted = run_launch(launch, self.run_dir, self.bar)
            for cell, result in done:
                on_done(cell, result)
            if interrupted:
                return True
        return False


def run_launch(planned: PlannedLaunch, run_dir: Path,
               bar: Any | None = None) -> tuple[list[tuple[Cell, dict[str, Any]]], bool]:
    """One launch of the group's cells (the seeds of one configuration, or one cell): each seed's
    result, and whether the launch was interrupted (then only the seeds whose result the worker
    had written are kept, with the launch's wall time so far). While it runs, `bar` shows the
    cell's latest evaluation (step, samples, validation metric, training clock)."""
    cells, topology = planned.cells, planned.topology
    launch = prepare_launch(cells, run_dir)
    first = launch.files[0]
    port = free_port() if topology is not None and topology.num_processes > 1 else None
    commands = launch_commands(topology, cells[0].precision, first.cell_file, first.out, port, first.mllog,
                               also=launch.also())
    # The host's load (1-, 5-, 15-min averages) as the cell starts and ends, beside the cores it may
    # use: a 1-min load above the cores means other work queued for them, and the cell's speed
    # figures are contaminated (the report marks it). The load counts the cell's own threads too.
    load_start = load_average()
    on_poll = _show_progress(bar, launch.id, launch.log) if bar is not None else None
    finished = run_group(commands, launch_env(topology), launch.log, launch.timeout_s, on_poll=on_poll)
    results = (collect_interrupted if finished.interrupted else collect_launch)(launch, finished, load_start)
    return [(cell, r) for cell, r in zip(cells, results, strict=True) if r is not None], finished.interrupted


def _show_progress(bar: Any, name: str, log: Path, every_s: float = 1.0) -> Callable[[Any], None]:
    """An on_poll for run_group: at most once a second, the latest progress line of the launch's
    log beside the bar ("cell: seed 0 step 120 samples 7680 val f1 0.78 ..."). Without a terminal
    the bar is off and so is this; the log keeps every line."""
    last = [0.0, None]

    def show(_procs: Any) -> None:
        now = time.monotonic()
        if now - last[0] < every_s:
            return
        last[0] = now
        line = latest_progress(log)
        if line and line != last[1]:
            last[1] = line
            bar.set_postfix_str(f"{name}: {line}")

    return show
