"""The seam between the harness and a workload.

The training loop in bench/harness/train.py drives any `Workload` without knowing what it is: it asks
for data, a model, a loss per batch, per-sample evaluation outputs, and metrics computed from
those outputs. A workload never touches Accelerate, clocks or memory; the harness never
branches on a workload's name.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.errors import BenchError


@dataclass(frozen=True)
class Target:
    """The quality target a cell trains to, judged on the validation split."""

    metric: str
    value: float
    higher_is_better: bool = True

    def met(self, metrics: dict[str, float]) -> bool:
        score = metrics.get(self.metric)
        if score is None or not np.isfinite(score):
            return False
        return score >= self.value if self.higher_is_better else score <= self.value


@dataclass
class Splits:
    """Datasets the loop trains and evaluates on, plus what preprocessing decided (recorded)."""

    train: Dataset
    val: Dataset
    test: Dataset
    # Further evaluation sets reported beside test (e.g. an out-of-domain set).
    extra: dict[str, Dataset] = field(default_factory=dict)
    # Facts about the data a reader needs to trust the numbers: sizes, split, dropped rows...
    info: dict[str, Any] = field(default_factory=dict)


# The range of every metric a workload may train to: a target outside it can never be met (or is
# always met), so it is refused before launch.
METRIC_RANGES: dict[str, tuple[float, float]] = {"f1": (0.0, 1.0), "accuracy": (0.0, 1.0), "roc_auc": (0.0, 1.0)}


def limits(default: Any, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None) -> Any:
    """A params field with a range, checked by `params_from_dict` before anything runs:
    ge/gt = at least / above, le/lt = at most / below. Whole numbers are the `int` annotation's
    business. A subclass that only changes the default keeps the range declared here."""
    return field(default=default, metadata={"range": {"ge": ge, "gt": gt, "le": le, "lt": lt}})


@dataclass
class TrainParams:
    """Hyperparameters every workload has. Workloads subclass this with their own fields.

    Each field can be overridden per workload in a matrix YAML under `params:`.
    """

    target: float = 0.0
    """Quality target on the validation split, for the workload's target metric (within the
    metric's range, METRIC_RANGES: checked by the Workload, which knows the metric)."""
    global_batch: int = limits(64, ge=1)
    """Samples per optimizer step summed over all processes; fixed across world sizes (the default,
    strong scaling). `lr` is the learning rate for this batch."""
    device_batch: int | None = limits(None, ge=1)
    """Weak scaling (a cell's scaling=weak): each process's samples per optimizer step, so that the
    global batch is N times this on N processes; None: global_batch, one process's batch in a
    one-process run. Sized to keep a GPU busy in the GPU matrix."""
    lr: float = limits(1e-3, gt=0)
    """Peak learning rate of AdamW."""
    weight_decay: float = limits(0.0, ge=0)
    """AdamW weight decay."""
    warmup_fraction: float = limits(0.0, ge=0, lt=1)
    """Fraction of the step budget spent in linear warm-up (0 = constant learning rate)."""
    linear_decay: bool = False
    """Decay the learning rate linearly to zero over the step budget after warm-up."""
    grad_clip: float | None = limits(None, gt=0)
    """Clip the global gradient norm to this value (None = no clipping)."""
    eval_every_steps: int | None = limits(None, ge=1)
    """Evaluate every N optimizer steps; None = at the end of each epoch."""
    eval_batch: int = limits(512, ge=1)
    """Per-process batch size for evaluation."""

    def cross_check(self) -> str | None:
        """What is wrong across fields (each field's own range is declared with `limits`), or None."""
        return None


def params_from_dict(cls: type[TrainParams], overrides: dict[str, Any], where: str) -> TrainParams:
    """Build a params dataclass, rejecting unknown keys and wrong types with a one-line error."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise BenchError(f"{where}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    params = cls(**overrides)
    for name, f in names.items():
        value = getattr(params, name)
        if value is None:
            continue
        # Annotations are strings here (from __future__ import annotations): "int", "float | None"...
        kinds = {k.strip() for k in str(f.type).split("|")} - {"None"}
        if kinds == {"bool"}:
            ok = isinstance(value, bool)
        elif kinds == {"int"}:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kinds == {"float"}:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kinds == {"str"}:
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            raise BenchError(f"{where}: parameter {name} must be {' or '.join(sorted(kinds))}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BenchError(f"{where}: parameter {name} must be a finite number, got {value!r}")
        problem = _out_of_range(value, _declared_range(cls, name))
        if problem:
            raise BenchError(f"{where}: parameter {name} must be {problem}, got {value!r}")
    problem = params.cross_check()
    if problem:
        raise BenchError(f"{where}: {problem}")
    return params


def _declared_range(cls: type, name: str) -> dict[str, float | None]:
    """The range declared for a field, by the class or the nearest base that declares one."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "range" in declared.metadata:
            return declared.metadata["range"]
    return {}


def _out_of_range(value: Any, bounds: dict[str, float | None]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    for key, test, words in (("ge", lambda v, b: v >= b, "at least"), ("gt", lambda v, b: v > b, "above"),
                             ("le", lambda v, b: v <= b, "at most"), ("lt", lambda v, b: v < b, "below")):
        bound = bounds.get(key)
        if bound is not None and not test(value, bound):
            return f"{words} {bound:g}"
    return None


class Workload(ABC):
    """One benchmark task: data, model, loss, metrics and classical baselines."""

    name: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]
    """Model variants selectable in the matrix (e.g. gru, lstm); the first is the default."""
    target_metric: ClassVar[str]
    Params: ClassVar[type[TrainParams]] = TrainParams

    def __init__(self, variant: str | None = None, params: dict[str, Any] | None = None) -> None:
        variant = variant or self.variants[0]
        if variant not in self.variants:
            raise BenchError(
                f"unknown variant {variant!r} for workload {self.name}; valid choices: {', '.join(self.variants)}"
            )
        self.variant = variant
        self.params = params_from_dict(self.Params, params or {}, f"workload {self.name}")
        low, high = METRIC_RANGES.get(self.target_metric, (-math.inf, math.inf))
        if not low <= self.params.target <= high:
            raise BenchError(
                f"workload {self.name}: parameter target must be in the range of {self.target_metric}, "
                f"[{low:g}, {high:g}], got {self.params.target!r}"
            )

    @classmethod
    def unavailable_reason(cls, params: dict[str, Any]) -> str | None:
        """Why this host cannot run the workload with these params (e.g. a model that cannot be
        resolved offline), or None. Checked before launching, without loading any data."""
        return None

    float_inputs: bool = True
    """Whether the model is fed float features (token ids are not): DeepSpeed's bf16 and fp16 cast
    a model's weights but not its inputs, so such a model's first matmul fails there, and the dry
    run says so."""

    rnn_variants: tuple[str, ...] = ()
    """The variants whose model is a recurrent network (GRU, LSTM): dynamo runs them eagerly, and
    CUDA autocast runs their cuDNN kernels in fp16 under bf16 (torch's AutocastRNN hard-codes Half),
    so the dry run can say what such cells will come out as."""

    @classmethod
    def knob_refusal(cls, variant: str, knobs: dict[str, Any]) -> str | None:
        """Why this workload cannot take these knob values (docs/knobs.md), or None. Only activation
        checkpointing depends on the model: a workload that has checkpointable blocks overrides
        `checkpoint_blocks`."""
        if knobs.get("checkpointing", "off") != "off" and cls.checkpoint_blocks is Workload.checkpoint_blocks:
            return (f"checkpointing={knobs['checkpointing']}: workload {cls.name} ({variant}) has no blocks to "
                    "checkpoint (activation checkpointing is for the transformer workload, sentiment)")
        return None

    def checkpoint_blocks(self, model: torch.nn.Module) -> list[torch.nn.Module]:
        """Turn activation checkpointing on in a freshly built model; return the checkpointed blocks
        (whose forward must then run twice per training step). Refused by default (knob_refusal)."""
        raise BenchError(f"workload {self.name} cannot checkpoint activations")

    def checkpointable_blocks(self, model: torch.nn.Module) -> list[torch.nn.Module]:
        """The blocks `checkpoint_blocks` would checkpoint, left as they are: at checkpointing=off
        the loop watches them, and each must run its forward once per step (none by default)."""
        return []

    @property
    def target(self) -> Target:
        return Target(self.target_metric, self.params.target)

    @abstractmethod
    def load(self, seed: int) -> Splits:
        """Read, validate and preprocess the data; split it. Deterministic for a seed."""

    @abstractmethod
    def build_model(self) -> torch.nn.Module:
        """A fresh model (seeded by the caller)."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The training loss of one batch (a scalar)."""

    @abstractmethod
    def eval_outputs(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Per-sample outputs of one batch (scores, labels...), each with the batch as first dim.

        The loop gathers them over processes (dropping the padding duplicates) before metrics.
        """

    @abstractmethod
    def val_metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """Metrics on the validation outputs; must include `target_metric`."""

    @abstractmethod
    def final_metrics(self, evaluate: Callable[[str], dict[str, np.ndarray]]) -> dict[str, Any]:
        """Metrics reported for the trained model. `evaluate(split)` returns gathered outputs
        for 'train', 'val', 'test' or a name in `Splits.extra`."""

    def collate(self, items: list[Any]) -> Any:
        """Batch a list of dataset items (default: torch's)."""
        return torch.utils.data.default_collate(items)

    def samples_in(self, batch: Any) -> int:
        """How many samples a batch holds (the first tensor's first dim by default)."""
        first = batch[0] if isinstance(batch, (list, tuple)) else next(iter(batch.values()))
        return int(first.shape[0])

    def tokens_in(self, batch: Any) -> int | torch.Tensor | None:
        """How many real (non-padding) tokens a batch holds (a tensor on the batch's device is read
        once, after training, so that counting never waits for a GPU); None for non-text workloads."""
        return None

    def flops_per_sample(self, model: torch.nn.Module, batch: Any) -> float | None:
        """Training FLOPs (forward + backward) per sample, counted on one batch; None if unknown."""
        from torch.utils.flop_counter import FlopCounterMode

        model = getattr(model, "module", model)
        if any(isinstance(m, torch.nn.RNNBase) for m in model.modules()):
            # FlopCounterMode has no formula for the fused RNN kernels and would count only the
            # Linear layers around them: an undercount by orders of magnitude. Say unknown.
            return None
        counter = FlopCounterMode(display=False)
        with counter:
            self.loss(model, batch).backward()
        model.zero_grad(set_to_none=True)
        return counter.get_total_flops() / max(self.samples_in(batch), 1)

    def baselines(self, splits: Splits, seed: int) -> list[dict[str, Any]]:
        """Classical reference models: dicts with name, metrics, fit_seconds."""
        return []

    def describe(self) -> dict[str, Any]:
        """What the result records about this workload's configuration."""
        return {"name": self.name, "variant": self.variant, "params": dataclasses.asdict(self.params)}
