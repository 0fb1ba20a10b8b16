"""Bearer tokens on local endpoints (issue 28): with tokens required (CHURN_ENDPOINT_TOKENS=1 forces them on
127.0.0.1; a non-loopback CHURN_BIND_HOST requires them) every route but /ping answers 401 without the right
token; the token is shown once, kept hashed, rotatable by an admin only; the platform's own calls still work."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest

import churn_core
from churn_core import ConflictError, PermissionDenied, ValidationError
from churn_core.access import roles
from churn_core.backends.local.endpoint import auth


def post(url: str, body: dict, token: str | None = None) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def test_the_rule_for_when_tokens_are_required():
    assert not auth.required("127.0.0.1", {}) and not auth.required("localhost", {}) and not auth.required("::1", {})
    assert auth.required("0.0.0.0", {}) and auth.required("10.1.2.3", {}) and auth.required("churn.internal", {})
    assert auth.required("127.0.0.1", {auth.FORCE_ENV: "1"})


def test_a_bound_endpoint_refuses_a_missing_or_wrong_token_and_accepts_the_right_one(own_model, monkeypatch):
    p = own_model.platform
    customer = {"instances": own_model.customers(1).to_dict("records")}
    with pytest.raises(ValidationError, match="needs no token"):
        p.endpoint_token("sub-ep")  # loopback, tokens not forced: nothing to issue
    assert post(p.describe_endpoint("sub-ep").url, customer)[0] == 200, "the default is unchanged"

    monkeypatch.setenv(auth.FORCE_ENV, "1")  # as a non-loopback CHURN_BIND_HOST would; never 0.0.0.0 in tests
    ep = p.deploy("sub-rf", "tok-ep")
    status, body, headers = post(ep.url, customer)
    assert status == 401 and "needs a bearer token" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    with urllib.request.urlopen(f"{ep.url}/ping", timeout=10) as resp:
        assert resp.status == 200, "/ping stays open"
    with pytest.raises(urllib.error.HTTPError) as stats:
        urllib.request.urlopen(f"{ep.url}/stats", timeout=10)
    assert stats.value.code == 401
    assert p.invoke("tok-ep", customer)["predictions"], "the platform's own calls carry the endpoint's secret"

    token = p.endpoint_token("tok-ep")
    assert post(ep.url, customer, token)[0] == 200
    status, body, _ = post(ep.url, customer, token + "x")
    assert status == 401 and "not valid" in body["error"]
    stored = p.catalog.one("SELECT sha256, created_by FROM endpoint_tokens WHERE endpoint = 'tok-ep'")
    assert stored == {"sha256": hashlib.sha256(token.encode()).hexdigest(), "created_by": roles.os_user()}
    assert token.encode() not in (p.settings.home / "churn.db").read_bytes(), "kept hashed only"
    assert "Authorization: Bearer $CHURN_ENDPOINT_TOKEN" in p.client_snippets("tok-ep")["curl"]
    assert "CHURN_ENDPOINT_TOKEN" in p.client_snippets("tok-ep")["python"]

    with pytest.raises(ConflictError, match="shown only once"):
        p.endpoint_token("tok-ep")
    rotated = p.endpoint_token("tok-ep", rotate=True)
    assert post(ep.url, customer, token)[0] == 401, "rotation invalidates the old token at once"
    assert post(ep.url, customer, rotated)[0] == 200
    assert [e["user"] for e in p.events("endpoint", "tok-ep")][:2] == [roles.os_user()] * 2


def test_only_an_admin_gets_a_token(own_model, tmp_path, monkeypatch):
    path = tmp_path / "roles.toml"
    path.write_text('[users]\n"ann@x.io" = ["analyst", "approver"]\n', encoding="utf-8")
    monkeypatch.setenv(roles.ENV, str(path))
    monkeypatch.setenv(auth.FORCE_ENV, "1")
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        churn_core.connect(user="ann@x.io").endpoint_token("sub-ep")
