"""`bench run --executor slurm` without a cluster.

The jobs' resources are read from the sbatch script submitit itself generates for them (nothing
submitted). Real runs go through submitit's own LocalExecutor (`--cluster local`): the same
job function, job records, progress, cancel and re-attach code as on a cluster, with real
processes; only sbatch/sacct are replaced by submitit's local controller. No mocks.

The tests that start processes are in tests/e2e/test_executor_slurm.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cells import Cell
from bench.cli import main
from bench.harness.config import ExecutorOptions, executor_options
from bench.harness.executors.slurm import job_parameters, sbatch_script
from bench.harness.topology import load_topology
from tests.helpers.executor_slurm import _fake_cluster, _matrix, _one_error

pytest.importorskip("submitit")


def _script(topology: str, **options) -> str:
    cell = Cell("maintenance", "lstm", topology, "fp32", 0, timeout_s=600)
    params = job_parameters(cell, load_topology(topology), ExecutorOptions(type="slurm", **options))
    return sbatch_script(params, Path("/shared/run/slurm"))


def _sbatch_lines(script: str) -> set[str]:
    return {line.strip() for line in script.splitlines() if line.startswith("#SBATCH")}


def test_each_cell_is_a_job_with_the_resources_its_topology_needs():
    one = _sbatch_lines(_script("cpu-1proc", cpus_per_rank=4, mem_per_rank_gb=8, partition="cpu", max_jobs=3))
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8GB",
            "#SBATCH --time=15", "#SBATCH --partition=cpu"} <= one
    assert not any("gpus" in line for line in one)
    two = _sbatch_lines(_script("cpu-ddp2", cpus_per_rank=4, mem_per_rank_gb=8))
    assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16GB"} <= two
    nodes = _sbatch_lines(_script("cpu-2node", cpus_per_rank=4, mem_per_rank_gb=8, account="proj", qos="high",
                                  sbatch={"constraint": "avx512"}))
    # Two nodes, one task (one `accelerate launch`) on each, each with its own rank's CPUs.
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --account=proj",
            "#SBATCH --qos=high", "#SBATCH --constraint=avx512"} <= nodes
    gpu = _sbatch_lines(_script("gpu-2node-x8", cpus_per_rank=8, mem_per_rank_gb=32))
    assert {"#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=64", "#SBATCH --mem=256GB"} <= gpu


def test_jobs_are_exclusive_and_srun_gives_each_task_its_cpus():
    script = _script("cpu-ddp2", cpus_per_rank=4)
    assert "#SBATCH --exclusive" in _sbatch_lines(script)
    srun = next(line for line in script.splitlines() if line.startswith("srun"))
    assert "--cpus-per-task 8" in srun  # the task's CPUs on the srun line too, not only in #SBATCH
    shared = _sbatch_lines(_script("cpu-ddp2", cpus_per_rank=4, exclusive=False))
    assert "#SBATCH --exclusive" not in shared


def test_in_a_multi_node_job_a_failed_node_ends_the_others_instead_of_leaving_them_in_rendezvous():
    two_nodes = next(line for line in _script("cpu-2node").splitlines() if line.startswith("srun"))
    assert "--kill-on-bad-exit=1" in two_nodes  # srun ends the step's other tasks when one exits non-zero
    one_node = next(line for line in _script("cpu-ddp2").splitlines() if line.startswith("srun"))
    assert "--kill-on-bad-exit" not in one_node
    from bench.errors import BenchError
    from bench.harness.executors.slurm import end_the_step_if

    end_the_step_if(False, 1)  # a node whose launch succeeded returns as before
    with pytest.raises(BenchError, match="node 1: this node's launch failed"):
        end_the_step_if(True, 1)  # the task exits non-zero: what --kill-on-bad-exit acts on


def test_the_job_array_is_capped_at_max_jobs():
    cell = Cell("maintenance", "lstm", "cpu-1proc", "fp32", 0, timeout_s=600)
    params = job_parameters(cell, load_topology("cpu-1proc"), ExecutorOptions(type="slurm", max_jobs=3))
    script = sbatch_script({**params, "map_count": 10}, Path("/shared/run/slurm"))
    assert "#SBATCH --array=0-9%3" in script


def test_submitits_slurm_executor_takes_each_cells_parameters(tmp_path, monkeypatch):
    """What run_on_slurm hands SlurmExecutor.update_parameters, checked by submitit itself (its
    own validation renders the sbatch script); no sbatch is called."""
    import submitit

    monkeypatch.setenv("PATH", _fake_cluster(tmp_path)["PATH"])  # submitit looks for srun
    for topology in ("cpu-1proc", "cpu-ddp2", "cpu-2node", "gpu-2node-x8"):
        cell = Cell("maintenance", "lstm", topology, "fp32", 0, timeout_s=600)
        params = job_parameters(cell, load_topology(topology), ExecutorOptions(type="slurm", partition="p"))
        executor = submitit.SlurmExecutor(folder=tmp_path / "slurm")
        executor.update_parameters(**params)
        script = executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
        assert f"#SBATCH --nodes={load_topology(topology).num_machines}" in script
    assert not (tmp_path / "sbatch.calls").exists()


def test_options_come_from_the_matrix_section_and_the_command_line_wins():
    options = executor_options({"type": "slurm", "partition": "a", "sbatch": {"constraint": "x"}, "max_jobs": 4},
                               {"partition": "b", "sbatch": {"exclusive": ""}, "max_jobs": None})
    assert (options.type, options.partition, options.max_jobs) == ("slurm", "b", 4)
    assert options.sbatch == {"constraint": "x", "exclusive": ""}


def test_an_unknown_executor_option_in_the_matrix_is_one_line(tmp_path, capsys):
    matrix = _matrix(tmp_path, executor={"type": "slurm", "partiton": "gpu"})
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results")]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "unknown option(s) partiton" in line and "partition" in line
    assert not (tmp_path / "results").exists()

