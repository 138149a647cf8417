"""Pick a workload's quality target from measurements, not hope.

    python -m bench.harness.calibrate --workload maintenance --variant gru --seeds 5 --max-epochs 40 \\
        --precision fp32 --precision bf16

Trains each seed in this process (single process, no launcher) with an unreachable target, so
every run goes to its budget, and prints, for candidate targets, how many seeds reached each and
the median training seconds/epochs to get there. Choose the target that a sound model meets
nearly always (e.g. all seeds) comfortably inside the matrix budget.

`--weak-processes N` trains as a scaling=weak cell on N processes would, in this one process: the
same global batch (N x device_batch) and learning rate (bench/harness/train.py weak_scaled). DDP
averages the ranks' gradients, so the optimisation is the same; what a GPU matrix's per-GPU batch
does to convergence is measured here, what it does to speed only on the GPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
from tabulate import tabulate


def calibrate(workload_name: str, variant: str | None, seeds: list[int], precision: str, budget, params: dict,
              weak_processes: int | None = None) -> list[dict]:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import set_seed

    from bench.harness.train import train, weak_scaled
    from workloads import make_workload

    AcceleratorState._reset_state(True)  # one Accelerator per precision in this process
    GradientState._reset_state()
    accelerator = Accelerator(cpu=True, mixed_precision="no" if precision == "fp32" else precision)
    runs = []
    for seed in seeds:
        set_seed(seed)
        workload = make_workload(workload_name, variant, params)
        # An unreachable target makes the loop run the whole budget and record the full curve.
        workload.params = dataclasses.replace(workload.params, target=float("inf"))
        if weak_processes:
            workload.params = weak_scaled(workload.params, weak_processes)
        splits = workload.load(seed)
        outcome = train(accelerator, workload, splits, budget, seed)
        runs.append({"seed": seed, "curve": outcome.curve, "metric": workload.target_metric})
    return runs


def first_reaching(curve: list[dict], metric: str, value: float) -> dict | None:
    return next((point for point in curve if point[metric] >= value), None)


def main(argv: list[str] | None = None) -> int:
    """The command line: a user mistake (bad params, a batch bigger than the data) is one line."""
    from bench.errors import BenchError

    try:
        return _calibrate_command(argv)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _calibrate_command(argv: list[str] | None) -> int:
    from bench.cells import Budget
    from bench.errors import BenchError

    parser = argparse.ArgumentParser(prog="bench.harness.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--variant")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16"])
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--params", default="{}", help="JSON overrides of the workload's params")
    parser.add_argument("--candidates", default="", help="comma-separated candidate targets")
    parser.add_argument("--weak-processes", type=int, metavar="N",
                        help="train as a scaling=weak cell on N processes would (global batch N x device_batch)")
    args = parser.parse_args(argv)
    if args.weak_processes is not None and args.weak_processes < 1:
        parser.error(f"--weak-processes must be 1 or more, got {args.weak_processes}")
    budget = Budget(max_epochs=args.max_epochs, max_seconds=args.max_seconds, max_steps=args.max_steps)
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise BenchError(f"--params is not JSON ({exc})") from None
    if not isinstance(params, dict):
        raise BenchError(f"--params must be a JSON object of the workload's params, got {args.params}")
    if "device_batch" in params and not args.weak_processes:
        raise BenchError("device_batch is a weak-scaled cell's batch per process: it goes with --weak-processes N")
    for precision in args.precision or ["fp32"]:
        runs = calibrate(args.workload, args.variant, list(range(args.seeds)), precision, budget, params,
                         args.weak_processes)
        metric = runs[0]["metric"]
        best = [max(p[metric] for p in r["curve"]) for r in runs]
        final = [r["curve"][-1][metric] for r in runs]
        scaled = f" weak on {args.weak_processes} processes" if args.weak_processes else ""
        print(f"\n{args.workload} {args.variant or ''} {precision}{scaled} {args.params}: best val {metric} per seed "
              f"{np.round(best, 3).tolist()}, final {np.round(final, 3).tolist()}")
        candidates = [float(c) for c in args.candidates.split(",") if c] or sorted(
            {round(v, 2) for v in np.quantile(best, [0.0, 0.25, 0.5]) - 0.05}
        )
        rows = []
        for value in candidates:
            hits = [first_reaching(r["curve"], metric, value) for r in runs]
            reached = [h for h in hits if h]
            rows.append([
                value,
                f"{len(reached)}/{len(runs)}",
                np.median([h["epoch"] for h in reached]) if reached else "-",
                np.max([h["epoch"] for h in reached]) if reached else "-",
                np.median([h["step"] for h in reached]) if reached else "-",
                np.max([h["step"] for h in reached]) if reached else "-",
                f"{np.median([h['seconds'] for h in reached]):.1f}" if reached else "-",
                f"{np.max([h['seconds'] for h in reached]):.1f}" if reached else "-",
            ])
        for run in runs:  # the whole curve: where a seed dips matters as much as where it ends
            print(f"seed {run['seed']}: " + " ".join(f"{p['step']}:{p[metric]:.3f}" for p in run["curve"]))
        print(tabulate(rows, headers=["target", "reached", "median epoch", "max epoch", "median step", "max step", "median s", "max s"], tablefmt="github"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
