"""The training data's baseline, in SageMaker Model Monitor's file shapes.

``statistics.json`` describes each feature as training saw it (count, missing, mean, std, min,
max and a histogram for numbers; distinct count and category frequencies for categories), plus
the predicted churn probability on the held-out data; ``constraints.json`` states what later data
is checked against (inferred type, completeness, non-negativity, category domain) and the drift
thresholds in force. Drift reports compare captured requests with these files.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

PREDICTION = "prediction.churn_probability"  # the model's output, baselined beside the inputs
BUCKETS = 10  # histogram buckets of a number (Model Monitor materialises 10 too)
QUANTILES = 101  # the sketch: percentiles 0 … 100, enough to compare distributions within 1 %
MAX_DOMAIN = 50  # categories listed in a domain constraint (more: no domain check)
THRESHOLDS = {  # defaults; a drift report may override them
    "psi": 0.2,  # population stability index of a number
    "ks": 0.1,  # two-sample Kolmogorov–Smirnov statistic of a number
    "linf": 0.1,  # L-infinity distance of category frequencies (Model Monitor's, Vertex AI's choice)
    "missing": 0.05,  # change of the share of missing values
    "unseen": 0.05,  # share of values outside the category domain
}


def _number(value: Any) -> Optional[float]:
    number = float(value)
    return number if math.isfinite(number) else None


def _numeric_statistics(values: np.ndarray) -> Dict[str, Any]:
    present = values[~np.isnan(values)]
    missing = int(len(values) - len(present))
    stats: Dict[str, Any] = {"common": {"num_present": int(len(present)), "num_missing": missing}}
    if not len(present):
        return stats
    quantiles = np.quantile(present, np.linspace(0, 1, QUANTILES))
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BUCKETS + 1)))
    if len(edges) < 2:
        edges = np.array([present.min(), present.max()])
    counts, _ = np.histogram(present, bins=edges)
    stats.update(
        mean=_number(present.mean()), sum=_number(present.sum()), std_dev=_number(present.std()),
        min=_number(present.min()), max=_number(present.max()),
        distribution={"kll": {
            "buckets": [{"lower_bound": float(lo), "upper_bound": float(hi), "count": int(c)}
                        for lo, hi, c in zip(edges[:-1], edges[1:], counts)],
            "sketch": {"parameters": {"c": 1.0, "k": QUANTILES}, "data": [[float(q) for q in quantiles]]},
        }},
    )
    return stats


def _string_statistics(values: List[Any]) -> Dict[str, Any]:
    present = [v for v in values if not (isinstance(v, float) and v != v)]
    counts: Dict[str, int] = {}
    for value in present:
        counts[str(value)] = counts.get(str(value), 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "common": {"num_present": len(present), "num_missing": len(values) - len(present)},
        "distinct_count": len(counts),
        "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in ranked]}},
    }


def statistics(x_train, features: List[dict], proba: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """``statistics.json`` of the typed training features (and the held-out churn probabilities)."""
    out: List[Dict[str, Any]] = []
    for spec in features:
        column = x_train[spec["name"]]
        if spec["kind"] == "numeric":
            values = column.to_numpy(dtype=float)
            present = values[~np.isnan(values)]
            integral = bool(len(present)) and bool(np.all(present == np.round(present)))
            out.append({"name": spec["name"], "inferred_type": "Integral" if integral else "Fractional",
                        "numerical_statistics": _numeric_statistics(values)})
        else:
            out.append({"name": spec["name"], "inferred_type": "String",
                        "string_statistics": _string_statistics(column.tolist())})
    if proba is not None:
        out.append({"name": PREDICTION, "inferred_type": "Fractional",
                    "numerical_statistics": _numeric_statistics(np.asarray(proba, dtype=float))})
    return {"version": 0, "dataset": {"item_count": int(len(x_train))}, "features": out}


def constraints(stats: Dict[str, Any], thresholds: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
    """``constraints.json`` suggested from the statistics, with the drift thresholds in force."""
    limits = dict(THRESHOLDS, **(thresholds or {}))
    out = []
    for feature in stats["features"]:
        block = feature.get("numerical_statistics") or feature.get("string_statistics")
        common = block["common"]
        total = common["num_present"] + common["num_missing"]
        entry: Dict[str, Any] = {"name": feature["name"], "inferred_type": feature["inferred_type"],
                                 "completeness": round(common["num_present"] / total, 6) if total else 0.0}
        if "numerical_statistics" in feature:
            entry["num_constraints"] = {"is_non_negative": bool((block.get("min") or 0.0) >= 0.0)}
        else:
            buckets = block["distribution"]["categorical"]["buckets"]
            if len(buckets) <= MAX_DOMAIN:
                entry["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        out.append(entry)
    return {
        "version": 0,
        "features": out,
        "monitoring_config": {
            "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
            "datatype_check_threshold": 0.1, "domain_content_threshold": limits["unseen"],
            "distribution_constraints": {
                "perform_comparison": "Enabled", "comparison_threshold": limits["ks"], "comparison_method": "Robust",
                "categorical_comparison_threshold": limits["linf"], "categorical_drift_method": "LInfinity",
            },
            "churn_thresholds": limits,
        },
    }
