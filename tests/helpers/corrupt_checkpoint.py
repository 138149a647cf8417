"""Helpers for e2e/test_corrupt_checkpoint.py, unit/test_corrupt_checkpoint.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from bench.checkpoint import METADATA_FILE


def _replace(name: str, make: Callable[[bytes], bytes | None]) -> Callable[[Path], None]:
    """A damage: file `name` becomes make(its bytes), or is removed when make returns None."""

    def damage(folder: Path) -> None:
        target = folder / name
        data = make(target.resolve().read_bytes()) if target.exists() else b""
        target.unlink()
        if data is not None:
            target.write_bytes(data)

    return damage


def _metadata(**change) -> Callable[[Path], None]:
    def edit(data: bytes) -> bytes:
        meta = json.loads(data)
        for key, value in change.items():
            if value is _REMOVE:
                meta.pop(key, None)
            else:
                meta[key] = value
        return json.dumps(meta).encode()

    return _replace(METADATA_FILE, edit)


def _config(**change) -> Callable[[Path], None]:
    return _replace("config.json", lambda data: json.dumps({**json.loads(data), **change}).encode())


_REMOVE = object()


# (case, damage, words the one-line error must contain)
CORRUPTIONS = [
    ("weights truncated to half", _replace("model.safetensors", lambda d: d[: len(d) // 2]), "model.safetensors"),
    ("weights truncated inside the header", _replace("model.safetensors", lambda d: d[:100]), "model.safetensors"),
    ("weights file empty", _replace("model.safetensors", lambda d: b""), "model.safetensors"),
    ("weights file random bytes", _replace("model.safetensors", lambda d: os.urandom(4096)), "model.safetensors"),
    ("weights file missing", _replace("model.safetensors", lambda d: None), "no model.safetensors"),
    ("metadata missing", _replace(METADATA_FILE, lambda d: None), "not a bench checkpoint"),
    ("metadata not UTF-8", _replace(METADATA_FILE, lambda d: b"\x00\xff\xfe garbage"), "not UTF-8"),
    ("metadata not JSON", _replace(METADATA_FILE, lambda d: d[: len(d) // 2]), "malformed JSON"),
    ("metadata a JSON list", _replace(METADATA_FILE, lambda d: b"[1, 2]"), "must be a JSON object"),
    ("labels missing", _metadata(labels=_REMOVE), "'labels'"),
    ("labels a string", _metadata(labels="np"), "'labels'"),
    ("labels numbers", _metadata(labels=[0, 1]), "'labels'"),
    ("labels repeated", _metadata(labels=["good", "good"]), "'labels'"),
    ("more labels than outputs", _metadata(labels=["neg", "neutral", "pos"]), "3 labels but the model has 2 outputs"),
    ("max_length a string", _metadata(max_length="64"), "'max_length'"),
    ("max_length negative", _metadata(max_length=-5), "'max_length'"),
    ("max_length fractional", _metadata(max_length=12.5), "'max_length'"),
    ("max_length beyond the model's positions", _metadata(max_length=100_000), "'max_length' 100000"),
    ("cleaning a list", _metadata(cleaning=["bench.data.text_cleaning.clean_for_model"]), "'cleaning'"),
    ("metrics a string", _metadata(metrics="good"), "'metrics'"),
    ("schema from a newer bench", _metadata(schema_version=99), "schema_version 99"),
    ("schema a string", _metadata(schema_version="1"), "schema_version"),
    ("config.json missing", _replace("config.json", lambda d: None), "cannot load the checkpoint"),
    ("config.json not JSON", _replace("config.json", lambda d: b"{not json"), "cannot load the checkpoint"),
    ("config.json a JSON list", _replace("config.json", lambda d: b"[]"), "cannot load the checkpoint"),
    ("config.json with 3 labels", _config(id2label={"0": "a", "1": "b", "2": "c"}), "cannot load the checkpoint"),
    ("tokenizer files missing", lambda folder: [_replace(name, lambda d: None)(folder)
                                                for name in ("tokenizer.json", "tokenizer_config.json")], "tokenizer"),
    ("tokenizer.json an empty object", _replace("tokenizer.json", lambda d: b"{}"), "cannot load the checkpoint"),
]


def damaged_copy(checkpoint: Path, folder: Path, damage: Callable[[Path], None]) -> Path:
    """The checkpoint as symlinks in `folder` (no 90 MB copy), with `damage` applied."""
    folder.mkdir()
    for item in checkpoint.iterdir():
        (folder / item.name).symlink_to(item)
    damage(folder)
    return folder


def assert_one_line_error(err: str, words: str) -> None:
    assert err.startswith("error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert words in err, err

