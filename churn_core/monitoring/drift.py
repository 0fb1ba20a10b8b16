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

COLUMNS = ["feature", "metric", "value", "threshold", "drifted", "n", "verdict"]
# A KS distance over its threshold counts only when this unlikely under no change, for the whole report: the
# level is shared by its numeric features (Bonferroni), so ten numbers do not raise ten times the false alarms.
KS_SIGNIFICANCE = 0.01
# The fewest current values a measure is judged on; below it a row says "not enough data (n of N needed)".
MIN_SAMPLE = {
    # PSI over the baseline's 10 buckets: under no change its expected value is about (buckets − 1) / n, so
    # 0.045 at 200 values, a quarter of the 0.2 threshold (at 50 it would be 0.18: noise alone near a verdict).
    "psi": 200,
    # KS: the p-value (real sample sizes) guards against noise, but under 100 values the asymptotic p-value
    # and the sketch's 1 % resolution make the distance itself unreliable.
    "ks": 100,
    # a category share or the missing share: its standard error is at most 0.5 / sqrt(n), 0.035 at 200 values,
    # so two of them stay under the 0.1 L-infinity threshold.
    "linf": 200,
    "missing_change": 200,
    # the share of never-seen categories: any value in it is a fact, yet a share of 1 in 20 needs 100 values.
    "unseen": 100,
}


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


def _numeric_rows(name: str, base: dict, values: np.ndarray, limits: dict,
                  significance: float = KS_SIGNIFICANCE) -> list[dict]:
    from scipy.stats import ks_2samp

    rows = []
    present = values[~np.isnan(values)]
    kll = base.get("distribution", {}).get("kll", {})
    if len(present) and kll.get("buckets"):
        base_counts = np.array([b["count"] for b in kll["buckets"]], dtype=float)
        psi = _psi(base_counts, _bucket_counts(present, kll["buckets"]))
        rows.append(_row(name, "psi", psi, limits["psi"], len(present)))
    sketch = (kll.get("sketch") or {}).get("data") or []
    if len(present) and sketch and sketch[0]:
        distance = float(ks_2samp(present, np.asarray(sketch[0], dtype=float)).statistic)
        row = _row(name, "ks", distance, limits["ks"], len(present))
        trained = int((base.get("common") or {}).get("num_present") or len(sketch[0]))
        row["drifted"] = row["drifted"] and ks_pvalue(distance, len(present), trained) < significance
        rows.append(row)
    return rows


def ks_pvalue(distance: float, n: int, m: int) -> float:
    """The two-sample KS p-value of ``distance`` for samples of ``n`` and ``m`` values (scipy's asymptotic
    form): ``m`` is the real training count stored in the baseline, not the 101 points of its sketch, which
    would make any distance under about 0.16 look like noise whatever the threshold."""
    from scipy.stats import kstwo

    effective = max(1, int(round(n * m / (n + m))))
    return float(kstwo.sf(distance, effective))


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
    return [_row(name, "linf", linf, limits["linf"], len(present)),
            _row(name, "unseen", unseen, limits["unseen"], len(present))]


def _row(feature: str, metric: str, value: float, threshold: float, n: int) -> dict:
    return {"feature": feature, "metric": metric, "value": round(float(value), 6), "threshold": float(threshold),
            "drifted": bool(value > threshold), "n": int(n)}


def _judged(row: dict) -> dict:
    """A row's verdict: "drifted", "ok", or "not enough data (n of N needed)" (then never drifted)."""
    needed = MIN_SAMPLE.get(row["metric"], 0)
    if row["n"] < needed:
        return dict(row, drifted=False, verdict=f"not enough data ({row['n']} of {needed} needed)")
    return dict(row, verdict="drifted" if row["drifted"] else "ok")


def report(statistics: dict, current: pd.DataFrame, probabilities: np.ndarray | None = None,
           overrides: dict | None = None) -> pd.DataFrame:
    """Per feature and measure: value, threshold, drifted. ``current`` holds the model's features typed
    as training typed them (numbers as floats with NaN, categories as text with NaN)."""
    baseline = entry_module("baseline")
    limits = thresholds(overrides)
    rows: list[dict] = []
    tested = sum(1 for f in statistics["features"] if "numerical_statistics" in f and f["name"] in current.columns)
    significance = KS_SIGNIFICANCE / max(tested, 1)  # one level for the report's KS tests together
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
        rows.append(_row(name, "missing_change", abs(float(column.isna().mean()) - base_missing), limits["missing"],
                         len(column)))
        if "numerical_statistics" in feature:
            rows += _numeric_rows(name, block, column.to_numpy(dtype=float), limits, significance)
        else:
            rows += _categorical_rows(name, block, column.tolist(), limits)
    frame = pd.DataFrame([_judged(r) for r in rows], columns=COLUMNS)
    if not frame.empty:
        drifted = frame.groupby("feature")["drifted"].transform("any")
        frame = frame.assign(_first=~drifted).sort_values(["_first", "feature", "metric"], kind="stable")
        frame = frame.drop(columns="_first").reset_index(drop=True)
    frame.attrs["n"] = int(len(current))
    frame.attrs["verdict"] = verdict(frame)
    return frame


def verdict(frame: pd.DataFrame) -> str:
    """The headline of a report, from the same rows the table shows: "drift: A, B" (the model's output
    included), "no drift", or "not enough data" when no row could be judged."""
    if not len(frame):
        return "not enough data"
    flagged = sorted(set(frame.loc[frame["drifted"].astype(bool), "feature"]))
    if flagged:
        return "drift: " + ", ".join(flagged)
    judged = frame["verdict"].isin(["ok", "drifted"]) if "verdict" in frame else pd.Series(True, index=frame.index)
    return "no drift" if judged.any() else "not enough data"


def drifted_features(frame: pd.DataFrame) -> list[str]:
    """The input features that drifted (the model's own output is reported apart: ``prediction_shift``)."""
    if not len(frame):
        return []
    prediction = entry_module("baseline").PREDICTION
    return sorted(set(frame.loc[frame["drifted"] & (frame["feature"] != prediction), "feature"]))


def prediction_drifted(frame: pd.DataFrame) -> bool:
    """Whether the model's output drifted (judged on enough predictions)."""
    if not len(frame):
        return False
    return bool(frame.loc[frame["feature"] == entry_module("baseline").PREDICTION, "drifted"].any())


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
