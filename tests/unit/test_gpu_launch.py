"""GPU launch paths that a CPU machine can check: a cell runs on the GPUs it was given.

accelerate may write a config's `gpu_ids` over CUDA_VISIBLE_DEVICES unless it is 'all', and two
loopback "nodes" on one GPU host would both put their local ranks on GPUs 0..k-1. No GPU is needed
to see either: the launcher sets the variable before any CUDA call.

The tests that start processes are in tests/e2e/test_gpu_launch.py."""

from __future__ import annotations

import pytest
import torch
import yaml

from bench.harness.launch import gpus_per_loopback_node, launch_commands
from bench.harness.topology import load_topology
from bench.paths import ACCELERATE_CONFIGS_DIR

GPU_CONFIGS = sorted(ACCELERATE_CONFIGS_DIR.glob("gpu-*.yaml"))


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



FSDP2_CONFIGS = sorted(p.stem for p in ACCELERATE_CONFIGS_DIR.glob("*.yaml")
                       if (yaml.safe_load(p.read_text()).get("fsdp_config") or {}).get("fsdp_version") == 2)


@pytest.mark.parametrize("config", FSDP2_CONFIGS)
def test_fsdp2_configs_wrap_minilm_by_transformer_block_and_a_blockless_model_at_its_root(config):
    # accelerate's own plugin and wrap policy on the real models: the former SIZE_BASED_WRAP at 100k
    # parameters made 81 fully_shard units of MiniLM (every sizeable Linear), measuring hook and
    # collective latency rather than sharding; by block it is the embeddings and the 6 layers.
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    from workloads import make_workload

    fsdp = yaml.safe_load((ACCELERATE_CONFIGS_DIR / f"{config}.yaml").read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"],
                                            min_num_params=fsdp.get("fsdp_min_num_params"))
    minilm = make_workload("sentiment", "minilm", {}).build_model()
    wraps = fsdp2_prepare_auto_wrap_policy(plugin, minilm)
    units = [name for name, module in minilm.named_modules() if wraps(module)]
    assert units == ["bert.embeddings", *(f"bert.encoder.layer.{i}" for i in range(6))]
    blockless = torch.nn.Sequential(torch.nn.Linear(400, 400), torch.nn.ReLU(), torch.nn.Linear(400, 1))  # 160k
    assert not any(wraps(module) for module in blockless.modules())  # only the root, which accelerate wraps last
