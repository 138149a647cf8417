"""A gate's judgement as Markdown (for people and CI logs), JSON, or JUnit XML (for CI test tabs)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

from tabulate import tabulate

from bench.analysis.gate.judge import IMPROVEMENT, NEW, NOT_JUDGED, REGRESSION, Check, Judgement

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
