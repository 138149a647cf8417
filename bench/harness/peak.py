"""Peak FLOP/s of the host, the denominator of MFU (model FLOPs utilisation).

Two kinds of peak, never mixed:
- measured: the best rate of a timed large square matmul per dtype, on the CPU (all of torch's
  threads, i.e. the whole host, which is what the ranks of a CPU cell share) and on CUDA device 0.
  This is what the hardware delivers to PyTorch here, so MFU against it reads "share of what a
  plain matmul gets".
- datasheet: the vendor's dense (no sparsity) tensor-core figure for known GPUs. Higher than any
  measured peak; MFU against it is the number papers quote.

The measurement is recorded once per run in run.json's environment (bench/harness/runner.py) so that a
report made later, or elsewhere, divides by the peak of the machine that ran the cells.
"""

from __future__ import annotations

import re
import time
from typing import Any

# Dense peaks in FLOP/s from the vendors' datasheets (sparsity excluded). fp32 is the non-tensor-
# core rate, which is what torch uses for fp32 matmuls unless TF32 is switched on; tf32 is the dense
# TF32 tensor-core rate (half the datasheet's sparse figure), listed where known; a GPU without TF32
# (before Ampere) has none. Matched in torch.cuda.get_device_name() as a whole model name: not
# inside a longer word, and not followed by a digit ("NVIDIA L40" is no L4, "A100" no A10; "A10G"
# is an A10). First match wins, so specific names come first.
DATASHEET_PEAKS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("H100 PCIe", "NVIDIA H100 PCIe", {"fp32": 51.2e12, "tf32": 378e12, "bf16": 756e12, "fp16": 756e12, "fp8": 1513e12}),
    ("H100 NVL", "NVIDIA H100 NVL", {"fp32": 60e12, "bf16": 835e12, "fp16": 835e12, "fp8": 1671e12}),
    ("H100", "NVIDIA H100 SXM", {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12}),
    ("H200", "NVIDIA H200 SXM", {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12}),
    ("A100", "NVIDIA A100", {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12}),
    ("L40S", "NVIDIA L40S", {"fp32": 91.6e12, "tf32": 183e12, "bf16": 362.05e12, "fp16": 362.05e12, "fp8": 733e12}),
    ("L4", "NVIDIA L4", {"fp32": 30.3e12, "tf32": 60e12, "bf16": 121e12, "fp16": 121e12, "fp8": 242.5e12}),
    ("A10", "NVIDIA A10", {"fp32": 31.2e12, "tf32": 62.5e12, "bf16": 125e12, "fp16": 125e12}),
    ("V100", "NVIDIA V100", {"fp32": 15.7e12, "fp16": 125e12}),
    ("T4", "NVIDIA T4", {"fp32": 8.1e12, "fp16": 65e12}),
)

CPU_DTYPES = ("fp32", "bf16")
CUDA_DTYPES = ("fp32", "bf16", "fp16")
TF32_MIN_CAPABILITY = (8, 0)
"""tf32 is measured only on an NVIDIA GPU of compute capability 8.0 (Ampere) or newer. Elsewhere (the
CPU, older or ROCm GPUs) the --json output has no tf32 entry at all: absent means not applicable, as
fp16 is absent on the CPU. fp32 is measured with TF32 off (strict), tf32 with it on."""


def cuda_dtypes(capability: tuple[int, int] | None) -> tuple[str, ...]:
    """The dtypes measured on a GPU of this NVIDIA compute capability (None: not NVIDIA's numbering)."""
    return CUDA_DTYPES + (("tf32",) if capability is not None and capability >= TF32_MIN_CAPABILITY else ())


def datasheet_peak(device_name: str) -> tuple[str, dict[str, float]] | None:
    """(datasheet name, {dtype: FLOP/s}) for a known GPU name, else None."""
    for key, label, peaks in DATASHEET_PEAKS:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![0-9])", device_name, flags=re.IGNORECASE):
            return label, dict(peaks)
    return None


def matmul_flops(dtype_name: str, device: str, size: int, seconds: float) -> float:
    """Best FLOP/s of `size`x`size` matmuls in `dtype_name` on `device`, timed for about `seconds`.

    The best repetition, not the mean, estimates the peak: on a shared host the slow repetitions
    measure the neighbours, not the hardware.
    """
    import torch

    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"  # fp32 strict, tf32 on tensor cores
    try:
        return _best_matmul_rate(dtype, device, size, seconds)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _best_matmul_rate(dtype: object, device: str, size: int, seconds: float) -> float:
    import torch

    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    torch.matmul(a, b)  # warm-up: kernel selection, allocator, thread pool start
    sync()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    repeats = 0
    while repeats < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
        repeats += 1
        if repeats >= 50:
            break
    del a, b
    if device == "cuda":
        torch.cuda.empty_cache()  # the runner measures this in-process: hand the memory back to the cells
    return 2.0 * size**3 / best


def measure_peak_flops(seconds_per_dtype: float = 0.3, cpu_size: int = 1024, cuda_size: int = 8192) -> dict[str, Any]:
    """Measured (and, for known GPUs, datasheet) peak FLOP/s per device and dtype.

    About `seconds_per_dtype` per dtype and device.
    """
    import torch

    from bench.harness.host import cpu_model

    peaks: dict[str, Any] = {
        "method": f"best of repeated square matmuls (CPU {cpu_size}x{cpu_size}, CUDA {cuda_size}x{cuda_size}), 2*n^3 FLOPs each",
        "cpu": {
            "name": cpu_model(),
            "threads": torch.get_num_threads(),
            "measured": {d: matmul_flops(d, "cpu", cpu_size, seconds_per_dtype) for d in CPU_DTYPES},
        },
    }
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        capability = torch.cuda.get_device_capability(0) if torch.version.hip is None else None
        entry: dict[str, Any] = {
            "name": name,
            "measured": {d: matmul_flops(d, "cuda", cuda_size, seconds_per_dtype) for d in cuda_dtypes(capability)},
        }
        sheet = datasheet_peak(name)
        if sheet:
            entry["datasheet_name"], entry["datasheet"] = sheet
        peaks["cuda"] = entry
    return peaks


def measure_peak_flops_apart(timeout_s: float = 300.0) -> tuple[str, dict[str, Any]]:
    """This host's hardware class and `measure_peak_flops`, from a short-lived child process, so
    that the caller never imports torch nor holds a CUDA context: `bench report` stays light, and
    on a GPU in exclusive-process mode a context held by the long-lived runner would make every
    cell's rank 0 fail to get the device."""
    measured = measure_host_apart(timeout_s)
    return measured["hardware_class"], measured["peak_flops"]


def measure_host_apart(timeout_s: float = 300.0) -> dict[str, Any]:
    """The child's whole answer: hardware class, `hardware` (cores, precision flags, GPUs), the
    1/5/15-minute load averages and usable cores while it measured, and the peaks."""
    import json
    import subprocess
    import sys

    from bench.errors import BenchError

    done = subprocess.run([sys.executable, "-m", "bench.harness.peak", "--json"],
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise BenchError(f"measuring the peak FLOP/s failed: {last[0]}")
    return json.loads(done.stdout)


def write_run_record(path: str, command: str) -> None:
    """run.json for cells run outside `bench run` (scripts/slurm-multinode.sbatch): this host's
    environment and measured peak, so that the report can compute MFU. An existing file is kept."""
    from pathlib import Path

    from bench.harness.measure import environment
    from bench.run_meta import RunMeta

    target = Path(path)
    if target.exists():
        return
    RunMeta(command=command, environment={**environment(), "peak_flops": measure_peak_flops()}).write_file(target)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.harness.peak", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print this host's hardware class and measured peaks as JSON")
    parser.add_argument("--run-json", metavar="PATH", help="write run.json (environment and peaks) there unless it exists")
    parser.add_argument("--command", default="", help="the command to record in run.json")
    args = parser.parse_args(argv)
    if args.run_json:
        write_run_record(args.run_json, args.command)
    else:
        import os

        from bench.harness.host import hardware, hardware_class, usable_cores

        load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        measured = {"hardware_class": hardware_class(), "hardware": hardware(), "load_average": load,
                    "usable_cores": usable_cores(), "peak_flops": measure_peak_flops()}
        print(json.dumps(measured) if args.json else measured)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
