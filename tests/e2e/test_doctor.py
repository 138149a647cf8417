"""The tests of tests/unit/test_doctor.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json

import pytest

from bench.harness.doctor import PASS, SKIP
from tests.conftest import run_cli


@pytest.mark.e2e
def test_bench_doctor_runs_green_on_this_cpu_without_the_cells(tmp_path):
    done = run_cli("doctor", "--skip", "cells", "--out", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (record_file,) = tmp_path.glob("*/doctor.json")
    record = json.loads(record_file.read_text())
    statuses = {c["name"]: c["status"] for c in record["checks"]}
    assert statuses["peaks"] == statuses["autocast"] == statuses["fully_shard"] == statuses["no_cuda_context"] == PASS
    assert statuses["tf32"] == SKIP and "cells" not in statuses

