"""Helpers for e2e/test_data_integrity.py, unit/test_data_integrity.py."""

from __future__ import annotations

from pathlib import Path

from bench.data.datasets import DATASETS

AI4I = "ai4i2020/ai4i2020.csv"


AI4I_SHA256 = DATASETS["ai4i2020"].files[0].sha256


def _ai4i_copy(root: Path, edit=None) -> Path:
    """The real AI4I file under root (CRLF and BOM kept), with `edit` applied to its cells (row 0 = header)."""
    from bench.paths import data_dir

    lines = (data_dir() / AI4I).read_bytes().decode("utf-8").split("\r\n")
    cells = [line.split(",") for line in lines if line]
    if edit:
        edit(cells)
    path = root / AI4I
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(",".join(c) for c in cells) + "\r\n").encode("utf-8"))
    return path

