"""`--probe-node`: plan a SLURM run against a compute node of its partition, probed in a job.

From a login node without GPUs every GPU cell would be planned as "needs N GPU(s), found 0", and
run.json's peak FLOP/s (the report's MFU) would be the login node's. `--gpus N --gpu-capability X`
declares the nodes instead; `--probe-node` asks one: a short job on the partition (submitit, the
run's partition, account, qos and sbatch options) runs `node_facts` there, the same detection
`bench run` does on its own host (GPUs, native bf16, compute capability, fp8 backend) plus the
environment and the peak FLOP/s measurement. The runner plans against those facts and writes them
into run.json as the run's environment, so the report divides by the compute node's peak.

How many GPUs the probe asks for: --gpus N where given, else the partition's GPU count as sinfo
reports it (its GRES, the smallest node's), else none.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.executors.slurm import require_submitit, sinfo_lines, submission_parameters
from bench.harness.host import Host, visible_gpus

PROBE_TIME_MIN = 15  # the GPU probe (at most 120 s) and the peak measurement (seconds) with room for a slow start
_GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")  # gpu:8, gpu:h100:8(S:0-1), several GRES comma-separated


@dataclass(frozen=True)
class ProbedNode:
    """What a probe job found on a compute node: the facts the cells are planned against, and the
    environment (with its peak FLOP/s) run.json records for the report."""

    host: Host
    """What the cells are planned against: the GPUs asked for, and the node's bf16, capability, fp8 backend."""
    node: str
    """The compute node's host name."""
    job_id: str
    """The probe job's id (SLURM's, or the LocalExecutor's controller pid)."""
    environment: dict[str, Any]
    """bench env's environment on the node, with `peak_flops` and `measured_in_job`: run.json's."""

    def planned_for(self) -> dict[str, Any]:
        """run.json's `planned_for`: the host facts (Host.from_record reads them back) and where they came from."""
        return {**self.host.record(), "probed_on": self.node, "probe_job": self.job_id}


def partition_gpus(partition: str | None) -> int | None:
    """The GPUs per node of `partition` as sinfo's GRES column says (the smallest node's: the plan
    must fit every node); 0 for a partition without GPUs; None where sinfo cannot say."""
    lines = sinfo_lines("--format=%G", *(["--partition", partition] if partition else []))
    return None if lines is None else gpus_in_gres(lines)


def gpus_in_gres(lines: list[str]) -> int | None:
    """The smallest GPU count over sinfo's GRES lines ("gpu:h100:8(S:0-1)", "(null)"); None for no lines."""
    counts = [sum(int(n) for n in _GPU_GRES.findall(line)) for line in lines]
    return min(counts) if counts else None


def node_facts(asked_gpus: int) -> dict[str, Any]:
    """Inside the probe job, on the compute node: what `bench run` detects on its own host, and the
    environment with the measured peak FLOP/s. This short-lived process may hold a CUDA context."""
    import submitit

    from bench.harness.measure import environment
    from bench.harness.peak import measure_peak_flops

    job_id = str(submitit.JobEnvironment().job_id)
    env = {**environment(cpu_only=asked_gpus == 0), "peak_flops": measure_peak_flops(), "measured_in_job": job_id}
    return {"host": Host.detect().record(), "environment": env}


def probed_node(facts: dict[str, Any], asked_gpus: int, job_id: str) -> ProbedNode:
    """The node the cells are planned for, from the facts the job returned; one line when it has
    fewer GPUs than were asked for (a partition whose nodes differ, or GPUs the job was not given)."""
    found = Host.from_record(facts["host"])
    node = str(facts["environment"].get("host", "?"))
    if found.gpus < asked_gpus:
        raise BenchError(f"--probe-node: job {job_id} on {node} saw {found.gpus} GPU(s), not the {asked_gpus} "
                         "asked for; give the partition's GPUs per node with --gpus N")
    # Plan for the GPUs a job is given (asked), not more the node may show unconstrained.
    return ProbedNode(replace(found, gpus=asked_gpus), node, job_id, facts["environment"])


def probe_node(options: ExecutorOptions, gpus: int | None, folder: Path) -> ProbedNode:
    """Submit the probe job (its files under `folder`), wait for it, and return the node it found.
    Ctrl-C cancels it; a job that fails or is cancelled is one line."""
    submitit = require_submitit()
    asked = gpus_to_ask(options, gpus)
    if options.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=PROBE_TIME_MIN, gpus_per_node=asked)
    else:
        executor = submitit.SlurmExecutor(folder=folder)
        executor.update_parameters(**probe_job_parameters(options, asked))
    try:
        job = executor.submit(node_facts, asked)
    except (RuntimeError, subprocess.SubprocessError) as exc:  # sbatch refused it (an option only it knows)
        raise BenchError(f"--probe-node: sbatch refused the probe job ({_last_line(exc)})") from None
    print(f"--probe-node: probing a node of partition {options.partition or '(default)'} for {asked} GPU(s) "
          f"in job {job.job_id}", file=sys.stderr)
    try:
        facts = job.result()  # waits, polling the job
    except KeyboardInterrupt:
        job.cancel(check=False)
        raise
    except Exception as exc:  # submitit's FailedJobError / UncompletedJobError: the job's own error last
        raise BenchError(f"--probe-node: probe job {job.job_id} failed: {_last_line(exc)}") from None
    return probed_node(facts, asked, str(job.job_id))


def gpus_to_ask(options: ExecutorOptions, gpus: int | None) -> int:
    """--gpus N where given; else this host's visible GPUs for `cluster: local`, the partition's GPUs
    per node (sinfo) on a cluster; one line when sinfo cannot say."""
    if gpus is not None:
        return gpus
    if options.cluster == "local":
        return len(visible_gpus())
    found = partition_gpus(options.partition)
    if found is None:
        raise BenchError(f"--probe-node: sinfo does not say how many GPUs the nodes of partition "
                         f"{options.partition or '(default)'} have; give it with --gpus N")
    return found


def _last_line(exc: BaseException) -> str:
    """A job's error is the last line of the traceback submitit quotes."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def probe_job_parameters(options: ExecutorOptions, gpus: int) -> dict[str, Any]:
    """The probe job in sbatch's words: one task on one node of the run's partition, with the GPUs
    a cell's job would get and the node to itself while it measures the peak."""
    params: dict[str, Any] = {"job_name": "bench-probe-node", "nodes": 1, "ntasks_per_node": 1,
                              "cpus_per_task": max(gpus, 1) * options.cpus_per_rank, "time": PROBE_TIME_MIN}
    if gpus:
        params["gpus_per_node"] = gpus
    return {**params, **submission_parameters(options)}  # exclusive: the peak is measured on a quiet node
