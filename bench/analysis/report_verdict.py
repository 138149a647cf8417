"""The answer a user came for: per workload, a few sentences at the top of the report.

Each sentence names the figures it rests on and the ratio with its 95% interval over seeds
(bench/analysis/report_compare.py): "faster", "slower", "better", "worse", "more" or "less memory"
only when the interval excludes 1; otherwise "no difference measured (n = a vs b)", or "one seed"
when a side has a single seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.analysis import stats
from bench.analysis.report_compare import NO_NUMBERS, ONE_SEED, judge, memory_measure, quality_key
from bench.analysis.report_render import fmt, fmt_seconds

if TYPE_CHECKING:
    from bench.analysis.report_model import WorkloadReport


def axes_text(row: dict[str, Any], sep: str = " · ") -> str:
    """The knob axes a row's configuration has away from their defaults ("" for none)."""
    return "".join(f"{sep}{name}={value}" for name, value in sorted(row.get("axes", {}).items()))


def label(row: dict[str, Any]) -> str:
    return f"{row['model']} · {row['topology']} · {row['precision']}" + axes_text(row)


def heading(row: dict[str, Any]) -> str:
    return f"**{row['topology']} {row['precision']}{axes_text(row, ' ')}**"


def spread_note(comparison: stats.Comparison) -> str:
    """Words for the older min-max rule (stats.compare), kept for its callers."""
    return {
        "higher": "seed ranges apart",
        "lower": "seed ranges apart",
        "overlap": "inconclusive: seed ranges overlap",
        "single-seed": "inconclusive: one seed, no spread to judge",
        "unknown": "inconclusive: no numbers on one side",
    }[comparison.verdict]


def ratio_text(judged: dict[str, Any]) -> str:
    """'1.62x [1.40–1.90], n = 2 vs 5': the ratio, its 95% interval and the seeds on each side."""
    n = f"n = {judged['n_candidate']} vs {judged['n_reference']}"
    if judged["low"] is None:
        return n if judged["ratio"] is None else f"{judged['ratio']:.2f}x, {n}"
    return f"{judged['ratio']:.2f}x [{judged['low']:.2f}–{judged['high']:.2f}], {n}"


def interval_text(judged: dict[str, Any]) -> str:
    """What an inconclusive comparison says: no difference measured, one seed, or no numbers."""
    n = f"n = {judged['n_candidate']} vs {judged['n_reference']}"
    if judged["verdict"] == NO_NUMBERS:
        return f"no numbers on one side ({n})"
    if judged["verdict"] == ONE_SEED:
        return f"one seed on a side, no interval: {ratio_text(judged)}"
    return f"no difference measured ({n}; {judged['ratio']:.2f}x [{judged['low']:.2f}–{judged['high']:.2f}])"


def claim(what: str, figures: str, judged: dict[str, Any]) -> str:
    """'<what>: <verdict> (<figures>; <ratio>)' when the interval excludes 1, else '<what> <figures>: no difference...'."""
    if judged["conclusive"]:
        return f"{what}: {judged['verdict']} ({figures}; {ratio_text(judged)})"
    return f"{what} {figures}: {interval_text(judged)}"


def time_claim(judged: dict[str, Any], seconds: float | None, reference_seconds: float | None) -> str:
    """Time-to-target against a reference, as 'N.NNx faster/slower to target' only when the interval excludes 1."""
    figures = f"{fmt_seconds(seconds)} s vs {fmt_seconds(reference_seconds)} s"
    if judged["conclusive"]:
        r = judged["ratio"]
        pace = f"{1 / r:.2f}x faster" if r < 1 else f"{r:.2f}x slower"
        return f"{pace} to target ({figures}; time ratio {ratio_text(judged)})"
    return f"time-to-target {figures}: {interval_text(judged)}"


def _next(judged: dict[str, Any]) -> str:
    """The runner-up against the best: 'slower (1.73x [1.12–4.00], n = 5 vs 4)' or why no difference is called."""
    return f"{judged['verdict']} ({ratio_text(judged)})" if judged["conclusive"] else interval_text(judged)


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
        judged = judge(nxt["per_seed"]["time_to_target_s_converged"], best["per_seed"]["time_to_target_s_converged"],
                       ("slower", "faster"))
        line += f"; next {label(nxt)} at {fmt_seconds(nxt['time_to_target_s']['median'])} s: {_next(judged)}"
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
        judged = judge(nxt["per_seed"][key], best["per_seed"][key], ("more memory", "less memory"))
        line += f"; next {label(nxt)} at {fmt(nxt[key]['median'], 0)} MB: {_next(judged)}"
    return line + "."


def _reference(report: WorkloadReport, row: dict[str, Any]) -> str:
    parts = [f"{row['converged']}/{row['cells']} seeds converged"]
    if row["converged"]:
        parts.append(f"{fmt_seconds(row['time_to_target_s']['median'])} s median time-to-target")
    key = quality_key(report, row)
    if key:
        parts.append(f"{row['quality'][key]['label']} {fmt(row['quality'][key]['median'])}")
    parts.append(f"{fmt(row['samples_per_s']['median'], 0)} samples/s")
    return f"{heading(row)} ({row['model']}) is the reference (single process, fp32): " + ", ".join(parts) + "."


def _against_reference(report: WorkloadReport, row: dict[str, Any], ref: dict[str, Any]) -> str:
    head = f"{heading(row)} ({row['model']}) vs {ref['topology']} {ref['precision']}: "
    vs = row["vs_reference"]
    parts = []
    ttt, ref_ttt = row["time_to_target_s"]["median"], ref["time_to_target_s"]["median"]
    if not row["converged"]:
        parts.append(f"did not reach the target (0/{row['cells']} seeds)")
    elif ref_ttt is None:
        parts.append(f"reached the target in {fmt_seconds(ttt)} s where the reference did not")
    else:
        parts.append(time_claim(vs["time_to_target_s"], ttt, ref_ttt))
    quality = vs.get("quality")
    if quality:
        a, b = row["quality"][quality["key"]]["median"], ref["quality"][quality["key"]]["median"]
        parts.append(claim(quality["label"], f"{fmt(a)} vs {fmt(b)}", quality))
    if row["throughput_ratio"] is not None:
        figures = f"{fmt(row['samples_per_s']['median'], 0)} vs {fmt(ref['samples_per_s']['median'], 0)} samples/s"
        parts.append(claim("throughput", figures, vs["samples_per_s"]))
    if row["scaling_efficiency"] is not None:
        parts.append(f"scaling efficiency {row['scaling_efficiency']:.0%} over {row['processes']} processes")
    memory = vs["memory"]
    if row[memory["measure"]]["median"] is not None and ref[memory["measure"]]["median"] is not None:
        figures = f"{fmt(row[memory['measure']]['median'], 0)} vs {fmt(ref[memory['measure']]['median'], 0)} MB"
        parts.append(claim(memory["label"], figures, memory))
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
                lines.append(f"{heading(row)} ({row['model']}): no numbers ({counts}; "
                             "reasons under *Cells without numbers*).")
                continue
            ref = next((r for r in rows if r["id"] == row.get("reference_id")), None)
            if ref is None:
                if row["trained"]:
                    lines.append(f"{heading(row)} ({row['model']}): no single-process fp32 "
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
