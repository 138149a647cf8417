"""The tests of tests/unit/test_parallel.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers.parallel import CORES
from tests.helpers.runs import cells_by_id


def _matrix(tmp_path) -> str:
    spec = {
        "name": "par", "timeout_s": 900, "precisions": ["fp32"],
        "workloads": {
            "maintenance": {"variants": ["gru"], "baselines": False, "topologies": ["cpu-1proc"],
                            "precisions": ["fp32", "bf16"],
                            "budget": {"max_epochs": 1, "max_seconds": 600, "max_steps": 20},
                            "params": {"target": 0.0, "eval_every_steps": 10}},
            "traffic": {"variants": ["ae"], "baselines": False, "topologies": ["cpu-ddp2"],
                        "budget": {"max_epochs": 1, "max_seconds": 600, "max_steps": 20}},
        },
    }
    path = tmp_path / "par.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.mark.e2e
@pytest.mark.slow  # --parallel's pinned launch is also run by tests/{unit,e2e}/test_shared_launch.py
@pytest.mark.skipif(CORES < 2, reason="needs 2 cores for two 1-core cells")
def test_two_one_core_cells_run_side_by_side_pinned_and_give_the_sequential_numbers(tmp_path):
    matrix = _matrix(tmp_path)
    env = {"BENCH_CPU_CORES": "2"}
    proc = run_cli("run", "--matrix", matrix, "--parallel", "2", "--results-dir", str(tmp_path), "--run-id", "p2",
                   env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = cells_by_id(tmp_path / "p2")
    fp32, bf16 = cells["maintenance-gru__cpu-1proc__fp32__s0"], cells["maintenance-gru__cpu-1proc__bf16__s0"]
    ddp = cells["traffic-ae__cpu-ddp2__fp32__s0"]
    assert fp32["status"] == "converged" and bf16["status"] == "unsupported"  # a GRU under CPU bf16 stays fp32
    assert ddp["status"] in ("converged", "not_converged") and ddp["observed"]["num_processes"] == 2
    assert ddp["observed"]["distributed_type"] == "MULTI_CPU"
    # Disjoint cores, each cell's workers really on its own core, one thread each, side by side.
    assert not set(fp32["placement"]["cores"]) & set(bf16["placement"]["cores"])
    for result in (fp32, bf16):
        placement = result["placement"]
        assert len(placement["cores"]) == 1 and placement["threads_per_rank"] == 1
        assert placement["observed_affinity"] == [placement["cores"]] and placement["pinned"] is True
    assert fp32["observed"]["torch_threads"] == 1
    assert fp32["placement"]["beside"] == [bf16["cell"]["id"]] and bf16["placement"]["beside"] == [fp32["cell"]["id"]]
    # The 2-process cell needs both cores: it ran alone, on both, a thread per rank.
    assert ddp["placement"]["beside"] == [] and len(ddp["placement"]["cores"]) == 2
    assert ddp["placement"]["pinned"] is True and ddp["observed"]["torch_threads"] == 1
    # The same cell, same seed, fp32 and one thread, run alone: the same numbers.
    alone = run_cli("run", "--matrix", matrix, "--workload", "maintenance", "--precision", "fp32",
                    "--results-dir", str(tmp_path), "--run-id", "p1", env={"BENCH_CPU_CORES": "1"})
    assert alone.returncode == 0, alone.stderr[-2000:]
    [sequential] = cells_by_id(tmp_path / "p1").values()
    assert "placement" not in sequential  # the default executor is unchanged
    assert sequential["observed"]["torch_threads"] == 1
    assert (sequential["metrics"], sequential["curve"][-1]["f1"]) == (fp32["metrics"], fp32["curve"][-1]["f1"])

