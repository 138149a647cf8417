"""Every file bench writes is whole or absent, and a saved baseline keeps the one it replaces.

The fault is a real one: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes a write fail
part-way with EFBIG, as a full disk does with ENOSPC. Written in place, the old file would be
truncated and half-rewritten; written to a temporary file and renamed, it stays as it was.

The tests that start processes are in tests/e2e/test_atomic_writes.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.analysis.gate.baselines import save_baseline
from bench.results import load_run_dicts
from tests.helpers.compare import RUN_A, RUN_B


def test_saving_a_baseline_keeps_the_previous_one_in_history_and_auto_ignores_it(tmp_path: Path) -> None:
    baselines = tmp_path / "baselines"
    first = save_baseline(RUN_A, baselines)
    first_meta = json.loads((first / "baseline.json").read_text())
    second = save_baseline(RUN_B, baselines)
    assert second == first
    assert json.loads((second / "baseline.json").read_text())["source_run"] == "run_b"
    assert load_run_dicts(second)[0] == load_run_dicts(RUN_B)[0]

    [old] = (second / "history").iterdir()
    assert json.loads((old / "baseline.json").read_text()) == first_meta
    assert load_run_dicts(old)[0] == load_run_dicts(RUN_A)[0]

    from bench.analysis.gate.baselines import find_baseline, hardware_of

    hardware = hardware_of(load_run_dicts(RUN_B))
    assert find_baseline(baselines, hardware).path == second  # history is never the current baseline
    save_baseline(RUN_A, baselines)
    assert len(list((second / "history").iterdir())) == 2
    assert not [p for p in second.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_a_baseline_swap_that_fails_puts_the_previous_cells_back(tmp_path: Path, monkeypatch) -> None:
    """The swap moves the previous cells aside, then the new ones in; if the second rename fails
    (a full or read-only disk), the previous cells go back in place before the staging folder is
    removed, so the baseline is still whole, not only its history copy."""
    import bench.analysis.gate.baselines
    from bench.errors import BenchError

    baselines = tmp_path / "baselines"
    saved = save_baseline(RUN_A, baselines)
    before = {p.relative_to(saved): p.read_bytes() for p in saved.rglob("*") if p.is_file() and "history" not in p.parts}
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name == "cells" and Path(dst) == saved / "cells":
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(bench.analysis.gate.baselines.os, "rename", rename)
    with pytest.raises(BenchError, match="cannot save the baseline"):
        save_baseline(RUN_B, baselines)
    after = {p.relative_to(saved): p.read_bytes() for p in saved.rglob("*") if p.is_file() and "history" not in p.parts}
    assert after == before

