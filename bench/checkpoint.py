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


def save_checkpoint(model: Any, tokenizer: Any, folder: Path, metadata: dict[str, Any],
                    state_dict: dict[str, Any] | None = None) -> Path:
    """Write model (safetensors), tokenizer and metadata JSON into `folder`. `state_dict`: weights
    gathered elsewhere (every rank's shards, under FSDP) to write instead of the model's own."""
    from bench.results import write_json_atomic
    from bench.versions import package_versions

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
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
    """The checkpoint's metadata, checked: BenchError naming what is missing, damaged or mistyped."""
    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    if not folder.is_dir():
        raise BenchError(f"checkpoint folder {folder} does not exist")
    if not meta_path.is_file():
        raise BenchError(f"{folder}: not a bench checkpoint (no {METADATA_FILE}); save one with `bench run --save-checkpoint DIR`")
    if not (folder / "model.safetensors").is_file():
        raise BenchError(f"{folder}: no model.safetensors (only safetensors weights are loaded)")
    try:
        text = meta_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{meta_path}: not UTF-8 text (byte {exc.start}); the metadata is damaged") from None
    except OSError as exc:
        raise BenchError(f"cannot read {meta_path} ({exc.strerror or exc})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{meta_path}: malformed JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a number too long to read, nesting too deep
        raise BenchError(f"{meta_path}: malformed JSON ({str(exc).split(';')[0] or type(exc).__name__})") from None
    check_metadata(meta, meta_path)
    return meta


def check_metadata(meta: Any, where: Path | str) -> None:
    """BenchError unless `meta` has the shape `bench predict` and `bench serve` rely on."""
    if not isinstance(meta, dict):
        raise BenchError(f"{where}: must be a JSON object, got a JSON {json_type(meta)}")
    schema = meta.get("schema_version", CHECKPOINT_SCHEMA)
    if not _is_int(schema) or schema < 1:
        raise BenchError(f"{where}: 'schema_version' must be a positive integer, got {schema!r}")
    if schema > CHECKPOINT_SCHEMA:
        raise BenchError(f"{where}: schema_version {schema} is newer than this bench reads ({CHECKPOINT_SCHEMA}); "
                         "update bench")
    labels = meta.get("labels")
    if (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x.strip() for x in labels)
            or len(set(labels)) != len(labels)):
        raise BenchError(f"{where}: 'labels' must be a list of at least two distinct non-empty strings, got {_short(labels)}")
    max_length = meta.get("max_length")
    if max_length is not None and (not _is_int(max_length) or max_length < 1):
        raise BenchError(f"{where}: 'max_length' must be a positive integer (tokens), got {_short(max_length)}")
    if not isinstance(meta.get("cleaning"), str | None):
        raise BenchError(f"{where}: 'cleaning' must be the name of a text cleaning or null, got {_short(meta['cleaning'])}")
    if not isinstance(meta.get("metrics"), dict | None):
        raise BenchError(f"{where}: 'metrics' must be a JSON object or null, got {_short(meta['metrics'])}")


# Files a tokenizer is read from; transformers builds a tokenizer with an empty vocabulary from a
# folder that has none of them, which would turn every word into [UNK] without a word said.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")


def load_checkpoint(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, metadata) from a checkpoint folder, offline.

    A folder that cannot be loaded (damaged or missing files, metadata that does not fit the model)
    is a BenchError naming the problem, whatever the library underneath raised."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    meta = read_metadata(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise BenchError(f"{folder}: no tokenizer files ({' or '.join(TOKENIZER_FILES[:2])}); the checkpoint is incomplete")
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file surfaces as any exception type; all are the folder's fault
        raise BenchError(f"{folder}: cannot load the checkpoint ({_load_error(exc)})") from None
    model.eval()
    config = model.config
    if len(meta["labels"]) != config.num_labels:
        raise BenchError(f"{folder}: metadata lists {len(meta['labels'])} labels but the model has {config.num_labels} outputs")
    positions = getattr(config, "max_position_embeddings", None)
    if meta.get("max_length") and isinstance(positions, int) and meta["max_length"] > positions:
        raise BenchError(f"{folder}: 'max_length' {meta['max_length']} in its metadata is more than the {positions} "
                         "positions the model has")
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise BenchError(f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model only {vocab}; "
                         "the tokenizer does not belong to this model")
    return model, tokenizer, meta


def _load_error(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if name == "SafetensorError":
        return f"model.safetensors is damaged: {message}"
    return f"{name}: {message}" if message else name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    """The JSON name of a parsed JSON value's type ("object", "array", "string", "null"...), for
    errors that say what was found instead (here and in bench.serving.serve's request checks)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if value is not None else "nothing"
    return text if len(text) <= limit else text[: limit - 3] + "..."
