"""From a probability to a decision in a real browser: plan a retention campaign on a model of an
analyst's own kind of data (ID column, Yes/No categories, blanks), use the profit-maximising threshold,
check the model on a new labelled file, and read one customer's reasons on the Predict page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_subscription_sample
from churn_core.decisions import campaign
from tests.e2e.e2e_support import DEPLOY_TIMEOUT_MS, button, expect_title, go, main
from tests.support.helpers import wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COSTS = {"Cost of one offer": 25, "Value of a customer kept": 600, "Churners the offer saves": 0.4}


def test_plan_a_campaign_use_its_threshold_and_read_reasons(app_server, context, steps, tmp_path):
    platform = churn_core.connect()
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("a-trained-model-via-api"):  # this test is about decisions: training runs through the API
        platform.upload_dataset("subs", make_subscription_sample(1500, seed=5))
        platform.start_training("subs", {"algorithm": "random_forest", "n_estimators": 20}, name="subs-rf")
        assert wait_for_job(platform, "subs-rf").status == "Completed"
        expected = platform.plan_campaign("subs-rf", *COSTS.values())

    with steps("plan-the-campaign"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Campaign planner")
        expect(m.get_by_text("Current decision threshold of subs-rf: 0.500 (the default)")).to_be_visible()
        for label, value in COSTS.items():
            m.get_by_label(label, exact=True).fill(str(value))
        button(page, "Plan the campaign").click()
        best = m.get_by_test_id("stMetric").filter(has_text="Best threshold")
        expect(best).to_contain_text(f"{expected.threshold:.3f}")
        expect(m.get_by_test_id("stMetric").filter(has_text="Expected profit")).to_contain_text(
            f"{expected.expected_profit:,.0f}")
        expect(m.get_by_test_id("stMetric").filter(has_text="Customers contacted")).to_contain_text(
            f"{expected.contacted:,} of {expected.customers:,}")
        expect(m.get_by_text(f"Threshold picked on {campaign.PICKED_ON_TEST}")).to_be_visible()

    with steps("use-the-threshold"):
        m.get_by_label("Note (why this threshold)", exact=True).fill("Q1 retention")
        button(page, f"Use threshold {expected.threshold:.3f} for subs-rf").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(
            has_text=f"subs-rf now labels customers above {expected.threshold:.3f}")).to_be_visible()
        assert platform.model_threshold("subs-rf") == expected.threshold, "the headline's threshold, exactly"
        assert platform.threshold_record("subs-rf")["note"] == "Q1 retention"
        # the header shows the threshold now in force at once, without a reload
        expect(m.get_by_text(re.compile(rf"Current decision threshold of subs-rf: {expected.threshold:.3f} · set .*"
                                        r"Q1 retention"))).to_be_visible()

    with steps("the-model-on-a-new-labelled-file"):
        labelled = tmp_path / "last-month.csv"
        labelled.write_bytes(make_subscription_sample(400, seed=77))
        m.get_by_test_id("stFileUploader").filter(has_text="Labelled customers").locator(
            "input[type=file]").set_input_files(labelled)
        expect(m.get_by_text("subs-rf on last-month.csv (400 customers")).to_be_visible()
        expect(m.get_by_test_id("stDataFrame").filter(has_text="on last-month.csv")).to_be_visible()

    with steps("deploy-with-the-threshold"):
        platform.deploy("subs-rf", "retention", timeout=DEPLOY_TIMEOUT_MS / 1000)
        customer = platform.read_dataset("subs", "test").drop(columns=["Churn"]).iloc[0].replace("", None).to_dict()
        answer = platform.invoke("retention", {"instances": [customer], "explain": 3})["predictions"][0]
        assert answer["label"] == int(answer["churn_probability"] > platform.model_threshold("subs-rf"))
        assert len(answer["reasons"]["reasons"]) == 3
