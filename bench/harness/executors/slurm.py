"""`bench run --executor slurm`: each cell one SLURM job, submitted through submitit.

No scheduler of our own: submitit writes the sbatch script, submits it, watches the job (sacct)
and runs `run_cell_job` inside it, once per node (srun, one task per node). Each node's task
starts that node's `accelerate launch` (the rendezvous on the job's first host), exactly as
scripts/slurm-multinode.sbatch does by hand; node 0's task then writes the cell's result into
the run folder like a local run does (cells/<id>.json, logs/, mllog/), so report, compare and
--resume read it unchanged. The run folder must be on a filesystem every node sees.

Jobs with the same resources go into one job array whose concurrency is capped (`max_jobs`:
sbatch --array=0-K%max_jobs). The job ids are recorded in <run>/slurm/jobs.json as they are
submitted: Ctrl-C cancels every job of the run that is not done, and --resume re-attaches to a
recorded job that is still queued or running instead of submitting the cell again.

`cluster: local` runs the same code path through submitit's LocalExecutor (real processes on
this host, for tests and for trying a matrix out): there a job has one node, so a multi-node cell
runs its node launchers on loopback inside its one job, and at most `max_jobs` jobs run at once
(the LocalExecutor has no arrays: the runner submits the next as one ends).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cells import Cell
from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.executors.base import (
    CellFiles,
    OnDone,
    PlannedCell,
    PlannedLaunch,
    collect_result,
    prepare_cell,
    read_result,
)
from bench.harness.launch import free_port, launch_commands, launch_env, run_group, tail
from bench.harness.measure import load_average
from bench.harness.topology import Topology, load_topology
from bench.results import make_result, write_json_atomic

QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "UNKNOWN", "READY", "SUSPENDED", "RESIZING"}
RUNNING = {"RUNNING", "COMPLETING"}


def require_submitit() -> Any:
    """The submitit module, or one line saying how to get it."""
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor slurm needs the submitit package, which is not installed; "
                         "pip install 'accelerate-bench[slurm]' (or pip install submitit)") from None
    return submitit


def check_cluster(options: ExecutorOptions) -> None:
    """Before anything is submitted: submitit is there, the cluster's commands are, and the
    partition is one the cluster has (when sinfo can say)."""
    require_submitit()
    if options.cluster == "local":
        return
    if shutil.which("sbatch") is None:
        raise BenchError("--executor slurm: no sbatch on PATH; run from a SLURM login node "
                         "(or set cluster: local in the matrix's executor section to try it on this host)")
    if options.partition and shutil.which("sinfo"):
        known = _partitions()
        if known is not None and options.partition not in known:
            raise BenchError(f"unknown partition {options.partition!r}; this cluster has {', '.join(sorted(known))}")


def _partitions() -> set[str] | None:
    lines = sinfo_lines("--format=%P")
    return None if lines is None else {line.rstrip("*") for line in lines}


def sinfo_lines(*args: str) -> list[str] | None:
    """The non-empty lines `sinfo --noheader ARGS` prints; None where there is no sinfo or it fails."""
    try:
        out = subprocess.run(["sinfo", "--noheader", *args], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def job_parameters(cell: Cell, topology: Topology | None, options: ExecutorOptions) -> dict[str, Any]:
    """The cell's job in sbatch's words (as submitit's SlurmExecutor takes them): one task per
    node, the GPUs and CPUs of its ranks on each node, memory, and the cell's timeout plus a
    margin (the cell's own timeout is enforced inside the job, as on one host)."""
    nodes = topology.num_machines if topology is not None else 1
    ranks = topology.processes_per_machine if topology is not None else 1
    params: dict[str, Any] = {
        "job_name": f"bench-{cell.id}"[:120],
        "nodes": nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": ranks * options.cpus_per_rank,
        "mem": f"{math.ceil(ranks * options.mem_per_rank_gb)}GB",
        "time": math.ceil(cell.timeout_s / 60) + options.time_margin_min,
        "array_parallelism": options.max_jobs,
    }
    # srun does not pass sbatch's --cpus-per-task on to the task on every SLURM version (from 22.05
    # it does not): without it a node's launcher and all its ranks share one CPU.
    params["srun_args"] = ["--cpus-per-task", str(params["cpus_per_task"])]
    if nodes > 1:
        # One node's task failing ends the others (run_cell_job exits non-zero then): else a node
        # whose peer died waits in accelerate's rendezvous until the cell's timeout.
        params["srun_args"].append("--kill-on-bad-exit=1")
    if topology is not None and not topology.use_cpu:
        params["gpus_per_node"] = ranks
    return {**params, **submission_parameters(options)}


def submission_parameters(options: ExecutorOptions) -> dict[str, Any]:
    """What every job of a run asks sbatch besides its resources: the partition, account and qos,
    the whole node (a benchmark shares no node), and the matrix's further sbatch options."""
    params: dict[str, Any] = {"exclusive": True} if options.exclusive else {}
    for name in ("partition", "account", "qos"):
        if getattr(options, name):
            params[name] = getattr(options, name)
    if options.sbatch:
        params["additional_parameters"] = dict(options.sbatch)
    return params


def sbatch_script(params: dict[str, Any], folder: Path) -> str:
    """The sbatch script submitit would submit for a job with `params` (nothing is submitted)."""
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(command="python -m submitit.core._submit", folder=str(folder), **params)


def run_cell_job(cell_dict: dict[str, Any], run_dir: str) -> dict[str, Any] | None:
    """Inside the SLURM job, on every node: this node's `accelerate launch`; node 0 then writes
    the cell's result (what `bench run` writes for a local cell) and returns it."""
    import submitit

    job = submitit.JobEnvironment()
    cell = Cell.from_dict(cell_dict)
    topology = load_topology(cell.topology) if cell.kind == "train" else None
    files = CellFiles(Path(run_dir) / "launch" / f"{cell.id}.json", Path(run_dir) / "cells" / f"{cell.id}.json",
                      Path(run_dir) / "logs" / f"{cell.id}.log", Path(run_dir) / "mllog" / f"{cell.id}.log")
    if topology is not None and job.num_nodes > 1:
        # Really one launcher per node: rank = this node, rendezvous on the job's first host, on a
        # port derived from the job id (every node must name the same one, none can ask node 0).
        # The whole id ("12345_7" in an array): two cells of one array may share a first host.
        port = 20000 + zlib.crc32(str(job.job_id).encode()) % 20000
        commands = [launch_commands(topology, cell.precision, files.cell_file, files.out, port, files.mllog,
                                    main_ip=job.hostnames[0], ranks_on_host=topology.processes_per_machine)[job.node]]
    else:
        port = free_port() if topology is not None and topology.num_processes > 1 else None
        commands = launch_commands(topology, cell.precision, files.cell_file, files.out, port, files.mllog)
    log = files.log if job.node == 0 else files.log.with_suffix(f".node{job.node}.log")
    load_start = load_average()
    finished = run_group(commands, launch_env(topology), log, cell.timeout_s)
    failed = job.num_nodes > 1 and not finished.interrupted and any(code != 0 for code in finished.returncodes)
    if job.node != 0 or finished.interrupted:  # cancelled (scancel, Ctrl-C): no result, as locally
        end_the_step_if(failed, job.node)
        return None
    # What the job was really given on node 0 (its task's CPU affinity and GPUs), beside its id.
    placement = {"executor": "slurm", "cluster": os.environ.get("SUBMITIT_EXECUTOR", "slurm"),
                 "job_id": str(job.job_id), "hostnames": job.hostnames, "cores": sorted(os.sched_getaffinity(0)),
                 "gpus": os.environ.get("CUDA_VISIBLE_DEVICES") or None}
    result = collect_result(cell, files, finished, load_start, {"placement": placement})
    end_the_step_if(failed, job.node)  # after the result is written: the run keeps it
    return result


def end_the_step_if(failed: bool, node: int) -> None:
    """A node of a multi-node job whose launch failed exits non-zero, so that srun's
    --kill-on-bad-exit ends the other nodes' tasks at once instead of leaving them in rendezvous."""
    if failed:
        raise BenchError(f"node {node}: this node's launch failed; ending the job's other nodes (srun --kill-on-bad-exit)")


@dataclass
class _Job:
    cell: Cell
    job_id: str
    handle: Any  # a submitit Job, or None for a re-attached local job (its pid is all there is)
    done: bool = False


class SlurmExecutor:
    """A SLURM job per cell (through submitit), into `run_dir` on a filesystem every node sees,
    as `options` say (partition, account, resources, `cluster: local`); `bar` (a tqdm bar) counts
    the jobs queued, running and done."""

    shares_launches = False  # a job per cell: each seed pays its own launch

    def __init__(self, run_dir: Path, options: ExecutorOptions, bar: Any) -> None:
        self.run_dir, self.options, self.bar = run_dir, options, bar

    def run(self, launches: list[PlannedLaunch], on_done: OnDone) -> bool:
        return run_on_slurm([item for launch in launches for item in launch], self.run_dir, self.options, on_done, self.bar)


def run_on_slurm(todo: list[PlannedCell], run_dir: Path, options: ExecutorOptions,
                 on_done: OnDone, bar: Any) -> bool:
    """Submit (or re-attach to) a job per cell and wait for them all; True when interrupted."""
    check_cluster(options)
    folder = run_dir / "slurm"
    record = _read_jobs(folder)
    jobs: list[_Job] = []
    waiting: list[dict[str, Any]] = []
    for item in todo:
        cell: Cell = item.cell
        known = record.get(cell.id)
        if isinstance(known, dict) and known.get("cluster") == options.cluster and _alive(options, folder, known["job_id"]):
            jobs.append(_Job(cell, known["job_id"], _handle(options, folder, known["job_id"])))
            bar.write(f"{cell.id}: re-attached to job {known['job_id']} (still queued or running)")
        else:
            waiting.append(item)
    try:
        if options.cluster == "slurm":
            try:
                jobs += _submit_arrays(waiting, run_dir, options, record)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                # sbatch refused a job (a bad account or option it alone knows): take back what
                # was submitted, say why in one line.
                _cancel(jobs + _recorded(record, waiting, options, folder), options, bar)
                raise BenchError(f"sbatch refused the run's jobs ({str(exc).strip().splitlines()[-1][:300]}); "
                                 "the jobs already submitted were cancelled") from None
            waiting = []
        while waiting or any(not job.done for job in jobs):
            if options.cluster == "local":  # no arrays: keep max_jobs running
                while waiting and sum(not job.done for job in jobs) < options.max_jobs:
                    jobs += _submit(waiting.pop(0), run_dir, options, record)
            _poll(jobs, options, folder, run_dir, on_done, bar, len(waiting))
            time.sleep(2.0)
    except KeyboardInterrupt:
        _cancel([job for job in jobs if not job.done], options, bar)
        return True
    return False


def _submit_arrays(items: list[PlannedCell], run_dir: Path, options: ExecutorOptions,
                   record: dict[str, Any]) -> list[_Job]:
    """One job array per set of resources, each capped at max_jobs running at once."""
    submitit = require_submitit()
    groups: dict[str, list[tuple[PlannedCell, dict[str, Any]]]] = {}
    for item in items:
        params = job_parameters(item.cell, item.topology, options)
        key = repr(sorted((k, v) for k, v in params.items() if k != "job_name"))
        groups.setdefault(key, []).append((item, params))
    jobs: list[_Job] = []
    for group in groups.values():
        executor = submitit.SlurmExecutor(folder=run_dir / "slurm")
        params = {**group[0][1], "job_name": f"bench-{run_dir.name}"[:120]}
        executor.update_parameters(**params)
        cells = [item.cell for item, _ in group]
        for cell in cells:
            prepare_cell(cell, run_dir)
        with executor.batch():
            handles = [executor.submit(run_cell_job, cell.to_dict(), str(run_dir.absolute())) for cell in cells]
        for cell, handle in zip(cells, handles, strict=True):
            jobs.append(_Job(cell, handle.job_id, handle))
            record[cell.id] = {"job_id": handle.job_id, "cluster": "slurm"}
        _write_jobs(run_dir / "slurm", record)
    return jobs


def _recorded(record: dict[str, Any], items: list[PlannedCell], options: ExecutorOptions, folder: Path) -> list[_Job]:
    """The jobs recorded for `items` (those of a submission that failed part-way)."""
    return [_Job(item.cell, record[item.cell.id]["job_id"], _handle(options, folder, record[item.cell.id]["job_id"]))
            for item in items if item.cell.id in record]


def _submit(item: PlannedCell, run_dir: Path, options: ExecutorOptions, record: dict[str, Any]) -> list[_Job]:
    """One cell as one job of submitit's LocalExecutor (cluster: local)."""
    submitit = require_submitit()
    cell: Cell = item.cell
    params = job_parameters(cell, item.topology, options)
    executor = submitit.LocalExecutor(folder=run_dir / "slurm")
    executor.update_parameters(timeout_min=params["time"], gpus_per_node=params.get("gpus_per_node", 0))
    prepare_cell(cell, run_dir)
    handle = executor.submit(run_cell_job, cell.to_dict(), str(run_dir.absolute()))
    record[cell.id] = {"job_id": handle.job_id, "cluster": "local"}
    _write_jobs(run_dir / "slurm", record)
    return [_Job(cell, handle.job_id, handle)]


def _poll(jobs: list[_Job], options: ExecutorOptions, folder: Path, run_dir: Path,
          on_done: OnDone, bar: Any, unsubmitted: int) -> None:
    counts = {"queued": unsubmitted, "running": 0, "done": 0}
    for job in jobs:
        if not job.done:
            state = _state(job, options, folder)
            if state == "done":
                job.done = True
                on_done(job.cell, _result_of(job, run_dir, folder))
            counts[state] += 1
        else:
            counts["done"] += 1
    bar.set_postfix_str(f"queued {counts['queued']}, running {counts['running']}, done {counts['done']}")


def _state(job: _Job, options: ExecutorOptions, folder: Path) -> str:
    if options.cluster == "local":
        if job.handle is not None and getattr(job.handle, "_process", None) is not None:
            return "running" if job.handle._process.poll() is None else "done"
        return "running" if _alive(options, folder, job.job_id) else "done"
    state = str(job.handle.state).upper()
    if state in QUEUED:
        return "queued"
    if state in RUNNING:
        return "running"
    return "done"


def _result_of(job: _Job, run_dir: Path, folder: Path) -> dict[str, Any]:
    """The result the job wrote; a failed one when the job ended without writing it (cancelled,
    killed at its time limit, a node lost), with the end of the job's own log."""
    out = run_dir / "cells" / f"{job.cell.id}.json"
    result = read_result(out)
    if result is not None:
        return result
    state = "ended" if job.handle is None else f"ended {job.handle.state}"
    cell_logs = [run_dir / "logs" / f"{job.cell.id}.log", *sorted((run_dir / "logs").glob(f"{job.cell.id}.node*.log"))]
    logs = [p for p in folder.glob(f"{job.job_id}_*_log.err")] + cell_logs  # every node's: the failure may be on node 1
    result = make_result(job.cell.to_dict(), "failed", f"job {job.job_id} {state} without writing a result",
                         stderr_tail="\n".join(filter(None, (tail(p) for p in logs))))
    write_json_atomic(out, result)
    return result


def _cancel(jobs: list[_Job], options: ExecutorOptions, bar: Any) -> None:
    """Ctrl-C: cancel every job of the run not yet done (scancel; SIGINT to a local job), and wait
    for local jobs to be gone, their processes with them."""
    for job in jobs:
        try:
            if job.handle is not None:
                job.handle.cancel(check=False)
            elif options.cluster == "local":
                os.kill(int(job.job_id), signal.SIGINT)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    bar.write(f"cancelled {len(jobs)} job(s): {', '.join(job.job_id for job in jobs)}")
    if options.cluster == "local":
        deadline = time.monotonic() + 30
        for job in jobs:
            proc = getattr(job.handle, "_process", None)
            while time.monotonic() < deadline and (proc.poll() is None if proc is not None else _pid_alive(job.job_id)):
                time.sleep(0.2)


def _handle(options: ExecutorOptions, folder: Path, job_id: str) -> Any:
    if options.cluster == "local":
        return None
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=job_id)


def _alive(options: ExecutorOptions, folder: Path, job_id: str) -> bool:
    """Whether a recorded job is still queued or running (its result is still to come)."""
    if options.cluster == "local":
        return _pid_alive(job_id)
    state = str(_handle(options, folder, job_id).state).upper()
    return state in QUEUED - {"UNKNOWN"} or state in RUNNING


def _pid_alive(job_id: str) -> bool:
    """A local job is its controller process (submitit.local._local): alive unless gone, a zombie,
    or the pid now taken by another program."""
    try:
        status = Path(f"/proc/{int(job_id)}/status").read_text()
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return False
    return "\nState:\tZ" not in status and "submitit.local._local" in cmdline


def _read_jobs(folder: Path) -> dict[str, Any]:
    record = read_result(folder / "jobs.json")
    return record if isinstance(record, dict) else {}


def _write_jobs(folder: Path, record: dict[str, Any]) -> None:
    write_json_atomic(folder / "jobs.json", record)
