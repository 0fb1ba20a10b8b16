"""Decisions on a model's probabilities: the campaign plan, the decision threshold, evaluation on new data."""

from __future__ import annotations

from pathlib import Path

from churn_core.decisions import campaign
from churn_core.decisions.model_runtime import labelled_scores, read_text
from churn_core.endpoints.scoring import read_customers
from churn_core.errors import NotFoundError, ValidationError
from churn_core.paths import entry_module


class DecisionService:
    def __init__(self, catalog, store, datasets, models, training, max_upload_bytes: int):
        self.catalog = catalog
        self.store = store
        self.datasets = datasets
        self.models = models
        self.training = training
        self.max_upload_bytes = max_upload_bytes

    def test_predictions(self, model: str) -> tuple:
        """(outcomes, churn probabilities) of the model's held-out test customers, scored in this process."""
        row = self.models.get(model)
        key = f"test:{row['artifact_sha256']}"
        if key not in self.models.cache:
            try:
                ds = self.datasets.get(row["dataset"])
            except NotFoundError:
                raise NotFoundError(
                    f"The dataset {row['dataset']!r} model {model} was trained on was deleted, so its held-out "
                    "customers are gone. Evaluate it on a labelled file instead.") from None
            text = read_text(self.store.get_bytes(ds.test_key))
            self.models.cache[key] = labelled_scores(self.models.loaded(model), text, "the test split")
        return self.models.cache[key]

    def plan_campaign(self, model: str, offer_cost: float, customer_value: float, save_rate: float,
                      budget: int | None = None, customers: int | None = None,
                      budget_money: float | None = None) -> campaign.CampaignPlan:
        """The threshold that maximises expected retention profit, picked on the out-of-fold predictions of the
        training split that train.py kept (cv_folds > 0; else on the test split, and the plan says so), with
        its figures measured on the held-out test split and scaled to a base of ``customers``."""
        y, p = self.test_predictions(model)
        oof = self.models.loaded(model).get("oof")
        pick = (oof["y"], oof["p"]) if oof else None
        return campaign.plan(y, p, offer_cost, customer_value, save_rate, budget, customers, budget_money, pick)

    def evaluate(self, model: str, data) -> dict:
        """The model on a new labelled file (CSV bytes, a path, or a DataFrame of text): the training evaluation's
        metrics and curves, plus the campaign figures at its threshold, beside the test split's."""
        if isinstance(data, (str, Path)):
            data = Path(data).read_bytes()
        text = data if hasattr(data, "columns") else read_customers(data, self.max_upload_bytes)
        y, p = labelled_scores(self.models.loaded(model), text, "the file")
        if len(set(y.tolist())) < 2:
            raise ValidationError("The file's customers all have the same outcome; evaluation needs some who "
                                  "churned and some who stayed.")
        evaluation = entry_module("model_evaluation")
        threshold = self.models.threshold(model)  # a job's model (a version's own: ThresholdService.at_threshold)
        metrics, curves = evaluation.evaluate(y, p, y, threshold)
        metrics.pop("train_churn_rate", None)
        # the campaign its threshold was planned for (else the defaults), per 1,000 customers so sizes compare
        inputs = {"offer_cost": campaign.DEFAULT_OFFER_COST, "customer_value": campaign.DEFAULT_CUSTOMER_VALUE,
                  "save_rate": campaign.DEFAULT_SAVE_RATE}
        planned = self.models.threshold_record(model).get("campaign") or {}
        inputs.update({k: float(planned[k]) for k in inputs if planned.get(k) is not None})
        money = {"inputs": inputs, "file": campaign.figures_at(y, p, threshold, **inputs, scale=1000 / len(y))}
        try:  # the test split at the same threshold, so label-based figures compare like with like
            y_test, p_test = self.test_predictions(model)
            test_metrics = evaluation.evaluate(y_test, p_test, y_test, threshold)[0]
            test_metrics.pop("train_churn_rate", None)
            money["test_split"] = campaign.figures_at(y_test, p_test, threshold, **inputs, scale=1000 / len(y_test))
        except NotFoundError:  # its dataset was deleted: what training measured (at 0.5)
            test_metrics = self.training.describe(model).metrics
        return {"rows": int(len(y)), "threshold": threshold, "metrics": metrics, "curves": curves,
                "confusion_matrix": campaign.confusion_at(y, p, threshold),
                "gains": campaign.gains_by_decile(y, p), "test_split_metrics": test_metrics, "campaign": money}
