"""Synthetic training frames with the reference schema, made in the test process (no files)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A small frame with the reference schema; churn depends on service calls, day minutes, renewal."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "AccountWeeks": rng.integers(1, 243, n),
            "ContractRenewal": (rng.random(n) < 0.9).astype(int),
            "DataPlan": (rng.random(n) < 0.28).astype(int),
            "DataUsage": np.round(rng.gamma(0.6, 1.3, n).clip(0, 5.4), 2),
            "CustServCalls": rng.poisson(1.5, n),
            "DayMins": np.round(rng.normal(180, 54, n).clip(0, 350), 1),
            "DayCalls": rng.integers(40, 165, n),
            "MonthlyCharge": np.round(rng.normal(56, 16, n).clip(14, 111), 1),
            "OverageFee": np.round(rng.normal(10, 2.5, n).clip(0, 18), 2),
            "RoamMins": np.round(rng.normal(10, 2.8, n).clip(0, 20), 1),
        }
    )
    logit = -5 + 1.6 * frame.CustServCalls + 0.035 * (frame.DayMins - 180) + 3.0 * (1 - frame.ContractRenewal)
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.insert(0, "Churn", churn)
    return frame
