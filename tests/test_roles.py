"""Roles (issue 28): enforced in churn_core for every state-changing Platform call, read from the roles file
again on each action, and the acting user recorded on what the call changes."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest

import churn_core
from churn_core import PermissionDenied, ValidationError
from churn_core.access import roles
from churn_core.data.sample import make_subscription_sample
from churn_core.platform import Platform


def write_roles(path: Path, users: dict, default: str = "viewer", extra: str = "") -> Path:
    lines = [f'default_role = "{default}"', extra, "[users]"]
    lines += [f'"{name}" = {json.dumps(list(granted))}' for name, granted in users.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def team(home, tmp_path, monkeypatch):
    """Team mode on a fresh state: viewer, analyst, approver and admin users in a roles file."""
    path = write_roles(tmp_path / "roles.toml", {"vera@x.io": ["viewer"], "ann@x.io": ["analyst"],
                                                  "bob@x.io": ["approver"], "ada@x.io": ["admin"]})
    monkeypatch.setenv(roles.ENV, str(path))
    return path


def test_every_public_platform_method_is_either_guarded_or_read_only():
    public = {name for name, _ in inspect.getmembers(Platform) if not name.startswith("_")}
    guarded, read_only = set(roles.METHOD_ROLES), set(roles.READ_ONLY)
    assert not guarded & read_only, f"both guarded and read-only: {guarded & read_only}"
    assert public - guarded - read_only == set(), "a new Platform method must be listed in access/roles.py"
    assert (guarded | read_only) - public == set(), "the table names methods Platform no longer has"
    for name in guarded:
        assert getattr(Platform, name).required_role == roles.METHOD_ROLES[name], name
    assert set(roles.METHOD_ROLES.values()) <= set(roles.ROLES)


def test_without_a_roles_file_one_person_has_every_role(home, monkeypatch, small_csv):
    monkeypatch.delenv(roles.ENV, raising=False)
    p = churn_core.connect()
    assert p.user.name == roles.os_user() and p.user.roles == frozenset(roles.ROLES)
    p.upload_dataset("ds", small_csv)
    assert p.events("dataset", "ds")[0]["user"] == roles.os_user()
    named = churn_core.connect(user="  carol  ")
    assert named.user.name == "carol" and named.user.has(roles.ADMIN)


def test_each_role_is_refused_what_it_lacks_and_told_which_role(team, tmp_path):
    data = make_subscription_sample(300, seed=3)  # an ID column, Yes/No categories and target
    viewer, analyst = churn_core.connect(user="vera@x.io"), churn_core.connect(user="ann@x.io")
    approver, admin = churn_core.connect(user="bob@x.io"), churn_core.connect(user="ada@x.io")
    stranger = churn_core.connect(user="someone@else.io")
    assert stranger.user.roles == {"viewer"}, "not listed: the default role"

    for p in (viewer, approver, stranger):
        with pytest.raises(PermissionDenied, match=r"may not upload dataset: that needs the analyst role") as err:
            p.upload_dataset("subs", data)
        assert p.user.name in str(err.value) and roles.ENV in str(err.value)
    assert viewer.list_datasets() == [], "nothing was stored"
    analyst.upload_dataset("subs", data)
    assert analyst.events("dataset", "subs")[0]["user"] == "ann@x.io"
    assert [d.name for d in viewer.list_datasets()] == ["subs"], "a viewer reads everything"

    for p, call, role in ((analyst, lambda p: p.approve("subs", 1), "approver"),
                          (analyst, lambda p: p.set_alias("subs", 1, "champion"), "approver"),
                          (analyst, lambda p: p.deploy("m", "ep"), "admin"),
                          (approver, lambda p: p.delete_endpoint("ep"), "admin"),
                          (analyst, lambda p: p.restore_catalog_backup(), "admin"),
                          (approver, lambda p: p.start_training("subs"), "analyst"),
                          (viewer, lambda p: p.delete_dataset("subs"), "admin")):
        with pytest.raises(PermissionDenied, match=f"needs the {role} role"):
            call(p)
    assert admin.user.has(roles.ANALYST) and admin.user.has(roles.APPROVER), "admin implies every role"
    admin.delete_dataset("subs")
    assert admin.events("dataset", "subs")[0]["user"] == "ada@x.io"


def test_a_role_change_in_the_file_applies_to_the_next_action(team, small_csv):
    p = churn_core.connect(user="vera@x.io")
    with pytest.raises(PermissionDenied, match="analyst role"):
        p.upload_dataset("ds", small_csv)
    write_roles(team, {"vera@x.io": ["analyst"]})
    os.utime(team, ns=(0, os.stat(team).st_mtime_ns + 1_000_000))  # a change within one clock tick counts too
    assert p.upload_dataset("ds", small_csv).name == "ds", "the same platform, the new role"
    write_roles(team, {}, default="")
    assert p.user.roles == frozenset()
    with pytest.raises(PermissionDenied, match="has: none"):
        p.delete_dataset("ds")


def test_roles_from_an_oidc_claim_named_in_the_file(home, tmp_path, monkeypatch):
    path = write_roles(tmp_path / "roles.toml", {}, extra='claim = "groups"\n[groups]\n"ml-approvers" = ["approver"]')
    monkeypatch.setenv(roles.ENV, str(path))
    p = churn_core.connect(user="dan@x.io", claims={"groups": ["staff", "ml-approvers"]})
    assert p.user.roles == {"approver"}
    assert churn_core.connect(user="dan@x.io", claims={"groups": "staff"}).user.roles == {"viewer"}
    assert roles.claim_name() == "groups"


def test_a_bad_roles_file_is_a_clear_error(home, tmp_path, monkeypatch):
    path = write_roles(tmp_path / "roles.toml", {"eve@x.io": ["superuser"]})
    monkeypatch.setenv(roles.ENV, str(path))
    with pytest.raises(ValidationError, match=r"unknown role superuser: use viewer, analyst, approver, admin"):
        _ = churn_core.connect(user="eve@x.io").user
    path.write_text("[users\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="not valid TOML"):
        _ = churn_core.connect(user="eve@x.io").user
    monkeypatch.setenv(roles.ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ValidationError, match="cannot be read"):
        _ = churn_core.connect(user="eve@x.io").user


def test_a_threshold_on_a_serving_model_takes_an_admin(own_model, tmp_path, monkeypatch):
    path = write_roles(tmp_path / "roles.toml", {"ann@x.io": ["analyst"], "ada@x.io": ["admin"]})
    monkeypatch.setenv(roles.ENV, str(path))
    model = own_model.platform.describe_endpoint("sub-ep").model
    with pytest.raises(PermissionDenied, match="on a model that serves behind an endpoint: that needs the admin"):
        churn_core.connect(user="ann@x.io").set_threshold(model, 0.4, note="more recall")
    admin = churn_core.connect(user="ada@x.io")
    admin.set_threshold(model, 0.4, note="more recall")
    assert admin.threshold_record(model)["set_by"] == "ada@x.io"
    assert admin.events("job", model)[0]["user"] == "ada@x.io"
