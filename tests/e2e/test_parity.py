"""The tests of tests/unit/test_parity.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import pytest


@pytest.mark.e2e
def test_the_tool_reports_cost_per_step_with_load_in_json(tmp_path, data_dir) -> None:
    """python -m bench.harness.parity --json writes, per case, both ratios and the cost per step in ms
    (Accelerate median minus plain median) with its interval, and the load averages around it."""
    import json

    from bench.harness import parity

    out = tmp_path / "parity.json"
    assert parity.main(["--workload", "maintenance", "--precision", "fp32", "--steps", "4", "--repeats", "1",
                        "--pairs", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["workload"], row["precision"]) == ("maintenance", "fp32")
    for prefix, a, p in (("cost_ms", "accelerate_ms", "plain_ms"), ("step_cost_ms", "step_accelerate_ms", "step_plain_ms")):
        assert row[prefix] == pytest.approx(row[a] - row[p])
        assert row[prefix + "_low"] <= row[prefix + "_high"]
    assert row["ratio"] > 0 and row["step_ratio"] > 0
    assert len(report["load_average_start"]) == len(report["load_average_end"]) == 3

