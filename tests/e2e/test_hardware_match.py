"""The tests of tests/unit/test_hardware_match.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import pytest


@pytest.mark.e2e
def test_every_result_records_the_cpu_flags_that_decide_precision(monkeypatch):
    import bench.harness.host as host
    import bench.harness.measure as measure

    monkeypatch.setattr(host, "cpu_flags", lambda: {"sse2", "avx2", "avx512_bf16", "amx_tile", "amx_bf16"})
    env = measure.environment()
    assert env["cpu_precision_flags"] == ["amx_bf16", "amx_tile", "avx512_bf16"]
    monkeypatch.setattr(host, "cpu_flags", lambda: {"sse2", "avx2"})
    assert measure.environment()["cpu_precision_flags"] == []

