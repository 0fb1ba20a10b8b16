"""Issue 25, item 5 of "What to build" (alerts leave the page): a drifted scheduled report posts Slack/Teams JSON
to the webhook set in Settings (a real server on 127.0.0.1), with bounded retries and a test alert; the URL is
checked; the endpoint's /metrics shows per-feature drift and the last report's time as gauges."""

from __future__ import annotations

import re
import time

import pytest
import requests

from churn_core import ValidationError
from churn_core.errors import BackendError
from churn_core.monitoring import alerts
from tests.support.helpers import wait_until
from tests.support.monitoring import ENDPOINT, held_out


def test_the_webhook_url_is_checked_and_a_test_alert_arrives_after_a_retry(drift_model, webhook):
    p = drift_model
    for bad in ("ftp://example.com/hook", "file:///etc/passwd", "hooks.slack.com/x", "http://"):
        with pytest.raises(ValidationError, match="http:// or https://"):
            p.alert_webhook(bad)
    with pytest.raises(ValidationError, match="No alert webhook is set"):
        p.alert_webhook("", test=True)
    webhook.fail_first = 1  # busy for a moment: the second attempt gets through
    assert p.alert_webhook(webhook.url, test=True) == {"webhook": webhook.url, "sent": True}
    assert webhook.attempts == 2 and len(webhook.posts) == 1
    assert webhook.posts[0]["content_type"] == "application/json"
    assert set(webhook.posts[0]["json"]) == {"text"} and "Test alert" in webhook.posts[0]["json"]["text"]
    assert p.alert_webhook()["webhook"] == webhook.url, "kept in the catalog"
    p.alert_webhook("")
    assert p.alert_webhook() == {"webhook": "", "sent": False}


def test_a_dead_webhook_fails_plainly_within_its_bound(drift_model, webhook):
    p = drift_model
    url = webhook.url
    webhook.close()  # nothing listens there any more
    started = time.monotonic()
    with pytest.raises(BackendError, match="did not accept the alert"):
        p.alert_webhook(url, test=True)
    assert time.monotonic() - started < alerts.ATTEMPTS * alerts.TIMEOUT_S + 2
    p.alert_webhook("")


def test_a_drifted_scheduled_report_posts_to_the_webhook_and_metrics_show_it(drift_model, webhook):
    p = drift_model
    p.alert_webhook(webhook.url)
    p.set_capture(ENDPOINT, 100)
    p.schedule_monitoring(ENDPOINT, 0.05)
    shifted = held_out(p, 400)
    shifted["Contract"] = "Two year"  # every customer on one contract: a category share far from training's
    p.score_batch(ENDPOINT, shifted, chunk_size=200)
    wait_until(lambda: webhook.posts, 60, what="the drift alert")
    text = webhook.posts[0]["json"]["text"]
    assert f"Drift on endpoint {ENDPOINT}" in text and "Contract" in text, text
    run = wait_until(lambda: next((r for r in p.monitoring_schedule(ENDPOINT)["runs"] if r["outcome"] == "report"),
                                  None), 30, what="the run recorded (it is written after the alert is posted)")
    assert run["detail"].startswith("drift: ") and "not delivered" not in run["detail"]
    p.schedule_monitoring(ENDPOINT, 0)
    p.set_capture(ENDPOINT, 0)
    p.alert_webhook("")

    body = requests.get(p.describe_endpoint(ENDPOINT).url + "/metrics", timeout=10).text
    drifted = re.search(r'churn_drift_drifted\{feature="Contract",metric="linf"\} (\S+)', body)
    assert drifted and float(drifted.group(1)) == 1.0, body[-2000:]
    assert re.search(r'churn_drift_value\{feature="tenure",metric="psi"\} \d', body)
    stamp = re.search(r"^churn_drift_last_report_timestamp_seconds (\S+)$", body, re.M)
    latest = p.drift_history(ENDPOINT, 1)[0]
    assert stamp and float(stamp.group(1)) == pytest.approx(latest["created_at"], abs=1e-3)
    customers = re.search(r"^churn_drift_report_customers (\S+)$", body, re.M)
    assert customers and float(customers.group(1)) == latest["rows"]
