"""scripts/slurm-multinode.sbatch, run for real without a cluster.

`srun` and `scontrol` are replaced by two small stand-ins on PATH (a test cannot get a SLURM
allocation): `srun` runs its command once per node of the allocation on this host, with
SLURM_NODEID set as SLURM sets it, and records the options it was given. Everything else is real:
the script's checks, `accelerate launch` on every "node", the worker, the cell's result and run.json.
A 2-node CPU cell on loopback is the same launch the cluster does, minus the network.

The tests that start processes are in tests/e2e/test_slurm_script.py."""

from __future__ import annotations

from tests.helpers.slurm_script import SCRIPT


def test_the_script_asks_for_whole_nodes_and_one_launcher_per_node():
    directives = [line.split(None, 1)[1] for line in SCRIPT.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "--exclusive" in directives
    assert "--ntasks-per-node=1" in directives
    assert any(d.startswith("--gpus-per-node=") for d in directives)
    assert any(d.startswith("--time=") for d in directives)

