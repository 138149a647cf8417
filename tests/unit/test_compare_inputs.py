"""`bench compare` and `bench report` on bad numbers and bad files.

- A quality (or speed) figure that is not a finite number where the baseline has one is a
  regression, whether the file holds a bare NaN (written before results went strict JSON) or a
  null with its reason under `non_finite` (written now).
- A result file with wrongly typed fields is bad input: one line `error: ...`, exit 2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench.analysis.gate.against_baseline import BaselineSettings as GateSettings
from bench.analysis.gate.against_baseline import compare_results
from bench.analysis.gate.judge import REGRESSION
from bench.cli import main
from bench.results import load_run_dicts, result_path, write_json_atomic
from tests.helpers.compare import RUN_A, RUN_B, _write_run


@pytest.fixture(scope="module")
def honest() -> tuple[dict, dict]:
    return load_run_dicts(RUN_A)[0], load_run_dicts(RUN_B)[0]


def _verdicts(base: dict, cand: dict) -> dict[str, object]:
    return {v.metric: v for v in compare_results([base], [cand], GateSettings())}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_quality_metric_that_is_not_a_number_fails_where_the_baseline_has_one(honest, value) -> None:
    base, cand = honest
    bad = copy.deepcopy(cand)
    bad["metrics"]["val"]["f1"] = value
    verdict = _verdicts(base, bad)["val f1"]
    assert verdict.verdict == REGRESSION and "not a finite number" in verdict.why
    no_number = copy.deepcopy(base)
    no_number["metrics"]["val"]["f1"] = float("nan")  # nothing to hold the candidate to
    assert "val f1" not in _verdicts(no_number, bad)


def test_a_quality_metric_the_candidate_lacks_fails(honest) -> None:
    base, cand = honest
    bad = copy.deepcopy(cand)
    del bad["metrics"]["test"]["f1"]
    verdict = _verdicts(base, bad)["test f1"]
    assert verdict.verdict == REGRESSION and "no test f1" in verdict.why


def test_a_non_finite_speed_figure_fails_where_the_baseline_has_a_number(honest) -> None:
    base, cand = honest
    bad = copy.deepcopy(cand)
    bad["throughput"]["samples_per_s"] = float("nan")
    verdict = _verdicts(base, bad)["samples_per_s"]
    assert verdict.verdict == REGRESSION and "not a finite number" in verdict.why
    unreached = copy.deepcopy(cand)
    unreached["timings"]["time_to_target_s"] = None  # null without a reason: not measured, not judged
    assert "time_to_target_s" not in _verdicts(base, unreached)


def test_nan_quality_fails_the_cli_in_old_and_new_files(tmp_path: Path, honest, capsys) -> None:
    base, cand = honest
    bad = copy.deepcopy(cand)
    bad["metrics"]["val"]["f1"] = float("nan")
    old = _write_run(tmp_path / "old", [bad])  # json.dumps: a bare NaN, as results were written before
    assert "NaN" in next((old / "cells").glob("*.json")).read_text()
    assert main(["compare", str(RUN_A), str(old)]) == 1
    assert "not a finite number" in capsys.readouterr().out

    new = tmp_path / "new"
    write_json_atomic(result_path(new, bad["cell"]["id"]), bad)  # strict JSON: null and its reason
    assert "NaN" not in next((new / "cells").glob("*.json")).read_text()
    assert main(["compare", str(RUN_A), str(new)]) == 1
    out = capsys.readouterr().out
    assert "not a finite number (nan)" in out
    assert "**FAIL**" in out


WRONGLY_TYPED = {
    "cell is a string": lambda r: r.update(cell="maintenance-gru"),
    "seed is a string": lambda r: r["cell"].update(seed="zero"),
    "metrics is a list": lambda r: r.update(metrics=[0.32]),
    "a split is a number": lambda r: r["metrics"].update(val=0.32),
    "the target metric is a string": lambda r: r["metrics"]["val"].update(f1="0.32"),
    "timings is a string": lambda r: r.update(timings="fast"),
    "step times are a string": lambda r: r["timings"].update(step_times_s="many"),
    "throughput is a string": lambda r: r["throughput"].update(samples_per_s="97"),
    "target value is a string": lambda r: r["target"].update(value="high"),
    "environment is a string": lambda r: r.update(environment="cpu"),
    "cpu_count is a string": lambda r: r["environment"].update(cpu_count="two"),
    "curve is a dict": lambda r: r.update(curve={"seconds": 1.0}),
    "memory is a list": lambda r: r.update(memory=[400]),
    "data is a string": lambda r: r.update(data="maintenance.csv"),
    "data hashes are a list": lambda r: r.update(data={"sha256": ["0a1b"]}),
}


@pytest.mark.parametrize("fault", list(WRONGLY_TYPED))
def test_a_result_with_wrongly_typed_fields_is_one_line_and_exit_2_in_compare_and_report(
    tmp_path: Path, honest, fault: str, capsys
) -> None:
    _, cand = honest
    bad = copy.deepcopy(cand)
    WRONGLY_TYPED[fault](bad)
    cell_id = cand["cell"]["id"]
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / f"{cell_id}.json").write_text(json.dumps(bad))

    for argv in (["compare", str(RUN_A), str(run)], ["compare", str(run), str(RUN_B)],
                 ["report", str(run), "--out", str(tmp_path / "report"), "--no-peak-measure"]):
        assert main(argv) == 2, f"{argv[0]}: {fault}"
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        assert "invalid result" in err and cell_id in err

