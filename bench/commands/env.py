"""`bench env`: what every result records about this machine, to paste into a bug report.

    bench env           # a readable list
    bench env --json    # the same fields as a result's `environment`, as JSON

The fields come from bench.harness.measure.environment(), the function whose output every result stores,
so what this prints is what a run on this machine would record.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.harness.host import PRECISION_FLAGS
from bench.harness.measure import environment
from bench.results import strict_json

NONE = "none"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the fields as JSON (as results record them)")


def run(args: argparse.Namespace) -> int:
    env = environment()
    if args.json:
        print(strict_json(env), end="")
    else:
        print(render(env))
    return 0


def _mib(value: float | None) -> str:
    return "unknown" if value is None else f"{value / 1024:.1f} GiB ({value:,.0f} MiB)"


def _flags(env: dict[str, Any]) -> str:
    have = set(env.get("cpu_precision_flags") or [])
    listed = ", ".join(f"{flag} {'yes' if flag in have else 'no'}" for flag in PRECISION_FLAGS)
    if have & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512_fp16"}:
        meaning = "native bf16/fp16 compute"
    elif "avx512f" in have:
        meaning = "AVX-512 without bf16/fp16 instructions: bf16 cells compute through fp32"
    else:
        meaning = "AVX2 or less: bf16 cells compute through fp32, and a bf16 LSTM has no kernel (unsupported)"
    return f"{listed} ({meaning})"


def _load(env: dict[str, Any]) -> str:
    load, cores = env.get("load_average"), env.get("usable_cores")
    if not load:
        return "unknown"
    text = ", ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)"
    if cores and load[0] > cores:
        text += f"; above the {cores} usable cores: busy, speed figures measured now are contaminated"
    return text


def _gpus(env: dict[str, Any]) -> str:
    gpus = env.get("gpus") or []
    if not gpus:
        return NONE
    memory = env.get("gpu_memory_mb") or []
    return "; ".join(
        f"{i}: {name}" + (f", {_mib(memory[i])}" if i < len(memory) and memory[i] is not None else "")
        for i, name in enumerate(gpus)
    )


def render(env: dict[str, Any]) -> str:
    """The environment as a list to paste into a bug report."""
    packages = env.get("packages") or {}
    gpu = bool(env.get("gpus"))
    cuda = env.get("cuda_version")
    cuda_text = (f"{cuda} (torch build)" if cuda else f"{NONE} (a CPU build of torch)") + ("" if gpu or not cuda else "; no GPU visible")
    lines = [
        f"Host: {env.get('host')} ({env.get('platform')})",
        f"Python: {env.get('python')}",
        f"bench git commit: {env.get('git_commit') or 'unknown'}",
        f"CPU: {env.get('cpu_model')}, {env.get('cpu_count')} cores ({env.get('usable_cores')} usable by this process)",
        f"CPU precision flags: {_flags(env)}",
        f"Memory: {_mib(env.get('memory_total_mb'))}",
        f"Load average: {_load(env)}",
        f"GPUs: {_gpus(env)}",
        f"CUDA: {cuda_text}",
        f"NVIDIA driver: {env.get('cuda_driver') or NONE}",
        f"NCCL: {env.get('nccl_version') or NONE}",
        f"Hardware class: {env.get('hardware_class')}",
        f"torch threads: {env.get('torch_threads')}",
        *(f"{name}: {version}" for name, version in packages.items()),
        f"Date (UTC): {env.get('date_utc')}",
    ]
    return "Copy and paste the lines below into a bug report.\n\n" + "\n".join(f"- {line}" for line in lines)
