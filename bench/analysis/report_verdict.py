"""The answer a user came for: per workload, a few sentences at the top of the report.

Each sentence names the figures it rests on, the ratio over seeds and the exact test's p-value
(bench/analysis/report_compare.py): "faster", "slower", "better", "worse", "more" or "less memory"
only when the report's Holm rule decides the claim; otherwise "no difference measured", or "needs
N seeds a side" where the seeds could not have decided it at the report's level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.analysis import stats
from bench.analysis.report_compare import NEEDS_SEEDS, NO_NUMBERS, memory_measure, quality_key
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
    """'1.62x, p 0.004, n = 5 vs 5': the ratio (Hodges-Lehmann), the exact test's p-value, the seeds."""
    n = f"n = {judged['n_candidate']} vs {judged['n_reference']}"
    p = f"p {judged['p_value']:.2g}, " if judged.get("p_value") is not None else ""
    return f"{p}{n}" if judged["ratio"] is None else f"{judged['ratio']:.2f}x, {p}{n}"


def interval_text(judged: dict[str, Any]) -> str:
    """What an undecided comparison says: no difference measured, more seeds needed, or no numbers."""
    n = f"n = {judged['n_candidate']} vs {judged['n_reference']}"
    if judged["verdict"] == NO_NUMBERS:
        return f"no numbers on one side ({n})"
    if judged["verdict"] == NEEDS_SEEDS:
        return f"undecided, needs {judged.get('seeds_needed') or 'more'} seeds a side ({ratio_text(judged)})"
    return f"no difference measured ({ratio_text(judged)})"


def claim(what: str, figures: str, judged: dict[str, Any]) -> str:
    """'<what>: <verdict> (<figures>; <ratio, p, n>)' when decided, else '<what> <figures>: <why not>'."""
    if judged["conclusive"]:
        return f"{what}: {judged['verdict']} ({figures}; {ratio_text(judged)})"
    return f"{what} {figures}: {interval_text(judged)}"


def time_claim(judged: dict[str, Any], seconds: float | None, reference_seconds: float | None) -> str:
    """Time-to-target against a reference, as 'N.NNx faster/slower to target' only when decided."""
    figures = f"{fmt_seconds(seconds)} s vs {fmt_seconds(reference_seconds)} s"
    if judged["conclusive"] and judged["ratio"]:
        r = judged["ratio"]
        pace = f"{1 / r:.2f}x faster" if r < 1 else f"{r:.2f}x slower"
        return f"{pace} to target ({figures}; time ratio {ratio_text(judged)})"
    if judged["conclusive"]:
        return f"{judged['verdict']} to target ({figures}; {ratio_text(judged)})"
    return f"time-to-target {figures}: {interval_text(judged)}"


def _ranked(report: WorkloadReport, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(the best row, the rows tied with it, the rows decided worse with their claims)."""
    ranking = report.rankings.get(kind)
    if not ranking:
        return None
    by_id = {row["id"]: row for row in report.rows}
    tied = [by_id[o["id"]] for o in ranking["others"] if not o["conclusive"]]
    worse = [{**o, "row": by_id[o["id"]]} for o in ranking["others"] if o["conclusive"]]
    return by_id[ranking["best"]], tied, worse


def _tie_text(tied: list[dict[str, Any]]) -> str:
    if not tied:
        return ""
    return (f"; tied with {', '.join(label(r) for r in tied)} (the report cannot tell "
            f"{'it' if len(tied) == 1 else 'them'} apart from the best)")


def _fastest(report: WorkloadReport) -> str | None:
    ranked = _ranked(report, "time_to_target")
    if ranked is None:
        return None
    best, tied, worse = ranked
    line = (f"**Fastest to target:** {label(best)}: {fmt_seconds(best['time_to_target_s']['median'])} s median "
            f"time-to-target ({best['converged']}/{best['cells']} seeds converged){_tie_text(tied)}")
    if worse:
        line += f"; slower: {len(worse)} configuration(s)"
    return line + "."


def _least_memory(report: WorkloadReport) -> str | None:
    ranked = _ranked(report, "memory")
    if ranked is None:
        return None
    best, tied, worse = ranked
    key, words = memory_measure(report.rows)
    line = f"**Least memory:** {label(best)}: {fmt(best[key]['median'], 0)} MB {words}{_tie_text(tied)}"
    if worse:
        line += f"; more memory: {len(worse)} configuration(s)"
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
    converged = vs.get("convergence_rate")
    if converged and converged["conclusive"]:
        parts.append(f"{converged['verdict']} ({row['converged']}/{row['cells']} vs {ref['converged']}/{ref['cells']} "
                     f"seeds, Fisher's exact p {converged['p_value']:.2g})")
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
        lines = [_fastest(report) or "**No configuration reached the target** within its budget."]
        memory = _least_memory(report)
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
