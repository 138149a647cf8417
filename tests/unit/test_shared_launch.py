"""The seeds of one cell share one `accelerate launch` (bench/harness/executors/base.py launch_groups).

Real launches on the real maintenance data: the worker builds the Accelerator once and runs the
seeds in turn, each with its own result file. What is promised (docs/reliability.md): a seed's
numbers do not depend on the seeds it shared its launch with; a fault costs only the seeds not yet
done; --resume launches just those; the launch's wall time is split over its seeds.

The tests that start processes are in tests/e2e/test_shared_launch.py."""

from __future__ import annotations

import dataclasses

import pytest

from bench.cells import Cell
from bench.harness.executors.base import PlannedCell, collect_launch, launch_groups, prepare_launch
from bench.harness.launch import Finished
from bench.results import write_json_atomic
from tests.helpers.shared_launch import CELL


def test_cells_share_a_launch_when_they_differ_in_seed_only():
    def cell(seed: int, **changes) -> PlannedCell:
        return PlannedCell(dataclasses.replace(Cell("maintenance", "gru", "cpu-1proc", "fp32", seed), **changes), None, None)

    items = [cell(0), cell(1), cell(0, precision="bf16"), cell(2), cell(0, compile="inductor"),
             cell(1, compile="inductor"), cell(0, kind="baseline"), cell(1, kind="baseline"), cell(3, timeout_s=5),
             cell(0, precision="fp16"), cell(1, precision="fp16"),
             cell(0, topology="gpu-1", precision="fp16"), cell(1, topology="gpu-1", precision="fp16")]
    groups = [[item.cell.id for item in group] for group in launch_groups(items)]
    assert groups == [
        [f"{CELL}__s0", f"{CELL}__s1", f"{CELL}__s2"],
        ["maintenance-gru__cpu-1proc__bf16__s0"],
        # Compile cells each pay a cold compile; baselines have no accelerate to share.
        ["maintenance-gru__cpu-1proc__fp32__compile=inductor__s0"], ["maintenance-gru__cpu-1proc__fp32__compile=inductor__s1"],
        ["maintenance__baselines__s0"], ["maintenance__baselines__s1"],
        [f"{CELL}__s3"],  # another definition (its timeout) is another launch
        # fp16 on a CPU: no loss scaler, refused as unsupported before any seed trains: one launch.
        ["maintenance-gru__cpu-1proc__fp16__s0", "maintenance-gru__cpu-1proc__fp16__s1"],
        # fp16 on a GPU (and fp8): accelerate's loss scaler outlives free_memory, so each seed gets its own.
        ["maintenance-gru__gpu-1__fp16__s0"], ["maintenance-gru__gpu-1__fp16__s1"],
    ]


def test_a_shared_launch_times_out_after_every_seeds_timeout_and_splits_its_wall_time(tmp_path):
    cells = [Cell("maintenance", "gru", "cpu-1proc", "fp32", seed, timeout_s=20) for seed in range(3)]
    launch = prepare_launch(cells, tmp_path)
    assert launch.timeout_s == 60  # 20 s per seed, 3 seeds
    done = {"schema_version": 2, "cell": cells[0].to_dict(), "status": "not_converged", "reason": "budget",
            "launch": {"seeds": 3, "own_s": 10.0}}
    write_json_atomic(launch.files[0].out, done)
    results = collect_launch(launch, Finished([-9], True, False, 61.0), None)
    assert results[0]["status"] == "not_converged" and results[0]["cell_wall_s"] == pytest.approx(10 + 51 / 3, abs=1e-3)
    assert results[0]["launch"] == {"seeds": 3, "own_s": 10.0, "wall_s": 61.0, "fixed_share_s": 17.0,
                                    "timeout_s": 60, "log": f"{CELL}__seeds-0-1-2.log"}
    for result in results[1:]:
        assert result["status"] == "failed" and result["cell_wall_s"] == pytest.approx(17.0)
        assert result["reason"].startswith("timed out after 60 s, 20 s for each of its 3 seeds")
    assert sum(r["cell_wall_s"] for r in results) == pytest.approx(61.0, abs=1e-3)

