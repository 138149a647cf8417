"""Helpers for e2e/test_parallel.py, unit/test_parallel.py."""

from __future__ import annotations

import os

CORES = len(os.sched_getaffinity(0))

