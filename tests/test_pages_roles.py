"""The dashboard under roles (issue 28, AppTest): a page disables what the acting user's role cannot do and says
why; query parameters cannot change who acts; the audit trail names who did what."""

from __future__ import annotations

from churn_core.access import roles
from tests.support.pages import button, open_page, texts


def test_an_analyst_sees_approve_disabled_with_the_reason_and_cannot_become_someone_else(subs_rf, tmp_path,
                                                                                          monkeypatch):
    me = roles.os_user()
    path = tmp_path / "roles.toml"
    path.write_text(f'default_role = "viewer"\n[users]\n"{me}" = ["analyst"]\n', encoding="utf-8")
    monkeypatch.setenv(roles.ENV, str(path))
    subs_rf.register("subs-rf", group="subs")  # the fixture's platform: the OS user
    try:

        at = open_page("models")
        assert f"Acting as **{me}** · analyst" in texts(at, "caption")
        approve = button(at, "Approve")
        assert approve.disabled and "needs the approver role" in approve.help
        assert "needs the approver role" in texts(at, "caption")
        assert button(at, "Make champion").disabled and not button(at, "Register version").disabled

        at.query_params["user"] = "boss@x.io"  # nothing about the user comes from the URL
        at.query_params["roles"] = "admin"
        at.run()
        assert f"Acting as **{me}** · analyst" in texts(at, "caption") and button(at, "Approve").disabled
        assert subs_rf.get_version("subs", 1).status == "PendingManualApproval"
        audit = at.dataframe[-1].value
        assert list(audit["who"]) == [me, me], "registered (and its group created) by the OS user"
    finally:
        monkeypatch.delenv(roles.ENV)  # the fixture's clean-up (deleting endpoints) takes an admin


def test_a_viewer_sees_every_state_changing_button_disabled_with_the_reason(subs_rf, tmp_path, monkeypatch):
    me = roles.os_user()
    subs_rf.deploy("subs-rf", "viewer-ep")
    path = tmp_path / "roles.toml"
    path.write_text(f'default_role = "viewer"\n[users]\n"{me}" = ["viewer"]\n', encoding="utf-8")
    monkeypatch.setenv(roles.ENV, str(path))
    try:
        pages = {"data": ["Load sample data"], "train": ["Launch training"], "planner": ["Plan the campaign"],
                 "endpoints": ["Deploy", "Delete viewer-ep", "Save capture setting"],
                 "settings": ["Back up now", "Rebuild from disk", "Save webhook"]}
        for name, labels in pages.items():
            at = open_page(name)
            assert not at.exception, (name, at.exception)
            for label in labels:
                widget = button(at, label)
                assert widget.disabled and "that needs the" in (widget.help or ""), (name, label, widget.help)
    finally:
        monkeypatch.delenv(roles.ENV)  # the fixture's clean-up (deleting endpoints) takes an admin
        subs_rf.delete_endpoint("viewer-ep")
