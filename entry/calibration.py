"""Honest probabilities: how well a model's probabilities match what happens, and undoing class weights.

``figures`` is every model's calibration report on held-out customers: the Brier score (scikit-learn's
``brier_score_loss``), the expected calibration error and a reliability curve. ECE uses **10 equal-width
bins over [0, 1]** (the bins of ``calibration_curve(strategy="uniform")``, empty bins skipped): the mean
over customers of |mean predicted probability − observed churn rate| of their bin, i.e.
``sum_b (n_b / n) * |mean(p_b) - mean(y_b)|``.

``undo_class_weight`` turns a model fitted with class weights (``class_weight="balanced"`` for random
forest and logistic regression, balanced sample weights for gradient boosting) back into one whose
probabilities are on the scale of the observed churn rate. It changes the fitted estimator itself, so
every path that scores or explains it (pipeline, fast path, explainer, transform) sees one model:

* logistic regression, gradient boosting (log-odds models): a prior shift in log-odds,
  ``logit p' = logit p + s``, added to the intercept (logistic regression) or to the initial prediction
  (gradient boosting's ``init_`` prior). The textbook shift is ``s = log(w0 / w1)`` (``w`` the class
  weights); it over-corrects boosted trees (fitted with weights, their log-odds are not a weighted
  posterior), so ``s`` starts there and is fitted so that the mean probability over the training
  customers is their churn rate (calibration-in-the-large). It is a constant, so log-odds reasons stay
  exactly additive: the base value moves by it, pushes do not.
* random forest (probability space): first the prior shift where a forest forms probabilities, in each
  tree node: a node's weighted class counts divided by the class weights are its customers' counts
  (scikit-learn < 1.7 weights the counts, later versions draw the bootstrap by class weight: either way
  the counts are proportional to weight x customers), so each node holds the churn share of its
  customers and its cover their number. Deep trees have pure leaves, which no prior shift moves, so the
  forest is then scaled: every leaf's churn share times ``observed churn rate / mean out-of-bag
  probability`` of the training customers (at most 1). A forest's probability is the average of its
  leaves' shares, so it is scaled by the same factor: a linear map, under which probability-point pushes
  stay exactly additive (each push and the base scale with it). The explainer reads these values and
  covers, so the base value is the model's output averaged over its training customers.
* gradient boosting's tree covers become customer counts too (``n_node_samples``), so its base value
  is an average customer's, not an average over reweighted customers.

Python 3.9, imports nothing of the project.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

ECE_BINS = 10


def figures(y_true, proba, bins: int = ECE_BINS) -> Dict[str, Any]:
    """{"brier", "ece", "reliability": {"predicted", "observed", "customers"}} of probabilities ``proba``."""
    from sklearn.metrics import brier_score_loss

    y = np.asarray(y_true, dtype=int)
    p = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return {"brier": None, "ece": None, "reliability": {"predicted": [], "observed": [], "customers": []}}
    # calibration_curve(strategy="uniform")'s bins: a probability on an edge belongs to the lower bin
    which = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)
    counts = np.bincount(which, minlength=bins)
    sum_p = np.bincount(which, weights=p, minlength=bins)
    sum_y = np.bincount(which, weights=y, minlength=bins)
    used = counts > 0
    predicted = sum_p[used] / counts[used]
    observed = sum_y[used] / counts[used]
    ece = float(np.sum(counts[used] / len(y) * np.abs(predicted - observed)))
    return {"brier": float(brier_score_loss(y, p)), "ece": ece,
            "reliability": {"predicted": [round(float(v), 6) for v in predicted],
                            "observed": [round(float(v), 6) for v in observed],
                            "customers": [int(c) for c in counts[used]]}}


def class_weights(y, weighting: Optional[str]) -> Optional[np.ndarray]:
    """(w0, w1) of ``class_weight="balanced"`` on labels ``y`` (scikit-learn's rule n / (2 n_c)), or None."""
    if weighting != "balanced":
        return None
    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=2).astype(float)
    return len(y) / (2.0 * counts)


def undo_class_weight(model, weights: Optional[np.ndarray], encoded=None, y=None) -> Dict[str, Any]:
    """Correct a fitted classifier (in place) for class weights ``(w0, w1)``; returns what was done
    ({"method": "none"} without weights). See the module docstring for each kind of model."""
    if weights is None:
        return {"method": "none"}
    w0, w1 = float(weights[0]), float(weights[1])
    shift = math.log(w0 / w1)  # log-odds added: the prior shift back to the observed class balance
    kind = type(model).__name__
    if kind in ("LogisticRegression", "GradientBoostingClassifier") and encoded is not None and y is not None:
        shift = _mean_matching_shift(model.decision_function(encoded), np.asarray(y, dtype=float).mean(), shift)
    if kind == "LogisticRegression":
        model.intercept_ = model.intercept_ + shift
        return {"method": "prior_shift", "space": "log_odds", "shift": shift}
    if kind == "GradientBoostingClassifier":
        prior = np.asarray(model.init_.class_prior_, dtype=float)
        logit = math.log(prior[1] / prior[0]) + shift
        p1 = 1.0 / (1.0 + math.exp(-logit))
        model.init_.class_prior_ = np.array([1.0 - p1, p1])
        for tree in model.estimators_[:, 0]:
            tree.tree_.weighted_n_node_samples[:] = tree.tree_.n_node_samples
        return {"method": "prior_shift", "space": "log_odds", "shift": shift}
    if kind == "RandomForestClassifier":
        for estimator in model.estimators_:
            _unweight_tree(estimator.tree_, np.array([w0, w1]))
        scale = _out_of_bag_scale(model, encoded, y)
        for estimator in model.estimators_:
            _scale_tree(estimator.tree_, scale)
        return {"method": "unweighted_leaves_scaled", "space": "probability", "scale": scale}
    raise ValueError("no class-weight correction for %s" % kind)


def _mean_matching_shift(raw, rate: float, start: float) -> float:
    """The log-odds constant s with mean(sigmoid(raw + s)) == rate (Newton from the prior shift ``start``;
    the mean is increasing in s, so this converges): calibration-in-the-large on the training customers."""
    raw = np.asarray(raw, dtype=float)
    s = float(start)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(raw + s)))
        gap = float(p.mean()) - rate
        slope = float((p * (1.0 - p)).mean())
        if abs(gap) < 1e-12 or slope <= 0:
            break
        s -= max(-2.0, min(2.0, gap / slope))
    return s


def _out_of_bag_scale(model, encoded, y) -> float:
    """observed churn rate / mean out-of-bag probability of the training customers, at most 1 (a scale
    never pushes a leaf share above 1); 1 when there is nothing out of bag to measure with."""
    if encoded is None or y is None or not getattr(model, "bootstrap", False):
        return 1.0
    X = encoded.toarray() if hasattr(encoded, "toarray") else np.asarray(encoded)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=float)
    total, seen = np.zeros(len(y)), np.zeros(len(y))
    for estimator, inside in zip(model.estimators_, _bootstrap_samples(model, len(y))):
        out = np.ones(len(y), dtype=bool)
        out[inside] = False
        if out.any():
            total[out] += estimator.predict_proba(X[out])[:, 1]
            seen[out] += 1
    ok = seen > 0
    predicted = float(np.mean(total[ok] / seen[ok])) if ok.any() else 0.0
    return min(1.0, float(np.mean(y[ok])) / predicted) if predicted > 0 else 1.0


def _bootstrap_samples(model, n: int) -> list:
    """Each tree's bootstrap rows: ``estimators_samples_`` (scikit-learn >= 1.4, which draws by sample weight),
    else redrawn from each tree's seed as scikit-learn 1.2 (the SKLearn 1.2-1 container) drew them."""
    samples = getattr(model, "estimators_samples_", None)
    if samples is not None:
        return list(samples)
    from sklearn.ensemble._forest import _generate_sample_indices, _get_n_samples_bootstrap

    n_bootstrap = _get_n_samples_bootstrap(n, model.max_samples)
    return [_generate_sample_indices(tree.random_state, n, n_bootstrap) for tree in model.estimators_]


def _scale_tree(tree, scale: float) -> None:
    """Each node's churn share times ``scale`` (<= 1): a forest's probability, an average of leaf shares,
    is scaled by the same factor, so probability-point pushes scale with it and stay additive."""
    if scale >= 1.0:
        return
    value = tree.value
    total = np.asarray(value[:, 0, :2], dtype=float).sum(axis=1)
    share = np.asarray(value[:, 0, 1], dtype=float) / np.where(total == 0.0, 1.0, total) * scale
    value[:, 0, 1] = share * total
    value[:, 0, 0] = (1.0 - share) * total


def _unweight_tree(tree, weights: np.ndarray) -> None:
    """Each node's weighted class counts back to customer counts: values and covers rewritten in place."""
    value = tree.value  # (nodes, 1, 2): weighted counts (scikit-learn < 1.4) or fractions of the cover
    cover = np.asarray(tree.weighted_n_node_samples, dtype=float)
    counts = np.asarray(value[:, 0, :2], dtype=float)
    if np.allclose(counts.sum(axis=1), 1.0) and not np.allclose(cover, 1.0):
        counts = counts * cover[:, None]
    customers = counts / weights
    total = customers.sum(axis=1)
    total[total == 0.0] = 1.0
    share = customers / total[:, None]
    fractions = np.allclose(np.asarray(value[:, 0, :2]).sum(axis=1), 1.0)
    value[:, 0, :2] = share if fractions else share * total[:, None]
    tree.weighted_n_node_samples[:] = total
