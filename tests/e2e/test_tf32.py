"""The tests of tests/unit/test_tf32.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import PROJECT_ROOT


@pytest.mark.e2e
def test_peak_json_has_no_tf32_entry_on_a_cpu_host():
    """`python -m bench.harness.peak --json` as the report runs it: on the CPU tf32 is absent (not
    applicable), as fp16 is; on a GPU host the cuda entry has it only from Ampere on."""
    done = subprocess.run([sys.executable, "-m", "bench.harness.peak", "--json"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    peaks = json.loads(done.stdout)["peak_flops"]
    assert set(peaks["cpu"]["measured"]) == {"fp32", "bf16"}
    if not torch.cuda.is_available():
        assert "cuda" not in peaks
    else:
        capability = torch.cuda.get_device_capability(0) if torch.version.hip is None else None
        assert ("tf32" in peaks["cuda"]["measured"]) == (capability is not None and capability >= (8, 0))

