"""Helpers for e2e/test_extending.py, unit/test_extending.py."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE = Path(__file__).parent.parent / "fixtures" / "tiny_workload" / "tiny_bench_workload.py"


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

