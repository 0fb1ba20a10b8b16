"""A batch transform job from the Batch page in a real browser: upload a file, start, watch it finish live,
look at the results by risk, download them (and the errors) and check what came down."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import (JOB_TIMEOUT_MS, button, expect_title, go, grid_cell, main, no_app_exception,
                                   open_expander, upload)
from tests.support.helpers import wait_for_job, wait_until
from tests.support.transforms import customers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def metric(page, label: str):
    """The value of the st.metric labelled exactly ``label``."""
    boxes = main(page).get_by_test_id("stMetric")
    exact = page.get_by_test_id("stMetricLabel").filter(has_text=re.compile(rf"^{re.escape(label)}$"))
    return boxes.filter(has=exact).get_by_test_id("stMetricValue")


def test_transform_job_from_the_batch_page_and_download_its_results(app_server, context, steps, tmp_path):
    platform = churn_core.connect()  # the model is made through the API: training has its own browser test
    platform.upload_dataset("subs", make_subscription_sample(1500, seed=4))
    platform.start_training("subs", {"algorithm": "random_forest", "n_estimators": 30}, name="subs-rf")
    assert wait_for_job(platform, "subs-rf").status == "Completed"
    rows = 5000
    lines = customers(rows, seed=8).decode().splitlines()
    cells = lines[100].split(",")
    cells[0] = "=1+2"  # customerID, line 101: a formula a spreadsheet would run
    cells[1] = "Other"  # gender: a category the model never saw
    lines[100] = ",".join(cells)
    lines[200] = lines[200].replace(lines[200].split(",")[5], "many", 1)  # tenure: a word, line 201
    source = tmp_path / "customers.csv"
    source.write_text("\n".join(lines) + "\n")
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("open-batch-page"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Batch")
        expect(m.get_by_text("Start a transform job")).to_be_visible()

    with steps("upload-and-start"):
        upload(page, source)
        button(page, "Start transform job").click()
        started = m.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"Transform job \S+ is"))
        expect(started).to_be_visible()
        job = re.search(r"Transform job (\S+) is", started.inner_text()).group(1)

    with steps("job-completes-live"):
        # no reload: the job's view is a fragment refreshing every second while the job runs
        heading = m.get_by_role("heading", name=re.compile(rf"^{re.escape(job)} .*Completed"))
        expect(heading).to_be_visible(timeout=JOB_TIMEOUT_MS)
        expect(metric(page, "Scored")).to_have_text(f"{rows - 1:,}")
        expect(metric(page, "Could not score")).to_have_text("1")
        expect(m.get_by_text("1 line could not be scored")).to_be_visible()
        expect(grid_cell(page, "tenure: 'many' is not a number.")).to_be_attached()
        expect(m.get_by_test_id("stPlotlyChart").first).to_be_visible()
        no_app_exception(page)
        assert platform.describe_transform(job).status == "Completed"

    with steps("download-results"):
        with page.expect_download(timeout=60_000) as info:
            button(page, "Download results CSV").click()
        download = info.value
        assert download.suggested_filename == f"{job}-results.csv"
        saved = tmp_path / "results.csv"
        download.save_as(saved)
        result = pd.read_csv(saved, dtype={"customerID": str, "warnings": str}, keep_default_na=False)
        assert list(result.columns) == ["line", "customerID", "churn_probability", "predicted_churn", "risk",
                                        "warnings", "top_reason"]  # the page asks for reasons by default
        assert len(result) == rows - 1 and 201 not in set(result["line"])
        assert result["churn_probability"].between(0, 1).all()
        expected = platform.transform_output(job)
        assert expected.loc[expected["line"] == 101, "customerID"].item() == "=1+2"  # the bucket keeps the data
        line = result[result["line"] == 101].iloc[0]
        assert line["customerID"] == "'=1+2", "the download escapes what a spreadsheet would run"
        assert "gender = 'Other' was never seen in training" in line["warnings"]
        others = result[result["line"] != 101]
        assert list(others["customerID"]) == list(expected.loc[expected["line"] != 101, "customerID"])

    with steps("download-errors"):
        with page.expect_download(timeout=60_000) as info:
            button(page, "Download errors CSV").click()
        errors = pd.read_csv(info.value.path())
        assert list(errors["line"]) == [201] and errors["problem"][0] == "tenure: 'many' is not a number."

    with steps("a-second-job-is-the-one-shown-and-its-row-refreshes"):
        second = tmp_path / "second.csv"
        second.write_text("\n".join(lines[:1500]) + "\n")
        open_expander(page, "Start a transform job", button(page, "Start transform job"))  # folded once jobs exist
        upload(page, second)
        button(page, "Start transform job").click()
        # a small job may end (and the page redraw without the start message) before the message is read
        other = wait_until(lambda: next((t.name for t in platform.list_transforms() if t.name != job), None), 60,
                           what="the second transform job")
        assert other != job
        heading = m.get_by_role("heading", name=re.compile(rf"^{re.escape(other)} .*Completed"))
        expect(heading).to_be_visible(timeout=JOB_TIMEOUT_MS)  # the new job is selected, and followed live
        expect(metric(page, "Scored")).to_have_text("1,498")
        # its row in the jobs table, refreshed without a click
        expect(grid_cell(page, re.compile(r"^1,?499$")).first).to_be_attached()
        expect(grid_cell(page, "Running")).to_have_count(0)
