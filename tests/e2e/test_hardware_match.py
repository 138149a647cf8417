"""`bench compare --baseline auto` matches hardware on what decides the figures, and never fails
for want of a matching baseline.

What decides the figures: the core count, the CPU flags that decide precision (avx512_bf16,
amx_bf16, amx_tile, avx512_fp16, and avx512f, without which a bf16 LSTM has no kernel at all),
and the GPU model and count. The CPU model string does not:
two VMs of one class report "Intel(R) Xeon(R) Processor @ 2.50GHz" and "AMD EPYC". Where no
baseline matches, status and quality are judged against the nearest and speed and memory are not.
"""

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

