"""Anomaly-detection report: thresholds, threshold metrics and detection rate per attack category.

Shared by the autoencoders and the classical baselines, so that every row of the traffic
results is computed the same way from (scores, labels, categories).

Two thresholds, both fixed before the test split is looked at:
- `val_max_f1`: the score threshold that maximises F1 on the validation split;
- `train_p99`: the 99th percentile of the scores of the training part's normal rows, i.e. a
  1 % false-alarm budget set without any attack label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from workloads.metrics import binary_metrics

THRESHOLDS = ("val_max_f1", "train_p99")


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC (attack = positive); NaN when undefined (one class, non-finite scores)."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(labels)) < 2 or not np.isfinite(scores).all():
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {"roc_auc": float(roc_auc_score(labels, scores)), "pr_auc": float(average_precision_score(labels, scores))}


def max_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) where F1 on these labels is highest; a score >= threshold is an attack."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all() or len(np.unique(labels)) < 2:
        return float("inf"), 0.0
    precision, recall, thresholds = precision_recall_curve(np.asarray(labels).astype(int), scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def normal_percentile_threshold(train_normal_scores: np.ndarray, percentile: float = 99.0) -> float:
    scores = np.asarray(train_normal_scores, dtype=np.float64)
    return float(np.percentile(scores, percentile)) if np.isfinite(scores).all() else float("inf")


def detection_rates(
    flagged: np.ndarray, categories: np.ndarray, names: list[str]
) -> dict[str, dict[str, float | int]]:
    """Per attack category: rows and the fraction flagged (for "Normal": the false-alarm rate)."""
    rates = {}
    for index, name in enumerate(names):
        rows = categories == index
        if rows.any():
            rates[name] = {"rows": int(rows.sum()), "flagged": float(flagged[rows].mean())}
    return rates


def split_report(
    outputs: dict[str, np.ndarray], thresholds: dict[str, float], names: list[str]
) -> dict[str, Any]:
    """Metrics of one split: ranking metrics, the metrics at `val_max_f1` at top level (what the
    summary table shows), the metrics at every threshold, and the detection rate per category."""
    labels = np.asarray(outputs["label"]).astype(int)
    scores = np.asarray(outputs["score"], dtype=np.float64)
    categories = np.asarray(outputs["category"]).astype(int)
    report: dict[str, Any] = {**ranking_metrics(labels, scores)}
    report["at_threshold"], report["detection_rate"] = {}, {}
    for name, threshold in thresholds.items():
        flagged = scores >= threshold
        point = binary_metrics(labels, flagged)
        report["at_threshold"][name] = point
        report["detection_rate"][name] = detection_rates(flagged, categories, names)
    report.update(report["at_threshold"][THRESHOLDS[0]])
    return report


def full_report(
    val: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    train_normal_scores: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    """Thresholds from validation and training normals, then the val and test reports."""
    threshold, _ = max_f1_threshold(val["label"], val["score"])
    thresholds = {"val_max_f1": threshold, "train_p99": normal_percentile_threshold(train_normal_scores)}
    return {
        "thresholds": thresholds,
        "val": split_report(val, thresholds, names),
        "test": split_report(test, thresholds, names),
    }
