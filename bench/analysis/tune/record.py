"""What `bench tune` leaves behind: tune.json (every candidate's fate), tune.md (the report
section: the recommendation with intervals, why each other candidate lost) and the Accelerate
config file of the recommended setup."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from tabulate import tabulate

from bench.analysis import stats
from bench.analysis.tune.finals import Finalist, Summary
from bench.analysis.tune.space import Candidate
from bench.analysis.tune.tuner import TuneOutcome
from bench.harness.topology import ACCELERATE_PRECISION, load_topology
from bench.results import write_atomic, write_json_atomic

RECOMMENDED, TIED = "recommended", "tied with the recommendation"


def fates(outcome: TuneOutcome) -> dict[Candidate, tuple[str, str]]:
    """Each candidate's (fate, why): pruned, dropped in the race, behind the finalists, lost in the
    finals, tied with the recommendation, or recommended."""
    out: dict[Candidate, tuple[str, str]] = {p.candidate: ("pruned", p.reason) for p in outcome.pruned}
    for drop in outcome.race.drops:
        out[drop.candidate] = (f"dropped in race round {drop.round}", drop.reason)
    ahead = [f.candidate for f in outcome.finals]
    for candidate in outcome.behind:
        median = outcome.race.median(candidate)
        if math.isinf(median):
            out[candidate] = ("not raced", "the race did not run (its budget, or no more candidates than finalists) and "
                              f"the {len(ahead) - 1} finalist(s) came first in the space's order; not run to target")
            continue
        out[candidate] = ("behind the finalists", f"not told apart in the race, but its median projected time "
                          f"({median:.3g} s) is behind the {len(ahead) - 1} finalists'; not run to target")
    verdict = outcome.verdict
    for candidate, why in verdict.out.items():
        out[candidate] = ("lost in the finals", why)
    for candidate in verdict.ties:
        out[candidate] = (TIED, "the seeds cannot tell its time-to-target from the recommendation's")
    if verdict.best is not None:
        out[verdict.best] = (RECOMMENDED, "fastest to target of the finals by median, quality held")
    return out


def summaries(finalist: Finalist) -> dict[str, Summary]:
    return {"time_to_target_s": Summary.of(finalist.time_to_target()),
            "samples_to_target": Summary.of(finalist.samples_to_target()),
            "test_quality": Summary.of(finalist.test_quality()),
            "peak_memory_mb": Summary.of(finalist.peak_memory_mb())}


def to_json(outcome: TuneOutcome) -> dict[str, Any]:
    request, fate = outcome.request, fates(outcome)
    return {
        "workload": request.workload, "variant": request.variant, "matrix": request.matrix,
        "command": request.command, "seeds": request.seeds, "race_settings": asdict(request.race),
        "budget_s": request.budget_s, "wall_s": round(outcome.wall_s, 1), "rounds_run": outcome.rounds_run,
        "reference": outcome.reference.label, "steps_to_target": outcome.steps_to_target,
        "facts": {"cpu_flags": list(outcome.facts.cpu_flags), "gpus": outcome.facts.host.gpus,
                  "cold_compile_floor_s": outcome.facts.cold_compile_floor_s,
                  "reference_slowest_s": outcome.facts.reference_slowest_s},
        "recommended": outcome.verdict.best.label if outcome.verdict.best else None,
        "tied": [c.label for c in outcome.verdict.ties],
        "candidates": [{"label": c.label, **asdict(c), "fate": fate.get(c, ("not raced", ""))[0],
                        "why": fate.get(c, ("", ""))[1], "probes_s": outcome.race.figures(c)}
                       for c in _ordered(outcome)],
        "finals": [{"label": f.candidate.label, "seeds": len(f.results), "converged": f.converged,
                    **{k: asdict(v) for k, v in summaries(f).items()}} for f in outcome.finals],
    }


def _ordered(outcome: TuneOutcome) -> list[Candidate]:
    everyone = [outcome.reference, *outcome.raced, *(p.candidate for p in outcome.pruned)]
    return list(dict.fromkeys(everyone))  # the reference once, even where the space pruned it


def _show(summary: Summary, digits: int = 3) -> str:
    if summary.median is None:
        return "-"
    if summary.n < 2:
        return f"{summary.median:.{digits}g}"
    return f"{summary.median:.{digits}g} [{summary.low:.{digits}g}, {summary.high:.{digits}g}]"


def to_markdown(outcome: TuneOutcome, environment: str) -> str:
    request, fate, verdict = outcome.request, fates(outcome), outcome.verdict
    lines = [f"# bench tune: {request.workload} ({request.variant}) on {environment}", ""]
    if verdict.best is None:
        lines += ["**No recommendation**: no finalist, the reference included, held its quality and reached the target.", ""]
    else:
        best = next(f for f in outcome.finals if f.candidate == verdict.best)
        s = summaries(best)
        coverage = s["time_to_target_s"].coverage
        lines += [f"**Recommended: {verdict.best.label}.**", "",
                  f"- time to target {_show(s['time_to_target_s'])} s, median [range] over {best.converged} seeds "
                  f"(the range covers the median with {coverage:.0%} probability);",
                  f"- test quality {_show(s['test_quality'])}, samples to target {_show(s['samples_to_target'], 7)}, "
                  f"peak memory {_show(s['peak_memory_mb'])} MB.", ""]
        if verdict.ties:
            lines += ["The seeds cannot tell these from it (any of them is as good an answer): "
                      + ", ".join(c.label for c in verdict.ties) + ".", ""]
    lines += [f"The tune took {outcome.wall_s / 60:.1f} min: the reference and {len(outcome.finals) - 1} finalist(s) to "
              f"target with {request.seeds} seeds each, {len(outcome.race.probes)} race probes over "
              f"{outcome.rounds_run} round(s), {len(outcome.pruned)} candidates pruned before running.", ""]
    lines += ["## The finals", "", tabulate(
        [[f.candidate.label, f"{f.converged}/{len(f.results)}",
          *(_show(v, 7 if k == "samples_to_target" else 3) for k, v in summaries(f).items()),
          fate.get(f.candidate, ("", ""))[0]] for f in outcome.finals],
        headers=["candidate", "converged", "time to target s", "samples to target", "test quality", "peak memory MB", "fate"],
        tablefmt="github"), ""]
    pruned = {p.candidate for p in outcome.pruned} - {outcome.reference}
    lines += ["## Every candidate that ran", "", tabulate(
        [[c.label, *fate.get(c, ("not raced", ""))] for c in _ordered(outcome) if c not in pruned],
        headers=["candidate", "fate", "why"], tablefmt="github"), ""]
    lines += [f"## Pruned before running: {len(pruned)}", "", *_pruned_by_reason(outcome), ""]
    lines += ["## The race", "",
              f"Each probe is one launch training at most {request.race.probe_steps} steps, projected to the "
              f"reference's {outcome.steps_to_target} steps to target. A candidate is dropped when the one-sided exact "
              f"rank-sum test finds it slower than the round's leader at {request.race.level:.3g} "
              f"(alpha {request.race.alpha:g} over {request.race.rounds} rounds; docs/tune.md).", ""]
    rows = [[c.label, ", ".join(f"{x:.3g}" for x in outcome.race.figures(c)),
             f"{m:.3g}" if (m := stats.median(outcome.race.figures(c))) is not None else "-"]
            for c in outcome.raced if outcome.race.figures(c) or any(p.candidate == c for p in outcome.race.probes)]
    lines += [tabulate(rows, headers=["candidate", "projected s per probe", "median"], tablefmt="github"), ""]
    return "\n".join(lines)


def _pruned_by_reason(outcome: TuneOutcome) -> list[str]:
    """One line per reason: the reason, then every candidate it pruned (tune.json lists each alone)."""
    by_reason: dict[str, list[str]] = {}
    for p in outcome.pruned:
        if p.candidate != outcome.reference:
            by_reason.setdefault(p.reason, []).append(p.candidate.label)
    return [f"- **{reason}** ({len(labels)}): {', '.join(labels)}" for reason, labels in by_reason.items()]


def accelerate_config(candidate: Candidate) -> str:
    """The Accelerate config file of a candidate: its topology's file with its precision and
    compile set; the knobs a config file cannot carry are said in comments."""
    topology = load_topology(candidate.topology)
    config = yaml.safe_load(topology.path.read_text()) or {}
    config["mixed_precision"] = ACCELERATE_PRECISION[candidate.precision]
    if candidate.compile != "none":
        config["dynamo_config"] = {"dynamo_backend": candidate.compile.upper()}
    else:
        config.pop("dynamo_config", None)
    notes = [f"# Written by `bench tune`: {candidate.label}.",
             "# accelerate launch --config_file THIS train.py; bench run --config THIS (bench verifies what ran)."]
    if candidate.precision == "tf32":
        notes.append("# tf32: no mixed precision; turn TF32 on in the script (torch.backends.cuda.matmul.allow_tf32 = True).")
    if candidate.grad_accum != 1:
        notes.append(f"# Gradient accumulation: Accelerator(gradient_accumulation_steps={candidate.grad_accum}) in the script "
                     "(an accelerate config file has no such key outside DeepSpeed).")
    if candidate.checkpointing != "off":
        notes.append("# Activation checkpointing: model.gradient_checkpointing_enable() in the script.")
    if candidate.compile != "none":
        notes.append("# Compiled: bench runs this file only in cells with compile=inductor (others refuse it, as compiled).")
    return "\n".join(notes) + "\n" + yaml.safe_dump(config, sort_keys=True)


def write(outcome: TuneOutcome, environment: str, config_file: Path | None) -> str:
    """tune.json and tune.md in the tune's folder, and the config file if asked; returns the Markdown."""
    folder = outcome.request.folder
    write_json_atomic(folder / "tune.json", to_json(outcome))
    markdown = to_markdown(outcome, environment)
    write_atomic(folder / "tune.md", markdown)
    if config_file is not None and outcome.verdict.best is not None:
        write_atomic(config_file, accelerate_config(outcome.verdict.best))
    return markdown
