"""The tests of tests/unit/test_report.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.analysis.report import resolve_peaks
from tests.conftest import run_cli
from tests.helpers.report import FIXTURE


@pytest.mark.e2e
def test_peaks_are_never_taken_from_another_machine():
    # No host of this project is "cpu-2core-Fixture-CPU": the peak this host measures is not used.
    peaks, source = resolve_peaks({}, {"hardware_class": "cpu-2core-Fixture-CPU"})
    assert peaks is None and "MFU omitted" in source and "is not the run's hardware" in source
    peaks, source = resolve_peaks({}, {}, measure=False)
    assert peaks is None


@pytest.mark.e2e
def test_a_peak_is_not_taken_from_a_host_of_the_same_class_with_other_precision_flags():
    # Two "AMD EPYC" hosts share a hardware class; one has avx512_bf16, the other not (issue 26).
    from bench.harness.host import hardware

    here = hardware(cpu_only=True)
    other_flags = sorted(set(here["cpu_precision_flags"]) ^ {"amx_tile"})
    peaks, source = resolve_peaks({}, {**here, "cpu_precision_flags": other_flags})
    assert peaks is None and "CPU precision flags differ" in source and "MFU omitted" in source


@pytest.mark.e2e
def test_cli_writes_markdown_and_plots(tmp_path):
    out = tmp_path / "rep"
    proc = run_cli("report", str(FIXTURE), "--out", str(out), "--metrics", "accuracy,out_of_domain_accuracy", timeout=300)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report.md").read_text()
    assert "test accuracy" in md and "out_of_domain accuracy" in md
    assert len(list(out.glob("*.png"))) == 8


_REPORT_WITHOUT_TORCH = """
import sys
from bench.cli import main
code = main(["report", sys.argv[1], "--format", "json", "--out", "-", *sys.argv[2:]])
heavy = sorted(m for m in ("torch", "accelerate", "transformers", "workloads") if m in sys.modules)
print("exit", code, "heavy", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize(("run", "flags"), [
    (Path("results") / "baselines" / "cpu-2core-AMD-EPYC", ["--no-peak-measure"]),
    (FIXTURE, ["--no-peak-measure"]),
    # No run.json, so no recorded peak: it is measured, in a child process, not in the report's.
    (Path("results") / "baselines" / "cpu-2core-AMD-EPYC", []),
])
@pytest.mark.e2e
def test_bench_report_imports_no_torch(run: Path, flags: list[str]) -> None:
    """A report reads JSON and draws plots: on a machine without torch (a CI runner, a laptop) it
    must work, and it must not pay torch's seconds of import. The fixture has cells that never ran
    (skipped, invalid), whose topology the report reads from its config file."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", _REPORT_WITHOUT_TORCH, str(root / run), *flags], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.stderr.strip().splitlines()[-1] == "exit 0 heavy []", proc.stderr
    assert json.loads(proc.stdout)["cell_count"] > 0

