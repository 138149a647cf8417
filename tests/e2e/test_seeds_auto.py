"""The tests of tests/unit/test_seeds_auto.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json

import pytest

import bench.harness.matrix
import bench.harness.runner
from bench.analysis.report import build_report
from bench.analysis.report_render import render_markdown
from bench.analysis.seeds_auto import (
    DID_NOT_CONVERGE,
    REFERENCE,
    REFERENCE_DID_NOT_CONVERGE,
)
from bench.cells import CellKey
from bench.cli import main
from bench.harness.host import Host
from bench.results import load_run_dicts
from tests.conftest import run_cli
from tests.helpers.seeds_auto import one_error_line, write_matrix

NO_GPU = Host(gpus=0, bf16_gpu=False, fp8_backend=None)


@pytest.fixture
def cpu_host(monkeypatch):
    """Every GPU cell is skipped (written by the runner, never launched), whatever this host has."""
    monkeypatch.setattr(bench.harness.host.Host, "detect", classmethod(lambda cls: NO_GPU))
    monkeypatch.setattr(bench.harness.runner, "measure_peak_flops_apart", lambda: ("cpu-test", {"cpu": {}}))


@pytest.mark.e2e
def test_skipped_cells_are_decided_in_one_round_and_a_resume_keeps_the_record(tmp_path, cpu_host):
    matrix = write_matrix(tmp_path / "m.yaml", ["gpu-1", "gpu-ddp2"])
    results = tmp_path / "results"
    assert main(["run", "--matrix", matrix, "--results-dir", str(results), "--run-id", "a", "--seeds", "auto",
                 "--max-seeds", "6"]) == 0
    meta = json.loads((results / "a" / "run.json").read_text())
    assert meta["seeds"] == "auto"
    auto = meta["seeds_auto"]
    assert (auto["start"], auto["max"], auto["rounds"], auto["done"]) == (3, 6, 1, True)
    assert {c["stopped"].split(" (")[0] for c in auto["cells"].values()} == {"not run: skipped"}
    assert {c["seeds"] for c in auto["cells"].values()} == {3}
    # --resume of an auto run continues the loop (here: nothing left to decide) and keeps the maximum
    assert main(["run", "--results-dir", str(results), "--resume", "a"]) == 0
    again = json.loads((results / "a" / "run.json").read_text())["seeds_auto"]
    assert again["max"] == 6 and again["cells"] == auto["cells"] and again["rounds"] == 2
    assert len(load_run_dicts(results / "a")) == 6


@pytest.mark.e2e
def test_a_resume_refuses_a_damaged_seeds_auto_record(tmp_path, cpu_host, capsys):
    matrix = write_matrix(tmp_path / "m.yaml", ["gpu-1"])
    results = tmp_path / "results"
    assert main(["run", "--matrix", matrix, "--results-dir", str(results), "--run-id", "a", "--seeds", "auto"]) == 0
    path = results / "a" / "run.json"
    meta = json.loads(path.read_text())
    meta["seeds_auto"]["max"] = "ten"
    path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["run", "--results-dir", str(results), "--resume", "a"]) == 2
    assert "is damaged ('seeds_auto' must hold max" in one_error_line(capsys)


@pytest.mark.e2e
@pytest.mark.slow
def test_seeds_auto_on_two_real_configurations_end_to_end(tmp_path):
    """cpu-1proc (the reference) against the same with grad_accum 2, really trained, plus a GPU
    configuration a CPU host skips. The target (f1 >= 0) is met at the first evaluation, so every
    seed converges and time-to-target is a real measurement; whether its interval ends up
    excluding 1 depends on the machine's timing, and what is asserted holds either way."""
    matrix = write_matrix(tmp_path / "m.yaml", ["cpu-1proc", "gpu-1"], grad_accum=[1, 2],
                          budget={"max_epochs": 1, "max_seconds": 120, "max_steps": 10},
                          params={"target": 0.0, "eval_every_steps": 5})
    results = tmp_path / "results"
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(results), "--run-id", "auto",
                   "--seeds", "auto", "--max-seeds", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = results / "auto"
    auto = json.loads((run_dir / "run.json").read_text())["seeds_auto"]
    assert auto["max"] == 4 and auto["start"] == 3 and auto["done"] is True and 1 <= auto["rounds"] <= 2
    cells = auto["cells"]
    ref, accum = "maintenance-gru__cpu-1proc__fp32", "maintenance-gru__cpu-1proc__fp32__grad_accum=2"
    assert set(cells) >= {ref, accum}

    seeds: dict[str, list[int]] = {}
    for r in load_run_dicts(run_dir):
        seeds.setdefault(CellKey.of(r["cell"]).without_seed().id, []).append(r["cell"]["seed"])
    for config_id, entry in cells.items():
        assert sorted(seeds[config_id]) == list(range(entry["seeds"])) == entry["seed_list"]  # contiguous from 0
        assert 3 <= entry["seeds"] <= 4
        assert entry["stopped"]  # every configuration stopped, for a stated reason

    gpu = [c for c in cells if "__gpu-1__" in c]
    if gpu and not Host.detect().gpus:
        assert all(cells[c]["stopped"].startswith("not run: skipped") and cells[c]["seeds"] == 3 for c in gpu)
    assert cells[ref]["stopped"] == REFERENCE and cells[accum]["reference"] == ref
    stopped = cells[accum]["stopped"]
    reasons = {DID_NOT_CONVERGE, REFERENCE_DID_NOT_CONVERGE, "reached the maximum of 4 seeds",
               f"interval excludes 1 after {cells[accum]['seeds']} seeds"}
    assert stopped in reasons or stopped.startswith(("not run:", "no numbers:")), stopped
    if stopped == "reached the maximum of 4 seeds":
        assert cells[accum]["seeds"] == 4 and cells[ref]["seeds"] == 4
    if stopped.startswith("interval excludes 1"):
        assert cells[accum]["time_to_target"]["conclusive"] is True
    if cells[accum]["seeds"] == 4:  # a seed was added: it went to the reference too
        assert cells[ref]["seeds"] == 4
    assert "--seeds auto:" in proc.stdout

    report = render_markdown(build_report(run_dir, measure_peaks=False))
    assert "## Seeds chosen automatically" in report
    assert f"`{accum}`" in report and stopped in report

