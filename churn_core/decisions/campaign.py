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
    curve: pd.DataFrame = field(repr=False)  # one row per distinct threshold (of the test split)
    top_k: pd.DataFrame = field(repr=False)  # "contact the top k %", k = 1 … 100
    held_out: int = 0  # customers of the test split the figures are measured on (0: ``customers``)
    budget_money: float | None = None
    picked_on: str = "the test split"  # where the threshold was chosen (PICKED_ON_FOLDS when honest)
    picked_profit: float | None = None  # the profit where it was picked (out of fold), scaled to ``customers``

    @property
    def scale(self) -> float:
        """Customer base / held-out customers: what the test split's counts and profit are multiplied by."""
        return self.customers / (self.held_out or self.customers)

    def explain(self) -> str:
        """The arithmetic in plain words: where the threshold was picked, what it does on the test split, and
        (for a customer base of another size) the same shares of that base."""
        held = self.held_out or self.customers
        caught, contacted = self.churners_caught / self.scale, self.contacted / self.scale
        saved = caught * self.save_rate
        text = (f"Threshold {self.threshold:.3f}, picked on {self.picked_on}. On the {held:,} held-out customers of "
                f"the test split (never used to pick it) it contacts {contacted:,.0f} whose churn probability is "
                f"above it; they include {caught:,.0f} of the {self.churners / self.scale:,.0f} churners (recall "
                f"{self.recall:.0%}, precision {self.precision:.0%}). Saving {self.save_rate:.0%} of those keeps "
                f"{saved:,.1f} customers worth {self.customer_value:,.2f} each = {saved * self.customer_value:,.2f}; "
                f"the offers cost {contacted:,.0f} × {self.offer_cost:,.2f} = {contacted * self.offer_cost:,.2f}; "
                f"expected profit {self.expected_profit / self.scale:,.2f}.")
        if self.scale != 1.0:
            text += (f" For a customer base of {self.customers:,}: about {self.contacted:,} contacted, "
                     f"{self.churners_caught:,} churners caught, expected profit {self.expected_profit:,.2f}.")
        return text


PICKED_ON_FOLDS = "out-of-fold predictions of the training split"
PICKED_ON_TEST = "the test split: retrain to pick on training folds (cross-validation folds > 0)"


def _check_base(customers: int | None, budget_money: float | None) -> None:
    if customers is not None and (int(customers) != customers or customers < 1):
        raise ValidationError(f"The customer base is a whole number of customers ≥ 1 (got {customers!r}).")
    if budget_money is not None and not (np.isfinite(budget_money) and budget_money >= 0):
        raise ValidationError(f"The budget in money must be a number ≥ 0 (got {budget_money!r}).")


def _check_inputs(offer_cost: float, customer_value: float, save_rate: float, budget: int | None) -> None:
    if not (np.isfinite(offer_cost) and offer_cost >= 0):
        raise ValidationError(f"The cost of one offer must be a number ≥ 0 (got {offer_cost!r}).")
    if not (np.isfinite(customer_value) and customer_value > 0):
        raise ValidationError(f"The value of a customer kept must be a number > 0 (got {customer_value!r}).")
    if not (0 < save_rate <= 1):
        raise ValidationError(f"The share of contacted churners the offer saves must be in (0, 1] (got {save_rate!r}).")
    if budget is not None and (int(budget) != budget or budget < 0):
        raise ValidationError(f"The budget is a whole number of customers ≥ 0 (got {budget!r}).")


def _shortest_between(lower: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Midpoints of neighbouring scores, each rounded to the fewest decimals (3 at least) that keep it in
    [lower, score): shown with 3 decimals and stored as is, it contacts exactly the same customers."""
    with np.errstate(invalid="ignore"):
        middle = (lower + score) / 2.0
        out = middle.copy()
        done = ~np.isfinite(middle)
        for digits in range(3, 18):
            rounded = np.round(middle, digits)
            fits = ~done & (lower <= rounded) & (rounded < score)
            out[fits] = rounded[fits]
            done |= fits
    return out


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
    threshold = np.where(np.isfinite(scores), _shortest_between(lower, scores), 1.0)
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
         save_rate: float = DEFAULT_SAVE_RATE, budget: int | None = None, customers: int | None = None,
         budget_money: float | None = None, pick: tuple | None = None) -> CampaignPlan:
    """The threshold that maximises expected profit (among those contacting at most the budget), reported on
    the held-out customers ``y``/``p``.

    ``pick``: (outcomes, probabilities) to choose the threshold on instead, e.g. out-of-fold predictions of
    the training split, so the test split only reports. ``customers``: the customer base the campaign is for
    (default: the held-out customers); counts and profit are the held-out ones times ``customers / len(y)``,
    and ``budget`` (contacts) and ``budget_money`` (money: ``budget_money / offer_cost`` contacts) are for
    that base."""
    _check_inputs(offer_cost, customer_value, save_rate, budget)
    _check_base(customers, budget_money)
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    if len(y) == 0 or len(y) != len(p):
        raise ValidationError("Planning needs held-out customers with known outcomes and their probabilities.")
    base = int(customers) if customers is not None else len(y)
    limit = None if budget is None else float(budget)
    if budget_money is not None and offer_cost > 0:
        limit = min(limit if limit is not None else np.inf, np.floor(budget_money / offer_cost))
    curve = profit_curve(y, p, offer_cost, customer_value, save_rate)
    y_pick, p_pick = (y, p) if pick is None else (np.asarray(pick[0], dtype=int), np.asarray(pick[1], dtype=float))
    choices = curve if pick is None else profit_curve(y_pick, p_pick, offer_cost, customer_value, save_rate)
    allowed = choices if limit is None else choices[choices["contacted"] * base / len(y_pick) <= limit + 1e-9]
    threshold = float(allowed.loc[allowed["expected_profit"].idxmax(), "threshold"])
    if pick is not None and limit is not None:  # the test split may contact a few more: never above the budget
        while (p > threshold).sum() * base / len(y) > limit + 1e-9:
            threshold = float(curve.loc[curve["threshold"] > threshold, "threshold"].min())
    figures = figures_at(y, p, threshold, offer_cost, customer_value, save_rate)
    scale = base / len(y)
    picked = None if pick is None else figures_at(y_pick, p_pick, threshold, offer_cost, customer_value, save_rate,
                                                  base / len(y_pick))["expected_profit"]
    return CampaignPlan(
        threshold=threshold, contacted=int(round(figures["contacted"] * scale)),
        churners_caught=int(round(figures["caught"] * scale)), churners=int(round(int(y.sum()) * scale)),
        customers=base, recall=figures["recall"], precision=figures["precision"],
        expected_profit=figures["expected_profit"] * scale, offer_cost=float(offer_cost),
        customer_value=float(customer_value), save_rate=float(save_rate), budget=budget, curve=curve,
        top_k=top_k_curve(y, p, offer_cost, customer_value, save_rate), held_out=len(y),
        budget_money=budget_money, picked_on=PICKED_ON_TEST if pick is None else PICKED_ON_FOLDS,
        picked_profit=picked,
    )


def figures_at(y, p, threshold: float, offer_cost: float, customer_value: float, save_rate: float,
               scale: float = 1.0) -> dict:
    """What ``p > threshold`` does on these customers: contacted, caught, recall, precision, expected profit
    (counts and profit times ``scale``, the customer base over these customers). The planner's headline and its
    slider both read this, so they agree."""
    y = np.asarray(y, dtype=int)
    flagged = np.asarray(p, dtype=float) > threshold
    contacted, caught = int(flagged.sum()), int((flagged & (y == 1)).sum())
    return {"contacted": contacted * scale, "caught": caught * scale,
            "recall": caught / max(int(y.sum()), 1), "precision": caught / contacted if contacted else 0.0,
            "expected_profit": (caught * save_rate * customer_value - contacted * offer_cost) * scale}


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
