"""THE training loop: one workload, one Accelerate configuration, trained to a quality target.

Read top to bottom. The loop owns Accelerate, the clocks and memory; the workload owns data,
model, loss and metrics (workloads/base.py). The rules of the clock follow MLPerf Training:

- time-to-target runs from the first training step to the end of the first evaluation whose
  validation metric meets the target, evaluation time included; building data and model
  (init) is timed separately and not part of it;
- throughput is training samples per second over steady-state steps only (the first warm-up
  steps and all evaluation time excluded), counted globally over all processes;
- the global batch is the same for every world size: each process takes global / processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from bench.cells import Budget
from bench.errors import BenchError
from bench.harness import measure
from workloads.base import Splits, Workload


def lr_schedule(warmup_fraction: float, total_steps: int, linear_decay: bool) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over a fraction of the steps, then constant
    or linearly decayed to zero at `total_steps`."""
    warmup_steps = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if linear_decay:
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        return 1.0

    return factor


def train(accelerator: Accelerator, workload: Workload, splits: Splits, budget: Budget, seed: int) -> dict[str, Any]:
    """Train until the target is met or the budget runs out; return what was measured."""
    p = workload.params
    world = accelerator.num_processes

    # -- data ----------------------------------------------------------------------------------
    # Keep the global batch fixed so that every world size does the same optimisation; only the
    # work per process shrinks. A batch that does not divide is refused rather than rounded.
    if p.global_batch % world:
        raise BenchError(f"global_batch {p.global_batch} does not divide over {world} processes")
    per_process_batch = p.global_batch // world
    # A seeded generator makes the shuffle order a function of the seed alone; accelerate then
    # synchronises it across processes and hands each process its own shard of every batch.
    train_loader = DataLoader(
        splits.train,
        batch_size=per_process_batch,
        shuffle=True,
        drop_last=True,  # every step sees exactly global_batch samples
        collate_fn=workload.collate,
        generator=torch.Generator().manual_seed(seed),
    )
    eval_sets = {"train": splits.train, "val": splits.val, "test": splits.test, **splits.extra}
    eval_loaders = {
        name: DataLoader(ds, batch_size=p.eval_batch, shuffle=False, collate_fn=workload.collate)
        for name, ds in eval_sets.items()
    }

    # -- model, optimiser, schedule -----------------------------------------------------------------
    model = workload.build_model()
    model.train()  # from_pretrained models come back in eval mode
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    steps_per_epoch = len(train_loader) // world  # before prepare: batches of the full dataset
    if steps_per_epoch == 0:
        raise BenchError(f"the training split ({len(splits.train)} samples) is smaller than one global batch ({p.global_batch})")
    total_steps = budget.max_steps or steps_per_epoch * budget.max_epochs
    # The scheduler is stepped by hand, once per optimizer step, and NOT passed to prepare():
    # a prepared scheduler steps once per process per call (it assumes the schedule was written
    # for a per-process batch), which would end a fixed-global-batch schedule `world` times early.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(p.warmup_fraction, total_steps, p.linear_decay))

    # Count training FLOPs per sample once, on the plain model before any wrapper (DDP, FSDP) and
    # on a batch built by hand, so that the shuffle order is not disturbed.
    flops_per_sample = workload.flops_per_sample(
        model, workload.collate([splits.train[i] for i in range(min(per_process_batch, len(splits.train)))])
    )
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {name: accelerator.prepare(loader) for name, loader in eval_loaders.items()}

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(split: str) -> dict[str, np.ndarray]:
        """Per-sample outputs of a split, gathered from all processes in dataset order."""
        model.eval()
        collected: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad(), accelerator.autocast():
            for batch in eval_loaders[split]:
                outputs = workload.eval_outputs(model, batch)
                # gather_for_metrics drops the samples that were duplicated to pad the last batch.
                for key, value in accelerator.gather_for_metrics(outputs).items():
                    collected.setdefault(key, []).append(value.float().cpu())
        model.train()
        return {key: torch.cat(values).numpy() for key, values in collected.items()}

    def max_over_ranks(value: float) -> float:
        # Decisions that end training must be the same on every rank, or a rank left behind
        # waits forever in the next all-reduce. float64: the clock is reported to the microsecond.
        return float(accelerator.gather(torch.tensor([value], dtype=torch.float64, device=accelerator.device)).max())

    def sum_over_ranks(*values: float) -> list[float]:
        gathered = accelerator.gather(torch.tensor([values], dtype=torch.float64, device=accelerator.device))
        return gathered.reshape(-1, len(values)).sum(dim=0).tolist()

    # -- the loop ------------------------------------------------------------------------------------
    on_cuda = accelerator.device.type == "cuda"
    rss_window_reset = measure.reset_peak_rss()
    if on_cuda:  # a CPU cell on a GPU host must not create a CUDA context just to measure it
        measure.reset_cuda_peak()
    step_times = measure.StepTimes()
    curve: list[dict[str, Any]] = []
    status, reason = "not_converged", ""
    step = epoch = samples_seen = tokens_seen = 0
    loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
    clock = 0.0  # training clock: step time plus evaluation time, init excluded
    time_to_target = samples_to_target = None
    done = False

    # Dates (Unix seconds) for logs that place the run in time (bench/harness/mlperf_log.py, trackers): the
    # clock's zero, the end of each evaluation and the end of the loop. They measure nothing.
    run_start_unix = time.time()
    while not done and epoch < budget.max_epochs:
        epoch += 1
        tick = measure.now()
        for batch in train_loader:
            with accelerator.autocast():
                loss = workload.loss(model, batch)
            accelerator.backward(loss)
            if p.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), p.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if on_cuda:
                torch.cuda.synchronize()  # GPU work is asynchronous: close the step before reading the clock
            tock = measure.now()
            step += 1
            step_global = workload.samples_in(batch) * world
            samples_seen += step_global
            tokens = workload.tokens_in(batch)
            if tokens is not None:
                tokens_seen += tokens  # this rank's; summed over ranks after training
            step_times.add(tock - tick, step_global)
            clock += tock - tick
            # Summed as a tensor: .item() here would force a device sync on every step.
            loss_sum = loss_sum + loss.detach().float()
            loss_count += 1

            end_of_epoch = step % steps_per_epoch == 0
            out_of_steps = budget.max_steps is not None and step >= budget.max_steps
            eval_now = (p.eval_every_steps and step % p.eval_every_steps == 0) or (
                not p.eval_every_steps and end_of_epoch
            )
            if eval_now or out_of_steps:
                eval_start = measure.now()
                metrics = workload.val_metrics(evaluate("val"))
                clock += measure.now() - eval_start
                eval_end_unix = time.time()
                clock = max_over_ranks(clock)
                total_loss, total_count = sum_over_ranks(float(loss_sum), loss_count)
                mean_loss = total_loss / max(total_count, 1)  # NaN/inf on any rank shows here
                curve.append(
                    {"step": step, "epoch": epoch, "samples": samples_seen, "seconds": clock, "train_loss": mean_loss,
                     "time_unix": eval_end_unix, **metrics}
                )
                loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
                if not math.isfinite(mean_loss):
                    status, reason = "failed", f"diverged: non-finite training loss at step {step}"
                    done = True
                elif workload.target.met(metrics):
                    status = "converged"
                    time_to_target, samples_to_target = clock, samples_seen
                    done = True
                elif clock >= budget.max_seconds:
                    reason = f"time budget of {budget.max_seconds:g} s spent"
                    done = True
                if done:
                    break
                tick = measure.now()
            else:
                tick = tock
            if out_of_steps:
                reason = f"step budget of {budget.max_steps} spent"
                done = True
                break
    run_stop_unix = time.time()
    if status == "not_converged" and not reason:
        reason = f"epoch budget of {budget.max_epochs} spent"

    memory = {
        "peak_rss_mb": measure.peak_rss_mb(),
        "peak_rss_window": "training" if rss_window_reset else "process lifetime (VmHWM reset refused)",
        "cuda": measure.cuda_peak_mb() if on_cuda else None,
    }
    tokens_seen = int(sum_over_ranks(tokens_seen)[0])

    # -- final metrics on the trained model -----------------------------------------------------
    final_start = measure.now()
    final = workload.final_metrics(evaluate) if status != "failed" else {}
    final_eval_s = measure.now() - final_start  # outside every clock above; reported for the cell's cost

    steps = step_times.summary()
    # The steady step times themselves, evenly thinned to at most 500 and rounded to microseconds,
    # so that `bench compare` can test a speed change for significance even with a single seed.
    steady_secs = step_times.steady()[0]
    steady_sample = [round(t, 6) for t in steady_secs[:: max(1, math.ceil(len(steady_secs) / 500))]]
    throughput = {
        "samples_per_s": steps.get("samples_per_s"),
        # Tokens per sample vary with dynamic padding; scale steady samples/s by the run's mean.
        "tokens_per_s": (steps["samples_per_s"] * tokens_seen / samples_seen) if tokens_seen and steps.get("samples_per_s") else None,
    }
    return {
        "status": status,
        "reason": reason,
        "model": accelerator.unwrap_model(model),
        "metrics": final,
        "target": {"metric": workload.target.metric, "value": workload.target.value, "split": "val"},
        "timings": {
            "time_to_target_s": time_to_target,
            "train_seconds": clock,
            "epochs": epoch,
            "steps": step,
            "steps_per_epoch": steps_per_epoch,
            "step_time_median_s": steps.get("step_time_median_s"),
            "step_time_p90_s": steps.get("step_time_p90_s"),
            "step_times_s": steady_sample,
            "final_eval_s": final_eval_s,
        },
        "samples_to_target": samples_to_target,
        "samples_seen": samples_seen,
        "throughput": throughput,
        "flops_per_sample": flops_per_sample,
        "batch": {"global": p.global_batch, "per_process": per_process_batch},
        "memory": memory,
        "curve": curve,
        "wall_clock": {"run_start": run_start_unix, "run_stop": run_stop_unix},
    }
