"""THE training loop: one workload, one Accelerate configuration, trained to a quality target.

Read `train` first: one screen, the loop. The pieces it calls follow it in the order they run:
`setup` (data, model, optimiser, schedule), `train_step` (one optimizer step, which
bench/harness/parity.py times too), `should_evaluate` / `should_stop` (the decisions),
`evaluate_and_decide` (an evaluation on the clock) and `summary` (the result). The loop owns
Accelerate, the clocks and memory; the workload owns data, model, loss and metrics
(workloads/base.py). The rules of the clock follow MLPerf Training:

- time-to-target runs from the first training step to the end of the first evaluation whose
  validation metric meets the target, evaluation time included; building data and model
  (init) is timed separately and not part of it;
- throughput is training samples per second over steady-state steps only (the first warm-up
  steps and all evaluation time excluded), counted globally over all processes;
- the global batch is the same for every world size: each process takes global / processes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from bench.cells import Budget
from bench.errors import BenchError
from bench.harness import measure
from bench.harness.compile_probe import CompileProbe
from bench.harness.launch import PROGRESS_PREFIX
from workloads.base import Splits, Target, TrainParams, Workload


def train(accelerator: Accelerator, workload: Workload, splits: Splits, budget: Budget, seed: int,
          checkpointing: bool = False, grad_accum: int = 1, compiled: bool = False) -> TrainOutcome:
    """Train until the target is met or the budget runs out; return what was measured.

    A step is one optimizer step: with gradient accumulation (the Accelerator's
    gradient_accumulation_steps = N) it is N micro-batches under `accelerator.accumulate`, timed as one.
    `grad_accum` is what the cell asked for; the knob check compares it with what ran."""
    run = setup(accelerator, workload, splits, budget, seed, checkpointing)
    run.knobs.asked_micro = grad_accum
    run.compile_probe.active = compiled  # profiles one early step: did it run compiled code?
    p, world = workload.params, accelerator.num_processes
    on_cuda = accelerator.device.type == "cuda"
    rss_window_reset = measure.reset_peak_rss()
    if on_cuda:  # a CPU cell on a GPU host must not create a CUDA context just to measure it
        measure.reset_cuda_peak()
    progress = Progress(loss_sum=torch.zeros((), device=accelerator.device), seed=seed)
    step_times = measure.StepTimes()
    # Step ends are stamped as the host reaches them (CUDA events on a GPU) and read before each
    # evaluation: the host never waits for the device inside the loop (measure.StepClock).
    clock = measure.StepClock.for_device(accelerator.device)
    progress.run_start_unix = time.time()  # dates place the run in time (MLPerf log, trackers); they measure nothing
    while not progress.done and progress.epoch < budget.max_epochs:
        progress.epoch += 1
        clock.restart()
        for batch in run.train_loader:
            with run.compile_probe.around(run.model, progress.step + 1):
                loss = micro_step(accelerator, workload, run, batch, p.grad_clip)
            clock.exclude(run.compile_probe.take_overhead_s())  # the profiler's start and stop are no part of the step
            if not run.knobs.optimizer_stepped(accelerator):
                continue  # a micro-step of an accumulation: the optimizer step is not over yet
            clock.lap(progress.count_step(workload, batch, loss, world * run.knobs.micro_per_step, run.knobs.take_tokens()))
            if should_evaluate(progress.step, run.steps_per_epoch, p.eval_every_steps, budget.max_steps):
                progress.add_times(clock.laps(), step_times)  # the steps' times, before the clock is judged
                evaluate_and_decide(accelerator, workload, run, progress, budget)
                if progress.done:
                    break
                clock.restart()  # the evaluation is on the training clock already
            if budget.max_steps is not None and progress.step >= budget.max_steps:
                progress.stop("not_converged", f"step budget of {budget.max_steps} spent")
                break
            if compiled and progress.step == 1 and not compiled_a_graph():
                # dynamo ran the first step eagerly (an RNN): no later step compiles; the knob check
                # refuses the cell after training, so training on would only spend the budget
                progress.stop("not_converged", "stopped after one step: compile asked for, dynamo compiled no graph")
                break
    progress.add_times(clock.laps(), step_times)  # steps after the last evaluation (an epoch budget's end)
    progress.run_stop_unix = time.time()
    if not progress.done:
        progress.stop("not_converged", f"epoch budget of {budget.max_epochs} spent")
    memory = measure.rank_peak_memory(rss_window_reset, on_cuda)  # before the final evaluation adds to it
    progress.tokens_seen = int(sum_over_ranks(accelerator, float(progress.tokens_seen))[0])
    final_start = measure.now()
    final = workload.final_metrics(run.evaluate) if progress.status != "failed" else {}
    final_eval_s = measure.now() - final_start  # outside every clock above; reported for the cell's cost
    return summary(accelerator, workload, run, progress, step_times, memory, final, final_eval_s)


def compiled_a_graph() -> bool:
    """Whether dynamo has compiled any graph in this process (the count verify.dynamo_stats reports)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"].get("unique_graphs", 0)) > 0


def micro_step(accelerator: Accelerator, workload: Workload, run: Run, batch: Any, grad_clip: float | None) -> torch.Tensor:
    """One micro-batch: the plain train_step without accumulation (every cell before the knob axes
    ran exactly this), else inside `accelerator.accumulate`, which skips the gradient all-reduce
    (DDP no_sync) and the optimizer step on every micro-step but the last of each group."""
    if run.knobs.micro_per_step == 1:
        loss = train_step(accelerator, workload, run.model, run.optimizer, run.scheduler, batch, grad_clip)
    else:
        with accelerator.accumulate(run.model):
            loss = train_step(accelerator, workload, run.model, run.optimizer, run.scheduler, batch, grad_clip)
    run.knobs.after_micro_step(accelerator, loss, workload.tokens_in(batch), workload.samples_in(batch))
    return run.knobs.step_loss(loss)


# ---------------------------------------------------------------------------------------------
# Before the loop: data, model, optimiser, schedule
# ---------------------------------------------------------------------------------------------


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


@dataclass
class Run:
    """What `setup` builds: the prepared model, optimiser and loaders, and the numbers of the plan."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    evaluate: Callable[[str], dict[str, np.ndarray]]
    """Per-sample outputs of a split ("train", "val", "test" or an extra one), from all processes."""
    steps_per_epoch: int
    per_process_batch: int
    flops_per_sample: float | None
    """The model's training FLOPs per sample, without recomputation (what MFU divides)."""
    hardware_flops_per_sample: float | None = None
    """With activation checkpointing: the FLOPs the hardware ran, recomputed forwards included (HFU)."""
    knobs: measure.KnobProbe = field(default_factory=measure.KnobProbe)
    """What the knobs did while training (accumulation, recomputation), for the verification."""
    compile_probe: CompileProbe = field(default_factory=lambda: CompileProbe(active=False))
    """For a compile cell, what one early training step ran: compiled frames, the forward's share in them."""


def setup(accelerator: Accelerator, workload: Workload, splits: Splits, budget: Budget, seed: int,
          checkpointing: bool = False) -> Run:
    """Loaders, model, AdamW and the schedule, prepared by Accelerate; FLOPs counted before that."""
    p = workload.params
    world = accelerator.num_processes
    micro = accelerator.gradient_accumulation_steps
    # Keep the global batch fixed so that every world size (and accumulation) does the same
    # optimisation; only the work per process and micro-step shrinks. A batch that does not divide
    # is refused rather than rounded.
    if p.global_batch % (world * micro):
        raise BenchError(f"global_batch {p.global_batch} does not divide over {world} processes x {micro} micro-batches")
    per_process_batch = p.global_batch // (world * micro)
    # Pinned host memory only where batches cross to a GPU: it lets accelerate's copy overlap the
    # step (non_blocking, recorded in `loader_settings`); on a CPU it would only cost memory. No
    # loader workers: every workload's data is in memory, tensors built (and text tokenised) at
    # load, so a batch is one index and one collate; a worker process would add a copy.
    pin = accelerator.device.type == "cuda"
    train_loader = training_loader(workload, splits, p.global_batch, per_process_batch, micro, seed, pin)
    eval_sets = {"train": splits.train, "val": splits.val, "test": splits.test, **splits.extra}
    eval_loaders = {
        name: DataLoader(ds, batch_size=p.eval_batch, shuffle=False, collate_fn=workload.collate, pin_memory=pin)
        for name, ds in eval_sets.items()
    }

    model = workload.build_model()
    model.train()  # from_pretrained models come back in eval mode
    # Count training FLOPs per sample once, on the plain model before any wrapper (DDP, FSDP) and
    # before checkpointing (whose recomputed forwards are hardware FLOPs, not model FLOPs: MFU
    # counts the model's, HFU both), on a batch built by hand, so the shuffle order is undisturbed.
    sample_batch = workload.collate([splits.train[i] for i in range(min(per_process_batch, len(splits.train)))])
    flops_per_sample = workload.flops_per_sample(model, sample_batch)
    blocks = workload.checkpoint_blocks(model) if checkpointing else []
    hardware_flops = workload.flops_per_sample(model, sample_batch) if blocks else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    steps_per_epoch = len(train_loader) // (world * micro)  # before prepare: batches of the full dataset
    if steps_per_epoch == 0:
        raise BenchError(f"the training split ({len(splits.train)} samples) is smaller than one global batch ({p.global_batch})")
    total_steps = budget.max_steps or steps_per_epoch * budget.max_epochs
    # The scheduler is stepped by hand, once per optimizer step, and NOT passed to prepare():
    # a prepared scheduler steps once per process per call (it assumes the schedule was written
    # for a per-process batch), which would end a fixed-global-batch schedule `world` times early.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(p.warmup_fraction, total_steps, p.linear_decay))

    knobs = measure.KnobProbe(micro_per_step=micro)
    # after the FLOP count: only training forwards are counted. At checkpointing=off the same blocks
    # are watched, unchanged: a config that turned recomputation on anyway runs them twice
    knobs.watch_blocks(blocks or workload.checkpointable_blocks(model))
    knobs.watch_optimizer(optimizer)  # the torch optimizer itself, before accelerate wraps it
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {name: accelerator.prepare(loader) for name, loader in eval_loaders.items()}
    knobs.watch_sync(model, micro)

    def evaluate_split(split: str) -> dict[str, np.ndarray]:
        return evaluate(accelerator, workload, model, eval_loaders[split])

    return Run(model, optimizer, scheduler, train_loader, evaluate_split, steps_per_epoch, per_process_batch,
               flops_per_sample, knobs=knobs, hardware_flops_per_sample=hardware_flops)


def weak_scaled(params: TrainParams, world: int) -> TrainParams:
    """A scaling=weak cell's params on `world` processes: each process keeps `device_batch`
    samples per optimizer step (global_batch when unset), so the global batch is `world` times that,
    and the learning rate grows with the square root of that batch over the one `lr` was set for
    (AdamW's usual rule, the GPU matrix's for sentiment). Everything after (loader, DeepSpeed's
    micro-batch, the knob check's global batch, the MLPerf log) reads the scaled params."""
    global_batch = (params.device_batch or params.global_batch) * world
    return dataclasses.replace(params, global_batch=global_batch, lr=params.lr * math.sqrt(global_batch / params.global_batch))


def training_loader(workload: Workload, splits: Splits, global_batch: int, per_process_batch: int, micro: int,
                    seed: int, pin_memory: bool = False) -> DataLoader:
    """The training DataLoader of one process's micro-batches, before accelerate shards it.

    A seeded generator makes the shuffle order a function of the seed alone; accelerate then
    synchronises it across processes and hands each process its own shard of every batch.
    With accumulation (micro > 1) each epoch draws a whole number of global batches at random
    (RandomSampler with num_samples), so that every optimizer step has exactly `micro`
    micro-batches: a tail shorter than one global batch would otherwise end the epoch on an
    optimizer step of fewer micro-batches (accelerate syncs at the end of a loader)."""
    if micro == 1:
        return DataLoader(splits.train, batch_size=per_process_batch, shuffle=True,
                          drop_last=True,  # every step sees exactly global_batch samples
                          collate_fn=workload.collate, generator=torch.Generator().manual_seed(seed),
                          pin_memory=pin_memory)
    whole = len(splits.train) // global_batch * global_batch
    sampler = torch.utils.data.RandomSampler(splits.train, num_samples=whole, generator=torch.Generator().manual_seed(seed))
    return DataLoader(splits.train, batch_size=per_process_batch, sampler=sampler, drop_last=True, collate_fn=workload.collate,
                      pin_memory=pin_memory)


def loader_settings(accelerator: Accelerator, loader: DataLoader, eval_batch: int) -> dict[str, Any]:
    """How the prepared training loader feeds the model, as the result records it (`loader`):
    worker processes, pinned memory, whether accelerate copies batches to the device without
    blocking, and how it shards batches over processes. What makes GPU throughput comparable."""
    config = accelerator.dataloader_config
    return {
        "num_workers": loader.num_workers,
        "pin_memory": bool(loader.pin_memory),
        "non_blocking": bool(config.non_blocking),
        "split_batches": bool(config.split_batches),
        "dispatch_batches": config.dispatch_batches,
        "even_batches": bool(config.even_batches),
        "device": accelerator.device.type,
        "eval_batch": eval_batch,
    }


# ---------------------------------------------------------------------------------------------
# In the loop: the step, the decisions, the evaluation
# ---------------------------------------------------------------------------------------------


def train_step(
    accelerator: Accelerator,
    workload: Workload,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch: Any,
    grad_clip: float | None,
) -> torch.Tensor:
    """One optimizer step on one batch: forward and loss under autocast, backward, clipping,
    AdamW, schedule. Returns the loss, detached and still on the device: reading it (.item())
    would force a device sync on every step."""
    with accelerator.autocast():
        loss = workload.loss(model, batch)
    accelerator.backward(loss)
    # sync_gradients is always True without accumulation; with it, only on the last micro-step, where
    # the gradients are whole: clip and schedule then (the prepared optimizer skips the other steps).
    if grad_clip and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if accelerator.sync_gradients:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def should_evaluate(step: int, steps_per_epoch: int, eval_every_steps: int | None, max_steps: int | None) -> bool:
    """Evaluate after this step? Every `eval_every_steps` steps, else at the end of each epoch;
    and always after the last step of a step budget, so that a run ends on an evaluation."""
    if max_steps is not None and step >= max_steps:
        return True
    if eval_every_steps:
        return step % eval_every_steps == 0
    return step % steps_per_epoch == 0


def should_stop(mean_loss: float, metrics: dict[str, float], target: Target, clock: float, budget: Budget,
                step: int) -> tuple[str, str] | None:
    """After an evaluation: (status, reason) when training ends here, else None. Checked in
    this order: a diverged loss fails the cell even if the metric looks fine."""
    if not math.isfinite(mean_loss):
        return "failed", f"diverged: non-finite training loss at step {step}"
    if target.met(metrics):
        return "converged", ""
    if clock >= budget.max_seconds:
        return "not_converged", f"time budget of {budget.max_seconds:g} s spent"
    return None


@dataclass
class Progress:
    """Where the loop stands: counts, the training clock, the curve, and how it ended."""

    loss_sum: torch.Tensor  # training losses since the last evaluation, summed on the device
    seed: int = 0  # named in the progress lines only
    loss_count: int = 0
    step: int = 0
    epoch: int = 0
    samples_seen: int = 0
    tokens_seen: int | torch.Tensor = 0  # this rank's (a device tensor for text) until the loop ends, then summed over ranks
    clock: float = 0.0  # training clock: step time plus evaluation time, init excluded
    curve: list[dict[str, Any]] = field(default_factory=list)
    status: str = "not_converged"
    reason: str = ""
    done: bool = False
    time_to_target: float | None = None
    samples_to_target: int | None = None
    run_start_unix: float = 0.0
    run_stop_unix: float = 0.0

    def count_step(self, workload: Workload, batch: Any, loss: torch.Tensor, world: int,
                   tokens: int | torch.Tensor | None = None) -> int:
        """Add one finished step: its samples (global; `world` counts every micro-batch of it),
        tokens (this rank's, over its micro-batches; else the batch's) and loss; return its global
        samples. Nothing here waits for the device: loss and tokens stay tensors on it."""
        self.step += 1
        step_global = workload.samples_in(batch) * world
        self.samples_seen += step_global
        tokens = workload.tokens_in(batch) if tokens is None else tokens
        if tokens is not None:
            self.tokens_seen = self.tokens_seen + tokens
        self.loss_sum = self.loss_sum + loss.float()  # a tensor sum: no device sync
        self.loss_count += 1
        return step_global

    def add_times(self, laps: list[measure.Lap], step_times: measure.StepTimes) -> None:
        """The steps' times (measure.StepClock.laps) onto the training clock and the step record."""
        for lap in laps:
            step_times.add(lap.seconds, lap.samples)
            self.clock += lap.seconds

    def stop(self, status: str, reason: str) -> None:
        self.status, self.reason, self.done = status, reason, True
        if status == "converged":
            self.time_to_target, self.samples_to_target = self.clock, self.samples_seen


def evaluate(accelerator: Accelerator, workload: Workload, model: torch.nn.Module, loader: DataLoader) -> dict[str, np.ndarray]:
    """Per-sample outputs of a prepared loader, gathered from all processes in dataset order."""
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad(), accelerator.autocast():
        for batch in loader:
            outputs = workload.eval_outputs(model, batch)
            # gather_for_metrics drops the samples that were duplicated to pad the last batch.
            for key, value in accelerator.gather_for_metrics(outputs).items():
                collected.setdefault(key, []).append(value.float().cpu())
    model.train()
    return {key: torch.cat(values).numpy() for key, values in collected.items()}


def evaluate_and_decide(accelerator: Accelerator, workload: Workload, run: Run, progress: Progress, budget: Budget) -> None:
    """Validate on the training clock, add a curve point, and stop the run if it should stop."""
    eval_start = measure.now()
    metrics = workload.val_metrics(run.evaluate("val"))
    progress.clock += measure.now() - eval_start
    eval_end_unix = time.time()
    # Every rank must take the same decision (a rank left behind waits forever in the next
    # all-reduce), so the decision reads the slowest rank's clock and the loss of all ranks.
    progress.clock = max_over_ranks(accelerator, progress.clock)
    total_loss, total_count = sum_over_ranks(accelerator, float(progress.loss_sum), progress.loss_count)
    mean_loss = total_loss / max(total_count, 1)  # NaN/inf on any rank shows here
    progress.curve.append(
        {"step": progress.step, "epoch": progress.epoch, "samples": progress.samples_seen, "seconds": progress.clock,
         "train_loss": mean_loss, "time_unix": eval_end_unix, **metrics}
    )
    progress.loss_sum, progress.loss_count = torch.zeros((), device=accelerator.device), 0
    decision = should_stop(mean_loss, metrics, workload.target, progress.clock, budget, progress.step)
    if decision:
        progress.stop(*decision)
    if accelerator.is_main_process:  # off the training clock: the next step's clock starts after this
        print(progress_line(progress, workload.target.metric, metrics.get(workload.target.metric), workload.target.value),
              flush=True)


def progress_line(progress: Progress, metric: str, value: Any, target: float) -> str:
    """'progress: seed 0 step 120 samples 7680 val f1 0.7812 (target 0.8) loss 0.2104 clock 12.3 s'."""
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    loss = progress.curve[-1]["train_loss"] if progress.curve else float("nan")
    return (f"{PROGRESS_PREFIX} seed {progress.seed} step {progress.step} samples {progress.samples_seen} "
            f"val {metric} {shown} (target {target:g}) loss {loss:.4f} clock {progress.clock:.1f} s")


def max_over_ranks(accelerator: Accelerator, value: float) -> float:
    # float64: the clock is reported to the microsecond.
    return float(accelerator.gather(torch.tensor([value], dtype=torch.float64, device=accelerator.device)).max())


def observed_global_batch(accelerator: Accelerator, knobs: measure.KnobProbe) -> float | None:
    """Samples trained on per optimizer step, summed over ranks (None before any step)."""
    total = sum_over_ranks(accelerator, knobs.local_samples)[0]
    steps = knobs.inner_steps + knobs.skipped_steps  # a step the loss scaler skipped still consumed its batch
    return total / steps if steps else None


def sum_over_ranks(accelerator: Accelerator, *values: float) -> list[float]:
    gathered = accelerator.gather(torch.tensor([values], dtype=torch.float64, device=accelerator.device))
    return gathered.reshape(-1, len(values)).sum(dim=0).tolist()


# ---------------------------------------------------------------------------------------------
# After the loop: what `train` returns
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """What `train` measured on this rank: the cell's status and the sections its result takes
    (bench/results.py names and documents each). The worker adds init time, every rank's memory,
    the knob checks and the environment, and writes the result."""

    status: str
    """converged | not_converged | failed."""
    reason: str
    """Why it stopped, in one line."""
    model: torch.nn.Module
    """The trained model, unwrapped from accelerate's wrappers (for a checkpoint)."""
    metrics: dict[str, Any]
    """The final evaluation: split -> metric -> value."""
    target: dict[str, Any]
    """The quality target: metric, value, split, direction."""
    timings: dict[str, Any]
    """Time to target, training clock, epochs and steps, step-time quantiles and the steady sample."""
    samples_to_target: int | None
    """Training samples (global) seen when the target was met; None if it was not."""
    samples_seen: int
    """Training samples (global) seen in all."""
    throughput: dict[str, Any]
    """Steady-state samples/s and tokens/s, global."""
    flops_per_sample: float | None
    """Model FLOPs per training sample (forward and backward), recomputation left out."""
    hardware_flops_per_sample: float | None
    """The same with recomputation counted (differs only with activation checkpointing)."""
    batch: dict[str, Any]
    """Global and per-process batch, the global batch observed per optimizer step, accumulation."""
    loader: dict[str, Any]
    """The DataLoader's workers, pinned memory and batch sizes."""
    knobs: dict[str, Any]
    """What the loop saw of each knob (accumulation, compile window, recomputation) for verify.py."""
    memory: dict[str, Any]
    """This rank's peak memory during training (before the final evaluation)."""
    curve: list[dict[str, Any]]
    """One point per evaluation: step, samples, seconds, train loss, validation metrics."""
    wall_clock: dict[str, float | None]
    """Dates (Unix seconds) the training started and stopped, for the MLPerf log."""


def summary(accelerator: Accelerator, workload: Workload, run: Run, progress: Progress, step_times: measure.StepTimes,
            memory: dict[str, Any], final: dict[str, Any], final_eval_s: float) -> TrainOutcome:
    """The outcome of `train`: status, final metrics, timings, throughput, memory and curve."""
    p = workload.params
    steps = step_times.summary()
    # The steady step times themselves, evenly thinned to at most 500 and rounded to microseconds,
    # so that `bench compare` can test a speed change for significance even with a single seed.
    steady_secs = step_times.steady()[0]
    steady_sample = [round(t, 6) for t in steady_secs[:: max(1, math.ceil(len(steady_secs) / 500))]]
    samples_per_s = steps.get("samples_per_s")
    throughput = {
        "samples_per_s": samples_per_s,
        # Tokens per sample vary with dynamic padding; scale steady samples/s by the run's mean.
        "tokens_per_s": (samples_per_s * progress.tokens_seen / progress.samples_seen)
        if progress.tokens_seen and samples_per_s else None,
    }
    return TrainOutcome(
        status=progress.status,
        reason=progress.reason,
        model=accelerator.unwrap_model(run.model),
        metrics=final,
        target={"metric": workload.target.metric, "value": workload.target.value, "split": "val",
                "higher_is_better": workload.target.higher_is_better},
        timings={
            "time_to_target_s": progress.time_to_target,
            "train_seconds": progress.clock,
            "epochs": progress.epoch,
            "steps": progress.step,
            "steps_per_epoch": run.steps_per_epoch,
            "step_time_median_s": steps.get("step_time_median_s"),
            "step_time_p90_s": steps.get("step_time_p90_s"),
            "step_times_s": steady_sample,
            "final_eval_s": final_eval_s,
        },
        samples_to_target=progress.samples_to_target,
        samples_seen=progress.samples_seen,
        throughput=throughput,
        flops_per_sample=run.flops_per_sample,
        hardware_flops_per_sample=run.hardware_flops_per_sample,
        batch={"global": p.global_batch, "per_process": run.per_process_batch,
               # what the ranks really trained on per step of the optimizer itself, summed over ranks
               "observed_global": observed_global_batch(accelerator, run.knobs),
               **({"grad_accum": run.knobs.micro_per_step} if run.knobs.micro_per_step > 1 else {})},
        loader=loader_settings(accelerator, run.train_loader, p.eval_batch),
        knobs={**run.knobs.record(progress.step, step_times), "compile_step": run.compile_probe.record()},
        memory=memory,
        curve=progress.curve,
        wall_clock={"run_start": progress.run_start_unix, "run_stop": progress.run_stop_unix},
    )


def to_device(batch: Any, device: torch.device) -> Any:
    """A collated batch (tensor, mapping, list or tuple of them) on `device`, for the code that
    does not go through a prepared DataLoader: parity's plain loop and the precision probe.
    Mappings (a tokenizer's BatchEncoding too) come back as dicts."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict) or hasattr(batch, "items"):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
