"""An analyst's own data for tests: the synthetic subscription-churn file (an ID column, Yes/No
categories, a numeric column with blanks, a Yes/No target), a model trained on it and a live local
endpoint (conftest's ``own_model`` fixture makes one per test module).
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import pytest

from tests.support.helpers import wait_for_job

DATASET, MODEL, ENDPOINT = "subscription", "sub-rf", "sub-ep"


def workbook(frame: pd.DataFrame, extra_sheet: bool = False) -> bytes:
    """``frame`` as an Excel workbook (first sheet 'customers'), as an analyst's export would come."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="customers", index=False)
        if extra_sheet:
            pd.DataFrame({"note": ["ignored"]}).to_excel(writer, sheet_name="notes", index=False)
    return buffer.getvalue()


@dataclass
class OwnModel:
    platform: object
    csv: bytes
    schema: dict

    def customers(self, rows: int = 40, start: int = 0) -> pd.DataFrame:
        """Customers to score: the file's own rows, every cell as text, without the target."""
        frame = pd.read_csv(io.BytesIO(self.csv), dtype=str, keep_default_na=False)
        return frame.drop(columns=["Churn"]).iloc[start : start + rows].reset_index(drop=True)

    def feature(self, name: str) -> dict:
        return next(f for f in self.schema["features"] if f["name"] == name)


@contextmanager
def own_model_state(tmp_path_factory):
    import churn_core
    from churn_core.data.sample import make_subscription_sample

    state = tmp_path_factory.mktemp("own-data") / "state"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_HOME", str(state))
        env.setenv("CHURN_BACKEND", "local")
        for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
            env.delenv(key, raising=False)
        p = churn_core.connect()
        csv = make_subscription_sample(rows=800, seed=5)
        p.upload_dataset(DATASET, csv, target="Churn")
        p.start_training(DATASET, {"n_estimators": 20}, name=MODEL)
        assert wait_for_job(p, MODEL).status == "Completed"
        p.deploy(MODEL, ENDPOINT)
        try:
            yield OwnModel(p, csv, p.model_schema(MODEL))
        finally:
            p.cleanup()
