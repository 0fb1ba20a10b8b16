"""Issue 25 on the pages (AppTest): Settings sets the alert webhook, refuses a non-http URL and sends a test
alert to a real receiver on 127.0.0.1; the Monitor page edits the endpoint's model's drift thresholds with a note
and shows their history."""

from __future__ import annotations

from tests.support.monitoring import MODEL
from tests.support.pages import button, open_page, texts


def test_settings_sets_the_webhook_and_sends_a_test_alert(drift_model, webhook):
    p = drift_model
    at = open_page("settings")
    at.text_input(key="alert_webhook_url").set_value("ftp://example.com/hook")
    button(at, "Save webhook").click().run()
    assert not at.exception and "http:// or https://" in texts(at, "error")
    at.text_input(key="alert_webhook_url").set_value(webhook.url)
    button(at, "Send a test alert").click().run()
    assert not at.exception, at.exception
    assert "Test alert delivered." in texts(at, "success")
    assert len(webhook.posts) == 1 and p.alert_webhook()["webhook"] == webhook.url
    at.text_input(key="alert_webhook_url").set_value("")
    button(at, "Save webhook").click().run()
    assert "no alerts are sent" in texts(at, "success") and p.alert_webhook()["webhook"] == ""


def test_monitor_edits_the_models_thresholds_with_a_note(drift_model):
    p = drift_model
    at = open_page("monitor")
    assert not at.exception, at.exception
    at.number_input(key="threshold_ks").set_value(0.07)
    at.text_input(key="threshold_note").set_value("tighter KS after the price change")
    button(at, "Save thresholds").click().run()
    assert not at.exception, at.exception
    assert f"Thresholds of {MODEL} saved" in texts(at, "success")
    chosen = p.set_drift_thresholds(MODEL)
    assert chosen["thresholds"]["ks"] == 0.07 and chosen["history"][0]["note"] == "tighter KS after the price change"
