"""What a report holds: the figures bench/analysis/report.py computes, which report_render.py formats,
report_verdict.py puts in sentences and plots.py draws. Its own module, so that those three and
report.py all import it and none of them imports another's caller (no import cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run_meta import RunMeta


@dataclass
class WorkloadReport:
    """Everything the report says about one workload."""

    name: str
    target: dict[str, Any] | None
    """{"metric", "value", "split"} as the results state it; None when no cell trained."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One per (variant, topology, precision) group, in display order."""
    baselines: list[dict[str, Any]] = field(default_factory=list)
    not_converged: list[dict[str, Any]] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    convergence: list[dict[str, Any]] = field(default_factory=list)
    """Samples-to-target of each configuration against its reference (report_compare.reference_convergence)."""
    knobs: list[dict[str, Any]] = field(default_factory=list)
    """Per knob axis: each configuration with it turned against the same with it at its default."""
    rankings: dict[str, Any] = field(default_factory=dict)
    """"Fastest to target" and "least memory": the best by median and every other configuration
    against it, as claims (report_compare.rankings); those not told apart tie with it."""
    data: list[str] = field(default_factory=list)
    """What the cells read (file, SHA-256), and a **Different data** line where cells read different content."""


@dataclass
class Report:
    run_dir: Path
    run_id: str
    meta: RunMeta
    """run.json (matrix, command, filters, environment); empty when the run has none."""
    environment: dict[str, Any]
    peaks: dict[str, Any] | None
    peaks_source: str
    workloads: list[WorkloadReport]
    without_numbers: list[dict[str, Any]]
    """Skipped, unsupported, invalid and failed cells, each with its reason."""
    cell_count: int
    launch_seconds: float | None = None
    """Sum of the cells' launch-to-exit wall time (`cell_wall_s`); None for runs without it."""
    alpha: float = 0.05
    """The report's family-wise error rate over all its claims (Holm; a `--seeds auto` run's is its
    sequential design's per-look level)."""
    claims: int = 0
    """How many comparisons the report decided together."""
    seeds_auto: dict[str, Any] | None = None
    """`bench run --seeds auto`: start and maximum seeds, rounds, and per configuration its seeds and
    why it stopped (report.seeds_auto_listing); None for a run with fixed seeds."""
