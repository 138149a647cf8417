"""The verdicts of both gates as Markdown (for people and CI logs), JSON, or JUnit XML (for CI test tabs):
the side-by-side gate's Judgement (`bench gate`), then the verdicts against a committed baseline
(`bench compare`, `render_compare_*`)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

from tabulate import tabulate

from bench.analysis.gate.against_baseline import HARDWARE_DIFFERS, NOISE, UNCONFIRMED, GateVerdict
from bench.analysis.gate.judge import IMPROVEMENT, NEW, NOT_JUDGED, REGRESSION, Check, Judgement
from bench.results import strict_json

FORMATS = ("text", "json", "junit")
_HEADERS = ["cell", "figure", "verdict", "base", "candidate", "change", "p", "why"]


def _p(check: Check) -> str:
    return "" if check.p_value is None or not math.isfinite(check.p_value) else f"{check.p_value:.2g}"


def _rows(checks: list[Check]) -> list[list[str]]:
    return [[c.cell, c.figure, c.verdict, c.base, c.candidate, c.change, _p(c), c.why] for c in checks]


def headline(judgement: Judgement) -> str:
    regressions = len(judgement.regressions)
    cells = len({c.cell for c in judgement.checks})
    return (f"**{'PASS' if judgement.passed else 'FAIL'}**: {regressions} regression(s) over {cells} cell(s) and "
            f"{len(judgement.checks)} check(s); {judgement.tests} statistical test(s) at a family-wise false-alarm "
            f"rate of at most {judgement.alpha:g} (Tarone's rule: step tests each at {judgement.level:.2g}, "
            f"the others at {_level(judgement.other_level)}).")


def _level(level: float | None) -> str:
    return "-" if level is None else f"{level:.2g}"


def render_markdown(judgement: Judgement, base_name: str, candidate_name: str) -> str:
    order = {REGRESSION: 0, IMPROVEMENT: 1, NEW: 2, NOT_JUDGED: 3}
    flagged = sorted((c for c in judgement.checks if c.verdict in order), key=lambda c: order[c.verdict])
    rest = [c for c in judgement.checks if c.verdict not in order]
    lines = [f"# bench gate: {candidate_name} against {base_name}", "", headline(judgement), ""]
    lines += [f"> {note}" for note in judgement.notes] + ([""] if judgement.notes else [])
    if flagged:
        lines += [tabulate(_rows(flagged), headers=_HEADERS, tablefmt="github"), ""]
    else:
        lines += ["No regressions, improvements or new cells.", ""]
    if rest:
        lines += ["Every other check (not failing):", "", tabulate(_rows(rest), headers=_HEADERS, tablefmt="github"), ""]
    return "\n".join(lines)


def render_json(judgement: Judgement, base_name: str, candidate_name: str) -> str:
    document = {
        "base": base_name, "candidate": candidate_name, "passed": judgement.passed,
        "regressions": len(judgement.regressions), "alpha": judgement.alpha, "per_test_level": judgement.level,
        "other_per_test_level": judgement.other_level,
        "tests": judgement.tests, "notes": judgement.notes,
        "checks": [{**c.__dict__, "p_value": None if c.p_value is None or not math.isfinite(c.p_value) else c.p_value}
                   for c in judgement.checks],
    }
    return json.dumps(document, indent=2) + "\n"


def render_junit(judgement: Judgement, base_name: str, candidate_name: str) -> str:
    """One testcase per cell and figure: a regression is a failure, a check not judged is skipped."""
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {
        "name": "bench gate", "tests": str(len(judgement.checks)), "failures": str(len(judgement.regressions)),
        "errors": "0", "skipped": str(sum(c.verdict == NOT_JUDGED for c in judgement.checks))})
    properties = ET.SubElement(suite, "properties")
    for key, value in (("base", base_name), ("candidate", candidate_name), ("alpha", str(judgement.alpha))):
        ET.SubElement(properties, "property", {"name": key, "value": value})
    for check in judgement.checks:
        case = ET.SubElement(suite, "testcase", {"classname": check.cell, "name": check.figure, "time": "0"})
        figures = f"base {check.base or '-'}, candidate {check.candidate or '-'}, change {check.change or '-'}; {check.why}"
        if check.verdict == REGRESSION:
            ET.SubElement(case, "failure", {"type": REGRESSION, "message": check.why or REGRESSION}).text = figures
        elif check.verdict == NOT_JUDGED:
            ET.SubElement(case, "skipped", {"message": check.why or NOT_JUDGED})
        else:
            ET.SubElement(case, "system-out").text = f"{check.verdict}: {figures}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


RENDERERS = {"text": render_markdown, "json": render_json, "junit": render_junit}


# ---------------------------------------------------------------------------------------------
# `bench compare`: verdicts against a committed baseline
# ---------------------------------------------------------------------------------------------

_COMPARE_HEADERS = ["verdict", "cell", "metric", "baseline", "candidate", "change", "p", "why"]


def _compare_rows(verdicts: list[GateVerdict]) -> list[list[str]]:
    return [
        [v.verdict, v.cell, v.metric, v.baseline, v.candidate, v.change, "" if v.p_value is None else f"{v.p_value:.2g}", v.why]
        for v in verdicts
    ]


def render_compare_markdown(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The report: a headline, the regressions and improvements, then changes within noise."""
    order = {REGRESSION: 0, IMPROVEMENT: 1, NEW: 2}
    shown = sorted((v for v in verdicts if v.verdict in order), key=lambda v: order[v.verdict])
    noise = [v for v in verdicts if v.verdict in (NOISE, UNCONFIRMED, HARDWARE_DIFFERS)]
    regressions = sum(v.verdict == REGRESSION for v in verdicts)
    improvements = sum(v.verdict == IMPROVEMENT for v in verdicts)
    cells = len({v.cell for v in verdicts})
    lines = [
        f"# bench compare: {candidate_name} against {baseline_name}",
        "",
        f"**{'FAIL' if regressions else 'PASS'}**: {regressions} regression(s), {improvements} improvement(s) "
        f"over {cells} cell(s) and {len(verdicts)} check(s)."
        + ("" if speed_judged else " Status and quality only: speed and memory not judged (different hardware)."),
        "",
    ]
    lines += [f"> {note}" for note in notes] + ([""] if notes else [])
    if shown:
        lines += [tabulate(_compare_rows(shown), headers=_COMPARE_HEADERS, tablefmt="github"), ""]
    else:
        lines += ["No regressions and no improvements.", ""]
    if noise:
        lines += [
            "Past the threshold but not significant, not confirmed on a re-run, or unsupported on other hardware (not failing):",
            "",
            tabulate(_compare_rows(noise), headers=_COMPARE_HEADERS, tablefmt="github"),
            "",
        ]
    return "\n".join(lines)



def _summary(verdicts: list[GateVerdict]) -> tuple[int, int, int]:
    judged = [v for v in verdicts if v.verdict != NOT_JUDGED]
    regressions = sum(v.verdict == REGRESSION for v in judged)
    improvements = sum(v.verdict == IMPROVEMENT for v in judged)
    return regressions, improvements, len({v.cell for v in judged})


def render_compare_json(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The verdicts as one strict JSON document (no NaN: a non-finite p-value is null)."""
    regressions, improvements, cells = _summary(verdicts)
    document = {
        "baseline": baseline_name,
        "candidate": candidate_name,
        "passed": regressions == 0,
        "regressions": regressions,
        "improvements": improvements,
        "cells": cells,
        "checks": sum(v.verdict != NOT_JUDGED for v in verdicts),
        "speed_judged": speed_judged,
        "notes": notes,
        "verdicts": [
            {"cell": v.cell, "metric": v.metric, "verdict": v.verdict, "baseline": v.baseline, "candidate": v.candidate,
             "change": v.change, "p_value": v.p_value, "why": v.why}
            for v in verdicts
        ],
    }
    return strict_json(document)


def render_compare_junit(
    verdicts: list[GateVerdict], baseline_name: str, candidate_name: str, notes: list[str], speed_judged: bool = True
) -> str:
    """The verdicts as JUnit XML, as CI systems read test results: one testcase per (cell, metric),
    its classname the cell and its name the metric. A regression is a <failure> with its reason;
    a check not judged (different hardware: "not judged...") is <skipped> with the reason; every other verdict
    (ok, improvement, not significant, not confirmed, new) passes, its verdict and reason in
    <system-out>."""
    failures = sum(v.verdict == REGRESSION for v in verdicts)
    skipped = sum(v.verdict.startswith(NOT_JUDGED) for v in verdicts)
    counts = {"tests": str(len(verdicts)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "bench compare", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"bench compare: {candidate_name} against {baseline_name}", **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", baseline_name), ("candidate", candidate_name), ("speed_judged", str(speed_judged).lower())):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for i, note in enumerate(notes):
        ET.SubElement(properties, "property", {"name": f"note{i + 1}", "value": note})
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", {"classname": v.cell, "name": v.metric, "time": "0"})
        figures = _figures(v)
        if v.verdict == REGRESSION:
            failure = ET.SubElement(case, "failure", {"type": REGRESSION, "message": v.why or "regression"})
            failure.text = figures
        elif v.verdict.startswith(NOT_JUDGED):  # also a status that other hardware explains
            ET.SubElement(case, "skipped", {"message": v.why or v.verdict})
        else:
            ET.SubElement(case, "system-out").text = f"{v.verdict}: {figures}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _figures(v: GateVerdict) -> str:
    parts = [f"baseline {v.baseline or '-'}", f"candidate {v.candidate or '-'}"]
    if v.change:
        parts.append(f"change {v.change}")
    if v.p_value is not None and math.isfinite(v.p_value):
        parts.append(f"p {v.p_value:.2g}")
    return ", ".join(parts) + (f"; {v.why}" if v.why else "")


COMPARE_RENDERERS = {"text": render_compare_markdown, "json": render_compare_json, "junit": render_compare_junit}
