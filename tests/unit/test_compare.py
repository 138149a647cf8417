"""`bench compare`: fails on real regressions, passes honest noise, and picks committed baselines.

The fixtures under tests/fixtures/compare/ are two real runs of the same commit and cell
(maintenance GRU, cpu-1proc, fp32, seed 0, target F1 0.3), made back to back on the 2-core CI-class
machine with `bench run --matrix <yaml>`; see docs/compare.md. Regressions are injected into copies.

The tests that start processes are in tests/e2e/test_compare.py."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from bench.analysis.gate.against_baseline import NOISE, compare_results, parse_thresholds
from bench.analysis.gate.against_baseline import BaselineSettings as GateSettings
from bench.analysis.gate.baselines import find_baseline, save_baseline
from bench.analysis.gate.judge import IMPROVEMENT, REGRESSION
from bench.cli import main
from bench.errors import BenchError
from bench.results import load_run_dicts
from tests.helpers.compare import CELL, RUN_A, RUN_B, _slower, _write_run


def _with_seed(result: dict, seed: int) -> dict:
    r = copy.deepcopy(result)
    r["cell"]["seed"] = seed
    r["cell"]["id"] = f"{CELL}__s{seed}"
    return r


def _compare(base: list[dict], cand: list[dict], **settings) -> list:
    return compare_results(base, cand, GateSettings(**settings))


def _verdict(verdicts: list, metric: str) -> str:
    return next(v.verdict for v in verdicts if v.metric == metric)


@pytest.fixture(scope="module")
def honest() -> tuple[list[dict], list[dict]]:
    return load_run_dicts(RUN_A), load_run_dicts(RUN_B)


def test_an_injected_30_percent_throughput_drop_fails(tmp_path: Path, honest, capsys) -> None:
    base, cand = honest
    slow = _write_run(tmp_path / "slow", [_slower(r, 1 / 0.7) for r in cand])
    assert main(["compare", str(RUN_A), str(slow)]) == 1
    report = capsys.readouterr().out
    assert "**FAIL**" in report
    row = next(line for line in report.splitlines() if "| samples_per_s" in line)
    assert row.startswith("| regression") and "step times" in row


def test_a_quality_drop_below_the_target_fails(tmp_path: Path, honest, capsys) -> None:
    base, cand = honest
    worse = copy.deepcopy(cand[0])
    target = worse["target"]["value"]
    worse["metrics"]["val"]["f1"] = target - 0.05
    worse["status"], worse["reason"] = "not_converged", "epoch budget of 10 spent"
    worse["timings"]["time_to_target_s"] = None
    run = _write_run(tmp_path / "worse", [worse])
    assert main(["compare", str(RUN_A), str(run)]) == 1
    report = capsys.readouterr().out
    assert "below the target" in report
    assert any(line.startswith("| regression") and "| status" in line for line in report.splitlines())


def test_a_quality_drop_past_the_tolerance_fails_and_one_within_passes(honest) -> None:
    base, cand = honest
    small, large = copy.deepcopy(cand), copy.deepcopy(cand)
    small[0]["metrics"]["test"]["f1"] -= 0.01
    large[0]["metrics"]["test"]["f1"] -= 0.05
    assert _verdict(_compare(base, small), "test f1") == "ok"
    assert _verdict(_compare(base, large), "test f1") == REGRESSION
    assert _verdict(_compare(base, large, quality_tolerance=0.06), "test f1") == "ok"


def test_the_seed_spread_widens_the_quality_allowance(honest) -> None:
    base, cand = honest
    spread = [_with_seed(base[0], s) for s in range(3)]
    for r, delta in zip(spread, (0.0, -0.04, 0.04), strict=True):
        r["metrics"]["test"]["f1"] += delta
    dropped = [_with_seed(cand[0], s) for s in range(3)]
    for r in dropped:
        r["metrics"]["test"]["f1"] -= 0.05  # past the 0.02 tolerance, inside the 0.08 spread
    assert _verdict(_compare(spread, dropped), "test f1") == "ok"


def test_a_small_slowdown_passes_and_a_big_speedup_is_an_improvement(honest) -> None:
    base, cand = honest
    assert _verdict(_compare(base, [_slower(cand[0], 1.1)]), "samples_per_s") == "ok"
    faster = _compare(base, [_slower(cand[0], 0.5)])
    assert _verdict(faster, "samples_per_s") == IMPROVEMENT
    assert not any(v.verdict == REGRESSION for v in faster)


def test_a_slowdown_past_the_threshold_without_repeated_measurements_is_not_significant(honest) -> None:
    base, cand = copy.deepcopy(honest)
    slow = _slower(cand[0], 2.0)
    for r in (base[0], slow):
        del r["timings"]["step_times_s"]  # results from before step times were kept: one value a side
    verdicts = _compare(base, [slow])
    assert _verdict(verdicts, "samples_per_s") == NOISE
    assert not any(v.verdict == REGRESSION for v in verdicts)


def test_per_seed_values_are_tested_when_there_are_enough_seeds(honest) -> None:
    base, cand = honest
    seeds_a = [_with_seed(base[0], s) for s in range(5)]
    seeds_b = [_slower(_with_seed(cand[0], s), 1 / 0.7) for s in range(5)]
    for i, r in enumerate(seeds_a + seeds_b):
        del r["timings"]["step_times_s"]
        r["throughput"]["samples_per_s"] *= 1 + 0.01 * (i % 5)  # distinct values, as real seeds give
    verdict = next(v for v in _compare(seeds_a, seeds_b) if v.metric == "samples_per_s")
    assert verdict.verdict == REGRESSION and "5 vs 5 seeds" in verdict.why


def test_more_memory_fails_and_a_threshold_can_allow_it(honest) -> None:
    base, cand = honest
    hungry = copy.deepcopy(cand[0])
    hungry["memory"]["peak_rss_mb_max"] *= 1.3
    assert _verdict(_compare(base, [hungry]), "peak_rss_mb") == REGRESSION
    thresholds = parse_thresholds(["peak_rss_mb=0.5"])
    assert _verdict(_compare(base, [hungry], thresholds=thresholds), "peak_rss_mb") == "ok"


def test_a_missing_or_failing_cell_is_a_regression(honest) -> None:
    base, cand = honest
    other = _with_seed(cand[0], 0)
    other["cell"]["topology"] = "cpu-ddp2"  # a cell is matched on its key, made of these fields
    other["cell"]["id"] = "maintenance-gru__cpu-ddp2__fp32__s0"
    missing = _compare(base, [other])
    assert [v.verdict for v in missing if v.cell == CELL] == [REGRESSION]
    assert any(v.verdict == "new" for v in missing)
    failed = {"schema_version": 1, "cell": cand[0]["cell"], "status": "failed", "reason": "timed out"}
    assert _verdict(_compare(base, [failed]), "status") == REGRESSION


def test_speed_is_not_judged_across_hardware_classes(tmp_path: Path, honest, capsys) -> None:
    base, cand = honest
    elsewhere = _slower(cand[0], 1 / 0.7)
    elsewhere["environment"]["hardware_class"] = "gpu-1xNVIDIA-H100"
    run = _write_run(tmp_path / "elsewhere", [elsewhere])
    assert main(["compare", str(RUN_A), str(run)]) == 0
    assert "Different hardware" in capsys.readouterr().out
    assert main(["compare", str(RUN_A), str(run), "--any-hardware"]) == 1


def test_auto_picks_the_baseline_of_this_hardware_or_says_none_fits(tmp_path: Path, honest, capsys) -> None:
    from bench.analysis.gate.baselines import Hardware
    from bench.harness.host import hardware

    base, cand = honest
    here = hardware()
    local = []
    for r in (base[0], cand[0]):
        r = copy.deepcopy(r)
        r["environment"].update(here)
        local.append(r)
    run_a = _write_run(tmp_path / "20990101-000000-a", [local[0]])
    results_dir = tmp_path / "results"
    _write_run(results_dir / "20990101-000001-b", [local[1]])

    with pytest.raises(BenchError, match="no committed baseline fits this hardware"):
        find_baseline(results_dir / "baselines", Hardware.of_environment(here))
    assert main(["compare", "--baseline", "auto", "latest", "--results-dir", str(results_dir)]) == 2
    assert "no committed baseline fits" in capsys.readouterr().err

    saved = save_baseline(run_a, results_dir / "baselines")
    meta = json.loads((saved / "baseline.json").read_text())
    assert meta["hardware_class"] == here["hardware_class"]
    assert meta["hardware"]["cpu_precision_flags"] == here["cpu_precision_flags"]
    choice = find_baseline(results_dir / "baselines", Hardware.of_environment(here))
    assert choice.path == saved and choice.matched
    assert main(["compare", "--baseline", "auto", "latest", "--results-dir", str(results_dir)]) == 0
    assert str(saved) in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "/nonexistent/run", str(RUN_B)], "no such run"),
        (["compare", str(RUN_A), str(RUN_B), "--threshold", "speed=0.1"], "--threshold wants METRIC=FRACTION"),
        (["compare", str(RUN_A)], "give BASELINE and CANDIDATE"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_target_direction_comes_from_the_result_never_from_a_workload(honest, monkeypatch) -> None:
    base, cand = honest
    monkeypatch.setitem(sys.modules, "workloads", None)  # any import of a workload now raises
    worse_f1 = copy.deepcopy(cand[0])
    worse_f1["metrics"]["val"]["f1"] = base[0]["metrics"]["val"]["f1"] + 0.2
    assert base[0]["target"]["higher_is_better"] is True  # a version 1 file, upgraded as it loads
    assert _verdict(_compare(base, [worse_f1]), "val f1") == IMPROVEMENT
    lower = [copy.deepcopy(base[0])]
    lower[0]["target"]["higher_is_better"] = False  # as a version 2 result of a loss target records it
    worse_f1["target"]["higher_is_better"] = False
    assert _verdict(_compare(lower, [worse_f1]), "val f1") == REGRESSION


def test_cells_are_matched_on_their_key_without_the_seed(honest) -> None:
    from bench.analysis.gate.against_baseline import group_key

    base, _ = honest
    assert group_key(base[0]) == CELL
    assert group_key(_with_seed(base[0], 3)) == CELL


def test_only_cells_whose_every_regression_is_speed_are_rechecked() -> None:
    from bench.analysis.gate.against_baseline import GateVerdict
    from bench.analysis.gate.recheck import cells_to_recheck

    verdicts = [
        GateVerdict("a", "samples_per_s", REGRESSION), GateVerdict("a", "time_to_target_s", REGRESSION),
        GateVerdict("b", "samples_per_s", REGRESSION), GateVerdict("b", "f1", REGRESSION),  # quality: fails at once
        GateVerdict("c", "peak_rss_mb", REGRESSION),  # memory does not vary with load
        GateVerdict("d", "samples_per_s", NOISE),
    ]
    assert cells_to_recheck(verdicts) == ["a"]


def test_a_recheck_clears_a_slowdown_only_when_the_re_run_does_not_show_it() -> None:
    from bench.analysis.gate.against_baseline import GateVerdict
    from bench.analysis.gate.judge import OK
    from bench.analysis.gate.recheck import UNCONFIRMED, confirm

    first = [GateVerdict("a", "samples_per_s", REGRESSION, change="-40%"), GateVerdict("a", "status", OK),
             GateVerdict("b", "samples_per_s", REGRESSION, change="-40%"), GateVerdict("c", "samples_per_s", REGRESSION)]
    second = [GateVerdict("a", "samples_per_s", OK, change="-3%"), GateVerdict("b", "samples_per_s", REGRESSION, change="-38%"),
              GateVerdict("c", "status", REGRESSION, "converged", "failed")]
    out = confirm(first, second, ["a", "b", "c"])
    assert [v.verdict for v in out] == [UNCONFIRMED, OK, REGRESSION, REGRESSION]
    assert "re-run -3% (ok)" in out[0].why and "confirmed, re-run -38%" in out[2].why
    assert "re-run gave no figure (status failed)" in out[3].why  # a failed re-run clears nothing

