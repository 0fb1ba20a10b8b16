"""The whole user journey in a real browser: upload → store → train → watch → deploy → predict → delete.

Each ``with steps(...)`` block is one user step: it leaves ``shots/NN-<step>.png`` in the test's tmp dir,
and a failure is reported as ``step <name> failed`` with ``shots/FAILED-<step>.png``.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, JOB_TIMEOUT_MS, NO_ENDPOINTS, button, expect_endpoints_removed,
                                   expect_title, go, grid_cell, launch_training, main, metric, reference_or_sample,
                                   store_dataset, upload, write_customers_csv)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]



def test_upload_train_deploy_predict_delete(app_server, page, steps, platform, tmp_path):
    m = main(page)
    dataset_csv = reference_or_sample(tmp_path)
    dataset_name = re.sub(r"[^A-Za-z0-9]+", "-", dataset_csv.stem).strip("-")  # the page's default name

    with steps("open-dashboard"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        expect(page.get_by_test_id("stSidebar").get_by_text("Backend:")).to_contain_text("local")

    with steps("upload-and-store-csv"):
        assert store_dataset(page, dataset_csv) == dataset_name
        expect(m.get_by_role("tab", name="Distributions")).to_be_visible()
        chart = m.get_by_role("tabpanel", name="Distributions").get_by_test_id("stPlotlyChart")
        expect(chart).to_be_visible()
        expect(chart.locator("text.gtitle")).to_contain_text("AccountWeeks")  # the first feature is drawn
        assert [d.name for d in platform.list_datasets()] == [dataset_name]

    with steps("launch-training"):
        go(page, "Train")
        job = launch_training(page, {"Number of trees": "50"})
        endpoint = f"{job}-endpoint"  # the name the Endpoints page proposes for a model
        assert platform.describe_training(job).hyperparameters["n_estimators"] == 50

    with steps("job-completes-live"):
        go(page, "Jobs")
        detail = m.get_by_role("heading", name=re.compile(rf"^{job} "))
        expect(detail).to_be_visible()
        print(f"job detail when the Jobs page opened: {detail.inner_text()!r}")
        expect(grid_cell(page, job)).to_be_attached()
        # No reload from here on: the table (and the open job's detail) are fragments refreshing every 2 s.
        expect(grid_cell(page, "Completed")).to_be_attached(timeout=JOB_TIMEOUT_MS)
        expect(m.get_by_role("heading", name=re.compile(rf"{job} .*Completed"))).to_be_visible(timeout=JOB_TIMEOUT_MS)
        assert platform.describe_training(job).status == "Completed"

    with steps("roc-chart-tab"):
        m.get_by_role("tab", name="Confusion matrix").click()
        m.get_by_role("tab", name="ROC curve").click()
        roc = m.get_by_role("tabpanel", name="ROC curve").get_by_test_id("stPlotlyChart")
        expect(roc).to_be_visible()
        expect(roc.locator("text.gtitle")).to_contain_text("ROC")
        expect(roc.locator(".legendtext").first).to_contain_text(job)  # the curve is this job's
        m.get_by_role("tab", name="Calibration").click()  # issue 24: every model reports its calibration
        reliability = m.get_by_role("tabpanel", name="Calibration").get_by_test_id("stPlotlyChart")
        expect(reliability.locator("text.gtitle")).to_contain_text("Calibration on the test split: Brier")
        expect(m.get_by_role("tabpanel", name="Calibration")).to_contain_text("expected calibration error")
        m.get_by_role("tab", name="ROC curve").click()

    with steps("deploy-this-model"):
        m.get_by_role("link", name="Deploy this model").click()
        page.wait_for_url(re.compile(rf"/endpoints\?model={re.escape(job)}$"))
        expect_title(page, "Endpoints")
        # The Jobs page's 2 s fragments used to land on this page after a server-side switch and blank it:
        # still here one refresh period later.
        page.wait_for_timeout(2_500)
        expect_title(page, "Endpoints")
        expect(m.get_by_label("Model (from a completed job)", exact=True)).to_have_value(job)
        expect(m.get_by_label("Endpoint name", exact=True)).to_have_value(endpoint)

    with steps("deploy-endpoint"):
        button(page, "Deploy").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Endpoint {endpoint} is in service")) \
            .to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        expect(grid_cell(page, "In service")).to_be_attached()
        assert platform.describe_endpoint(endpoint).status == "InService"

    with steps("predict-one-customer"):
        go(page, "Predict")
        expect(m.get_by_label("Endpoint", exact=True)).to_have_value(endpoint)
        # the form has drawn every field (the button comes last) before a field is typed in: typing while the
        # first run still draws the form reran it halfway and left the later fields empty on a busy machine
        expect(button(page, "Score customer")).to_be_visible()
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
        calls = m.get_by_label("CustServCalls", exact=True)
        calls.fill("5")
        calls.press("Tab")
        button(page, "Score customer").click()
        expect(metric(page, "Churn probability")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
        expect(m.get_by_text(re.compile(r"(High|Medium|Low) risk\."))).to_be_visible()
        expect(m.get_by_text("Why this score", exact=True)).to_be_visible()

    customers = tmp_path / "customers.csv"
    good_rows, bad_line = write_customers_csv(dataset_csv, customers)
    total = good_rows + 1
    with steps("batch-upload"):
        m.get_by_role("tab", name="A file of customers").click()
        upload(page, customers)
        expect(m.get_by_text(f"{total:,} customers in customers.csv")).to_be_visible()

    with steps("batch-score"):
        button(page, f"Score {total:,} customers").click()
        expect(metric(page, "Scored")).to_have_text(f"{good_rows:,} of {total:,}", timeout=60_000)
        expect(metric(page, "Could not score")).to_have_text("1")
        expect(m.get_by_text("1 row could not be scored")).to_be_visible()
        expect(grid_cell(page, "AccountWeeks: 'abc' is not a number")).to_be_attached()
        expect(grid_cell(page, re.compile(rf"^{bad_line}$")).first).to_be_attached()
        expect(m.get_by_role("tabpanel", name="A file of customers").get_by_test_id("stPlotlyChart")).to_be_visible()

    with steps("download-scored-csv"):
        with page.expect_download(timeout=30_000) as info:
            button(page, "Download scored CSV").click()
        download = info.value
        assert download.suggested_filename == "scored-customers.csv"
        saved = tmp_path / "downloaded.csv"
        download.save_as(saved)
        result = pd.read_csv(saved)
        assert len(result) == good_rows
        assert {"customer_id", "churn_probability", "predicted_churn", "line"} <= set(result.columns)
        assert result["churn_probability"].between(0, 1).all()
        assert "BAD-ROW" not in set(result["customer_id"])
        assert result["churn_probability"].is_monotonic_decreasing  # sorted by risk

    with steps("delete-endpoint"):
        go(page, "Endpoints")
        button(page, f"Delete {endpoint}").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"Delete endpoint {endpoint}?")
        dialog.get_by_role("button", name="Delete", exact=True).click()
        expect(dialog).to_be_hidden()
        expect_endpoints_removed(page, [endpoint])

    with steps("nothing-left"):
        expect(m.get_by_text(NO_ENDPOINTS)).to_be_visible()
        # "Clean up all endpoints" stays offered (on AWS it also finds orphans by tag); with nothing left
        # it says so.
        button(page, "Clean up all endpoints").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("none recorded here")).to_be_visible()
        dialog.get_by_role("button", name="Delete", exact=True).click()
        expect(m.get_by_text("Nothing to remove: no endpoints exist.")).to_be_visible()
        assert platform.list_endpoints() == []
        assert not list((app_server.home / "endpoints").glob(f"{endpoint}*")), "its folder endpoints/NAME.UID went"
        assert platform.describe_training(job).status == "Completed"  # the model outlives its endpoint
