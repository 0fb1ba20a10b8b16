"""The Endpoints page's rollout section (AppTest): update to another version, serve a champion and a
challenger, promote the challenger; the served variants and their figures are shown."""

from __future__ import annotations

import pytest

import churn_core
from churn_core.data.sample import make_subscription_sample
from tests.support.helpers import wait_for_job
from tests.support.pages import button, open_page, texts


@pytest.fixture
def two_versions(home):
    p = churn_core.connect()
    p.upload_dataset("subs", make_subscription_sample(500, seed=9))
    for name, params in (("subs-rf", {"algorithm": "random_forest", "n_estimators": 8}),
                         ("subs-lr", {"algorithm": "logistic_regression"})):
        p.start_training("subs", params, name=name)
        assert wait_for_job(p, name).status == "Completed"
        p.approve("subs", p.register(name).version, "ok")
    p.deploy_version("subs", 1, "page-ep")
    yield p
    p.cleanup()


def test_update_split_and_promote_from_the_endpoints_page(two_versions):
    p = two_versions
    at = open_page("endpoints")
    serving = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert list(serving["serves"]) == ["subs v1"]
    at.selectbox(key=next(s.key for s in at.selectbox if s.label == "Update to version")).set_value("subs:2")
    button(at, "Update endpoint").click().run()
    assert not at.exception, at.exception
    assert "page-ep now serves subs v2" in texts(at, "success")
    assert p.describe_endpoint("page-ep").model == "subs-lr"
    serving = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert list(serving["serves"]) == ["subs v2"], "the table shows the update without a reload"

    at.selectbox(key="champ_page-ep").set_value("subs:2")
    at.selectbox(key="chall_page-ep").set_value("subs:1")
    at.slider(key="share_page-ep").set_value(20)
    button(at, "Serve both").click().run()
    assert not at.exception, at.exception
    assert sorted((v["variant"], v["weight"]) for v in p.describe_endpoint("page-ep").variants) == [
        ("subs-v1", 20.0), ("subs-v2", 80.0)]
    serving = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert sorted(serving["serves"]) == ["subs v1", "subs v2"], "the split shows without a reload"
    assert "serves subs v2 (80 %) and subs v1 (20 %)" in texts(at, "success")

    at = open_page("endpoints")  # opened later: the form shows the split the endpoint really serves
    assert at.slider(key="share_page-ep").value == 20
    assert (at.selectbox(key="champ_page-ep").value, at.selectbox(key="chall_page-ep").value) == ("subs:2", "subs:1")
    serving = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert sorted(serving["serves"]) == ["subs v1", "subs v2"]
    button(at, "Promote challenger").click().run()
    assert not at.exception, at.exception
    assert "now serves subs v1 alone, as the champion" in texts(at, "success")
    assert p.get_version("subs", "champion").version == 1
    serving = next(df.value for df in at.dataframe if "variant" in df.value.columns)
    assert list(serving["serves"]) == ["subs v1"]
