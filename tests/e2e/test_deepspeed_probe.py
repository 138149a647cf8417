"""bench's probes under a real DeepSpeed Accelerator (deepspeed's CPU accelerator, gloo, one
process), where the `deepspeed` extra is installed: the sharding probe prepares a model and
optimizer without a DataLoader, which accelerate refuses while the config's micro-batch is "auto",
as every Accelerate YAML leaves it. Skipped without deepspeed (CI installs the `test` extra only);
run with `pip install -c requirements.lock '.[deepspeed]'`. Marked e2e: deepspeed builds and loads
a shared-memory op with the C++ compiler."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
deepspeed = pytest.importorskip("deepspeed")


@pytest.fixture
def one_deepspeed_process(monkeypatch, fresh_state):
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29561", "RANK": "0", "WORLD_SIZE": "1",
                        "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)


def test_the_sharding_probe_fills_the_micro_batch_the_training_then_uses(one_deepspeed_process):
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin

    from bench.cells import Budget
    from bench.harness.train import train
    from bench.harness.verify import probe_sharding
    from workloads import make_workload

    accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(zero_stage=2, gradient_clipping=1.0))
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # as accelerate builds it from a YAML
    workload = make_workload("traffic", "ae", {})
    splits = workload.load(0)
    verdict = probe_sharding(accelerator, workload, splits, {"family": "deepspeed", "stage": 2, "shards": "optimizer"})
    # One process holds everything: the probe ran and says so (before, accelerate raised ValueError).
    assert verdict.status == "unsupported" and "every rank holds" in verdict.reason
    assert config["train_micro_batch_size_per_gpu"] == workload.params.global_batch
    outcome = train(accelerator, workload, splits, Budget(max_epochs=1, max_steps=3), 0)
    assert outcome.timings["steps"] == 3 and outcome.batch["per_process"] == config["train_micro_batch_size_per_gpu"]


def test_bf16_is_judged_on_the_model_deepspeed_prepared_not_on_accelerates_idle_autocast(one_deepspeed_process):
    # accelerate's autocast does nothing under DeepSpeed: the Linear probe sees fp32. DeepSpeed
    # casts the model's weights instead: a BERT (integer inputs) runs in bf16; an autoencoder fed
    # float features fails its first matmul, and is refused with those words, not as "fp32".
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin

    from bench.harness.topology import Expected
    from bench.harness.verify import autocast_dtype, probe_model_precision, verify_precision_setting
    from workloads import make_workload

    accelerator = Accelerator(mixed_precision="bf16", deepspeed_plugin=DeepSpeedPlugin(zero_stage=2, gradient_clipping=1.0))
    observed = {"distributed_type": accelerator.distributed_type.name, "compute_dtype": autocast_dtype(accelerator),
                "mixed_precision_setting": accelerator.mixed_precision, "device": "cpu"}
    assert observed["compute_dtype"] == "fp32"  # the autocast probe alone would refuse the cell
    assert verify_precision_setting(observed, Expected(1, ("DEEPSPEED",), "cpu", "bf16")) is None
    traffic = make_workload("traffic", "ae", {})
    refused = probe_model_precision(accelerator, traffic, traffic.load(0), "bf16")
    assert refused.status == "unsupported" and "not its float inputs" in refused.reason
    sentiment = make_workload("sentiment", "minilm", {})
    ran = probe_model_precision(accelerator, sentiment, sentiment.load(0), "bf16")
    assert ran.status is None and ran.observed["compute_params_in_requested_dtype"] == 1.0


def test_compile_under_deepspeed_is_seen_in_the_engine_and_in_the_profiled_step(one_deepspeed_process):
    # accelerate hands compile to DeepSpeed: the prepared model stays a DeepSpeedEngine (before,
    # verify refused it as "not compiled by accelerate"); what ran is the evidence.
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin
    from torch._dynamo.utils import counters

    from bench.harness.compile_probe import PROFILED_STEP, CompileProbe
    from bench.harness.measure import KnobProbe
    from bench.harness.verify import dynamo_stats, verify_compile

    torch._dynamo.reset()
    counters.clear()
    accelerator = Accelerator(dynamo_backend="aot_eager",
                              deepspeed_plugin=DeepSpeedPlugin(zero_stage=2, gradient_clipping=1.0))
    accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = 4
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    engine, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    knobs, step = KnobProbe(), CompileProbe(active=True)
    knobs.watch_sync(engine, 1)
    for number in range(1, PROFILED_STEP + 1):
        with step.around(engine, number):
            accelerator.backward(engine(torch.randn(4, 8)).pow(2).mean())
            optimizer.step()
            optimizer.zero_grad()
    verdict, record = verify_compile("aot_eager", {"prepared_model": knobs.prepared_type}, dynamo_stats(), step.record())
    assert record["prepared_model"] == "DeepSpeedEngine (compiled)"
    assert verdict.status is None, verdict.reason
    assert record["step"]["graphs_run"] == 1
