"""Monitoring tests (issue 25): a subscription model large enough for drift statistics, deployed locally, and
helpers to send traffic, write raw capture lines and receive webhook posts on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from tests.support.helpers import wait_for_job

DATASET, MODEL, ENDPOINT = "subs", "subs-rf", "subs-ep"


@contextmanager
def drift_model_state(tmp_path_factory, name: str):
    """A state folder with 6,000 subscription customers (an ID column, Yes/No categories, blanks, a Yes/No
    target), a random forest on them and a live endpoint; cleaned up after."""
    import churn_core
    from churn_core.data.sample import make_subscription_sample

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_HOME", str(tmp_path_factory.mktemp(name) / "state"))
        env.setenv("CHURN_BACKEND", "local")
        for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
            env.delenv(key, raising=False)
        p = churn_core.connect()
        try:
            p.upload_dataset(DATASET, make_subscription_sample(6000, seed=31), target="Churn")
            p.start_training(DATASET, {"algorithm": "random_forest", "n_estimators": 15}, name=MODEL)
            assert wait_for_job(p, MODEL).status == "Completed"
            p.deploy(MODEL, ENDPOINT)
            yield p
        finally:
            p.cleanup()


def customers(p, split: str = "test", rows: int | None = None) -> pd.DataFrame:
    """The dataset's own rows as text cells, without the target (as a user's file would be)."""
    frame = p.read_dataset(DATASET, split).astype(str)
    frame = frame.drop(columns=[c for c in ("Churn",) if c in frame.columns])
    return frame if rows is None else frame.head(rows).reset_index(drop=True)


def held_out(p, rows: int = 1500) -> pd.DataFrame:
    """``rows`` customers the model never trained on (its test split holds 1,800)."""
    frame = customers(p, "test")
    assert len(frame) >= rows, f"only {len(frame)} held-out rows"
    return frame.head(rows).reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode()


def write_capture_lines(p, endpoint: str, lines: list[str], variant: str = "AllTraffic") -> str:
    """Raw lines as one capture file of this hour, as an endpoint would have written them; its key."""
    from churn_core.monitoring.capture import hour_prefix

    key = f"{hour_prefix(endpoint, variant, time.time())}{time.time_ns()}-test.jsonl"
    p.store.put_bytes(key, "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode())
    return key


class Webhook:
    """A real HTTP server on 127.0.0.1 that records each JSON post; the first ``fail_first`` posts get a 503."""

    def __init__(self, fail_first: int = 0):
        self.posts: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.attempts += 1
                if owner.attempts <= owner.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                owner.posts.append({"content_type": self.headers.get("Content-Type"), "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
