"""Every comparison the report makes, as a ratio with an interval over seeds (bench.analysis.stats.ratio_interval).

Three sets of comparisons, all computed here once as plain dicts (report_verdict.py puts them in
sentences, report_render.py in tables, and the JSON keeps them whole):

- each configuration against its reference, the single-process fp32 run of the same model on the
  same kind of device with no knob turned: time-to-target, throughput, memory, quality
  (`add_intervals`, in each row's `vs_reference`);
- reference convergence, in the spirit of MLPerf's reference convergence points: samples-to-target
  of each configuration against that reference; a configuration whose interval lies above 1
  needs significantly more samples and is flagged (`reference_convergence`);
- what turning a knob on did (`knob_sections`, generic over bench.cells.AXIS_DEFAULTS): each
  configuration with an axis away from its default against the same configuration with that axis
  at its default; for compile also the step at which the compile time is paid back.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from bench.analysis import stats
from bench.cells import AXIS_DEFAULTS

if TYPE_CHECKING:
    from bench.analysis.report_model import WorkloadReport

NO_DIFFERENCE = "no difference measured"
ONE_SEED = "one seed"
NO_NUMBERS = "no numbers"


def judge(candidate: list[float | None], reference: list[float | None], words: tuple[str, str]) -> dict[str, Any]:
    """The ratio candidate / reference of two per-seed series, its interval and what it says.

    `words` name a ratio above 1 and below 1 ("slower", "faster"); `verdict` is one of them only
    when the interval excludes 1, else NO_DIFFERENCE, ONE_SEED (a side has a single value: a ratio
    but no interval) or NO_NUMBERS."""
    cand, ref = stats.finite(candidate), stats.finite(reference)
    out: dict[str, Any] = {"ratio": None, "low": None, "high": None, "n_candidate": len(cand), "n_reference": len(ref),
                           "conclusive": False}
    interval = stats.ratio_interval(cand, ref)
    if interval is not None:
        out.update(ratio=interval.ratio, low=interval.low, high=interval.high, conclusive=interval.excludes_one)
        out["verdict"] = (words[0] if interval.ratio > 1 else words[1]) if interval.excludes_one else NO_DIFFERENCE
    elif cand and ref and min(len(cand), len(ref)) < 2 and statistics.median(ref) > 0:
        out.update(ratio=statistics.median(cand) / statistics.median(ref), verdict=ONE_SEED)
    else:  # a side without numbers, or a reference value of 0 (a ratio to it means nothing)
        out["verdict"] = NO_NUMBERS
    return out


def memory_measure(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(row key, words) of the memory figure to compare: CUDA allocated where any of the rows used a GPU."""
    if any(row["cuda_max_allocated_mb"]["median"] for row in rows):
        return "cuda_max_allocated_mb", "CUDA max allocated per rank"
    return "peak_rss_mb_per_rank_max", "host peak RSS per rank"


def quality_key(report: WorkloadReport, row: dict[str, Any]) -> str | None:
    """The per-seed series quality is judged by: the target metric on test, else on its own split."""
    if not report.target:
        return None
    metric = report.target["metric"]
    for split in ("test", report.target.get("split", "val")):
        if f"{split}_{metric}" in row["per_seed"]:
            return f"{split}_{metric}"
    return None


def _quality_words(row: dict[str, Any]) -> tuple[str, str]:
    higher = (row.get("target") or {}).get("higher_is_better", True)
    return ("better", "worse") if higher else ("worse", "better")


def _converged(row: dict[str, Any], key: str) -> list[float | None]:
    """A per-seed series over the converged seeds only (time and samples to target exist only there)."""
    return [v for v, status in zip(row["per_seed"][key], row["per_seed"]["status"], strict=True) if status == "converged"]


def compare_rows(report: WorkloadReport | None, row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`row` against `base`: time-to-target, end-to-end time, throughput, memory per rank and quality."""
    memory, memory_words = memory_measure([row, base])
    out = {
        "time_to_target_s": judge(_converged(row, "time_to_target_s"), _converged(base, "time_to_target_s"),
                                  ("slower", "faster")),
        "cell_wall_s": judge(row["per_seed"]["cell_wall_s"], base["per_seed"]["cell_wall_s"], ("slower", "faster")),
        "samples_per_s": judge(row["per_seed"]["samples_per_s"], base["per_seed"]["samples_per_s"], ("higher", "lower")),
        "memory": {**judge(row["per_seed"][memory], base["per_seed"][memory], ("more memory", "less memory")),
                   "measure": memory, "label": memory_words},
    }
    key = quality_key(report, row) if report is not None else None
    if key and key in base["per_seed"]:
        out["quality"] = {**judge(row["per_seed"][key], base["per_seed"][key], _quality_words(row)),
                          "key": key, "label": row["quality"][key]["label"]}
    return out


def add_intervals(rows: list[dict[str, Any]], report: WorkloadReport | None = None) -> None:
    """Each trained row against its reference (`reference_id`, set by add_comparisons): `vs_reference`."""
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        ref = by_id.get(row.get("reference_id") or "")
        row["vs_reference"] = compare_rows(report, row, ref) if ref is not None and ref is not row and row["trained"] else None


def reference_convergence(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples-to-target of every trained configuration against its reference (MLPerf RCP-style).

    `flag` is True where the interval of the ratio lies above 1: the configuration needs
    significantly more samples to reach the target than the reference (a precision, world size or
    knob that changes the optimisation, not just the clock)."""
    by_id = {row["id"]: row for row in rows}
    checks = []
    for row in rows:
        ref = by_id.get(row.get("reference_id") or "")
        if ref is None or ref is row or not row["trained"]:
            continue
        judged = judge(_converged(row, "samples_to_target"), _converged(ref, "samples_to_target"),
                       ("more samples", "fewer samples"))
        checks.append({"id": row["id"], "reference_id": ref["id"], "converged": f"{row['converged']}/{row['cells']}",
                       "samples_to_target": row["samples_to_target"], "reference_samples": ref["samples_to_target"],
                       **judged, "flag": judged["conclusive"] and judged["ratio"] > 1, "reached": row["converged"] > 0})
    return checks


def _default_partner(rows: list[dict[str, Any]], row: dict[str, Any], axis: str) -> dict[str, Any] | None:
    axes = {name: value for name, value in row["axes"].items() if name != axis}
    for other in rows:
        if (other["model"], other["topology"], other["precision"]) == (row["model"], row["topology"], row["precision"]) \
                and other["axes"] == axes:
            return other
    return None


def compile_payback(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any] | None:
    """The step at which compiling has paid for itself: compile_s / (median step off - median step on).

    None where the results carry no compile time (`knobs.compile.compile_s`); `never` where
    compiling does not make the median step faster (or a step median is missing: unknown, not never)."""
    compile_s = stats.median(on["per_seed"]["compile_s"])
    if compile_s is None:
        return None
    step_on, step_off = stats.median(on["per_seed"]["step_time_median_s"]), stats.median(off["per_seed"]["step_time_median_s"])
    out: dict[str, Any] = {"compile_s": compile_s, "step_on_s": step_on, "step_off_s": step_off, "payback_steps": None,
                           "never": False}
    if step_on is None or step_off is None:
        return out
    saved = step_off - step_on
    if saved <= 0:
        out["never"] = True
    else:
        out["payback_steps"] = compile_s / saved
    return out


def knob_sections(rows: list[dict[str, Any]], report: WorkloadReport | None = None) -> list[dict[str, Any]]:
    """Per knob axis with a configuration away from its default: what turning it on did, against the
    same configuration with the axis at its default (the other axes as they were)."""
    sections = []
    for axis, default in AXIS_DEFAULTS.items():
        entries = []
        for row in rows:
            if axis not in row["axes"]:
                continue
            off = _default_partner(rows, row, axis)
            entry: dict[str, Any] = {"id": row["id"], "value": row["axes"][axis], "off_id": off["id"] if off else None,
                                     "converged": f"{row['converged']}/{row['cells']}",
                                     "off_converged": f"{off['converged']}/{off['cells']}" if off else None}
            if off is not None and row["trained"] and off["trained"]:
                entry.update(compare_rows(report, row, off))
                if axis == "compile":
                    entry["payback"] = compile_payback(row, off)
            entries.append(entry)
        if entries:
            sections.append({"axis": axis, "default": default, "entries": entries})
    return sections
