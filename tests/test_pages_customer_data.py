"""Customer data on the pages (AppTest): Settings lists every place customer rows live with the retention in
force; the Data page deletes a dataset with everything derived from it when asked."""

from __future__ import annotations

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.support.pages import button, open_page, texts


def test_settings_lists_customer_data_and_the_data_page_deletes_with_everything_derived(home, monkeypatch):
    monkeypatch.setenv("CHURN_DATA_RETENTION_DAYS", "90")
    p = churn_core.connect()
    p.upload_dataset("kept-here", make_subscription_sample(300, seed=1))
    at = open_page("settings")
    assert "Customer data" in [h.value for h in at.subheader]
    assert "Data older than 90 days is deleted" in texts(at, "caption")
    table = next(frame.value for frame in at.dataframe if "place" in frame.value.columns)
    assert set(table["place"]) == {"upload", "train split", "test split"}
    assert set(table["dataset"]) == {"kept-here"}

    at = open_page("data")
    button(at, "Delete dataset kept-here").click().run()
    at.checkbox(key="delete_derived").check().run()
    button(at, "Yes, delete").click().run()
    assert not at.exception, at.exception
    assert p.list_datasets() == []
    assert any("everything derived" in e["message"] for e in p.events(kind="dataset", name="kept-here"))
    assert p.customer_data().empty


def test_the_endpoints_page_sets_the_capture_budget_and_says_when_capture_is_paused(subs_rf):
    from tests.support.helpers import wait_until

    p = subs_rf
    p.deploy("subs-rf", "paused-ep")
    at = open_page("endpoints")  # capture is set beside the endpoint it belongs to
    at.slider(key="capture_percent_paused-ep").set_value(100)
    at.number_input(key="capture_mb_paused-ep").set_value(0.1)  # MB: smaller than one request of 300 customers
    at.number_input(key="capture_days_paused-ep").set_value(5)
    button(at, "Save capture setting").click().run()
    assert not at.exception, at.exception
    ep = p.describe_endpoint("paused-ep")
    assert (ep.capture_percent, ep.capture_max_mb, ep.capture_retention_days) == (100, 0.1, 5)
    customers = p.read_dataset("subs", "raw").drop(columns=["Churn"]).head(300).astype(str)
    p.invoke("paused-ep", {"instances": customers.to_dict("records")})
    wait_until(lambda: p.describe_endpoint("paused-ep").stats["capture"]["dropped_requests"] == 1, 30,
               what="the request dropped")
    at = open_page("endpoints")
    assert "Capture is paused: the capture budget of 0.1 MB is used up" in texts(at, "warning")
    assert "Not captured (a bound was reached): 1 request, 300 customer rows" in texts(at, "caption")
