"""Text for tables, cards and badges: statuses in the product's words, metrics, durations, times.

Every page shows a status, a score or a time through these, so they read the same everywhere."""

from __future__ import annotations

import time

import pandas as pd

from churn_core import wording

# Badge colour and material icon per status (emoji render as empty boxes where no emoji font is installed).
STATUS_STYLE = {
    "InProgress": ("blue", "progress_activity"), "Completed": ("green", "check_circle"), "Failed": ("red", "error"),
    "Stopping": ("orange", "pending"), "Stopped": ("gray", "stop_circle"), "Creating": ("blue", "progress_activity"),
    "InService": ("green", "check_circle"), "Deleting": ("orange", "pending"), "Updating": ("blue", "sync"),
}
METRIC_LABELS = {
    "roc_auc": "ROC AUC", "pr_auc": "PR AUC", "f1": "F1", "accuracy": "Accuracy",
    "precision": "Precision", "recall": "Recall", "log_loss": "Log loss",
}
OTHER_METRIC_LABELS = {"train_churn_rate": "Churn rate (train)", "test_churn_rate": "Churn rate (test)"}
BEST_BY = "roc_auc"  # the model marked best: highest ROC AUC on the test split
BEST_MARK = "★ best"
BEST_ROW = "Best"


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """``1 version``, ``2 versions``: a count with its noun in the right number, worded as core messages word it."""
    return wording.plural(n, noun, plural)


def metric_text(value: float | None) -> str:
    """A metric as every table and card on the page shows it: 3 decimals, or a dash while there is none."""
    return "—" if value is None else f"{value:.3f}"


def hyperparameter_rows(algorithm: str, values: dict) -> list[dict]:
    """The job's settings in the form's words, with the technical name beside each."""
    from churn_core.training.hyperparameters import ALGORITHMS

    params = ALGORITHMS.get(algorithm, {}).get("params", [])
    rows = [{"setting": "Algorithm", "value": ALGORITHMS.get(algorithm, {}).get("label", algorithm),
             "technical name": "algorithm"}]
    for param in params:
        value = values.get(param.name)
        shown = "no limit" if value is None else param.choice_text(value) if param.kind == "choice" else f"{value:g}" \
            if isinstance(value, float) else str(value)
        rows.append({"setting": param.title, "value": shown, "technical name": param.name})
    return rows


def comparison_frame(rows: list[dict]) -> pd.DataFrame:
    """``Platform.compare`` rows as a table in plain words, one column per job: the best job (highest ROC
    AUC on the test split) marked, the algorithm and dataset, every score at 3 decimals, then each setting
    (in the form's words; "—" where the job's algorithm has no such setting), so jobs are read side by side
    without scrolling sideways."""
    from churn_core.training.hyperparameters import ALGORITHMS

    best = max((r for r in rows if r.get(BEST_BY) is not None), key=lambda r: r[BEST_BY], default=None)
    titles: dict[str, list[str]] = {}
    for r in rows:
        for param in ALGORITHMS.get(r["algorithm"], {}).get("params", []):
            if param.title not in titles.setdefault(param.name, []):
                titles[param.name].append(param.title)
    labels = {name: " / ".join(names) for name, names in titles.items()}
    columns = {}
    for r in rows:
        column = {BEST_ROW: BEST_MARK if r is best else "",
                  "Algorithm": ALGORITHMS.get(r["algorithm"], {}).get("label", r["algorithm"]),
                  "Dataset": r["dataset"]}
        column.update({label: metric_text(r.get(key)) for key, label in METRIC_LABELS.items()})
        column.update({label: "—" if r.get(key) is None else f"{r[key]:.1%}"  # rates as every page shows them
                       for key, label in OTHER_METRIC_LABELS.items()})
        settings = {row["technical name"]: row["value"]
                    for row in hyperparameter_rows(r["algorithm"], r.get("hyperparameters", {}))}
        column.update({labels[name]: settings.get(name, "—") for name in labels})
        columns[r["job"]] = column
    return pd.DataFrame(columns)


# The product's words for SageMaker's states (the records keep SageMaker's; tables name them in help).
STATUS_WORDS = {
    "InProgress": "Running", "InService": "In service", "Completed": "Completed", "Failed": "Failed",
    "Stopping": "Stopping", "Stopped": "Stopped", "Creating": "Creating", "Deleting": "Deleting",
    "Updating": "Updating",
}
STEP_WORDS = {
    "Starting": "starting", "Pending": "waiting for a free slot", "Downloading": "loading the data",
    "Training": "training", "Uploading": "saving the model", "Stopping": "stopping",
    "MaxRuntimeExceeded": "time limit reached", "Interrupted": "interrupted",
}
STATUS_HELP = ("In SageMaker's words: Running = InProgress, In service = InService; the others are the same "
               "words.")


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, status)


def status_label(status: str, secondary: str = "") -> str:
    """Plain status for table cells and text: ``Running · training``."""
    extra = ""
    if secondary and secondary != status and status_words(secondary) != status_words(status):
        extra = f" · {STEP_WORDS.get(secondary, secondary.lower())}"
    return f"{status_words(status)}{extra}"


def status_badge(status: str, secondary: str = "") -> str:
    """The status as a coloured Markdown badge with an icon, for headings and text."""
    color, icon = STATUS_STYLE.get(status, ("gray", "help"))
    return f":{color}-badge[:material/{icon}: {status_label(status, secondary)}]"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def threshold_text(threshold: float | None) -> str:
    """A model's decision threshold as tables show it; none chosen means the trained default, said so."""
    return f"{threshold:.3f}" if threshold is not None else "0.500 (default)"


def when(epoch: float | None) -> str:
    return "—" if not epoch else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


MEASURES = {"psi": "population stability index", "ks": "Kolmogorov–Smirnov", "linf": "L-infinity distance",
            "unseen": "share of unseen categories", "missing_change": "change of missing share"}


def drift_table(report: pd.DataFrame) -> pd.DataFrame:
    """A drift report in words, the drifted features first (as the report is ordered)."""
    return pd.DataFrame({
        "feature": report["feature"], "measure": report["metric"].map(lambda m: MEASURES.get(m, m)),
        "value": report["value"].round(4), "threshold": report["threshold"],
        "drifted": (report["verdict"].replace({"ok": ""}) if "verdict" in report  # a report from before verdicts
                    else report["drifted"].map({True: "drifted", False: ""})),
        "customers": report["n"] if "n" in report else None,
    })


def schema_rows(features: list[dict]) -> pd.DataFrame:
    """A dataset's typed columns in plain words, numbers at the precision the file writes them."""
    from churn_core.endpoints.forms import number_text

    rows = []
    for f in features:
        decimals = int(f.get("decimals") or 0)
        if f["kind"] == "numeric":
            seen = f"{number_text(f.get('min'), decimals)} to {number_text(f.get('max'), decimals)}"
            typical = f"median {number_text(f.get('median'), decimals)}"
        else:
            categories = list(f.get("categories") or [])
            seen = ", ".join(categories[:6]) + (f" and {len(categories) - 6} more" if len(categories) > 6 else "")
            typical = f"most common: {categories[0]}" if categories else "—"
        rows.append({"column": f["name"], "kind": "number" if f["kind"] == "numeric" else "category",
                     "values seen": seen, "typical": typical, "distinct": int(f.get("unique") or 0),
                     "blank cells": int(f.get("missing") or 0)})
    return pd.DataFrame(rows)
