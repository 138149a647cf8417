"""Helpers for conftest.py, e2e/test_schema.py, unit/test_schema.py."""

from __future__ import annotations

from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")


ROOT = Path(__file__).resolve().parents[2]


FIXTURE_CELL = ROOT / "tests" / "fixtures" / "compare" / "run_a" / "cells" / "maintenance-gru__cpu-1proc__fp32__s0.json"


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

