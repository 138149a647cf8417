"""A third-party workload registered through a real `bench.workloads` entry point (docs/extending.md).

Each test installs tests/fixtures/tiny_workload/tiny_bench_workload.py the way pip would: the
module plus a `*.dist-info` folder (METADATA and entry_points.txt) in a temporary folder, which
is then put on sys.path (in-process) or PYTHONPATH (for `python -m bench` and the processes
`accelerate launch` starts), where importlib.metadata finds it. Nothing is mocked: discovery,
import and the training run are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from bench.errors import BenchError
from tests.conftest import run_cli
from workloads import BUILTIN, REGISTRY, WorkloadRegistry

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_workload" / "tiny_bench_workload.py"
MODULE = "tiny_bench_workload"
BLOBS = {"blobs": f"{MODULE}:Blobs"}
# Broken entries of other packages: each must fail alone, when used, and leave every other workload be.
BROKEN = {
    "ghost": ("no_such_module_anywhere:Ghost", "cannot be imported (ModuleNotFoundError"),
    "features": (f"{MODULE}:FEATURES", "not a subclass of workloads.base.Workload"),
    "traffic": (f"{MODULE}:Blobs", "registers the name of a built-in workload"),
}


def install_plugin(site: Path, entries: dict[str, str], dist: str = "blobs-plugin", module: bool = True) -> Path:
    """A distribution `dist` in folder `site`, registering `entries` under bench.workloads."""
    site.mkdir(parents=True, exist_ok=True)
    if module:
        shutil.copy(FIXTURE, site / FIXTURE.name)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[bench.workloads]\n{lines}")
    return site


@pytest.fixture
def on_path(monkeypatch):
    """Put a folder on sys.path for this test only; forget the fixture module afterwards."""

    def add(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))  # also invalidates importlib's caches

    yield add
    sys.modules.pop(MODULE, None)


def test_an_entry_point_workload_joins_the_built_in_ones(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "site", BLOBS))
    registry = WorkloadRegistry(BUILTIN)
    assert dict(registry) == {**BUILTIN, **BLOBS}
    assert registry["blobs"].split(":") == [MODULE, "Blobs"]  # same "module:Class" strings as the built-ins
    cls = registry.load_class("blobs")
    assert cls.name == "blobs" and cls.__module__ == MODULE
    assert registry.load_class("blobs") is cls  # imported once
    assert "entry point 'blobs = tiny_bench_workload:Blobs' of package blobs-plugin" in registry.source("blobs")


def test_the_default_registry_is_the_same_mapping_for_the_harness():
    # What bench/harness/matrix.py, runner.py and worker.py rely on: membership, listing, lookup.
    assert set(BUILTIN) <= set(REGISTRY)
    assert REGISTRY["maintenance"] == "workloads.maintenance:Maintenance"
    assert "no-such-workload" not in REGISTRY
    with pytest.raises(BenchError, match="unknown workload 'no-such-workload'; valid choices: .*maintenance"):
        REGISTRY.load_class("no-such-workload")


def test_a_broken_entry_point_fails_alone_when_used(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "site", BLOBS))
    on_path(install_plugin(tmp_path / "other", {name: value for name, (value, _) in BROKEN.items()},
                           dist="broken-plugin", module=False))
    registry = WorkloadRegistry(BUILTIN)  # discovering broken entries raises nothing
    assert set(registry) == set(BUILTIN) | {"blobs", "ghost", "features"}
    for name, (_, words) in BROKEN.items():
        with pytest.raises(BenchError) as caught:
            registry.load_class(name)
        message = str(caught.value)
        assert words in message and "broken-plugin" in message and "\n" not in message, message
    # ... and every other workload still loads, the built-ins and the healthy plugin alike.
    assert registry.load_class("blobs").name == "blobs"
    assert registry.load_class("maintenance").name == "maintenance"
    assert registry.load_class("sentiment").name == "sentiment"


def test_the_same_name_from_two_packages_is_refused_not_guessed(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "a", BLOBS))
    on_path(install_plugin(tmp_path / "b", {"blobs": f"{MODULE}:BlobsParams"}, dist="copycat", module=False))
    registry = WorkloadRegistry(BUILTIN)
    with pytest.raises(BenchError, match="registered twice"):
        registry.load_class("blobs")
    assert registry.load_class("traffic").name == "traffic"


def test_an_entry_point_whose_class_calls_itself_otherwise_is_refused(tmp_path, on_path):
    on_path(install_plugin(tmp_path / "site", {"dots": f"{MODULE}:Blobs"}))
    with pytest.raises(BenchError, match="calls itself 'blobs'"):
        WorkloadRegistry(BUILTIN).load_class("dots")


def _env(*sites: Path) -> dict[str, str]:
    """PYTHONPATH with the plugin folders first: `bench run` and the ranks accelerate starts see them."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, sites), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _matrix(tmp_path: Path, workload: str, budget: dict | None = None) -> Path:
    spec = {"name": "tiny-plugin", "timeout_s": 900, "topologies": ["cpu-1proc"], "precisions": ["fp32"],
            "workloads": {workload: {"budget": budget or {"max_epochs": 20, "max_seconds": 900}, "baselines": False}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.e2e
def test_bench_run_names_a_broken_entry_point_in_one_line(tmp_path):
    site = install_plugin(tmp_path / "site", {"ghost": "no_such_module_anywhere:Ghost"}, module=False)
    done = run_cli("run", "--matrix", str(_matrix(tmp_path, "ghost")), "--results-dir", str(tmp_path / "runs"),
                   "--dry-run", env=_env(site), timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "'ghost'" in done.stderr and "cannot be imported" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_entry_point_workload_trains_through_bench_run(tmp_path):
    """The tiny workload, found through its entry point by `bench run` and by the worker process that
    `accelerate launch` starts (PYTHONPATH carries the folder), trains to its target. Broken entry
    points of another package are installed beside it and cost it nothing."""
    site = install_plugin(tmp_path / "site", BLOBS)
    broken = install_plugin(tmp_path / "broken", {name: value for name, (value, _) in BROKEN.items()},
                            dist="broken-plugin", module=False)
    done = run_cli("run", "--matrix", str(_matrix(tmp_path, "blobs")), "--results-dir", str(tmp_path / "runs"),
                   env=_env(site, broken), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [cell_file] = (tmp_path / "runs").glob("*/cells/*.json")
    result = json.loads(cell_file.read_text())
    assert result["cell"]["id"] == "blobs-mlp__cpu-1proc__fp32__s0"
    assert result["status"] == "converged", result.get("reason")
    assert result["metrics"]["val"]["accuracy"] >= 0.95
    assert result["timings"]["steps"] > 0 and result["curve"]
    assert result["data"]["samples"] == {"train": 360, "val": 120, "test": 120}
    assert "| blobs" in done.stdout
