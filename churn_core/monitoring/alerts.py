"""Alerts that leave the page: a drifted scheduled report is posted to a webhook (Slack/Teams-compatible).

The webhook URL is a catalog setting (Settings page, ``Platform.alert_webhook``), http or https only.
A post is ``{"text": ...}`` as JSON, the shape Slack's and Teams' incoming webhooks accept; it is
tried ``ATTEMPTS`` times with a doubling pause (bounded: at most about ``TIMEOUT_S × ATTEMPTS + 1.5`` s),
and a post that still fails raises BackendError with the last cause (the scheduler records it beside
the run, so a dead webhook is seen on the Monitor page rather than lost).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from churn_core.catalog import monitoring_records as records
from churn_core.errors import BackendError, ValidationError

WEBHOOK_KEY = "alert_webhook"
ATTEMPTS = 3
FIRST_PAUSE_S = 0.5  # then 1 s: a webhook busy for a moment gets its post, a dead one does not hold a run
TIMEOUT_S = 5.0


def check_url(url: str) -> str:
    """The URL stripped, or ValidationError saying what is wrong ("" clears the webhook)."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"The alert webhook must be an http:// or https:// URL with a host (got {url[:80]!r}); "
                              "paste the incoming-webhook URL Slack or Teams gave you.")
    if any(c.isspace() for c in url):
        raise ValidationError("The alert webhook URL contains spaces; paste it without them.")
    return url


class Alerts:
    def __init__(self, catalog):
        self.catalog = catalog

    def webhook(self) -> str:
        return records.setting(self.catalog, WEBHOOK_KEY) or ""

    def configure(self, url: str | None = None, test: bool = False) -> dict:
        """Set the webhook (``url``; "" removes it), and with ``test`` post a test alert to it. Returns
        ``{"webhook": url, "sent": bool}``."""
        if url is not None:
            records.set_setting(self.catalog, WEBHOOK_KEY, check_url(url))
        sent = False
        if test:
            if not self.webhook():
                raise ValidationError("No alert webhook is set: enter its URL first, then send a test alert.")
            self.post("Test alert from the churn control plane: drift alerts will arrive here.")
            sent = True
        return {"webhook": self.webhook(), "sent": sent}

    def post(self, text: str) -> int:
        """Post ``{"text": text}`` to the webhook (nothing when none is set); the number of attempts it took."""
        url = self.webhook()
        if not url:
            return 0
        body = json.dumps({"text": text}).encode("utf-8")
        cause, pause = "", FIRST_PAUSE_S
        for attempt in range(1, ATTEMPTS + 1):
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 (http/https only)
                    answer.read(4096)
                return attempt
            except urllib.error.HTTPError as exc:
                cause = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # the webhook refuses this post: retrying would not change its mind
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                cause = str(getattr(exc, "reason", exc))
            if attempt < ATTEMPTS:
                time.sleep(pause)
                pause *= 2
        raise BackendError(f"The alert webhook {urlsplit(url).hostname} did not accept the alert ({cause}); check "
                           "its URL on the Settings page and send a test alert.")


def drift_text(endpoint: str, model: str, verdict: str, rows: int) -> str:
    return f"Drift on endpoint {endpoint} (model {model}): {verdict} — {rows:,} captured customers compared."
