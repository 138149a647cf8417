"""What `bench tune` chooses among, and what it rules out before running anything.

A `Candidate` is one Accelerate setup: topology (a built-in config or the user's own file),
precision and the knob axes of bench.cells.AXIS_DEFAULTS. `enumerate_candidates` lists every
combination of a `SearchSpace`; `prune` keeps those this host could run to a number and lists
every other with its reason (`Pruned`), never dropping one silently.

The reasons are the facts bench already acts on elsewhere, so that a pruned candidate is exactly
one a matrix run would skip or refuse: the capability check (`skip_reason`: GPUs, tf32, fp8,
DeepSpeed), the known fallbacks (`expected_verdict`: fp16 computes fp32 on a CPU, sharding runs as
plain DDP there, dynamo runs an RNN eagerly), the workload's own knob refusals (checkpointing
needs blocks), CPU affinity (refused on a CPU host: accelerate pins ranks only on CUDA hosts), the
bf16 RNN kernel oneDNN lacks without AVX-512, and one measured bound: a cold inductor compile
that alone outlasts the reference's slowest run to target cannot pay back (`compile_cannot_pay`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bench.analysis.tune.facts import COMPILE_MARGIN
from bench.cells import AXIS_DEFAULTS, Budget, Cell, topology_label
from bench.errors import BenchError, one_of
from bench.harness.host import Host
from bench.harness.matrix import expected_verdict, skip_reason
from bench.harness.topology import PRECISIONS, Topology, available_topologies, load_topology

COMPILE_VALUES = ("none", "inductor")
DEFAULT_GRAD_ACCUM = (1, 2)
CHECKPOINTING_VALUES = ("off", "on")


@dataclass(frozen=True, order=True)
class Candidate:
    """One Accelerate setup of one model: what a matrix cell is, less its seed and budget."""

    topology: str
    """A built-in topology's name or the path of the user's accelerate config file."""
    precision: str
    compile: str = "none"
    grad_accum: int = 1
    checkpointing: str = "off"
    scaling: str = "strong"
    """Not searched (a tune compares setups at the workload's own global batch), carried through."""

    @property
    def label(self) -> str:
        """The name it goes by in tables: topology, precision and every knob away from its default."""
        knobs = "".join(f" {name}={getattr(self, name)}" for name, default in AXIS_DEFAULTS.items()
                        if getattr(self, name) != default)
        return f"{topology_label(self.topology)} {self.precision}{knobs}"

    def cell(self, workload: str, variant: str, seed: int, budget: Budget, params: dict[str, Any],
             timeout_s: float) -> Cell:
        return Cell(workload, variant, self.topology, self.precision, seed, budget, dict(params), "train", timeout_s,
                    compile=self.compile, grad_accum=self.grad_accum, checkpointing=self.checkpointing,
                    scaling=self.scaling)

    @classmethod
    def of(cls, cell: Cell) -> Candidate:
        return cls(cell.topology, cell.precision, cell.compile, cell.grad_accum, cell.checkpointing, cell.scaling)


@dataclass(frozen=True)
class SearchSpace:
    """The axes `bench tune` enumerates. Each defaults to every value bench knows for the host's kind."""

    topologies: tuple[str, ...]
    """Built-in names and config-file paths. Default: every built-in of the host's device kind."""
    precisions: tuple[str, ...] = PRECISIONS
    compile: tuple[str, ...] = COMPILE_VALUES
    grad_accum: tuple[int, ...] = DEFAULT_GRAD_ACCUM
    """Micro-steps per optimizer step; the global batch stays the workload's."""
    checkpointing: tuple[str, ...] = CHECKPOINTING_VALUES


@dataclass(frozen=True)
class Pruned:
    """A candidate ruled out before the race, and why."""

    candidate: Candidate
    reason: str


@dataclass
class HostFacts:
    """What the pruning rules need to know about this host, gathered once."""

    host: Host
    cpu_flags: tuple[str, ...] = ()
    """The CPU's precision flags (bench.harness.host.precision_flags)."""
    cold_compile_floor_s: float | None = None
    """The least any cold inductor compile costs here (`bench.analysis.tune.facts`), if measured."""
    reference_slowest_s: float | None = None
    """The slowest time-to-target of the reference's seeds, once it ran."""
    notes: list[str] = field(default_factory=list)


def default_topologies(host: Host) -> tuple[str, ...]:
    """Every built-in topology of this host's device kind: the GPU ones on a GPU host, else the CPU ones."""
    names = available_topologies()
    prefix = "gpu-" if host.gpus else "cpu-"
    return tuple(name for name in names if name.startswith(prefix))


def enumerate_candidates(space: SearchSpace) -> list[Candidate]:
    """Every combination of the space's axes, in axis order."""
    return [Candidate(t, p, c, g, k) for t, p, c, g, k in itertools.product(
        space.topologies, space.precisions, space.compile, space.grad_accum, space.checkpointing)]


def prune(candidates: list[Candidate], workload: str, variant: str, params: dict[str, Any],
          facts: HostFacts) -> tuple[list[Candidate], list[Pruned]]:
    """(the candidates to race, the others each with its reason), in the given order."""
    kept, pruned = [], []
    for candidate in candidates:
        reason = prune_reason(candidate, workload, variant, params, facts)
        if reason:
            pruned.append(Pruned(candidate, reason))
        else:
            kept.append(candidate)
    return kept, pruned


def prune_reason(candidate: Candidate, workload: str, variant: str, params: dict[str, Any],
                 facts: HostFacts) -> str | None:
    """Why this host cannot run the candidate to a number worth racing, or None."""
    from workloads import workload_class

    topology = load_topology(candidate.topology)
    cell = candidate.cell(workload, variant, 0, Budget(), params, 60.0)
    cls = workload_class(workload)
    for reason in (
        skip_reason(cell, topology, facts.host),
        _known_fallback(cell, topology),
        cls.knob_refusal(variant, {name: getattr(candidate, name) for name in AXIS_DEFAULTS}),
        _affinity_refused(topology),
        _no_bf16_rnn_kernel(candidate, topology, variant in cls.rnn_variants, facts.cpu_flags),
        compile_cannot_pay(candidate, facts),
    ):
        if reason:
            return reason
    return None


def _known_fallback(cell: Cell, topology: Topology) -> str | None:
    expected = expected_verdict(cell, topology)
    return f"would come out {expected}" if expected else None


def _affinity_refused(topology: Topology) -> str | None:
    if topology.enable_cpu_affinity and topology.use_cpu:
        return ("enable_cpu_affinity on a CPU topology: accelerate pins ranks only on CUDA hosts, so bench "
                "refuses the cell as unsupported (docs/knobs.md)")
    return None


def _no_bf16_rnn_kernel(candidate: Candidate, topology: Topology, rnn: bool, cpu_flags: tuple[str, ...]) -> str | None:
    if rnn and topology.use_cpu and candidate.precision == "bf16" and "avx512f" not in cpu_flags:
        return "bf16 RNN on a CPU without AVX-512: oneDNN has no bf16 GRU/LSTM kernel here (it raises)"
    return None


def compile_cannot_pay(candidate: Candidate, facts: HostFacts) -> str | None:
    """A cold compile that alone outlasts the reference's slowest whole run to target: the
    candidate's time-to-target is at least its compile, so it cannot beat the reference. A bound
    from two measurements, not a test: the floor is the cheapest cold compile this host makes (one
    kernel), which every compiled training step exceeds."""
    floor, slowest = facts.cold_compile_floor_s, facts.reference_slowest_s
    if candidate.compile == "none" or floor is None or slowest is None or floor <= COMPILE_MARGIN * slowest:
        return None
    return (f"compile={candidate.compile}: a cold compile costs at least {floor:.1f} s on this host (measured, "
            f"one kernel), over {COMPILE_MARGIN:g}x the reference's slowest whole run to target ({slowest:.2f} s): "
            "it cannot pay back in a run this short")


def reference_candidate(host: Host) -> Candidate:
    """The single-process fp32 setup with every knob at its default: what every candidate's
    samples-to-target and quality are checked against (MLPerf's reference convergence points)."""
    return Candidate("gpu-1" if host.gpus else "cpu-1proc", "fp32")


def with_reference(candidates: list[Candidate], reference: Candidate) -> list[Candidate]:
    """The candidates with the reference first (added when the space left it out)."""
    return [reference] + [c for c in candidates if c != reference]


def validate_space(space: SearchSpace) -> None:
    """Fail in one line on a topology that does not load, or a precision or knob value bench does not know."""
    for topology in space.topologies:
        load_topology(topology)
    for axis, values, known in (("precision", space.precisions, PRECISIONS), ("compile", space.compile, COMPILE_VALUES),
                                ("checkpointing", space.checkpointing, CHECKPOINTING_VALUES)):
        for value in values:
            if value not in known:
                raise one_of(axis, value, known)
    for value in space.grad_accum:
        if not isinstance(value, int) or value < 1:
            raise BenchError(f"grad accumulation must be a positive whole number of micro-steps, got {value!r}")
