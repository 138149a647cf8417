"""The report's knob sections, its reference-convergence check and the knob axes in its tables, from
result files built here with chosen numbers (cells carrying `compile`, `grad_accum`, `checkpointing`
and a `knobs` section, as the harness writes them)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from bench.analysis.report import build_report
from bench.analysis.report_render import render_csv, render_markdown
from bench.cells import CellKey
from bench.cli import main

# Eight seeds: enough for the report's exact tests to decide a clear difference among all its claims
# (Holm over about 60 here); at 3 seeds a side none could (docs/report.md).
SEEDS = 8


BASE = {"ttt": [10.0, 10.5, 9.8, 10.2, 9.9, 10.3, 10.1, 9.7],
        "samples": [1920, 1920, 2000, 1920, 2000, 1920, 1920, 2000],
        "sps": [1000, 1010, 990, 1005, 995, 1002, 998, 1008], "rss": [400, 401, 399, 400, 402, 398, 401, 400],
        "f1": [0.55, 0.56, 0.54, 0.55, 0.56, 0.54, 0.55, 0.56], "wall": [20.0, 21.0, 19.0, 20.5, 19.5, 20.2, 19.8, 20.7],
        "step": [0.010, 0.0101, 0.0099, 0.01005, 0.00995, 0.01002, 0.00998, 0.01003]}


def result(topology: str, precision: str, seed: int, axes: dict[str, Any], figures: dict[str, list[float]],
           knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One converged result with the seed's figures (figures[name][seed])."""
    cell = {"workload": "kn", "variant": "mlp", "topology": topology, "precision": precision, "seed": seed, "kind": "train",
            **axes}
    cell["id"] = CellKey.of(cell).id
    f = {name: values[seed] for name, values in figures.items()}
    processes = 2 if topology == "cpu-ddp2" else 1
    out = {
        "schema_version": 2, "cell": cell, "status": "converged", "reason": "",
        "topology": {"name": topology, "num_processes": processes, "use_cpu": True},
        "observed": {"device": "cpu", "compute_dtype": precision},
        "metrics": {"val": {"f1": f["f1"]}, "test": {"f1": f["f1"]}},
        "target": {"metric": "f1", "value": 0.5, "split": "val", "higher_is_better": True},
        "timings": {"init_s": 1.0, "time_to_target_s": f["ttt"], "train_seconds": f["ttt"], "step_time_median_s": f["step"]},
        "samples_to_target": f["samples"],
        "throughput": {"samples_per_s": f["sps"], "tokens_per_s": None},
        "memory": {"peak_rss_mb_max": f["rss"], "peak_rss_mb_sum": f["rss"] * processes},
        "curve": [{"step": 10, "samples": f["samples"], "seconds": f["ttt"], "f1": f["f1"]}],
        "environment": {"hardware_class": "cpu-2core-Fixture", "cpu_count": 2, "cpu_model": "Fixture CPU", "gpus": []},
        "cell_wall_s": f["wall"],
    }
    if knobs is not None:
        out["knobs"] = knobs
    return out


def scaled(**factors: float) -> dict[str, list[float]]:
    return {name: [v * factors.get(name, 1.0) for v in values] for name, values in BASE.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("knob-run")
    results = []
    for seed in range(SEEDS):
        results += [
            result("cpu-1proc", "fp32", seed, {}, BASE),
            # compile: faster steps (6 ms vs 10), 4 s to compile, slower end to end, same memory and quality
            result("cpu-1proc", "fp32", seed, {"compile": "inductor"}, scaled(ttt=0.7, step=0.6, sps=1.6, wall=1.5),
                   {"compile": {"compile_s": 4.0}}),
            # grad_accum: needs twice the samples to reach the target
            result("cpu-1proc", "fp32", seed, {"grad_accum": 4}, scaled(samples=2.0, ttt=1.9)),
            # on 2 processes, compiling makes steps slower: it never pays back
            result("cpu-ddp2", "fp32", seed, {}, BASE),
            result("cpu-ddp2", "fp32", seed, {"compile": "inductor"}, scaled(step=1.2), {"compile": {"compile_s": 5.0}}),
            # a bf16 compiled cell with no bf16 cell at the default to compare with
            result("cpu-1proc", "bf16", seed, {"compile": "inductor"}, BASE, {"compile": {"compile_s": 3.0}}),
        ]
    # checkpointing: one seed on each side
    results += [result("cpu-ddp2", "bf16", 0, {}, BASE), result("cpu-ddp2", "bf16", 0, {"checkpointing": "on"}, scaled(rss=0.7))]
    (run_dir / "cells").mkdir()
    for r in results:
        (run_dir / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    return run_dir


@pytest.fixture(scope="module")
def report(run):
    return build_report(run, measure_peaks=False)


def _section(report, axis: str) -> dict[str, Any]:
    return next(s for s in report.workloads[0].knobs if s["axis"] == axis)


def _entry(section: dict[str, Any], cell_id: str) -> dict[str, Any]:
    return next(e for e in section["entries"] if e["id"] == cell_id)


def test_cells_differing_only_in_a_knob_are_separate_rows(report):
    ids = [r["id"] for r in report.workloads[0].rows]
    assert "kn-mlp__cpu-1proc__fp32" in ids and "kn-mlp__cpu-1proc__fp32__compile=inductor" in ids
    assert "kn-mlp__cpu-1proc__fp32__grad_accum=4" in ids
    ref = next(r for r in report.workloads[0].rows if r["id"] == "kn-mlp__cpu-1proc__fp32__grad_accum=4")
    assert ref["reference_id"] == "kn-mlp__cpu-1proc__fp32"  # the reference is never a row with a knob turned


def test_compile_section_decides_each_figure(report):
    entry = _entry(_section(report, "compile"), "kn-mlp__cpu-1proc__fp32__compile=inductor")
    assert entry["off_id"] == "kn-mlp__cpu-1proc__fp32"
    assert entry["time_to_target_s"]["verdict"] == "faster" and entry["time_to_target_s"]["ratio"] == pytest.approx(0.7)
    assert entry["cell_wall_s"]["verdict"] == "slower"  # the compile time shows end to end
    assert entry["samples_per_s"]["verdict"] == "higher"
    assert entry["memory"]["verdict"] == "no difference measured" and entry["memory"]["ratio"] == pytest.approx(1.0)
    assert entry["quality"]["verdict"] == "no difference measured"
    assert (entry["time_to_target_s"]["n_candidate"], entry["time_to_target_s"]["n_reference"]) == (SEEDS, SEEDS)
    assert entry["time_to_target_s"]["p_value"] == pytest.approx(2 / 12870)  # 8 v 8, apart: the smallest p there is


def test_compile_payback_step_and_never(report):
    section = _section(report, "compile")
    pay = _entry(section, "kn-mlp__cpu-1proc__fp32__compile=inductor")["payback"]
    assert pay["compile_s"] == 4.0 and pay["step_off_s"] == pytest.approx(0.01001) and pay["step_on_s"] == pytest.approx(0.006006)
    assert pay["payback_steps"] == pytest.approx(4.0 / 0.004004) and not pay["never"]
    never = _entry(section, "kn-mlp__cpu-ddp2__fp32__compile=inductor")["payback"]
    assert never["never"] and never["payback_steps"] is None


def test_a_knob_cell_without_its_default_is_listed_not_compared(report):
    entry = _entry(_section(report, "compile"), "kn-mlp__cpu-1proc__bf16__compile=inductor")
    assert entry["off_id"] is None and "time_to_target_s" not in entry


def test_one_seed_on_each_side_says_so(report):
    entry = _entry(_section(report, "checkpointing"), "kn-mlp__cpu-ddp2__bf16__checkpointing=on")
    assert entry["memory"]["verdict"] == "needs more seeds" and entry["memory"]["ratio"] == pytest.approx(0.7)
    assert entry["memory"]["min_p"] == 1.0 and entry["memory"]["seeds_needed"] >= 6


def test_reference_convergence_flags_a_configuration_that_needs_more_samples(report):
    checks = {c["id"]: c for c in report.workloads[0].convergence}
    accum = checks["kn-mlp__cpu-1proc__fp32__grad_accum=4"]
    assert accum["flag"] and accum["verdict"] == "more samples" and accum["conclusive"]
    assert accum["ratio"] == pytest.approx(2.0)
    assert not checks["kn-mlp__cpu-ddp2__fp32"]["flag"]  # the same samples: no difference
    assert checks["kn-mlp__cpu-ddp2__fp32"]["verdict"] == "no difference measured"


def test_markdown_shows_knob_columns_sections_and_the_flag(report):
    md = render_markdown(report)
    table = md.split("### Results")[1].split("###")[0]
    assert "| knobs" in table and "compile=inductor" in table and "grad_accum=4" in table
    assert "### Reference convergence" in md
    assert "**Needs significantly more samples than the reference:** `kn-mlp__cpu-1proc__fp32__grad_accum=4`." in md
    compile_table = md.split("### What turning it on did: compile")[1].split("###")[0]
    assert "step 999" in compile_table and "never (compiled steps are not faster)" in compile_table
    assert "10.0 -> 6.0" in compile_table  # median step ms off -> on
    assert "0.70x faster (p 0.00016)" in compile_table
    assert "no run of this configuration at the default" in compile_table
    assert "### What turning it on did: grad_accum" in md and "### What turning it on did: checkpointing" in md
    assert "0.70x, needs " in md and " seeds (n = 1 vs 1)" in md


def test_csv_carries_the_knobs_and_the_intervals(report):
    rows = {(r["topology"], r["precision"], r["knobs"]): r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    compiled = rows[("cpu-1proc", "fp32", "compile=inductor")]
    assert float(compiled["time_to_target_s_ratio_ratio"]) == pytest.approx(0.7)
    assert compiled["time_to_target_s_ratio_verdict"] == "faster"


def test_a_configuration_that_never_converged_says_so(tmp_path):
    (tmp_path / "cells").mkdir()
    for seed in range(2):
        on = result("cpu-1proc", "fp32", seed, {"grad_accum": 4}, BASE)
        on.update(status="not_converged", samples_to_target=None)
        on["timings"]["time_to_target_s"] = None
        for r in (result("cpu-1proc", "fp32", seed, {}, BASE), on):
            (tmp_path / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    report = build_report(tmp_path, measure_peaks=False)
    check = report.workloads[0].convergence[0]
    assert not check["reached"] and not check["flag"] and check["verdict"] == "no numbers"
    md = render_markdown(report)
    assert "did not reach the target" in md.split("### Reference convergence")[1]
    assert "target reached by 0/2 on, 2/2 off" in md.split("What turning it on did: grad_accum")[1]


def test_a_run_without_knobs_has_no_knob_section(tmp_path):
    (tmp_path / "cells").mkdir()
    for seed in range(3):
        r = result("cpu-1proc", "fp32", seed, {}, BASE)
        (tmp_path / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    report = build_report(tmp_path, measure_peaks=False)
    assert report.workloads[0].knobs == [] and report.workloads[0].convergence == []
    assert "What turning it on did" not in render_markdown(report) and "| knobs" not in render_markdown(report)


def test_cli_report_of_the_knob_run(run, tmp_path, capsys):
    assert main(["report", str(run), "--out", str(tmp_path), "--no-peak-measure"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "### What turning it on did: compile" in md and "### Reference convergence" in md


def test_judge_words_too_few_seeds_and_a_zero_reference():
    from bench.analysis.report_compare import control_claims, judge

    apart = judge([2.0, 2.1, 2.2, 2.3, 2.4], [1.0, 1.05, 1.1, 1.15, 1.2], ("slower", "faster"))
    two = judge([2.0, 2.1], [1.0, 1.05], ("slower", "faster"))
    one = judge([2.0], [1.0, 1.05], ("slower", "faster"))
    control_claims([apart, two, one])
    assert apart["verdict"] == "slower"  # 5 v 5 apart: p = 2/252 = 0.0079, under Holm's first step 0.05/3
    assert two["verdict"] == one["verdict"] == "needs more seeds"
    zero = judge([0.5, 0.6], [0.0, 0.4], ("better", "worse"))
    assert zero["verdict"] == "no numbers" and zero["ratio"] is None


def test_end_to_end_compares_seeds_as_launches_of_their_own(tmp_path):
    # The same own seconds and the same 6 s launch cost on both sides: compile cells launch per
    # seed and pay it whole, their "off" partner's 8 seeds share one launch and split it (0.75 s
    # each). Compared by cell_wall_s, compile would be "slower" by the scheduling alone.
    (tmp_path / "cells").mkdir()
    for seed in range(SEEDS):
        own = BASE["wall"][seed]
        off = result("cpu-1proc", "fp32", seed, {}, BASE)
        off["cell_wall_s"] = own + 6.0 / SEEDS
        off["launch"] = {"seeds": SEEDS, "own_s": own, "fixed_share_s": 6.0 / SEEDS, "wall_s": 6.0 + sum(BASE["wall"])}
        on = result("cpu-1proc", "fp32", seed, {"compile": "inductor"}, BASE, {"compile": {"compile_s": 1.0}})
        on["cell_wall_s"] = own + 6.0
        on["launch"] = {"seeds": 1, "wall_s": own + 6.0}
        for r in (off, on):
            (tmp_path / "cells" / f"{r['cell']['id']}.json").write_text(json.dumps(r))
    report = build_report(tmp_path, measure_peaks=False)
    entry = _entry(_section(report, "compile"), "kn-mlp__cpu-1proc__fp32__compile=inductor")
    assert entry["cell_wall_s"]["verdict"] == "no difference measured" and entry["cell_wall_s"]["ratio"] == pytest.approx(1.0)

