"""GPU launch paths that a CPU machine can check: a cell runs on the GPUs it was given.

accelerate may write a config's `gpu_ids` over CUDA_VISIBLE_DEVICES unless it is 'all', and two
loopback "nodes" on one GPU host would both put their local ranks on GPUs 0..k-1. No GPU is needed
to see either: the launcher sets the variable before any CUDA call.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.harness.launch import accelerate_executable, gpus_per_loopback_node, launch_commands
from bench.harness.topology import load_topology
from bench.paths import ACCELERATE_CONFIGS_DIR

GPU_CONFIGS = sorted(ACCELERATE_CONFIGS_DIR.glob("gpu-*.yaml"))
PRINT_VISIBLE = 'import os; print("visible=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))\n'


def _visible_devices_under(config: Path, given: str, tmp_path: Path) -> str:
    """CUDA_VISIBLE_DEVICES as a script launched by `accelerate launch --config_file config` sees
    it, when the launcher itself was given `given`."""
    script = tmp_path / "print_visible.py"
    script.write_text(PRINT_VISIBLE)
    base = accelerate_executable()
    base = base if base[-1] == "accelerate.commands.launch" else [*base, "launch"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": given}
    done = subprocess.run([*base, "--config_file", str(config), "--mixed_precision", "no", str(script)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("visible=")][-1].removeprefix("visible=")


@pytest.mark.e2e
def test_the_one_gpu_cell_runs_on_the_gpu_it_was_given_not_on_gpu_0(tmp_path):
    # bench's side of it: the built-in config leaves the GPU it was given alone. Whether accelerate
    # would overwrite a pinned `gpu_ids` is accelerate's behaviour (1.15 did on any torch, 1.16 only
    # when torch reports an accelerator), so no test here rests on it.
    assert _visible_devices_under(ACCELERATE_CONFIGS_DIR / "gpu-1.yaml", "3", tmp_path) == "3"


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=lambda p: p.stem)
def test_no_built_in_gpu_config_pins_gpu_ids(config):
    assert str(yaml.safe_load(config.read_text()).get("gpu_ids", "all")) == "all"


def test_two_loopback_nodes_on_one_gpu_host_get_disjoint_gpus(monkeypatch, tmp_path):
    topology = load_topology("gpu-2node-x8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(16)))
    assert gpus_per_loopback_node(topology) == [[str(i) for i in range(8)], [str(i) for i in range(8, 16)]]
    commands = launch_commands(topology, "bf16", tmp_path / "cell.json", tmp_path / "out.json", port=29555)
    assert [cmd[:2] for cmd in commands] == [["env", "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7"],
                                            ["env", "CUDA_VISIBLE_DEVICES=8,9,10,11,12,13,14,15"]]


def test_the_split_follows_the_gpus_this_process_was_given(monkeypatch):
    given = ["GPU-a", "GPU-b", "GPU-c", "GPU-d", "GPU-e", "GPU-f", "GPU-g", "GPU-h",
             "9", "11", "12", "13", "14", "15", "4", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(given))
    assert gpus_per_loopback_node(load_topology("gpu-2node-x8")) == [given[:8], given[8:]]


@pytest.mark.parametrize("name", ["cpu-2node", "gpu-ddp8", "gpu-1"])
def test_nothing_is_split_for_cpu_or_single_node_topologies(monkeypatch, tmp_path, name):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(16)))
    topology = load_topology(name)
    assert gpus_per_loopback_node(topology) is None
    for cmd in launch_commands(topology, "fp32", tmp_path / "cell.json", tmp_path / "out.json", port=29555):
        assert cmd[0] != "env"


def test_too_few_gpus_for_the_loopback_nodes_splits_nothing(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpus_per_loopback_node(load_topology("gpu-2node-x8")) is None


@pytest.mark.e2e
def test_the_bf16_probe_runs_apart_and_counts_no_emulation():
    """The runner's capability check asks a child process (no CUDA context in the runner) whether
    the GPU has native bf16; on a host without a GPU the answer is no, and this process has not
    initialised CUDA for it."""
    import torch

    from bench.harness.host import _BF16_PROBE, gpu_runs_bf16_natively

    assert "including_emulation=False" in _BF16_PROBE
    assert gpu_runs_bf16_natively() == (torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if not torch.cuda.is_available():
        assert not torch.cuda.is_initialized()
