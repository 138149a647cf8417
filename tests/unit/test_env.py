"""`bench env`: what every result records about the machine, printed for a bug report.

The tests that start processes are in tests/e2e/test_env.py."""

from __future__ import annotations


def test_the_hardware_class_tells_apart_one_cpu_model_with_other_precision_flags():
    from bench.harness.host import precision_tag

    assert precision_tag([]) == ""  # the AVX2-only EPYC keeps the class its committed baseline has
    assert precision_tag(["avx512f"]) == "-avx512"  # the Xeon without bf16
    assert precision_tag(["avx512_bf16", "avx512f"]) == "-avx512bf16"  # the Zen 4 EPYC
    assert precision_tag(["amx_bf16", "amx_tile", "avx512_bf16", "avx512f"]) == "-amx"

