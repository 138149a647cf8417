"""Did the training step itself run compiled code, and how much of the model's forward did it cover?

dynamo's process-wide counters (verify.dynamo_stats) say that some graph was compiled, not that
the timed step ran it: a recompile-limit fallback, a graph break or an eager frame all leave the
count above zero. So one optimizer step of a compile cell runs under torch's profiler (CPU
activity), and its record says, from what ran:

- `graphs_run`: how many compiled graphs the model's forward called (the forward is marked by
  hooks on the prepared model; AOTAutograd runs each graph as a "CompiledFunction", inductor's
  call is "## Call CompiledFxGraph ..."). One per forward is a forward compiled whole; a graph
  break splits it into more;
- `eager_ops`: the aten operators the forward ran outside every compiled graph: the part of the
  model that compile did not cover (0 for a forward compiled whole). A frame dynamo entered
  ("Torch-Compiled Region") is not a graph: code it skipped (`torch._dynamo.disable`, a frame it
  gave up on) runs eagerly inside one, and counts here.

Time is not the measure: on models this small the forward's CPU time is mostly Python and dynamo's
guards outside the graph (measured: a two-layer MLP's compiled frame held 12-58% of its forward's
span), which says nothing of coverage.

The profiled step is the third optimizer step, inside the warm-up window. The profiler's own start,
stop and event parsing are timed and taken off the training clock (`take_overhead_s`), so the step
counts as the step it was; what the profiler adds while recording (a few microseconds per operator)
stays in it. On a GPU the probe first waits for the device, before starting and before stopping the
profiler, so that the device idles through exactly the host time taken off (the loop's step clock
reads device events: measure.StepClock); this one step then does not run ahead of the device. A
cell that stops before step 3 records no `step`, and is judged on dynamo's counts alone
(verify.verify_compile says so in its record). The backward and the optimizer are not judged: accelerate compiles the module, and its backward runs in autograd's
thread as one compiled function or not at all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

PROFILED_STEP = 3
"""The optimizer step profiled: after the first (which compiles), inside the warm-up window."""
FORWARD_SPAN = "bench::model_forward"
GRAPH_SPANS = ("CompiledFunction", "## Call CompiledFxGraph")
"""The profiler's names for a compiled graph running (torch/_functorch/_aot_autograd, torch/_inductor)."""


@dataclass
class CompileProbe:
    """Profiles the micro-steps of optimizer step PROFILED_STEP of a compile cell (`around`), and
    keeps what they ran (`record`). Inactive (compile=none), it does nothing."""

    active: bool
    forwards: int = 0
    graphs: int = 0
    eager_ops: list[str] = field(default_factory=list)
    profiled: bool = False
    overhead_s: float = 0.0
    """The profiler's own start, stop and event parsing, not yet taken off the training clock."""

    def around(self, model: torch.nn.Module, step: int) -> contextlib.AbstractContextManager:
        """A context for one micro-step of optimizer step `step`: the profiler on the profiled step."""
        if not self.active or step != PROFILED_STEP:
            return contextlib.nullcontext()
        return self._profiled(model)

    def take_overhead_s(self) -> float:
        """The seconds the profiler itself cost since the last call: the loop takes them off its
        clock, so the profiled step is timed as the step it was (0.0 on every other step)."""
        seconds, self.overhead_s = self.overhead_s, 0.0
        return seconds

    @contextlib.contextmanager
    def _profiled(self, model: torch.nn.Module) -> Iterator[None]:
        from torch.profiler import ProfilerActivity, profile

        on_cuda = any(p.is_cuda for p in model.parameters())
        if on_cuda:
            torch.cuda.synchronize()  # the device idles through the profiler's start, taken off below
        started = time.perf_counter()
        with forward_marked(model):
            prof = profile(activities=[ProfilerActivity.CPU])
            prof.__enter__()
            self.overhead_s += time.perf_counter() - started
            try:
                yield
            finally:
                if on_cuda:
                    torch.cuda.synchronize()  # ... and through its stop and parsing
                stopping = time.perf_counter()
                prof.__exit__(None, None, None)
                self.add(prof.events())
                self.overhead_s += time.perf_counter() - stopping

    def add(self, events: Any) -> None:
        """Fold one profile's events in: forwards, the compiled frames inside them, eager operators."""
        self.profiled = True
        for event in events:
            inside = _ancestor_names(event)
            if event.name == FORWARD_SPAN:
                self.forwards += 1
            elif FORWARD_SPAN not in inside:
                continue  # the loss, the backward, the optimizer: not the compiled module
            elif any(n.startswith(GRAPH_SPANS) for n in inside):
                continue  # inside a compiled graph: covered
            elif event.name.startswith(GRAPH_SPANS):
                self.graphs += 1
            elif event.name.startswith("aten::") and not any(n.startswith("aten::") for n in inside):
                self.eager_ops.append(event.name)  # an operator called from eager Python, not from a graph

    def record(self) -> dict[str, Any]:
        """The result's knobs.compile.step entry (empty when no step was profiled)."""
        if not self.profiled:
            return {}
        return {"profiled_step": PROFILED_STEP, "forwards": self.forwards, "graphs_run": self.graphs,
                "eager_ops": len(self.eager_ops), "eager_op_kinds": sorted(set(self.eager_ops))[:10]}


def _ancestor_names(event: Any) -> list[str]:
    names, parent = [], event.cpu_parent
    while parent is not None:
        names.append(parent.name)
        parent = parent.cpu_parent
    return names


@contextlib.contextmanager
def forward_marked(model: torch.nn.Module) -> Iterator[None]:
    """The prepared model's forward as one profiler span, by hooks on the outermost module: they
    run outside the compiled frame (torch.compile's OptimizedModule compiles the wrapped module's
    call), so they change nothing that dynamo guards."""
    spans: list[Any] = []

    def enter(module: torch.nn.Module, args: Any) -> None:
        span = torch.autograd.profiler.record_function(FORWARD_SPAN)
        span.__enter__()
        spans.append(span)

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        spans.pop().__exit__(None, None, None)

    handles = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while spans:
            spans.pop().__exit__(None, None, None)
