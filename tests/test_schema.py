"""The published JSON schema of a result file (bench/result.schema.json) and the typed result model.

The schema is generated from the models in bench/results.py; the committed file must be what the
code generates, and every result committed under results/ must validate against it. A result
file that breaks it is refused by `bench report` and `bench compare` with one line and exit 2.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from bench.cells import CellKey
from bench.results import (
    SCHEMA_FILE,
    SCHEMA_VERSION,
    Result,
    json_schema,
    load_result,
    make_result,
    schema_text,
    upgrade,
    validate_result,
)
from tests.conftest import run_cli

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_CELL = ROOT / "tests" / "fixtures" / "compare" / "run_a" / "cells" / "maintenance-gru__cpu-1proc__fp32__s0.json"
RUN_B = ROOT / "tests" / "fixtures" / "compare" / "run_b"


def committed_results() -> list[Path]:
    """Every cell result committed under results/ (run folders and baselines, history included)."""
    listed = subprocess.run(["git", "ls-files", "results/**/*.json"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no committed results to check")
    return [ROOT / p for p in listed.stdout.split() if Path(p).parent.name == "cells"]


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(json_schema())


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate: python -m bench.results --schema > bench/result.schema.json"


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


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


def test_a_version_1_result_is_upgraded_with_the_direction_of_its_target(validator) -> None:
    raw = json.loads(FIXTURE_CELL.read_text())
    assert raw["schema_version"] == 1 and "higher_is_better" not in raw["target"]
    loaded = load_result(FIXTURE_CELL)
    assert loaded["schema_version"] == SCHEMA_VERSION and loaded["target"]["higher_is_better"] is True
    assert validate_result(loaded) == [] and list(validator.iter_errors(loaded)) == []
    assert {k: v for k, v in loaded.items() if k not in ("schema_version", "target")} == {
        k: v for k, v in raw.items() if k not in ("schema_version", "target")}
    lower = upgrade({**raw, "target": {**raw["target"], "metric": "loss"}})
    assert lower["target"]["higher_is_better"] is False


def test_make_result_records_the_target_direction() -> None:
    cell = json.loads(FIXTURE_CELL.read_text())["cell"]
    given = make_result(cell, "converged", target={"metric": "rmse", "value": 1.0, "split": "val", "higher_is_better": True})
    assert given["target"]["higher_is_better"] is True  # what the caller says stands
    derived = make_result(cell, "converged", target={"metric": "rmse", "value": 1.0, "split": "val"})
    assert derived["target"]["higher_is_better"] is False
    assert derived["schema_version"] == SCHEMA_VERSION
    assert make_result(cell, "skipped", "needs 2 GPU(s), found 0").get("target") is None


def test_unknown_fields_are_kept_through_the_typed_model() -> None:
    raw = json.loads(FIXTURE_CELL.read_text())
    raw["a_future_field"] = {"x": 1}
    raw["timings"]["a_future_timing"] = 2.5
    typed = Result.from_dict(raw)
    assert typed.timings.extra["a_future_timing"] == 2.5
    typed.timings.train_seconds = 1.0
    out = typed.to_dict()
    assert out["a_future_field"] == {"x": 1} and out["timings"]["a_future_timing"] == 2.5
    assert out["timings"]["train_seconds"] == 1.0


def _version_2_without_direction(r: dict) -> None:
    r["schema_version"] = 2


def _unknown_version(r: dict) -> None:
    r["schema_version"] = 7


def _status_unknown(r: dict) -> None:
    r["status"] = "great"


def _converged_without_curve(r: dict) -> None:
    del r["curve"]


def _seed_a_string(r: dict) -> None:
    r["cell"]["seed"] = "0"


def _target_without_value(r: dict) -> None:
    del r["target"]["value"]


def _gpus_null(r: dict) -> None:
    r["environment"]["gpus"] = None


SCHEMA_BREAKS = {
    "version 2 target without higher_is_better": _version_2_without_direction,
    "unknown schema_version": _unknown_version,
    "unknown status": _status_unknown,
    "converged without a curve": _converged_without_curve,
    "seed a string": _seed_a_string,
    "target without a value": _target_without_value,
    "gpus null": _gpus_null,
}


# Through the real CLI, one process per command: two faults (a new rule and an old one) suffice; the
# in-process tests of tests/test_compare_inputs.py cover the other field types.
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


def test_the_schema_refuses_what_validate_result_refuses(validator) -> None:
    good = json.loads(FIXTURE_CELL.read_text())
    for fault, damage in SCHEMA_BREAKS.items():
        bad = copy.deepcopy(good)
        damage(bad)
        assert validate_result(bad), fault
        assert list(validator.iter_errors(bad)), fault
