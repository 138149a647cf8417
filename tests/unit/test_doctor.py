"""`bench doctor` (bench/harness/doctor.py): each check can fail, shown on made-up facts, and the
real command runs green on this CPU machine (the GPU checks skipped with their reason).

The tests that start processes are in tests/e2e/test_doctor.py."""

from __future__ import annotations

from bench.harness.doctor import FAIL, PASS, SKIP, check_autocast, check_peaks, check_tf32


def test_a_peak_outside_plausible_bounds_fails():
    cpu = {"cpu": {"measured": {"fp32": 191e9, "bf16": 434e9}}}
    assert check_peaks(cpu).status == PASS
    assert check_peaks({"cpu": {"measured": {"fp32": 5e6}}}).status == FAIL  # a loaded or broken host
    h100 = {"cuda": {"measured": {"bf16": 700e12}, "datasheet": {"bf16": 989.4e12}}}
    assert check_peaks(h100).status == PASS
    half = {"cuda": {"measured": {"bf16": 200e12}, "datasheet": {"bf16": 989.4e12}}}
    assert "at 20% of its datasheet peak" in check_peaks(half).detail


def test_tf32_is_skipped_without_a_gpu_and_fails_when_the_switch_does_nothing():
    assert check_tf32({"cuda": False}).status == SKIP
    assert check_tf32({"tf32_max_difference": 0.0}).status == FAIL
    assert check_tf32({"tf32_max_difference": 3e-3}).status == PASS


def test_autocast_must_agree_with_the_dry_runs_prediction():
    cpu = {"cuda": False, "cpu_bf16_linear": "bfloat16", "cpu_bf16_gru": "float32", "cpu_bf16_lstm": "bfloat16"}
    assert check_autocast(cpu, predicted_rnn_refusal_on_cuda=True).status == PASS
    assert check_autocast({**cpu, "cpu_bf16_linear": "float32"}, True).status == FAIL  # bf16 asked, fp32 computed
    cuda = {**cpu, "cuda": True, "cuda_bf16_linear": "bfloat16", "cuda_fp16_linear": "float16",
            "cuda_bf16_gru": "float16", "cuda_bf16_lstm": "float16"}
    assert check_autocast(cuda, predicted_rnn_refusal_on_cuda=True).status == PASS
    # A torch that ran the RNNs in bf16 would make the dry run's refusal wrong: the doctor says so.
    fixed = {**cuda, "cuda_bf16_gru": "bfloat16", "cuda_bf16_lstm": "bfloat16"}
    assert "the dry run predicts a refusal" in check_autocast(fixed, predicted_rnn_refusal_on_cuda=True).detail


def test_an_unknown_check_is_one_line(capsys):
    from bench.cli import main

    assert main(["doctor", "--skip", "everything"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --skip: unknown check(s) everything")

