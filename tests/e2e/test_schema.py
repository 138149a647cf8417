"""The tests of tests/unit/test_schema.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.cells import CellKey
from bench.results import (
    Result,
)
from tests.conftest import run_cli
from tests.helpers.schema import (
    FIXTURE_CELL,
    ROOT,
    SCHEMA_BREAKS,
)

RUN_B = ROOT / "tests" / "fixtures" / "compare" / "run_b"


def committed_results() -> list[Path]:
    """Every cell result committed under results/ (run folders and baselines, history included)."""
    listed = subprocess.run(["git", "ls-files", "results/**/*.json"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no committed results to check")
    return [ROOT / p for p in listed.stdout.split() if Path(p).parent.name == "cells"]


@pytest.mark.e2e
def test_every_committed_result_validates_against_the_schema(validator) -> None:
    files = committed_results()
    assert files, "no committed results found"
    for path in files:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(json.loads(path.read_text()))]
        assert errors == [], f"{path.relative_to(ROOT)}: {errors[:3]}"


@pytest.mark.e2e
def test_committed_results_round_trip_through_the_typed_model_and_keep_their_ids() -> None:
    for path in committed_results():
        raw = json.loads(path.read_text())
        typed = Result.from_dict(raw)
        assert json.dumps(typed.to_dict()) == json.dumps(raw)  # same fields, same order, unknown ones kept
        assert typed.key.id == raw["cell"]["id"] == path.stem
        assert CellKey.of(raw["cell"]).without_seed().id == raw["cell"]["id"].rsplit("__s", 1)[0]


# Through the real CLI, one process per command: two faults (a new rule and an old one) suffice; the
# in-process tests of tests/unit/test_compare_inputs.py cover the other field types.
@pytest.mark.e2e
@pytest.mark.parametrize("fault", ["version 2 target without higher_is_better", "seed a string"])
def test_a_result_that_breaks_the_schema_is_one_error_line_and_exit_2(tmp_path: Path, validator, fault: str) -> None:
    bad = json.loads(FIXTURE_CELL.read_text())
    SCHEMA_BREAKS[fault](bad)
    assert list(validator.iter_errors(bad)), "the schema must refuse it too"
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / FIXTURE_CELL.name).write_text(json.dumps(bad))
    for args in (["report", str(run), "--out", str(tmp_path / "report"), "--no-peak-measure"],
                 ["compare", str(RUN_B), str(run)]):
        proc = run_cli(*args)
        assert proc.returncode == 2, f"{args[0]} {fault}: {proc.stdout}{proc.stderr}"
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "invalid result" in lines[0], proc.stderr

