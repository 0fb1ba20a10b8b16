"""Issue 24 in a real browser: plan a threshold on champion v1 and use it, deploy v1 and split it 80/20 with v2;
the endpoint's answers (curl and the Python API), Predict, Batch and the Models table all label at that
threshold, and every endpoint answer names the variant that gave it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import (DEPLOY_TIMEOUT_MS, JOB_TIMEOUT_MS, button, choose, expect_title, go, grid_cell,
                                   main, no_app_exception, upload)
from tests.support.helpers import wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

COSTS = {"Cost of one offer": 20, "Value of a customer kept": 500, "Churners the offer saves": 0.35}


def curl(url: str, body: bytes) -> tuple[str, dict]:
    """POST with curl (as an analyst would): the variant header and the decoded answer."""
    done = subprocess.run(["curl", "-s", "-i", "-X", "POST", url + "/invocations", "-H",
                           "Content-Type: application/json", "--data-binary", "@-"], input=body,
                          capture_output=True, check=True, timeout=30)
    head, _, text = done.stdout.decode().partition("\r\n\r\n")
    header = re.search(r"(?im)^X-Amzn-Invoked-Production-Variant:\s*(\S+)", head)
    assert header, head
    return header.group(1), json.loads(text)


def test_a_threshold_planned_on_champion_v1_labels_every_answer_and_each_names_its_variant(
        app_server, context, steps, tmp_path):
    if not shutil.which("curl"):
        pytest.fail("curl is not installed; the test sends the endpoint's request as an analyst would, with curl")
    platform = churn_core.connect()
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with steps("two-registered-versions-via-api"):  # the registry's own flow is test_browser_registry's
        platform.upload_dataset("subs", make_subscription_sample(1000, seed=21))
        for name, params in (("subs-rf", {"algorithm": "random_forest", "n_estimators": 20}),
                             ("subs-lr", {"algorithm": "logistic_regression"})):
            platform.start_training("subs", params, name=name)
        for number, name in enumerate(("subs-rf", "subs-lr"), start=1):
            assert wait_for_job(platform, name).status == "Completed"
            platform.register(name, group="subs")
            platform.approve("subs", number, "checked")
        platform.set_alias("subs", 1, "champion")
        platform.set_alias("subs", 2, "challenger")
        expected = platform.plan_campaign(("subs", "champion"), *COSTS.values())

    with steps("plan-on-champion-v1-and-use-it"):
        page.goto(app_server.url)
        expect_title(page, "Data", timeout=60_000)
        go(page, "Campaign planner")
        choose(page, "Model (training job)", "subs-rf · Random forest on subs")
        owner = 'input[aria-label="Threshold of"]'
        expect(m.locator(f'{owner}[value="subs v1 (champion) (registered version: endpoints serving it)"]')
               ).to_be_visible()
        expect(m.locator(f'{owner}[value^="subs v2"]')).to_have_count(0)  # subs-lr's picker, gone after the rerun
        expect(m.get_by_text("Current decision threshold of subs v1 (champion): 0.500 (the default)")).to_be_visible()
        for label, value in COSTS.items():
            m.get_by_label(label, exact=True).fill(str(value))
        button(page, "Plan the campaign").click()
        expect(m.get_by_test_id("stMetric").filter(has_text="Best threshold")).to_contain_text(
            f"{expected.threshold:.3f}")
        button(page, f"Use threshold {expected.threshold:.3f} for subs v1 (champion)").click()
        expect(m.get_by_test_id("stAlertContentSuccess").filter(
            has_text=f"subs v1 (champion) now labels customers above {expected.threshold:.3f}")).to_be_visible()
        assert platform.model_threshold(("subs", 1)) == expected.threshold, "exactly the headline's threshold"
        assert platform.model_threshold("subs-rf") == 0.5, "the job's model keeps its own"
    threshold = {"subs-v1": expected.threshold, "subs-v2": 0.5}
    assert 0.05 < expected.threshold < 0.45, expected.threshold  # labels at it differ from the 0.5 rule

    with steps("deploy-v1-and-split-it-via-api"):
        platform.deploy_version("subs", "champion", "retention", timeout=DEPLOY_TIMEOUT_MS / 1000)
        platform.set_variants("retention", [("subs", "champion", 80), ("subs", "challenger", 20)])
        url = platform.describe_endpoint("retention").url

    test = platform.read_dataset("subs", "test")
    features = [f["name"] for f in platform.model_schema("subs-rf")["features"]]
    records = [{k: (None if v == "" else v) for k, v in r.items()} for r in test[features].head(40).to_dict("records")]
    body = json.dumps({"instances": records}).encode()
    with steps("the-endpoints-answers-name-their-variant"):
        seen = set()
        for _ in range(40):
            variant, answer = curl(url, body)
            seen.add(variant)
            for prediction in answer["predictions"]:
                assert prediction["variant"] == variant
                assert prediction["label"] == int(prediction["churn_probability"] > threshold[variant])
            if seen == set(threshold):
                break
        assert seen == set(threshold), seen
        api = platform.invoke("retention", {"instances": records})["predictions"]  # boto3 is for SageMaker only
        assert all(a["label"] == int(a["churn_probability"] > threshold[a["variant"]]) for a in api)
        flipped = [a for a in api if a["variant"] == "subs-v1" and expected.threshold < a["churn_probability"] <= 0.5]
        assert flipped or api[0]["variant"] == "subs-v2", "v1's labels are at its own threshold, not 0.5"

    with steps("predict-names-the-variant"):
        go(page, "Predict")
        expect(m.get_by_label("Endpoint", exact=True)).to_have_value("retention")
        button(page, "Score customer").click()
        said = m.get_by_text(re.compile(r"Answered by production variant subs-v[12] of retention"))
        expect(said).to_be_visible()
        named = re.search(r"variant (subs-v[12]) of retention, labelled at its own threshold (\d\.\d{3})",
                          said.inner_text())
        assert named and named.group(2) == f"{threshold[named.group(1)]:.3f}", said.inner_text()
        expect(m.get_by_text(re.compile(r"(High|Medium|Low) risk\."))).to_be_visible()
        no_app_exception(page)

    with steps("batch-at-the-version-threshold"):
        source = tmp_path / "customers.csv"
        test.drop(columns=["Churn"]).head(300).to_csv(source, index=False)
        go(page, "Batch")
        choose(page, "Model", "subs-rf")
        expect(m.locator('input[aria-label="Labels at the threshold of"][value="model subs-rf (the job\'s model)"]')
               ).to_be_visible()
        expect(m.locator('input[aria-label="Labels at the threshold of"]')).to_have_count(1)
        choose(page, "Labels at the threshold of", "subs v1 (champion)")
        upload(page, source)
        button(page, "Start transform job").click()
        started = m.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"Transform job \S+ is"))
        expect(started).to_be_visible()
        job = re.search(r"Transform job (\S+) is", started.inner_text()).group(1)
        expect(m.get_by_role("heading", name=re.compile(rf"^{re.escape(job)} .*Completed"))).to_be_visible(
            timeout=JOB_TIMEOUT_MS)
        expect(m.get_by_text(f"threshold {expected.threshold:g}").first).to_be_visible()
        assert platform.describe_transform(job).threshold == expected.threshold
        scored = platform.transform_output(job)
        assert len(scored) == 300
        assert (scored["predicted_churn"] == (scored["churn_probability"] > expected.threshold).astype(int)).all()

    with steps("the-models-table-shows-the-version-threshold"):
        go(page, "Models")
        expect(grid_cell(page, f"{expected.threshold:.3f}").first).to_be_attached()
        no_app_exception(page)
    platform.delete_endpoint("retention")
