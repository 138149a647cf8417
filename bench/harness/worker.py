"""What runs inside `accelerate launch`: one cell, from verification to its JSON result.

    accelerate launch --config_file bench/configs/accelerate/X.yaml --mixed_precision P \\
        -m bench.harness.worker --cell launch/<cell>.json --out cells/<cell>.json --mllog mllog/<cell>.log

1. Build the Accelerator from the launched environment and verify that the topology and the
   precision in effect are the ones the cell asked for (bench/harness/verify.py). If not: one result with
   status invalid/unsupported and no numbers.
2. Seed, build data (init time, reported apart); one forward and backward of a throwaway model
   tells whether the model really runs in that precision here (verify.probe_model_precision);
   seed again and train to target (bench/harness/train.py).
3. Gather each rank's peak memory (measure.gather_peak_memory); rank 0 writes the result atomically, then its MLPerf log
   (bench/harness/mlperf_log.py) and, with `bench run --log-with`, sends it to a tracker (bench/harness/trackers.py).
Baseline cells (classical models) run the same file without accelerate.
"""

from __future__ import annotations

from bench.harness.lifeline import die_with_parent

if __name__ == "__main__":
    die_with_parent()  # before anything heavy is imported: see bench/harness/lifeline.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.errors import BenchError  # noqa: E402
from bench.harness.matrix import Cell  # noqa: E402
from bench.harness.measure import environment, gather_peak_memory  # noqa: E402
from bench.results import make_result, write_json_atomic  # noqa: E402


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


def run_training(cell: Cell, out: Path, mllog: Path | None = None) -> None:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from bench.data.datasets import check_workload_data
    from bench.harness import trackers
    from bench.harness.mlperf_log import write_mllog
    from bench.harness.topology import load_topology
    from bench.harness.train import train
    from bench.harness.verify import cpu_affinity, probe_model_precision, verify
    from workloads import make_workload

    # Only the process the launcher calls rank 0 writes. Ask the environment, not accelerate:
    # in a broken launch every process believes it is the main one.
    launcher_rank0 = os.environ.get("RANK", "0") == "0"

    def refuse(status: str, reason: str, **fields: Any) -> None:
        """A result without numbers: the cell is not what it claims, or could not start."""
        if launcher_rank0:
            write_json_atomic(out, make_result(cell.to_dict(), status, reason, **fields, environment=environment()))

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

    try:
        init_start, init_start_unix = time.perf_counter(), time.time()
        # The data as `bench data verify` checks it, on every rank (each refuses alike, none waits on another).
        data_files = check_workload_data(cell.workload)
        set_seed(cell.seed)  # python, numpy and torch on every rank, so every rank builds the same model
        workload = make_workload(cell.workload, cell.variant, cell.params)
        splits = workload.load(cell.seed)
        init = {"init_s": time.perf_counter() - init_start, "init_start": init_start_unix, "init_stop": time.time()}
        precision_verdict = probe_model_precision(accelerator, workload, splits, cell.precision)
        verdict.observed.update(precision_verdict.observed)
        if precision_verdict.status:
            refuse(precision_verdict.status, precision_verdict.reason, observed=verdict.observed)
            return
        sharded = sharding_in_effect(accelerator, workload, splits, topology.sharding, knobs)
        if sharded.status:  # no numbers from a cell that is not what it claims
            refuse(sharded.status, sharded.reason, observed=verdict.observed, knobs=knobs)
            return
        set_seed(cell.seed)  # the probe drew random numbers: start training from the seed again
        outcome = train(accelerator, workload, splits, cell.budget, cell.seed, checkpointing=cell.checkpointing == "on")
        knob_verdict = knobs_in_effect(cell, outcome, knobs)
        if knob_verdict.status:
            refuse(knob_verdict.status, knob_verdict.reason, observed=verdict.observed, knobs=knobs)
            return
    except BenchError as exc:
        # Data or configuration problems are the same on every rank; report them as the reason.
        refuse("failed", str(exc))
        raise

    memory = gather_peak_memory(accelerator, outcome["memory"])  # a collective: every rank takes part
    full_state = gather_for_checkpoint(accelerator, cell, workload, outcome)  # a collective too
    if accelerator.is_main_process:
        result = training_result(cell, workload, topology.describe(), verdict.observed, outcome, init, memory,
                                 data_record(splits.info, data_files), knobs)
        write_json_atomic(out, result)  # the result first: a failed save must not lose it
        if mllog:
            write_mllog(mllog, result)
        if full_state is not None:
            workload.save_checkpoint(outcome["model"], Path(cell.save_checkpoint), result, state_dict=full_state)
            result["checkpoint"] = cell.save_checkpoint
            write_json_atomic(out, result)
        if cell.tracking:
            trackers.log_result(accelerator, cell.tracking, result)
    accelerator.wait_for_everyone()
    accelerator.end_training()


def gather_for_checkpoint(accelerator: Any, cell: Cell, workload: Any, outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The model's full state dict when the cell saves a checkpoint (None when it does not).

    A model that trained (to target or to budget) is saved; its status goes in the metadata. Every
    rank gathers, through accelerate: under FSDP the parameters are sharded, and a main process
    gathering alone would wait forever for the others."""
    save = bool(cell.save_checkpoint) and hasattr(workload, "save_checkpoint") and outcome["status"] != "failed"
    return accelerator.get_state_dict(outcome["model"]) if save else None


def knob_kwargs(cell: Cell) -> dict[str, Any]:
    """The Accelerator's own settings for the cell's knobs: torch.compile through accelerate's
    dynamo plugin (dynamo_backend), accumulation through gradient_accumulation_steps."""
    kwargs: dict[str, Any] = {}
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


def knobs_in_effect(cell: Cell, outcome: dict[str, Any], knobs: dict[str, Any]) -> Any:
    """Each knob the cell asked for, checked in what training did (bench/harness/verify.py); fills
    `knobs` with what was seen. The first knob not in effect makes the verdict."""
    from bench.harness.verify import (
        Verdict,
        dynamo_stats,
        verify_checkpointing,
        verify_compile,
        verify_grad_accum,
    )

    seen = outcome.get("knobs", {})
    verdicts = []
    if cell.compile != "none":
        verdict, knobs["compile"] = verify_compile(cell.compile, seen.get("compile_window", {}), dynamo_stats())
        knobs["compile"]["cache"] = knobs.pop("cache")
        verdicts.append(verdict)
    if cell.grad_accum > 1:
        knobs["grad_accum"] = seen["grad_accum"]
        verdicts.append(verify_grad_accum(knobs["grad_accum"]))
    if cell.checkpointing == "on":
        knobs["checkpointing"] = seen.get("checkpointing", {"recompute_forwards_per_step": 0})
        verdicts.append(verify_checkpointing(knobs["checkpointing"]))
    return next((v for v in verdicts if v.status), Verdict(None, "", {}))


def training_result(cell: Cell, workload: Any, topology: dict[str, Any], observed: dict[str, Any],
                    outcome: dict[str, Any], init: dict[str, float], memory: dict[str, Any],
                    data: dict[str, Any], knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result of a training cell: the cell, what ran (workload, topology, observed), and what
    `train` measured, with init time, every rank's memory and the knobs seen in effect added."""
    knobs = knobs or {}
    if "checkpointing" in knobs:  # what recomputation saves is the point of it: its memory beside its count
        knobs["checkpointing"]["peak_rss_mb_max"] = memory.get("peak_rss_mb_max")
    return make_result(
        cell.to_dict(),
        outcome["status"],
        outcome["reason"],
        workload=workload.describe(),
        topology=topology,
        observed=observed,
        metrics=outcome["metrics"],
        target=outcome["target"],
        timings={"init_s": init["init_s"], **outcome["timings"]},
        samples_to_target=outcome["samples_to_target"],
        samples_seen=outcome["samples_seen"],
        throughput=outcome["throughput"],
        flops_per_sample=outcome["flops_per_sample"],
        batch=outcome["batch"],
        memory=memory,
        curve=outcome["curve"],
        # Dates (Unix seconds) of the cell's phases, for the MLPerf log; the timings are durations.
        wall_clock={"init_start": init["init_start"], "init_stop": init["init_stop"], **outcome["wall_clock"]},
        data=data,
        knobs=knobs,
        environment=environment(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.harness.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--cell", required=True, type=Path, help="cell JSON written by the runner")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--mllog", type=Path, help="where a training cell writes its MLPerf log (bench/harness/mlperf_log.py)")
    args = parser.parse_args(argv)
    _quiet_libraries()
    cell = Cell.from_dict(json.loads(args.cell.read_text()))
    try:
        if cell.kind == "baseline":
            run_baselines(cell, args.out)
        else:
            run_training(cell, args.out, args.mllog)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
