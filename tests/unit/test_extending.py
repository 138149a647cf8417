"""A third-party workload registered through a real `bench.workloads` entry point (docs/extending.md).

Each test installs tests/fixtures/tiny_workload/tiny_bench_workload.py the way pip would: the
module plus a `*.dist-info` folder (METADATA and entry_points.txt) in a temporary folder, which
is then put on sys.path (in-process) or PYTHONPATH (for `python -m bench` and the processes
`accelerate launch` starts), where importlib.metadata finds it. Nothing is mocked: discovery,
import and the training run are the real ones.

The tests that start processes are in tests/e2e/test_extending.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.errors import BenchError
from tests.helpers.extending import BLOBS, BROKEN, MODULE, install_plugin
from workloads import BUILTIN, REGISTRY, WorkloadRegistry


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

