"""Helpers for e2e/test_knobs.py, unit/test_knobs.py."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_matrix(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "seeds": 1, "precisions": ["fp32"], **body}))
    return path

