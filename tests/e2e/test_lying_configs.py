"""Lying configurations: each asks for one thing and delivers another, through a real `bench run`
launch on the CPU, and each must come out `unsupported` or `invalid` with its reason, never with
numbers under the name it asked for (issue 26; docs/knobs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.harness.verify import verify_grad_accum, verify_no_compile
from bench.paths import ACCELERATE_CONFIGS_DIR
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def _matrix(folder: Path, **workload: object) -> Path:
    spec = {"name": "lying", "seeds": 1, "precisions": ["fp32"], "topologies": ["cpu-1proc"],
            "workloads": {"traffic": {"variants": ["ae"], "baselines": False, "budget": {"max_steps": 20}, **workload}}}
    path = folder / "lying.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _only_result(run_dir: Path) -> dict:
    (path,) = sorted((run_dir / "cells").glob("*.json"))
    return json.loads(path.read_text())


def test_the_environment_overriding_accumulation_is_caught(tmp_path):
    # DeepSpeed's launcher sets this from its YAML; here the user's shell does. The cell asked for 4.
    proc = run_cli("run", "--matrix", str(_matrix(tmp_path, grad_accum=[4])), "--run-id", "env", "--results-dir",
                   str(tmp_path), env={"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "2"})
    result = _only_result(tmp_path / "env")
    assert result["status"] == "unsupported", (result["reason"], proc.stderr[-2000:])
    assert "grad_accum=4 asked for but accelerate ran 2 micro-step(s)" in result["reason"]
    assert "metrics" not in result or not result.get("metrics")


def test_a_users_dynamo_config_under_compile_none_is_caught(tmp_path):
    config = yaml.safe_load((ACCELERATE_CONFIGS_DIR / "cpu-1proc.yaml").read_text())
    config["dynamo_config"] = {"dynamo_backend": "INDUCTOR"}
    (tmp_path / "compiles.yaml").write_text(yaml.safe_dump(config))
    proc = run_cli("run", "--matrix", str(_matrix(tmp_path)), "--config", str(tmp_path / "compiles.yaml"),
                   "--run-id", "dyn", "--results-dir", str(tmp_path), timeout=900)
    result = _only_result(tmp_path / "dyn")
    assert result["status"] == "invalid", (result["reason"], proc.stderr[-2000:])
    assert "compile=none asked for but the model ran compiled" in result["reason"]


def test_cpu_affinity_asked_and_not_applied_is_refused(tmp_path):
    matrix = _matrix(tmp_path)
    spec = yaml.safe_load(matrix.read_text())
    spec["topologies"] = ["cpu-ddp2-affinity"]
    matrix.write_text(yaml.safe_dump(spec))
    proc = run_cli("run", "--matrix", str(matrix), "--run-id", "aff", "--results-dir", str(tmp_path))
    result = _only_result(tmp_path / "aff")
    assert result["status"] == "unsupported", (result["reason"], proc.stderr[-2000:])
    assert "enable_cpu_affinity asked for but not applied" in result["reason"]
    assert result["knobs"]["cpu_affinity"]["no_op"] is True


def test_accumulation_is_judged_against_the_cells_n_not_accelerates():
    ran_two = {"asked": 4, "steps": 2, "micro_steps": 40, "optimizer_steps": 20, "optimizer_stepped": 20}
    assert verify_grad_accum(ran_two).status == "unsupported"
    at_default = {"asked": 1, "steps": 2, "micro_steps": 40, "optimizer_steps": 20, "optimizer_stepped": 20}
    assert verify_grad_accum(at_default).status == "unsupported"  # a default is verified too
    skipped = {"asked": 4, "steps": 4, "micro_steps": 40, "optimizer_steps": 10, "optimizer_stepped": 7}
    assert "made the optimizer step 7 time(s)" in verify_grad_accum(skipped).reason
    # Steps the fp16 loss scaler skipped (overflow) are optimizer steps all the same.
    scaled = {**skipped, "optimizer_skipped": 3}
    assert verify_grad_accum(scaled).status is None
    wrong_batch = {"asked": 1, "steps": 1, "micro_steps": 10, "optimizer_steps": 10, "optimizer_stepped": 10,
                   "global_batch": 512, "observed_global_batch": 256.0}
    assert verify_grad_accum(wrong_batch).status == "invalid"


def test_compile_none_is_judged_from_what_ran():
    assert verify_no_compile("Sequential", {"graphs": 0}).status is None
    assert verify_no_compile("OptimizedModule", {"graphs": 0}).status == "invalid"
    assert verify_no_compile("Sequential", {"graphs": 2}).status == "invalid"

