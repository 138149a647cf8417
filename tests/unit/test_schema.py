"""The published JSON schema of a result file (bench/result.schema.json) and the typed result model.

The schema is generated from the models in bench/results.py; the committed file must be what the
code generates, and every result committed under results/ must validate against it. A result
file that breaks it is refused by `bench report` and `bench compare` with one line and exit 2.

The tests that start processes are in tests/e2e/test_schema.py."""

from __future__ import annotations

import copy
import json

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
from tests.helpers.schema import (
    FIXTURE_CELL,
    SCHEMA_BREAKS,
    jsonschema,
)


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate: python -m bench.results --schema > bench/result.schema.json"


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


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


def test_the_schema_refuses_what_validate_result_refuses(validator) -> None:
    good = json.loads(FIXTURE_CELL.read_text())
    for fault, damage in SCHEMA_BREAKS.items():
        bad = copy.deepcopy(good)
        damage(bad)
        assert validate_result(bad), fault
        assert list(validator.iter_errors(bad)), fault

