"""The tests of tests/unit/test_compare_seeds.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.compare_seeds import _seeds


def _write_run(folder: Path, results: list[dict]) -> Path:
    (folder / "cells").mkdir(parents=True)
    for r in results:
        (folder / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    return folder


@pytest.mark.e2e
def test_cli_gate_with_a_baseline_of_several_seeds(base_result, tmp_path: Path) -> None:
    base = _write_run(tmp_path / "base", _seeds(base_result, [1.0, 1.06, 0.95]))
    same = _write_run(tmp_path / "same", _seeds(base_result, [1.03, 0.97, 1.08]))
    slow = _write_run(tmp_path / "slow", _seeds(base_result, [1.03, 0.97, 1.08], 1 / 0.7))
    passed = run_cli("compare", str(base), str(same))
    assert passed.returncode == 0 and "**PASS**" in passed.stdout, passed.stdout + passed.stderr
    failed = run_cli("compare", str(base), str(slow))
    assert failed.returncode == 1 and "**FAIL**" in failed.stdout and "over 3 vs 3 seeds excludes 1" in failed.stdout

