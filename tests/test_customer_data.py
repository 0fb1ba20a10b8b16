"""Customer data with a lifecycle (issue 25, item 8): every place customer rows live is listed, deleting a
dataset with everything derived leaves no customer ID of it in any file (archives and pickles opened) or
object, models and registry versions stay as metadata, an audit event says what went, and a retention in
days does the same by age on connect."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

import churn_core
from churn_core import ValidationError
from churn_core.config import Settings
from churn_core.data.sample import make_subscription_sample
from churn_core.errors import ConflictError
from tests.support.customer_ids import files_under, holding_ids, objects_in, with_traceable_ids
from tests.support.helpers import wait_until

DAY = 86_400.0


def customers_of(csv: bytes, rows: int) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False).drop(columns=["Churn"]).head(rows)


def capture_line_of(records: list[dict]) -> str:
    from churn_core.monitoring.capture import capture_line

    answer = json.dumps({"predictions": [{"label": 0, "churn_probability": 0.2} for _ in records]}).encode()
    return capture_line(json.dumps({"instances": records}).encode(), "application/json", answer,
                        "application/json")


def test_delete_dataset_with_everything_derived_leaves_no_customer_id_on_disk(train, home):
    csv, ids = with_traceable_ids(make_subscription_sample(600, seed=9))
    other_csv, other_ids = with_traceable_ids(make_subscription_sample(300, seed=2), seed=3)
    p = train("traced", csv, "traced-rf", n_estimators=10)
    p.upload_dataset("other", other_csv)
    p.register("traced-rf", group="traced")
    p.start_transform("traced-rf", csv, name="traced-batch", keep_columns=["customerID"])
    done = wait_until(lambda: (j := p.describe_transform("traced-batch")).status != "InProgress" and j, 90)
    assert done.status == "Completed", done.failure_reason
    p.deploy("traced-rf", "traced-ep")
    p.set_capture("traced-ep", 100)
    p.invoke("traced-ep", {"instances": customers_of(csv, 30).to_dict("records")})
    p.score_batch("traced-ep", customers_of(csv, 60))
    wait_until(lambda: len(p.captured("traced-ep")) >= 30, 30, what="capture written")
    leftover = home / "jobs" / "traced-rf" / "input" / "data" / "train"  # what a crashed job leaves
    leftover.mkdir(parents=True)
    leftover.joinpath("train.csv").write_bytes(p.store.get_bytes(p.get_dataset("traced").train_key))

    data = p.customer_data()
    assert list(data.columns) == ["place", "dataset", "rows", "bytes", "oldest", "location"]
    traced = data[data["dataset"] == "traced"]
    assert {"upload", "train split", "test split", "training job input", "transform input", "transform output",
            "capture"} <= set(traced["place"])
    assert (traced["bytes"] > 0).all() and traced["oldest"].notna().all()
    assert int(traced.loc[traced["place"] == "upload", "rows"].iloc[0]) == 600
    assert int(traced.loc[traced["place"] == "transform input", "rows"].iloc[0]) == 600
    assert set(data[data["dataset"] == "other"]["place"]) == {"upload", "train split", "test split"}
    assert holding_ids(files_under(home), ids)  # the IDs are there before

    with pytest.raises(ConflictError, match="traced-ep .*still captures"):
        p.delete_dataset("traced", derived=True)  # refused while an endpoint of its model captures
    assert p.get_dataset("traced")
    p.cleanup()  # "Clean up all endpoints": captured rows, transforms and copies are all still there
    assert holding_ids(files_under(home), ids)

    gone = p.delete_dataset("traced", derived=True)
    assert gone["endpoints"] == ["traced-ep"] and gone["transforms"] == ["traced-batch"]
    assert holding_ids(files_under(home), ids) == {}
    assert holding_ids(files_under(home), other_ids)  # another dataset is untouched
    assert p.get_model("traced-rf")["dataset"] == "traced"  # models and versions stay as metadata
    assert [v.version for v in p.list_versions("traced")] == [1]
    assert p.customer_data().query("dataset == 'traced'").empty
    (event,) = [e for e in p.events(kind="dataset", name="traced") if "everything derived" in e["message"]]
    assert "3 transform files" in event["message"] and "captures of traced-ep" in event["message"]


def test_retention_on_connect_deletes_what_is_older_and_keeps_the_rest(platform, home, monkeypatch):
    old_csv, old_ids = with_traceable_ids(make_subscription_sample(200, seed=4), seed=5)
    new_csv, new_ids = with_traceable_ids(make_subscription_sample(200, seed=6), seed=7)
    platform.upload_dataset("old-data", old_csv)
    platform.upload_dataset("new-data", new_csv)
    platform.catalog.update("datasets", "old-data", created_at=time.time() - 40 * DAY)
    bucket = Path(platform.store.root)
    old_hour = time.gmtime(time.time() - 40 * DAY)
    stale = bucket / "capture" / "gone-ep" / "AllTraffic" / time.strftime("%Y/%m/%d/%H", old_hour) / "a-1.jsonl"
    fresh = bucket / "capture" / "gone-ep" / "AllTraffic" / time.strftime("%Y/%m/%d/%H", time.gmtime()) / "b-1.jsonl"
    for path, rows in ((stale, customers_of(new_csv, 5)), (fresh, customers_of(new_csv, 5))):
        path.parent.mkdir(parents=True)
        path.write_text(capture_line_of(rows.to_dict("records")))
    forty_days_ago = time.time() - 40 * DAY
    os.utime(stale, (forty_days_ago, forty_days_ago))

    churn_core.connect()  # no retention set: datasets stay; a gone endpoint's captures get capture's 30 days
    assert {d.name for d in platform.list_datasets()} == {"old-data", "new-data"}
    assert not stale.exists() and fresh.exists()

    monkeypatch.setenv("CHURN_DATA_RETENTION_DAYS", "30")
    p = churn_core.connect()
    assert [d.name for d in p.list_datasets()] == ["new-data"]
    assert holding_ids(files_under(home), old_ids) == {}
    assert holding_ids(files_under(home), new_ids)
    assert any("retention of 30 days" in e["message"] for e in p.events(kind="dataset", name="old-data"))
    assert "Customer data retention (CHURN_DATA_RETENTION_DAYS)" in p.settings.public_view()


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_retention_that_is_not_a_number_of_days_is_refused(value):
    with pytest.raises(ValidationError, match="CHURN_DATA_RETENTION_DAYS"):
        Settings.from_env({"CHURN_DATA_RETENTION_DAYS": value})
    assert Settings.from_env({"CHURN_DATA_RETENTION_DAYS": "7.5"}).data_retention_days == 7.5
    assert Settings.from_env({}).data_retention_days == 0


@pytest.mark.aws
def test_on_sagemaker_the_bucket_keeps_no_customer_id_of_a_dataset_deleted_with_everything_derived(
        platform, model_tarballs):
    from tests.support.aws import BUCKET, aws_client, completed_jobs

    csv, ids = with_traceable_ids(make_subscription_sample(300, seed=11))
    completed_jobs(platform, csv, model_tarballs, "ds-rf")
    s3 = aws_client("s3")
    rows = customers_of(csv, 8).to_dict("records")
    s3.put_object(Bucket=BUCKET, Key="churn/capture/ds-ep/endpoint.json", Body=json.dumps({"model": "ds-rf"}))
    s3.put_object(Bucket=BUCKET, Key="churn/capture/ds-ep/AllTraffic/2026/01/02/03/x.jsonl",
                  Body=capture_line_of(rows).encode())
    data = platform.customer_data()
    assert {"upload", "train split", "test split", "capture"} <= set(data[data["dataset"] == "ds"]["place"])
    assert holding_ids(objects_in(s3, BUCKET), ids)

    gone = platform.delete_dataset("ds", derived=True)
    assert gone["endpoints"] == ["ds-ep"]
    assert holding_ids(objects_in(s3, BUCKET), ids) == {}
    assert platform.describe_training("ds-rf").status == "Completed"  # the model stays as metadata
    assert platform.customer_data().empty
