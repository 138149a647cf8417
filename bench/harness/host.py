"""What this host offers the benchmark, derived in one place: its GPUs, its cores, its CPU's
precision flags and hardware class, what it can run (`Host`: GPUs, native bf16, compute capability,
fp8 backend), and how `--parallel N` cuts it into slots.

Every other module asks here: the capability check (bench/harness/matrix.py skip_reason), the
launcher's threads per rank (bench/harness/launch.py), what a result records of its host
(bench/harness/measure.py environment), the parallel executor's slots
(bench/harness/executors/parallel.py). Importing it stays light: torch is imported where a GPU is
counted or named, and the GPU's own facts (bf16, capability) are probed in a child process, so that
the runner never holds a CUDA context (docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

# -- GPUs: what this host can run --------------------------------------------------------------


FP8_BACKENDS = ("torchao", "transformer_engine", "msamp")


@dataclass(frozen=True)
class Host:
    """What the cells are planned against (bench/harness/matrix.py skip_reason): this host, detected,
    or the nodes of a SLURM partition, declared."""

    gpus: int
    bf16_gpu: bool
    fp8_backend: str | None
    gpu_capability: tuple[int, int] | None = None
    """The first visible GPU's CUDA compute capability (9, 0) for an H100; None without an NVIDIA GPU
    (no GPU, a ROCm GPU) or where it could not be read."""

    @classmethod
    def detect(cls) -> Host:
        import torch

        gpus = torch.cuda.device_count()  # counts devices without creating a CUDA context
        # In accelerate's own order of preference when no backend is configured: torchao, TE, MS-AMP.
        fp8 = next((m for m in FP8_BACKENDS if importlib.util.find_spec(m)), None)
        probed = probe_gpu() if gpus else {}
        capability = probed.get("capability")
        return cls(gpus=gpus, bf16_gpu=bool(probed.get("bf16")), fp8_backend=fp8,
                   gpu_capability=tuple(capability) if capability else None)

    def record(self) -> dict[str, Any]:
        """What run.json's `planned_for` records of declared nodes (read back by from_record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> Host:
        """The nodes run.json's `planned_for` recorded (`record`; JSON made the capability a list;
        where the facts came from, a probe job's node, is not a host fact)."""
        capability = recorded.get("gpu_capability")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{**{k: v for k, v in recorded.items() if k in known},
                          "gpu_capability": tuple(capability) if capability else None})
        except TypeError:  # a field missing, or a capability that is no pair
            raise BenchError(f"run.json's planned_for is damaged ({recorded!r:.200}); start a new run") from None

    @classmethod
    def declared(cls, gpus: int, capability: tuple[int, int] | None) -> Host:
        """Nodes of `gpus` GPUs of this CUDA compute capability, as declared for a SLURM partition
        planned from a login node (which has none): native bf16 from 8.0 (Ampere); the fp8 backends
        are this host's installed packages, which the jobs share."""
        fp8 = next((m for m in FP8_BACKENDS if importlib.util.find_spec(m)), None)
        return cls(gpus=gpus, bf16_gpu=bool(capability and capability >= (8, 0)), fp8_backend=fp8,
                   gpu_capability=capability)


def parse_capability(raw: str) -> tuple[int, int]:
    """"9.0" -> (9, 0); a one-line error otherwise."""
    major, _, minor = raw.partition(".")
    if not (major.isdigit() and (minor.isdigit() or not minor)):
        raise BenchError(f"--gpu-capability: expected MAJOR.MINOR such as 9.0, got {raw!r}")
    return int(major), int(minor or 0)


# Asked in a child process: is_bf16_supported() and get_device_capability() initialise CUDA on
# device 0, and a context held by the long-lived runner makes every cell's rank 0 fail on a GPU in
# exclusive-process mode.
# including_emulation=False: a V100 or T4 "supports" bf16 only by emulating it, slower than fp32;
# its bf16 cells are skipped with the reason instead of reported as bf16.
# The compute capability decides fp8 (8.9: Ada, Hopper) and TF32 (8.0: Ampere); it is NVIDIA's
# numbering, so a ROCm build (torch.version.hip) reports none.
_BF16_PROBE = (
    "import json, torch\n"
    "ok = torch.cuda.is_available()\n"
    "nvidia = ok and torch.version.hip is None\n"
    "print(json.dumps({'bf16': bool(ok and torch.cuda.is_bf16_supported(including_emulation=False)),\n"
    "                  'capability': list(torch.cuda.get_device_capability(0)) if nvidia else None}))"
)


def probe_gpu(timeout_s: float = 120.0) -> dict:
    """{"bf16": native bf16, "capability": [major, minor] or None} of this host's first visible GPU,
    probed in a short-lived child process; {} when the probe fails."""
    import json
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _BF16_PROBE], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:  # a hung driver: no GPU facts, and the GPU cells say so
        return {}
    if done.returncode != 0:
        return {}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def gpu_runs_bf16_natively(timeout_s: float = 120.0) -> bool:
    """Whether this host's first visible GPU has native bf16, probed in a short-lived child process."""
    return bool(probe_gpu(timeout_s).get("bf16"))


def visible_gpus() -> list[str]:
    """The GPUs this process was given, as CUDA_VISIBLE_DEVICES names them (indices or UUIDs);
    every GPU of the host when the variable is unset."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [gpu.strip() for gpu in given.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


# -- cores ----------------------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else all the
    host's), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def host_cores() -> int:
    """Cores the benchmark may use: BENCH_CPU_CORES if set (e.g. on a shared machine), else all
    cores this process may run on."""
    explicit = os.environ.get("BENCH_CPU_CORES", "")
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return usable_cores()


def bench_cores() -> list[int]:
    """The ids of the cores the benchmark may use: this process's CPU affinity, the first
    `host_cores()` of them."""
    return sorted(os.sched_getaffinity(0))[:host_cores()]


# -- the CPU: model, precision flags, hardware class --------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# The CPU flags that decide what a bf16 or fp16 cell computes with, and so its speed and whether
# it runs at all: with AVX-512 BF16/FP16 or AMX tiles the CPU has native bf16/fp16 dot products;
# with AVX-512 alone (avx512f) oneDNN emulates bf16 by converting to fp32; with neither (an
# AVX2-only CPU) some bf16 kernels do not exist: a bf16 LSTM raises, and its cell is
# `unsupported`. Two CPUs with the same cores and these flags give comparable figures whatever
# model string they report (one VM class of this project reports "Intel(R) Xeon(R) Processor"
# with or without its clock; another reports "AMD EPYC" and has AVX2 only).
PRECISION_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f")


def precision_flags() -> list[str]:
    """This CPU's flags among PRECISION_FLAGS, sorted."""
    return sorted(cpu_flags() & set(PRECISION_FLAGS))


def hardware_class(cpu_only: bool = False) -> str:
    """A readable name for this host's hardware, and the folder name of its committed baseline:
    cores, CPU model and its widest precision flag (`precision_tag`). Baselines are matched on
    `hardware()` (cores, precision flags, GPUs), not on this string.
    `cpu_only`: the class of a CPU cell, whose figures the host's GPUs do not decide."""
    import torch

    if not cpu_only and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0).replace(" ", "-")
        return f"gpu-{torch.cuda.device_count()}x{name}"
    return f"cpu-{os.cpu_count()}core-{cpu_model().replace(' ', '-')}{precision_tag(precision_flags())}"


def precision_tag(flags: list[str]) -> str:
    """The CPU's widest precision feature as a class suffix, so that one CPU model name with other
    flags (an AMD EPYC with AVX2 only, a Zen 4 EPYC with avx512_bf16) names two classes: "-amx",
    "-avx512bf16", "-avx512", or "" (no precision flag: the name every older class had)."""
    for flag, tag in (("amx_bf16", "-amx"), ("avx512_bf16", "-avx512bf16"), ("avx512f", "-avx512")):
        if flag in flags:
            return tag
    return ""


def hardware(cpu_only: bool = False) -> dict[str, Any]:
    """What decides this host's figures (core count, CPU precision flags, GPU models), with the
    CPU model and hardware class for people. Every result's environment carries these keys.
    `cpu_only`: for a cell that computes on the CPU, the GPUs are left out, so that a CPU cell run
    on a GPU host matches the CPU baseline of its cores and flags, not a GPU host's."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_precision_flags": precision_flags(),
        "gpus": [] if cpu_only else [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "hardware_class": hardware_class(cpu_only),
    }


# -- --parallel N: the host cut into slots ---------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    index: int
    cores: tuple[int, ...]
    gpus: tuple[str, ...]


def host_slots(parallel: int, gpus: list[str]) -> list[Slot]:
    """This host cut into `parallel` slots of disjoint cores and GPUs; refused (one line) when it
    has fewer cores, or GPUs where it has any, than slots."""
    cores = bench_cores()
    if parallel < 1:
        raise BenchError(f"--parallel must be at least 1, got {parallel}")
    if parallel > len(cores):
        raise BenchError(f"--parallel {parallel} is more than the {len(cores)} core(s) this host gives bench "
                         "(its CPU affinity, capped by BENCH_CPU_CORES); use at most --parallel "
                         f"{len(cores)}")
    if gpus and parallel > len(gpus):
        raise BenchError(f"--parallel {parallel} is more than the {len(gpus)} GPU(s) of this host; "
                         f"use at most --parallel {len(gpus)}")
    per_core, per_gpu = len(cores) // parallel, len(gpus) // parallel
    return [Slot(i, tuple(cores[i * per_core:(i + 1) * per_core]), tuple(gpus[i * per_gpu:(i + 1) * per_gpu]))
            for i in range(parallel)]
