"""`bench report`: statistics, tables, verdicts, listings and plots from a hand-made fixture run.

tests/fixtures/report-run holds 20 schema-valid cells of two made-up workloads (the reporter must not
know any workload by name):
- alpha (target val f1 >= 0.5, CPU): cpu-1proc fp32 x5 seeds (time-to-target 9, 10, 13, 14, 30 s;
  1000, 1100, 900, 1000, 950 samples/s), cpu-ddp2 fp32 x5 (6, 7, 8, 9 s and one not_converged;
  1800, 1700, 1900, 1800, 1600 samples/s), cpu-1proc bf16 x2 (20, 22 s; 500, 520 samples/s), one
  unsupported, skipped, invalid and failed cell each, and classical baselines over 2 seeds;
- beta (target val roc_auc >= 0.8, one GPU, tokens/s and CUDA memory): gpu-1 fp32 5 s, bf16 2.5 s.
run.json records peaks: CPU fp32 1e11, bf16 2e10 FLOP/s; CUDA (an H100) fp32 5e13 measured, 6.69e13 datasheet.

The tests that start processes are in tests/e2e/test_report.py."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bench.analysis import stats
from bench.analysis.plots import write_plots
from bench.analysis.report_render import render_csv, render_json, render_markdown
from bench.cli import main
from bench.harness.peak import datasheet_peak, matmul_flops
from tests.helpers.report import FIXTURE


def test_olympic_mean_drops_fastest_and_slowest_from_five_seeds_up():
    assert stats.olympic_mean([9, 10, 13, 14, 30]) == pytest.approx((10 + 13 + 14) / 3)
    assert stats.olympic_mean([1, 2, 3, 4]) is None  # fewer than 5: no olympic mean
    assert stats.olympic_mean([9, None, 10, 13, 14, 30]) == pytest.approx((10 + 13 + 14) / 3)


def test_median_and_range_ignore_missing_values():
    assert stats.median([3, None, 1, 2]) == 2
    assert stats.value_range([3, None, 1, float("nan")]) == (1, 3)
    assert stats.median([None]) is None and stats.value_range([]) is None


def test_speedup_ratio_and_scaling_efficiency():
    assert stats.speedup(13.0, 6.5) == pytest.approx(2.0)
    assert stats.speedup(None, 6.5) is None and stats.speedup(13.0, None) is None
    assert stats.rate_ratio(1800, 1000) == pytest.approx(1.8)
    assert stats.scaling_efficiency(1800, 1000, 2) == pytest.approx(0.9)
    assert stats.scaling_efficiency(1800, None, 2) is None


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([6, 7, 8], [9, 10, 30], "lower"),  # ranges apart
        ([9, 10, 30], [6, 7, 8], "higher"),
        ([6, 7, 9], [9, 10, 30], "overlap"),  # touching counts as overlap: inconclusive
        ([6], [9, 10], "single-seed"),  # no spread on one side: cannot judge
        ([None], [9, 10], "unknown"),
    ],
)
def test_compare_is_inconclusive_when_seed_spreads_overlap(a, b, verdict):
    comparison = stats.compare(a, b)
    assert comparison.verdict == verdict
    assert comparison.conclusive == (verdict in ("higher", "lower"))


def _row(report, workload: str, topology: str, precision: str) -> dict:
    w = next(w for w in report.workloads if w.name == workload)
    return next(r for r in w.rows if (r["topology"], r["precision"]) == (topology, precision))


def test_groups_aggregate_seeds(report):
    ref = _row(report, "alpha", "cpu-1proc", "fp32")
    assert (ref["converged"], ref["cells"], ref["processes"], ref["device"]) == (5, 5, 1, "cpu")
    assert ref["time_to_target_s"]["median"] == 13
    assert (ref["time_to_target_s"]["min"], ref["time_to_target_s"]["max"]) == (9, 30)
    assert ref["time_to_target_s"]["olympic_mean"] == pytest.approx(37 / 3)
    assert ref["samples_per_s"]["median"] == 1000
    assert ref["quality"]["test_f1"] == {"median": 0.55, "min": 0.54, "max": 0.57, "n": 5, "label": "test f1"}
    assert ref["speedup_time_to_target"] == pytest.approx(1.0)
    assert ref["scaling_efficiency"] is None  # single process


def test_multi_process_speedup_and_scaling_efficiency(report):
    ddp = _row(report, "alpha", "cpu-ddp2", "fp32")
    assert (ddp["converged"], ddp["cells"], ddp["statuses"]) == (4, 5, {"converged": 4, "not_converged": 1})
    assert ddp["time_to_target_s"]["median"] == pytest.approx(7.5)  # over converged seeds only
    # MLPerf's rule: the seed that did not converge counts as the slowest and is dropped with the fastest
    assert ddp["time_to_target_s"]["olympic_mean"] == pytest.approx((7 + 8 + 9) / 3)
    assert ddp["reference"] == "cpu-1proc fp32"
    assert ddp["speedup_time_to_target"] == pytest.approx(13 / 7.5)
    assert ddp["throughput_ratio"] == pytest.approx(1.8)
    assert ddp["scaling_efficiency"] == pytest.approx(1800 / (2 * 1000))


def test_mfu_uses_the_peak_of_the_cells_dtype_and_device(report):
    # CPU: flops 1e6/sample x samples/s over the host peak of the dtype (not multiplied by ranks).
    assert _row(report, "alpha", "cpu-1proc", "fp32")["mfu_measured"]["median"] == pytest.approx(1e6 * 1000 / 1e11)
    assert _row(report, "alpha", "cpu-1proc", "bf16")["mfu_measured"]["median"] == pytest.approx(1e6 * 510 / 2e10)
    assert _row(report, "alpha", "cpu-ddp2", "fp32")["mfu_measured"]["median"] == pytest.approx(1e6 * 1800 / 1e11)
    assert _row(report, "alpha", "cpu-1proc", "fp32")["mfu_datasheet"]["median"] is None  # no datasheet for CPUs
    gpu = _row(report, "beta", "gpu-1", "fp32")
    assert gpu["mfu_measured"]["median"] == pytest.approx(1e9 * 200 / 5e13)
    assert gpu["mfu_datasheet"]["median"] == pytest.approx(1e9 * 200 / 6.69e13)
    assert gpu["cuda_max_allocated_mb"]["median"] == 1000 and gpu["cuda_max_reserved_mb"]["median"] == 1200
    assert gpu["tokens_per_s"]["median"] == 25600


@pytest.mark.parametrize(("flags", "shown"), [(["avx512f"], False), ([], False), (["avx512_bf16", "avx512f"], True),
                                            (["amx_bf16", "amx_tile"], True), (None, True)])
def test_a_bf16_cell_on_a_cpu_that_only_emulates_bf16_gets_no_mfu(flags, shown):
    # 91% of an emulated bf16 peak would make a cell 3x slower than fp32 look efficient. A result
    # that records no flags (written before they were) keeps its MFU.
    from bench.analysis.report import mfu
    from bench.results import Result

    result = json.loads((FIXTURE / "cells" / "alpha-gru__cpu-1proc__bf16__s0.json").read_text())
    if flags is not None:
        result["environment"] = {**result.get("environment", {}), "cpu_precision_flags": flags}
    peaks = json.loads((FIXTURE / "run.json").read_text())["environment"]["peak_flops"]
    assert (mfu(Result.from_dict(result), peaks, "measured") is not None) is shown
    fp32 = json.loads((FIXTURE / "cells" / "alpha-gru__cpu-1proc__fp32__s0.json").read_text())
    fp32["environment"] = {**fp32.get("environment", {}), "cpu_precision_flags": flags or []}
    assert mfu(Result.from_dict(fp32), peaks, "measured") is not None  # fp32 is native everywhere


def test_quality_columns_follow_each_workloads_target(report):
    alpha, beta = report.workloads
    assert alpha.target["metric"] == "f1" and beta.target["metric"] == "roc_auc"
    assert "test_roc_auc" in _row(report, "beta", "gpu-1", "bf16")["quality"]
    assert _row(report, "beta", "gpu-1", "bf16")["speedup_time_to_target"] == pytest.approx(2.0)


def test_any_split_is_a_quality_column_and_nested_or_nan_entries_are_not_figures(report):
    quality = _row(report, "beta", "gpu-1", "fp32")["quality"]
    assert quality["out_of_domain_accuracy"]["median"] == pytest.approx(0.7)  # a split name with "_"
    assert quality["out_of_domain_accuracy"]["label"] == "out_of_domain accuracy"
    assert quality["out_of_domain_roc_auc"]["median"] is None and quality["out_of_domain_roc_auc"]["n"] == 0  # NaN
    assert "test_at_threshold" not in quality  # nested report, not a number


def test_baselines_are_aggregated_over_seeds(report):
    alpha = report.workloads[0]
    rf = next(b for b in alpha.baselines if b["model"] == "random_forest")
    assert rf["kind"] == "baseline" and rf["cells"] == 2
    assert rf["quality"]["test_f1"]["median"] == pytest.approx(0.65)
    assert rf["fit_seconds"]["median"] == pytest.approx(2.5)


def test_every_cell_without_numbers_is_listed_with_its_reason(report):
    listed = {c["status"]: c for c in report.without_numbers}
    assert set(listed) == {"unsupported", "skipped", "invalid", "failed"}
    assert listed["skipped"]["reason"] == "needs 1 GPU(s), found 0"
    assert listed["failed"]["last_stderr_line"] == "RuntimeError: boom in fixture"
    assert all(c["reason"] for c in report.without_numbers)
    (not_converged,) = report.workloads[0].not_converged
    assert not_converged["id"] == "alpha-gru__cpu-ddp2__fp32__s4" and "budget" in not_converged["reason"]
    # Their configurations still have a row in the table, with n/N converged.
    assert _row(report, "alpha", "cpu-2node", "fp32")["processes"] == 2  # asked for, not the broken launch's 1
    assert _row(report, "alpha", "gpu-1", "fp32")["converged"] == 0


def test_rows_are_ordered_by_scale_then_precision(report):
    # CPU before GPU; 1 process, then 2 processes on one node, then 2 processes on 2 nodes
    # (cpu-2node after cpu-ddp2, although its name sorts first); then fp32, bf16, fp16.
    rows = report.workloads[0].rows
    assert [(r["topology"], r["precision"]) for r in rows] == [
        ("cpu-1proc", "fp32"), ("cpu-1proc", "bf16"), ("cpu-1proc", "fp16"), ("cpu-ddp2", "fp32"), ("cpu-ddp2", "bf16"),
        ("cpu-2node", "fp32"), ("gpu-1", "fp32")]
    assert [(r["processes"], r["nodes"]) for r in rows] == [(1, 1)] * 3 + [(2, 1)] * 2 + [(2, 2), (1, 1)]


def test_curves_carry_seconds_values_and_samples(report):
    (curve, *_) = _row(report, "alpha", "cpu-1proc", "fp32")["curves"]
    assert curve["seed"] == 0 and curve["metric"] == "f1"
    assert curve["seconds"] == [3.0, 6.0, 9.0] and curve["samples"] == [640, 1280, 1920]
    assert len(curve["value"]) == 3


def test_verdict_names_the_fastest_and_calls_only_what_holm_decides(report):
    lines = report.workloads[0].verdict
    # ddp2 is fastest by its median, but 4 converged seeds and 1 censored against 5 cannot be told apart
    # from the reference at this report's level: the fastest is a tie, and the tie is said.
    assert lines[0].startswith("**Fastest to target:** gru · cpu-ddp2 · fp32: 7.50 s")
    assert "tied with gru · cpu-1proc · fp32, gru · cpu-1proc · bf16" in lines[0]
    assert any(line.startswith("**Least memory:** gru · cpu-1proc · bf16: 380 MB") for line in lines)
    bf16 = next(line for line in lines if line.startswith("**cpu-1proc bf16**"))
    # 2 bf16 seeds against 5: the smallest two-sided p is 2/21 = 0.095, never below Holm's 0.05/12;
    # inside the reference's range the time shows no difference, apart from it the throughput needs more seeds
    assert "time-to-target 21.0 s vs 13.0 s: no difference measured (1.63x, p 0.38, n = 2 vs 5)" in bf16
    assert "throughput 510 vs 1,000 samples/s: undecided, needs 6 seeds a side (0.52x, p 0.095, n = 2 vs 5)" in bf16
    ddp = next(line for line in lines if line.startswith("**cpu-ddp2 fp32**"))
    # 5 v 5 with the ranges apart gives p = 2/252 = 0.0079: significant alone, not among 12 claims (Holm)
    assert "throughput 1,800 vs 1,000 samples/s: undecided, needs 6 seeds a side (1.80x, p 0.0079, n = 5 vs 5)" in ddp
    assert "scaling efficiency 90% over 2 processes" in ddp
    assert any("cpu-1proc fp16" in line and "1 unsupported" in line for line in lines)
    beta = report.workloads[1].verdict
    assert any("CUDA max allocated per rank 600 vs 1,000 MB" in line for line in beta)  # GPU: ranks by CUDA memory
    assert any("time-to-target 2.50 s vs 5.00 s: undecided, needs 6 seeds a side (0.50x, p 1, n = 1 vs 1)" in line
               for line in beta)
    assert report.claims == 12 and report.alpha == 0.05  # the two convergence claims at 5/5 and 1/1 cannot decide: not counted


def test_with_enough_seeds_a_difference_is_called_and_the_fastest_stands_alone():
    from bench.analysis.report_compare import control_claims, judge

    fast, slow = judge([5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6], [9.0, 9.2, 9.4, 9.6, 9.8, 10.0, 10.2], ("slower", "faster")), \
        judge([9.5, 9.6], [9.0, 9.2], ("slower", "faster"))
    assert control_claims([fast, slow]) == 2
    assert fast["conclusive"] and fast["verdict"] == "faster" and fast["ratio"] == pytest.approx(0.55, abs=0.01)
    assert not slow["conclusive"] and slow["verdict"] == "needs more seeds"


def test_markdown_holds_tables_baselines_listings_and_environment(report):
    md = render_markdown(report, {"alpha": [("alpha: convergence", "alpha-convergence.png")]})
    assert "| model" in md and "random_forest (baseline)" in md
    assert "13.0 [9.0–30.0]" in md and "12.3" in md  # median [min-max] and olympic mean
    for cell in report.without_numbers:
        assert f"`{cell['id']}`" in md
    assert "![alpha: convergence](alpha-convergence.png)" in md
    assert "`python -m bench run --matrix fixture`" in md and "`0123456789abcdef`" in md
    assert "66.9 TFLOP/s (NVIDIA H100 SXM)" in md
    alpha_table = md.split("## alpha")[1].split("## beta")[0]
    assert "tokens/s" not in alpha_table and "CUDA alloc MB" not in alpha_table  # empty columns dropped
    assert "tokens/s" in md.split("## beta")[1]


def test_csv_and_json_carry_the_same_figures(report):
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == sum(len(w.rows) + len(w.baselines) for w in report.workloads) == 11
    ddp = next(r for r in rows if (r["workload"], r["topology"], r["precision"]) == ("alpha", "cpu-ddp2", "fp32"))
    assert float(ddp["time_to_target_s_median"]) == pytest.approx(7.5)
    assert float(ddp["scaling_efficiency"]) == pytest.approx(0.9)
    assert ddp["statuses"] == "converged:4;not_converged:1"
    text = render_json(report)  # strict JSON: the fixture's NaN comes out as null
    payload = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
    assert payload["workloads"][1]["rows"][0]["per_seed"]["out_of_domain_roc_auc"] == [None]
    assert payload["workloads"][0]["name"] == "alpha"
    assert {c["status"] for c in payload["without_numbers"]} == {"unsupported", "skipped", "invalid", "failed"}


def test_plots_are_written_as_non_empty_pngs(report, tmp_path):
    written = write_plots(report, tmp_path)
    assert [name for _, name in written["alpha"]] == [
        "alpha-quality-vs-throughput.png", "alpha-time-to-target.png", "alpha-convergence.png", "alpha-peak-memory.png"
    ]
    for files in written.values():
        for _, name in files:
            data = (tmp_path / name).read_bytes()
            assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_datasheet_peaks_match_gpu_names():
    assert datasheet_peak("NVIDIA H100 80GB HBM3")[0] == "NVIDIA H100 SXM"
    assert datasheet_peak("NVIDIA H100 PCIe")[0] == "NVIDIA H100 PCIe"
    assert datasheet_peak("NVIDIA A100-SXM4-80GB")[1]["bf16"] == 312e12
    assert datasheet_peak("NVIDIA A10G")[0] == "NVIDIA A10"
    assert datasheet_peak("Some Future GPU") is None
    # A model name inside a longer one is another GPU (issue 27): the L40 is no L4, the A100 no A10.
    assert datasheet_peak("NVIDIA L40") is None
    assert datasheet_peak("NVIDIA L4")[0] == "NVIDIA L4" and datasheet_peak("NVIDIA L40S")[0] == "NVIDIA L40S"
    assert datasheet_peak("NVIDIA A100 80GB PCIe")[0] == "NVIDIA A100"


def test_matmul_peak_is_a_plausible_rate():
    rate = matmul_flops("fp32", "cpu", 128, 0.01)
    assert 1e6 < rate < 1e14  # FLOP/s: above a megaflop, below any CPU


def test_cli_prints_csv_to_stdout(capsys):
    assert main(["report", str(FIXTURE), "--format", "csv", "--out", "-"]) == 0
    assert capsys.readouterr().out.startswith("workload,kind,model")


@pytest.mark.parametrize(
    "args",
    [("does/not/exist",), (str(FIXTURE), "--format", "md", "--out", "-"), (str(FIXTURE), "--metrics", "bogus")],
)
def test_cli_user_errors_are_one_line(args, capsys):
    assert main(["report", *args, "--no-peak-measure"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1

