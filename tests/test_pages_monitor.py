"""The Monitor page (AppTest): capture on, traffic, a drift report with the drifted feature first and its
distributions, the schedule, the history; and the Endpoints table's drift badge."""

from __future__ import annotations

import churn_core
from churn_core.data.sample import make_sample
from tests.support.helpers import wait_for_job, wait_until
from tests.support.pages import button, open_page, texts


def test_monitor_page_captures_reports_drift_and_keeps_history(home):
    p = churn_core.connect()
    p.upload_dataset("telecom", make_sample(3000, seed=2))
    p.start_training("telecom", {"algorithm": "random_forest", "n_estimators": 10}, name="tel")
    assert wait_for_job(p, "tel").status == "Completed"
    p.deploy("tel", "mon-ep")
    try:
        at = open_page("monitor")
        assert "No drift report yet" in texts(at, "info")
        assert "Capture is **off** for mon-ep." in texts(at, "markdown")
        at = open_page("endpoints")  # capture is set beside the endpoint it belongs to
        at.slider(key="capture_percent_mon-ep").set_value(100)
        button(at, "Save capture setting").click().run()
        assert not at.exception, at.exception
        assert "Capturing 100 % of mon-ep's requests" in texts(at, "success")
        frame = p.read_dataset("telecom", "test")
        features = [f["name"] for f in p.model_schema("tel")["features"]]
        rows = [dict(r, CustServCalls=float(r["CustServCalls"]) + 3) for r in frame[features].to_dict("records")]
        for start in range(0, 600, 50):
            for row in rows[start:start + 50]:
                p.invoke("mon-ep", {"instances": [row]})
        wait_until(lambda: len(p.captured("mon-ep")) >= 600, 30, what="600 captured requests")
        at = open_page("monitor")
        button(at, "Run a drift report now").click().run()
        assert not at.exception, at.exception
        assert "Drift in 1 feature: **CustServCalls**" in texts(at, "error")
        table = next(df.value for df in at.dataframe if "measure" in df.value.columns)
        assert table["feature"].iloc[0] == "CustServCalls" and table["drifted"].iloc[0] == "drifted"
        assert at.get("plotly_chart"), "the feature's training and captured distributions"
        history = next(df.value for df in at.dataframe if "drifted features" in df.value.columns)
        assert list(history["drifted features"]) == ["CustServCalls"]
        assert p.drift_badge("mon-ep") == "drift: CustServCalls"
        endpoints = open_page("endpoints")
        assert not endpoints.exception, endpoints.exception
    finally:
        p.cleanup()
