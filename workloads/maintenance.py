"""Maintenance: predict machine failure from AI4I 2020 sensor readings with a GRU or LSTM.

Data: 10,000 rows in UDI order, 3.39% machine failures. A sample is a window of `window`
consecutive rows; the label is the failure of the window's last row. Rows are split into
contiguous UDI blocks (70/15/15) and windows never cross a block boundary, so no test row is
seen in training, not even as context.

Inputs: one-hot `Type` (L/M/H), the five sensor readings, and two physically meaningful
derived quantities (air/process temperature difference, mechanical power = torque x angular
speed) that drive the heat-dissipation and power failure modes. All numeric inputs are scaled
with the mean/std of the training block only. The failure-mode flags TWF/HDF/PWF/OSF/RNF are
the label broken down by cause, so they never enter; UDI and Product ID are identifiers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from bench.data.tabular import check_classes, cleaning_step, dataset_file, read_csv_checked
from bench.errors import BenchError
from workloads.base import Splits, TrainParams, Workload, limits
from workloads.metrics import binary_metrics

CSV = "ai4i2020/ai4i2020.csv"
LABEL = "Machine failure"
SENSORS = [
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
]
LEAKY = ["TWF", "HDF", "PWF", "OSF", "RNF"]  # failure modes: the label by another name
IDENTIFIERS = ["UDI", "Product ID"]
TYPES = ["L", "M", "H"]
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


def load_frame(cleaning: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The AI4I CSV, checked (finite sensors, unique UDI, both classes), in UDI order.

    What the reordering changed is appended to `cleaning` (the result's `data.cleaning`)."""
    path = dataset_file(CSV, "ai4i2020")
    frame = read_csv_checked(
        path,
        required=IDENTIFIERS + ["Type", *SENSORS, LABEL, *LEAKY],
        numeric=["UDI", *SENSORS],
        labels={LABEL: {0, 1}, "Type": set(TYPES)},
        min_rows=1000,
        unique=["UDI"],
        target=LABEL,
    )
    ordered = frame.sort_values("UDI", kind="stable")
    if cleaning is not None:
        moved = int((ordered.index.to_numpy() != np.arange(len(frame))).sum())
        cleaning.append(cleaning_step("sort rows by UDI", moved))
    return ordered.reset_index(drop=True)


def feature_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Unscaled inputs (rows x features) and their names. Never reads the label or leaky flags."""
    numeric = frame[SENSORS].astype(np.float64).copy()
    numeric["temp_diff [K]"] = frame["Process temperature [K]"] - frame["Air temperature [K]"]
    numeric["power [W]"] = frame["Torque [Nm]"] * frame["Rotational speed [rpm]"] * 2 * np.pi / 60
    onehot = pd.get_dummies(pd.Categorical(frame["Type"], categories=TYPES), prefix="Type").astype(np.float64)
    features = pd.concat([numeric, onehot.set_index(frame.index)], axis=1)
    return features.to_numpy(), list(features.columns)


def block_bounds(n_rows: int) -> dict[str, tuple[int, int]]:
    """Contiguous [start, stop) row ranges of train/val/test in UDI order."""
    n_train = int(n_rows * SPLIT_FRACTIONS[0])
    n_val = int(n_rows * SPLIT_FRACTIONS[1])
    return {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_rows)}


def scale_with_train(features: np.ndarray, n_numeric: int, train: tuple[int, int]) -> np.ndarray:
    """Standardise the numeric columns with the training block's statistics only."""
    scaled = features.copy()
    block = features[train[0] : train[1], :n_numeric]
    mean, std = block.mean(axis=0), block.std(axis=0)
    scaled[:, :n_numeric] = (features[:, :n_numeric] - mean) / np.where(std > 0, std, 1.0)
    return scaled


class WindowDataset(Dataset):
    """Windows of `window` consecutive rows inside one block; label = last row's failure."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, window: int) -> None:
        if len(features) < window:
            raise ValueError(f"block of {len(features)} rows is shorter than the window ({window})")
        self.x = torch.as_tensor(features, dtype=torch.float32)
        self.y = torch.as_tensor(labels, dtype=torch.float32)
        self.window = window

    def __len__(self) -> int:
        return len(self.x) - self.window + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = i + self.window
        return self.x[i:end], self.y[end - 1]

    def last_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows that are window targets, for single-row baselines on the same samples."""
        return self.x[self.window - 1 :].numpy(), self.y[self.window - 1 :].numpy()


class RecurrentClassifier(nn.Module):
    """GRU or LSTM over a window; a linear head on the last hidden state gives a failure logit."""

    def __init__(self, cell: str, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


@dataclass
class MaintenanceParams(TrainParams):
    target: float = 0.55
    """Validation F1 (failure class) to reach: met by 5/5 seeds within 6 epochs in fp32 and bf16
    (LSTM, docs/maintenance.md); best per seed 0.59-0.67."""
    global_batch: int = 64
    lr: float = 3e-3
    window: int = limits(20, ge=1)
    """Consecutive rows per sample; the label is the last row's failure."""
    hidden: int = limits(64, ge=1)
    """Hidden size of the recurrent layer."""
    layers: int = limits(1, ge=1)
    """Stacked recurrent layers."""
    dropout: float = limits(0.0, ge=0, lt=1)
    """Dropout between stacked recurrent layers."""
    pos_weight: float = limits(5.0, ge=0)
    """Weight of the failure class in the loss; 0 = negatives/positives of the training block (~29).
    The full ratio pushes the 0.5 threshold so far towards failures that precision collapses
    (figures in docs/maintenance.md, "Class weight")."""
    threshold: float = limits(0.5, ge=0, le=1)
    """Probability above which a window is called a failure."""


class Maintenance(Workload):
    name = "maintenance"
    variants = ("gru", "lstm")
    rnn_variants = ("gru", "lstm")
    target_metric = "f1"
    Params = MaintenanceParams

    def load(self, seed: int) -> Splits:
        cleaning: list[dict[str, Any]] = []
        frame = load_frame(cleaning)
        features, names = feature_matrix(frame)
        labels = frame[LABEL].to_numpy(dtype=np.float32)
        bounds = block_bounds(len(frame))
        source = dataset_file(CSV, "ai4i2020")
        for name, (a, b) in bounds.items():
            # every block trains or judges: F1, ROC-AUC and the baselines need both classes in each
            part = f"{name} block (UDI {int(frame.UDI[a])}-{int(frame.UDI[b - 1])})"
            check_classes(source, labels[a:b].astype(int), LABEL, part)
        n_numeric = len(names) - len(TYPES)
        scaled = scale_with_train(features, n_numeric, bounds["train"])
        if not np.isfinite(scaled).all():  # finite readings can still overflow (power = torque x speed)
            raise BenchError(f"{source}: the scaled inputs hold non-finite values; their windows would score NaN")
        w = self.params.window
        parts = {name: WindowDataset(scaled[a:b], labels[a:b], w) for name, (a, b) in bounds.items()}
        train_pos = float(labels[bounds["train"][0] : bounds["train"][1]].sum())
        train_neg = (bounds["train"][1] - bounds["train"][0]) - train_pos
        self._pos_weight = self.params.pos_weight or train_neg / max(train_pos, 1.0)
        self._n_features = scaled.shape[1]
        info = {
            "rows": len(frame),
            "features": names,
            "split": "contiguous UDI blocks 70/15/15; windows never cross a block",
            "blocks": {k: {"rows": b - a, "udi": [int(frame.UDI[a]), int(frame.UDI[b - 1])]} for k, (a, b) in bounds.items()},
            "positives": {k: int(v.last_rows()[1].sum()) for k, v in parts.items()},
            "samples": {k: len(v) for k, v in parts.items()},
            "pos_weight": self._pos_weight,
            "cleaning": cleaning,
        }
        return Splits(train=parts["train"], val=parts["val"], test=parts["test"], info=info)

    def build_model(self) -> nn.Module:
        p = self.params
        return RecurrentClassifier(self.variant, self._n_features, p.hidden, p.layers, p.dropout)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        logits = model(x)
        # The loss is computed in fp32 even under autocast: BCE on bf16 logits loses the small
        # probabilities that matter for a 1:29 imbalance.
        pos_weight = torch.tensor(self._pos_weight, device=logits.device)
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight)

    def eval_outputs(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"score": torch.sigmoid(model(x).float()), "label": y}

    def _metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        scores = outputs["score"]
        return binary_metrics(outputs["label"], scores >= self.params.threshold, scores)

    def val_metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return self._metrics(outputs)

    def final_metrics(self, evaluate: Callable[[str], dict[str, np.ndarray]]) -> dict[str, Any]:
        return {"val": self._metrics(evaluate("val")), "test": self._metrics(evaluate("test"))}

    def baselines(self, splits: Splits, seed: int) -> list[dict[str, Any]]:
        """RandomForest and an RBF SVM on single rows (the windows' last rows), same blocks."""
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.svm import SVC

        x_train, y_train = splits.train.last_rows()
        x_val, y_val = splits.val.last_rows()
        x_test, y_test = splits.test.last_rows()
        models = {
            "random_forest": RandomForestClassifier(
                n_estimators=300, class_weight="balanced_subsample", min_samples_leaf=2, random_state=seed, n_jobs=-1
            ),
            "svm_rbf": SVC(kernel="rbf", C=10.0, gamma="scale", class_weight="balanced", random_state=seed),
        }
        rows = []
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(x_train, y_train)
            fit_seconds = time.perf_counter() - start
            metrics = {}
            for split, (x, y) in {"val": (x_val, y_val), "test": (x_test, y_test)}.items():
                if hasattr(model, "predict_proba"):
                    scores = model.predict_proba(x)[:, 1]
                else:
                    scores = model.decision_function(x)
                metrics[split] = binary_metrics(y, model.predict(x), scores)
            rows.append({"name": name, "metrics": metrics, "fit_seconds": fit_seconds})
        return rows
