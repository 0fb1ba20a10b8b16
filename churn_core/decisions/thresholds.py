"""The decision threshold belongs to the model that serves it: the one rule, asked everywhere.

A trained model (a job's model) has a threshold until it is registered; a registered version has its own
from then on (registering carries the model's threshold and its record). ``p.set_threshold`` takes a model
name or a version ``("group", n)`` (a number or an alias); every label and risk band, on endpoints (each
production variant's model carries its own ``CHURN_THRESHOLD``), Predict, ``score_batch``, transform output,
the Jobs and Models metrics, is at the threshold of the model (version) that produced the probability.

Setting the threshold of a model (version) that is serving updates its endpoints as ``update_endpoint`` does
(new deployed models, the old ones serve until the new ones are healthy: no request fails); an endpoint that
cannot be updated now (e.g. it is Updating) keeps the older threshold, ``behind`` names it and setting the
threshold again retries.
"""

from __future__ import annotations

import dataclasses
import time

from churn_core.access.roles import os_user
from churn_core.catalog import actor
from churn_core.catalog import jobs as job_records
from churn_core.catalog import registry as version_records
from churn_core.catalog.database import dumps, loads
from churn_core.catalog.endpoint_configs import serving
from churn_core.errors import ChurnError, ValidationError
from churn_core.paths import entry_module
from churn_core.registry.model_registry import version_key

HISTORY_KEPT = 100  # earlier choices kept in a threshold's record (newest last)


class ThresholdService:
    def __init__(self, catalog, models, registry, rollout, decisions):
        self.catalog = catalog
        self.models = models
        self.registry = registry
        self.rollout = rollout
        self.test_predictions = decisions.test_predictions  # the held-out customers' (outcome, probability)

    # ---- whose threshold -----------------------------------------------------------------------
    def owner(self, model_or_version) -> tuple[dict, object]:
        """(the trained model's row, the registry version or None) of a model name or ``(group, n)``."""
        if isinstance(model_or_version, (tuple, list)):
            if len(model_or_version) != 2:
                raise ValidationError(f"A registered version is given as (group, version), e.g. ('churn', 1) or "
                                      f"('churn', 'champion'); got {model_or_version!r}.")
            version = self.registry.get(str(model_or_version[0]), model_or_version[1])
            return self.models.get(version.model), version
        return self.models.get(model_or_version), None

    def model_name(self, model_or_version) -> str:
        """The trained model whose probabilities a model name or a version gives."""
        return self.owner(model_or_version)[0]["name"]

    @staticmethod
    def label(trained: dict, version) -> str:
        return version.label if version is not None else f"model {trained['name']}"

    def threshold(self, model_or_version) -> float:
        """The threshold in force: the version's own (once registered), the model's; else its schema's (0.5)."""
        trained, version = self.owner(model_or_version)
        if version is None:
            return self.models.threshold(trained["name"])
        if version.threshold is not None:
            return float(version.threshold)
        return float(self.models.schema(trained["name"]).get("threshold", 0.5))

    def record(self, model_or_version) -> dict:
        """Who chose the threshold, when, why, with which campaign inputs, and the earlier choices (``history``);
        {} when never chosen."""
        trained, version = self.owner(model_or_version)
        if version is None:
            return self.models.threshold_record(trained["name"])
        row = version_records.version(self.catalog, version.group, version.version) or {}
        return loads(row.get("threshold_json"), {}) or {}

    def described(self, model_or_version) -> dict:
        """``record``, with ``endpoints_behind`` when some endpoints serve the model (version) at an older threshold
        (an update that could not run then: setting the threshold again retries it)."""
        behind = self.behind(model_or_version)
        return dict(self.record(model_or_version), **({"endpoints_behind": behind} if behind else {}))

    # ---- setting it --------------------------------------------------------------------------
    def set(self, model_or_version, threshold: float, note: str | None = None, plan=None) -> float:
        """Store the threshold with its owner; the endpoints serving that owner are updated to it."""
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValidationError(f"A threshold is a probability between 0 and 1 (got {threshold!r}).") from None
        if not 0.0 <= threshold <= 1.0:
            raise ValidationError(f"A threshold is a probability between 0 and 1 (got {threshold}).")
        trained, version = self.owner(model_or_version)
        previous = self.record(model_or_version)
        record = {"threshold": threshold, "owner": self.label(trained, version), "set_at": time.time(),
                  "set_by": actor.current() or os_user(), "note": note or ""}
        if plan is not None:
            inputs = {f.name: _scalar(getattr(plan, f.name)) for f in dataclasses.fields(plan)}
            record["campaign"] = {k: v for k, v in inputs.items() if isinstance(v, (int, float, str, bool, type(None)))}
        earlier = [{k: v for k, v in previous.items() if k != "history"}] if previous else []
        record["history"] = ((previous.get("history") or []) + earlier)[-HISTORY_KEPT:]
        message = f"decision threshold set to {threshold:.4f}" + (f": {note}" if note else "")
        registered = self.registry.versions_of_model(trained["name"]) if version is None else []
        if registered:  # said, not silent: they serve at their own thresholds
            message += f" (its registered versions keep their own: {', '.join(v.label for v in registered)})"
        if version is None:
            job_records.set_threshold(self.catalog, trained["name"], threshold, record, message)
        else:
            version_records.set_threshold(self.catalog, version.group, version.version, threshold, dumps(record),
                                          version_key(version.group, version.version), message)
        for endpoint in self.behind(model_or_version):
            try:
                self.rollout.redeploy(endpoint)
            except ChurnError as exc:  # it keeps serving the older threshold; ``behind`` names it
                self.catalog.event("endpoint", endpoint, f"still labels at the older threshold of "
                                                         f"{self.label(trained, version)}: {exc}")
        return threshold

    def behind(self, model_or_version) -> list[str]:
        """Endpoints serving the model (version) at another threshold than the one in force."""
        trained, version = self.owner(model_or_version)
        now = self.threshold(model_or_version)
        default = float(self.models.schema(trained["name"]).get("threshold", 0.5))
        rows = serving(self.catalog, trained["name"], version.group if version is not None else "",
                       version.version if version is not None else None)
        return sorted({r["endpoint"] for r in rows
                       if abs((default if r["threshold"] is None else float(r["threshold"])) - now) > 1e-12})

    # ---- figures at the threshold in force ---------------------------------------------------------
    def evaluation(self, model_or_version) -> dict:
        """A completed job's evaluation (training's, at 0.5 for label-based figures) with ``at_threshold``: the
        test split's metrics and confusion matrix at the threshold in force (ROC AUC, PR AUC, log loss do not
        depend on it)."""
        trained, _ = self.owner(model_or_version)
        evaluation = dict(self.models.evaluation(trained["name"]))
        evaluation["at_threshold"] = self.at_threshold(model_or_version)
        return evaluation

    def at_threshold(self, model_or_version) -> dict:
        """{"threshold", "metrics", "confusion_matrix"} of the held-out test split at the threshold in force."""
        from churn_core.decisions.campaign import confusion_at

        threshold = self.threshold(model_or_version)
        try:
            y, p = self.test_predictions(self.model_name(model_or_version))
        except ChurnError:  # its dataset was deleted: no held-out customers to count again
            return {"threshold": threshold, "metrics": {}, "confusion_matrix": None}
        metrics = entry_module("model_evaluation").evaluate(y, p, y, threshold)[0]
        metrics.pop("train_churn_rate", None)
        return {"threshold": threshold, "metrics": metrics, "confusion_matrix": confusion_at(y, p, threshold)}


def _scalar(value):
    """A numpy scalar as the Python number it holds (a plan's counts may be numpy integers)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
