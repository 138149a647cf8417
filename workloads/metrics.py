"""Binary-classification metrics shared by the workloads (scikit-learn does the work)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class; ROC-AUC and PR-AUC from scores."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
    }
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        both_classes = len(np.unique(y_true)) == 2
        finite = np.isfinite(scores).all()
        out["roc_auc"] = float(roc_auc_score(y_true, scores)) if both_classes and finite else float("nan")
        out["pr_auc"] = float(average_precision_score(y_true, scores)) if both_classes and finite else float("nan")
    return out
