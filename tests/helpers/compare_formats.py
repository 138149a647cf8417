"""Helpers for e2e/test_compare_formats.py, unit/test_compare_formats.py."""

from __future__ import annotations

SPEED_AND_MEMORY_NAMES = {"samples_per_s", "step_time_median_s", "time_to_target_s", "peak_rss_mb"}

