"""`bench run --seeds auto`: the decision after each round (bench/analysis/seeds_auto.py) on result
dicts built here with chosen numbers, the command line's checks, a loop over cells this host
skips (in-process, nothing launched), and one real run of two configurations end to end.

The tests that start processes are in tests/e2e/test_seeds_auto.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.analysis.seeds_auto import (
    BASELINES,
    DID_NOT_CONVERGE,
    NO_REFERENCE,
    REFERENCE,
    REFERENCE_DID_NOT_CONVERGE,
    decide,
    needing_a_seed,
    record,
)
from bench.cells import CellKey
from bench.cli import main
from tests.helpers.seeds_auto import one_error_line, write_matrix

REF = "kn-mlp__cpu-1proc__fp32"


DDP = "kn-mlp__cpu-ddp2__fp32"


BF16 = "kn-mlp__cpu-1proc__bf16"


def result(topology: str, precision: str, seed: int, ttt: float | None, status: str = "converged",
           reason: str = "") -> dict[str, Any]:
    """One result of workload `kn`: trained (converged in `ttt` s, or not) or without numbers."""
    cell = {"workload": "kn", "variant": "mlp", "topology": topology, "precision": precision, "seed": seed, "kind": "train"}
    cell["id"] = CellKey.of(cell).id
    out: dict[str, Any] = {"schema_version": 2, "cell": cell, "status": status, "reason": reason}
    if status not in ("converged", "not_converged"):
        return out
    processes = 2 if topology == "cpu-ddp2" else 1
    converged = status == "converged"
    out.update({
        "topology": {"name": topology, "num_processes": processes, "use_cpu": True},
        "observed": {"device": "cpu", "compute_dtype": precision},
        "metrics": {"val": {"f1": 0.6 if converged else 0.4}, "test": {"f1": 0.6}},
        "target": {"metric": "f1", "value": 0.5, "split": "val", "higher_is_better": True},
        "timings": {"init_s": 1.0, "time_to_target_s": ttt if converged else None, "train_seconds": ttt or 30.0},
        "samples_to_target": 2000 if converged else None,
        "throughput": {"samples_per_s": 1000.0, "tokens_per_s": None},
        "memory": {"peak_rss_mb_max": 400.0, "peak_rss_mb_sum": 400.0 * processes},
        "curve": [{"step": 10, "samples": 2000, "seconds": ttt or 30.0, "f1": 0.6 if converged else 0.4}],
        "environment": {"hardware_class": "cpu-2core-Fixture", "cpu_count": 2, "gpus": []},
        "cell_wall_s": (ttt or 30.0) + 5,
    })
    return out


def seeds_of(topology: str, precision: str, times: list[float | None]) -> list[dict[str, Any]]:
    """One result per seed 0.., converged in times[seed] seconds (None: not converged)."""
    return [result(topology, precision, seed, t, "converged" if t is not None else "not_converged")
            for seed, t in enumerate(times)]


REFERENCE_TIMES = [10.0, 10.5, 9.8]


FIVE_REFERENCE_TIMES = REFERENCE_TIMES + [10.2, 9.9]


def test_a_configuration_the_test_decides_stops_and_adds_nothing():
    # 5 v 5 seeds apart: p = 2/252 = 0.0079, under the design's per-look level 0.05/6 (start 3, up to 10)
    decisions = decide(seeds_of("cpu-1proc", "fp32", FIVE_REFERENCE_TIMES)
                       + seeds_of("cpu-ddp2", "fp32", [5.0, 5.2, 4.9, 5.1, 5.05]), 10)
    assert decisions[DDP]["stopped"] == "decided after 5 seeds"
    assert decisions[DDP]["reference"] == REF
    assert decisions[DDP]["time_to_target"]["conclusive"] is True
    assert decisions[DDP]["time_to_target"]["verdict"] == "faster"
    assert decisions[REF]["stopped"] == REFERENCE
    assert needing_a_seed(decisions) == []


def test_an_undecided_configuration_adds_the_next_seed_to_it_and_to_its_reference():
    decisions = decide(seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES) + seeds_of("cpu-ddp2", "fp32", [10.2, 9.9, 10.4]), 10)
    assert sorted(needing_a_seed(decisions)) == [REF, DDP]
    assert decisions[DDP]["next_seed"] == decisions[REF]["next_seed"] == 3
    assert decisions[DDP]["open"] == "p 1 above the look's level 0.0083"
    assert decisions[DDP]["time_to_target"]["conclusive"] is False
    assert decisions[REF]["open"] == "reference of 1 undecided configuration"


def test_at_the_maximum_an_undecided_configuration_stops_and_so_does_its_reference():
    decisions = decide(seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES + [10.1]) + seeds_of("cpu-ddp2", "fp32", [10.2, 9.9, 10.4, 10.0]), 4)
    assert decisions[DDP]["stopped"] == "reached the maximum of 4 seeds"
    assert decisions[REF]["stopped"] == REFERENCE
    assert decisions[DDP]["seeds"] == decisions[REF]["seeds"] == 4
    assert needing_a_seed(decisions) == []


def test_a_configuration_that_never_converges_is_decided_and_its_reference_needs_no_seed():
    decisions = decide(seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES) + seeds_of("cpu-ddp2", "fp32", [None, None, None]), 10)
    assert decisions[DDP]["stopped"] == DID_NOT_CONVERGE
    assert decisions[REF]["stopped"] == REFERENCE
    assert needing_a_seed(decisions) == []


def test_seeds_that_did_not_converge_count_as_slower_and_the_comparison_stays_open():
    decisions = decide(seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES) + seeds_of("cpu-ddp2", "fp32", [5.0, None, None]), 10)
    assert decisions[DDP]["stopped"] is None
    assert decisions[DDP]["open"] == "p 0.6 above the look's level 0.0083"
    assert decisions[DDP]["time_to_target"]["n_candidate"] == 3  # the 2 censored seeds are in the test
    assert sorted(needing_a_seed(decisions)) == [REF, DDP]


def test_a_reference_that_never_converges_decides_its_comparisons():
    decisions = decide(seeds_of("cpu-1proc", "fp32", [None, None, None]) + seeds_of("cpu-ddp2", "fp32", [5.0, 5.1, 5.2]), 10)
    assert decisions[DDP]["stopped"] == REFERENCE_DID_NOT_CONVERGE
    assert needing_a_seed(decisions) == []


def test_skipped_unsupported_and_invalid_configurations_are_decided_at_once():
    results = seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES)
    results += [result("gpu-1", "fp32", s, None, "skipped", "needs 1 GPU, found 0") for s in range(3)]
    results += [result("cpu-1proc", "fp16", s, None, "unsupported", "fp16 requested but fp32 computed") for s in range(3)]
    results += [result("cpu-ddp2", "fp32", s, None, "invalid", "2 independent processes, not DDP") for s in range(3)]
    decisions = decide(results, 10)
    assert decisions["kn-mlp__gpu-1__fp32"]["stopped"] == "not run: skipped (needs 1 GPU, found 0)"
    assert decisions["kn-mlp__cpu-1proc__fp16"]["stopped"] == "not run: unsupported (fp16 requested but fp32 computed)"
    assert decisions[DDP]["stopped"] == "not run: invalid (2 independent processes, not DDP)"
    assert decisions[REF]["stopped"] == REFERENCE
    assert needing_a_seed(decisions) == []


def test_a_reference_gets_a_seed_while_any_of_its_comparisons_is_open():
    results = seeds_of("cpu-1proc", "fp32", FIVE_REFERENCE_TIMES + [10.1])
    results += seeds_of("cpu-ddp2", "fp32", [5.0, 5.2, 4.9, 5.1, 5.05, 4.95])  # decided at 6 seeds
    results += seeds_of("cpu-1proc", "bf16", [10.2, 9.9, 10.4])  # open
    decisions = decide(results, 10)
    assert decisions[DDP]["stopped"] == "decided after 6 seeds"
    assert sorted(needing_a_seed(decisions)) == [BF16, REF]
    assert decisions[REF]["next_seed"] == 6 and decisions[BF16]["next_seed"] == 3


def test_configurations_without_a_reference_are_decided():
    decisions = decide(seeds_of("cpu-ddp2", "fp32", [5.0, 5.2, 4.9]) + seeds_of("cpu-ddp2", "bf16", [5.0, 5.2, 4.9]), 10)
    assert {d["stopped"] for d in decisions.values()} == {NO_REFERENCE}


def test_classical_baselines_keep_their_seeds_and_the_record_has_every_configuration():
    baseline = {"schema_version": 2, "status": "baseline", "reason": "",
                "cell": {"workload": "kn", "variant": "baselines", "topology": "none", "precision": "fp32", "seed": 0,
                         "kind": "baseline", "id": "kn__baselines__s0"},
                "baselines": [{"name": "rf", "metrics": {"test": {"f1": 0.5}}, "fit_seconds": 1.0}]}
    decisions = decide(seeds_of("cpu-1proc", "fp32", REFERENCE_TIMES) + [baseline], 10)
    assert decisions["kn__baselines"]["stopped"] == BASELINES
    saved = record(decisions, 3, 10, 1)
    assert saved["done"] is True and saved["max"] == 10 and saved["rounds"] == 1
    assert saved["cells"][REF] == {"workload": "kn", "seeds": 3, "seed_list": [0, 1, 2], "stopped": REFERENCE,
                                   "reference": REF, "time_to_target": None}
    json.dumps(saved, allow_nan=False)  # run.json is strict JSON


@pytest.mark.parametrize(("argv", "message"), [
    (["--seeds", "three"], "--seeds takes a positive whole number or 'auto', got 'three'"),
    (["--seeds", "2.5"], "--seeds takes a positive whole number or 'auto', got '2.5'"),
    (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--seeds", "3", "--max-seeds", "5"], "--max-seeds and --target-ratio go with --seeds auto"),
    (["--seeds", "3", "--target-ratio", "1.3"], "--max-seeds and --target-ratio go with --seeds auto"),
    (["--seeds", "auto", "--target-ratio", "1.3", "--max-seeds", "5"], "give --target-ratio or --max-seeds, not both"),
    (["--seeds", "auto", "--target-ratio", "1"], "--target-ratio must be a ratio away from 1 (e.g. 1.3), got 1"),
    (["--seeds", "auto", "--max-seeds", "2"], "--max-seeds 2 is below the 3 seeds every configuration starts with"),
    (["--seeds", "auto", "--max-seeds", "51"], "--max-seeds must be at most 50, got 51"),
    (["--seeds", "auto", "--max-seeds", "ten"], "--max-seeds takes a whole number, got 'ten'"),
])
def test_bad_seed_options_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    matrix = write_matrix(tmp_path / "m.yaml", ["cpu-1proc"])
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), *argv, "--dry-run"]) == 2
    assert one_error_line(capsys) == f"error: {message}"


def test_a_dry_run_shows_the_first_round_and_says_more_seeds_may_follow(tmp_path, capsys):
    matrix = write_matrix(tmp_path / "m.yaml", ["cpu-1proc"])
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--seeds", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(f"maintenance-gru__cpu-1proc__fp32__s{s}" in out for s in range(3))
    assert "__s3" not in out
    assert "first round (3 seeds per configuration)" in out and "up to --max-seeds 10, may follow" in out


def test_a_target_ratio_sets_the_most_seeds_the_design_needs_to_find_it(tmp_path, capsys):
    matrix = write_matrix(tmp_path / "m.yaml", ["cpu-1proc"])
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--seeds", "auto",
                 "--target-ratio", "2", "--dry-run"]) == 0
    captured = capsys.readouterr()
    # docs/report.md: a 2x ratio is found at least 80% of the time by the time the design reaches 5 seeds
    assert "--target-ratio 2: up to 5 seeds a side" in captured.err and "up to --max-seeds 5" in captured.out


def test_a_matrix_with_more_seeds_starts_with_them(tmp_path, capsys):
    matrix = write_matrix(tmp_path / "m.yaml", ["cpu-1proc"], seeds=5)
    assert main(["run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"), "--seeds", "auto", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "maintenance-gru__cpu-1proc__fp32__s4" in out and "first round (5 seeds per configuration)" in out

