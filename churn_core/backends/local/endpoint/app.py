"""The local endpoint's HTTP application: SageMaker's container routes, on an event loop.

Routes: ``GET /ping``, ``POST /invocations`` and ``POST /endpoints/<name>/invocations`` (what
boto3's ``sagemaker-runtime`` client calls with ``endpoint_url``), ``GET /stats``, ``GET /metrics``
(Prometheus). Every error body is JSON ``{"error": ..., "message": ...}``.

It is an ASGI application run by gunicorn's own asyncio worker, so a client that trickles its
headers or body, or never closes, waits on the loop without holding anything the next request
needs: ``/ping`` answers while requests are in progress, and a body must arrive within
``BODY_DEADLINE_S``. Small requests (the single customers an endpoint mostly sees) are scored on
the loop itself; large ones in a thread, so the loop stays free for the others.

Each request picks a production variant by weight (or by ``X-Amzn-SageMaker-Target-Variant``),
and the answer names it in ``X-Amzn-Invoked-Production-Variant``, as SageMaker does.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from churn_core.backends.local.endpoint.control import LiveEndpoint, LoadedVariant
from churn_core.backends.local.endpoint.stats import PrometheusMetrics, WorkerStats, read_stats

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoint payload limit
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read (and drop) up to this much of an oversized body so the client sees the 413
BODY_DEADLINE_S = 10.0  # a request body must arrive within this (slow clients cannot hold the endpoint)
INLINE_MAX_BYTES = 64 * 1024  # bodies up to this size are scored on the event loop; larger ones in a thread
PREDICT_THREADS = 4
JSON = "application/json"
_ENDPOINT_PATH = re.compile(r"^/endpoints/([^/]+)/invocations/?$")


def error_body(message: str) -> bytes:
    return json.dumps({"error": message, "message": message}).encode("utf-8")


class _Reject(Exception):
    def __init__(self, status: int, message: str, close: bool = False, allow: str = "", headers: tuple = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close
        self.headers = ((("Allow", allow),) if allow else ()) + headers


def score(entry, variant: LoadedVariant, body: bytes, content_type: str, accept: str) -> tuple:
    """The SageMaker handler chain for one request: (status, body, content type, probabilities)."""
    try:
        parsed = entry.input_fn(body, content_type or JSON)
        prediction = entry.predict_fn(parsed, variant.model)
        result = entry.output_fn(prediction, accept or JSON)
    except Exception as err:  # InvalidInput carries its status; anything else is the model's fault
        code = getattr(err, "status_code", None)
        if isinstance(code, int) and 400 <= code <= 599:
            return code, error_body(str(err)), JSON, ()
        sys.stderr.write(f"invocation failed: {type(err).__name__}: {err}\n")
        return 500, error_body(f"the model failed to score this request: {type(err).__name__}: {err}"), JSON, ()
    payload, content = result if isinstance(result, tuple) else (result, JSON)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    elif not isinstance(payload, (bytes, bytearray)):
        payload = json.dumps(payload).encode("utf-8")
    return 200, bytes(payload), content or JSON, prediction.get("probabilities", ())


class EndpointApp:
    """One endpoint's ASGI application (built once in the server process, used by every worker)."""

    def __init__(self, entry, live: LiveEndpoint, name: str, workdir: Path, stats: Optional[WorkerStats] = None,
                 metrics: Optional[PrometheusMetrics] = None, capture=None, gate=None) -> None:
        self.entry, self.live, self.name, self.workdir = entry, live, name, Path(workdir)
        self.gate = gate  # auth.TokenGate: bearer tokens when the endpoint is reachable from other hosts
        self.stats = stats if stats is not None else WorkerStats(self.workdir / "stats")
        self.metrics, self.capture = metrics, capture
        self.ping_body = json.dumps({"status": "ok", "endpoint": name}).encode("utf-8")
        self._pid: Optional[int] = None
        self._pool: Optional[ThreadPoolExecutor] = None

    def _per_worker(self) -> None:
        """Threads do not survive a fork: each worker starts its own, on its first event."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._pool = ThreadPoolExecutor(max_workers=PREDICT_THREADS, thread_name_prefix="predict")
        self.stats.start_flusher()
        self.live.start_watching()
        if self.capture is not None:
            self.capture.start()

    # ---- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._per_worker()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.capture is not None:
                        self.capture.flush()
                    self.stats.flush()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self._per_worker()
        method, path = scope["method"].upper(), scope["path"] or "/"
        try:
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise _Reject(405, f"{method} is not allowed on /ping; use GET.", allow="GET, HEAD")
                await self._send(send, 200, b"" if method == "HEAD" else self.ping_body, JSON,
                                 length=len(self.ping_body))
                return
            if self.gate is not None and (refusal := self.gate.refusal(scope["headers"])):
                raise _Reject(401, refusal, headers=(("WWW-Authenticate", 'Bearer realm="churn-endpoint"'),))
            match = _ENDPOINT_PATH.match(path)
            if path in ("/invocations", "/invocations/") or match:
                if match and match.group(1) != self.name:
                    raise _Reject(404, f"endpoint {match.group(1)!r} is not served here; this server serves "
                                       f"{self.name!r}.")
                if method != "POST":
                    raise _Reject(405, f"{method} is not allowed on {path}; use POST with the request in the body.",
                                  allow="POST")
                await self._invoke(scope, receive, send)
                return
            if path == "/stats" and method == "GET":
                body = json.dumps(dict(read_stats(self.workdir), endpoint=self.name)).encode("utf-8")
                await self._send(send, 200, body, JSON)
                return
            if path == "/metrics" and method == "GET" and self.metrics is not None:
                body = await asyncio.get_running_loop().run_in_executor(self._pool, self.metrics.render)
                await self._send(send, 200, body, "text/plain; version=0.0.4; charset=utf-8")
                return
            if path in ("/stats", "/metrics"):
                raise _Reject(405, f"{method} is not allowed on {path}; use GET.", allow="GET")
            raise _Reject(404, f"no route {path!r}; use POST /invocations (or /endpoints/{self.name}/invocations) "
                               "or GET /ping.")
        except _Reject as reject:
            await self._send(send, reject.status, error_body(reject.message), JSON, reject.headers, close=reject.close)
        except Exception as err:  # never let a request take the worker down
            await self._send(send, 500, error_body(f"internal error: {type(err).__name__}: {err}"), JSON)

    async def _send(self, send, status: int, body: bytes, content_type: str, extra: tuple = (),
                    close: bool = False, length: Optional[int] = None) -> None:
        headers = [(b"content-type", content_type.encode("latin-1")),
                   (b"content-length", str(len(body) if length is None else length).encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, scope, receive) -> bytes:
        headers = dict(scope["headers"])
        raw_length = headers.get(b"content-length", b"").strip()
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if not raw_length and not chunked:
            raise _Reject(411, "a Content-Length header is required on POST; send the body with its length.")
        length = int(raw_length) if raw_length.isdigit() else None
        if raw_length and length is None:
            raise _Reject(400, f"invalid Content-Length {raw_length.decode('latin-1')!r}; it must be a whole "
                               "number of bytes.", close=True)
        too_large = length is not None and length > MAX_BODY_BYTES
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_DEADLINE_S):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        if length is not None and size < length:  # the client stopped sending early
                            raise _Reject(400, f"the request body ended after {size} of {length} bytes announced "
                                               "by Content-Length.", close=True)
                        raise ConnectionResetError
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        too_large = True
                    if not too_large:
                        parts.append(chunk)
                    elif size > DRAIN_LIMIT_BYTES:
                        break
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            raise _Reject(408, f"the request body did not arrive within {BODY_DEADLINE_S:g} s; send it at once.",
                          close=True) from None
        if too_large:
            shown = f"{length} bytes" if length is not None else "larger"
            raise _Reject(413, f"request body is {shown}, over the {MAX_BODY_BYTES} byte (6 MB) limit of a real-time "
                               "endpoint; split it into smaller requests or use a batch transform job.",
                          close=size > DRAIN_LIMIT_BYTES)
        if length is not None and size < length:
            raise _Reject(400, f"the request body ended after {size} of {length} bytes announced by Content-Length.")
        return b"".join(parts)

    async def _invoke(self, scope, receive, send) -> None:
        started = time.perf_counter()
        status, variant_name, probabilities = 500, "", ()
        try:
            body = await self._read_body(scope, receive)
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").decode("latin-1") or JSON
            accept = headers.get(b"accept", b"").decode("latin-1") or JSON
            table = self.live.table
            target = headers.get(b"x-amzn-sagemaker-target-variant", b"").decode("latin-1")
            variant = table.pick(target or None) if table is not None else None
            if variant is None:
                raise _Reject(400 if target else 503, f"no production variant named {target!r}; this endpoint "
                                                      f"serves {', '.join(table.variants) if table else 'none yet'}.")
            variant_name = variant.name
            if len(body) <= INLINE_MAX_BYTES:
                status, payload, out_type, probabilities = score(self.entry, variant, body, content_type, accept)
            else:
                status, payload, out_type, probabilities = await asyncio.get_running_loop().run_in_executor(
                    self._pool, score, self.entry, variant, body, content_type, accept)
            await self._send(send, status, payload, out_type, (("X-Amzn-Invoked-Production-Variant", variant.name),))
            if status == 200 and self.capture is not None and table.capture_percent > 0 \
                    and random.random() * 100.0 < table.capture_percent:
                self.capture.put(variant.name, body, content_type, payload, out_type, rows=len(probabilities))
        except ConnectionResetError:
            status = 499  # the client went away
        except _Reject as reject:
            status = reject.status
            await self._send(send, reject.status, error_body(reject.message), JSON, reject.headers, close=reject.close)
        finally:
            elapsed = time.perf_counter() - started
            self.stats.record(elapsed * 1000.0, status >= 400, variant_name, list(probabilities))
            if self.metrics is not None:
                self.metrics.observe(variant_name or "none", status, elapsed, len(probabilities))


def install_json_protocol_errors() -> None:
    """gunicorn's own answers to malformed HTTP (bad request line, oversized headers …) in JSON, like
    every other error of the endpoint (this process serves one endpoint, so the change is local)."""
    from gunicorn.asgi.protocol import ASGIProtocol

    def send_error_response(self, status, message, extra_headers=()) -> None:
        reason = self._get_reason_phrase(status)
        text = f"malformed HTTP request ({reason}): {message}; fix the request line and headers."
        body = json.dumps({"error": text, "message": text}).encode("utf-8")
        extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
        head = (f"HTTP/1.1 {int(status)} {self._get_reason_phrase(status)}\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
        self._safe_write(head.encode("latin-1") + body)

    def eof_received(self):
        # A client that stops sending in the middle of a body (half-close) still gets its 400 with the
        # reason: the body ends where the client stopped, the write side stays open for the answer.
        receiver = getattr(self, "_body_receiver", None)
        if receiver is not None and not receiver._complete:
            receiver.set_complete()
            return True
        return False

    connection_made = ASGIProtocol.connection_made

    def connection_made_with_deadline(self, transport):
        # gunicorn arms its keep-alive timer only between requests, so a new connection that sends
        # nothing, or trickles its first request head, would be held open for ever (and use up the
        # descriptors): the same timer runs from the connection's start, until a request head is parsed.
        connection_made(self, transport)
        if not self._closed and self._h2c_buffer is None:
            self._arm_keepalive_timer()

    ASGIProtocol._send_error_response = send_error_response
    ASGIProtocol.eof_received = eof_received
    ASGIProtocol.connection_made = connection_made_with_deadline
