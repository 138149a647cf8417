"""Micro-benchmarks run apart from the unit tests, only when asked for with --benchmark-enable.

The project's pytest options carry --benchmark-disable, under which pytest-benchmark would still
run each benchmark body once; here that would load every workload (a BERT tokenising thousands of
reviews) for nothing the unit tests do not already check (tests/{unit,e2e}/test_parity.py exercises the same
step functions). So without --benchmark-enable they are skipped:

    pytest tests/benchmarks --benchmark-enable --benchmark-json=micro.json
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_enable", default=False):
        return
    skip = pytest.mark.skip(reason="micro-benchmark: run with `pytest tests/benchmarks --benchmark-enable`")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
