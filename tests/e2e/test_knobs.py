"""The tests of tests/unit/test_knobs.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import PROJECT_ROOT, run_cli
from tests.helpers.knobs import write_matrix

ACCUMULATE_SCRIPT = '"""Run by tests/{unit,e2e}/test_knobs.py under `accelerate launch --multi_gpu --num_processes 2` with\nACCELERATE_USE_CPU=1: 8 micro-steps of a small MLP with gradient_accumulation_steps=4, counted by\nbench\'s KnobProbe, either inside `accelerator.accumulate` (as bench\'s training loop does) or\nwithout it (accumulation asked for, not done: an optimizer step and an all-reduce on every micro-step). Each rank\nwrites rank<R>.json into the folder given last."""\n\nfrom __future__ import annotations\n\nimport json\nimport sys\nfrom pathlib import Path\n\nimport torch\nfrom accelerate import Accelerator\n\nfrom bench.harness.measure import KnobProbe\nfrom bench.harness.verify import verify_grad_accum\n\n\ndef main(mode: str, out: Path) -> None:\n    accelerator = Accelerator(gradient_accumulation_steps=4)\n    torch.manual_seed(0)\n    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n    probe = KnobProbe(micro_per_step=4, asked_micro=4)\n    probe.watch_optimizer(optimizer)\n    model, optimizer = accelerator.prepare(model, optimizer)\n    probe.watch_sync(model, 4)\n    for _ in range(8):\n        x = torch.randn(4, 6)\n        if mode == "accumulate":\n            with accelerator.accumulate(model):\n                accelerator.backward(model(x).pow(2).mean())\n                optimizer.step()\n                optimizer.zero_grad()\n            probe.after_micro_step(accelerator, torch.zeros(()), None)\n        else:\n            accelerator.backward(model(x).pow(2).mean())  # no accumulate(): a step (and an all-reduce) each time\n            optimizer.step()\n            optimizer.zero_grad()\n            probe.after_micro_step(accelerator, torch.zeros(()), None)\n    record = probe.record(probe.optimizer_steps, __import__("bench.harness.measure", fromlist=["x"]).StepTimes())\n    verdict = verify_grad_accum(record["grad_accum"])\n    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(\n        {"distributed_type": accelerator.distributed_type.name, "record": record["grad_accum"], "verdict": verdict.reason or None}))\n\n\nif __name__ == "__main__":\n    main(sys.argv[1], Path(sys.argv[2]))\n'


SHARD_SCRIPT = '"""Run by tests/{unit,e2e}/test_knobs.py under `python -m torch.distributed.run --nproc_per_node 2` (gloo, CPU):\nan MLP wrapped by plain torch FSDP2 (`fully_shard`, which really shards on gloo) or by DDP (which\ndoes not), one AdamW step, then bench\'s sharding check (bench.harness.verify.rank_holdings and\nverify_sharding) on what each rank holds. Each rank writes rank<R>.json into the folder given last."""\n\nfrom __future__ import annotations\n\nimport json\nimport sys\nfrom pathlib import Path\n\nimport torch\nimport torch.distributed as dist\n\nfrom bench.harness.verify import rank_holdings, verify_sharding\n\n\ndef main(wrapper: str, out: Path) -> None:\n    dist.init_process_group("gloo")\n    rank, world = dist.get_rank(), dist.get_world_size()\n    torch.manual_seed(0)\n    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))\n    full = sum(p.numel() for p in model.parameters())\n    if wrapper == "fully_shard":\n        from torch.distributed.fsdp import fully_shard\n\n        for layer in model:\n            if isinstance(layer, torch.nn.Linear):\n                fully_shard(layer)\n        fully_shard(model)\n    else:\n        model = torch.nn.parallel.DistributedDataParallel(model)\n    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)\n    model(torch.randn(4, 64)).sum().backward()\n    optimizer.step()\n    mine = rank_holdings(model, optimizer)\n    held = [None] * world\n    dist.all_gather_object(held, mine)\n    verdict = verify_sharding(held, full, 2 * full, {"family": "fsdp", "version": 2, "shards": "params"},\n                              "FSDP" if wrapper == "fully_shard" else "MULTI_CPU")\n    (out / f"rank{rank}.json").write_text(json.dumps({"status": verdict.status, "reason": verdict.reason,\n                                                      "observed": verdict.observed["sharding"]}))\n    dist.destroy_process_group()\n\n\nif __name__ == "__main__":\n    main(sys.argv[1], Path(sys.argv[2]))\n'


@pytest.mark.parametrize("body, words", [
    ({"compile": ["inductr"]}, "unknown compile value 'inductr'; valid choices: none, inductor"),
    ({"grad_accum": [0]}, "grad_accum must be a whole number >= 1"),
    ({"workloads": {"traffic": {"checkpointing": ["on"]}}}, "has no blocks to checkpoint"),
    ({"workloads": {"maintenance": {"checkpointing": ["on"]}}}, "has no blocks to checkpoint"),
    ({"exclude": [{"compile": "inductor"}], "workloads": {"traffic": {"compile": ["inductor"]}}},
     "asks for compile=inductor but the matrix's exclude rules remove every such cell"),
    ({"exclude": [{"optimiser": "sgd"}]}, "exclude rule 1: unknown key(s) optimiser"),
    ({"grad_accum": [3], "workloads": {"traffic": {"params": {"global_batch": 64}}}},
     "global_batch 64 does not divide into 1 process(es) x grad_accum 3"),
])
@pytest.mark.e2e
def test_bad_knob_input_is_one_line_and_exit_2_before_anything_launches(tmp_path, body, words):
    body = {"topologies": ["cpu-1proc"], "workloads": {"traffic": {"baselines": False}}, **body}
    path = write_matrix(tmp_path, body)
    proc = run_cli("run", "--matrix", str(path), "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr
    assert not (tmp_path / "results").exists()  # nothing launched, no run folder


@pytest.mark.e2e
def test_the_dry_run_gives_every_skip_and_expected_unsupported(tmp_path):
    proc = run_cli("run", "--matrix", "knobs", "--dry-run", "--results-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.split() and "__s0" in line.split()[0]}
    assert "expect unsupported (accelerate runs FSDP and DeepSpeed" in lines["traffic-ae__cpu-fsdp2-reshard-x2__fp32__s0"]
    assert "expect unsupported (dynamo runs an RNN eagerly" in lines["maintenance-lstm__cpu-1proc__fp32__compile=inductor__s0"]
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        assert "skip: needs DeepSpeed" in lines["traffic-ae__cpu-zero1-x2__fp32__s0"]


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _two_processes(args: list[str], launcher: list[str], tmp_path: Path) -> list[dict]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    proc = subprocess.run([*launcher, *args, str(out)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def _accelerate_launch(tmp_path: Path) -> list[str]:
    from bench.harness.launch import accelerate_executable, free_port

    base = accelerate_executable()
    base = base if base[-1] == "accelerate.commands.launch" else [*base, "launch"]
    return [*base, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port()),
            _script(tmp_path, "accumulate.py", ACCUMULATE_SCRIPT)]


@pytest.mark.e2e
@pytest.mark.parametrize("wrapped", [True, False])
def test_accumulation_syncs_on_the_last_micro_step_only_and_fails_without_accumulate(tmp_path, wrapped):
    ranks = _two_processes(["accumulate" if wrapped else "plain"], _accelerate_launch(tmp_path), tmp_path)
    assert len(ranks) == 2 and all(r["distributed_type"] == "MULTI_CPU" for r in ranks)
    for rank in ranks:
        record = rank["record"]
        assert record["micro_steps"] == 8
        if wrapped:  # the all-reduce (counted by a DDP comm hook) on micro-steps 4 and 8 only
            assert record["optimizer_steps"] == record["optimizer_stepped"] == 2
            assert record["sync_on_last_only"] is True and rank["verdict"] is None
        else:  # accumulation asked for (N=4) but not done: a step and an all-reduce on every micro-step
            assert record["optimizer_stepped"] == 8 and "8 micro-steps made the optimizer step 8 time(s)" in rank["verdict"]


def _torchrun(tmp_path: Path) -> list[str]:
    from bench.harness.launch import free_port

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
            _script(tmp_path, "shard.py", SHARD_SCRIPT)]


@pytest.mark.e2e
@pytest.mark.parametrize("wrapper, sharded", [("fully_shard", True), ("ddp", False)])
def test_the_sharding_check_sees_fsdp2_sharding_and_refuses_ddp(tmp_path, wrapper, sharded):
    ranks = _two_processes([wrapper], _torchrun(tmp_path), tmp_path)
    assert len(ranks) == 2
    for rank in ranks:
        assert rank["observed"]["sharded"] is sharded
        assert (rank["status"] is None) is sharded
        held = [r["param_elements"] for r in rank["observed"]["per_rank"]]
        full = rank["observed"]["full_param_elements"]
        assert (sum(held) == full) if sharded else (held == [full, full])


@pytest.mark.e2e  # inductor runs the C++ compiler
def test_each_compile_seed_compiles_from_cold_and_counts_only_its_own_graphs(fresh_state, monkeypatch):
    # What the worker wraps around each seed's training (worker.cold_compile): a throwaway compile
    # before it (a probe's) is not counted, and a second seed in the same process compiles its
    # kernels anew, into a fresh cache folder, instead of finding them in inductor's memory.
    from bench.harness.matrix import Cell
    from bench.harness.verify import dynamo_stats
    from bench.harness.worker import cold_compile

    monkeypatch.delenv("BENCH_INDUCTOR_CACHE", raising=False)
    cell = Cell("traffic", "ae", "cpu-1proc", "fp32", 0, compile="inductor")

    def step(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2 + 1

    torch.compile(lambda x: x - 1, backend="eager")(torch.ones(4))  # the probe's throwaway graph
    seen = []
    for _ in range(2):
        knobs: dict = {}
        with cold_compile(cell, knobs):
            torch.compile(step)(torch.ones(8))
        seen.append((knobs["cold_cache_files"], dynamo_stats()["graphs"]))
    assert [graphs for _, graphs in seen] == [1, 1]
    assert all(files > 0 for files, _ in seen), seen



@pytest.mark.e2e
def test_a_weak_cell_on_two_processes_gives_each_its_one_process_batch(tmp_path):
    path = write_matrix(tmp_path, {"topologies": ["cpu-ddp2"], "scaling": ["strong", "weak"], "workloads": {
        "maintenance": {"variants": ["gru"], "baselines": False,
                        "budget": {"max_epochs": 1, "max_seconds": 600, "max_steps": 10},
                        "params": {"target": 0.0, "eval_every_steps": 10}}}})
    proc = run_cli("run", "--matrix", str(path), "--results-dir", str(tmp_path), "--run-id", "r", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "r" / "cells").glob("*.json")}
    strong, weak = cells["maintenance-gru__cpu-ddp2__fp32__s0"], cells["maintenance-gru__cpu-ddp2__fp32__scaling=weak__s0"]
    assert strong["batch"] == {"global": 64, "per_process": 32, "observed_global": 64.0}
    assert weak["batch"] == {"global": 128, "per_process": 64, "observed_global": 128.0}  # 64 each, as one process alone
    assert weak["knobs"]["scaling"]["expected_global"] == 128 and weak["status"] == "converged"
    assert weak["knobs"]["scaling"]["lr"] == pytest.approx(strong["knobs"]["scaling"]["lr"] * 2 ** 0.5)
