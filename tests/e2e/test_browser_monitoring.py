"""Monitoring in a real browser: turn data capture on for an endpoint, send traffic whose customers have
drifted (more service calls), run a drift report on the Monitor page and see the drifted feature flagged."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_sample
from tests.e2e.e2e_support import DEPLOY_TIMEOUT_MS, button, expect_title, go, grid_cell, main
from tests.support.helpers import wait_for_job, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_capture_shifted_traffic_and_see_the_drift(app_server, context, steps):
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
        slider = m.get_by_role("slider", name="Share of requests captured (%)")
        slider.focus()
        page.keyboard.press("End")  # 100 %
        button(page, "Save capture setting").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text="Capturing 100 % of watched's requests")) \
            .to_be_visible()
        assert platform.describe_endpoint("watched").capture_percent == 100

    with steps("shifted-traffic"):
        frame = platform.read_dataset("telecom", "test")
        features = [f["name"] for f in platform.model_schema("tel")["features"]]
        for row in frame[features].head(600).to_dict("records"):
            platform.invoke("watched", {"instances": [dict(row, CustServCalls=float(row["CustServCalls"]) + 3)]})
        wait_until(lambda: len(platform.captured("watched")) >= 600, 30, what="600 captured requests")

    with steps("drift-flagged-on-the-monitor-page"):
        button(page, "Run a drift report now").click()
        expect(m.get_by_test_id("stAlertContentError").filter(has_text="Drift in 1 feature(s): CustServCalls")) \
            .to_be_visible()
        expect(grid_cell(page, "CustServCalls").first).to_be_attached()
        go(page, "Endpoints")
        expect(grid_cell(page, "drift: CustServCalls").first).to_be_attached()
