"""What a tuning job optimises: a registry of objectives.

An objective reads one number off a finished trial. The built-in ones are metrics ``entry/train.py``
prints as ``name=value`` lines and writes to ``metrics.json``, so they work on both backends (on
SageMaker the tuning job reads them from the log with a ``MetricDefinitions`` regex). Trials are ranked
by the metric **cross-validated inside the training split** (``ranked_by``: ``roc_auc_cv``; every trial
trains with ``cv_folds``), never by the test split, which is reported for the winner only.

**Extension point.** A feature that knows a better measure registers it; the campaign planner's
expected profit is the first (below). Other campaign figures are one more registration::

    from churn_core.tuning.objectives import Objective, register_objective
    register_objective(Objective("profit_vip", "Profit, VIP campaign", "maximize",
                                 score=lambda platform, job: platform.plan_campaign(
                                     job.name, offer_cost=50, customer_value=900).expected_profit))

``score`` is called in the local tuning process with the platform and the finished trial's
``TrainingJob``; it returns the objective (or None when the trial cannot be scored). An objective
with a ``score`` but no ``metric`` is local-only: SageMaker can only tune on numbers the training
script prints, so ``start_tuning`` refuses it there with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from churn_core.errors import ValidationError

DIRECTIONS = ("maximize", "minimize")
CV_SUFFIX = "_cv"  # entry/fitting.py's name for a metric of out-of-fold predictions
TUNING_CV_FOLDS = 3  # every trial's cross-validation inside its training split (unless the user sets cv_folds)


@dataclass(frozen=True)
class Objective:
    name: str
    label: str
    direction: str  # "maximize" | "minimize"
    metric: str | None = None  # a metric of train.py's metrics.json and name=value log lines
    score: Callable[[Any, Any], float | None] | None = None  # (platform, TrainingJob) -> value; local only
    help: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")
        if not self.metric and self.score is None:
            raise ValueError("an objective needs a metric name or a score function")

    @property
    def ranked_by(self) -> str | None:
        """The metric trials are ranked by: this metric cross-validated on the training split (``<metric>_cv``)."""
        return f"{self.metric}{CV_SUFFIX}" if self.metric else None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def value(self, platform: Any, job: Any) -> float | None:
        """The objective of a Completed trial (None: the trial has no such number, e.g. one class in the test)."""
        if self.score is not None:
            result = self.score(platform, job)
        else:
            result = (job.metrics or {}).get(self.ranked_by)
        try:
            return None if result is None else float(result)
        except (TypeError, ValueError):
            return None

    def better(self, a: float, b: float) -> bool:
        """True if ``a`` beats ``b``."""
        return a > b if self.maximize else a < b


_REGISTRY: dict[str, Objective] = {}


def register_objective(objective: Objective, replace: bool = False) -> Objective:
    if objective.name in _REGISTRY and not replace:
        raise ValueError(f"objective {objective.name!r} is already registered")
    _REGISTRY[objective.name] = objective
    return objective


for _builtin in (
    Objective("roc_auc", "ROC AUC", "maximize", metric="roc_auc",
              help="How well the model ranks churners above the others, whatever the threshold."),
    Objective("f1", "F1", "maximize", metric="f1",
              help="Balance of precision and recall at the model's threshold."),
    Objective("log_loss", "Log loss", "minimize", metric="log_loss",
              help="How well calibrated the churn probabilities are (lower is better)."),
    Objective("pr_auc", "PR AUC", "maximize", metric="pr_auc",
              help="Precision over recall, for rare churn."),
):
    register_objective(_builtin)


def _expected_profit(platform: Any, job: Any) -> float | None:
    """The campaign planner's expected retention profit at its best threshold, on the out-of-fold predictions of
    the trial's training split the threshold was picked on (None for a trial without them)."""
    return platform.plan_campaign(job.name).picked_profit


def _profit_help() -> str:
    from churn_core.decisions.campaign import DEFAULT_CUSTOMER_VALUE, DEFAULT_OFFER_COST, DEFAULT_SAVE_RATE

    return (f"The campaign planner's expected profit at its best threshold, on the training split's out-of-fold "
            f"predictions (cross-validation; the test split is reported for the winner only), with its "
            f"default figures (offer {DEFAULT_OFFER_COST:g}, customer value {DEFAULT_CUSTOMER_VALUE:g}, save rate "
            f"{DEFAULT_SAVE_RATE:.0%}). Computed by this app after each trial: local backend only.")


register_objective(Objective("expected_profit", "Expected campaign profit", "maximize", score=_expected_profit,
                             help=_profit_help()))


def objectives() -> dict[str, Objective]:
    return dict(_REGISTRY)


def get_objective(name: str, needs_metric: bool = False) -> Objective:
    """The objective called ``name``; ``needs_metric``: the backend can only read metrics off the log."""
    objective = _REGISTRY.get(str(name).strip().lower())
    if objective is None:
        raise ValidationError(f"Unknown objective {name!r}. Choose one of: {', '.join(_REGISTRY)}.")
    if needs_metric and not objective.metric:
        raise ValidationError(
            f"The objective {objective.label} is computed by this app after training, which a SageMaker tuning "
            "job cannot do (it reads the objective off the training log). Tune it on the local backend, or pick "
            f"one of: {', '.join(n for n, o in _REGISTRY.items() if o.metric)}."
        )
    return objective


__all__ = ["Objective", "register_objective", "objectives", "get_objective", "DIRECTIONS"]
