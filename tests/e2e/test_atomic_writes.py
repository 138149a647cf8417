"""The tests of tests/unit/test_atomic_writes.py that start processes (cells, servers, scripts, git);
that file says what the pair covers."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.analysis.gate.baselines import save_baseline
from tests.helpers.compare import RUN_A, RUN_B

PROJECT_ROOT = Path(__file__).resolve().parents[2]


REPORT_RUN = Path(__file__).parent.parent / "fixtures" / "report-run"


def _bench_with_file_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` with no file it writes allowed past `limit` bytes."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_files)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, proc.stderr
    return err


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.e2e
def test_a_baseline_save_that_fails_part_way_leaves_the_previous_baseline_whole(tmp_path: Path) -> None:
    results = tmp_path / "results"
    saved = save_baseline(RUN_A, results / "baselines")
    before = {p: p.read_bytes() for p in saved.rglob("*") if p.is_file()}
    assert max(p.stat().st_size for p in (RUN_B / "cells").iterdir()) > 4096

    proc = _bench_with_file_limit(4096, "compare", "--save-baseline", str(RUN_B), "--results-dir", str(results))
    assert "cannot save" in _one_line_error(proc)
    assert {p: p.read_bytes() for p in saved.rglob("*") if p.is_file()} == before
    assert not [p for p in (results / "baselines").rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


@pytest.mark.e2e
def test_a_report_write_that_fails_part_way_keeps_the_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.csv").write_text("the previous report\n")
    proc = _bench_with_file_limit(1024, "report", str(REPORT_RUN), "--format", "csv", "--out", str(out), "--no-peak-measure")
    assert "cannot write" in _one_line_error(proc)
    assert (out / "report.csv").read_text() == "the previous report\n"
    assert _listing(out) == ["report.csv"]


@pytest.mark.e2e
def test_a_compare_report_write_that_fails_part_way_keeps_the_previous_one(tmp_path: Path) -> None:
    out = tmp_path / "compare.md"
    out.write_text("the previous report\n")
    proc = _bench_with_file_limit(64, "compare", str(RUN_A), str(RUN_B), "--out", str(out))
    assert "cannot write" in _one_line_error(proc)
    assert out.read_text() == "the previous report\n"
    assert _listing(tmp_path) == ["compare.md"]


class _Saves:
    """Stands in for a model or tokenizer: save_pretrained writes one small file."""

    def __init__(self, name: str) -> None:
        self.name = name

    def save_pretrained(self, folder: Path, **_: object) -> None:
        (Path(folder) / self.name).write_text("{}")


@pytest.mark.e2e
def test_checkpoint_metadata_is_strict_json_written_whole(tmp_path: Path) -> None:
    from bench.checkpoint import METADATA_FILE, save_checkpoint

    folder = tmp_path / "ckpt"
    save_checkpoint(_Saves("model.safetensors"), _Saves("tokenizer.json"), folder,
                    {"metrics": {"test": {"f1": 0.91, "roc_auc": float("nan")}}})
    text = (folder / METADATA_FILE).read_text()
    meta = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert meta["metrics"]["test"] == {"f1": 0.91, "roc_auc": None}
    assert meta["non_finite"] == {"/metrics/test/roc_auc": "nan"}

    # Re-saving with metadata too big for the disk leaves the previous metadata as it was.
    script = (
        "import sys\nfrom pathlib import Path\nfrom bench.checkpoint import save_checkpoint\n"
        "class Saves:\n"
        "    def __init__(self, name): self.name = name\n"
        "    def save_pretrained(self, folder, **_): (Path(folder) / self.name).write_text('{}')\n"
        "save_checkpoint(Saves('model.safetensors'), Saves('tokenizer.json'), Path(sys.argv[1]), {'notes': 'x' * 100000})\n"
    )

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit_files, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert (folder / METADATA_FILE).read_text() == text
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

