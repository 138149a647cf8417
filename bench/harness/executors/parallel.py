"""`bench run --parallel N`: up to N launches at once on one host, each pinned to its own slice of it.

A launch is a cell, or the seeds of one cell sharing it (bench/harness/executors/base.py launch_groups),
as in a sequential run; everything below that says "cell" holds for such a launch and its seeds.

The host (the cores this process may use, `BENCH_CPU_CORES` of them at most, and its GPUs) is cut
into N equal slots of disjoint cores and GPUs. A cell takes as many whole slots as it needs (a CPU
cell one core per rank, a GPU cell one GPU per rank; a baseline one slot; never more than all N),
and cells start in matrix order as slots come free, so two cells never share a core or a GPU.
Each cell is pinned to its slots: GPUs through CUDA_VISIBLE_DEVICES, cores through the launcher's
CPU affinity (inherited by every process under it) with `--num_cpu_threads_per_process` set to the
slot's cores over the cell's ranks.

What each result gets, in a top-level `placement` field (besides what the worker records):
    executor, parallel     "local", N
    slots, cores, gpus     what the cell was given
    threads_per_rank       the threads each rank was told to use (the worker records torch's own)
    observed_affinity      the CPU sets the cell's worker processes really had, read by the runner
                           from /proc/<pid>/status while they ran
    pinned                 true when every worker seen ran on the given cores only (false makes
                           the cell `invalid`); null when no worker was seen
    beside                 the ids of the cells that ran at the same time in other launches (empty:
                           it ran alone; the seeds of its own launch ran before or after it)
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cells import Cell
from bench.harness.executors.base import (
    CellFiles,
    LaunchFiles,
    OnDone,
    PlannedLaunch,
    collect_interrupted,
    collect_launch,
    prepare_launch,
    read_result,
)
from bench.harness.host import Slot, host_slots, visible_gpus
from bench.harness.launch import Finished, free_port, launch_commands, launch_env, run_group
from bench.harness.measure import load_average
from bench.harness.topology import Topology
from bench.results import write_json_atomic


def slots_needed(topology: Topology | None, slot: Slot, parallel: int) -> int:
    """Whole slots a cell needs: one core per CPU rank, one GPU per GPU rank (at most all of them)."""
    if topology is None:
        return 1
    if topology.use_cpu:
        need = math.ceil(topology.num_processes / len(slot.cores))
    else:
        need = math.ceil(topology.gpus_needed / max(1, len(slot.gpus)))
    return max(1, min(parallel, need))


@dataclass
class _Running:
    cells: list[Cell]
    """The launch's cells: one, or the seeds that share it."""
    slots: list[Slot]
    start: float
    end: float | None = None
    affinity: set[tuple[int, ...]] = field(default_factory=set)


class ParallelExecutor:
    """Up to `parallel` launches at once on this host, each pinned to its own slots, into
    `run_dir`; `bar` (a tqdm bar) counts the launches running and waiting."""

    shares_launches = True

    def __init__(self, run_dir: Path, parallel: int, bar: Any) -> None:
        self.run_dir, self.parallel, self.bar = run_dir, parallel, bar

    def run(self, launches: list[PlannedLaunch], on_done: OnDone) -> bool:
        """Run the launches in their order, each as soon as enough slots are free; True when
        interrupted (Ctrl-C)."""
        parallel, run_dir, bar = self.parallel, self.run_dir, self.bar
        # The GPUs bench was given (CUDA_VISIBLE_DEVICES), not every index of the host: a slot's
        # CUDA_VISIBLE_DEVICES replaces the variable, so an index would name the physical GPU.
        slots = host_slots(parallel, visible_gpus())
        free = list(slots)
        pending = deque(launches)
        running: dict[Future, _Running] = {}
        spans: list[_Running] = []
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            try:
                while pending or running:
                    # Matrix order: the next launch waits for enough free slots (none jumps the queue).
                    while pending and len(free) >= slots_needed(pending[0].topology, slots[0], parallel):
                        launch = pending.popleft()
                        taken = [free.pop(0) for _ in range(slots_needed(launch.topology, slots[0], parallel))]
                        span = _Running(launch.cells, taken, time.monotonic())
                        spans.append(span)
                        running[pool.submit(_run_pinned, launch, run_dir, span, stop)] = span
                    bar.set_postfix_str(f"running {len(running)}, waiting {len(pending)}")
                    finished, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in finished:
                        span = running.pop(future)
                        free = sorted(free + span.slots, key=lambda s: s.index)
                        _hand_over(span, _finish(future.result(), span, spans, parallel), on_done)
            except KeyboardInterrupt:
                stop.set()  # every running launch's group is killed by its own thread
                wait(list(running))
                for future, span in running.items():  # the seeds done before Ctrl-C keep their results
                    _hand_over(span, _finish(future.result(), span, spans, parallel), on_done)
                return True
        return False


def _hand_over(span: _Running, results: list[dict[str, Any] | None], on_done: OnDone) -> None:
    for cell, result in zip(span.cells, results, strict=True):
        if result is not None:
            on_done(cell, result)


def _run_pinned(planned: PlannedLaunch, run_dir: Path, span: _Running,
                stop: threading.Event) -> tuple[LaunchFiles, Finished, list[float] | None, int]:
    cells = planned.cells
    topology: Topology | None = planned.topology
    cores = [c for slot in span.slots for c in slot.cores]
    gpus = [g for slot in span.slots for g in slot.gpus]
    launch = prepare_launch(cells, run_dir)
    first = launch.files[0]
    port = free_port() if topology is not None and topology.num_processes > 1 else None
    commands = launch_commands(topology, cells[0].precision, first.cell_file, first.out, port, first.mllog,
                               gpus=gpus, cores=len(cores), also=launch.also())
    env = launch_env(topology)
    env["BENCH_CPU_CORES"] = str(len(cores))
    if topology is None:
        env["OMP_NUM_THREADS"] = str(len(cores))  # a baseline cell: no accelerate to set it
    if gpus or (topology is not None and not topology.use_cpu):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    threads = 0 if topology is None else max(1, len(cores) // topology.num_processes)
    sample = _AffinitySampler(str(first.cell_file.absolute()), span.affinity)
    load_start = load_average()
    finished = run_group(commands, env, launch.log, launch.timeout_s, cores=cores, stop=stop, on_poll=sample)
    span.end = time.monotonic()
    return launch, finished, load_start, threads


class _AffinitySampler:
    """Reads, about once a second, the CPU affinity of the cell's worker processes (found by the
    launch file their command line names): what the pinning really was, not what was asked."""

    def __init__(self, cell_file: str, seen: set[tuple[int, ...]]) -> None:
        self.cell_file, self.seen, self.last = cell_file, seen, 0.0

    def __call__(self, procs: list) -> None:
        if time.monotonic() - self.last < 1.0:
            return
        self.last = time.monotonic()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                if "bench.harness.worker" not in cmdline or self.cell_file not in cmdline:
                    continue
                status = (entry / "status").read_text()
            except OSError:
                continue
            allowed = next((line.split(":", 1)[1].strip() for line in status.splitlines()
                            if line.startswith("Cpus_allowed_list:")), None)
            if allowed:
                self.seen.add(_cpu_list(allowed))


def _cpu_list(text: str) -> tuple[int, ...]:
    """'0-2,5' -> (0, 1, 2, 5), the kernel's list format."""
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return tuple(cpus)


def _finish(outcome: tuple[LaunchFiles, Finished, list[float] | None, int], span: _Running,
            spans: list[_Running], parallel: int) -> list[dict[str, Any] | None]:
    """Each seed's result with the launch's placement; None for a seed that an interrupt left without one."""
    launch, finished, load_start, threads = outcome
    cores = sorted(c for slot in span.slots for c in slot.cores)
    beside = sorted(cell.id for other in spans if other is not span and other.start < (span.end or 0)
                    and (other.end is None or other.end > span.start) for cell in other.cells)
    pinned = None if not span.affinity else all(set(seen) <= set(cores) for seen in span.affinity)
    placement = {
        "executor": "local", "parallel": parallel, "slots": [slot.index for slot in span.slots],
        "cores": cores, "gpus": [g for slot in span.slots for g in slot.gpus],
        "threads_per_rank": threads or None, "observed_affinity": sorted(list(s) for s in span.affinity),
        "pinned": pinned, "beside": beside,
    }
    collect = collect_interrupted if finished.interrupted else collect_launch
    results = collect(launch, finished, load_start, {"placement": placement})
    return [_unpinned(result, placement, files) if result is not None and pinned is False
            and result["status"] not in ("failed",) else result for result, files in zip(results, launch.files, strict=True)]


def _unpinned(result: dict[str, Any], placement: dict[str, Any], files: CellFiles) -> dict[str, Any]:
    """A cell that ran outside its cores shared them with its neighbours: its numbers do not stand."""
    result = {k: v for k, v in result.items() if k != "metrics"}
    result["status"] = "invalid"
    result["reason"] = (f"pinned to cores {placement['cores']} but a worker ran on {placement['observed_affinity']}; "
                        "it shared cores with the cells beside it")
    write_json_atomic(files.out, result)
    return read_result(files.out) or result
