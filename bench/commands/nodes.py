"""Which nodes `bench run` and `bench tune` plan their cells for: this host (the default), the
nodes of a SLURM partition as declared (--gpus N --gpu-capability X), or one of them probed in a
short job (--probe-node, bench/harness/executors/node_probe.py). docs/cluster.md says when to use which."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.host import Host


@dataclass(frozen=True)
class PlannedNodes:
    """The nodes the cells are planned against, where they are not this host."""

    host: Host
    """GPUs, native bf16, compute capability and fp8 backend, as matrix.skip_reason reads them."""
    planned_for: dict[str, Any]
    """What run.json records of them (`planned_for`), and a --resume plans against again."""
    environment: dict[str, Any] | None = None
    """A probed node's environment and measured peak FLOP/s: run.json's, in place of this host's."""

    def describe(self) -> str:
        """One line: what the cells are planned for, and whether it was probed or declared."""
        host, where = self.host, self.planned_for.get("probed_on")
        capability = ".".join(map(str, host.gpu_capability)) if host.gpu_capability else "unknown"
        facts = (f"nodes of {host.gpus} GPU(s) of compute capability {capability}, "
                 f"{'native' if host.bf16_gpu else 'no native'} bf16, fp8 backend {host.fp8_backend or 'none'}")
        how = f"probed on {where} in job {self.planned_for.get('probe_job')}" if where else "declared"
        return f"planned for {facts} ({how})"


def add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", type=int, metavar="N",
                        help="slurm: plan the cells for nodes with N GPUs (the partition's, declared from a login node "
                             "that has none) instead of this host's; with --probe-node, the GPUs the probe job asks for")
    parser.add_argument("--gpu-capability", metavar="MAJOR.MINOR",
                        help="with --gpus: their CUDA compute capability (9.0 for an H100; decides bf16, TF32 and fp8)")
    parser.add_argument("--probe-node", action="store_true",
                        help="slurm: before planning, run one short job on a node of the partition and plan for what it "
                             "finds there (GPUs, bf16, compute capability, fp8 backend); run.json then records that "
                             "node's environment and peak FLOP/s (docs/cluster.md)")


def planned_nodes(args: argparse.Namespace, options: ExecutorOptions | None, folder: Path,
                  resuming: bool = False, recorded: dict[str, Any] | None = None) -> PlannedNodes | None:
    """The nodes --probe-node finds or --gpus declares (slurm only); None: plan against this host.
    A probe job's files go under `folder`. A --resume (`resuming`) plans for what its run recorded
    (`recorded`: run.json's planned_for; None: the host it runs on) and refuses a flag that would
    plan otherwise: one run holds cells planned for one kind of node."""
    slurm = options is not None and options.type == "slurm"
    if args.gpus is not None and args.gpus < 0:
        raise BenchError(f"--gpus must be 0 or more, got {args.gpus}")
    if args.gpu_capability and (args.gpus is None or args.probe_node):
        raise BenchError("--gpu-capability goes with --gpus N" if not args.probe_node else
                         "--probe-node measures the compute capability: --gpu-capability goes with --gpus alone")
    if (args.probe_node or args.gpus is not None) and not slurm:
        raise BenchError(f"{'--probe-node probes' if args.probe_node else '--gpus declares'} the nodes of a SLURM "
                         "partition: it goes with --executor slurm")
    if resuming:
        return _resumed(args, recorded)
    if args.probe_node:
        from bench.harness.executors.node_probe import probe_node

        probed = probe_node(options, args.gpus, folder)
        return PlannedNodes(probed.host, probed.planned_for(), probed.environment)
    if args.gpus is None:
        return None
    host = _declared(args)
    return PlannedNodes(host, host.record())


def _declared(args: argparse.Namespace) -> Host:
    from bench.harness.host import parse_capability

    return Host.declared(args.gpus, parse_capability(args.gpu_capability) if args.gpu_capability else None)


def _resumed(args: argparse.Namespace, recorded: dict[str, Any] | None) -> PlannedNodes | None:
    """A resumed run's nodes, as recorded; --gpus only where it declares the same nodes again."""
    planned = PlannedNodes(Host.from_record(recorded), recorded) if recorded is not None else None
    where = planned.describe() if planned is not None else "planned for the host it runs on"
    if args.probe_node:
        raise BenchError(f"--probe-node plans a new run; a --resume plans for the nodes its run was planned for ({where})")
    if args.gpus is not None and (planned is None or _declared(args) != planned.host):
        raise BenchError(f"--gpus on a --resume would plan its cells for other nodes than its run was: {where}; "
                         "drop --gpus, or start a new run")
    return planned
