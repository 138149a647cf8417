"""The knob axes (docs/knobs.md): matrix expansion and its refusals, and each knob's verification
failing when the knob was asked for and is not in effect.

The verifications run on real things: a model compiled (or not) by an Accelerator's own dynamo
setting, a real transformer with and without checkpointing, 2-process gloo runs under
`accelerate launch` (accumulation with and without `accumulate`) and under torch.distributed
(FSDP2 `fully_shard`, which really shards on gloo, against DDP, which does not).

The tests that start processes are in tests/e2e/test_knobs.py."""

from __future__ import annotations

import os

import torch

from bench.harness.matrix import load_matrix
from tests.helpers.knobs import write_matrix


def test_axes_multiply_into_cells_and_exclude_rules_remove_combinations(tmp_path):
    path = write_matrix(tmp_path, {
        "topologies": ["cpu-1proc", "cpu-ddp2"], "compile": ["none", "inductor"], "grad_accum": [1, 4],
        "exclude": [{"compile": "inductor", "topology": "cpu-ddp2"}],
        "workloads": {"traffic": {"baselines": False}}})
    ids = {c.id for c in load_matrix(str(path))}
    assert ids == {
        "traffic-ae__cpu-1proc__fp32__s0", "traffic-ae__cpu-1proc__fp32__grad_accum=4__s0",
        "traffic-ae__cpu-1proc__fp32__compile=inductor__s0", "traffic-ae__cpu-1proc__fp32__compile=inductor__grad_accum=4__s0",
        "traffic-ae__cpu-ddp2__fp32__s0", "traffic-ae__cpu-ddp2__fp32__grad_accum=4__s0",
    }


def test_checkpointing_off_on_reads_as_words_and_defaults_keep_todays_ids(tmp_path):
    path = write_matrix(tmp_path, {"topologies": ["cpu-1proc"], "workloads": {
        "sentiment": {"baselines": False, "checkpointing": [False, True]}}})  # what YAML makes of `off, on`
    cells = load_matrix(str(path))
    assert [c.checkpointing for c in cells] == ["off", "on"]
    assert cells[0].id == "sentiment-minilm__cpu-1proc__fp32__s0"
    assert "checkpointing" not in cells[0].to_dict() and cells[1].to_dict()["checkpointing"] == "on"


def test_the_knobs_matrix_loads_and_keeps_every_default_cell():
    cells = load_matrix("knobs")
    assert {"traffic-ae__cpu-1proc__fp32__s0", "sentiment-minilm__cpu-1proc__fp32__checkpointing=on__s0",
            "traffic-ae__cpu-fsdp2-reshard-x2__fp32__s0", "traffic-ae__cpu-zero3-x2__fp32__s0"} <= {c.id for c in cells}


def _compiled_run(fresh_state, model: torch.nn.Module, backend: str | None, elsewhere: bool = False) -> tuple:
    """Three training steps of `model` prepared by an Accelerator, the third profiled as bench's
    loop profiles it; `elsewhere` first compiles an unrelated function in the process, as a
    throwaway model of a probe would."""
    from accelerate import Accelerator

    from bench.harness.compile_probe import PROFILED_STEP, CompileProbe
    from bench.harness.measure import KnobProbe
    from bench.harness.verify import dynamo_stats, verify_compile

    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    if elsewhere:
        torch.compile(lambda x: x * 2 + 1, backend="eager")(torch.ones(3))
    accelerator = Accelerator(cpu=True, **({"dynamo_backend": backend} if backend else {}))
    prepared = accelerator.prepare(model)
    probe, step_probe = KnobProbe(), CompileProbe(active=True)
    probe.watch_sync(prepared, 1)
    for step in range(1, PROFILED_STEP + 1):
        with step_probe.around(prepared, step):
            prepared(torch.randn(4, 5, 3)).sum().backward()
    return verify_compile(backend or "none", {"prepared_model": probe.prepared_type, "compile_s": None}, dynamo_stats(),
                          step_probe.record())


class Dense(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layer(x)).mean(1)


class Recurrent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0][:, -1]


def test_compile_through_accelerates_dynamo_setting_is_seen_in_effect(fresh_state):
    # aot_eager: dynamo and AOTAutograd trace and run graphs as with inductor, without a C++ compile.
    verdict, record = _compiled_run(fresh_state, Dense(), "aot_eager")
    assert verdict.status is None, verdict.reason
    assert record["prepared_model"] == "OptimizedModule" and record["graphs"] >= 1


class BrokenDense(Dense):
    """A forward dynamo must split: a print is a graph break, and the code after it resumes in a frame of its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.layer(x))
        print("", end="")
        return hidden.mean(1)


class EagerDense(Dense):
    """A forward dynamo skips: compile asked for, set and counted (a graph elsewhere), yet nothing of it compiled."""

    @torch._dynamo.disable
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


def test_the_profiled_training_step_ran_the_forward_as_one_compiled_graph(fresh_state):
    verdict, record = _compiled_run(fresh_state, Dense(), "aot_eager")
    assert record["step"] == {"profiled_step": 3, "forwards": 1, "graphs_run": 1, "eager_ops": 0,
                              "eager_op_kinds": []}


def test_a_profiled_step_that_never_called_the_prepared_model_is_unsupported_and_an_unprofiled_one_says_so():
    from bench.harness.verify import verify_compile

    stats = {"graphs": 1, "recompiles": 0, "graph_breaks": 0, "fallback": None}
    window = {"prepared_model": "OptimizedModule"}
    bypassed = {"profiled_step": 3, "forwards": 0, "graphs_run": 0, "eager_ops": 0, "eager_op_kinds": []}
    verdict, _ = verify_compile("inductor", window, stats, bypassed)
    assert verdict.status == "unsupported" and "never called the prepared model" in verdict.reason
    verdict, record = verify_compile("inductor", window, stats, {})
    assert verdict.status is None and record["step_checked"].startswith("no: the cell stopped before")


def test_the_profilers_own_cost_is_handed_to_the_loop_once_and_only_for_the_profiled_step():
    from bench.harness.compile_probe import PROFILED_STEP, CompileProbe

    probe, layer = CompileProbe(active=True), torch.nn.Linear(4, 4)
    with probe.around(layer, PROFILED_STEP - 1):
        layer(torch.ones(1, 4))
    assert probe.take_overhead_s() == 0.0
    with probe.around(layer, PROFILED_STEP):
        layer(torch.ones(1, 4))
    assert probe.take_overhead_s() > 0.0 and probe.take_overhead_s() == 0.0
    assert probe.record()["forwards"] == 1


def test_a_graph_break_shows_as_a_second_compiled_graph_of_the_forward(fresh_state):
    verdict, record = _compiled_run(fresh_state, BrokenDense(), "aot_eager")
    assert verdict.status is None, verdict.reason
    assert record["graph_breaks"] >= 1 and record["step"]["graphs_run"] == 2


def test_a_step_that_ran_eagerly_is_unsupported_though_a_graph_was_compiled_elsewhere(fresh_state):
    # The process-wide count alone passed this cell: one graph, from an unrelated compile.
    verdict, record = _compiled_run(fresh_state, EagerDense(), "aot_eager", elsewhere=True)
    assert record["graphs"] >= 1 and record["prepared_model"] == "OptimizedModule"
    assert record["step"]["graphs_run"] == 0 and record["step"]["eager_ops"] >= 2
    assert verdict.status == "unsupported" and "ran its forward eagerly" in verdict.reason


def test_compile_asked_for_but_not_set_on_the_accelerator_is_unsupported(fresh_state):
    verdict, record = _compiled_run(fresh_state, Dense(), None)
    assert verdict.status == "unsupported" and "not compiled by accelerate" in verdict.reason


def test_compile_of_an_rnn_compiles_nothing_and_is_unsupported_with_dynamos_reason(fresh_state):
    verdict, record = _compiled_run(fresh_state, Recurrent(), "aot_eager")
    assert record["graphs"] == 0
    assert verdict.status == "unsupported" and "compiled no graph" in verdict.reason and "LSTM" in verdict.reason


def _tiny_bert_forwards(checkpointing: bool) -> dict:
    from transformers import BertConfig, BertForSequenceClassification

    from bench.harness.measure import KnobProbe
    from bench.harness.verify import verify_checkpointing

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32))
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    probe = KnobProbe()
    probe.watch_blocks(list(model.bert.encoder.layer))
    for _ in range(3):
        out = model(input_ids=torch.randint(0, 50, (2, 6)), labels=torch.tensor([0, 1]))
        out.loss.backward()
        probe.micro_steps += 1
    record = probe.record(3, __import__("bench.harness.measure", fromlist=["StepTimes"]).StepTimes())["checkpointing"]
    return {"record": record, "verdict": verify_checkpointing(record)}


def test_checkpointing_is_seen_as_recomputation():
    seen = _tiny_bert_forwards(checkpointing=True)
    assert seen["record"]["recompute_forwards_per_step"] == 2
    assert seen["verdict"].status is None


def test_checkpointing_asked_for_but_not_enabled_is_unsupported():
    seen = _tiny_bert_forwards(checkpointing=False)
    assert seen["record"]["recompute_forwards_per_step"] == 1
    assert seen["verdict"].status == "unsupported" and "ran 1 forward(s) per step" in seen["verdict"].reason


def test_checkpointing_off_with_recomputation_turned_on_anyway_is_invalid():
    # A config that enabled gradient checkpointing behind the cell's back: the blocks the loop
    # watches at checkpointing=off ran their forward twice per step.
    from bench.harness.verify import verify_no_checkpointing

    recomputed, plain = _tiny_bert_forwards(checkpointing=True), _tiny_bert_forwards(checkpointing=False)
    verdict = verify_no_checkpointing(recomputed["record"])
    assert verdict.status == "invalid" and "checkpointing=off asked for but a block ran 2 forwards" in verdict.reason
    assert verify_no_checkpointing(plain["record"]).status is None


def test_at_checkpointing_off_the_sentiment_model_offers_its_encoder_layers_to_watch_and_others_none():
    from transformers import BertConfig, BertForSequenceClassification

    from workloads import make_workload

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32))
    sentiment = make_workload("sentiment", "minilm", {})
    assert sentiment.checkpointable_blocks(model) == list(model.bert.encoder.layer)
    assert not model.is_gradient_checkpointing  # watching changes nothing
    assert make_workload("traffic", "ae", {}).checkpointable_blocks(torch.nn.Linear(2, 2)) == []  # the default


def test_the_sentiment_workload_checkpoints_its_encoder_layers_and_others_refuse():
    from workloads import workload_class

    assert workload_class("traffic").knob_refusal("ae", {"checkpointing": "on"})
    assert workload_class("maintenance").knob_refusal("lstm", {"checkpointing": "on"})
    assert workload_class("sentiment").knob_refusal("minilm", {"checkpointing": "on"}) is None


def test_cpu_affinity_records_the_real_cores_and_calls_the_asked_knob_a_no_op(fresh_state):
    from accelerate import Accelerator

    from bench.harness.verify import cpu_affinity

    accelerator = Accelerator(cpu=True)
    record = cpu_affinity(accelerator, asked=True)
    assert record["per_rank"] == [sorted(os.sched_getaffinity(0))]
    assert record["no_op"] is (len(os.sched_getaffinity(0)) == os.cpu_count())
    assert cpu_affinity(accelerator, asked=False)["no_op"] is False

