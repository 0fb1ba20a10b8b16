"""An analyst with their own data, in a real browser (issue 13, findings 1-4 and the live Jobs page).

The data is the synthetic subscription file (``churn_core.data.sample.make_subscription_sample``: an ID
column, Yes/No categories, blanks, a Yes/No target), uploaded as an Excel workbook. What only a
browser shows is checked here: an upload the browser could refuse, a setting the browser could refuse
silently, results left on screen under new inputs, the Jobs page's fragments, and the client snippet
copied from the page and run.
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from playwright.sync_api import expect

from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import (JOB_TIMEOUT_MS, button, deploy_model, expect_title, go, grid_cell,
                                   launch_training, main, metric, store_dataset, upload)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def write_files(folder) -> dict:
    data = make_subscription_sample(rows=1200, seed=5)
    typed = pd.read_csv(io.BytesIO(data))  # as a spreadsheet holds it: numbers as numbers
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).drop(columns=["Churn"])
    files = {"workbook": folder / "subscription.xlsx", "first": folder / "first-customers.csv",
             "second": folder / "second-customers.xlsx", "lacking": folder / "lacking-a-column.csv"}
    typed.to_excel(files["workbook"], index=False)
    text.head(40).to_csv(files["first"], index=False)
    second = text.iloc[100:130].reset_index(drop=True)
    second.loc[0, "Contract"] = "Three year"  # never seen in training
    second.loc[1, "tenure"] = "100"  # beyond the training range
    second.to_excel(files["second"], index=False)
    text.iloc[200:220].drop(columns=["TechSupport"]).to_csv(files["lacking"], index=False)
    return files


def test_an_analysts_own_data_results_belong_to_their_inputs(app_server, page, steps, platform, tmp_path):
    m = main(page)
    files = write_files(tmp_path)

    with steps("open-dashboard"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)

    with steps("upload-excel-workbook"):  # finding 4: the browser took it, the page read it
        dataset = store_dataset(page, files["workbook"])
        assert dataset == "subscription"
        assert platform.get_dataset(dataset).rows == 1200

    with steps("refused-setting-says-why"):  # finding 4: -5 trees used to do nothing at all
        go(page, "Train")
        m.get_by_label("Number of trees", exact=True).fill("-5")
        button(page, "Launch training").click()
        refusal = m.get_by_test_id("stAlertContentError")
        expect(refusal).to_contain_text("Number of trees (n_estimators) must be between 1 and 2000 (got -5)")
        assert platform.count_training_jobs() == 0

    with steps("train-two-models"):
        forest = launch_training(page, {"Number of trees": "30"})
        boosted = launch_training(page, {"Boosting rounds": "800", "Learning rate": "0.01", "Tree depth": "5"},
                                  algorithm="Gradient boosting")

    with steps("compare-appears-when-the-second-job-completes"):  # finding 6: no reload needed
        go(page, "Jobs")
        waiting = m.get_by_text("Complete two or more jobs to compare them.")
        expect(waiting).to_be_visible()
        assert platform.describe_training(boosted).is_active, "the slow job finished before the page was drawn"
        expect(m.get_by_label("Completed jobs", exact=True)).to_be_visible(timeout=JOB_TIMEOUT_MS)
        expect(waiting).to_have_count(0)
        assert platform.describe_training(boosted).status == "Completed"

    with steps("deploy"):
        go(page, "Endpoints")
        endpoint = deploy_model(page, forest)
        expect(m.get_by_label("Endpoint", exact=True)).to_have_value(endpoint)

    with steps("snippet-runs-as-shown"):  # finding 3: copied from the page, run, answered
        snippet = m.get_by_test_id("stCode").filter(has_text="invoke_endpoint").inner_text()
        assert '"Contract"' in snippet and '"tenure"' in snippet
        script = tmp_path / "snippet.py"
        script.write_text(snippet)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stderr[-2000:]  # boto3 raises on any answer but 2xx
        by_position, by_name = (ast.literal_eval(line) for line in run.stdout.strip().splitlines())
        assert by_position["Output"] in (0, 1) and by_name["predictions"][0]["label"] == by_position["Output"]

    with steps("one-customer-result-follows-the-form"):  # finding 2
        go(page, "Predict")
        expect(m.get_by_label("Endpoint", exact=True)).to_have_value(endpoint)
        button(page, "Score customer").click()
        expect(metric(page, "Churn probability")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
        tenure = m.get_by_label("tenure", exact=True)
        tenure.fill("100")
        tenure.press("Tab")
        expect(metric(page, "Churn probability")).to_have_count(0)  # not under values it was not made from
        expect(m.get_by_text("The form changed since the last score")).to_be_visible()
        expect(m.get_by_text("tenure = 100 is outside the training range 0 to 72").first).to_be_visible()
        button(page, "Score customer").click()
        expect(metric(page, "Churn probability")).to_be_visible()
        expect(m.get_by_test_id("stAlertContentWarning").filter(has_text="Read this score with care")) \
            .to_contain_text("tenure = 100 is outside the training range")
        charges = m.get_by_label("MonthlyCharges", exact=True)
        charges.fill("")
        charges.press("Tab")
        expect(m.get_by_text("Enter a number: MonthlyCharges had no blanks in training")).to_be_visible()
        expect(metric(page, "Churn probability")).to_have_count(0)
        button(page, "Score customer").click()
        expect(m.get_by_test_id("stAlertContentError").filter(has_text="Not scored")).to_be_visible()
        expect(metric(page, "Churn probability")).to_have_count(0)

    with steps("batch-results-follow-the-file"):  # finding 1
        m.get_by_role("tab", name="A file of customers").click()
        upload(page, files["first"])
        button(page, "Score 40 customers").click()
        expect(metric(page, "Scored")).to_have_text("40 of 40", timeout=60_000)
        expect(button(page, "Download scored CSV")).to_be_visible()
        upload(page, files["second"])  # an Excel file of other customers
        expect(m.get_by_text("30 customers in second-customers.xlsx")).to_be_visible()
        expect(metric(page, "Scored")).to_have_count(0)
        expect(button(page, "Download scored CSV")).to_have_count(0)

    with steps("batch-flags-what-it-guessed"):  # finding 5, in the browser too
        button(page, "Score 30 customers").click()
        expect(metric(page, "Scored")).to_have_text("30 of 30", timeout=60_000)
        expect(metric(page, "Scored with notes")).to_have_text(re.compile(r"^[2-9]|\d\d"))
        expect(grid_cell(page, "Contract = 'Three year' was never seen in training").first).to_be_attached()

    with steps("a-failed-batch-leaves-no-old-result"):  # finding 1: the error is alone on screen
        upload(page, files["lacking"])
        button(page, "Score 20 customers").click()
        batch_tab = m.get_by_role("tabpanel", name="A file of customers")
        expect(batch_tab.get_by_test_id("stAlertContentError")).to_contain_text(
            "lacks the model's feature column TechSupport")
        expect(metric(page, "Scored")).to_have_count(0)
        expect(button(page, "Download scored CSV")).to_have_count(0)
