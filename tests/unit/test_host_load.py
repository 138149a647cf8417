"""The host's load at each cell's start and end (`host_load`, bench/harness/runner.py), and the report's
*busy host* mark on cells whose 1-minute load average was more than one above the cores they could use.

The tests that start processes are in tests/e2e/test_host_load.py."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from bench.analysis.report import build_report
from bench.analysis.report_render import render_csv, render_json, render_markdown
from bench.cli import main

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report-run"


def _set_load(run: Path, cell_id: str, start: list | None, end: list | None, cores: int = 2) -> None:
    path = run / "cells" / f"{cell_id}.json"
    result = json.loads(path.read_text())
    result["host_load"] = {"start": start, "end": end, "cores": cores}
    path.write_text(json.dumps(result))


@pytest.fixture()
def loaded_run(tmp_path: Path) -> Path:
    """The report fixture with loads recorded: two alpha cpu-1proc fp32 seeds and one baseline cell
    busy (at start, at end), the others quiet, one ddp2 cell at the core count plus one (not above)."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    quiet = [1.2, 1.0, 0.9]
    _set_load(run, "alpha-gru__cpu-1proc__fp32__s0", [3.5, 2.0, 1.0], [1.5, 1.9, 1.0])
    _set_load(run, "alpha-gru__cpu-1proc__fp32__s1", quiet, [3.25, 2.0, 1.1])
    for seed in (2, 3, 4):
        _set_load(run, f"alpha-gru__cpu-1proc__fp32__s{seed}", quiet, quiet)
    _set_load(run, "alpha-gru__cpu-ddp2__fp32__s0", [3.0, 2.0, 2.0], [2.07, 1.0, 1.0])
    _set_load(run, "alpha__baselines__s1", None, [4.0, 3.0, 2.0])
    return run


def _table_row(md: str, *cells: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("|") and all(f" {c} " in line for c in cells))


def test_the_report_marks_rows_whose_cells_ran_on_a_busy_host(loaded_run: Path) -> None:
    report = build_report(loaded_run, measure_peaks=False)
    md = render_markdown(report)
    alpha = md.split("## alpha")[1].split("## beta")[0]
    assert "busy host (2/5 seeds)" in _table_row(alpha, "cpu-1proc", "fp32")
    # the cell's own threads and the one before it (the core count, and one more) are not busy
    assert "busy host" not in _table_row(alpha, "cpu-ddp2", "fp32")
    assert "busy host (1/2 cells)" in _table_row(alpha, "random_forest (baseline)")
    footnote = next(line for line in alpha.splitlines() if line.startswith("**Busy host**"))
    assert footnote.startswith("**Busy host**: 3 cells")
    assert "`alpha-gru__cpu-1proc__fp32__s0` 3.50 at start, 1.50 at end on 2 cores" in footnote
    assert "`alpha-gru__cpu-1proc__fp32__s1` 1.20 at start, 3.25 at end on 2 cores" in footnote
    assert "`alpha__baselines__s1` 4.00 at end on 2 cores" in footnote
    assert "speed figures" in footnote and "contaminated" in footnote
    assert "Busy host" not in md.split("## beta")[1]  # its cells record no load: nothing claimed

    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    by_config = {(r["workload"], r["model"], r["topology"], r["precision"]): r["busy_host_cells"] for r in rows}
    assert by_config[("alpha", "gru", "cpu-1proc", "fp32")] == "2"
    assert by_config[("alpha", "gru", "cpu-ddp2", "fp32")] == "0"
    payload = json.loads(render_json(report))
    row = next(r for r in payload["workloads"][0]["rows"] if (r["topology"], r["precision"]) == ("cpu-1proc", "fp32"))
    assert [b["seed"] for b in row["busy_host"]] == [0, 1]


def test_a_quiet_run_has_no_busy_mark(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    for path in (run / "cells").glob("*.json"):
        _set_load(run, path.stem, [0.5, 0.5, 0.5], [1.99, 1.0, 0.5])
    assert "busy host" not in render_markdown(build_report(run, measure_peaks=False)).lower()


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_wrongly_typed_host_load_is_a_one_line_error(tmp_path: Path, command: str, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    _set_load(run, "alpha-gru__cpu-1proc__fp32__s0", "busy", [1.0, 1.0, 1.0])
    args = ["report", str(run), "--out", str(tmp_path / "out")] if command == "report" else ["compare", str(FIXTURE), str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "host_load.start must be a list of numbers or null" in err
    assert len(err.splitlines()) == 1

