"""`bench compare --format json|junit`: real comparisons of the committed fixture runs (and copies
with injected changes, built as tests/{unit,e2e}/test_compare.py builds them), read back with the readers CI
systems use: xml.etree for JUnit XML, json for JSON.

The tests that start processes are in tests/e2e/test_compare_formats.py."""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.analysis.gate.against_baseline import GateVerdict
from bench.analysis.gate.render import render_compare_json as render_json
from bench.cli import main
from bench.results import load_run_dicts
from tests.helpers.compare import CELL, RUN_A, RUN_B, _slower, _write_run
from tests.helpers.compare_formats import SPEED_AND_MEMORY_NAMES


def _strict_loads(text: str):
    """json.loads that refuses NaN and infinities, as strict parsers (JavaScript, jq) do."""
    def refuse(constant: str):
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _cases(xml_text: str) -> list[ET.Element]:
    root = ET.fromstring(xml_text)
    assert root.tag == "testsuites"
    return root.findall("./testsuite/testcase")


@pytest.fixture(scope="module")
def honest() -> tuple[list[dict], list[dict]]:
    return load_run_dicts(RUN_A), load_run_dicts(RUN_B)


def test_junit_fails_each_regressed_metric_with_its_reason(tmp_path: Path, honest, capsys) -> None:
    _, cand = honest
    slow = _write_run(tmp_path / "slow", [_slower(r, 1 / 0.7) for r in cand])
    assert main(["compare", str(RUN_A), str(slow), "--format", "junit"]) == 1
    cases = _cases(capsys.readouterr().out)  # without --out the XML is on stdout
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"samples_per_s", "step_time_median_s", "time_to_target_s"}
    for failure in failed.values():
        assert failure.get("type") == "regression"
        assert failure.get("message").startswith("worse by") and "threshold" in failure.get("message")
        assert "baseline" in failure.text and "candidate" in failure.text
    passed = [c for c in cases if c.find("failure") is None]
    assert {c.get("name") for c in passed} == {"status", "val f1", "test f1", "peak_rss_mb"}
    assert all(c.find("skipped") is None for c in cases)


def test_junit_passes_changes_that_are_not_significant(tmp_path: Path, honest, capsys) -> None:
    base, cand = copy.deepcopy(honest)
    slow = _slower(cand[0], 2.0)
    for r in (base[0], slow):
        del r["timings"]["step_times_s"]  # one value a side: past the threshold, not significant
    run_a = _write_run(tmp_path / "a", base)
    run_b = _write_run(tmp_path / "b", [slow])
    assert main(["compare", str(run_a), str(run_b), "--format", "junit"]) == 0
    cases = _cases(capsys.readouterr().out)
    throughput = next(c for c in cases if c.get("name") == "samples_per_s")
    assert throughput.find("failure") is None and throughput.find("skipped") is None
    assert throughput.find("system-out").text.startswith("not significant:")


def test_junit_skips_speed_not_judged_on_other_hardware_with_the_reason(tmp_path: Path, honest, capsys) -> None:
    _, cand = honest
    elsewhere = _slower(cand[0], 1 / 0.7)
    elsewhere["environment"]["cpu_count"] = 8
    run = _write_run(tmp_path / "elsewhere", [elsewhere])
    out = tmp_path / "compare.xml"
    assert main(["compare", str(RUN_A), str(run), "--format", "junit", "--out", str(out)]) == 0
    capsys.readouterr()
    cases = _cases(out.read_text())
    skipped = {c.get("name"): c.find("skipped") for c in cases if c.find("skipped") is not None}
    assert set(skipped) == SPEED_AND_MEMORY_NAMES
    for element in skipped.values():
        assert "not judged" in element.get("message") and "core counts differ: baseline 2, candidate 8" in element.get("message")
    assert {c.get("name") for c in cases if c.find("skipped") is None} == {"status", "val f1", "test f1"}
    assert ET.parse(out).getroot().get("skipped") == "4"


def test_json_holds_every_verdict_and_the_outcome(tmp_path: Path, honest, capsys) -> None:
    _, cand = honest
    worse = copy.deepcopy(cand[0])
    worse["metrics"]["test"]["f1"] = float("nan")  # written before strict JSON: bare NaN in the file
    run = tmp_path / "worse"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / f"{CELL}__s0.json").write_text(json.dumps(worse))  # allow_nan: a bare NaN
    out = tmp_path / "compare.json"
    assert main(["compare", str(RUN_A), str(run), "--format", "json", "--out", str(out)]) == 1
    assert capsys.readouterr().out.startswith("# bench compare")
    document = _strict_loads(out.read_text())
    assert document["passed"] is False and document["regressions"] == 1
    assert document["baseline"] == str(RUN_A) and document["candidate"] == str(run)
    assert document["checks"] == len(document["verdicts"]) == 7
    test_f1 = next(v for v in document["verdicts"] if v["metric"] == "test f1")
    assert test_f1["verdict"] == "regression" and test_f1["candidate"] == "nan" and test_f1["cell"] == CELL
    assert "not a finite number" in test_f1["why"]
    assert any(note.startswith("Hardware matches") for note in document["notes"])


def test_json_on_stdout_and_speed_not_judged_listed(tmp_path: Path, honest, capsys) -> None:
    _, cand = honest
    elsewhere = copy.deepcopy(cand[0])
    elsewhere["environment"]["gpus"] = ["NVIDIA H100 80GB HBM3"]
    run = _write_run(tmp_path / "gpu", [elsewhere])
    assert main(["compare", str(RUN_A), str(run), "--format", "json"]) == 0
    document = _strict_loads(capsys.readouterr().out)
    assert document["passed"] is True and document["speed_judged"] is False
    unjudged = [v for v in document["verdicts"] if v["verdict"] == "not judged"]
    assert {v["metric"] for v in unjudged} == SPEED_AND_MEMORY_NAMES
    assert all("a GPU run against a CPU run" in v["why"] for v in unjudged)
    assert document["checks"] == 3  # status, val f1, test f1: the unjudged are not checks


def test_json_is_strict_even_for_a_non_finite_p_value() -> None:
    verdict = GateVerdict(CELL, "samples_per_s", "not significant", "1", "2", "+100%", p_value=math.nan, why="w")
    document = _strict_loads(render_json([verdict], "a", "b", []))
    assert document["verdicts"][0]["p_value"] is None


def test_an_unwritable_out_file_is_one_line(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["compare", str(RUN_A), str(RUN_B), "--format", "junit", "--out", str(blocker / "x.xml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "cannot write the report" in err and len(err.splitlines()) == 1


def test_junit_skips_a_status_that_other_hardware_explains(tmp_path: Path, honest, capsys) -> None:
    _, cand = honest
    environment = {**cand[0]["environment"], "cpu_count": 8}
    unsupported = {"schema_version": 1, "cell": cand[0]["cell"], "status": "unsupported",
                   "reason": "bf16 LSTM has no kernel on this CPU", "environment": environment}
    run = _write_run(tmp_path / "avx2", [unsupported])
    assert main(["compare", str(RUN_A), str(run), "--format", "junit"]) == 0
    [case] = _cases(capsys.readouterr().out)
    assert (case.get("classname"), case.get("name")) == (CELL, "status")
    assert case.find("failure") is None
    assert "unsupported on this hardware" in case.find("skipped").get("message")

