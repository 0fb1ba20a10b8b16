"""Team mode in a real browser with a real OpenID Connect provider (issue 28): an analyst signs in, trains and
registers a model and cannot approve it (the button is disabled with its reason, the API refuses); they sign out,
an approver signs in and approves; the audit trail names both."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import churn_core
from churn_core import PermissionDenied
from churn_core.access import roles
from churn_core.data.sample import make_subscription_sample
from tests.e2e.e2e_support import (AppServer, auth_secrets, button, choose_in_expander, cleanup_state, expect_title,
                                   free_port, go, launch_training, main, oidc_provider)
from tests.support.helpers import wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ANALYST, APPROVER = "ann@example.com", "bob@example.com"


def sign_in(page, app_url: str, email: str) -> None:
    page.goto(app_url)
    expect_title(page, "Sign in", timeout=60_000)
    button(page, "Sign in").click()
    page.get_by_role("button", name=email, exact=True).click()  # the provider's own form
    expect(page.get_by_test_id("stSidebar").get_by_text(re.compile(f"Acting as {re.escape(email)}"))).to_be_visible(
        timeout=60_000)


def test_an_analyst_cannot_approve_a_second_person_can(churn_home, tmp_path, context, steps, monkeypatch):
    path = tmp_path / "roles.toml"
    path.write_text(f'default_role = "viewer"\n[users]\n"{ANALYST}" = ["analyst"]\n"{APPROVER}" = ["approver"]\n'
                    f'"{roles.os_user()}" = ["admin"]\n', encoding="utf-8")  # the OS user: the test's clean-up
    monkeypatch.setenv(roles.ENV, str(path))
    monkeypatch.setenv("CHURN_REQUIRE_APPROVAL", "1")
    churn_core.connect(user=ANALYST).upload_dataset("subs", make_subscription_sample(600, seed=21))
    page = context.new_page()
    steps.watch("main", page)
    m = main(page)

    with oidc_provider(ANALYST, APPROVER) as issuer:
        port = free_port()
        server = AppServer(churn_home, tmp_path, port=port, args=("--secrets.files", str(auth_secrets(tmp_path, port,
                                                                                                       issuer))))
        try:
            server.start()
            with steps("nothing-but-sign-in"):
                # nothing about the user comes from the URL, nor from a cookie Streamlit did not sign
                context.add_cookies([{"name": "_streamlit_user", "url": server.url,
                                      "value": f'{{"email": "{APPROVER}", "is_logged_in": true}}'}])
                page.goto(f"{server.url}/models?user={APPROVER}")
                expect_title(page, "Sign in", timeout=60_000)
                expect(m.get_by_text("Models", exact=True)).to_have_count(0)
                context.clear_cookies()

            with steps("analyst-signs-in-trains-and-registers"):
                sign_in(page, server.url, ANALYST)
                go(page, "Train")
                job = launch_training(page, {"Number of trees": "10"})
                analyst = churn_core.connect(user=ANALYST)
                assert wait_for_job(analyst, job).status == "Completed"
                assert analyst.describe_training(job).created_by == ANALYST
                go(page, "Models")
                choose_in_expander(page, "Register a trained model", "Trained model (training job)", job)
                button(page, "Register version").click()
                expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text="Registered subs v1")).to_be_visible()

            with steps("analyst-cannot-approve"):
                expect(button(page, "Approve")).to_be_disabled()
                expect(m.get_by_text(re.compile(r"needs the approver role")).first).to_be_visible()
                with pytest.raises(PermissionDenied, match="needs the approver role"):
                    analyst.approve("subs", 1, "my own")
                assert analyst.get_version("subs", 1).status == "PendingManualApproval"

            with steps("approver-signs-in-and-approves"):
                page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
                expect(page.get_by_role("heading", name="End Session")).to_be_visible(timeout=60_000)  # provider's
                page.get_by_role("button", name="End session").click()
                page.wait_for_url(re.compile("^" + re.escape(server.url)))  # back at the dashboard, signed out
                sign_in(page, server.url, APPROVER)
                go(page, "Models")
                m.get_by_label("Note for the decision", exact=True).fill("second pair of eyes")
                button(page, "Approve").click()
                expect(m.get_by_text(re.compile(r"subs v1.*· approved"))).to_be_visible()

            with steps("the-audit-trail-names-both"):
                version = churn_core.connect().get_version("subs", 1)
                assert (version.status, version.registered_by, version.status_by) == ("Approved", ANALYST, APPROVER)
                m.get_by_text("Audit trail", exact=True).click()
                trail = m.get_by_test_id("stDataFrame").last
                expect(trail).to_contain_text(ANALYST)
                expect(trail).to_contain_text(APPROVER)
        finally:
            server.stop()
            cleanup_state(churn_home)
