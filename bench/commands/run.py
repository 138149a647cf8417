"""`bench run`: expand a matrix into cells and run them into results/<run-id>/."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.analysis.seeds_auto import DEFAULT_MAX_SEEDS, MAX_SEEDS_CAP
from bench.cells import Cell, is_config_path
from bench.commands.nodes import PlannedNodes, add_node_flags, planned_nodes
from bench.commands.run_auto import (
    AUTO,
    parse_max_seeds,
    parse_seeds,
    recorded,
    run_rounds,
    start_cells,
    summary_lines,
    with_seeds,
)
from bench.errors import BenchError
from bench.harness.config import ExecutorOptions, MatrixConfig, parse_sbatch_options
from bench.harness.host import Host
from bench.harness.matrix import available_matrices, filter_cells, load_config
from bench.harness.runner import (
    new_run_id,
    plan,
    print_dry_run,
    refuse_changed_cells,
    run_cells,
    summary_table,
)
from bench.harness.topology import available_topologies, load_topology
from bench.harness.trackers import TRACKERS, require_tracker, tracking_for
from bench.paths import RESULTS_DIR, check_run_id
from bench.results import write_json_atomic
from bench.run_meta import RunMeta, RunMetaError, run_json

FAILED_STATUSES = ("failed", "invalid")


def seeds_for_target(ratio: float, max_seeds: str | None, start: int) -> int:
    """--target-ratio: the --max-seeds at which the sequential design finds `ratio` 80% of the time."""
    from bench.analysis.error_rates import TTT_SPREAD, max_seeds_for

    if max_seeds is not None:
        raise BenchError("give --target-ratio or --max-seeds, not both")
    if not 1.0 < ratio <= 10.0 and not 0.1 <= ratio < 1.0:
        raise BenchError(f"--target-ratio must be a ratio away from 1 (e.g. 1.3), got {ratio:g}")
    wanted = max(ratio, 1 / ratio)
    seeds = max_seeds_for(wanted, start)
    if seeds is None:
        raise BenchError(f"--target-ratio {ratio:g}: even {MAX_SEEDS_CAP} seeds a side would find it less than 80% of "
                         f"the time at the time-to-target spread measured here ({TTT_SPREAD}); aim for a larger ratio")
    print(f"--target-ratio {ratio:g}: up to {seeds} seeds a side (finds {wanted:g}x 80% of the time at the "
          f"time-to-target spread {TTT_SPREAD} measured on these machines)", file=sys.stderr)
    return seeds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--matrix", help=f"matrix name ({', '.join(available_matrices())}) or YAML path; default smoke")
    parser.add_argument("--workload", help="only this workload")
    parser.add_argument("--config", metavar="NAME|YAML",
                        help=f"only this topology ({', '.join(available_topologies())}); or the path of your own "
                             "`accelerate config` YAML, under which every training cell of the matrix then runs")
    parser.add_argument("--precision", help="only this precision (fp32, tf32, fp16, bf16, fp8)")
    parser.add_argument("--seeds", metavar="N|auto",
                        help="run each cell with seeds 0..N-1 (overrides the matrix); `auto`: start with 3 seeds (or the "
                             "matrix's, if more) and add seeds to each configuration whose time-to-target against its "
                             "reference is still undecided, until the exact test decides it at the sequential design's per-look level "
                             "or --max-seeds is reached (docs/report.md)")
    parser.add_argument("--max-seeds", metavar="N",
                        help=f"with --seeds auto: the most seeds a configuration gets (default {DEFAULT_MAX_SEEDS}, "
                             f"at most {MAX_SEEDS_CAP})")
    parser.add_argument("--target-ratio", type=float, metavar="R",
                        help="with --seeds auto: the smallest time-to-target ratio worth finding (e.g. 1.3); sets "
                             "--max-seeds to the fewest seeds at which the sequential design finds it 80%% of the time "
                             "at the seed spread measured on these machines (docs/report.md)")
    parser.add_argument("--dry-run", action="store_true", help="print every cell, its launch command(s) and whether it would run")
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="continue results/RUN_ID, skipping completed cells; refused if run.json is missing or damaged, "
                             "or if the matrix now gives a completed cell other params, budget, topology or precision")
    parser.add_argument("--run-id", help="name of the new run directory (default: <date>-<time>-<matrix>)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where run directories go (default: results/)")
    parser.add_argument("--save-checkpoint", type=Path, metavar="DIR",
                        help="save the model of the first training cell of each workload that supports it (unless it failed)")
    parser.add_argument("--executor", choices=("local", "slurm"),
                        help="where cells run: local (this host, the default) or slurm (one job per cell through "
                             "submitit); also the matrix's executor: section (docs/cluster.md)")
    parser.add_argument("--parallel", type=int, metavar="N",
                        help="local executor: up to N cells at once, each pinned to its own cores and GPUs (default 1)")
    parser.add_argument("--partition", help="slurm: the partition to submit to")
    parser.add_argument("--account", help="slurm: the account to charge")
    parser.add_argument("--qos", help="slurm: the quality of service")
    parser.add_argument("--max-jobs", type=int, metavar="N", help="slurm: at most N jobs of the run at once (default 8)")
    parser.add_argument("--sbatch", action="append", metavar="OPTION=VALUE",
                        help="slurm: a further sbatch option (repeatable), e.g. --sbatch constraint=a100")
    add_node_flags(parser)
    parser.add_argument("--cluster", choices=("slurm", "local"),
                        help="slurm: `local` runs the jobs through submitit's LocalExecutor on this host (the same "
                             "code path, no cluster; for trying a matrix out and for tests)")
    parser.add_argument("--log-with", metavar="TRACKER",
                        help="also log each training cell (configuration, convergence curve, final metrics) to an "
                             f"Accelerate tracker: {', '.join(TRACKERS)}; local files under results/RUN_ID/trackers/ "
                             "(docs/integrations.md)")


@dataclass
class _Run:
    """What `bench run`'s flags resolve to: the cells (the matrix's, filtered and with the flags'
    changes), where they go, how they run, and for --seeds auto where the loop starts."""

    cells: list[Cell]
    run_dir: Path
    options: ExecutorOptions | None
    """None: the default, one local launch at a time."""
    nodes: PlannedNodes | None
    """The nodes to plan for (--probe-node, --gpus, or a resumed run's); None: this host."""
    auto: bool = False
    start: int = 0
    """--seeds auto: the seeds every configuration starts with."""
    auto_record: dict[str, Any] | None = None
    """--seeds auto, resumed: run.json's record of the rounds so far."""


def run(args: argparse.Namespace) -> int:
    job = _resolve(args)
    if args.dry_run:
        return _dry_run(args, job)
    return _execute(args, job)


def _resolve(args: argparse.Namespace) -> _Run:
    """Every flag checked and applied to the matrix's configuration (bench/harness/config.py), before
    anything is planned, launched or submitted; a --resume takes what its run.json recorded."""
    args.seeds = parse_seeds(args.seeds)
    if args.run_id is not None:
        check_run_id(args.run_id, "--run-id")
    if args.log_with is not None:
        require_tracker(args.log_with)  # before anything launches: accelerate would drop a missing one silently
    if args.resume is not None:
        check_run_id(args.resume, "--resume")
        run_dir = args.results_dir / args.resume
        if not run_dir.is_dir():
            raise BenchError(f"no run {args.resume!r} under {args.results_dir} to resume")
        _inherit_from_run(args, run_dir)
    args.matrix = args.matrix or "smoke"
    auto = args.seeds == AUTO
    if (args.max_seeds is not None or args.target_ratio is not None) and not auto:
        raise BenchError("--max-seeds and --target-ratio go with --seeds auto")
    start = 0
    if auto:
        config, start = start_cells(args.matrix)
        if args.target_ratio is not None:
            args.max_seeds = seeds_for_target(args.target_ratio, args.max_seeds, start)
        args.max_seeds = parse_max_seeds(args.max_seeds, start)
    else:
        config = load_config(args.matrix, args.seeds)
    cells = _filtered(args, config.cells)
    if not args.resume:
        run_dir = args.results_dir / (args.run_id or new_run_id(args.matrix))
        # A folder holding only a dry run's launch files has no results to lose.
        started = run_json(run_dir).exists() or any(run_dir.glob("cells/*.json"))
        if args.run_id and started and not args.dry_run:
            raise BenchError(f"run {args.run_id!r} already exists under {args.results_dir}; continue it with --resume {args.run_id}")
    auto_record = recorded(_recorded(run_dir), f"run {run_dir.name!r}: {run_json(run_dir)}") if auto and args.resume else None
    if auto_record:  # the seeds earlier rounds added, so that the loop takes up where it stopped
        cells = with_seeds(cells, {config_id: c["seed_list"] for config_id, c in auto_record["cells"].items()})
    if args.save_checkpoint:
        cells = _with_checkpoint(cells, args.save_checkpoint)
    if args.log_with:
        cells = _with_tracking(cells, tracking_for(args.log_with, run_dir))
    options = _executor(args, config, run_dir)
    if not args.dry_run:
        from bench.data.datasets import preflight

        preflight(cell.workload for cell in cells)  # the data, as `bench data verify` checks it, before any job or launch
    recorded_nodes = _recorded(run_dir).planned_for if args.resume else None
    # --probe-node submits a job
    nodes = planned_nodes(args, options, run_dir / "slurm" / "probe", bool(args.resume), recorded_nodes)
    return _Run(cells, run_dir, options, nodes, auto, start, auto_record)


def _filtered(args: argparse.Namespace, cells: list[Cell]) -> list[Cell]:
    """--workload, --config and --precision applied; --config PATH runs every training cell under that file."""
    if args.config and is_config_path(args.config):
        # Absolute, so that run.json's filters name the same file to a --resume from anywhere.
        args.config = str(Path(args.config).expanduser().absolute())
        cells = _under_config(cells, args.config)
        return filter_cells(cells, args.workload, None, args.precision)
    return filter_cells(cells, args.workload, args.config, args.precision)


def _dry_run(args: argparse.Namespace, job: _Run) -> int:
    """Print every launch and write the cell files its commands name; nothing is launched."""
    if args.resume:
        refuse_changed_cells(job.cells, job.run_dir)  # what the real resume would refuse
    planned = plan(job.cells, job.run_dir, job.nodes.host if job.nodes is not None else Host.detect())
    if job.nodes is not None:
        print(job.nodes.describe())
    print_dry_run(planned)
    # Write the cell files the printed commands name, so that each command runs as printed,
    # e.g. once per node on a cluster (scripts/slurm-multinode.sbatch).
    for item in planned:
        write_json_atomic(job.run_dir / "launch" / f"{item.cell.id}.json", item.cell.to_dict())
    print(f"\ncell files written under {job.run_dir / 'launch'}; no cell was launched")
    if job.auto:
        print(f"--seeds auto: this is the first round ({job.start} seeds per configuration"
              f"{', with the seeds earlier rounds added' if job.auto_record else ''}); more seeds, up to "
              f"--max-seeds {args.max_seeds}, may follow for each configuration whose time-to-target against "
              "its reference is still undecided after a round")
    return 0


def _execute(args: argparse.Namespace, job: _Run) -> int:
    """Run the cells (in rounds, for --seeds auto), print the summary; 1 when a cell failed."""
    cells, run_dir, options, nodes = job.cells, job.run_dir, job.options, job.nodes
    host = nodes.host if nodes is not None else None
    fresh = {"start": job.start, "max": args.max_seeds, "rounds": 0, "done": False, "cells": {}}
    meta = RunMeta(
        matrix=args.matrix, command=shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        filters={"workload": args.workload, "config": args.config, "precision": args.precision}, seeds=args.seeds,
        seeds_auto=(job.auto_record or fresh) if job.auto else None,
        executor=options.describe() if options is not None else None,
        planned_for=nodes.planned_for if nodes is not None else None,
        environment=nodes.environment if nodes is not None else None)  # None: the runner measures this host
    print(f"run {run_dir.name}: {len(cells)} cells -> {run_dir}" + (" in its first round (--seeds auto)" if job.auto else ""),
          file=sys.stderr)
    if nodes is not None:
        print(f"run {run_dir.name}: {nodes.describe()}", file=sys.stderr)
    if job.auto:
        results = run_rounds(cells, run_dir, meta, options, job.start, args.max_seeds, host)
    else:
        results = run_cells(cells, run_dir, meta, options, host)
    print(summary_table(results))
    if job.auto:
        print("\n" + "\n".join(summary_lines(run_dir)))
    bad = [r for r in results if r["status"] in FAILED_STATUSES]
    # Summed over the cells' own launches: a resumed run counts its earlier cells too.
    launched_s = sum(r.get("cell_wall_s") or 0.0 for r in results)
    print(f"\n{len(results)} cells in {run_dir} ({launched_s / 60:.1f} min of launches); {len(bad)} failed or invalid")
    return 1 if bad else 0


def _executor(args: argparse.Namespace, config: MatrixConfig, run_dir: Path) -> ExecutorOptions | None:
    """The executor options (None: the default, one local cell at a time): the matrix's with the
    command line's over them (MatrixConfig.executor_with), all checked before anything is planned,
    launched or submitted: submitit and the partition for slurm, --parallel against this host's
    cores and GPUs. A --resume keeps the executor its run was started with."""
    recorded = (_recorded(run_dir).executor or {}) if args.resume else {}
    cli = {"type": args.executor, "cluster": args.cluster, "partition": args.partition, "account": args.account,
           "qos": args.qos, "max_jobs": args.max_jobs, "sbatch": parse_sbatch_options(args.sbatch),
           "parallel": args.parallel}
    options = config.executor_with(cli, recorded)
    if options.type == "slurm":
        from bench.harness.executors.slurm import check_cluster

        check_cluster(options)
        return options
    if options.parallel > 1:
        from bench.harness.host import host_slots, visible_gpus

        host_slots(options.parallel, visible_gpus())  # the slots the parallel executor will cut
        return options
    return None


def _recorded(run_dir: Path) -> RunMeta:
    """The run.json of the run being resumed (checked by _inherit_from_run already); empty when it has none."""
    try:
        return RunMeta.read(run_dir) or RunMeta()
    except RunMetaError:
        return RunMeta()


def _inherit_from_run(args: argparse.Namespace, run_dir: Path) -> None:
    """On --resume, take the matrix, filters and seeds the run was started with (run.json),
    unless given again; refuse a different matrix rather than mix two into one run. Without a
    readable run.json nothing says what the run was: refuse rather than guess (and run smoke)."""
    where = f"run {run_dir.name!r}: {run_json(run_dir)}"
    try:
        meta = RunMeta.read(run_dir)
        if meta is not None and not meta.matrix:
            raise RunMetaError(run_json(run_dir), f"'matrix' must name the matrix, got {meta.matrix!r}")
    except RunMetaError as exc:
        what = f"cannot be read ({exc.problem})" if exc.unreadable else f"is damaged ({exc.problem})"
        raise BenchError(f"{where} {what}; start a new run (--run-id) instead of resuming this one") from None
    if meta is None:
        raise BenchError(f"{where} is missing, so nothing says which matrix the run ran; "
                         "start a new run (--run-id) instead of resuming this one")
    if args.matrix and args.matrix != meta.matrix:
        raise BenchError(f"run {run_dir.name!r} was started with --matrix {meta.matrix}, not {args.matrix}")
    args.matrix = args.matrix or meta.matrix
    filters = meta.filters or {}
    args.workload = args.workload or filters.get("workload")
    args.config = args.config or filters.get("config")
    args.precision = args.precision or filters.get("precision")
    if args.seeds is None:
        args.seeds = meta.seeds
    if args.seeds == AUTO and args.max_seeds is None and meta.seeds == AUTO:
        args.max_seeds = recorded(meta, where)["max"] if meta.seeds_auto is not None else None


def _under_config(cells, config_file: str):
    """Every training cell of the matrix once under the user's own accelerate config (checked
    first): the matrix's topologies are replaced, its workloads, precisions and seeds kept."""

    load_topology(config_file)
    seen, out = set(), []
    for cell in cells:
        if cell.kind == "train":
            cell = dataclasses.replace(cell, topology=config_file)
        if cell.id not in seen:
            seen.add(cell.id)
            out.append(cell)
    return out


def _with_tracking(cells, tracking: dict[str, str]):
    """Every training cell logs to the tracker. Not part of what defines a cell's result: a --resume
    may add, change or drop --log-with (bench/harness/runner.py DEFINING)."""

    return [dataclasses.replace(cell, tracking=tracking) if cell.kind == "train" else cell for cell in cells]


def _with_checkpoint(cells, folder: Path):
    """Ask the first train cell of each workload to save its model under folder/<workload> (unless it fails)."""

    seen, out = set(), []
    for cell in cells:
        if cell.kind == "train" and cell.workload not in seen:
            seen.add(cell.workload)
            cell = dataclasses.replace(cell, save_checkpoint=str((folder / cell.workload).resolve()))
        out.append(cell)
    return out
