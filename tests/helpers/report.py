"""Helpers for conftest.py, e2e/test_report.py, unit/test_report.py."""

from __future__ import annotations

from pathlib import Path

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report-run"

