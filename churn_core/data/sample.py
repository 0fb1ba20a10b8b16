"""A synthetic churn CSV with the reference schema, so the app works out of the box.

The rows are generated, not real customers: ``make_sample`` draws each column from a
distribution whose mean, spread and range follow the reference telecom churn table
(``shared/data/README.md``), and draws churn from a logistic model of a few of them
(many customer-service calls, no contract renewal, high daytime minutes, no data plan,
plus noise). The project ships no copy of the reference file; this is its stand-in.
"""

from __future__ import annotations

import numpy as np

from churn_core.errors import ValidationError

COLUMNS = [
    "Churn",
    "AccountWeeks",
    "ContractRenewal",
    "DataPlan",
    "DataUsage",
    "CustServCalls",
    "DayMins",
    "DayCalls",
    "MonthlyCharge",
    "OverageFee",
    "RoamMins",
]

# Reference min/max per column (shared/data/README.md); generated values are clipped to these.
RANGES = {
    "Churn": (0, 1),
    "AccountWeeks": (1, 243),
    "ContractRenewal": (0, 1),
    "DataPlan": (0, 1),
    "DataUsage": (0.0, 5.40),
    "CustServCalls": (0, 9),
    "DayMins": (0.0, 350.8),
    "DayCalls": (0, 165),
    "MonthlyCharge": (14.0, 111.3),
    "OverageFee": (0.0, 18.19),
    "RoamMins": (0.0, 20.0),
}

# Decimals written per column; 0 means an integer column.
DECIMALS = {
    "Churn": 0,
    "AccountWeeks": 0,
    "ContractRenewal": 0,
    "DataPlan": 0,
    "DataUsage": 2,
    "CustServCalls": 0,
    "DayMins": 1,
    "DayCalls": 0,
    "MonthlyCharge": 1,
    "OverageFee": 2,
    "RoamMins": 1,
}

CHURN_RATE = 0.145

SAMPLE_DESCRIPTION = (
    "A synthetic, generated sample of telecom customers with the reference schema "
    "(Churn plus ten numeric features); no real customer data."
)


def _fmt(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(int(value))
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def make_sample(rows: int = 2000, seed: int = 7) -> bytes:
    """Return a synthetic churn CSV (UTF-8, header, ``\\n`` line endings) with the reference schema.

    The data is generated, not real: marginals follow the reference telecom churn table, the
    churn rate is 14.5 % (rounded to whole rows) and churn depends on customer-service calls
    (4 or more), no contract renewal, high daytime minutes and no data plan, with noise, so a
    model has something to learn. The same ``rows`` and ``seed`` always give the same bytes.
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or not 1 <= rows <= 1_000_000:
        raise ValidationError(
            f"The sample size {rows!r} is not allowed. Pick a whole number of rows from 1 to 1,000,000."
        )
    rows = int(rows)
    rng = np.random.default_rng(seed)
    n = rows

    account_weeks = np.rint(rng.normal(101.1, 39.8, n))
    contract_renewal = (rng.random(n) < 0.903).astype(float)
    data_plan = (rng.random(n) < 0.277).astype(float)
    # With a data plan: a few GB a month. Without: zero for three customers in four, a trickle for the rest.
    with_plan = np.clip(rng.normal(2.76, 0.75, n), 0.0, 5.4)
    trickle = np.where(rng.random(n) < 0.25, rng.uniform(0.05, 0.51, n), 0.0)
    data_usage = np.round(np.where(data_plan == 1, with_plan, trickle), 2)
    cust_serv_calls = np.minimum(rng.poisson(1.56, n), 9).astype(float)
    day_mins = np.round(np.clip(rng.normal(179.8, 54.5, n), 0.0, 350.8), 1)
    day_calls = np.rint(rng.normal(100.4, 20.1, n))
    overage_fee = np.round(np.clip(rng.normal(10.05, 2.54, n), 0.0, 18.19), 2)
    roam_mins = np.round(np.clip(rng.normal(10.24, 2.79, n), 0.0, 20.0), 1)
    # The bill follows usage, as in the reference (where a linear fit explains nearly all of it).
    monthly_charge = 0.17 * day_mins + 10.0 * data_usage + 1.7 * overage_fee + 0.5 + rng.normal(0.0, 1.5, n)

    # Churn: a latent logistic score; the CHURN_RATE share of rows with the highest score churn.
    score = (
        2.6 * (cust_serv_calls >= 4)
        + 2.2 * (contract_renewal == 0)
        + 0.9 * (day_mins - 180.0) / 55.0
        + 1.8 * np.clip((day_mins - 245.0) / 40.0, 0.0, None)
        - 0.8 * data_plan
        + 0.15 * (roam_mins - 10.2) / 2.8
        + rng.logistic(0.0, 0.75, n)
    )
    churned = np.zeros(n)
    n_churn = int(round(CHURN_RATE * n))
    if n_churn:
        churned[np.argsort(-score, kind="stable")[:n_churn]] = 1.0

    values = {
        "Churn": churned,
        "AccountWeeks": account_weeks,
        "ContractRenewal": contract_renewal,
        "DataPlan": data_plan,
        "DataUsage": data_usage,
        "CustServCalls": cust_serv_calls,
        "DayMins": day_mins,
        "DayCalls": day_calls,
        "MonthlyCharge": monthly_charge,
        "OverageFee": overage_fee,
        "RoamMins": roam_mins,
    }
    columns = []
    for name in COLUMNS:
        low, high = RANGES[name]
        decimals = DECIMALS[name]
        clipped = np.round(np.clip(values[name], low, high), decimals)
        columns.append([_fmt(v, decimals) for v in clipped.tolist()])
    lines = [",".join(COLUMNS)]
    lines.extend(",".join(row) for row in zip(*columns, strict=True))
    return ("\n".join(lines) + "\n").encode("utf-8")


SUBSCRIPTION_COLUMNS = [
    "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService", "MultipleLines",
    "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
    "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod", "MonthlyCharges", "TotalCharges", "Churn",
]


def make_subscription_sample(rows: int = 2000, seed: int = 11, target: str = "Churn") -> bytes:
    """A synthetic subscription-churn CSV of another shape than the reference: an ID column, Yes/No
    text categories, a 0/1 flag, numbers, a numeric column with blanks written as a space, and a
    Yes/No target (named ``target``). Generated with numpy; no real customers. Churn follows month-to-
    month contracts, short tenure, fibre internet without tech support and electronic checks, so a
    model has something to learn. Vectorised: a million rows take a few seconds."""
    rng = np.random.default_rng(seed)
    n = int(rows)

    def pick(options: list[str], p: list[float]) -> np.ndarray:
        return np.asarray(options, dtype=object)[rng.choice(len(options), n, p=p)]

    tenure = np.clip(np.rint(rng.exponential(30.0, n)), 0, 72).astype(int)
    contract = pick(["Month-to-month", "One year", "Two year"], [0.55, 0.21, 0.24])
    internet = pick(["DSL", "Fiber optic", "No"], [0.34, 0.44, 0.22])
    phone = pick(["Yes", "No"], [0.9, 0.1])
    multiple = np.where(phone == "No", "No phone service", pick(["Yes", "No"], [0.47, 0.53]))

    def service(p_yes: float) -> np.ndarray:
        return np.where(internet == "No", "No internet service", pick(["Yes", "No"], [p_yes, 1 - p_yes]))

    security, backup, protection, support, tv, movies = (service(p) for p in (0.37, 0.44, 0.44, 0.37, 0.49, 0.5))
    payment = pick(["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"],
                   [0.34, 0.23, 0.22, 0.21])
    monthly = np.round(np.clip(20 + 25 * (internet == "DSL") + 50 * (internet == "Fiber optic")
                               + 5 * (tv == "Yes") + 5 * (movies == "Yes") + rng.normal(0, 4, n), 18.25, 118.75), 2)
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.05, n), 2)
    score = (1.4 * (contract == "Month-to-month") - 0.035 * tenure + 0.9 * (internet == "Fiber optic")
             + 0.5 * ((support == "No") & (internet != "No")) + 0.6 * (payment == "Electronic check")
             - 2.2 + rng.logistic(0, 0.8, n))
    churn = np.where(score > 0, "Yes", "No")
    ids = np.char.add(np.char.zfill(rng.integers(0, 10_000, n).astype(str), 4),
                      np.char.add("-", np.arange(n).astype(str)))
    values = {
        "customerID": ids, "gender": pick(["Female", "Male"], [0.5, 0.5]),
        "SeniorCitizen": (rng.random(n) < 0.16).astype(int).astype(str), "Partner": pick(["Yes", "No"], [0.48, 0.52]),
        "Dependents": pick(["Yes", "No"], [0.3, 0.7]), "tenure": tenure.astype(str), "PhoneService": phone,
        "MultipleLines": multiple, "InternetService": internet, "OnlineSecurity": security, "OnlineBackup": backup,
        "DeviceProtection": protection, "TechSupport": support, "StreamingTV": tv, "StreamingMovies": movies,
        "Contract": contract, "PaperlessBilling": pick(["Yes", "No"], [0.59, 0.41]), "PaymentMethod": payment,
        "MonthlyCharges": np.char.mod("%.2f", monthly),
        "TotalCharges": np.where(tenure == 0, " ", np.char.mod("%.2f", total)), "Churn": churn,
    }
    header = [target if c == "Churn" else c for c in SUBSCRIPTION_COLUMNS]
    frame = np.column_stack([np.asarray(values[c], dtype=str) for c in SUBSCRIPTION_COLUMNS])
    body = "\n".join(",".join(row) for row in frame.tolist())
    return (",".join(header) + "\n" + body + "\n").encode("utf-8")


__all__ = ["COLUMNS", "RANGES", "SAMPLE_DESCRIPTION", "SUBSCRIPTION_COLUMNS", "make_sample", "make_subscription_sample"]
