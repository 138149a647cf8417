"""A run directory -> the numbers of its report: one row per configuration, seeds aggregated.

Cells are grouped by (workload, model variant, topology, precision); each group's seeds become one
row (median and min-max; see bench/analysis/stats.py for the rules). Every figure is computed here, once,
as plain dicts; bench/analysis/report_render.py only formats them and bench/analysis/plots.py only draws them, so
the Markdown, the CSV, the JSON and the plots cannot disagree.

Nothing here knows a workload by name: the quality columns are the metrics the results carry and
the target metric is the one each result names in its target.

The results come in typed (bench.results.Result, as `load_run` reads them); the rows built from
them for the renderers are plain dicts.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.analysis import stats
from bench.analysis.report_model import Report, WorkloadReport
from bench.cells import CellKey, is_config_path
from bench.paths import ACCELERATE_CONFIGS_DIR
from bench.results import WITH_NUMBERS, Result, load_run
from bench.run_meta import RunMeta

TRAINED = ("converged", "not_converged")
PRECISION_ORDER = {"fp32": 0, "tf32": 1, "bf16": 2, "fp16": 3, "fp8": 4}
REFERENCE_PRECISION = "fp32"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_meta(run_dir: Path) -> RunMeta:
    """The run's run.json (empty when it has none); a one-line error when it is damaged."""
    return RunMeta.read(Path(run_dir)) or RunMeta()


def resolve_peaks(recorded: dict[str, Any] | None, environment: dict[str, Any],
                  measure: bool = True) -> tuple[dict | None, str]:
    """The peak FLOP/s for MFU and a sentence saying where it comes from.

    A run records its peaks in run.json (`recorded`, RunMeta.peak_flops). For an older run without them, the peak is measured now,
    but only used when this host is the run's hardware by what decides the figures (core count,
    CPU precision flags, GPUs: two "AMD EPYC" of one class may differ in bf16): a peak from another
    machine would make the MFU a fiction. Measured while other work ran (a 1-minute load average
    above half the usable cores), the peak is low and every MFU high: the sentence says so.
    """
    if recorded:
        return recorded, "recorded in run.json when the run started, on the machine that ran the cells"
    if not measure:
        return None, "not recorded with the run and not measured (MFU omitted)"
    from bench.analysis.gate.baselines import Hardware, match_hardware
    from bench.harness.peak import measure_host_apart  # in a child process: the report imports no torch

    host = measure_host_apart()
    here, there = Hardware.of_environment(host.get("hardware")), Hardware.of_environment(environment)
    if there is not None and here is not None:
        same, why = match_hardware(there, here)
        if not same:
            return None, f"not recorded with the run, and this host is not the run's hardware ({why}); MFU omitted"
    elif environment.get("hardware_class") and environment["hardware_class"] != host["hardware_class"]:
        return None, (f"not recorded with the run, and this host ({host['hardware_class']}) is not the run's "
                      f"({environment['hardware_class']}); MFU omitted")
    load, cores = (host.get("load_average") or [0.0])[0], host.get("usable_cores") or 1
    busy = (f"; **measured while other work ran** (1-minute load {load:.1f} on {cores} cores): the peak is low and "
            "every MFU too high") if load > 0.5 * cores else ""
    return host["peak_flops"], f"not recorded with the run: measured by `bench report` on this host, the run's hardware{busy}"


# ---------------------------------------------------------------------------------------------
# Per-cell figures
# ---------------------------------------------------------------------------------------------


@functools.cache
def _topology_file(name: str) -> dict[str, Any]:
    """What a topology's config file (bench/configs/accelerate/<name>.yaml or a user's path) promises,
    for cells that never ran (skipped, invalid...): its processes, its nodes and whether it computes on the CPU.

    Read as plain YAML with accelerate's defaults (one process, not the CPU), not through
    bench.harness.topology.load_topology: that goes through accelerate, which imports torch, and a
    report needs neither. A file that is gone or not a mapping promises nothing ({})."""
    path = Path(name).expanduser() if is_config_path(name) else ACCELERATE_CONFIGS_DIR / f"{name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(raw, dict):
        return {}
    processes = raw.get("num_processes") or 1
    if isinstance(processes, bool) or not isinstance(processes, int):
        return {}
    machines = raw.get("num_machines") or 1
    if isinstance(machines, bool) or not isinstance(machines, int):
        machines = 1
    return {"num_processes": processes, "num_machines": machines, "use_cpu": bool(raw.get("use_cpu"))}


def _topology(result: Result) -> dict[str, Any]:
    # A trained cell records its topology; the others only name it.
    return result.topology or _topology_file(result.cell.topology)


def cell_device(result: Result) -> str | None:
    """The device the cell computed on (observed), else the one its topology asks for."""
    observed = result.observed or {}
    if observed.get("device") and result.status in WITH_NUMBERS:
        return observed["device"]
    topology = _topology(result)
    if "use_cpu" in topology:
        return "cpu" if topology["use_cpu"] else "cuda"
    return observed.get("device")


def cell_processes(result: Result) -> int | None:
    """The processes the topology asks for (an invalid cell may have observed fewer)."""
    processes = _topology(result).get("num_processes")
    return int(processes) if processes else None


def cell_nodes(result: Result) -> int | None:
    """The nodes (accelerate's num_machines) the topology asks for."""
    nodes = _topology(result).get("num_machines")
    return int(nodes) if nodes else None


def compute_dtype(result: Result) -> str:
    """The dtype whose peak FLOP/s the cell's MFU divides by. A tf32 cell computes fp32 tensors in
    TF32 on the tensor cores: its peak is the tf32 one, not fp32's."""
    precision = result.cell.precision
    if precision in ("tf32", "fp8"):
        return precision  # an fp8 cell's peak is fp8's, never bf16's (its autocast dtype)
    return (result.observed or {}).get("compute_dtype") or precision


def peak_for(peaks: dict[str, Any] | None, device: str | None, dtype: str, processes: int, kind: str) -> float | None:
    """Peak FLOP/s available to a cell. `kind` is 'measured' or 'datasheet'.

    A CPU peak is measured with all of the host's threads, which the ranks of a CPU cell share, so
    it is not multiplied by the processes; a GPU peak is per device and every rank has its own.
    """
    if not peaks or device not in peaks:
        return None
    value = (peaks[device].get(kind) or {}).get(dtype)
    if value is None:
        return None
    return float(value) * (processes if device == "cuda" else 1)


NATIVE_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}
"""The CPU flags without which a CPU only emulates a precision (oneDNN converts to fp32 and back)."""


def emulated_on_cpu(result: Result) -> bool:
    """Whether the cell computed on a CPU in a half precision that CPU has no instructions for
    (bf16 without avx512_bf16 or AMX). Its "peak" is that of the emulation: 91% of a 44 GFLOP/s
    emulated peak makes a cell 3x slower than fp32 look efficient, so it gets no MFU."""
    flags = result.environment.cpu_precision_flags
    needed = NATIVE_CPU_FLAGS.get(compute_dtype(result))
    if cell_device(result) != "cpu" or needed is None or flags is None:
        return False
    return not any(flag in flags for flag in needed)


def mfu(result: Result, peaks: dict[str, Any] | None, kind: str, hardware: bool = False) -> float | None:
    """Model FLOPs utilisation of one cell: training FLOP/s achieved over the peak. None where the
    cell's precision is only emulated by its CPU (`emulated_on_cpu`): that is no utilisation of
    the hardware. The model's FLOPs exclude what activation checkpointing recomputes; `hardware`
    counts it too (HFU), for the cells that recorded it (`hardware_flops_per_sample`)."""
    if emulated_on_cpu(result):
        return None
    flops, rate = result.flops_per_sample, result.throughput.samples_per_s
    if hardware:
        flops = result.hardware_flops_per_sample
    peak = peak_for(peaks, cell_device(result), compute_dtype(result), cell_processes(result) or 1, kind)
    if not flops or not rate or not peak:
        return None
    utilisation = flops * rate / peak
    # Above 100% the peak was measured too low (a loaded machine, or a matmul too small to reach
    # the kernel's best): claim no figure rather than an impossible one.
    return utilisation if utilisation <= 1.0 else None


BUSY_MARGIN = 1.0
"""Runnable threads beyond the cores that make a host busy. A cell keeps up to `cores` threads busy
itself and leaves that in the 1-minute average for the next cell: on the idle 2-core machine a
classical-baseline cell started at 2.07 right after a training cell, with nothing else running."""


def busy_host(result: Result) -> dict[str, Any] | None:
    """The cell's host load (`host_load`, recorded by the runner) when its 1-min load average at the
    cell's start or end was more than BUSY_MARGIN above the cores it could use: other work queued
    for those cores, so its speed figures are contaminated. None for a quiet host or a result that
    records no load."""
    load = result.host_load
    if not load.cores:
        return None
    one_min = {when: loads[0] for when, loads in (("start", load.start), ("end", load.end)) if loads}
    if not any(value > load.cores + BUSY_MARGIN for value in one_min.values()):
        return None
    return {"id": result.key.id, "seed": result.cell.seed, "cores": load.cores,
            "load_start": one_min.get("start"), "load_end": one_min.get("end")}


_Item = TypeVar("_Item")


def _metric_series(results: Sequence[_Item], getter: Callable[[_Item], dict[str, Any] | None],
                   ) -> tuple[dict[str, list[float | None]], dict[str, str]]:
    """{"val_f1": [one value per result], ...} for every split and numeric metric any result (or
    classical model's entry) carries, its metrics as `getter` gives them.

    Splits are whatever the workload reports (val, test, an out-of-domain set...); nested entries
    (per-threshold reports, detection rates per category) are not quality columns and are skipped.
    """
    series: dict[str, list[float | None]] = {}
    labels: dict[str, str] = {}
    for i, r in enumerate(results):
        for split, values in (getter(r) or {}).items():
            if not isinstance(values, dict):
                continue
            for metric, value in values.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                series.setdefault(f"{split}_{metric}", [None] * len(results))[i] = float(value)
                labels[f"{split}_{metric}"] = f"{split} {metric}"
    return series, labels


def _quality(series: dict[str, list[float | None]], labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each quality series summarised, with the label its column shows ("test f1")."""
    return {key: {**summarise(values), "label": labels[key]} for key, values in series.items()}


def summarise(values: list[float | None]) -> dict[str, Any]:
    """median, min, max and n of one per-seed series (None where no seed has a number)."""
    rng = stats.value_range(values)
    return {
        "median": stats.median(values),
        "min": rng[0] if rng else None,
        "max": rng[1] if rng else None,
        "n": len(stats.finite(values)),
    }


# ---------------------------------------------------------------------------------------------
# Groups
# ---------------------------------------------------------------------------------------------


def group_row(results: list[Result], peaks: dict[str, Any] | None) -> dict[str, Any]:
    """One configuration over its seeds; `results` are all its train cells, whatever their status."""
    cell = results[0].cell
    trained = [r for r in results if r.status in TRAINED]
    converged = [r for r in trained if r.status == "converged"]
    statuses: dict[str, int] = defaultdict(int)
    for r in results:
        statuses[r.status] += 1
    processes = next((p for p in map(cell_processes, results) if p), None)
    nodes = next((n for n in map(cell_nodes, results) if n), None)
    device = next((d for d in map(cell_device, results) if d), None)

    ttt = [r.timings.time_to_target_s for r in converged]
    quality, labels = _metric_series(trained, lambda r: r.metrics)
    per_seed = {
        "seeds": [r.cell.seed for r in trained],
        "status": [r.status for r in trained],
        "time_to_target_s": [r.timings.time_to_target_s for r in trained],
        "samples_to_target": [r.samples_to_target for r in trained],
        "train_seconds": [r.timings.train_seconds for r in trained],
        "init_s": [r.timings.init_s for r in trained],
        "samples_per_s": [r.throughput.samples_per_s for r in trained],
        "tokens_per_s": [r.throughput.tokens_per_s for r in trained],
        "peak_rss_mb_per_rank_max": [r.memory.peak_rss_mb_max for r in trained],
        "peak_rss_mb_sum": [r.memory.peak_rss_mb_sum for r in trained],
        "cuda_max_allocated_mb": [r.memory.cuda_max_allocated_mb_max for r in trained],
        "cuda_max_reserved_mb": [r.memory.cuda_max_reserved_mb_max for r in trained],
        "flops_per_sample": [r.flops_per_sample for r in trained],
        "cell_wall_s": [r.cell_wall_s for r in trained],
        "wall_alone_s": [r.wall_alone_s for r in trained],
        "step_time_median_s": [r.timings.step_time_median_s for r in trained],
        "compile_s": [knob_figure(r, "compile", "compile_s") for r in trained],
        "mfu_measured": [mfu(r, peaks, "measured") for r in trained],
        "mfu_datasheet": [mfu(r, peaks, "datasheet") for r in trained],
        "hfu_measured": [mfu(r, peaks, "measured", hardware=True) for r in trained],
        **quality,
    }
    key = results[0].key.without_seed()
    row: dict[str, Any] = {
        "kind": "accelerate",
        "id": key.id,
        "workload": cell.workload,
        "model": cell.variant,
        "topology": cell.topology,
        "axes": dict(key.axes),
        "processes": processes,
        "nodes": nodes,
        "device": device,
        "precision": cell.precision,
        "target": _target(results),
        "cells": len(results),
        "trained": len(trained),
        "converged": len(converged),
        "statuses": dict(statuses),
        "time_to_target_s": {**summarise(ttt), "olympic_mean": stats.olympic_mean(ttt, len(trained) - len(converged))},
        "samples_to_target": summarise([r.samples_to_target for r in converged]),
        "quality": _quality(quality, labels),
        "per_seed": per_seed,
    }
    for key in ("samples_per_s", "tokens_per_s", "peak_rss_mb_per_rank_max", "peak_rss_mb_sum", "cuda_max_allocated_mb",
                "cuda_max_reserved_mb", "flops_per_sample", "mfu_measured", "mfu_datasheet", "hfu_measured"):
        row[key] = summarise(per_seed[key])
    row["per_seed"]["time_to_target_s_converged"] = ttt
    row["busy_host"] = [b for b in map(busy_host, trained) if b]
    row["curves"] = [_curve(r) for r in trained if r.curve and r.target]
    return row


def _target(results: list[Result]) -> dict[str, Any] | None:
    """The target the first of `results` that names one trained to, as the report shows it (None: none does)."""
    return next((r.target.to_dict() for r in results if r.target), None)


def knob_figure(result: Result, axis: str, name: str) -> float | None:
    """A figure a knob records apart (`result.knobs[axis][name]`, e.g. the compile time), or None.

    `knobs` is free-form (each knob records its own figures), and a result without it (every result
    before the knob axes) simply has no such figure."""
    knobs = result.knobs
    entry = knobs.get(axis) if isinstance(knobs, dict) else None
    value = entry.get(name) if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _curve(result: Result) -> dict[str, Any]:
    """The target metric against training-clock seconds and samples seen (all processes; None for a
    point that records none), as evaluated during training (a result with a target and a curve)."""
    metric = result.target.metric
    points = [p for p in result.curve if p.get(metric) is not None and p.get("seconds") is not None]
    return {
        "seed": result.cell.seed,
        "status": result.status,
        "metric": metric,
        "seconds": [p["seconds"] for p in points],
        "value": [p[metric] for p in points],
        "samples": [p.get("samples") for p in points],
    }


def _find(rows: list[dict[str, Any]], model: str, device: str | None, precision: str, processes: int = 1,
          axes: dict[str, Any] | None = None):
    """The trained row of that configuration with those knob axes (none turned: the defaults)."""
    for row in rows:
        if ((row["model"], row["device"], row["precision"], row["processes"]) == (model, device, precision, processes)
                and row["axes"] == (axes or {}) and row["trained"]):
            return row
    return None


def add_comparisons(rows: list[dict[str, Any]]) -> None:
    """Speedup against the single-process fp32 group of the same model on the same device type;
    scaling efficiency against the single-process group of the same precision (so it measures
    what the extra processes bought, not what the precision did). A weak-scaled row is held to the
    single process at its own per-process batch only: the default one holds another batch."""
    for row in rows:
        ref = _find(rows, row["model"], row["device"], REFERENCE_PRECISION)
        single = _find(rows, row["model"], row["device"], row["precision"], axes=row["axes"])
        if single is None and row["axes"].get("scaling") != "weak":
            single = _find(rows, row["model"], row["device"], row["precision"])
        row["reference"] = f"{ref['topology']} {ref['precision']}" if ref else None
        row["reference_id"] = ref["id"] if ref else None
        row["speedup_time_to_target"] = stats.speedup(
            ref["time_to_target_s"]["median"] if ref else None, row["time_to_target_s"]["median"]
        )
        row["throughput_ratio"] = stats.rate_ratio(row["samples_per_s"]["median"], ref["samples_per_s"]["median"] if ref else None)
        multi = (row["processes"] or 1) > 1
        row["scaling_efficiency"] = (
            stats.scaling_efficiency(row["samples_per_s"]["median"], single["samples_per_s"]["median"], row["processes"])
            if multi and single
            else None
        )


def baseline_rows(results: list[Result]) -> list[dict[str, Any]]:
    """One row per classical model, its seeds aggregated."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    busy: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        for entry in r.baselines or []:
            by_name[entry["name"]].append({**entry, "seed": r.cell.seed})
            if busy_host(r):
                busy[entry["name"]][r.key.id] = busy_host(r)
    rows = []
    for name, entries in by_name.items():
        series, labels = _metric_series(entries, lambda e: e.get("metrics"))
        rows.append(
            {
                "kind": "baseline",
                "workload": results[0].cell.workload,
                "model": name,
                "cells": len(entries),
                "quality": _quality(series, labels),
                "fit_seconds": summarise([e.get("fit_seconds") for e in entries]),
                "per_seed": {"seeds": [e["seed"] for e in entries], **series},
                "busy_host": list(busy[name].values()),
            }
        )
    return rows


def scale_key(row: dict[str, Any]) -> tuple:
    """A configuration's place by scale: CPU before GPU, then fewer processes first, then fewer nodes
    (2 processes on one node before 2 processes on 2 nodes), then the topology's name. The report's
    rows and the plots' colours and legends follow it."""
    return (row["device"] != "cpu", row["processes"] or 0, row.get("nodes") or 1, row["topology"])


def row_order_key(row: dict[str, Any]) -> tuple:
    """The report's row order: model, then scale (`scale_key`), then precision, then knob axes."""
    return (
        row["model"],
        *scale_key(row),
        PRECISION_ORDER.get(row["precision"], 9),
        sorted((name, str(value)) for name, value in row["axes"].items()),  # the default (no axes) first
    )


def train_results(results: list[Result]) -> list[Result]:
    """The Accelerate cells among `results` (the classical-baseline cells left out)."""
    return [r for r in results if r.cell.kind != "baseline" and r.status != "baseline"]


def configuration_rows(train: list[Result], peaks: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One workload's train cells as one row per configuration (its seeds aggregated), in display
    order, each with its reference (`reference_id`) and speedups (`add_comparisons`). What the
    report tables and `bench run --seeds auto` (bench/analysis/seeds_auto.py) both start from."""
    groups: dict[CellKey, list[Result]] = defaultdict(list)
    for r in train:
        groups[r.key.without_seed()].append(r)  # the seeds of one configuration
    rows = sorted((group_row(g, peaks) for g in groups.values()), key=row_order_key)
    add_comparisons(rows)
    return rows


# ---------------------------------------------------------------------------------------------
# The whole report
# ---------------------------------------------------------------------------------------------


def build_report(run_dir: Path, measure_peaks: bool = True) -> Report:
    """Read a run directory (or one result file) and compute every figure of its report."""
    from bench.analysis.report_compare import (
        add_intervals,
        control_claims,
        flag_convergence,
        iter_claims,
        knob_sections,
        rankings,
        reference_convergence,
    )
    from bench.analysis.report_verdict import verdict

    run_dir = Path(run_dir)
    results = load_run(run_dir)
    meta = load_meta(run_dir) if run_dir.is_dir() else RunMeta()
    environment = meta.environment or next((env for r in results if (env := r.environment.to_dict())), {})
    peaks, peaks_source = resolve_peaks(meta.peak_flops, environment, measure_peaks)

    by_workload: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_workload[r.cell.workload].append(r)

    workloads = []
    for name in sorted(by_workload):
        cells = by_workload[name]
        train = train_results(cells)
        rows = configuration_rows(train, peaks)
        report = WorkloadReport(
            name=name,
            target=_target(train),
            rows=rows,
            baselines=baseline_rows([r for r in cells if r.status == "baseline"]),
            not_converged=[_listing(r) for r in train if r.status == "not_converged"],
            data=data_notes(cells),
        )
        add_intervals(rows, report)  # every comparison as a claim: a ratio and an exact test (report_compare.py)
        report.convergence = reference_convergence(rows)
        report.knobs = knob_sections(rows, report)
        report.rankings = rankings(rows)
        workloads.append(report)
    # All of the report's claims are decided together, so its error rate holds over all of them.
    alpha = report_alpha(meta)
    claims = [c for w in workloads for part in (w.rows, w.convergence, w.knobs, w.rankings) for c in iter_claims(part)]
    decided = control_claims(claims, alpha)
    for report in workloads:
        flag_convergence(report.convergence)
        report.verdict = verdict(report)

    return Report(
        run_dir=run_dir,
        run_id=run_dir.name if run_dir.is_dir() else run_dir.stem,
        meta=meta,
        environment=environment,
        peaks=peaks,
        peaks_source=peaks_source,
        workloads=workloads,
        without_numbers=[_listing(r) for r in results if r.status not in WITH_NUMBERS],
        cell_count=len(results),
        launch_seconds=sum(r.cell_wall_s for r in results if r.cell_wall_s) or None,
        seeds_auto=seeds_auto_listing(meta),
        alpha=alpha,
        claims=decided,
    )


def report_alpha(meta: RunMeta) -> float:
    """The level a report decides its claims at: 5%, or for a `--seeds auto` run the per-look level
    of its sequential design (the seeds it stopped at were chosen by looking)."""
    from bench.analysis.report_compare import REPORT_ALPHA

    auto = meta.seeds_auto or {}
    if isinstance(auto.get("start"), int) and isinstance(auto.get("max"), int):
        return stats.SequentialDesign(auto["start"], auto["max"], REPORT_ALPHA).level
    return REPORT_ALPHA


STILL_OPEN = "undecided when the run stopped (`bench run --resume` continues it)"


def seeds_auto_listing(meta: RunMeta) -> dict[str, Any] | None:
    """run.json's `seeds_auto` (`bench run --seeds auto`, bench/analysis/seeds_auto.py) as the report
    lists it: per configuration its seed count, why it stopped and its time-to-target comparison
    with the reference. None for a run with fixed seeds (or a record that is not a mapping)."""
    entry = meta.seeds_auto
    if not isinstance(entry, dict) or not isinstance(entry.get("cells"), dict):
        return None
    cells = []
    for config_id, cell in sorted(entry["cells"].items()):
        if not isinstance(cell, dict):
            continue
        judged = cell.get("time_to_target")
        cells.append({"id": config_id, "workload": cell.get("workload"), "seeds": cell.get("seeds"),
                      "stopped": cell.get("stopped") or STILL_OPEN, "reference": cell.get("reference"),
                      "time_to_target": judged if isinstance(judged, dict) else None})
    return {"start": entry.get("start"), "max": entry.get("max"), "rounds": entry.get("rounds"),
            "done": bool(entry.get("done")), "cells": cells}


def data_notes(results: list[Result]) -> list[str]:
    """One line per data file the cells read (`data.sha256` of their results): its SHA-256 and whether it is
    the published content, or, where cells read different content, which cells read which. Results that
    record no hashes (written before they were recorded) are left out: unknown, not different."""
    from bench.data.datasets import published_sha256

    seen: dict[str, dict[str, list[str]]] = {}
    for r in results:
        for name, sha in (r.data.sha256 or {}).items():
            seen.setdefault(name, {}).setdefault(sha, []).append(r.key.id)
    lines = []
    for name, by_sha in sorted(seen.items()):
        if len(by_sha) == 1:
            (sha,) = by_sha
            published = published_sha256(name)
            what = "content not fixed by its publisher" if published is None else (
                "the published file" if sha == published else "**not** the published file")
            lines.append(f"Data: `{name}` SHA-256 `{sha[:12]}...` ({what}).")
            continue
        parts = [
            f"{sha[:12]}... in {len(ids)} cell{'s' if len(ids) != 1 else ''}"
            + (f" ({', '.join(f'`{i}`' for i in ids)})" if len(ids) <= 3 else "")
            for sha, ids in by_sha.items()
        ]
        lines.append(f"**Different data**: {name} has SHA-256 {', '.join(parts[:-1])} and {parts[-1]}; "
                     "their figures do not compare like for like.")
    return lines


def _listing(result: Result) -> dict[str, Any]:
    """A cell as the 'never hide a cell' lists show it: who it is, what it ended as, and why."""
    cell = result.cell
    entry = {
        "id": result.key.id,
        "workload": cell.workload,
        "model": cell.variant,
        "topology": cell.topology,
        "precision": cell.precision,
        "seed": cell.seed,
        "status": result.status,
        "reason": result.reason or "",
    }
    stderr = [line for line in (result.stderr_tail or "").splitlines() if line.strip()]
    if stderr:
        entry["last_stderr_line"] = stderr[-1].strip()
    target, curve = result.target, result.curve or []
    if target and curve:
        reached = stats.finite([point.get(target.metric) for point in curve])
        pick = max if target.higher else min
        entry["best"] = {"metric": target.metric, "value": pick(reached) if reached else None, "target": target.value}
    return entry
