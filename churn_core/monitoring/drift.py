"""Do the customers a model scores still look like the ones it learned from?

A drift report compares a window of current data (captured requests, an uploaded file, a
transform job's input) with the model's training baseline (``statistics.json``):

* numbers: the population stability index over the baseline's histogram buckets, and the
  two-sample Kolmogorov–Smirnov statistic (scipy) against the baseline's percentile sketch;
* categories: the L-infinity distance of the category frequencies (Model Monitor's and Vertex
  AI's choice) and the share of values never seen in training;
* every feature: the change of the share of missing values;
* the model's output: the PSI of the predicted churn probability.

A feature is drifted when any of its measures is over its threshold (defaults in
``entry/baseline.THRESHOLDS``, configurable). The same verdicts are written as Model Monitor's
``constraint_violations.json``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from churn_core.paths import entry_module

COLUMNS = ["feature", "metric", "value", "threshold", "drifted"]
KS_SIGNIFICANCE = 0.01  # a KS distance over its threshold counts only when this unlikely under no change


def thresholds(overrides: dict | None = None) -> dict[str, float]:
    return dict(entry_module("baseline").THRESHOLDS, **(overrides or {}))


def _psi(base_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index of two histograms over the same buckets (an epsilon for empty ones)."""
    eps = 1e-4
    base = np.maximum(base_counts / max(base_counts.sum(), 1), eps)
    cur = np.maximum(current_counts / max(current_counts.sum(), 1), eps)
    return float(np.sum((cur - base) * np.log(cur / base)))


def _bucket_counts(values: np.ndarray, buckets: list[dict]) -> np.ndarray:
    """Counts of ``values`` in the baseline buckets; values below or above the range join the end buckets."""
    edges = np.array([buckets[0]["lower_bound"]] + [b["upper_bound"] for b in buckets], dtype=float)
    inner = edges[1:-1]
    return np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(buckets)).astype(float)


def _numeric_rows(name: str, base: dict, values: np.ndarray, limits: dict) -> list[dict]:
    from scipy.stats import ks_2samp

    rows = []
    present = values[~np.isnan(values)]
    kll = base.get("distribution", {}).get("kll", {})
    if len(present) and kll.get("buckets"):
        base_counts = np.array([b["count"] for b in kll["buckets"]], dtype=float)
        psi = _psi(base_counts, _bucket_counts(present, kll["buckets"]))
        rows.append(_row(name, "psi", psi, limits["psi"]))
    sketch = (kll.get("sketch") or {}).get("data") or []
    if len(present) and sketch and sketch[0]:
        result = ks_2samp(present, np.asarray(sketch[0], dtype=float))
        row = _row(name, "ks", float(result.statistic), limits["ks"])
        row["drifted"] = row["drifted"] and float(result.pvalue) < KS_SIGNIFICANCE  # not a small sample's noise
        rows.append(row)
    return rows


def _categorical_rows(name: str, base: dict, values: list, limits: dict) -> list[dict]:
    present = [str(v) for v in values if not (isinstance(v, float) and math.isnan(v)) and v is not None]
    buckets = base.get("distribution", {}).get("categorical", {}).get("buckets", [])
    total = sum(b["count"] for b in buckets) or 1
    base_freq = {b["value"]: b["count"] / total for b in buckets}
    if not present:
        return []
    current = pd.Series(present).value_counts(normalize=True).to_dict()
    linf = max(abs(current.get(c, 0.0) - base_freq.get(c, 0.0)) for c in set(current) | set(base_freq))
    unseen = sum(share for c, share in current.items() if c not in base_freq)
    return [_row(name, "linf", linf, limits["linf"]), _row(name, "unseen", unseen, limits["unseen"])]


def _row(feature: str, metric: str, value: float, threshold: float) -> dict:
    return {"feature": feature, "metric": metric, "value": round(float(value), 6), "threshold": float(threshold),
            "drifted": bool(value > threshold)}


def report(statistics: dict, current: pd.DataFrame, probabilities: np.ndarray | None = None,
           overrides: dict | None = None) -> pd.DataFrame:
    """Per feature and measure: value, threshold, drifted. ``current`` holds the model's features typed
    as training typed them (numbers as floats with NaN, categories as text with NaN)."""
    baseline = entry_module("baseline")
    limits = thresholds(overrides)
    rows: list[dict] = []
    for feature in statistics["features"]:
        name = feature["name"]
        block = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        if name == baseline.PREDICTION:
            if probabilities is not None and len(probabilities):
                rows += [r for r in _numeric_rows(name, block, np.asarray(probabilities, dtype=float), limits)
                         if r["metric"] == "psi"]
            continue
        if name not in current.columns or not len(current):
            continue
        common = block.get("common", {})
        counted = common.get("num_missing", 0) + common.get("num_present", 0)
        base_missing = common.get("num_missing", 0) / max(counted, 1)
        column = current[name]
        rows.append(_row(name, "missing_change", abs(float(column.isna().mean()) - base_missing), limits["missing"]))
        if "numerical_statistics" in feature:
            rows += _numeric_rows(name, block, column.to_numpy(dtype=float), limits)
        else:
            rows += _categorical_rows(name, block, column.tolist(), limits)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame
    drifted = frame.groupby("feature")["drifted"].transform("any")
    frame = frame.assign(_first=~drifted).sort_values(["_first", "feature", "metric"], kind="stable")
    return frame.drop(columns="_first").reset_index(drop=True)


def drifted_features(frame: pd.DataFrame) -> list[str]:
    """The input features that drifted (the model's own output is reported apart: ``prediction_shift``)."""
    if not len(frame):
        return []
    prediction = entry_module("baseline").PREDICTION
    return sorted(set(frame.loc[frame["drifted"] & (frame["feature"] != prediction), "feature"]))


def prediction_shift(frame: pd.DataFrame) -> float | None:
    """PSI of the predicted churn probability against the held-out baseline (None when not measured)."""
    if not len(frame):
        return None
    rows = frame[frame["feature"] == entry_module("baseline").PREDICTION]
    return float(rows["value"].iloc[0]) if len(rows) else None


def violations(frame: pd.DataFrame) -> dict[str, Any]:
    """Model Monitor's ``constraint_violations.json`` for a report."""
    kinds = {"psi": "baseline_drift_check", "ks": "baseline_drift_check", "linf": "baseline_drift_check",
             "unseen": "categorical_values_check", "missing_change": "completeness_check"}
    return {"violations": [
        {"feature_name": r.feature, "constraint_check_type": kinds.get(r.metric, "baseline_drift_check"),
         "description": f"{r.metric} {r.value:.4f} is over the threshold {r.threshold:g}"}
        for r in frame.itertuples() if r.drifted
    ]}
