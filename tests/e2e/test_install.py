"""bench installed from a wheel (not editable) into a fresh virtual environment runs the smoke
matrix from any folder: configs ship as package data, results go under the current folder.

To stay fast and offline, the fresh environment borrows the third-party packages (torch,
accelerate...) of the environment running the tests through a .pth line, and installs only bench
itself, from a wheel built here. A .pth *line* adds that folder to sys.path without processing the
.pth files inside it, so the editable install of the checkout there (a .pth import hook) never loads:
the test asserts that `bench` and `workloads` come from the fresh environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

# What goes into the wheel: the packages and the files pyproject.toml names.
SOURCES = ("bench", "workloads", "pyproject.toml", "README.md")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=kwargs.pop("timeout", 300), **kwargs)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the sources, so the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        item = PROJECT_ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, source / name)
    # --no-build-isolation: setuptools from this environment (the test extra pins a recent one),
    # so the build downloads nothing.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-q",
          "--wheel-dir", str(tmp_path / "dist"), str(source)])
    wheels = list((tmp_path / "dist").glob("accelerate_bench-*.whl"))
    assert len(wheels) == 1, list((tmp_path / "dist").iterdir())
    return wheels[0]


def _fresh_venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    """A new venv with bench installed from the wheel (no deps), then given this env's packages."""
    venv = tmp_path / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # pip from this environment, run by the fresh interpreter: installs into the fresh venv.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


@pytest.mark.e2e
@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_runs_the_smoke_matrix_from_any_folder(tmp_path, data_dir):
    python, site = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_RESULTS_DIR", "PYTHONSTARTUP")}
    env["BENCH_DATA_DIR"] = str(data_dir)

    where = json.loads(_run([str(python), "-c", (
        "import json, sys, importlib.metadata as m, bench, workloads, bench.paths as p; "
        "print(json.dumps({'bench': bench.__file__, 'workloads': workloads.__file__, 'path': sys.path, "
        "'version': m.version('accelerate-bench'), 'smoke': str(p.MATRIX_CONFIGS_DIR / 'smoke.yaml')}))"
    )], cwd=work, env=env).stdout)
    assert Path(where["bench"]).is_relative_to(site) and Path(where["workloads"]).is_relative_to(site)
    assert Path(where["smoke"]).is_file() and Path(where["smoke"]).is_relative_to(site)  # package data
    assert str(PROJECT_ROOT) not in where["path"]
    assert where["version"]

    run = _run([str(python), "-m", "bench", "run", "--matrix", "smoke", "--workload", "traffic", "--config", "cpu-1proc",
                "--precision", "fp32", "--run-id", "installed"], cwd=work, env=env, timeout=600)
    run_dir = work / "results" / "installed"  # results/ under the folder it ran in
    cells = sorted(p.name for p in (run_dir / "cells").glob("*.json"))
    assert cells == ["traffic-ae__cpu-1proc__fp32__s0.json", "traffic__baselines__s0.json"], run.stdout
    trained = json.loads((run_dir / "cells" / cells[0]).read_text())
    assert trained["status"] in ("converged", "not_converged"), trained["reason"]
    assert trained["topology"]["config_file"] == "configs/accelerate/cpu-1proc.yaml"
    assert trained["observed"]["num_processes"] == 1 and trained["observed"]["device"] == "cpu"
    assert trained["metrics"]["test"]["roc_auc"] > 0.5
    baseline = json.loads((run_dir / "cells" / cells[1]).read_text())
    assert baseline["status"] == "baseline"
    # The launched workers ran the installed code too, and wrote nothing inside the package.
    log = (run_dir / "logs" / "traffic-ae__cpu-1proc__fp32__s0.log").read_text()
    assert f"$ {python} " in log and str(PROJECT_ROOT / "bench") not in log
    assert not (site / "results").exists() and not (site / "reports").exists()

    # The console script finds the run id under ./results as well.
    report = _run([str(python.parent / "bench"), "report", "installed", "--format", "csv", "--out", "-"],
                  cwd=work, env=env)
    assert "traffic" in report.stdout and "cpu-1proc" in report.stdout

