"""The registry and a safe rollout in a real browser: register two trained models as versions, approve
them with notes, deploy the first from the Models page, update the live endpoint to the second, serve a
champion and a challenger, and promote the challenger."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, button, choose, choose_in_expander, expect_title, go, grid_cell,
                                   main)
from tests.support.helpers import wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def success(page, text: str):
    return main(page).get_by_test_id("stAlertContentSuccess").filter(has_text=text)


def test_register_approve_deploy_update_and_promote(app_server, context, steps):
    platform = churn_core.connect()
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("two-trained-models-via-api"):  # this test is about the registry: training runs through the API
        platform.upload_dataset("subs", make_subscription_sample(800, seed=31))
        for name, params in (("subs-rf", {"algorithm": "random_forest", "n_estimators": 15}),
                             ("subs-lr", {"algorithm": "logistic_regression"})):
            platform.start_training("subs", params, name=name)
        for name in ("subs-rf", "subs-lr"):
            assert wait_for_job(platform, name).status == "Completed"

    with steps("register-and-approve-two-versions"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Models")
        for version, model in ((1, "subs-rf"), (2, "subs-lr")):
            # the register expander folds once a group exists
            choose_in_expander(page, "Register a trained model", "Trained model (training job)", model)
            m.get_by_label("Note", exact=True).fill(f"candidate {version}")
            button(page, "Register version").click()
            expect(success(page, f"Registered subs v{version} from {model}")).to_be_visible()
            m.get_by_label("Note for the decision", exact=True).fill("holdout checked")
            button(page, "Approve").click()
            expect(m.get_by_text(re.compile(rf"subs v{version}.*· approved"))).to_be_visible()
        assert [v.status for v in platform.list_versions("subs")] == ["Approved", "Approved"]

    with steps("deploy-version-1-from-the-models-page"):
        choose(page, "Version", "subs v1")
        m.get_by_role("link", name="Deploy subs v1").click()
        page.wait_for_url(re.compile(r"/endpoints\?version=subs%3A1$|/endpoints\?version=subs:1$"))
        expect_title(page, "Endpoints")
        m.get_by_label("Endpoint name", exact=True).fill("retention")
        button(page, "Deploy").click()
        expect(success(page, "Endpoint retention is in service")).to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        assert platform.describe_endpoint("retention").model == "subs-rf"

    with steps("update-the-live-endpoint-to-version-2"):
        choose(page, "Update to version", "subs v2")
        button(page, "Update endpoint").click()
        expect(success(page, "retention now serves subs v2")).to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        assert platform.describe_endpoint("retention").model == "subs-lr"
        expect(grid_cell(page, "subs v2")).to_be_attached()  # the Serving table shows it without a reload
        expect(grid_cell(page, "subs v1")).to_have_count(0)

    with steps("champion-and-challenger"):
        choose(page, "Champion", "subs v2")
        choose(page, "Challenger", "subs v1")
        slider = m.get_by_role("slider", name="Traffic to the challenger (%)")
        slider.focus()
        for _ in range(10):  # 10 % → 20 %
            slider.press("ArrowRight")
        expect(slider).to_have_value("20")
        button(page, "Serve both").click()
        expect(success(page, "retention serves subs v2 (80 %) and subs v1 (20 %)")).to_be_visible(
            timeout=DEPLOY_TIMEOUT_MS)
        assert sorted(v["weight"] for v in platform.describe_endpoint("retention").variants) == [20.0, 80.0]
        expect(grid_cell(page, "subs v1")).to_be_attached()  # both variants in the Serving table, no reload

    with steps("promote-the-challenger"):
        page.reload()
        expect_title(page, "Endpoints")
        # the real split, after a reload
        expect(m.get_by_role("slider", name="Traffic to the challenger (%)")).to_have_value("20")
        button(page, "Promote challenger").click()
        expect(success(page, "now serves subs v1 alone, as the champion")).to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
        assert platform.get_version("subs", "champion").version == 1
        answer = platform.invoke("retention", {"instances": [platform.read_dataset("subs", "test").drop(
            columns=["Churn"]).iloc[0].replace("", None).to_dict()]})
        assert answer["predictions"][0]["label"] in (0, 1)
