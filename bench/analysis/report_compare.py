"""Every comparison the report makes: a ratio over seeds and an exact rank test, decided together.

Each comparison (`judge`) is a claim: the Hodges-Lehmann ratio candidate / reference, and the exact
two-sided Wilcoxon-Mann-Whitney p-value over seeds (bench.analysis.stats.rank_sum_test; a seed that
did not reach the target counts as slower than every seed that did). No claim is decided alone:
`control_claims` decides all of a report's claims together by Holm's rule, so the chance that the
report calls any difference that is not there is at most its alpha (5%), however many it makes.
A comparison whose seeds cannot reach the level Holm needs says how many seeds would.

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

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scipy.stats import fisher_exact

from bench.analysis import stats
from bench.cells import AXIS_DEFAULTS

if TYPE_CHECKING:
    from bench.analysis.report_model import WorkloadReport

NO_DIFFERENCE = "no difference measured"
NEEDS_SEEDS = "needs more seeds"
NO_NUMBERS = "no numbers"
REPORT_ALPHA = 0.05
"""The most often a report may call any difference that is not there (Holm, over all its claims)."""


def judge(candidate: list[float | None], reference: list[float | None], words: tuple[str, str],
          censored: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """Candidate against reference over seeds: a claim that `control_claims` decides.

    `words` name a candidate above and below the reference ("slower", "faster"). `censored` counts
    seeds known only to lie above every measured value (no time-to-target: not converged). Until
    `control_claims` runs, `verdict` is NO_DIFFERENCE (or NO_NUMBERS where a side has none)."""
    cand, ref = stats.finite(candidate), stats.finite(reference)
    out: dict[str, Any] = {"ratio": None, "low": None, "high": None, "n_candidate": len(cand) + censored[0],
                           "n_reference": len(ref) + censored[1], "p_value": None, "min_p": None,
                           "conclusive": False, "verdict": NO_NUMBERS, "words": list(words), "claim": True}
    test = stats.rank_sum_test(cand, ref, stats.TWO_SIDED, censored=censored)
    if test is None:
        return out
    above = [math.inf] * censored[0] + cand
    below = [math.inf] * censored[1] + ref
    pairs_above = sum(a > b for a in above for b in below) - sum(a < b for a in above for b in below)
    out.update(ratio=None if math.isnan(test.estimate) else test.estimate, p_value=test.p_value, min_p=test.min_p,
               larger=pairs_above > 0, verdict=NO_DIFFERENCE, identical=len(set(above + below)) <= 1)
    return out


def iter_claims(node: Any) -> Iterator[dict[str, Any]]:
    """Every claim (a `judge` result) inside nested dicts and lists."""
    if isinstance(node, dict):
        if node.get("claim") is True:
            yield node
        for value in node.values():
            yield from iter_claims(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_claims(value)


def control_claims(claims: list[dict[str, Any]], alpha: float = REPORT_ALPHA) -> int:
    """Decide every claim of a report together, by Holm's rule at `alpha`: the chance of calling
    any difference that is not there stays at most alpha. A claim whose seeds are as far apart as
    they can be and still could not reach Holm's strictest level (alpha / number of claims) says
    how many seeds a side would decide it (NEEDS_SEEDS); any other undecided claim is
    NO_DIFFERENCE. Returns
    how many claims were decided together."""
    tested = [c for c in claims if c.get("p_value") is not None and c["min_p"] < 1]
    strictest = alpha / max(1, len(tested))
    for degenerate in (c for c in claims if c.get("p_value") is not None and c["min_p"] >= 1):
        # No arrangement of its values could give p < 1 (one seed a side, or every seed converged on
        # both sides): it can never claim, so it takes no share of alpha.
        degenerate.update(alpha=alpha, conclusive=False, verdict=NO_DIFFERENCE if degenerate.get("identical") else NEEDS_SEEDS)
        if not degenerate.get("identical"):
            degenerate["seeds_needed"] = stats.seeds_to_decide(strictest)
    rejected = stats.holm([c["p_value"] for c in tested], alpha)
    for claim_, reject in zip(tested, rejected, strict=True):
        claim_.update(alpha=alpha, family=len(tested), conclusive=reject)
        if reject:
            claim_["verdict"] = claim_["words"][0] if claim_["larger"] else claim_["words"][1]
        elif claim_["min_p"] > strictest and claim_["p_value"] <= claim_["min_p"] * (1 + 1e-9):
            # The seeds are as far apart as they can be, and still too few to decide among this many claims.
            claim_.update(verdict=NEEDS_SEEDS, seeds_needed=stats.seeds_to_decide(strictest))
        else:
            claim_["verdict"] = NO_DIFFERENCE
    return len(tested)


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


def _unconverged(row: dict[str, Any]) -> int:
    """Seeds that trained and did not reach the target: their time-to-target is at least their budget."""
    return sum(status == "not_converged" for status in row["per_seed"]["status"])


def convergence_claim(row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """How often `row` converged against `base`, by Fisher's exact test on the two counts: a claim."""
    a, n, b, m = row["converged"], row["cells"], base["converged"], base["cells"]
    out: dict[str, Any] = {"rate": a / n if n else None, "reference_rate": b / m if m else None, "n_candidate": n,
                           "n_reference": m, "ratio": None, "low": None, "high": None, "conclusive": False,
                           "p_value": None, "min_p": None, "verdict": NO_NUMBERS,
                           "words": ["converges more often", "converges less often"], "claim": True}
    if not n or not m:
        return out
    out.update(p_value=float(fisher_exact([[a, n - a], [b, m - b]]).pvalue), larger=a / n > b / m, verdict=NO_DIFFERENCE,
               min_p=_fisher_min_p(a + b, n, m), identical=a / n == b / m)
    return out


def _fisher_min_p(converged: int, n: int, m: int) -> float:
    """The smallest p Fisher's exact test can give with these margins (`converged` of n + m seeds,
    n on the candidate's side): the most lopsided table either way. 1 when every seed, or none,
    converged: nothing could be told apart, and the claim takes no share of the report's alpha."""
    if converged in (0, n + m):
        return 1.0
    tables = []
    for a in (max(0, converged - m), min(n, converged)):
        b = converged - a
        tables.append(float(fisher_exact([[a, n - a], [b, m - b]]).pvalue))
    return min(tables)


def rankings(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """"Fastest to target" and "least memory", decided only where the report can tell: the best by
    its median, and every other configuration against it (claims). Those not told apart tie with it."""
    out: dict[str, Any] = {}
    done = [r for r in rows if r["converged"]]
    if done:
        best = min(done, key=lambda r: r["time_to_target_s"]["median"])
        out["time_to_target"] = {"best": best["id"], "others": [
            {"id": r["id"], **judge(_converged(r, "time_to_target_s"), _converged(best, "time_to_target_s"),
                                    ("slower", "faster"), censored=(_unconverged(r), _unconverged(best)))}
            for r in done if r is not best]}
    key, _ = memory_measure(rows) if rows else ("", "")
    measured = [r for r in rows if key and r[key]["median"] is not None]
    if measured:
        best = min(measured, key=lambda r: r[key]["median"])
        out["memory"] = {"best": best["id"], "key": key, "others": [
            {"id": r["id"], **judge(r["per_seed"][key], best["per_seed"][key], ("more memory", "less memory"))}
            for r in measured if r is not best]}
    return out


def compare_rows(report: WorkloadReport | None, row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`row` against `base`: time-to-target, end-to-end time, throughput, memory per rank and quality."""
    memory, memory_words = memory_measure([row, base])
    out = {
        "time_to_target_s": judge(_converged(row, "time_to_target_s"), _converged(base, "time_to_target_s"),
                                  ("slower", "faster"), censored=(_unconverged(row), _unconverged(base))),
        "convergence_rate": convergence_claim(row, base),
        # end to end as launches of their own: a shared launch's seeds split its fixed cost, and
        # compile (or fp8) cells, which launch per seed, would pay it whole against them
        "cell_wall_s": judge(row["per_seed"]["wall_alone_s"], base["per_seed"]["wall_alone_s"], ("slower", "faster")),
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

    `flag` (set by `flag_convergence` once the report's claims are decided) is True where the
    report decides the configuration needs more samples to reach the target than the reference (a precision, world size or
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
                       **judged, "flag": False, "reached": row["converged"] > 0})
    return checks


def flag_convergence(checks: list[dict[str, Any]]) -> None:
    """Once the report's claims are decided: flag each configuration decided to need more samples."""
    for check in checks:
        check["flag"] = bool(check["conclusive"] and check["ratio"] and check["ratio"] > 1)


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
