"""The Models page (AppTest): register a version, approve it with a note, make it the champion, deploy it
from the Endpoints page; the page says whether approval is required."""

from __future__ import annotations

import pytest

from tests.support.pages import button, open_page, texts


def test_models_page_registers_approves_aliases_and_deploys(subs_rf):
    at = open_page("models")
    assert "a training job's model can also be deployed directly" in texts(at, "caption")
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Note"].set_value("first candidate")
    button(at, "Register version").click().run()
    assert not at.exception, at.exception
    assert "Registered **subs v1**" in texts(at, "success")
    versions = at.dataframe[0].value
    assert list(versions["version"]) == ["v1"] and list(versions["status"]) == ["waiting for approval"]
    assert versions["ROC AUC"].iloc[0] == pytest.approx(subs_rf.describe_training("subs-rf").metrics["roc_auc"])
    assert "only approved versions can be deployed" in texts(at, "caption")

    at.text_input(key="decision_note").set_value("holdout AUC is fine")
    button(at, "Approve").click().run()
    assert not at.exception, at.exception
    assert subs_rf.get_version("subs", 1).status == "Approved"
    assert subs_rf.get_version("subs", 1).status_note == "holdout AUC is fine"
    button(at, "Make champion").click().run()
    assert subs_rf.get_version("subs", "champion").version == 1
    assert "This version is the **champion**" in texts(at, "caption")
    links = [link for link in at.get("page_link")]
    assert any("Deploy subs v1 (champion)" in str(link.proto.label) for link in links)

    endpoints = open_page("endpoints")
    endpoints.query_params["version"] = "subs:1"
    endpoints.run()
    assert endpoints.radio(key="deploy_source").value == "An approved registry version"
    button(endpoints, "Deploy").click().run()
    assert not endpoints.exception, endpoints.exception
    ep = subs_rf.describe_endpoint("subs-rf-endpoint")
    assert ep.status == "InService"
    assert subs_rf.lineage("subs")[0]["endpoints"][0]["endpoint"] == "subs-rf-endpoint"


def test_models_page_says_when_approval_is_required(subs_rf, monkeypatch):
    monkeypatch.setenv("CHURN_REQUIRE_APPROVAL", "1")
    subs_rf.register("subs-rf")
    at = open_page("models")
    assert "Every deploy serves **an approved version**" in texts(at, "caption")
    me = subs_rf.user.name  # trained and registered it: four eyes disables Approve before any click, and says why
    assert button(at, "Approve").disabled and not button(at, "Reject").disabled
    assert f"{me} trained its model and registered it, so {me} may not approve subs v1" in texts(at, "caption")
    endpoints = open_page("endpoints")
    assert endpoints.radio(key="deploy_source").value == "An approved registry version"
    assert "No approved version yet" in texts(endpoints, "info")
