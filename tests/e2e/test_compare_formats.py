"""The tests of tests/unit/test_compare_formats.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.compare import CELL, RUN_A, RUN_B
from tests.helpers.compare_formats import SPEED_AND_MEMORY_NAMES


@pytest.mark.e2e
def test_junit_of_two_honest_runs_has_a_passing_testcase_per_cell_and_metric(tmp_path: Path) -> None:
    out = tmp_path / "compare.xml"
    proc = run_cli("compare", str(RUN_A), str(RUN_B), "--format", "junit", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# bench compare")  # with --out, people get the text report on stdout
    assert f"junit report written to {out}" in proc.stderr

    root = ET.parse(out).getroot()
    cases = root.findall("./testsuite/testcase")
    metrics = {c.get("name") for c in cases}
    assert {"status", "val f1", "test f1"} | SPEED_AND_MEMORY_NAMES == metrics
    assert {c.get("classname") for c in cases} == {CELL}
    assert not root.findall(".//failure") and not root.findall(".//skipped")
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (str(len(cases)), "0", "0")

