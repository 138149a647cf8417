"""`bench doctor`: the facts every verdict on this host rests on, asserted, then recorded.

Run it first on a new machine, above all on the first GPU (docs/gpu.md). Each check passes, fails
or is skipped with its reason (a check that needs a GPU, on a CPU host); every measured fact goes
into the record. The checks:

1. peaks: the measured matmul peak of each dtype is plausible (a CPU between 1 GFLOP/s and 20
   TFLOP/s; a GPU between 30% and 110% of its datasheet where the datasheet knows it).
2. tf32: on a GPU of compute capability 8.0+, switching TF32 on changes an fp32 matmul's result
   (the switch takes effect); elsewhere skipped.
3. autocast: the dtype autocast gives a Linear and a GRU/LSTM, per low precision and device; a
   Linear must compute in the precision asked for, and the recurrent layers' dtype must agree
   with what the dry run predicts for such cells (bench.harness.matrix.expected_verdict).
4. fully_shard: FSDP2 `fully_shard` on 2 processes keeps an LSTM's losses equal to a plain one over
   5 steps (gloo on the CPU, NCCL with 2+ GPUs).
5. cells: one cell of each precision and knob on this host's topologies through a real `bench run`,
   each coming out as the dry run predicts (trained where it should run, `unsupported` where a
   fallback is known), none failed or invalid.
6. no CUDA context: the process that planned and ran the cells (this one) never initialised CUDA.

The GPU-facing probes (2, 3) run in a short-lived child process, so that check 6 can hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.paths import PROJECT_ROOT

PASS, FAIL, SKIP = "pass", "fail", "skip"
CPU_PEAK_BOUNDS = (1e9, 20e12)
DATASHEET_BOUNDS = (0.3, 1.1)


@dataclass
class Check:
    name: str
    status: str
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


def check_peaks(peaks: dict[str, Any]) -> Check:
    """Each measured peak within plausible bounds (datasheet-relative on a known GPU)."""
    problems, facts = [], {}
    for device, entry in peaks.items():
        if not isinstance(entry, dict) or "measured" not in entry:
            continue
        sheet = entry.get("datasheet") or {}
        for dtype, value in entry["measured"].items():
            facts[f"{device}_{dtype}_flops"] = value
            if device == "cpu" and not CPU_PEAK_BOUNDS[0] <= value <= CPU_PEAK_BOUNDS[1]:
                problems.append(f"cpu {dtype} {value:.3g} FLOP/s outside {CPU_PEAK_BOUNDS[0]:.0e}-{CPU_PEAK_BOUNDS[1]:.0e}")
            elif device != "cpu" and dtype in sheet:
                share = value / sheet[dtype]
                facts[f"{device}_{dtype}_of_datasheet"] = share
                if not DATASHEET_BOUNDS[0] <= share <= DATASHEET_BOUNDS[1]:
                    problems.append(f"{device} {dtype} at {share:.0%} of its datasheet peak")
    if problems:
        return Check("peaks", FAIL, "; ".join(problems), facts)
    shown = ", ".join(f"{k.removesuffix('_flops').replace('_', ' ')} {v / 1e9:,.0f} GFLOP/s"
                      for k, v in facts.items() if k.endswith("_flops"))
    return Check("peaks", PASS, f"plausible: {shown}", facts)


PROBE = """
import json, torch
from bench.harness.host import precision_flags
out = {"cuda": torch.cuda.is_available(), "cpu_flags": precision_flags()}
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
for device in devices:
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if device == "cpu" and name == "fp16":
            continue
        linear = torch.nn.Linear(8, 8).to(device)
        rnns = {"gru": torch.nn.GRU(8, 8, batch_first=True).to(device), "lstm": torch.nn.LSTM(8, 8, batch_first=True).to(device)}
        x = torch.randn(4, 5, 8, device=device)
        with torch.autocast(device_type=device, dtype=dtype):
            out[f"{device}_{name}_linear"] = str(linear(x).dtype).replace("torch.", "")
            for key, rnn in rnns.items():
                try:
                    out[f"{device}_{name}_{key}"] = str(rnn(x)[0].dtype).replace("torch.", "")
                except RuntimeError as exc:
                    out[f"{device}_{name}_{key}"] = "error: " + str(exc).splitlines()[0][:120]
if torch.cuda.is_available() and torch.cuda.get_device_capability(0) >= (8, 0):
    a, b = torch.randn(1024, 1024, device="cuda"), torch.randn(1024, 1024, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    strict = a @ b
    torch.backends.cuda.matmul.allow_tf32 = True
    fast = a @ b
    torch.backends.cuda.matmul.allow_tf32 = False
    out["tf32_max_difference"] = float((strict - fast).abs().max())
print(json.dumps(out))
"""


def probe_apart(timeout_s: float = 300.0) -> dict[str, Any]:
    """Autocast dtypes and the TF32 effect, measured in a short-lived child process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_tf32(probe: dict[str, Any]) -> Check:
    if "tf32_max_difference" not in probe:
        return Check("tf32", SKIP, "needs an NVIDIA GPU of compute capability 8.0+ (TF32 does nothing elsewhere)")
    diff = probe["tf32_max_difference"]
    status = PASS if diff > 0 else FAIL
    return Check("tf32", status, f"an fp32 matmul differs by up to {diff:.3g} with TF32 on: the switch "
                 + ("takes effect" if diff > 0 else "does nothing"), {"tf32_max_difference": diff})


def check_autocast(probe: dict[str, Any], predicted_rnn_refusal_on_cuda: bool) -> Check:
    """A Linear computes in the precision asked for; a recurrent layer's dtype agrees with the dry
    run's prediction (on CUDA under bf16: fp16, refused; on the CPU: recorded)."""
    if "error" in probe:
        return Check("autocast", FAIL, f"the probe failed: {probe['error']}")
    facts = {k: v for k, v in probe.items() if k.split("_")[0] in ("cpu", "cuda") and isinstance(v, str)}
    problems = [f"{key}: {value}" for key, value in facts.items()
                if key.endswith("_linear") and value != {"bf16": "bfloat16", "fp16": "float16"}[key.split("_")[1]]]
    if probe.get("cuda"):
        rnn_fp16 = all(facts.get(f"cuda_bf16_{k}") == "float16" for k in ("gru", "lstm"))
        if rnn_fp16 != predicted_rnn_refusal_on_cuda:
            problems.append(f"CUDA bf16 GRU/LSTM compute {facts.get('cuda_bf16_gru')}/{facts.get('cuda_bf16_lstm')}, "
                            f"but the dry run predicts {'a refusal' if predicted_rnn_refusal_on_cuda else 'a run'}")
    if problems:
        return Check("autocast", FAIL, "; ".join(problems), facts)
    return Check("autocast", PASS, ", ".join(f"{k} {v}" for k, v in sorted(facts.items())), facts)


SHARD = """
import json, os, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
cuda = torch.cuda.is_available() and torch.cuda.device_count() >= 2
dist.init_process_group("nccl" if cuda else "gloo")
device = torch.device("cuda", dist.get_rank()) if cuda else torch.device("cpu")
if cuda:
    torch.cuda.set_device(device)
torch.manual_seed(0)
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.head = torch.nn.LSTM(6, 16, batch_first=True), torch.nn.Linear(16, 1)
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])
plain, sharded = Model().to(device), Model().to(device)
sharded.load_state_dict(plain.state_dict())
fully_shard(sharded.rnn)
fully_shard(sharded)
opt_plain, opt_sharded = torch.optim.SGD(plain.parameters(), lr=0.1), torch.optim.SGD(sharded.parameters(), lr=0.1)
gen = torch.Generator().manual_seed(1)
diffs = []
for _ in range(5):
    x, y = torch.randn(8, 5, 6, generator=gen).to(device), torch.randn(8, 1, generator=gen).to(device)
    losses = []
    for model, opt in ((plain, opt_plain), (sharded, opt_sharded)):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    diffs.append(abs(losses[0] - losses[1]))
if dist.get_rank() == 0:
    print(json.dumps({"backend": dist.get_backend(), "diffs": diffs}))
dist.destroy_process_group()
"""


def check_fully_shard(timeout_s: float = 300.0) -> Check:
    """FSDP2 on two processes keeps an LSTM's losses equal to a plain one (5 steps, same data)."""
    from bench.harness.launch import free_port

    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "shard.py"
        script.write_text(SHARD)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(free_port()), str(script)],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        return Check("fully_shard", FAIL, f"2-process FSDP2 run failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    record = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    worst = max(record["diffs"])
    status = PASS if worst <= 1e-5 else FAIL
    return Check("fully_shard", status, f"LSTM losses of FSDP2 ({record['backend']}, 2 processes) and a plain model "
                 f"differ by at most {worst:.2g} over 5 steps", record)


def doctor_matrix(folder: Path, gpus: int) -> Path:
    """One cell of each precision and knob on this host's topologies (tiny budgets)."""
    on_gpu = gpus >= 1
    one = "gpu-1" if on_gpu else "cpu-1proc"
    two = ("gpu-ddp2" if gpus >= 2 else None) if on_gpu else "cpu-ddp2"
    precisions = ["fp32", "bf16", "fp16"] + (["tf32", "fp8"] if on_gpu else [])
    traffic = {"variants": ["ae"], "baselines": False, "budget": {"max_steps": 30, "max_seconds": 300},
               "topologies": [t for t in (one, two) if t], "precisions": precisions,
               "compile": ["none", "inductor"], "grad_accum": [1, 2],
               "exclude": [{"compile": "inductor", "grad_accum": 2}, {"compile": "inductor", "precision": ["fp16", "tf32", "fp8"]},
                           {"grad_accum": 2, "precision": ["bf16", "fp16", "tf32", "fp8"]}]}
    spec = {"name": "doctor", "seeds": 1, "timeout_s": 600, "precisions": precisions,
            "topologies": [t for t in (one, two) if t], "workloads": {
                "traffic": traffic,
                "maintenance": {"variants": ["lstm"], "baselines": False, "precisions": ["bf16"], "topologies": [one],
                                "budget": {"max_steps": 20, "max_seconds": 300}}}}
    if gpus >= 2:
        spec["workloads"]["traffic"]["topologies"] += ["gpu-fsdp2-reshard-x2", "gpu-zero2-x2", "gpu-zero3-x2"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "doctor.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def check_cells(folder: Path, gpus: int, timeout_s: float = 1800.0) -> Check:
    """Every doctor cell comes out as the dry run predicts; none failed or invalid."""
    from bench.harness.matrix import expected_verdict, load_matrix
    from bench.harness.topology import load_topology
    from bench.results import load_run

    matrix = doctor_matrix(folder, gpus)
    done = subprocess.run([sys.executable, "-m", "bench", "run", "--matrix", str(matrix), "--run-id", "cells",
                           "--results-dir", str(folder)], capture_output=True, text=True, timeout=timeout_s)
    try:
        results = {r.cell.id: r for r in load_run(folder / "cells")}
    except Exception as exc:  # noqa: BLE001 - any unreadable run is the failure to report
        return Check("cells", FAIL, f"`bench run` exited {done.returncode} with no readable results: {exc}")
    problems, facts = [], {}
    for cell in load_matrix(str(matrix)):
        result = results.get(cell.id)
        if result is None:
            problems.append(f"{cell.id}: no result")
            continue
        facts[cell.id] = f"{result.status}: {result.reason.splitlines()[0][:100] if result.reason else ''}"
        predicted = expected_verdict(cell, load_topology(cell.topology))
        status = result.status
        if status in ("failed", "invalid"):
            problems.append(f"{cell.id}: {status} ({(result.reason.splitlines() or ['no reason given'])[0][:120]})")
        elif predicted and status != predicted.split()[0] and status != "skipped":
            problems.append(f"{cell.id}: {status}, where the dry run predicts {predicted}")
        elif not predicted and status not in ("converged", "not_converged", "skipped", "unsupported"):
            problems.append(f"{cell.id}: {status}")
    ran = sum(r.trained for r in results.values())
    if problems:
        return Check("cells", FAIL, "; ".join(problems), facts)
    return Check("cells", PASS, f"{len(results)} cells as predicted ({ran} trained, the others refused or skipped "
                 "with their reasons)", facts)


def check_no_cuda_context() -> Check:
    import torch

    if torch.cuda.is_initialized():
        return Check("no_cuda_context", FAIL, "this process, which planned and ran the cells, initialised CUDA")
    return Check("no_cuda_context", PASS, "this process, which planned and ran the cells, holds no CUDA context")


def as_record(checks: list[Check], environment: dict[str, Any]) -> dict[str, Any]:
    return {"environment": environment, "passed": all(c.status != FAIL for c in checks),
            "checks": [asdict(c) for c in checks]}
