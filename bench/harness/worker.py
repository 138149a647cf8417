"""What runs inside `accelerate launch`: the seeds of one cell, from verification to a JSON result each.

    accelerate launch --config_file bench/configs/accelerate/X.yaml --mixed_precision P \\
        -m bench.harness.worker --cell launch/<cell>__s0.json --out cells/<cell>__s0.json --mllog mllog/<cell>__s0.log \\
                                [--cell launch/<cell>__s1.json --out cells/<cell>__s1.json --mllog mllog/<cell>__s1.log ...]

One (--cell, --out, --mllog) triplet per seed. Several triplets are a shared launch: cells that
differ in seed only (the runner groups them, bench/harness/executors/base.py launch_groups), run one
after another in one process so that imports and the Accelerator are paid once.

1. Build the Accelerator from the launched environment and verify that the topology and the
   precision in effect are the ones the cell asked for (bench/harness/verify.py). If not: one result
   per seed with status invalid/unsupported and no numbers.
2. For each seed, in order (`run_seed`): seed, build data (init time, reported apart; the data
   files are checked once per launch); one forward and backward of a throwaway model tells whether
   the model really runs in that precision here (verify.probe_model_precision); seed again and
   train to target (bench/harness/train.py).
3. Gather each rank's peak memory (measure.gather_peak_memory); rank 0 writes the seed's result
   atomically, then its MLPerf log (bench/harness/mlperf_log.py) and, with `bench run --log-with`,
   sends it to a tracker (bench/harness/trackers.py). The seed's model and optimizer are then
   released (accelerator.free_memory) before the next seed builds its own. A seed's result records
   `launch: {seeds, own_s}` (how many seeds the launch served, this seed's own seconds); the runner
   adds the launch's wall time. A seed that fails (an exception, a killed rank) ends the launch:
   the seeds before it keep their results, the runner fails the rest.
Baseline cells (classical models) run the same file without accelerate, one seed per launch.
"""

from __future__ import annotations

from bench.harness.lifeline import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # before anything heavy is imported: see bench/harness/lifeline.py

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from bench.errors import BenchError, first_line  # noqa: E402
from bench.harness.matrix import Cell  # noqa: E402
from bench.harness.measure import environment, gather_peak_memory  # noqa: E402
from bench.results import make_result, write_json_atomic  # noqa: E402

if TYPE_CHECKING:  # torch is imported inside the launched process only, after the lifeline
    from bench.harness.train import TrainOutcome
    from workloads.base import Splits, TrainParams, Workload


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_baselines(cell: Cell, out: Path) -> None:
    from bench.data.datasets import check_workload_data
    from workloads import make_workload

    try:
        start = time.perf_counter()
        data_files = check_workload_data(cell.workload)  # as `bench data verify` checks, before any fit
        workload = make_workload(cell.workload, None, cell.params)
        splits = workload.load(cell.seed)
        init_s = time.perf_counter() - start
        rows = workload.baselines(splits, cell.seed)
    except BenchError as exc:
        write_json_atomic(out, make_result(cell.to_dict(), "failed", str(exc), environment=environment(cpu_only=True)))
        raise
    # Classical models compute on the CPU: the record is that of a CPU cell, GPUs or not.
    result = make_result(
        cell.to_dict(),
        "baseline",
        baselines=rows,
        metrics={row["name"]: row["metrics"] for row in rows},
        timings={"init_s": init_s},
        data=data_record(splits.info, data_files),
        environment=environment(cpu_only=True),
    )
    write_json_atomic(out, result)


def data_record(info: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """The result's `data`: what the workload's preprocessing decided, what each cleaning step changed
    (`cleaning`, a list of {step, rows_changed, ...}) and the content SHA-256 of every file read (`sha256`)."""
    return {**info, "cleaning": info.get("cleaning", []), "sha256": files}


@dataclass
class SeedRun:
    """One seed of the launched configuration: its cell, where its result and MLPerf log go."""

    cell: Cell
    out: Path
    mllog: Path | None = None


@dataclass
class InitTimes:
    """Building one seed's data and model: its duration, and its dates for the MLPerf log."""

    seconds: float
    start_unix: float
    stop_unix: float


@dataclass
class TrainedSeed:
    """A seed that passed the probes and trained: what its result is built from."""

    workload: Workload
    splits: Splits
    outcome: TrainOutcome
    init: InitTimes
    data_files: dict[str, str]
    """The SHA-256 of every data file read, as checked once per launch."""


def run_training(runs: list[SeedRun]) -> None:
    """The seeds of one configuration (cells that differ in seed only), one after another in this
    process: the Accelerator is built and the topology and precision verified once, then each seed
    runs as a cell alone would (`run_seed`) and its model and optimizer are released before the next."""
    from accelerate import Accelerator

    from bench.harness import trackers
    from bench.harness.topology import load_topology
    from bench.harness.verify import cpu_affinity, verify

    cell = runs[0].cell  # the seeds' cells differ in seed (and save_checkpoint folder) only

    def refuse(status: str, reason: str, **fields: Any) -> None:
        """The same result without numbers for every seed: the launch is not what it claims, or could not start."""
        for run in runs:
            _refuse(run, len(runs), None, status, reason, **fields)

    topology = load_topology(cell.topology)
    if cell.tracking:
        try:
            trackers.require_tracker(cell.tracking["log_with"])
        except BenchError as exc:
            refuse("failed", str(exc))
            raise
    knobs = {"cache": cold_inductor_cache()} if cell.compile != "none" else {}
    accelerator = Accelerator(**trackers.accelerator_kwargs(cell.tracking), **knob_kwargs(cell))
    verdict = verify(accelerator, topology.expected(cell.precision))
    if verdict.status:
        refuse(verdict.status, verdict.reason, observed=verdict.observed)
        return
    knobs["cpu_affinity"] = cpu_affinity(accelerator, topology.enable_cpu_affinity)
    if knobs["cpu_affinity"]["no_op"]:  # asked for, and every rank may still run on every core
        refuse("unsupported", "enable_cpu_affinity asked for but not applied: every rank may still run on every core "
               f"({knobs['cpu_affinity']['per_rank']}); accelerate pins ranks only on CUDA hosts",
               observed=verdict.observed, knobs=knobs)
        return
    checked: dict[str, dict[str, str]] = {}  # the data check, once per launch (its files do not depend on the seed)
    for run in runs:
        run_seed(accelerator, run, len(runs), topology, copy.deepcopy(verdict.observed), copy.deepcopy(knobs), checked)
        # What the seed prepared goes before the next one builds its own: accelerate's references
        # (free_memory also resets its step count), then the cycles Python has not collected yet.
        accelerator.free_memory()
        gc.collect()
        if accelerator.device.type == "cuda":  # free_memory emptied the cache before the model was freed:
            import torch  # empty it again, or the next seed's reserved peak starts at this one's

            torch.cuda.empty_cache()
    accelerator.wait_for_everyone()
    accelerator.end_training()


def _refuse(run: SeedRun, seeds: int, start: float | None, status: str, reason: str, **fields: Any) -> None:
    """A seed's result without numbers, written by the process the launcher calls rank 0. Ask the
    environment, not accelerate: in a broken launch every process believes it is the main one."""
    if os.environ.get("RANK", "0") == "0":
        write_json_atomic(run.out, make_result(run.cell.to_dict(), status, reason, **fields,
                                               launch=_own_share(seeds, start), environment=environment()))


def _own_share(seeds: int, start: float | None) -> dict[str, Any]:
    """What a seed records of its launch: how many seeds it served and this seed's own seconds in
    it (from the seed's start to its result; None when refused before any seed started). The
    runner adds the launch's wall time and splits it (bench/harness/executors/base.py, collect_launch)."""
    return {"seeds": seeds, "own_s": None if start is None else round(time.perf_counter() - start, 3)}


def run_seed(accelerator: Any, run: SeedRun, seeds: int, topology: Any, observed: dict[str, Any],
             knobs: dict[str, Any], checked: dict[str, dict[str, str]]) -> None:
    """One seed, as a cell alone: data, precision probe, (sharding probe), training to target,
    memory, then its result, MLPerf log, checkpoint and tracker. Nothing of an earlier seed of the
    process reaches it: every random generator is seeded again and the model built anew."""
    from bench.harness.mlperf_log import write_mllog

    cell, start = run.cell, time.perf_counter()
    trained = _train_seed(accelerator, run, seeds, start, topology, observed, knobs, checked)
    if trained is None:
        return
    workload, outcome = trained.workload, trained.outcome
    memory = gather_peak_memory(accelerator, outcome.memory)  # a collective: every rank takes part
    result = None
    if accelerator.is_main_process:
        result = training_result(cell, workload, topology.describe(), observed, outcome, trained.init, memory,
                                 data_record(trained.splits.info, trained.data_files), knobs)
        result["launch"] = _own_share(seeds, start)
        write_json_atomic(run.out, result)  # the result first: a failed gather or save must not lose it
        if run.mllog:
            write_mllog(run.mllog, result)
    try:
        full_state = gather_for_checkpoint(accelerator, cell, workload, outcome)  # a collective: every rank
    except Exception as exc:
        # The trained cell stands; what failed is its checkpoint, recorded. Then the launch ends: the
        # other ranks may still wait in the collective, and a later seed would start out of step.
        if result is not None:
            result["checkpoint_error"] = f"gathering the state dict failed: {type(exc).__name__}: {first_line(exc)}"
            write_json_atomic(run.out, result)
        raise
    if result is not None:
        if full_state is not None:
            workload.save_checkpoint(outcome.model, Path(cell.save_checkpoint), result, state_dict=full_state)
            result["checkpoint"] = cell.save_checkpoint
            write_json_atomic(run.out, result)
        if cell.tracking:
            from bench.harness import trackers

            trackers.log_result(accelerator, cell.tracking, result)


def _train_seed(accelerator: Any, run: SeedRun, seeds: int, start: float, topology: Any, observed: dict[str, Any],
                knobs: dict[str, Any], checked: dict[str, dict[str, str]]) -> TrainedSeed | None:
    """Data, the probes and training for one seed, or None when the seed was refused (its result written). A BenchError writes a failed result and
    ends the launch: data or configuration problems are the same on every rank and every seed."""
    from accelerate.utils import set_seed

    from bench.data.datasets import check_workload_data
    from bench.harness.train import train, weak_scaled
    from bench.harness.verify import probe_model_precision
    from workloads import make_workload

    cell = run.cell

    def refuse(status: str, reason: str, **fields: Any) -> None:
        _refuse(run, seeds, start, status, reason, **fields)

    try:
        init_start, init_start_unix = time.perf_counter(), time.time()
        # The data as `bench data verify` checks it, on every rank (each refuses alike, none waits on
        # another); once per launch: a later seed reads the same files.
        if cell.workload not in checked:
            checked[cell.workload] = check_workload_data(cell.workload)
        set_seed(cell.seed)  # python, numpy and torch on every rank, so every rank builds the same model
        workload = make_workload(cell.workload, cell.variant, cell.params)
        asked_params = workload.params  # before scaling: what the knob check holds the batch to
        if cell.scaling == "weak":  # each process keeps its batch: the global batch grows with the processes
            workload.params = weak_scaled(workload.params, accelerator.num_processes)
        splits = workload.load(cell.seed)
        init = InitTimes(time.perf_counter() - init_start, init_start_unix, time.time())
        precision_verdict = probe_model_precision(accelerator, workload, splits, cell.precision)
        observed.update(precision_verdict.observed)
        if precision_verdict.status:
            refuse(precision_verdict.status, precision_verdict.reason, observed=observed)
            return None
        sharded = sharding_in_effect(accelerator, workload, splits, topology.sharding, knobs)
        if sharded.status:  # no numbers from a cell that is not what it claims
            refuse(sharded.status, sharded.reason, observed=observed, knobs=knobs)
            return None
        set_seed(cell.seed)  # the probe drew random numbers: start training from the seed again
        with cold_compile(cell, knobs):  # each compile seed compiles from cold, as in a process of its own
            outcome = train(accelerator, workload, splits, cell.budget, cell.seed,
                            checkpointing=cell.checkpointing == "on", grad_accum=cell.grad_accum,
                            compiled=cell.compile != "none")
        knob_verdict = knobs_in_effect(cell, outcome, knobs, observed.get("tf32", {}), accelerator.device,
                                       asked_params, accelerator.num_processes)
        knobs["scaling"]["lr"] = workload.params.lr  # the learning rate it trained with (weak scaling raises it)
        if knob_verdict.status:
            refuse(knob_verdict.status, knob_verdict.reason, observed=observed, knobs=knobs)
            return None
    except BenchError as exc:
        # Data or configuration problems are the same on every rank; report them as the reason.
        refuse("failed", str(exc))
        raise
    return TrainedSeed(workload, splits, outcome, init, checked[cell.workload])


def gather_for_checkpoint(accelerator: Any, cell: Cell, workload: Any, outcome: TrainOutcome) -> dict[str, Any] | None:
    """The model's full state dict when the cell saves a checkpoint (None when it does not).

    A model that trained (to target or to budget) is saved; its status goes in the metadata. Every
    rank gathers, through accelerate: under FSDP the parameters are sharded, and a main process
    gathering alone would wait forever for the others."""
    save = bool(cell.save_checkpoint) and hasattr(workload, "save_checkpoint") and outcome.status != "failed"
    return accelerator.get_state_dict(outcome.model) if save else None


def knob_kwargs(cell: Cell) -> dict[str, Any]:
    """The Accelerator's own settings for the cell's knobs: torch.compile through accelerate's
    dynamo plugin (dynamo_backend), accumulation through gradient_accumulation_steps; and the
    loader's non-blocking copies to the device."""
    from accelerate import DataLoaderConfiguration

    # Batches go to a GPU without blocking (train.py pins their memory there), so the copy overlaps
    # the step; on a CPU the copy is a no-op either way. Recorded in every result's `loader`.
    kwargs: dict[str, Any] = {"dataloader_config": DataLoaderConfiguration(non_blocking=True)}
    if cell.compile != "none":
        kwargs["dynamo_backend"] = cell.compile
    if cell.grad_accum > 1:
        kwargs["gradient_accumulation_steps"] = cell.grad_accum
    return kwargs


def cold_inductor_cache() -> str:
    """A fresh inductor cache for this process, so that every compile cell pays a cold compile and
    compile cells compare (a warm cache from an earlier cell would hide most of it). Set before
    anything compiles; inductor reads it at its first compile. BENCH_INDUCTOR_CACHE=warm keeps the
    user's cache instead."""
    if os.environ.get("BENCH_INDUCTOR_CACHE") == "warm":
        return "warm"
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    return "cold"


@contextlib.contextmanager
def cold_compile(cell: Cell, knobs: dict[str, Any]) -> Iterator[None]:
    """For a compile cell, one seed's training compiled from cold, as in a fresh process (compile
    cells launch per seed, executors/base.py shares_launch; this keeps what ran before training out):
    dynamo's in-process caches and counters emptied (a probe's throwaway compile, or an earlier
    seed's, counts for nothing), and, unless BENCH_INDUCTOR_CACHE=warm, inductor's in-memory kernel
    caches cleared and a fresh cache folder used (torch._inductor.utils.fresh_cache). Records under
    knobs["cold_cache_files"] how many files the seed's compile wrote there: a cold compile writes
    its kernels, a compile served from a cache writes none."""
    if cell.compile == "none":
        yield
        return
    import torch
    from torch._dynamo.utils import counters

    torch.compiler.reset()
    counters.clear()
    if os.environ.get("BENCH_INDUCTOR_CACHE") == "warm":
        yield
        return
    from torch._inductor.utils import fresh_cache

    with fresh_cache():
        try:
            yield
        finally:
            folder = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
            knobs["cold_cache_files"] = sum(len(files) for _, _, files in os.walk(folder))


def sharding_in_effect(accelerator: Any, workload: Any, splits: Any, sharding: dict[str, Any] | None,
                       knobs: dict[str, Any]) -> Any:
    """For a sharding topology, what each rank holds of a prepared copy of the model (a collective);
    recorded under knobs["sharding"]. A data-parallel topology passes."""
    from bench.harness.verify import Verdict, probe_sharding

    if not sharding:
        return Verdict(None, "", {})
    verdict = probe_sharding(accelerator, workload, splits, sharding)
    knobs["sharding"] = {**sharding, **verdict.observed["sharding"]}
    return verdict


def knobs_in_effect(cell: Cell, outcome: TrainOutcome, knobs: dict[str, Any], tf32_before: dict[str, Any],
                    device: Any, asked_params: TrainParams, processes: int) -> Any:
    """Each knob axis, at its default too, checked in what training did (bench/harness/verify.py);
    fills `knobs` with what was seen. The first knob not in effect makes the verdict. For fp32 and
    tf32 also the TF32 switches as set before training (`tf32_before`), re-read after it, and one
    matmul's arithmetic on `device`. Scaling against the cell's own params before weak scaling
    (`asked_params`) on `processes` ranks."""
    from bench.harness.verify import (
        Verdict,
        dynamo_stats,
        tf32_effect,
        tf32_in_effect,
        verify_checkpointing,
        verify_compile,
        verify_fp32_arithmetic_held,
        verify_grad_accum,
        verify_no_checkpointing,
        verify_no_compile,
        verify_scaling,
    )

    seen = outcome.knobs
    verdicts = []
    if cell.compile != "none":
        verdict, knobs["compile"] = verify_compile(cell.compile, seen.get("compile_window", {}), dynamo_stats(),
                                                    seen.get("compile_step"))
        knobs["compile"]["cache"] = knobs.pop("cache")
        if "cold_cache_files" in knobs:
            knobs["compile"]["cold_cache_files"] = knobs.pop("cold_cache_files")
        verdicts.append(verdict)
    else:  # compile=none: a user config's dynamo_config would compile it silently
        verdicts.append(verify_no_compile(seen.get("compile_window", {}).get("prepared_model", ""), dynamo_stats()))
    knobs["grad_accum"] = {**seen["grad_accum"], "observed_global_batch": outcome.batch.get("observed_global"),
                           "global_batch": outcome.batch["global"]}
    verdicts.append(verify_grad_accum(knobs["grad_accum"]))
    verdict = verify_scaling(cell.scaling, processes, asked_params.global_batch, asked_params.device_batch,
                             outcome.batch.get("observed_global"))
    knobs["scaling"] = verdict.observed
    verdicts.append(verdict)
    if cell.checkpointing == "on":
        knobs["checkpointing"] = seen.get("checkpointing", {"recompute_forwards_per_step": 0})
        verdicts.append(verify_checkpointing(knobs["checkpointing"]))
    elif "checkpointing" in seen:  # off, with blocks to watch (a transformer): none may recompute
        knobs["checkpointing"] = seen["checkpointing"]
        verdicts.append(verify_no_checkpointing(knobs["checkpointing"]))
    if cell.precision in ("fp32", "tf32"):  # re-read after training: a library may have switched TF32 mid-run
        knobs["tf32"] = {"after_training": tf32_in_effect(), "effect": tf32_effect(device)}
        verdicts.append(verify_fp32_arithmetic_held(cell.precision, tf32_before, knobs["tf32"]["after_training"],
                                                    knobs["tf32"]["effect"]))
    return next((v for v in verdicts if v.status), Verdict(None, "", {}))


def training_result(cell: Cell, workload: Any, topology: dict[str, Any], observed: dict[str, Any],
                    outcome: TrainOutcome, init: InitTimes, memory: dict[str, Any],
                    data: dict[str, Any], knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result of a training cell: the cell, what ran (workload, topology, observed), and what
    `train` measured, with init time, every rank's memory and the knobs seen in effect added."""
    knobs = knobs or {}
    if "checkpointing" in knobs:  # what recomputation saves is the point of it: its memory beside its count
        knobs["checkpointing"]["peak_rss_mb_max"] = memory.get("peak_rss_mb_max")
    return make_result(
        cell.to_dict(),
        outcome.status,
        outcome.reason,
        workload=workload.describe(),
        topology=topology,
        observed=observed,
        metrics=outcome.metrics,
        target=outcome.target,
        timings={"init_s": init.seconds, **outcome.timings},
        samples_to_target=outcome.samples_to_target,
        samples_seen=outcome.samples_seen,
        throughput=outcome.throughput,
        flops_per_sample=outcome.flops_per_sample,
        **({"hardware_flops_per_sample": outcome.hardware_flops_per_sample}
           if outcome.hardware_flops_per_sample else {}),
        batch=outcome.batch,
        loader=outcome.loader,
        memory=memory,
        curve=outcome.curve,
        # Dates (Unix seconds) of the cell's phases, for the MLPerf log; the timings are durations.
        wall_clock={"init_start": init.start_unix, "init_stop": init.stop_unix, **outcome.wall_clock},
        data=data,
        knobs=knobs,
        environment=environment(),
    )


def parse_runs(argv: list[str] | None = None) -> list[SeedRun]:
    """The command line's seeds: one (--cell, --out[, --mllog]) triplet per seed, in order."""
    parser = argparse.ArgumentParser(prog="bench.harness.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--cell", required=True, type=Path, action="append",
                        help="cell JSON written by the runner (repeat, with --out and --mllog, for each seed of a shared launch)")
    parser.add_argument("--out", required=True, type=Path, action="append", help="where to write that cell's result JSON")
    parser.add_argument("--mllog", type=Path, action="append",
                        help="where a training cell writes its MLPerf log (bench/harness/mlperf_log.py)")
    args = parser.parse_args(argv)
    mllogs = args.mllog or [None] * len(args.cell)
    if not len(args.cell) == len(args.out) == len(mllogs):
        parser.error(f"every --cell needs its --out (and its --mllog, if any is given): got {len(args.cell)} "
                     f"--cell, {len(args.out)} --out, {len(args.mllog or [])} --mllog")
    runs = [SeedRun(Cell.from_dict(json.loads(c.read_text())), o, m) for c, o, m in zip(args.cell, args.out, mllogs, strict=True)]
    first = runs[0].cell
    for run in runs[1:]:
        if run.cell.key.without_seed() != first.key.without_seed() or run.cell.kind == "baseline":
            parser.error(f"a shared launch runs the seeds of one training configuration; {run.cell.id} is not one of {first.id}'s")
    return runs


def main(argv: list[str] | None = None) -> int:
    runs = parse_runs(argv)
    _quiet_libraries()
    try:
        if runs[0].cell.kind == "baseline":
            run_baselines(runs[0].cell, runs[0].out)
        else:
            run_training(runs)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
