"""A fine-tuned text classifier on disk: what `bench run --save-checkpoint` writes and
`bench predict` / `bench serve` load.

    DIR/config.json, DIR/model.safetensors   model.save_pretrained(DIR, safe_serialization=True)
    DIR/tokenizer*.json, DIR/vocab.txt ...    tokenizer.save_pretrained(DIR)
    DIR/bench_checkpoint.json                 metadata: labels, max_length, metrics, versions

Loading never unpickles anything from the folder: weights come from safetensors only
(`use_safetensors=True`), and the metadata is JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError

METADATA_FILE = "bench_checkpoint.json"
CHECKPOINT_SCHEMA = 1


def save_checkpoint(model: Any, tokenizer: Any, folder: Path, metadata: dict[str, Any]) -> Path:
    """Write model (safetensors), tokenizer and metadata JSON into `folder`."""
    from bench.measure import package_versions
    from bench.results import write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    meta = {
        "schema_version": CHECKPOINT_SCHEMA,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "packages": package_versions(),
        **metadata,
    }
    # Strict JSON (NaN as null, with its reason under "non_finite"), written whole or not at all.
    write_json_atomic(folder / METADATA_FILE, json.loads(json.dumps(meta, default=str)))
    return folder


def read_metadata(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    if not folder.is_dir():
        raise BenchError(f"checkpoint folder {folder} does not exist")
    if not meta_path.is_file():
        raise BenchError(f"{folder}: not a bench checkpoint (no {METADATA_FILE}); save one with `bench run --save-checkpoint DIR`")
    if not (folder / "model.safetensors").is_file():
        raise BenchError(f"{folder}: no model.safetensors (only safetensors weights are loaded)")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{meta_path}: malformed JSON ({exc.msg})") from None


def load_checkpoint(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, metadata) from a checkpoint folder, offline."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    meta = read_metadata(folder)
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise BenchError(f"{folder}: cannot load the checkpoint ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, tokenizer, meta
