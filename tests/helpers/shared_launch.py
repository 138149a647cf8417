"""Helpers for e2e/test_shared_launch.py, unit/test_shared_launch.py."""

from __future__ import annotations

CELL = "maintenance-gru__cpu-1proc__fp32"

