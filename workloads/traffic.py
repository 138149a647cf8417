"""Traffic: unsupervised network-intrusion detection on UNSW-NB15 with autoencoders.

The models learn to reconstruct NORMAL traffic only; the anomaly score of a record is its
reconstruction error, and attacks are the records reconstructed badly. Labels are used only
to pick the training rows (normal ones), to choose a threshold on validation, and to score.

Variants:
- `ae`: a deep fully connected autoencoder on one record (the encoded features of workloads/
  traffic_data.py).
- `lstm_ae`: an LSTM encoder-decoder over a window of `window` consecutive records in `id`
  order; the score is the reconstruction error of the window's LAST record, so every record
  gets exactly one score and the metrics compare with `ae` and the baselines row for row.
  Windows are built inside each split only (no row of another split is ever context); the
  first records of a split repeat the split's first record as left padding. Training windows
  are runs of the training part's normal rows. Caveat recorded in the result: UNSW-NB15 in
  `id` order is a few long blocks of normal and of attack records, so a window's context is
  nearly always of the scored record's class.

Scores are reduced in fp32: the reconstruction and the input are cast to float before the
squared error is averaged, even under bf16/fp16 autocast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from workloads.base import Splits, Target, TrainParams, Workload, limits
from workloads.traffic_data import Part, Prepared, prepare
from workloads.traffic_report import full_report, max_f1_threshold, ranking_metrics

# ROC-AUC on validation each variant must reach, calibrated over seeds in fp32 and bf16 on the
# 2-core CPU (docs/traffic.md). Used when the `target` parameter is left at 0.
DEFAULT_TARGETS = {"ae": 0.80, "lstm_ae": 0.76}


class Batch(tuple):
    """A batch the dataset already assembled (see RowDataset.__getitems__); collate passes it on."""


class RowDataset(Dataset):
    """One record per sample: (features, label, attack-category index).

    `__getitems__` lets torch's DataLoader fetch a whole batch with one tensor index instead of
    one `__getitem__` and a stack per sample: for a 56-feature record the per-sample Python
    overhead would cost more than the model's forward and backward pass.
    """

    def __init__(self, part: Part) -> None:
        self.part = part
        self.x = torch.from_numpy(np.ascontiguousarray(part.x, dtype=np.float32))
        self.y = torch.from_numpy(np.ascontiguousarray(part.y, dtype=np.float32))
        self.category = torch.from_numpy(np.ascontiguousarray(part.category, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def inputs(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[index]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs(torch.tensor(i)), self.y[i], self.category[i]

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return Batch((self.inputs(index), self.y[index], self.category[index]))


class WindowDataset(RowDataset):
    """The window of `window` records ending at record i (left-padded with the first record)."""

    def __init__(self, part: Part, window: int) -> None:
        super().__init__(part)
        offsets = torch.arange(window) - (window - 1)
        self.index = (torch.arange(len(part))[:, None] + offsets[None, :]).clamp(min=0)

    def inputs(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[self.index[index]]


class DenseAutoencoder(nn.Module):
    """n -> hidden -> hidden/2 -> code -> hidden/2 -> hidden -> n, ReLU between layers."""

    def __init__(self, n_features: int, hidden: int, code: int) -> None:
        super().__init__()
        widths = [n_features, hidden, hidden // 2, code]
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            encoder += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
            decoder += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder[:-1])  # linear code
        self.decoder = nn.Sequential(*decoder[:-1])  # linear reconstruction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class LSTMAutoencoder(nn.Module):
    """LSTM encoder -> per-step linear bottleneck of width `code` -> LSTM decoder -> linear.

    Each step's reconstruction passes through the `code`-wide bottleneck but both LSTMs carry
    the window's earlier records as context. The classic design that squeezes the whole window
    into one vector and repeats it for the decoder learnt far slower here (docs/traffic.md:
    val ROC-AUC 0.75 after 6 epochs and over a minute on 2 cores), outside a smoke budget.
    """

    def __init__(self, n_features: int, hidden: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.LSTM(n_features, hidden, batch_first=True)
        self.to_code = nn.Linear(hidden, code)
        self.decoder = nn.LSTM(code, hidden, batch_first=True)
        self.output = nn.Linear(hidden, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.encoder(x)
        decoded, _ = self.decoder(self.to_code(encoded))
        return self.output(decoded)


@dataclass
class TrafficParams(TrainParams):
    target: float = 0.0
    """Validation ROC-AUC to reach; 0 = the calibrated default of the variant (DEFAULT_TARGETS)."""
    global_batch: int = 512
    """Samples per optimizer step over all processes (even, so that 2-process cells divide it)."""
    lr: float = 1e-2
    eval_batch: int = 2048
    ae_hidden: int = limits(128, ge=2)
    """Width of the first hidden layer of the dense autoencoder (the next is half of it)."""
    lstm_hidden: int = limits(32, ge=1)
    """Hidden size of both LSTMs of the LSTM-autoencoder."""
    code: int = limits(8, ge=1)
    """Bottleneck width (per record for lstm_ae)."""
    window: int = limits(4, ge=1)
    """Consecutive records per window (lstm_ae only)."""
    dedup: bool = True
    """Drop exact feature duplicates before splitting (see workloads/traffic_data.py)."""
    val_fraction: float = limits(0.2, gt=0, lt=1)
    """Share of the rows held out for validation (of the training partition, in the two-file layout)."""
    test_fraction: float = limits(0.2, gt=0, lt=1)
    """Share of the rows held out for test (one-file layout only)."""
    rare_fraction: float = limits(0.002, gt=0, lt=1)
    """Categories rarer than this among training normals are pooled into one column."""

    def cross_check(self) -> str | None:
        total = self.val_fraction + self.test_fraction
        if total >= 1:
            return f"val_fraction + test_fraction must be below 1 (the rest is the training part), got {total:g}"
        return None


class Traffic(Workload):
    name = "traffic"
    variants = ("ae", "lstm_ae")
    rnn_variants = ("lstm_ae",)
    target_metric = "roc_auc"
    Params = TrafficParams

    @property
    def target(self) -> Target:
        return Target(self.target_metric, self.params.target or DEFAULT_TARGETS[self.variant])

    def collate(self, items: Any) -> Any:
        if isinstance(items, Batch):
            return tuple(items)
        return torch.utils.data.default_collate(items)

    def load(self, seed: int) -> Splits:
        p = self.params
        prepared = prepare(seed, p.dedup, p.val_fraction, p.test_fraction, p.rare_fraction)
        self._prepared: Prepared = prepared
        self._n_features = prepared.train.x.shape[1]
        normal = prepared.train.where(prepared.train.y == 0)
        if self.variant == "lstm_ae":
            parts = [WindowDataset(part, p.window) for part in (normal, prepared.val, prepared.test)]
        else:
            parts = [RowDataset(part) for part in (normal, prepared.val, prepared.test)]
        info = {
            **prepared.info,
            "train_samples": f"{len(normal)} normal rows of the training part "
            f"({len(prepared.train) - len(normal)} attack rows of it are not used by the autoencoder)",
            "categories": prepared.categories,
        }
        if self.variant == "lstm_ae":
            info["windows"] = (
                f"{p.window} consecutive records in id order within each split, scored on the last record; "
                "training windows are runs of training-part normal rows; UNSW-NB15 in id order is a few long "
                "blocks of one class, so a window's context is nearly always of the scored record's class"
            )
        return Splits(train=parts[0], val=parts[1], test=parts[2], info=info)

    def build_model(self) -> nn.Module:
        p = self.params
        if self.variant == "lstm_ae":
            return LSTMAutoencoder(self._n_features, p.lstm_hidden, p.code)
        return DenseAutoencoder(self._n_features, p.ae_hidden, p.code)

    def _squared_error(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Per-element squared reconstruction error in fp32, whatever the autocast dtype."""
        return (model(x).float() - x.float()) ** 2

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, _, _ = batch
        return self._squared_error(model, x).mean()

    def eval_outputs(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y, category = batch
        error = self._squared_error(model, x)
        if error.dim() == 3:  # windows: the score belongs to the last record
            error = error[:, -1]
        return {"score": error.mean(dim=-1), "label": y, "category": category}

    def val_metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        metrics = ranking_metrics(outputs["label"], outputs["score"])
        metrics["f1_best"] = max_f1_threshold(outputs["label"], outputs["score"])[1]
        return metrics

    def final_metrics(self, evaluate: Callable[[str], dict[str, np.ndarray]]) -> dict[str, Any]:
        train_normal_scores = evaluate("train")["score"]  # the train split holds normal rows only
        return full_report(evaluate("val"), evaluate("test"), train_normal_scores, self._prepared.categories)

    def baselines(self, splits: Splits, seed: int) -> list[dict[str, Any]]:
        """IsolationForest on the training normals (unsupervised, like the autoencoders) and a
        supervised RandomForest on the whole training part with its labels: the ceiling a
        labelled approach reaches. One record per sample, same splits, same report."""
        from sklearn.ensemble import IsolationForest, RandomForestClassifier

        prepared = self._prepared
        train, val, test = prepared.train, prepared.val, prepared.test
        normal = train.where(train.y == 0)
        models: dict[str, tuple[Any, Callable[[Any, np.ndarray], np.ndarray]]] = {
            "isolation_forest": (
                IsolationForest(n_estimators=200, random_state=seed, n_jobs=-1),
                lambda m, x: -m.score_samples(x),  # higher = more anomalous
            ),
            "random_forest": (
                RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=-1),
                lambda m, x: m.predict_proba(x)[:, 1],
            ),
        }
        rows = []
        for name, (model, score) in models.items():
            start = time.perf_counter()
            if name == "isolation_forest":
                model.fit(normal.x)
            else:
                model.fit(train.x, train.y.astype(int))
            fit_seconds = time.perf_counter() - start

            def outputs(part: Part, model: Any = model, score: Callable = score) -> dict[str, np.ndarray]:
                return {"score": score(model, part.x), "label": part.y, "category": part.category}

            report = full_report(outputs(val), outputs(test), outputs(normal)["score"], prepared.categories)
            rows.append(
                {
                    "name": name,
                    "metrics": {"val": report["val"], "test": report["test"]},
                    "thresholds": report["thresholds"],
                    "fit_seconds": fit_seconds,
                }
            )
        return rows

