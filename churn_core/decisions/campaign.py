"""From churn probabilities to a retention campaign: whom to call, and what it is expected to earn.

For held-out customers with known outcomes (``y`` 1 = churned) and the model's probabilities
``p``, contacting everyone above a threshold costs ``offer_cost`` per customer contacted and
saves ``save_rate`` of the churners among them, each worth ``customer_value``:

    expected profit = churners caught × save_rate × customer_value − customers contacted × offer_cost

scikit-learn counts the churners caught at every threshold (``precision_recall_curve``) and
draws the reliability curve (``calibration_curve``); the profit arithmetic on top is ours.
Labels everywhere use ``p > threshold`` (scikit-learn's ``predict``: exactly the threshold is
"stay"), so a chosen threshold sits halfway between two scores of the held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churn_core.errors import ValidationError

DEFAULT_OFFER_COST = 20.0  # one retention offer (a discount, a call)
DEFAULT_CUSTOMER_VALUE = 200.0  # what keeping a customer is worth
DEFAULT_SAVE_RATE = 0.3  # share of contacted churners the offer keeps
BANDS = ("high", "medium", "low")


@dataclass
class CampaignPlan:
    threshold: float
    contacted: int
    churners_caught: int
    churners: int
    customers: int
    recall: float
    precision: float
    expected_profit: float
    offer_cost: float
    customer_value: float
    save_rate: float
    budget: int | None
    curve: pd.DataFrame = field(repr=False)  # one row per distinct threshold
    top_k: pd.DataFrame = field(repr=False)  # "contact the top k %", k = 1 … 100

    def explain(self) -> str:
        """The arithmetic in plain words."""
        saved = self.churners_caught * self.save_rate
        return (f"Contact the {self.contacted:,} of {self.customers:,} held-out customers whose churn probability "
                f"is above {self.threshold:.3f}. They include {self.churners_caught:,} of the {self.churners:,} "
                f"churners (recall {self.recall:.0%}, precision {self.precision:.0%}). Saving {self.save_rate:.0%} "
                f"of those keeps {saved:,.1f} customers worth {self.customer_value:,.2f} each "
                f"= {saved * self.customer_value:,.2f}; the offers cost {self.contacted:,} × "
                f"{self.offer_cost:,.2f} = {self.contacted * self.offer_cost:,.2f}; expected profit "
                f"{self.expected_profit:,.2f}.")


def _check_inputs(offer_cost: float, customer_value: float, save_rate: float, budget: int | None) -> None:
    if not (np.isfinite(offer_cost) and offer_cost >= 0):
        raise ValidationError(f"The cost of one offer must be a number ≥ 0 (got {offer_cost!r}).")
    if not (np.isfinite(customer_value) and customer_value > 0):
        raise ValidationError(f"The value of a customer kept must be a number > 0 (got {customer_value!r}).")
    if not (0 < save_rate <= 1):
        raise ValidationError(f"The share of contacted churners the offer saves must be in (0, 1] (got {save_rate!r}).")
    if budget is not None and (int(budget) != budget or budget < 0):
        raise ValidationError(f"The budget is a whole number of customers ≥ 0 (got {budget!r}).")


def profit_curve(y: np.ndarray, p: np.ndarray, offer_cost: float, customer_value: float,
                 save_rate: float) -> pd.DataFrame:
    """Expected profit at every distinct score of the held-out data, from "contact nobody" to "everyone".

    scikit-learn's ``roc_curve`` (all thresholds kept) counts the churners and stayers at or above each
    score; ``threshold`` is the value to store so that ``p > threshold`` contacts exactly those.
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    churners, stayers = int(y.sum()), int(len(y) - y.sum())
    if churners == 0 or stayers == 0:
        raise ValidationError("Planning needs held-out customers of both kinds (some churned, some stayed).")
    fpr, tpr, scores = roc_curve(y, p, drop_intermediate=False)  # scores[0] is +inf: contact nobody
    caught = np.rint(tpr * churners).astype(int)
    contacted = caught + np.rint(fpr * stayers).astype(int)
    lower = np.append(scores[1:], 0.0)
    threshold = np.where(np.isfinite(scores), (scores + lower) / 2.0, 1.0)
    frame = pd.DataFrame({"threshold": threshold, "contacted": contacted, "caught": caught})
    frame["recall"] = frame["caught"] / churners
    frame["precision"] = np.where(contacted > 0, caught / np.maximum(contacted, 1), 0.0)
    frame["expected_profit"] = caught * save_rate * customer_value - contacted * offer_cost
    return frame


def top_k_curve(y: np.ndarray, p: np.ndarray, offer_cost: float, customer_value: float,
                save_rate: float) -> pd.DataFrame:
    """Expected profit of contacting the riskiest k % of customers, k = 1 … 100."""
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    caught_cum = np.cumsum(np.asarray(y, dtype=int)[order])
    n = len(order)
    ks = np.arange(1, 101)
    contacted = np.ceil(ks / 100.0 * n).astype(int)
    caught = caught_cum[contacted - 1] if n else np.zeros_like(ks)
    return pd.DataFrame({"top_percent": ks, "contacted": contacted, "caught": caught,
                         "expected_profit": caught * save_rate * customer_value - contacted * offer_cost})


def plan(y, p, offer_cost: float = DEFAULT_OFFER_COST, customer_value: float = DEFAULT_CUSTOMER_VALUE,
         save_rate: float = DEFAULT_SAVE_RATE, budget: int | None = None) -> CampaignPlan:
    """The threshold that maximises expected profit (among those contacting at most ``budget``)."""
    _check_inputs(offer_cost, customer_value, save_rate, budget)
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    if len(y) == 0 or len(y) != len(p):
        raise ValidationError("Planning needs held-out customers with known outcomes and their probabilities.")
    curve = profit_curve(y, p, offer_cost, customer_value, save_rate)
    allowed = curve if budget is None else curve[curve["contacted"] <= budget]
    best = allowed.loc[allowed["expected_profit"].idxmax()]
    churners = int(y.sum())
    return CampaignPlan(
        threshold=float(best["threshold"]), contacted=int(best["contacted"]), churners_caught=int(best["caught"]),
        churners=churners, customers=len(y), recall=float(best["recall"]), precision=float(best["precision"]),
        expected_profit=float(best["expected_profit"]), offer_cost=float(offer_cost),
        customer_value=float(customer_value), save_rate=float(save_rate), budget=budget, curve=curve,
        top_k=top_k_curve(y, p, offer_cost, customer_value, save_rate),
    )


def gains_by_decile(y, p) -> pd.DataFrame:
    """Cumulative gain (share of all churners in the riskiest deciles) and lift of each decile."""
    y = np.asarray(y, dtype=int)
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    deciles = np.array_split(y[order], 10)
    total = max(int(y.sum()), 1)
    rate = y.mean() if len(y) else 0.0
    rows, cumulative = [], 0
    for i, part in enumerate(deciles, 1):
        cumulative += int(part.sum())
        rows.append({"decile": i, "customers": len(part), "churners": int(part.sum()),
                     "cumulative_gain": cumulative / total,
                     "lift": (part.mean() / rate) if len(part) and rate else 0.0})
    return pd.DataFrame(rows)


def calibration(y, p, bins: int = 10) -> pd.DataFrame:
    """The reliability curve: mean predicted probability vs observed churn rate per bin."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(np.asarray(y, dtype=int), np.asarray(p, dtype=float), n_bins=bins,
                                            strategy="quantile")
    return pd.DataFrame({"predicted": predicted, "observed": observed})


def confusion_at(y, p, threshold: float) -> list[list[int]]:
    """[[stayed, flagged but stayed], [missed churners, caught churners]] at ``p > threshold``."""
    y = np.asarray(y, dtype=int)
    flagged = np.asarray(p, dtype=float) > threshold
    return [[int(((y == 0) & ~flagged).sum()), int(((y == 0) & flagged).sum())],
            [int(((y == 1) & ~flagged).sum()), int(((y == 1) & flagged).sum())]]


def risk_bands(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """high: above the threshold (would be contacted); medium: above half of it (watch); low: the rest."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return np.select([probabilities > threshold, probabilities > threshold / 2.0], ["high", "medium"], "low")


def risk_band(probability: float, threshold: float) -> str:
    """``risk_bands`` of one customer."""
    return str(risk_bands(np.asarray([probability]), threshold)[0])
