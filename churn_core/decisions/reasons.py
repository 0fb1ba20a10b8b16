"""Reasons in an analyst's words: a prediction's ``reasons`` (from ``entry/explanations``) and a
model's held-out feature effects turned into sentences, short labels and rows for charts.

The numbers stay exact (they sum to the model's output with the base value); only the words are
made here. A push in the ``probability`` space reads as percentage points of churn risk; in the
``log_odds`` space (gradient boosting, logistic regression) as a change of the log-odds.
"""

from __future__ import annotations


import pandas as pd

from churn_core.paths import entry_module

_words = entry_module("explanations")  # one way to word a reason, here and in the model server
NO_REASONS = _words.NO_REASONS  # the endpoint's words when an explainer is refused
value_text = _words.value_text
push_text = _words.push_text
reason_label = _words.reason_label


def reason_sentence(reason: dict, space: str) -> str:
    """``Contract = Month-to-month raises the churn risk (+12.3 pts)``."""
    verb = "raises" if reason["contribution"] > 0 else "lowers" if reason["contribution"] < 0 else "does not move"
    return f"{reason_label(reason)} {verb} the churn risk ({push_text(reason['contribution'], space)})"


def top_reason(explained: dict | None) -> str:
    """The strongest push of one prediction's ``reasons`` block, for a "top reason" column."""
    if not explained or not explained.get("reasons"):
        return ""
    return _words.reason_text(explained["reasons"][0], explained["space"])


def reasons_frame(explained: dict) -> pd.DataFrame:
    """Rows for a signed bar chart: each shown reason, then everything else summed as "all other columns"."""
    rows = [{"reason": reason_label(r), "push": float(r["contribution"]),
             "words": reason_sentence(r, explained["space"])} for r in explained["reasons"]]
    if abs(float(explained.get("other") or 0.0)) > 0:
        rows.append({"reason": "all other columns", "push": float(explained["other"]),
                     "words": f"the other columns together ({push_text(explained['other'], explained['space'])})"})
    return pd.DataFrame(rows, columns=["reason", "push", "words"])


METHODS = {"tree_shap": "TreeSHAP", "linear_shap": "linear SHAP"}


def baseline_sentence(explained: dict) -> str:
    """Where the pushes start from and where they end, in the response's space, and by which method."""
    method = METHODS.get(explained["method"], explained["method"])
    # The base is the model's output averaged over its training customers (for a forest, those each tree was
    # grown on; class weights undone, entry/calibration.py), not the churn rate and not any one customer.
    if explained["space"] == "probability":
        return (f"Averaged over the customers it was trained on, the model says {explained['base']:.1%}; this "
                f"customer's values add up to {explained['output']:.1%} (exact contributions, {method}).")
    return (f"Averaged over the customers it was trained on, the model says log-odds {explained['base']:+.2f}; "
            f"this customer's values add up to {explained['output']:+.2f} (exact contributions, {method}; the "
            "probability is its logistic).")


def effect_sentence(effect: dict) -> str:
    """What a feature does on the held-out customers: ``higher raises risk`` for a number; for a
    category, the value that raises it most and the one that lowers it most."""
    if "direction" in effect:
        return effect["direction"]
    parts = []
    if effect.get("raises") is not None:
        parts.append(f"{effect['raises']} raises risk")
    if effect.get("lowers") is not None:
        parts.append(f"{effect['lowers']} lowers it")
    return ", ".join(parts) or "no value moves risk much"


def effects_frame(effects: list[dict]) -> pd.DataFrame:
    """A model's feature effects, strongest first: the mean size of the push and which values raise risk."""
    return pd.DataFrame([{"feature": e["feature"], "mean push": float(e["mean_abs_push"]),
                          "which values raise risk": effect_sentence(e),
                          "sign": 1 if e.get("direction") == "higher raises risk" else
                          -1 if e.get("direction") == "higher lowers risk" else 0} for e in effects],
                        columns=["feature", "mean push", "which values raise risk", "sign"])
