"""`bench run --parallel N`: cells side by side on disjoint, pinned slices of one host.

The e2e test runs two 1-core cells at once on this 2-core machine, and a 2-process cell that
needs both cores after them, for real; the pinning is checked as the runner recorded it from the
cells' own processes (/proc/<pid>/status), and the threads as the worker recorded them.

The tests that start processes are in tests/e2e/test_parallel.py."""

from __future__ import annotations

import os

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.harness.executors.parallel import _cpu_list, slots_needed
from bench.harness.host import Slot, host_slots
from bench.harness.topology import load_topology
from tests.helpers.parallel import CORES


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

