"""Accelerate against plain PyTorch: the same losses, and what the Accelerate step costs.

The reference is `plain_train`, a plain PyTorch loop that does exactly what one step of
bench/harness/train.py does (same data order, model, AdamW, schedule, clipping, autocast) with no
Accelerate in it (`plain_step` is bench.harness.train.train_step without Accelerate).
`accelerate_train` runs the real bench/harness/train.py loop in this process, and `prepared_step`
(what the micro-benchmarks time) calls train_step itself, so both time exactly the step cells
run. With the same workload, data and seed, fp32 losses must agree to 1e-6
(tests/{unit,e2e}/test_parity.py). Accelerate's overhead is reported two ways: the ratio of the median step
times, and its cost per step in milliseconds (median Accelerate step minus median plain step, with
a 95% bootstrap interval). The cost is the figure that carries over: it is a roughly fixed amount of
Python per step (docs/parity.md lists it), so the ratio is 1 + cost / step time and depends on how
long the step is (a few percent of a 2-ms step, nothing of a 1-s one) and on the machine's load
(measured figures: docs/parity.md, "Parity with plain PyTorch"):

    python -m bench.harness.parity --workload maintenance --steps 300 --repeats 2 --precision fp32 bf16 --json parity.json

Step times follow the harness's rules (measure.StepTimes: warm-up steps dropped; evaluation
excluded). The two loops are run alternately, A-P then P-A, so a change in the load of a shared
machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from bench.harness import measure
from bench.harness.train import TrainOutcome, lr_schedule, to_device, train_step
from workloads.base import Splits, Workload

EVAL_SAMPLES = 128
"""Evaluation sets are thinned to about this many samples, and the final metrics skipped:
evaluation is not what is compared, and a full one (a BERT over thousands of reviews) would
dominate a short parity run."""


# ---------------------------------------------------------------------------------------------
# Setup shared by both loops
# ---------------------------------------------------------------------------------------------


@functools.cache
def loaded(name: str, seed: int = 0) -> tuple[Workload, Splits]:
    """A workload (default variant and params) with its data loaded once per process, evaluation
    sets thinned. Cached: the parity test and the micro-benchmarks share it."""
    from workloads import make_workload

    workload = make_workload(name)
    splits = workload.load(seed)
    return workload, Splits(
        train=splits.train,
        val=_thinned(splits.val),
        test=_thinned(splits.test),
        extra={k: _thinned(v) for k, v in splits.extra.items()},
        info=splits.info,
    )


def _thinned(dataset: Any) -> Any:
    stride = max(1, math.ceil(len(dataset) / EVAL_SAMPLES))
    return dataset if stride == 1 else Subset(dataset, range(0, len(dataset), stride))


def fresh_accelerator(precision: str):
    """A new single-process Accelerator with this precision. Accelerate keeps one global state per
    process; it is reset first so that fp32 and bf16 can follow each other in one process."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision="no" if precision == "fp32" else precision)


@contextlib.contextmanager
def recording_losses(workload: Workload):
    """Record every loss the workload computes (as floats) while inside the block."""
    losses: list[float] = []
    original = workload.loss

    def loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        value = original(model, batch)
        losses.append(float(value.detach().float()))
        return value

    workload.loss = loss  # type: ignore[method-assign]
    try:
        yield losses
    finally:
        del workload.loss  # back to the class's method


# ---------------------------------------------------------------------------------------------
# The two loops
# ---------------------------------------------------------------------------------------------


def accelerate_train(workload: Workload, splits: Splits, steps: int, seed: int, precision: str = "fp32") -> TrainOutcome:
    """bench/harness/train.py itself, for `steps` optimizer steps; returns its outcome."""
    from accelerate.utils import set_seed

    from bench.cells import Budget
    from bench.harness.train import train

    accelerator = fresh_accelerator(precision)
    set_seed(seed)
    workload.final_metrics = lambda evaluate: {}  # type: ignore[method-assign]
    try:
        return train(accelerator, workload, splits, Budget(max_epochs=10**6, max_seconds=math.inf, max_steps=steps), seed)
    finally:
        del workload.final_metrics  # back to the class's method


def plain_train(workload: Workload, splits: Splits, steps: int, seed: int, precision: str = "fp32") -> measure.StepTimes:
    """The same optimisation as bench/harness/train.py with `max_steps=steps`, in plain PyTorch.

    Every line mirrors one in bench/harness/train.py; the parity test fails when the two drift apart.
    """
    p = workload.params
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # What accelerate's set_seed does on one process.
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    loader = DataLoader(
        splits.train,
        batch_size=p.global_batch,
        shuffle=True,
        drop_last=True,
        collate_fn=workload.collate,
        generator=torch.Generator().manual_seed(seed),
    )
    model = workload.build_model().to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(p.warmup_fraction, steps, p.linear_decay))
    # bench/harness/train.py counts FLOPs before training on a batch built by hand (a forward and backward
    # that leave the weights untouched); do the same so that both consume the RNG alike.
    first = [splits.train[i] for i in range(min(p.global_batch, len(splits.train)))]
    workload.flops_per_sample(model, to_device(workload.collate(first), device))
    autocast = plain_autocast(device, precision)
    clock = measure.StepClock.for_device(device)  # the clock bench's loop times its steps with
    step = 0
    while step < steps:
        clock.restart()
        for batch in loader:
            batch = to_device(batch, device)
            plain_step(workload, model, optimizer, scheduler, batch, p.grad_clip, autocast)
            clock.lap(workload.samples_in(batch))
            step += 1
            if step >= steps:
                break
    times = measure.StepTimes()
    for lap in clock.laps():
        times.add(lap.seconds, lap.samples)
    return times


def plain_autocast(device: torch.device, precision: str) -> Callable[[], Any]:
    """What accelerator.autocast() is on one process, in plain PyTorch: bf16 autocast or nothing."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"plain loop supports fp32 and bf16, not {precision}")
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def plain_step(workload: Workload, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, batch: Any, grad_clip: float | None,
               autocast: Callable[[], Any]) -> torch.Tensor:
    """bench.harness.train.train_step line for line, without Accelerate."""
    with autocast():
        loss = workload.loss(model, batch)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def prepared_step(workload: Workload, splits: Splits, precision: str, use_accelerate: bool, seed: int = 0) -> Callable[[], float]:
    """One training step on a fixed first batch, ready to be called again and again (the
    micro-benchmarks time it): bench.harness.train.train_step itself through an Accelerator (the
    step every cell runs), or `plain_step`. Returns the loss of the step.

    The schedule is a constant factor of 1: the same work per step as a cell's (one LambdaLR
    step), and a learning rate that does not reach zero however often the benchmark calls."""
    p = workload.params
    torch.manual_seed(seed)
    model = workload.build_model()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loader = DataLoader(splits.train, batch_size=p.global_batch, shuffle=False, drop_last=True, collate_fn=workload.collate)
    if use_accelerate:
        accelerator = fresh_accelerator(precision)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        batch = next(iter(loader))

        def step() -> float:
            return float(train_step(accelerator, workload, model, optimizer, scheduler, batch, p.grad_clip))

        return step
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    batch = to_device(next(iter(loader)), device)
    autocast = plain_autocast(device, precision)

    def step_plain() -> float:
        return float(plain_step(workload, model, optimizer, scheduler, batch, p.grad_clip, autocast))

    return step_plain


# ---------------------------------------------------------------------------------------------
# Losses and step-time ratio
# ---------------------------------------------------------------------------------------------


def losses_side_by_side(name: str, steps: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """fp32 losses of each step (the first being the FLOP count's forward) in both loops."""
    workload, splits = loaded(name, seed)
    with recording_losses(workload) as accelerate_losses:
        accelerate_train(workload, splits, steps, seed, "fp32")
    with recording_losses(workload) as plain_losses:
        plain_train(workload, splits, steps, seed, "fp32")
    return accelerate_losses, plain_losses


BOOTSTRAP_RESAMPLES = 2000


def cost_interval(accelerate: list[float], plain: list[float], paired: bool = False, seed: int = 0,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% percentile-bootstrap interval of median(accelerate) - median(plain), in the samples' unit.

    Unpaired (whole runs): each side resampled on its own. Paired (alternating steps, the two lists
    index the same pairs): the pairs are resampled together, so that the load two adjacent steps
    shared stays shared."""
    a, p = np.asarray(accelerate, dtype=float), np.asarray(plain, dtype=float)
    if not len(a) or not len(p) or (paired and len(a) != len(p)):
        raise ValueError(f"cost_interval needs samples on both sides{' of equal length' if paired else ''}")
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, len(a), size=(resamples, len(a)))
        diffs = np.median(a[idx], axis=1) - np.median(p[idx], axis=1)
    else:
        diffs = (np.median(a[rng.integers(0, len(a), size=(resamples, len(a)))], axis=1)
                 - np.median(p[rng.integers(0, len(p), size=(resamples, len(p)))], axis=1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def step_time_ratio(name: str, precision: str, steps: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Median steady step time of bench/harness/train.py and of the plain loop, whole runs alternating
    (data loading included, evaluation excluded); their ratio, and the difference (Accelerate's cost
    per step, ms) with its bootstrap interval."""
    workload, splits = loaded(name, seed)
    accelerate_times: list[float] = []
    plain_times: list[float] = []
    for repeat in range(repeats):
        order = ("accelerate", "plain") if repeat % 2 == 0 else ("plain", "accelerate")
        for side in order:
            if side == "accelerate":
                result = accelerate_train(workload, splits, steps, seed, precision)
                accelerate_times += result.timings["step_times_s"]
            else:
                plain_times += plain_train(workload, splits, steps, seed, precision).steady()[0]
    a, b = statistics.median(accelerate_times), statistics.median(plain_times)
    low, high = cost_interval(accelerate_times, plain_times, seed=seed)
    return {"accelerate_ms": a * 1e3, "plain_ms": b * 1e3, "ratio": a / b,
            "cost_ms": (a - b) * 1e3, "cost_ms_low": low * 1e3, "cost_ms_high": high * 1e3}


def interleaved_step_ratio(name: str, precision: str, steps: int, seed: int = 0) -> dict[str, Any]:
    """The step alone (prepared_step), Accelerate and plain alternating step by step.

    On a shared machine the load of other jobs changes within seconds, which whole-run
    alternation cannot cancel; adjacent steps see the same load. The headline is the median of
    the per-pair ratios; the cost is median Accelerate step minus median plain step (ms), its interval
    a paired bootstrap."""
    workload, splits = loaded(name, seed)
    accelerate_step = prepared_step(workload, splits, precision, use_accelerate=True, seed=seed)
    plain_step = prepared_step(workload, splits, precision, use_accelerate=False, seed=seed)
    for _ in range(5):  # warm-up, untimed
        accelerate_step()
        plain_step()
    pairs = []
    for i in range(steps):
        timed = {}
        for side, step in ((("a", accelerate_step), ("p", plain_step)) if i % 2 == 0 else (("p", plain_step), ("a", accelerate_step))):
            start = measure.now()
            step()
            timed[side] = measure.now() - start
        pairs.append((timed["a"], timed["p"]))
    a_times, p_times = [a for a, _ in pairs], [p for _, p in pairs]
    a, p = statistics.median(a_times), statistics.median(p_times)
    low, high = cost_interval(a_times, p_times, paired=True, seed=seed)
    return {
        "step_accelerate_ms": a * 1e3,
        "step_plain_ms": p * 1e3,
        "step_ratio": statistics.median(a / p for a, p in pairs),
        "step_cost_ms": (a - p) * 1e3, "step_cost_ms_low": low * 1e3, "step_cost_ms_high": high * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    from tabulate import tabulate

    from workloads import REGISTRY

    parser = argparse.ArgumentParser(prog="python -m bench.harness.parity", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run of the loops (default 300)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop, alternating (default 2)")
    parser.add_argument("--pairs", type=int, default=200, help="alternating step pairs for the step ratio (default 200)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    parser.add_argument("--json", type=Path, help="also write the rows, machine and load averages as JSON to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_start = os.getloadavg()
    rows = []
    for name in args.workload:
        for precision in args.precision:
            row = {"workload": name, "precision": precision, "loops": f"{args.repeats} x {args.steps} steps",
                   **step_time_ratio(name, precision, args.steps, args.repeats),
                   "pairs": args.pairs, **interleaved_step_ratio(name, precision, args.pairs)}
            rows.append(row)
            print(f"{name} {precision}: loop ratio {row['ratio']:.3f}, cost {_cost(row, 'cost_ms')} ms/step; "
                  f"step ratio {row['step_ratio']:.3f}, cost {_cost(row, 'step_cost_ms')} ms/step", file=sys.stderr)
    load_end = os.getloadavg()
    env = measure.environment()
    table = tabulate([_table_row(row) for row in rows], headers="keys", tablefmt="github", floatfmt=".3f")
    text = f"{table}\n\nCost: median Accelerate step minus median plain step, ms, [95% bootstrap interval].\n" \
           f"Measured on {env['cpu_model']} ({env['cpu_count']} cores), {', '.join(env['gpus']) or 'no GPU'}; " \
           f"torch {env['packages']['torch']}, accelerate {env['packages']['accelerate']}; load average (1/5/15 min) " \
           f"at the start {_load(load_start)}, at the end {_load(load_end)}.\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({
            "rows": rows, "load_average_start": list(load_start), "load_average_end": list(load_end),
            "cpu_model": env["cpu_model"], "cpu_count": env["cpu_count"], "gpus": env["gpus"],
            "packages": {k: env["packages"].get(k) for k in ("torch", "accelerate")}, "argv": sys.argv[1:] if argv is None else argv,
        }, indent=2) + "\n")
    return 0


def _cost(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the printed table: each cost with its interval in one column."""
    out = {k: v for k, v in row.items() if not k.endswith(("_low", "_high"))}
    for key in ("cost_ms", "step_cost_ms"):
        out[key] = _cost(row, key)
    return out


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    raise SystemExit(main())
