"""The scikit-learn pipeline a churn model is, and the model schema it serves by.

Preprocessing is a ``ColumnTransformer``: numeric columns get their training median for a
missing value (and are standardised for logistic regression), categorical ones their most
frequent value and a one-hot encoding that ignores categories never seen in training. The
model schema written beside ``model.joblib`` describes each feature as training saw it, so
forms, request checks and example requests are generated from it, never hard-coded.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

import algorithms
from dataset_schema import NUMBER_RE

SCHEMA_VERSION = 1


def _one_hot():
    from sklearn.preprocessing import OneHotEncoder

    try:
        return OneHotEncoder(handle_unknown="ignore", sparse_output=True)
    except TypeError:  # scikit-learn < 1.2
        return OneHotEncoder(handle_unknown="ignore", sparse=True)


def build_pipeline(args, numeric: List[str], categorical: List[str]):
    """ColumnTransformer + the chosen classifier (its registry entry builds it from the parsed hyperparameters)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    algorithm = algorithms.get(args.algorithm)
    parts = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy="median"))]
        if algorithm.scale_numeric:
            from sklearn.preprocessing import StandardScaler

            steps.append(("scale", StandardScaler()))
        parts.append(("num", Pipeline(steps), numeric))
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", _one_hot())]),
                categorical,
            )
        )
    pre = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("pre", pre), ("model", algorithm.build(args))])


def encoded_owners(pipeline, numeric: List[str], categorical: List[str]) -> List[str]:
    """The original column behind each column the model sees (one-hot columns back to their source)."""
    owners = list(numeric)
    if categorical:
        encoder = pipeline.named_steps["pre"].named_transformers_["cat"].named_steps["onehot"]
        for name, cats in zip(categorical, encoder.categories_):
            owners.extend([name] * len(cats))
    return owners


IMPORTANCE_ROWS = 5000  # training rows a linear model's importance is measured on


def feature_importance(pipeline, numeric: List[str], categorical: List[str], features: List[str],
                       x_train=None) -> List[dict]:
    """Each original column's share of the model's importance.

    Trees: their impurity importances summed over a column's one-hot columns. Linear models: the spread
    (standard deviation over training rows) of the column's linear-SHAP push, ``sum over its encoded
    columns of coef x (x - training mean)`` -- one number per original column from the pushes the
    customers actually get. Summing |coefficient| over one-hot levels would grow with the number of
    levels (every rare level adds its |coefficient| although few customers have it); the spread of the
    push weighs each level by how many customers have it, so a 40-level column is not inflated."""
    model = pipeline.named_steps["model"]
    owners = encoded_owners(pipeline, numeric, categorical)
    totals = dict((name, 0.0) for name in features)
    if hasattr(model, "feature_importances_"):
        raw = np.asarray(model.feature_importances_, dtype=float)
        if len(owners) != len(raw):  # should not happen; never fail a finished training over a chart
            return []
        for owner, value in zip(owners, raw):
            totals[owner] += float(value)
    elif hasattr(model, "coef_") and x_train is not None:
        encoded = pipeline.named_steps["pre"].transform(x_train.iloc[:IMPORTANCE_ROWS])
        encoded = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded, dtype=float)
        coef = np.asarray(model.coef_, dtype=float).ravel()
        if len(owners) != len(coef) or encoded.shape[1] != len(coef):
            return []
        push = (encoded - encoded.mean(axis=0)) * coef
        for name in features:
            columns = [i for i, owner in enumerate(owners) if owner == name]
            totals[name] = float(push[:, columns].sum(axis=1).std()) if columns else 0.0
    else:
        return []
    grand = sum(totals.values())
    if grand > 0:
        totals = dict((k, v / grand) for k, v in totals.items())
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], features.index(kv[0])))
    return [{"feature": k, "importance": round(v, 6)} for k, v in ranked]


def finite(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def model_schema(
    dataset: dict, positive_label: Any, x_train, pipeline, decimals: Dict[str, int], threshold: float
) -> dict:
    """What the served model expects: each feature's kind, range, typical value and categories,
    the target's spelling, and the ID columns a request may carry (echoed, never used)."""
    kinds = dict((f["name"], f["kind"]) for f in dataset["features"])
    features = [f["name"] for f in dataset["features"]]
    categorical = [f for f in features if kinds[f] == "categorical"]
    categories: Dict[str, List[str]] = {}
    if categorical:
        encoder = pipeline.named_steps["pre"].named_transformers_["cat"].named_steps["onehot"]
        for name, cats in zip(categorical, encoder.categories_):
            categories[name] = [str(c) for c in cats]
    out = []
    for name in features:
        series = x_train[name]
        entry: Dict[str, Any] = {"name": name, "kind": kinds[name], "missing": int(series.isna().sum())}
        if kinds[name] == "numeric":
            present = series.dropna()
            entry.update(
                min=finite(present.min()),
                max=finite(present.max()),
                median=finite(present.median()),
                mean=finite(present.mean()),
                decimals=int(decimals.get(name, 0)),
                integer=bool(len(present) > 0 and np.all(np.floor(present.to_numpy()) == present.to_numpy())),
                categories=[],
            )
        else:
            counts = series.dropna().value_counts()
            entry.update(
                min=None,
                max=None,
                median=None,
                mean=None,
                categories=categories.get(name, []),
                mode=str(counts.index[0]) if len(counts) else None,
            )
        out.append(entry)
    return {
        "format_version": SCHEMA_VERSION,
        "target": dataset["target"],
        "positive_label": 1 if NUMBER_RE.match(str(positive_label)) else positive_label,
        "features": out,
        "id_columns": list(dataset.get("id_columns") or []),
        "dropped": sorted(dataset.get("dropped") or {}),
        "threshold": threshold,
    }
