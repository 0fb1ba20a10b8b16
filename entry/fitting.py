"""Fitting a churn model the honest way: class weights undone, and scores that were not chosen on test data.

``fit`` builds and fits the pipeline (balanced sample weights for an algorithm that takes them so) and
then undoes the class weights (``calibration.undo_class_weight``), so its probabilities are on the
scale of the observed churn rate. ``out_of_fold`` is the same fit done ``folds`` times inside the
training split (stratified k-fold): every training customer gets a probability from a model that never
saw them. Tuning ranks trials by these (``<metric>_cv``, see ``cv_metrics``), and the campaign planner
picks its threshold on them, so the test split stays untouched by every choice and only reports.

Python 3.9, imports nothing of the project.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

import algorithms
import calibration
import model_pipeline
from dataset_schema import SchemaError

# roc_auc_cv, log_loss_cv, ...: the same metric, out of fold on the training split. A suffix, not a prefix, so
# SageMaker's MetricDefinitions regex for ``roc_auc=`` never matches the ``..._cv=`` log line.
CV_SUFFIX = "_cv"
CV_METRICS = ("roc_auc", "pr_auc", "f1", "log_loss", "brier")


def fit(args: Any, numeric, categorical, x, y) -> Tuple[Any, Dict[str, Any]]:
    """(fitted pipeline, the class-weight correction applied: ``{"method": ...}``)."""
    pipeline = model_pipeline.build_pipeline(args, numeric, categorical)
    fit_params = {}
    if algorithms.get(args.algorithm).weights_by_sample and args.class_weight == "balanced":
        from sklearn.utils.class_weight import compute_sample_weight

        fit_params["model__sample_weight"] = compute_sample_weight("balanced", y)
    pipeline.fit(x, y, **fit_params)
    weights = calibration.class_weights(y, args.class_weight)
    encoded = pipeline.named_steps["pre"].transform(x) if weights is not None else None
    correction = calibration.undo_class_weight(pipeline.named_steps["model"], weights, encoded, y)
    return pipeline, correction


def out_of_fold(args: Any, numeric, categorical, x, y) -> np.ndarray:
    """Each training customer's probability from the fold model that did not see them."""
    from sklearn.model_selection import StratifiedKFold

    folds = int(args.cv_folds)
    y = np.asarray(y, dtype=int)
    smallest = int(np.bincount(y, minlength=2).min())
    if folds < 2 or smallest < folds:
        raise SchemaError("cv_folds must be at least 2 and at most the number of customers of the rarer class "
                         "in the training split (%d); got %d." % (smallest, folds))
    oof = np.zeros(len(y), dtype=float)
    for inside, outside in StratifiedKFold(folds, shuffle=True, random_state=args.random_state).split(x, y):
        pipeline, _ = fit(args, numeric, categorical, x.iloc[inside], y[inside])
        oof[outside] = pipeline.predict_proba(x.iloc[outside])[:, 1]
    return oof


def cv_metrics(y, oof) -> Dict[str, Any]:
    """``<metric>_cv`` of the out-of-fold probabilities (the threshold-free ones and F1 at 0.5)."""
    import model_evaluation

    y = np.asarray(y, dtype=int)
    metrics, _ = model_evaluation.evaluate(y, np.asarray(oof, dtype=float), y, 0.5)
    return dict((name + CV_SUFFIX, metrics.get(name)) for name in CV_METRICS)


def oof_record(y, oof) -> Any:
    """What the model archive keeps of the out-of-fold probabilities (None without cross-validation)."""
    if oof is None:
        return None
    return {"y": [int(v) for v in np.asarray(y)], "p": [float(v) for v in oof]}
