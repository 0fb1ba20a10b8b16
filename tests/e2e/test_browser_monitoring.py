"""Monitoring in a real browser: turn data capture on for an endpoint, score a 1,500-customer file whose
customers have drifted (more service calls) on Predict, run a drift report on the last hour on the Monitor page:
all 1,500 are counted and the drifted feature is flagged, the banner agreeing with the table (issue 25); a
scheduled run that finds nothing to compare says its true cause on Monitor and beside the endpoint."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_sample
from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, button, choose, expect_title, go, grid_cell, main, metric,
                                   upload)
from tests.support.helpers import wait_for_job, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_capture_shifted_traffic_and_see_the_drift(app_server, context, steps, tmp_path):
    platform = churn_core.connect()
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("a-deployed-model-via-api"):  # this test is about monitoring: the endpoint comes from the API
        platform.upload_dataset("telecom", make_sample(rows=3000, seed=8))
        platform.start_training("telecom", {"algorithm": "random_forest", "n_estimators": 15}, name="tel")
        assert wait_for_job(platform, "tel").status == "Completed"
        platform.deploy("tel", "watched", timeout=DEPLOY_TIMEOUT_MS / 1000)

    with steps("turn-capture-on"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Monitor")
        expect(m.get_by_text("No drift report yet")).to_be_visible()
        m.get_by_role("link", name="Change data capture on Endpoints").click()  # capture lives beside its endpoint
        expect_title(page, "Endpoints")
        slider = m.get_by_role("slider", name="Share of requests captured (%)")
        slider.focus()
        page.keyboard.press("End")  # 100 %
        button(page, "Save capture setting").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text="Capturing 100 % of watched's requests")) \
            .to_be_visible()
        assert platform.describe_endpoint("watched").capture_percent == 100

    with steps("score-a-shifted-file-on-predict"):
        frame = pd.read_csv(io.BytesIO(make_sample(rows=1500, seed=41)), dtype=str, keep_default_na=False)
        frame = frame.drop(columns=["Churn"])
        frame["CustServCalls"] = (pd.to_numeric(frame["CustServCalls"]) + 3).astype(str)
        customers = tmp_path / "new-customers.csv"
        frame.to_csv(customers, index=False)
        go(page, "Predict")
        m.get_by_role("tab", name="A file of customers").click()
        upload(page, customers)
        button(page, "Score 1,500 customers").click()
        expect(metric(page, "Scored")).to_have_text("1,500 of 1,500", timeout=120_000)
        wait_until(lambda: len(platform.captured("watched")) >= 1500, 30, what="1,500 captured customers")

    with steps("drift-flagged-on-the-monitor-page"):
        go(page, "Monitor")
        choose(page, "Window", "last hour")
        button(page, "Run a drift report now").click()
        expect(m.get_by_text("Report on the last hour: 1,500 captured customers compared.")).to_be_visible()
        banner = m.get_by_test_id("stAlertContentError").filter(has_text="Drift in 1 feature: CustServCalls")
        expect(banner).to_be_visible()
        expect(grid_cell(page, "CustServCalls").first).to_be_attached()
        expect(grid_cell(page, "drifted").first).to_be_attached()
        report = platform.drift_history("watched", 1)[0]["report"]
        assert sorted(set(report.loc[report["drifted"] & (report["feature"] != "prediction.churn_probability"),
                                     "feature"])) == ["CustServCalls"], "the banner's features are the table's"
        assert report.loc[report["feature"] == "CustServCalls", "n"].max() == 1500
        go(page, "Endpoints")
        expect(grid_cell(page, "drift: CustServCalls").first).to_be_attached()

    with steps("a-scheduled-run-says-its-cause"):
        go(page, "Monitor")
        every = m.get_by_label("Drift report every (minutes, 0 = no schedule)")
        every.fill("0.05")
        button(page, "Save schedule").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text="A drift report runs every 0.05 minutes")) \
            .to_be_visible()
        wait_until(lambda: (platform.monitoring_schedule("watched") or {}).get("last_error"), 60,
                   what="a scheduled run with nothing new to compare")
        page.reload()
        expect_title(page, "Monitor", timeout=60_000)
        expect(m.get_by_test_id("stAlertContentError").filter(
            has_text="capture is on (100 % of requests), but no request was captured")).to_be_visible()
        go(page, "Endpoints")
        expect(grid_cell(page, "scheduled report no data").first).to_be_attached()
        platform.schedule_monitoring("watched", 0)
