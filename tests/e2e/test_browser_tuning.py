"""Tune in a real browser: start a small tuning job on Train → Tune, watch its leaderboard fill live, deploy the
best trial from the *Deploy best* link."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_sample
from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, JOB_TIMEOUT_MS, button, expect_title, go, grid_cell, main)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TUNING = "tune-e2e"


def test_tune_then_deploy_the_best_trial(app_server, context, steps):
    platform = churn_core.connect()
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("dataset-via-api"):  # this test is about tuning: the dataset is stored through the Python API
        platform.upload_dataset("telecom", make_sample(rows=1500))

    with steps("open-tune-tab"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Train")
        m.get_by_role("radiogroup", name="Mode").get_by_role("radio", name="Tune", exact=True).click()
        expect(m.get_by_role("button", name="Start tuning")).to_be_visible()
        expect(m.get_by_label("Number of trees: from", exact=True)).to_have_value("20")
        expect(m.get_by_text("No tuning job yet")).to_be_visible()

    with steps("start-small-tuning-job"):
        m.get_by_label("Number of trees: to", exact=True).fill("40")
        m.get_by_label("Maximum trials", exact=True).fill("3")
        m.get_by_label("Trials at once", exact=True).fill("2")
        m.get_by_label("Tuning job name (optional)", exact=True).fill(TUNING)
        button(page, "Start tuning").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Tuning job {TUNING} is running")) \
            .to_be_visible()
        assert platform.describe_tuning(TUNING).max_trials == 3

    with steps("leaderboard-fills-live"):
        # No reload from here on: the leaderboard is a fragment refreshing every second while the job runs.
        expect(m.get_by_role("heading", name=re.compile(rf"^{TUNING} .*Completed"))) \
            .to_be_visible(timeout=JOB_TIMEOUT_MS)
        done = platform.describe_tuning(TUNING)
        assert done.status == "Completed" and done.trials_completed == 3, done.failure_reason
        expect(grid_cell(page, done.best_job).first).to_be_attached()
        progress = m.get_by_role("tabpanel", name="Objective by trial").get_by_test_id("stPlotlyChart")
        expect(progress.locator("text.gtitle")).to_contain_text("ROC AUC by trial")
        m.get_by_role("tab", name="Hyperparameters").click()
        params = m.get_by_role("tabpanel", name="Hyperparameters").get_by_test_id("stPlotlyChart")
        expect(params.locator("text.gtitle")).to_contain_text("Hyperparameters vs ROC AUC")

    with steps("deploy-best-link"):
        m.get_by_role("link", name=f"Deploy best ({done.best_job})").click()
        page.wait_for_url(re.compile(rf"/endpoints\?model={re.escape(done.best_job)}$"))
        expect_title(page, "Endpoints")
        expect(m.get_by_label("Model (from a completed job)", exact=True)).to_have_value(done.best_job)

    endpoint = f"{done.best_job}-endpoint"
    with steps("deploy-best-trial"):
        expect(m.get_by_label("Endpoint name", exact=True)).to_have_value(endpoint)
        button(page, "Deploy").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Endpoint {endpoint} is in service")) \
            .to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        deployed = platform.describe_endpoint(endpoint)
        assert deployed.status == "InService" and deployed.model == done.best_job
        answer = platform.invoke(endpoint, {"Input": [[128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]]})
        assert answer["Output"] in (0, 1)
