"""Clocks, peak memory and the environment a result was measured in."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from bench.harness.host import hardware, usable_cores
from bench.versions import package_versions

if TYPE_CHECKING:  # torch and accelerate are imported where used: importing this module stays light
    from accelerate import Accelerator

# ---------------------------------------------------------------------------------------------
# Peak host memory. ru_maxrss cannot be reset and already holds the imports' high-water mark
# (hundreds of MB in a torchrun-spawned rank) before any work, so we use the kernel's resettable
# high-water mark instead: writing "5" to /proc/self/clear_refs resets VmHWM to the current RSS
# (Linux >= 4.0).
# ---------------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window for this process. False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """This process's RSS high-water mark (VmHWM) in MiB since the last reset, None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_cuda_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_mb() -> dict[str, float] | None:
    """CUDA max allocated and max reserved (MiB) on this rank's device, None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return {
        "max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
        "max_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
    }


def rank_peak_memory(rss_window_reset: bool, on_cuda: bool) -> dict[str, Any]:
    """This rank's peaks since the resets at the start of training: RSS (MiB), the window it
    covers (`reset_peak_rss` may have been refused), and CUDA's (None for a CPU cell)."""
    return {
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_window": "training" if rss_window_reset else "process lifetime (VmHWM reset refused)",
        "cuda": cuda_peak_mb() if on_cuda else None,
    }


def gather_peak_memory(accelerator: Accelerator, memory: dict[str, Any]) -> dict[str, Any]:
    """The result's `memory`: every rank's peaks (`rank_peak_memory` on each), gathered, with the
    largest and the sum. Every rank must call it (a collective): a launcher sees only its largest child."""
    import torch

    rss = accelerator.gather(torch.tensor([memory["peak_rss_mb"] or -1.0], device=accelerator.device))
    per_rank: dict[str, Any] = {"peak_rss_mb": [float(v) for v in rss.cpu()]}
    if memory["cuda"]:
        cuda = memory["cuda"]
        peaks = accelerator.gather(torch.tensor([cuda["max_allocated_mb"], cuda["max_reserved_mb"]], device=accelerator.device))
        peaks = peaks.reshape(-1, 2).cpu()
        per_rank["cuda_max_allocated_mb"] = [float(v) for v in peaks[:, 0]]
        per_rank["cuda_max_reserved_mb"] = [float(v) for v in peaks[:, 1]]
    return {
        "per_rank": per_rank,
        "peak_rss_mb_max": max(per_rank["peak_rss_mb"]),
        "peak_rss_mb_sum": sum(per_rank["peak_rss_mb"]),
        "cuda_max_allocated_mb_max": max(per_rank.get("cuda_max_allocated_mb", [0.0])) or None,
        "cuda_max_reserved_mb_max": max(per_rank.get("cuda_max_reserved_mb", [0.0])) or None,
    }


# ---------------------------------------------------------------------------------------------
# Step times
# ---------------------------------------------------------------------------------------------


@dataclass
class StepTimes:
    """Wall time of each training step, to derive steady-state throughput and percentiles.

    The first `warmup` steps (allocator growth, lazy init, first autocast cache) are kept but
    excluded from throughput, as MLPerf excludes warm-up.
    """

    warmup: int = 5
    seconds: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)

    def add(self, seconds: float, global_samples: int) -> None:
        self.seconds.append(seconds)
        self.samples.append(global_samples)

    def steady(self) -> tuple[list[float], list[int]]:
        # Too few steps for a warm-up window: use them all rather than report nothing.
        start = self.warmup if len(self.seconds) > 2 * self.warmup else 0
        return self.seconds[start:], self.samples[start:]

    def summary(self) -> dict[str, Any]:
        secs, samples = self.steady()
        if not secs:
            return {"steps": 0}
        arr = np.asarray(secs)
        return {
            "steps": len(self.seconds),
            "steady_steps": len(secs),
            "step_time_median_s": float(np.median(arr)),
            "step_time_p90_s": float(np.percentile(arr, 90)),
            "samples_per_s": float(sum(samples) / arr.sum()),
        }


def now() -> float:
    return time.perf_counter()


class Lap(NamedTuple):
    """One optimizer step as the step clock timed it."""

    seconds: float
    samples: int
    """Samples the step trained on, over all processes."""


class StepClock:
    """When each optimizer step ended, read without making the host wait for the device.

    On a CPU a step's work is done when its calls return: each step's time is the wall clock
    between step ends. On a GPU the host only queues kernels; a `torch.cuda.synchronize()` after
    every step would empty that queue, and the device would idle while the host prepares the next
    step. So on a GPU a CUDA event is recorded on the stream at each step's end (`lap`) and the
    events are read only where the loop waits for the device anyway (`laps`: before an evaluation,
    at the end), with one synchronize. A step's time is then the device time between its end and
    the previous step's end: its cost in a loop that keeps the device fed; when the host is the
    bottleneck, the device's wait for it is part of that.

    `event` makes the device's timing events (torch.cuda.Event(enable_timing=True) on a GPU); None:
    the wall clock."""

    def __init__(self, event: Callable[[], Any] | None = None) -> None:
        self._event = event
        self._mark: Any = None  # the previous step's end (or a restart): an event, or perf_counter seconds
        self._excluded = 0.0  # host seconds to take off the step in progress (device events only)
        self._pending: list[tuple[Any, Any, int, float]] = []  # (start, end, global samples, excluded s), unread

    @classmethod
    def for_device(cls, device: Any) -> StepClock:
        if device.type == "cuda":
            import torch

            return cls(lambda: torch.cuda.Event(enable_timing=True))
        return cls()

    def restart(self) -> None:
        """Time from here: the first step, and the first after an evaluation or an epoch's end."""
        self._mark = self._stamp()

    def exclude(self, seconds: float) -> None:
        """Take host time that is no part of the step in progress (the compile probe's profiler) off
        it. On the device clock this is exact only while the device idles through that time, which
        the compile probe ensures by waiting for the device around its profiler (compile_probe.py)."""
        if self._event is None:
            self._mark += seconds
        else:
            self._excluded += seconds

    def lap(self, global_samples: int) -> None:
        """A step ended; it trained `global_samples` samples over all processes. Never waits."""
        end = self._stamp()
        self._pending.append((self._mark, end, global_samples, self._excluded))
        self._mark, self._excluded = end, 0.0

    def laps(self) -> list[Lap]:
        """Each step since the last call, in order; waits for the device once (for its last
        event), not per step."""
        pending, self._pending = self._pending, []
        if self._event is None:
            return [Lap(end - start, samples) for start, end, samples, _ in pending]
        if pending:
            pending[-1][1].synchronize()
        return [Lap(start.elapsed_time(end) / 1000.0 - excluded, samples) for start, end, samples, excluded in pending]

    def _stamp(self) -> Any:
        if self._event is None:
            return now()
        event = self._event()
        event.record()
        return event


# ---------------------------------------------------------------------------------------------
# Environment: the software, the code version and the load, beside the host's hardware facts
# (cores, CPU flags, GPUs), which bench/harness/host.py derives
# ---------------------------------------------------------------------------------------------

def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        commit = out.stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> list[float] | None:
    """The host's 1-, 5- and 15-minute load averages (runnable processes), None where unknown.
    Above the core count, other work is queueing for the cores a cell's clock runs on."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def memory_total_mb() -> float | None:
    """The host's physical memory in MiB (MemTotal), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, 1)
    except (AttributeError, ValueError, OSError):
        return None


def cuda_driver_version() -> str | None:
    """The NVIDIA driver's version (NVML if installed, else nvidia-smi), None without one."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # not installed, or no driver to talk to: ask nvidia-smi
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def gpu_software() -> dict[str, Any]:
    """CUDA as torch was built with it, the driver, NCCL, and each GPU's memory (MiB). On a host
    without a usable GPU: the build's CUDA (None for a CPU build), None for the rest, no memory."""
    import torch

    info: dict[str, Any] = {"cuda_version": torch.version.cuda, "cuda_driver": None, "nccl_version": None,
                            "gpu_memory_mb": []}
    if not torch.cuda.is_available():
        return info
    info["gpu_memory_mb"] = [round(torch.cuda.get_device_properties(i).total_memory / 2**20, 1)
                             for i in range(torch.cuda.device_count())]
    info["cuda_driver"] = cuda_driver_version()
    try:
        nccl = torch.cuda.nccl.version()
        info["nccl_version"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
    except Exception:  # a build without NCCL
        pass
    return info


def environment(cpu_only: bool | None = None) -> dict[str, Any]:
    """What a figure was measured on: hardware (cores, memory, GPUs and their software), the
    host's load when it was taken, software, code version. `bench env` prints it.

    `cpu_only` (see `hardware`); by default, whether accelerate was told to compute on the CPU
    (ACCELERATE_USE_CPU, which the launcher sets for every CPU topology)."""
    import torch

    if cpu_only is None:
        cpu_only = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        **hardware(cpu_only),
        "usable_cores": usable_cores(),
        "memory_total_mb": memory_total_mb(),
        "load_average": load_average(),
        **gpu_software(),
        "torch_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------------------------------------
# The knobs in effect while training (docs/knobs.md): accumulation, recomputation, compile
# ---------------------------------------------------------------------------------------------


@dataclass
class KnobProbe:
    """Counts what gradient accumulation and activation checkpointing really did during training.

    - micro-steps, optimizer steps as accelerate closed them (`accelerator.sync_gradients` after a
      micro-step under `accumulate`), and the steps the torch optimizer itself took (a step post
      hook on it: what really updated the weights);
    - the samples this rank trained on, micro-batch by micro-batch (the observed global batch is
      their sum over ranks per optimizer step, not the configured one);
    - on several processes, the gradient all-reduces DDP really ran per micro-step, counted by a
      DDP communication hook (the default all-reduce, wrapped): accumulation must run none on
      every micro-step but the last of each optimizer step;
    - the training forwards of one checkpointed block (a forward hook): with recomputation the
      block runs its forward twice per micro-step, once more in backward.
    """

    micro_per_step: int = 1
    """Accelerate's gradient_accumulation_steps: what the loop ran (the environment can override it)."""
    asked_micro: int = 1
    """The cell's grad_accum: what was asked for."""
    micro_steps: int = 0
    optimizer_steps: int = 0
    inner_steps: int = 0
    """Steps the torch optimizer took (its step post hook)."""
    skipped_steps: int = 0
    """Optimizer steps the loss scaler skipped (fp16 overflow: accelerator.optimizer_step_was_skipped)."""
    local_samples: int = 0
    allreduce_calls: int = 0
    sync_pattern_ok: bool = True
    """False once a micro-step broke "all-reduce on the last micro-step only"."""
    watching_sync: bool = False
    block_forwards: int = 0
    watched_blocks: int = 0
    prepared_type: str = ""
    _loss_sum: Any = None
    _tokens: Any = None  # an int, or a device tensor (text): summed without waiting for the device
    _calls_before: int = 0

    def watch_blocks(self, blocks: list[Any]) -> None:
        if not blocks:
            return
        self.watched_blocks = len(blocks)

        def count(module: Any, _inputs: Any, _output: Any) -> None:
            if module.training:  # evaluation forwards (no_grad, eval mode) are not steps
                self.block_forwards += 1

        # The hook goes on the block's first submodule, not the block: transformers checkpoints a
        # layer's `forward`, not its `__call__`, so the block's own hooks run once; what its forward
        # calls (attention...) runs again when backward recomputes it.
        inner = next(iter(blocks[0].children()), blocks[0])
        inner.register_forward_hook(count)

    def watch_optimizer(self, optimizer: Any) -> None:
        """Count the steps the torch optimizer itself takes (before accelerate wraps it)."""
        def stepped(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            self.inner_steps += 1

        optimizer.register_step_post_hook(stepped)

    def watch_sync(self, model: Any, micro: int) -> None:
        """With accumulation on a DDP model: count its all-reduces through a comm hook."""
        from torch.nn.parallel import DistributedDataParallel

        self.prepared_type = prepared_model_kind(model)
        if micro == 1 or not isinstance(model, DistributedDataParallel):
            return
        import torch
        import torch.distributed as dist
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        def counted(state: Any, bucket: Any) -> Any:
            self.allreduce_calls += 1
            return allreduce_hook(state, bucket)

        # DDP checks a hook's annotations as objects; this module's are strings (postponed evaluation).
        counted.__annotations__ = {"state": object, "bucket": dist.GradBucket, "return": torch.futures.Future[torch.Tensor]}
        model.register_comm_hook(None, counted)
        self.watching_sync = True

    def after_micro_step(self, accelerator: Any, loss: Any, tokens: Any, samples: int | None = None) -> None:
        self.micro_steps += 1
        self.local_samples += samples or 0
        last = bool(accelerator.sync_gradients)
        if self.watching_sync:
            ran = self.allreduce_calls > self._calls_before
            self.sync_pattern_ok &= ran == last
            self._calls_before = self.allreduce_calls
        if last:
            self.optimizer_steps += 1
            self.skipped_steps += bool(getattr(accelerator, "optimizer_step_was_skipped", False))
        self._loss_sum = loss.float() if self._loss_sum is None else self._loss_sum + loss.float()
        if tokens is not None:
            self._tokens = tokens if self._tokens is None else self._tokens + tokens  # no bool(): a tensor would sync

    def optimizer_stepped(self, accelerator: Any) -> bool:
        return self.micro_per_step == 1 or bool(accelerator.sync_gradients)

    def step_loss(self, loss: Any) -> Any:
        """The step's loss: the micro-step's own without accumulation, else the mean over the
        micro-steps of the optimizer step once it is over."""
        if self.micro_per_step == 1:
            self._loss_sum = None
            return loss
        return self._loss_sum / self.micro_per_step if self._loss_sum is not None else loss

    def take_tokens(self) -> Any:
        tokens, self._tokens, self._loss_sum = self._tokens, None, None
        return tokens

    def record(self, steps: int, step_times: StepTimes) -> dict[str, Any]:
        """The result's `knobs` entries that training measured (compile and sharding are added by
        the worker). Accumulation is recorded for every cell, at its default too: a cell that asked
        for 1 and ran 2 is as wrong as the reverse."""
        out: dict[str, Any] = {
            "grad_accum": {
                "asked": self.asked_micro, "steps": self.micro_per_step, "micro_steps": self.micro_steps,
                "optimizer_steps": self.optimizer_steps, "optimizer_stepped": self.inner_steps,
                "optimizer_skipped": self.skipped_steps,
                "sync_on_last_only": self.sync_pattern_ok if self.watching_sync else None,
                "allreduce_calls": self.allreduce_calls if self.watching_sync else None,
            }
        }
        if self.watched_blocks:
            out["checkpointing"] = {
                "blocks": self.watched_blocks,
                "recompute_forwards_per_step": self.block_forwards / max(self.micro_steps, 1),
            }
        out["compile_window"] = {**compile_seconds(step_times), "prepared_model": self.prepared_type}
        return out


COMPILED_KINDS = ("OptimizedModule", "DeepSpeedEngine (compiled)")
"""What a prepared model is when compiled: torch.compile's wrapper, or, under DeepSpeed, the
engine that accelerate asked to compile its module (`DeepSpeedEngine.compile`)."""


def prepared_model_kind(model: Any) -> str:
    """The prepared model's class, marked "(compiled)" for a DeepSpeed engine that compiled its
    module: accelerate hands compile to DeepSpeed there, and the model stays a DeepSpeedEngine."""
    name = type(model).__name__
    return f"{name} (compiled)" if name == "DeepSpeedEngine" and getattr(model, "is_compiled", False) else name


def compile_seconds(step_times: StepTimes) -> dict[str, Any]:
    """Compile time measured apart: the first (warm-up) steps minus as many steady steps (median)."""
    steady = step_times.steady()[0]
    first = step_times.seconds[: step_times.warmup] if len(step_times.seconds) > 2 * step_times.warmup else []
    if not first or not steady:
        return {"compile_s": None, "first_steps": len(first)}
    median = float(np.median(steady))
    return {"compile_s": max(0.0, float(sum(first)) - median * len(first)), "first_steps": len(first),
            "first_steps_s": float(sum(first)), "steady_step_median_s": median}
