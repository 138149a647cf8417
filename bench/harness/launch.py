"""Cell -> `accelerate launch` command(s), run in a process group of their own with a timeout.

Every cell runs isolated: its launcher(s) and all their workers share one new process group, so a
timeout or Ctrl-C ends all of them with one killpg. A multi-node topology on one host gets one
launcher per node rank on loopback with a free port; rank 0 of a node whose peer never comes up
waits forever without a word, and only our timeout ends it.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.harness.host import host_cores, visible_gpus
from bench.harness.lifeline import die_with_parent
from bench.harness.topology import ACCELERATE_PRECISION, Topology
from bench.paths import PROJECT_ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_executable() -> list[str]:
    """The `accelerate` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("accelerate")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "accelerate.commands.launch"]


def launch_commands(
    topology: Topology | None,
    precision: str,
    cell_file: Path,
    out_file: Path,
    port: int | None = None,
    mllog_file: Path | None = None,
    *,
    gpus: list[str] | None = None,
    cores: int | None = None,
    main_ip: str = "127.0.0.1",
    ranks_on_host: int | None = None,
    also: Sequence[tuple[Path, Path, Path | None]] = (),
) -> list[list[str]]:
    """The command line(s) that run a cell: one per node rank; one plain python for baselines.
    A training cell given `mllog_file` writes its MLPerf log there (bench/harness/mlperf_log.py).
    `also` adds the (cell file, result file, MLPerf log) of further seeds of the same configuration
    that share the launch: the worker runs them one after another (bench/harness/worker.py).

    The keywords serve the other executors (bench/harness/executors/): `gpus` and `cores` are
    the slice of the host a pinned cell was given (default: the whole host); `main_ip` and
    `ranks_on_host` are for nodes that really are separate hosts (a SLURM job: each node's
    launcher shares its node's cores only among its own ranks)."""
    worker = ["-m", "bench.harness.worker"]
    for cell, out, mllog in [(cell_file, out_file, mllog_file), *also]:
        # Absolute: the launchers run in PROJECT_ROOT (see run_group), not in the user's folder.
        worker += ["--cell", str(Path(cell).absolute()), "--out", str(Path(out).absolute())]
        if topology is not None and mllog is not None:  # a baseline cell writes no MLPerf log
            worker += ["--mllog", str(Path(mllog).absolute())]
    if topology is None:
        return [[sys.executable, *worker]]
    base = accelerate_executable()
    if base[-1] != "accelerate.commands.launch":
        base = [*base, "launch"]
    node_gpus = gpus_per_loopback_node(topology, gpus)
    ranks_here = ranks_on_host or topology.num_processes
    commands = []
    for machine_rank in range(topology.num_machines):
        cmd = [*base, "--config_file", str(topology.path), "--mixed_precision", ACCELERATE_PRECISION[precision]]
        if node_gpus:
            # Several "nodes" on one GPU host: each launcher sees only its own GPUs, or every node
            # would put its local ranks 0..k-1 on the same physical GPUs.
            cmd = ["env", f"CUDA_VISIBLE_DEVICES={','.join(node_gpus[machine_rank])}", *cmd]
        if topology.use_cpu:
            # Share this host's cores fairly between all ranks that run on it. accelerate divides
            # by the ranks of ONE node, so two loopback "nodes" would each take every core.
            cmd += ["--num_cpu_threads_per_process", str(threads_per_rank(ranks_here, cores))]
        if topology.num_processes > 1:
            # A fresh port per cell: a previous cell's rendezvous may still hold the YAML's port.
            cmd += ["--main_process_port", str(port or topology.main_process_port or 29500)]
        if topology.num_machines > 1:
            cmd += ["--machine_rank", str(machine_rank), "--main_process_ip", main_ip]
        commands.append(cmd + worker)
    return commands


def gpus_per_loopback_node(topology: Topology, given: list[str] | None = None) -> list[list[str]] | None:
    """For a multi-node GPU topology run on this one host: the disjoint slice of this process's
    GPUs (or of those `given`, a pinned cell's) that each node rank gets. None when there is
    nothing to split (CPU, one node, or too few GPUs, which the matrix has already turned into a
    skipped cell)."""
    if topology.use_cpu or topology.num_machines < 2:
        return None
    gpus, per_node = (visible_gpus() if given is None else given), topology.processes_per_machine
    if len(gpus) < per_node * topology.num_machines:
        return None
    return [gpus[rank * per_node:(rank + 1) * per_node] for rank in range(topology.num_machines)]


def threads_per_rank(ranks_on_host: int, cores: int | None = None) -> int:
    """Cores (the host's, or the `cores` a pinned cell was given) divided over the ranks that
    share them (at least 1 thread each)."""
    return max(1, (cores or host_cores()) // ranks_on_host)


def launch_env(topology: Topology | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if topology is not None and topology.use_cpu:
        # The YAML's use_cpu is not passed through on the torchrun path; without this variable
        # N processes start and each trains alone (see bench/harness/topology.py).
        env["ACCELERATE_USE_CPU"] = "1"
    return env


def format_command(cmd: list[str], env_note: str = "", wrap: bool = False) -> str:
    """The command as a shell line; `wrap` breaks it before each seed's --cell (a shared launch)."""
    line = (env_note + " " if env_note else "") + shlex.join(cmd)
    return line.replace(" --cell ", " \\\n    --cell ") if wrap else line


@dataclass
class Finished:
    returncodes: list[int | None]
    timed_out: bool
    interrupted: bool
    seconds: float


def _start_pinned(cores: Sequence[int] | None) -> None:
    """preexec of a launcher: die with the runner, and run on `cores` only (a pinned cell); the
    launcher's children (torchrun, the workers) inherit the affinity."""
    die_with_parent()
    if cores:
        os.sched_setaffinity(0, cores)


def run_group(
    commands: list[list[str]],
    env: dict[str, str],
    log_file: Path,
    timeout_s: float,
    *,
    cores: Sequence[int] | None = None,
    stop: threading.Event | None = None,
    on_poll: Callable[[list[subprocess.Popen]], None] | None = None,
) -> Finished:
    """Start all commands in one new process group; wait for them or kill the group at timeout.

    For cells run beside others (bench/harness/executors/parallel.py): `cores` pins every process
    of the cell to those CPUs, `stop` set by another thread ends the cell as Ctrl-C does (signals
    reach the main thread only), and `on_poll` sees the launchers at each poll."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    procs: list[subprocess.Popen] = []
    with open(log_file, "ab") as log:
        try:
            for i, cmd in enumerate(commands):
                log.write(f"$ {shlex.join(cmd)}\n".encode())
                log.flush()
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        # first launcher leads a new group; the others join it
                        process_group=0 if i == 0 else procs[0].pid,
                        preexec_fn=partial(_start_pinned, cores) if cores else die_with_parent,
                    )
                )
            deadline = start + timeout_s
            while any(p.poll() is None for p in procs):
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                if on_poll is not None:
                    on_poll(procs)
                if time.monotonic() > deadline:
                    kill_group(procs)
                    return Finished([p.returncode for p in procs], True, False, time.monotonic() - start)
                # One launcher failing means its peers will never rendezvous: end them now.
                if any(p.returncode not in (None, 0) for p in procs):
                    time.sleep(2.0)
                    if any(p.poll() is None for p in procs):
                        kill_group(procs)
                        break
                time.sleep(0.2)
        except KeyboardInterrupt:
            kill_group(procs)
            return Finished([p.returncode for p in procs], False, True, time.monotonic() - start)
    return Finished([p.returncode for p in procs], False, False, time.monotonic() - start)


def kill_group(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """SIGTERM the cell's process group, then SIGKILL what is left; reap the launchers."""
    if not procs:
        return
    pgid = procs[0].pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.1)
    for p in procs:
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Launchers may leave children in our group (the single-process path); torchrun puts its
    # workers in sessions of their own and ends them on SIGTERM, and every worker also dies
    # with its launcher (bench/harness/lifeline.py). Sweep the group once more.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


PROGRESS_PREFIX = "progress:"
"""Marks the line a training cell's main process prints at each evaluation (bench/harness/train.py,
progress_line); `bench run` shows the latest beside its progress bar, so a long cell is not silent."""


def latest_progress(log: Path, window: int = 8192) -> str | None:
    """The last progress line in a cell's log, without its prefix (None before the first evaluation).
    Reads only the log's end: a sentiment cell's log grows for minutes."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - window))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line for line in text.splitlines() if line.startswith(PROGRESS_PREFIX)]
    return lines[-1][len(PROGRESS_PREFIX):].strip() if lines else None


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
