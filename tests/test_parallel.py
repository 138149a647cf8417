"""`bench run --parallel N`: cells side by side on disjoint, pinned slices of one host.

The e2e test runs two 1-core cells at once on this 2-core machine, and a 2-process cell that
needs both cores after them, for real; the pinning is checked as the runner recorded it from the
cells' own processes (/proc/<pid>/status), and the threads as the worker recorded them.
"""

from __future__ import annotations

import os

import pytest
import yaml

from bench.cli import main
from bench.errors import BenchError
from bench.harness.executors.parallel import _cpu_list, slots_needed
from bench.harness.host import Slot, host_slots
from bench.harness.topology import load_topology
from tests.conftest import run_cli
from tests.test_e2e_run import cells_by_id

CORES = len(os.sched_getaffinity(0))


def test_the_host_is_cut_into_disjoint_slots(monkeypatch):
    monkeypatch.delenv("BENCH_CPU_CORES", raising=False)
    slots = host_slots(CORES, ["0", "1"] * CORES)
    assert len(slots) == CORES
    cores = [c for slot in slots for c in slot.cores]
    assert len(cores) == len(set(cores)) == CORES and set(cores) == os.sched_getaffinity(0)
    gpus = [g for slot in slots for g in slot.gpus]
    assert len(gpus) == 2 * CORES and all(len(slot.gpus) == 2 for slot in slots)


def test_parallel_beyond_the_cores_or_gpus_is_refused(monkeypatch):
    monkeypatch.delenv("BENCH_CPU_CORES", raising=False)
    with pytest.raises(BenchError, match=f"more than the {CORES} core"):
        host_slots(CORES + 1, [])
    if CORES >= 2:
        with pytest.raises(BenchError, match="more than the 1 GPU"):
            host_slots(2, ["0"])
    monkeypatch.setenv("BENCH_CPU_CORES", "1")
    if CORES >= 2:
        with pytest.raises(BenchError, match="more than the 1 core"):
            host_slots(2, [])


def test_a_cell_takes_whole_slots_for_its_ranks():
    one_core = Slot(0, (0,), ())
    assert slots_needed(load_topology("cpu-1proc"), one_core, 2) == 1
    assert slots_needed(load_topology("cpu-ddp2"), one_core, 2) == 2  # never beside another cell
    assert slots_needed(load_topology("cpu-2node"), one_core, 2) == 2
    assert slots_needed(load_topology("cpu-ddp2"), Slot(0, (0, 1), ()), 2) == 1
    assert slots_needed(load_topology("gpu-ddp4"), Slot(0, (0, 1), ("0", "1")), 4) == 2
    assert slots_needed(load_topology("gpu-ddp8"), Slot(0, (0,), ("0",)), 4) == 4  # at most all of them
    assert slots_needed(None, one_core, 2) == 1  # baselines


def test_the_kernel_cpu_list_format_is_read():
    assert _cpu_list("0-2,5") == (0, 1, 2, 5) and _cpu_list("1") == (1,)


def test_parallel_larger_than_the_host_is_one_line_and_launches_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", "--matrix", "smoke", "--workload", "maintenance", "--parallel", str(CORES + 1),
                 "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --parallel") and "core(s)" in err[0], err
    assert not results.exists()


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
@pytest.mark.slow  # --parallel's pinned launch is also run by tests/test_shared_launch.py
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
