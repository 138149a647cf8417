"""End to end: `python -m bench run` really launches `accelerate launch` on the real data.

These tests start real processes (a few seconds each for imports) and train for real; budgets
are small so the whole file stays around a minute or two on 2 idle cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.harness.launch import PROGRESS_PREFIX, latest_progress, threads_per_rank
from bench.results import load_run_dicts, validate_result
from tests.conftest import PROJECT_ROOT, run_cli
from tests.helpers.runs import cells_by_id, matrix_file, only_run, processes_mentioning

pytestmark = pytest.mark.e2e


def test_a_maintenance_cell_trains_to_target_through_accelerate_launch(tmp_path):
    matrix = matrix_file(tmp_path, ["cpu-1proc"], ["fp32", "fp16"], params={"target": 0.3}, baselines=True)
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = cells_by_id(only_run(tmp_path / "results"))
    fp32 = cells["maintenance-gru__cpu-1proc__fp32__s0"]
    assert validate_result(fp32) == []
    assert fp32["status"] == "converged"
    assert fp32["curve"][-1]["f1"] >= 0.3
    assert set(fp32["metrics"]["test"]) >= {"accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc"}
    assert fp32["observed"]["distributed_type"] == "NO"
    assert fp32["memory"]["peak_rss_mb_max"] > 100
    assert fp32["environment"]["packages"]["accelerate"] != "not installed"
    # A long cell is not silent: one progress line per evaluation in its log, the latest of which
    # `bench run` shows beside its bar; the last one is the evaluation that met the target.
    log = only_run(tmp_path / "results") / "logs" / "maintenance-gru__cpu-1proc__fp32__s0.log"
    lines = [line for line in log.read_text().splitlines() if line.startswith(PROGRESS_PREFIX)]
    assert len(lines) == len(fp32["curve"])
    last = fp32["curve"][-1]
    assert latest_progress(log) == (f"seed 0 step {last['step']} samples {last['samples']} val f1 {last['f1']:.4f} "
                                    f"(target 0.3) loss {last['train_loss']:.4f} clock {last['seconds']:.1f} s")
    fp16 = cells["maintenance-gru__cpu-1proc__fp16__s0"]
    assert fp16["status"] == "unsupported"
    assert "fp16 requested but fp32 computed" in fp16["reason"]
    assert "metrics" not in fp16
    baselines = cells["maintenance__baselines__s0"]
    assert {row["name"] for row in baselines["baselines"]} == {"random_forest", "svm_rbf"}
    assert "| maintenance" in proc.stdout and "unsupported" in proc.stdout


def test_two_process_and_two_node_cells_are_really_synchronised(tmp_path):
    matrix = matrix_file(
        tmp_path,
        ["cpu-ddp2", "cpu-2node"],
        ["fp32"],
        params={"target": 0.0, "eval_every_steps": 10},
        budget={"max_epochs": 1, "max_seconds": 60, "max_steps": 20},
    )
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for cell_id, result in cells_by_id(only_run(tmp_path / "results")).items():
        assert result["status"] == "converged", (cell_id, result.get("reason"))
        observed = result["observed"]
        assert observed["distributed_type"] == "MULTI_CPU"
        assert observed["num_processes"] == 2
        assert observed["backend"] == "gloo"
        assert observed["torch_threads"] == threads_per_rank(2)
        assert len(result["memory"]["per_rank"]["peak_rss_mb"]) == 2
        assert result["batch"] == {"global": 64, "per_process": 32, "observed_global": 64.0}  # observed: 2 ranks x 32
        # The loader as it fed the model: in-memory data, no workers; no pinning on a CPU, where
        # nothing crosses to a device; accelerate shards each global batch over the processes.
        assert result["loader"] == {"num_workers": 0, "pin_memory": False, "non_blocking": True,
                                    "split_batches": False, "dispatch_batches": None, "even_batches": True,
                                    "device": "cpu", "eval_batch": result["loader"]["eval_batch"]}


def test_a_multi_process_launch_without_the_cpu_switch_is_invalid(tmp_path):
    """N processes that each train alone must not be reported as data parallel."""
    from bench.harness.launch import launch_commands, launch_env, run_group
    from bench.harness.matrix import Cell
    from bench.harness.topology import load_topology

    cell = Cell("maintenance", "gru", "cpu-ddp2", "fp32", 0)
    cell_file, out = tmp_path / "cell.json", tmp_path / "result.json"
    cell_file.write_text(json.dumps(cell.to_dict()))
    topology = load_topology("cpu-ddp2")
    env = launch_env(topology)
    del env["ACCELERATE_USE_CPU"]
    commands = launch_commands(topology, "fp32", cell_file, out, port=29611)
    finished = run_group(commands, env, tmp_path / "log.txt", timeout_s=120)
    assert not finished.timed_out
    result = json.loads(out.read_text())
    assert result["status"] == "invalid", (tmp_path / "log.txt").read_text()[-2000:]
    assert "2 started and each sees world size 1" in result["reason"]


def test_a_two_node_cell_whose_peer_never_starts_fails_within_its_timeout(tmp_path, monkeypatch):
    import bench.harness.executors.local
    import bench.harness.runner
    from bench.harness.matrix import Cell

    real = bench.harness.executors.local.launch_commands
    # Start node rank 0 only: it waits for its peer forever, without a word.
    monkeypatch.setattr(bench.harness.executors.local, "launch_commands", lambda *a, **k: real(*a, **k)[:1])
    cell = Cell("maintenance", "gru", "cpu-2node", "fp32", 0, timeout_s=20)
    run_dir = tmp_path / "run"
    start = time.monotonic()
    [result] = bench.harness.runner.run_cells([cell], run_dir, {"matrix": "test"})
    elapsed = time.monotonic() - start
    assert result["status"] == "failed"
    assert result["reason"].startswith("timed out after 20 s")
    assert elapsed < 20 + 120  # the timeout plus the kill grace and a loaded machine: a hang guard, not a timing
    time.sleep(1)
    assert processes_mentioning(str(run_dir)) == []


def test_a_runner_killed_mid_matrix_resumes_without_redoing_or_losing_cells(tmp_path):
    matrix = matrix_file(
        tmp_path,
        ["cpu-1proc"],
        ["fp16", "fp32", "bf16"],
        params={"target": 1.0, "eval_every_steps": 10},
        budget={"max_epochs": 1, "max_seconds": 60, "max_steps": 30},
    )
    results_dir = tmp_path / "results"
    runner = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--matrix", matrix, "--results-dir", str(results_dir)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        first = None
        while time.monotonic() < deadline and first is None:
            found = list(results_dir.glob("*/cells/*.json"))
            first = found[0] if found else None
            time.sleep(0.2)
        assert first is not None, "no cell completed in time"
        time.sleep(2)  # the second cell is now mid-flight
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    finally:
        if runner.poll() is None:
            runner.kill()
    run_dir = first.parent.parent
    time.sleep(2)  # launchers die with their parent (PR_SET_PDEATHSIG)
    assert processes_mentioning(str(run_dir)) == []
    kept = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("cells/*.json")}
    assert first.name in kept
    # SIGKILL can land mid-write and leave a write's temporary file (it did, in CI): plant one so
    # that the resume below is always seen to ignore it as a result and to clear it away.
    (run_dir / "cells" / ".maintenance-gru__cpu-1proc__bf16__s0.json.killed.tmp").write_text('{"status": "conv')

    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(results_dir), "--resume", run_dir.name)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = cells_by_id(run_dir)
    assert len(cells) == 3
    for name, mtime in kept.items():  # completed cells were not run again
        assert (run_dir / "cells" / name).stat().st_mtime_ns == mtime
    assert cells["maintenance-gru__cpu-1proc__fp16__s0"]["status"] == "unsupported"
    assert cells["maintenance-gru__cpu-1proc__fp32__s0"]["status"] == "not_converged"
    assert list(run_dir.glob("cells/.*")) == []  # no temporary file of an unfinished write is left


# Loaded by every Python process of the run through PYTHONPATH (runner, launcher, worker): the disk
# that holds the results fills up once the run's cells/ folder holds N result files.
FULL_DISK_HOOK = '''
import errno
import os
import tempfile
from pathlib import Path

_mkstemp = tempfile.mkstemp
_HOLDS = int(os.environ["BENCH_TEST_CELLS_BEFORE_FULL"])


def mkstemp(*args, **kwargs):
    folder = Path(kwargs.get("dir") or ".")
    if folder.name == "cells" and len(list(folder.glob("*.json"))) >= _HOLDS:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
    return _mkstemp(*args, **kwargs)


tempfile.mkstemp = mkstemp
'''


def test_a_full_disk_mid_run_stops_with_one_line_and_keeps_the_cells_written(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK_HOOK)
    # The GPU cell is skipped (a result written by the runner), then the disk is full when the
    # CPU cell's worker writes its result, and again when the runner records that it failed.
    matrix = matrix_file(tmp_path, ["gpu-1", "cpu-1proc"], ["fp32"], params={"target": 0.0, "eval_every_steps": 5},
                         budget={"max_epochs": 1, "max_seconds": 60, "max_steps": 5})
    results = tmp_path / "results"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
           "BENCH_TEST_CELLS_BEFORE_FULL": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = run_cli("run", "--matrix", matrix, "--results-dir", str(results), "--run-id", "full", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and not any(line.startswith("error") for line in lines[:-1]), lines
    assert "No space left on device" in lines[-1] and "1 of 2 cells" in lines[-1] and "--resume full" in lines[-1], lines[-1]
    [kept] = load_run_dicts(results / "full")
    assert validate_result(kept) == [] and kept["status"] == "skipped" and kept["cell"]["topology"] == "gpu-1"
    worker_log = (results / "full" / "logs" / "maintenance-gru__cpu-1proc__fp32__s0.log").read_text()
    assert "No space left on device" in worker_log  # the worker met the full disk first


def test_the_runner_shows_the_latest_progress_line_of_a_running_cells_log(tmp_path):
    import io

    from tqdm import tqdm

    from bench.harness.executors.local import _show_progress

    log = tmp_path / "cell.log"
    log.write_text("$ accelerate launch ...\nsome warning\n")
    bar = tqdm(total=1, file=io.StringIO(), disable=False)
    show = _show_progress(bar, "maintenance-gru__cpu-1proc__fp32", log, every_s=0.0)
    show([])
    assert bar.postfix is None  # nothing evaluated yet
    with log.open("a") as f:
        f.write(f"{PROGRESS_PREFIX} seed 0 step 10 samples 640 val f1 0.1000 (target 0.5) loss 0.7 clock 1.0 s\n")
        f.write(f"{PROGRESS_PREFIX} seed 0 step 20 samples 1280 val f1 0.4200 (target 0.5) loss 0.5 clock 2.0 s\nnoise\n")
    show([])
    assert bar.postfix == "maintenance-gru__cpu-1proc__fp32: seed 0 step 20 samples 1280 val f1 0.4200 (target 0.5) loss 0.5 clock 2.0 s"
    assert latest_progress(tmp_path / "absent.log") is None

