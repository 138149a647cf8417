"""`bench compare --baseline auto` matches hardware on what decides the figures, and never fails
for want of a matching baseline.

What decides the figures: the core count, the CPU flags that decide precision (avx512_bf16,
amx_bf16, amx_tile, avx512_fp16, and avx512f, without which a bf16 LSTM has no kernel at all),
and the GPU model and count. The CPU model string does not:
two VMs of one class report "Intel(R) Xeon(R) Processor @ 2.50GHz" and "AMD EPYC". Where no
baseline matches, status and quality are judged against the nearest and speed and memory are not.

The tests that start processes are in tests/e2e/test_hardware_match.py."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.results import load_run_dicts
from tests.helpers.compare import RUN_A, RUN_B, _slower, _write_run

PROJECT_ROOT = Path(__file__).resolve().parents[2]


COMMITTED = PROJECT_ROOT / "results" / "baselines"


XEON = "Intel(R) Xeon(R) Processor @ 2.50GHz"


def _on(result: dict, cpu_model: str, cores: int, flags: list[str] | None, gpus: list[str] | None = None) -> dict:
    """The result as measured on other hardware (flags None: a result from before they were recorded)."""
    r = copy.deepcopy(result)
    env = r["environment"]
    env["cpu_model"], env["cpu_count"], env["gpus"] = cpu_model, cores, gpus or []
    if gpus:
        env["hardware_class"] = f"gpu-{len(gpus)}x{gpus[0].replace(' ', '-')}"
    else:
        env["hardware_class"] = f"cpu-{cores}core-{cpu_model.replace(' ', '-')}"
    if flags is None:
        env.pop("cpu_precision_flags", None)
    else:
        env["cpu_precision_flags"] = flags
    return r


def _baseline(results_dir: Path, result: dict, hardware_in_meta: bool = True) -> Path:
    """A committed baseline of one cell; `hardware_in_meta=False` writes baseline.json as the
    committed one is, with only its hardware class."""
    from bench.analysis.gate.baselines import save_baseline

    run = _write_run(results_dir / "source", [result])
    saved = save_baseline(run, results_dir / "baselines")
    shutil.rmtree(run)
    if not hardware_in_meta:
        meta = json.loads((saved / "baseline.json").read_text())
        meta.pop("hardware", None)
        (saved / "baseline.json").write_text(json.dumps(meta))
    return saved


@pytest.fixture(scope="module")
def honest() -> tuple[dict, dict]:
    return load_run_dicts(RUN_A)[0], load_run_dicts(RUN_B)[0]


def test_another_cpu_model_string_with_the_same_cores_and_flags_is_matched_and_speed_judged(tmp_path, honest, capsys):
    base, cand = honest
    results = tmp_path / "results"
    _baseline(results, _on(base, XEON, 2, ["avx512_bf16"]))
    same = _write_run(tmp_path / "same", [_on(cand, "AMD EPYC", 2, ["avx512_bf16"])])
    assert main(["compare", "--baseline", "auto", str(same), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "Hardware matches" in out and "not judged" not in out

    slow = _write_run(tmp_path / "slow", [_slower(_on(cand, "AMD EPYC", 2, ["avx512_bf16"]), 1 / 0.7)])
    assert main(["compare", "--baseline", "auto", str(slow), "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("| regression") and "samples_per_s" in line for line in out.splitlines())


def test_another_core_count_judges_status_and_quality_against_the_nearest_and_says_speed_was_not(tmp_path, honest, capsys):
    base, cand = honest
    results = tmp_path / "results"
    _baseline(results, _on(base, XEON, 4, []))
    _baseline(results, _on(base, XEON, 16, []))
    slow = _write_run(tmp_path / "slow", [_slower(_on(cand, "AMD EPYC", 2, []), 3.0)])
    assert main(["compare", "--baseline", "auto", str(slow), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "speed and memory not judged" in out.lower()
    assert "cpu-4core" in out  # the nearest: 4 cores is closer to 2 than 16 is
    assert "samples_per_s" not in out and "**PASS**: 0 regression(s)" in out

    worse = _on(cand, "AMD EPYC", 2, [])
    worse["metrics"]["test"]["f1"] -= 0.1
    run = _write_run(tmp_path / "worse", [worse])
    assert main(["compare", "--baseline", "auto", str(run), "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("| regression") and "test f1" in line for line in out.splitlines())


def test_a_baseline_without_recorded_flags_matches_on_core_count_only_and_says_so(tmp_path, honest, capsys):
    base, cand = honest
    results = tmp_path / "results"
    _baseline(results, _on(base, XEON, 2, None), hardware_in_meta=False)
    slow = _write_run(tmp_path / "slow", [_slower(_on(cand, "AMD EPYC", 2, []), 1 / 0.7)])
    assert main(["compare", "--baseline", "auto", str(slow), "--results-dir", str(results)]) == 1
    out = capsys.readouterr().out
    assert "records no CPU precision flags" in out and "core count" in out
    assert any(line.startswith("| regression") and "samples_per_s" in line for line in out.splitlines())


def test_different_precision_flags_are_different_hardware(tmp_path, honest, capsys):
    base, cand = honest
    baseline = _write_run(tmp_path / "base", [_on(base, XEON, 2, [])])
    amx = _write_run(tmp_path / "amx", [_slower(_on(cand, XEON, 2, ["amx_bf16", "amx_tile", "avx512_bf16"]), 3.0)])
    assert main(["compare", str(baseline), str(amx)]) == 0
    out = capsys.readouterr().out
    assert "speed and memory not judged" in out.lower() and "amx_bf16" in out


def test_a_gpu_result_never_matches_a_cpu_baselines_speed(tmp_path, honest, capsys):
    base, cand = honest
    results = tmp_path / "results"
    _baseline(results, _on(base, XEON, 2, []))
    gpu = _write_run(tmp_path / "gpu", [_slower(_on(cand, XEON, 2, [], gpus=["NVIDIA H200"]), 3.0)])
    assert main(["compare", "--baseline", "auto", str(gpu), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "speed and memory not judged" in out.lower() and "NVIDIA H200" in out
    assert "samples_per_s" not in out


def _committed(cpu_model_prefix: str) -> Path:
    [found] = [p.parent for p in COMMITTED.glob("*/baseline.json")
               if json.loads(p.read_text())["hardware_class"].startswith(f"cpu-2core-{cpu_model_prefix}")]
    return found


def test_the_gate_passes_on_an_avx512_host_of_this_kind_against_the_committed_xeon_baseline(tmp_path, capsys):
    """The committed Xeon baseline's cells, as if re-measured on a 2-core Xeon that reports no
    clock in its model string ("Intel(R) Xeon(R) Processor") and records its flags (AVX-512, no
    bf16 instructions): matched on cores and flags, speed judged, passes."""
    xeon = _committed("Intel")
    here = [_on(r, "Intel(R) Xeon(R) Processor", 2, ["avx512f"]) for r in load_run_dicts(xeon)]
    run = _write_run(tmp_path / "gate-run", here)
    assert main(["compare", "--baseline", "auto", str(run), "--results-dir", str(PROJECT_ROOT / "results")]) == 0
    out = capsys.readouterr().out
    assert xeon.name in out and "Hardware matches" in out
    assert "**PASS**: 0 regression(s)" in out and "not judged" not in out


def test_an_avx2_only_host_is_not_judged_against_avx512_figures_and_its_unsupported_bf16_lstms_do_not_fail(tmp_path, capsys):
    """An AVX2-only 2-core host ("AMD EPYC"), where a bf16 LSTM has no kernel and its cells come
    out `unsupported`, against the Xeon baseline alone (where they converged): other hardware,
    so speed is not judged and those statuses are explained by the hardware, not failures. A cell
    that fails outright still fails."""
    xeon = _committed("Intel")
    results = tmp_path / "results"
    shutil.copytree(xeon, results / "baselines" / xeon.name)
    here = []
    for r in load_run_dicts(xeon):
        r = _on(r, "AMD EPYC", 2, [])
        if r["cell"]["id"].startswith("maintenance-lstm") and r["cell"]["precision"] == "bf16":
            r = {"schema_version": r.get("schema_version", 1), "cell": r["cell"], "status": "unsupported",
                 "reason": "bf16 does not run on this cpu: ... 'could not create a primitive descriptor ...'",
                 "environment": r["environment"]}
        here.append(r)
    run = _write_run(tmp_path / "gate-run", here)
    assert main(["compare", "--baseline", "auto", str(run), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "speed and memory not judged" in out
    assert sum("not judged (other hardware)" in line for line in out.splitlines()) == 3
    assert "**PASS**: 0 regression(s)" in out

    broken = [dict(r, status="failed", reason="exit codes [1]") if r["status"] == "unsupported" else r for r in here]
    run = _write_run(tmp_path / "broken-run", broken)
    assert main(["compare", "--baseline", "auto", str(run), "--results-dir", str(results)]) == 1
    capsys.readouterr()

    # --any-hardware judges speed on other hardware; it does not make the hardware the same, so
    # the unsupported cells stay explained by it.
    run = _write_run(tmp_path / "any-run", here)
    main(["compare", "--baseline", "auto", str(run), "--results-dir", str(results), "--any-hardware"])
    out = capsys.readouterr().out
    assert sum("not judged (other hardware)" in line for line in out.splitlines()) == 3
    assert not any(line.startswith("| regression") and "| status" in line for line in out.splitlines())


def test_a_candidate_measured_on_several_machines_matches_no_baseline(tmp_path, honest, capsys):
    base, cand = honest
    results = tmp_path / "results"
    _baseline(results, _on(base, XEON, 2, ["avx512f"]))
    other = dict(_on(cand, XEON, 2, ["avx512f"]), cell=dict(cand["cell"], seed=1, id=cand["cell"]["id"].replace("__s0", "__s1")))
    mixed = _write_run(tmp_path / "mixed", [_on(cand, XEON, 2, ["avx512f"]), _on(other, "AMD EPYC", 2, [])])
    assert main(["compare", "--baseline", "auto", str(mixed), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "speed and memory not judged" in out

