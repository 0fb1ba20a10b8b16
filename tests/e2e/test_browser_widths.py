"""Every page at 1024 px and at 1440 px (issue 27): no horizontal page overflow, no metric value cut to "…",
no raw status words an analyst should not read. One set-up (a categorical dataset with an ID column, a model,
an approved version, an endpoint with traffic, a transform job, a planned threshold), then each page at each
width, screenshotted for review."""

from __future__ import annotations

import re

import pytest

from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import UI_TIMEOUT_MS, expect_title, main
from tests.support.helpers import wait_for_job, wait_until

pytestmark = pytest.mark.e2e

PAGES = ["Data", "Train", "Jobs", "Models", "Campaign planner", "Endpoints", "Predict", "Batch", "Monitor",
         "Settings"]
RAW_WORDS = re.compile(r"\b(?:PendingManualApproval|InProgress|InService|MaxRuntimeExceeded|nan|NaN|None)\b|\w+\(s\)")

OVERFLOW_JS = """() => {
  const root = document.documentElement;
  const main = document.querySelector('[data-testid="stMain"]');
  return Math.max(root.scrollWidth - root.clientWidth, main ? main.scrollWidth - main.clientWidth : 0);
}"""
TRUNCATED_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]')]
  .filter(el => [el, ...el.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
  .map(el => el.innerText)"""
CUT_INPUTS_JS = """() => [...document.querySelectorAll('[data-testid="stMain"] input[type="number"]')]
  .filter(el => el.value && el.scrollWidth > el.clientWidth + 1).map(el => el.getAttribute('aria-label'))"""


def prepare(p) -> None:
    p.upload_dataset("subs", make_subscription_sample(800, seed=4))
    p.start_training("subs", {"algorithm": "random_forest", "n_estimators": 15}, name="subs-rf")
    assert wait_for_job(p, "subs-rf").status == "Completed"
    version = p.register("subs-rf", note="first")
    p.approve("subs", version.version, "checked")
    p.deploy_version("subs", version.version, "subs-ep")
    customers = p.read_dataset("subs", "test").drop(columns=["Churn"]).head(60)
    p.score_batch("subs-ep", customers)
    p.start_transform("subs-rf", customers.to_csv(index=False).encode(), name="subs-batch")
    wait_until(lambda: p.describe_transform("subs-batch").status == "Completed", 90, what="the transform")
    plan = p.plan_campaign("subs-rf", 10, 300, 0.3)
    p.set_threshold("subs-rf", plan.threshold, "planned")


def settle(page) -> None:
    """The page has finished running (no 'Running…' widget, which shows after a moment) and drawn its charts."""
    page.wait_for_timeout(700)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(800)


def test_every_page_fits_1024_and_1440_pixels(app_server, platform, browser, shots):
    prepare(platform)
    problems = []
    for width in (1024, 1440):
        ctx = browser.new_context(viewport={"width": width, "height": 768})
        ctx.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page = ctx.new_page()
            page.goto(app_server.url)
            expect_title(page, "Data")
            for title in PAGES:
                page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
                expect_title(page, title)
                settle(page)
                page.screenshot(path=str(shots / f"{width}-{title.replace(' ', '-').lower()}.png"), full_page=True)
                overflow = page.evaluate(OVERFLOW_JS)
                if overflow > 1:
                    problems.append(f"{width}px {title}: the page scrolls sideways by {overflow}px")
                if cut := page.evaluate(TRUNCATED_JS):
                    problems.append(f"{width}px {title}: metric labels or values cut short: {cut}")
                if inputs := page.evaluate(CUT_INPUTS_JS):
                    problems.append(f"{width}px {title}: number inputs too narrow for their values: {inputs}")
                if raw := sorted(set(RAW_WORDS.findall(main(page).inner_text()))):
                    problems.append(f"{width}px {title}: raw words on the page: {raw}")
        finally:
            ctx.close()
    assert not problems, "\n".join(problems) + f"\n(screenshots in {shots})"
