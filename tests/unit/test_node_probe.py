"""Planning a SLURM run for its partition's nodes from a host that has none of their GPUs:
declared (--gpus, --gpu-capability) or probed (--probe-node, bench/harness/executors/node_probe.py).

What the probe job asks sbatch for is read from the script submitit itself renders (nothing is
submitted). The tests that start processes (a stand-in `sinfo`, the probe job itself through
submitit's LocalExecutor) are in tests/e2e/test_executor_slurm.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.cells import Cell
from bench.commands.nodes import planned_nodes
from bench.errors import BenchError
from bench.harness.config import ExecutorOptions
from bench.harness.executors.node_probe import (
    gpus_in_gres,
    probe_job_parameters,
    probed_node,
)
from bench.harness.executors.slurm import sbatch_script
from bench.harness.host import Host
from bench.harness.matrix import skip_reason
from bench.harness.topology import load_topology
from bench.run_meta import RunMeta

pytest.importorskip("submitit")

SLURM = ExecutorOptions(type="slurm", partition="gpu")


def _args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"gpus": None, "gpu_capability": None, "probe_node": False, **given})


def test_the_gpus_per_node_are_read_from_sinfos_gres_column():
    assert gpus_in_gres(["gpu:h100:8(S:0-1)"]) == 8
    assert gpus_in_gres(["gpu:8", "gpu:a100:4(S:0)"]) == 4  # the smallest node: the plan must fit every node
    assert gpus_in_gres(["gpu:a100:2,gpu:v100:2(S:0)"]) == 4  # two GPU GRES on one node
    assert gpus_in_gres(["(null)"]) == 0 and gpus_in_gres(["shard:8"]) == 0
    assert gpus_in_gres([]) is None


def test_the_probe_job_asks_for_one_whole_node_of_the_partition_with_its_gpus():
    options = ExecutorOptions(type="slurm", partition="gpu", account="proj", qos="high", cpus_per_rank=8,
                              sbatch={"constraint": "h100"})
    script = sbatch_script(probe_job_parameters(options, 8), Path("/shared/run/slurm/probe"))
    lines = {line.strip() for line in script.splitlines() if line.startswith("#SBATCH")}
    assert {"#SBATCH --nodes=1", "#SBATCH --gpus-per-node=8", "#SBATCH --partition=gpu", "#SBATCH --account=proj",
            "#SBATCH --qos=high", "#SBATCH --constraint=h100", "#SBATCH --exclusive", "#SBATCH --time=15",
            "#SBATCH --cpus-per-task=64"} <= lines
    cpu_only = sbatch_script(probe_job_parameters(ExecutorOptions(type="slurm"), 0), Path("/shared/run/slurm/probe"))
    assert "gpus" not in cpu_only


def _facts(gpus: int, capability: list[int] | None, bf16: bool) -> dict:
    return {"host": {"gpus": gpus, "bf16_gpu": bf16, "fp8_backend": "torchao", "gpu_capability": capability},
            "environment": {"host": "gpu017", "peak_flops": {"method": "matmul"}, "measured_in_job": "4242"}}


def test_a_gpu_less_host_plans_the_gpu_cells_for_what_the_probed_node_has():
    cell, topology = Cell("traffic", "ae", "gpu-ddp8", "bf16", 0), load_topology("gpu-ddp8")
    this_host = Host(gpus=0, bf16_gpu=False, fp8_backend=None)
    assert "needs 8 GPU(s), found 0" in skip_reason(cell, topology, this_host)
    node = probed_node(_facts(8, [9, 0], True), 8, "4242")
    assert skip_reason(cell, topology, node.host) is None
    assert node.host == Host(8, True, "torchao", (9, 0))
    assert node.planned_for() == {**node.host.record(), "probed_on": "gpu017", "probe_job": "4242"}
    older = probed_node(_facts(8, [7, 0], False), 8, "4243")  # a V100 node: bf16 only emulated
    assert "needs a GPU with native bf16" in skip_reason(cell, topology, older.host)


def test_a_node_with_fewer_gpus_than_asked_for_is_one_line():
    with pytest.raises(BenchError, match="saw 4 GPU\\(s\\), not the 8 asked for"):
        probed_node(_facts(4, [9, 0], True), 8, "4242")
    # more than asked (a node whose GPUs a job's cgroup does not hide): planned for what a job gets
    assert probed_node(_facts(8, [9, 0], True), 2, "4242").host.gpus == 2


def test_probe_node_goes_with_slurm_and_not_with_a_declared_capability_or_a_resume(tmp_path):
    folder = tmp_path / "probe"
    with pytest.raises(BenchError, match="goes with --executor slurm"):
        planned_nodes(_args(probe_node=True), None, folder)
    with pytest.raises(BenchError, match="--gpu-capability goes with --gpus alone"):
        planned_nodes(_args(probe_node=True, gpus=8, gpu_capability="9.0"), SLURM, folder)
    with pytest.raises(BenchError, match="--resume plans for the nodes its run was planned for"):
        planned_nodes(_args(probe_node=True), SLURM, folder, resuming=True, recorded=Host.declared(8, (9, 0)).record())
    with pytest.raises(BenchError, match="planned_for is damaged"):
        planned_nodes(_args(), SLURM, folder, resuming=True, recorded={"gpus": 8})
    with pytest.raises(BenchError, match="planned for the host it runs on"):  # a resume of a run planned here
        planned_nodes(_args(probe_node=True), SLURM, folder, resuming=True)
    with pytest.raises(BenchError, match="--gpus must be 0 or more"):
        planned_nodes(_args(probe_node=True, gpus=-1), SLURM, folder)
    assert not folder.exists()  # refused before any job was submitted


def _recorded(tmp_path: Path) -> dict:
    (tmp_path / "run.json").write_text(json.dumps({"planned_for": {"gpus": 8, "bf16_gpu": True, "fp8_backend": None,
                                                                    "gpu_capability": [9, 0], "probed_on": "gpu017",
                                                                    "probe_job": "4242"}}))
    return RunMeta.read(tmp_path).planned_for


def test_a_resumed_run_keeps_the_nodes_it_was_planned_for(tmp_path):
    recorded = _recorded(tmp_path)
    nodes = planned_nodes(_args(), None, tmp_path / "probe", resuming=True, recorded=recorded)
    assert nodes.host == Host(8, True, None, (9, 0)) and nodes.planned_for == recorded
    assert "probed on gpu017 in job 4242" in nodes.describe()
    assert planned_nodes(_args(), None, tmp_path / "probe", resuming=True) is None  # planned for its host
    assert planned_nodes(_args(), None, tmp_path / "probe") is None


def test_a_resume_cannot_declare_other_nodes_than_its_run_was_planned_for(tmp_path):
    recorded = _recorded(tmp_path)
    same = planned_nodes(_args(gpus=8, gpu_capability="9.0"), SLURM, tmp_path, resuming=True, recorded=recorded)
    assert same.planned_for == recorded  # declaring the same nodes again changes nothing
    with pytest.raises(BenchError, match="other nodes than its run was: planned for nodes of 8 GPU"):
        planned_nodes(_args(gpus=2), SLURM, tmp_path, resuming=True, recorded=recorded)
    with pytest.raises(BenchError, match="other nodes than its run was: planned for the host it runs on"):
        planned_nodes(_args(gpus=2), SLURM, tmp_path, resuming=True)


def test_declared_nodes_say_they_were_declared():
    nodes = planned_nodes(_args(gpus=8, gpu_capability="9.0"), SLURM, Path("unused"))
    assert nodes.host == Host.declared(8, (9, 0)) and nodes.environment is None
    assert nodes.describe().endswith("(declared)") and "compute capability 9.0" in nodes.describe()
    with pytest.raises(BenchError, match="goes with --executor slurm"):
        planned_nodes(_args(gpus=8), None, Path("unused"))
