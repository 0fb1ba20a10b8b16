"""Two browser tabs at once, and a dashboard crash in the middle of a training job.

Jobs and endpoints are processes detached from the Streamlit server (DESIGN.md, reliability rules):
a second tab sees what the first one did, and killing the server loses nothing.
"""

from __future__ import annotations

import re
import signal
import time

import psutil
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

import churn_core
from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, JOB_TIMEOUT_MS, NO_ENDPOINTS, button, click_while,
                                   expect_endpoints_removed,
                                   expect_title, go, grid_cell, launch_training, main, reference_or_sample)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DATASET = "telecom"
MODEL = "seed-rf"
ENDPOINT = f"{MODEL}-endpoint"  # the name the Endpoints page proposes


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
    return value


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_two_tabs_then_dashboard_restart_mid_training(app_server, context, steps, tmp_path):
    platform = churn_core.connect()

    with steps("seed-dataset-and-model"):  # through the Python API: this test is about tabs and restarts
        platform.upload_dataset(DATASET, reference_or_sample(tmp_path).read_bytes())
        platform.start_training(DATASET, {"n_estimators": 15}, name=MODEL)
        job = wait_for(lambda: (j := platform.describe_training(MODEL)).is_active is False and j, 90, "seed job")
        assert job.status == "Completed", job.failure_reason

    tab_a, tab_b = context.new_page(), context.new_page()
    steps.watch("tabA", tab_a)
    steps.watch("tabB", tab_b)

    with steps("both-tabs-on-endpoints"):
        for tab in (tab_a, tab_b):
            tab.goto(f"{app_server.url}/endpoints")
            expect_title(tab, "Endpoints", timeout=60_000)
            expect(main(tab).get_by_text(NO_ENDPOINTS)).to_be_visible()
        expect(main(tab_a).get_by_label("Endpoint name", exact=True)).to_have_value(ENDPOINT)

    with steps("tab-a-deploys-tab-b-sees-it"):
        button(tab_a, "Deploy").click()
        # Tab B is never reloaded: its endpoint table is a fragment refreshing every 2 s.
        expect(grid_cell(tab_b, ENDPOINT)).to_be_attached(timeout=DEPLOY_TIMEOUT_MS)
        expect(main(tab_b).get_by_text(NO_ENDPOINTS)).to_be_hidden()
        expect(grid_cell(tab_b, "In service")).to_be_attached(timeout=DEPLOY_TIMEOUT_MS)
        # ...and the rest of tab B follows without a click: the endpoint picker and its delete button.
        expect(main(tab_b).get_by_label("Endpoint", exact=True)).to_have_value(ENDPOINT)
        expect(button(tab_b, f"Delete {ENDPOINT}")).to_be_visible()
        expect(main(tab_a).get_by_test_id("stAlertContentSuccess").filter(has_text=f"Endpoint {ENDPOINT} is")) \
            .to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        assert platform.describe_endpoint(ENDPOINT).status == "InService"

    with steps("tab-b-predict-offers-it"):
        go(tab_b, "Predict")
        expect(main(tab_b).get_by_label("Endpoint", exact=True)).to_have_value(ENDPOINT)

    with steps("tab-a-launches-long-job"):
        go(tab_a, "Train")
        m = main(tab_a)
        m.get_by_test_id("stRadio").get_by_text("Gradient boosting", exact=True).click()
        expect(m.get_by_label("Learning rate", exact=True)).to_be_visible()
        expect(m.get_by_label("Number of trees", exact=True)).to_have_count(0)  # the random-forest form has gone
        long_job = launch_training(tab_a, {"Boosting rounds": "2000", "Learning rate": "0.01", "Tree depth": "6"})
        hp = platform.describe_training(long_job).hyperparameters
        assert (hp["algorithm"], hp["n_estimators"], hp["learning_rate"], hp["max_depth"]) == \
               ("gradient_boosting", 2000, 0.01, 6), hp

    with steps("jobs-page-shows-it-running"):
        go(tab_a, "Jobs")
        expect(main(tab_a).get_by_role("heading", name=re.compile(rf"{long_job} .*Running"))).to_be_visible()

    with steps("kill-dashboard"):
        driver = platform.describe_training(long_job).pid
        assert driver and alive(driver)
        server_pid = app_server.proc.pid
        app_server.kill(signal.SIGKILL)  # the server's own process group only; the job has its own session
        assert not alive(server_pid)
        with pytest.raises(PlaywrightError):  # nothing listens any more
            tab_a.request.get(f"{app_server.url}/_stcore/health", timeout=2_000)
        assert alive(driver), "killing the dashboard killed the training job"
        assert platform.describe_training(long_job).status == "InProgress"

    with steps("restart-dashboard"):
        app_server.start()  # same port, same CHURN_HOME
        tab_a.reload()
        expect_title(tab_a, "Jobs", timeout=60_000)
        expect(grid_cell(tab_a, long_job)).to_be_attached()
        expect(main(tab_a).get_by_role("heading", name=re.compile(rf"{long_job} .*(Running|Completed)"))) \
            .to_be_visible()

    with steps("nothing-lost"):
        tab_b.goto(app_server.url)
        expect_title(tab_b, "Data", timeout=60_000)
        expect(main(tab_b).get_by_label("Explore", exact=True)).to_have_value(DATASET)
        go(tab_b, "Endpoints")
        expect(main(tab_b).get_by_label("Endpoint", exact=True)).to_have_value(ENDPOINT)
        expect(main(tab_b).get_by_text(re.compile(rf"^{ENDPOINT} .*In service · model {MODEL}"))).to_be_visible()
        expect(grid_cell(tab_a, re.compile(rf"^{MODEL}$"))).to_be_attached()  # the seed job is still listed
        assert [d.name for d in platform.list_datasets()] == [DATASET]
        assert platform.describe_endpoint(ENDPOINT).status == "InService"

    with steps("stop-long-job"):
        if click_while(button(tab_a, "Stop job"), lambda: platform.describe_training(long_job).is_active):
            expect(main(tab_a).get_by_role("heading", name=re.compile(rf"{long_job} .*(Stopped|Completed)"))) \
                .to_be_visible(timeout=JOB_TIMEOUT_MS)
        assert platform.describe_training(long_job).status in ("Stopped", "Completed")
        wait_for(lambda: not alive(driver), 30, "the job driver to exit")

    with steps("clean-up-all-endpoints"):
        button(tab_b, "Clean up all endpoints").click()
        dialog = tab_b.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"{ENDPOINT} (config {ENDPOINT}-config")
        dialog.get_by_role("button", name="Delete", exact=True).click()
        expect(dialog).to_be_hidden()
        expect_endpoints_removed(tab_b, [ENDPOINT])
        assert platform.list_endpoints() == []
