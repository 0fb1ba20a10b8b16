"""How well a model separates churners on held-out data: metrics and the curves the pages draw.

Curves are cut to at most ``MAX_CURVE_POINTS`` points and hold only finite numbers (JSON has no
Infinity), so an evaluation file stays small and loads anywhere.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

import calibration
from model_pipeline import finite

MAX_CURVE_POINTS = 200
_EPS = float(np.finfo(np.float64).eps)


def _downsample(n: int, limit: int = MAX_CURVE_POINTS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(int))


def _finite_list(values, digits: int = 6) -> List[float]:
    return [round(v, digits) if math.isfinite(v) else 0.0 for v in np.asarray(values, dtype=float).tolist()]


def evaluate(y_true: np.ndarray, proba: np.ndarray, y_train: np.ndarray, threshold: float) -> Tuple[dict, dict]:
    """(metrics, curves) of churn probabilities ``proba`` against the true labels."""
    from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score, log_loss,
                                 precision_recall_curve, precision_score, recall_score, roc_auc_score, roc_curve)

    pred = (proba > threshold).astype(int)  # predict()'s tie rule: exactly the threshold is class 0
    both = len(np.unique(y_true)) == 2
    metrics = {
        "accuracy": finite(accuracy_score(y_true, pred)),
        "precision": finite(precision_score(y_true, pred, zero_division=0)),
        "recall": finite(recall_score(y_true, pred, zero_division=0)),
        "f1": finite(f1_score(y_true, pred, zero_division=0)),
        "roc_auc": finite(roc_auc_score(y_true, proba)) if both else None,
        "pr_auc": finite(average_precision_score(y_true, proba)) if y_true.sum() > 0 else None,
        # clipped at machine epsilon, as scikit-learn >= 1.5 does (1.2, in the container, clipped at 1e-15)
        "log_loss": finite(log_loss(y_true, np.clip(proba, _EPS, 1 - _EPS), labels=[0, 1])),
        "train_churn_rate": finite(np.mean(y_train)),
        "test_churn_rate": finite(np.mean(y_true)),
    }
    honest = calibration.figures(y_true, proba)  # Brier score, ECE (10 equal-width bins), reliability curve
    metrics.update(brier=finite(honest["brier"]), ece=finite(honest["ece"]))
    curves: dict = {"reliability": honest["reliability"], "roc": {"fpr": [], "tpr": [], "thresholds": []},
                    "pr": {"precision": [], "recall": []}}
    if both:
        fpr, tpr, thr = roc_curve(y_true, proba)
        thr = np.asarray(thr, dtype=float).copy()
        if len(thr) > 1 and not math.isfinite(thr[0]):
            thr[0] = thr[1] + 1.0  # what scikit-learn < 1.3 reports; JSON has no Infinity
        keep = _downsample(len(fpr))
        curves["roc"] = {"fpr": _finite_list(fpr[keep]), "tpr": _finite_list(tpr[keep]),
                         "thresholds": _finite_list(thr[keep])}
    if y_true.sum() > 0:
        precision, recall, _ = precision_recall_curve(y_true, proba)
        keep = _downsample(len(precision))
        curves["pr"] = {"precision": _finite_list(precision[keep]), "recall": _finite_list(recall[keep])}
    cm = confusion_matrix(y_true, pred, labels=[0, 1])
    curves["confusion_matrix"] = [[int(cm[0, 0]), int(cm[0, 1])], [int(cm[1, 0]), int(cm[1, 1])]]
    return metrics, curves
