"""The real `bench tune` on a small real matrix: the traffic autoencoder on one process, where a
setup made slow for real (64 micro-steps of 8 samples per optimizer step, the same global batch)
is dropped in the race (or, under heavy load, left behind the finalists), fp16 is pruned with its reason (a CPU computes it in fp32), and the
recommendation comes with the Accelerate config file accelerate itself loads. Real launches; no
edited results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness.topology import load_topology

pytestmark = pytest.mark.e2e


SLOW = "cpu-1proc fp32 grad_accum=64"


def _tune(folder: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", "tune", "--workload", "traffic-ae", "--config", "cpu-1proc",
         "--precision", "fp32,fp16", "--compile", "none", "--grad-accum", "1,2,64", "--checkpointing", "off",
         "--seeds", "3", "--finalists", "1", "--rounds", "1", "--folder", str(folder), "--write-config", str(config)],
        capture_output=True, text=True, timeout=900)


def test_tune_drops_a_slow_setup_in_the_race_lists_a_pruned_one_with_its_reason_and_writes_the_config(tmp_path):
    folder, config = tmp_path / "tune", tmp_path / "best.yaml"
    done = _tune(folder, config)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((folder / "tune.json").read_text())
    fate = {c["label"]: c for c in record["candidates"]}

    # On a quiet host the race drops it (its probes all slower than the leader's); under heavy load
    # one slow leader probe is enough to keep the exact test from deciding at 2 probes against 5,
    # and it stays in the race, behind the finalists (fresh-clone CI on a loaded host, 2026-12-07).
    # Either way it never runs to target. The race's error rates are tests/unit/test_tune.py's.
    assert fate[SLOW]["fate"] in ("dropped in race round 1", "behind the finalists"), fate[SLOW]
    if fate[SLOW]["fate"] == "dropped in race round 1":
        assert "slower than cpu-1proc fp32" in fate[SLOW]["why"]
    assert fate["cpu-1proc fp16"]["fate"] == "pruned"
    assert "fp16 on CPU computes in fp32" in fate["cpu-1proc fp16"]["why"]
    assert len(fate) == 2 * 3  # every candidate listed: 2 precisions x 3 accumulations
    # the reference ran to target with 3 seeds, and the recommendation is one of the two fast setups
    assert record["recommended"] in ("cpu-1proc fp32", "cpu-1proc fp32 grad_accum=2")
    assert (folder / "to-target" / "cells").is_dir() and (folder / "tune.md").read_text().startswith("# bench tune")
    assert load_topology(str(config)).num_processes == 1

    # the same request again on the same hardware and lock: the cached answer, nothing launched
    again = _tune(folder, config)
    assert again.returncode == 0 and "cached for this hardware" in again.stderr

