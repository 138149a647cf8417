"""The answer a user came for: per workload, a few sentences at the top of the report.

Each sentence names the figures it rests on and says when the seeds cannot support it: a claim is
only made without a caveat when the seed ranges of the two sides are apart (bench/analysis/stats.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.analysis import stats
from bench.analysis.report_render import fmt, fmt_seconds

if TYPE_CHECKING:
    from bench.analysis.report_model import WorkloadReport


def label(row: dict[str, Any]) -> str:
    return f"{row['model']} · {row['topology']} · {row['precision']}"


def spread_note(comparison: stats.Comparison) -> str:
    return {
        "higher": "seed ranges apart",
        "lower": "seed ranges apart",
        "overlap": "inconclusive: seed ranges overlap",
        "single-seed": "inconclusive: one seed, no spread to judge",
        "unknown": "inconclusive: no numbers on one side",
    }[comparison.verdict]


def quality_key(report: WorkloadReport, row: dict[str, Any]) -> str | None:
    """The per-seed series the verdict judges quality by: the target metric on test, else on val."""
    if not report.target:
        return None
    metric = report.target["metric"]
    for split in ("test", report.target.get("split", "val")):
        if f"{split}_{metric}" in row["per_seed"]:
            return f"{split}_{metric}"
    return None


def memory_measure(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(row key, words) of the memory figure to rank by: CUDA allocated where any cell used a GPU."""
    if any(row["cuda_max_allocated_mb"]["median"] for row in rows):
        return "cuda_max_allocated_mb", "CUDA max allocated per rank"
    return "peak_rss_mb_per_rank_max", "host peak RSS per rank"


def _fastest(rows: list[dict[str, Any]]) -> str | None:
    done = sorted((r for r in rows if r["converged"]), key=lambda r: r["time_to_target_s"]["median"])
    if not done:
        return None
    best = done[0]
    line = (
        f"**Fastest to target:** {label(best)}: {fmt_seconds(best['time_to_target_s']['median'])} s median time-to-target "
        f"({best['converged']}/{best['cells']} seeds converged)"
    )
    if len(done) > 1:
        nxt = done[1]
        cmp = stats.compare(nxt["per_seed"]["time_to_target_s_converged"], best["per_seed"]["time_to_target_s_converged"])
        line += f"; next {label(nxt)} at {fmt_seconds(nxt['time_to_target_s']['median'])} s ({spread_note(cmp)})"
    return line + "."


def _least_memory(rows: list[dict[str, Any]]) -> str | None:
    key, words = memory_measure(rows)
    measured = sorted((r for r in rows if r[key]["median"] is not None), key=lambda r: r[key]["median"])
    if not measured:
        return None
    best = measured[0]
    line = f"**Least memory:** {label(best)}: {fmt(best[key]['median'], 0)} MB {words}"
    if len(measured) > 1:
        nxt = measured[1]
        cmp = stats.compare(nxt["per_seed"][key], best["per_seed"][key])
        line += f"; next {label(nxt)} at {fmt(nxt[key]['median'], 0)} MB ({spread_note(cmp)})"
    return line + "."


def _reference(report: WorkloadReport, row: dict[str, Any]) -> str:
    parts = [f"{row['converged']}/{row['cells']} seeds converged"]
    if row["converged"]:
        parts.append(f"{fmt_seconds(row['time_to_target_s']['median'])} s median time-to-target")
    key = quality_key(report, row)
    if key:
        parts.append(f"{row['quality'][key]['label']} {fmt(row['quality'][key]['median'])}")
    parts.append(f"{fmt(row['samples_per_s']['median'], 0)} samples/s")
    return f"**{row['topology']} {row['precision']}** ({row['model']}) is the reference (single process, fp32): " + ", ".join(parts) + "."


def _against_reference(report: WorkloadReport, row: dict[str, Any], ref: dict[str, Any]) -> str:
    head = f"**{row['topology']} {row['precision']}** ({row['model']}) vs {ref['topology']} {ref['precision']}: "
    parts = []
    ttt, ref_ttt = row["time_to_target_s"]["median"], ref["time_to_target_s"]["median"]
    if not row["converged"]:
        parts.append(f"did not reach the target (0/{row['cells']} seeds)")
    elif ref_ttt is None:
        parts.append(f"reached the target in {fmt_seconds(ttt)} s where the reference did not")
    else:
        s = stats.speedup(ref_ttt, ttt)
        pace = f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower"
        cmp = stats.compare(row["per_seed"]["time_to_target_s_converged"], ref["per_seed"]["time_to_target_s_converged"])
        parts.append(f"{pace} to target ({fmt_seconds(ttt)} s vs {fmt_seconds(ref_ttt)} s; {spread_note(cmp)})")
    key = quality_key(report, row)
    if key and key in ref["per_seed"]:
        a, b = row["quality"][key]["median"], ref["quality"][key]["median"]
        cmp = stats.compare(row["per_seed"][key], ref["per_seed"][key])
        name = row["quality"][key]["label"]
        if cmp.verdict == "overlap":
            parts.append(f"{name} unchanged within seed spread ({fmt(a)} vs {fmt(b)})")
        elif cmp.conclusive:
            parts.append(f"{name} {cmp.verdict} ({fmt(a)} vs {fmt(b)}, seed ranges apart)")
        else:
            parts.append(f"{name} {fmt(a)} vs {fmt(b)} ({spread_note(cmp)})")
    if row["throughput_ratio"] is not None:
        parts.append(
            f"throughput {row['throughput_ratio']:.2f}x ({fmt(row['samples_per_s']['median'], 0)} vs "
            f"{fmt(ref['samples_per_s']['median'], 0)} samples/s)"
        )
    if row["scaling_efficiency"] is not None:
        parts.append(f"scaling efficiency {row['scaling_efficiency']:.0%} over {row['processes']} processes")
    key, words = memory_measure([row, ref])
    if row[key]["median"] is not None and ref[key]["median"] is not None:
        parts.append(f"{words} {fmt(row[key]['median'], 0)} vs {fmt(ref[key]['median'], 0)} MB")
    return head + "; ".join(parts) + "."


def _best_baseline(report: WorkloadReport) -> str | None:
    if not report.target or not report.baselines:
        return None
    metric = report.target["metric"]
    key = f"test_{metric}"
    scored = [b for b in report.baselines if (b["quality"].get(key) or {}).get("median") is not None]
    if not scored:
        return None
    pick = max if report.target.get("higher_is_better", True) else min
    best = pick(scored, key=lambda b: b["quality"][key]["median"])
    trained = [r for r in report.rows if (r["quality"].get(key) or {}).get("median") is not None]
    line = f"**Best classical baseline:** {best['model']}, test {metric} {fmt(best['quality'][key]['median'])}"
    if trained:
        top = pick(trained, key=lambda r: r["quality"][key]["median"])
        line += f" (best Accelerate configuration: {label(top)}, {fmt(top['quality'][key]['median'])})"
    return line + "."


def verdict(report: WorkloadReport) -> list[str]:
    """Sentences, most important first."""
    rows = report.rows
    if not any(r["trained"] for r in rows):
        lines = ["No Accelerate cell of this workload produced numbers; see *Cells without numbers*."]
    else:
        lines = [_fastest(rows) or "**No configuration reached the target** within its budget."]
        memory = _least_memory(rows)
        if memory:
            lines.append(memory)
        for row in rows:
            if not row["trained"]:
                counts = ", ".join(f"{n} {status}" for status, n in row["statuses"].items())
                lines.append(f"**{row['topology']} {row['precision']}** ({row['model']}): no numbers ({counts}; "
                             "reasons under *Cells without numbers*).")
                continue
            ref = next(
                (r for r in rows if f"{r['topology']} {r['precision']}" == row["reference"] and r["model"] == row["model"]),
                None,
            )
            if ref is None:
                if row["trained"]:
                    lines.append(f"**{row['topology']} {row['precision']}** ({row['model']}): no single-process fp32 "
                                 f"reference on {row['device']} in this run, so no speedup.")
                continue
            if ref is row:
                lines.append(_reference(report, row))
            else:
                lines.append(_against_reference(report, row, ref))
    baseline = _best_baseline(report)
    if baseline:
        lines.append(baseline)
    return lines
