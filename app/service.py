"""The platform handle shared by all sessions, and the one way pages show user errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

import streamlit as st

import churn_core
from churn_core import ChurnError
from churn_core.access import roles
from churn_core.errors import CatalogDamagedError
from churn_core.config import Settings

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _platform(config: tuple, _settings: Settings, _user: str | None = None, _claims: dict | None = None):
    """Cached by every field of the settings and by the signed-in user (``config``): a platform acts as one user,
    so two users never share one."""
    return churn_core.connect(_settings, user=_user, claims=_claims)


def signed_in() -> tuple[str | None, dict | None]:
    """Team mode (an ``[auth]`` section in ``.streamlit/secrets.toml``): the signed-in user's name (their email) and
    the roles file's claim, taken only from Streamlit's own signed identity cookie (st.user), never from query
    parameters; until someone signs in the page offers sign-in and stops. One-person mode: (None, None), the OS
    user."""
    info = st.user.to_dict()
    if "is_logged_in" not in info:
        return None, None
    if not info.get("is_logged_in"):
        st.title("Sign in")
        st.info("This control plane is shared: sign in to see and change models.", icon=":material/lock:")
        st.button("Sign in", type="primary", on_click=st.login, key="sign_in")
        st.stop()
    name = str(info.get("email") or info.get("sub") or "")
    try:
        claim = roles.claim_name()
    except ChurnError as exc:
        st.error(str(exc), icon=":material/block:")
        st.stop()
    return name, ({claim: info.get(claim)} if claim else None)


def allowed(p, method: str) -> tuple[bool, str]:
    """(may the acting user call ``p.<method>``, why not): pages disable what the role cannot do and say why."""
    return roles.allowed(p.user, method)


def gate(p, method: str, disabled: bool = False) -> dict:
    """Keyword arguments for a button that calls ``p.<method>``: disabled, with the reason as its help, when the
    acting user's role does not allow it (``churn_core`` refuses the call anyway)."""
    ok, why = allowed(p, method)
    return {"disabled": disabled or not ok, "help": why or None}


def account() -> None:
    """The sidebar's line about who is acting (and Sign out in team mode); signs in first in team mode."""
    try:
        user = roles.resolve(*signed_in())
    except ChurnError as exc:
        st.error(str(exc), icon=":material/block:")
        st.stop()
    with st.sidebar:
        st.caption(f"Acting as **{user.name}** · {', '.join(sorted(user.roles)) or 'no role'}")
        if st.user.to_dict().get("is_logged_in"):
            st.button("Sign out", on_click=st.logout, key="sign_out")


def platform():
    """One Platform per configuration (the environment decides; tests switch it between runs).

    A configuration the platform cannot open (a bad CHURN_BACKEND, an unwritable CHURN_HOME) stops
    the page with its message instead of a traceback.
    """
    try:
        settings = Settings.from_env()
        user, claims = signed_in()
        key = (*(str(v) for v in dataclasses.astuple(settings)), user, repr(sorted((claims or {}).items())))
        platform = _platform(key, settings, user, claims)
    except CatalogDamagedError as exc:
        show_catalog_damage(exc)
        st.stop()
    except ChurnError as exc:
        st.error(f"The dashboard cannot start with this configuration: {exc}", icon=":material/block:")
        st.stop()
    except OSError as exc:
        st.error(
            f"The state directory cannot be opened ({exc}). Set CHURN_HOME to a writable folder.",
            icon=":material/block:",
        )
        st.stop()
    repaired = st.session_state.pop("catalog_repaired", None)
    if repaired:
        st.success(repaired, icon=":material/healing:")
    return platform


def show_catalog_damage(exc: CatalogDamagedError) -> None:
    """The damaged catalog's message (never Streamlit's generic error), and the two ways back."""
    catalog_repair = churn_core.repair_tools()
    st.error(str(exc), icon=":material/database:")
    home = Settings.from_env().home
    health = catalog_repair.diagnose(home)
    left, right = st.columns(2)
    if health.backup is not None:
        if left.button("Restore the backup", type="primary", key="catalog_restore_backup",
                       help=f"{health.backup}, then what was made after it (found on disk)"):
            run_repair(catalog_repair.restore_backup, home)
    if right.button("Rebuild from disk", type="secondary" if health.backup else "primary", key="catalog_rebuild",
                    help="Every record the damaged file still gives up, plus datasets, models and running "
                         "endpoints found on disk"):
        run_repair(catalog_repair.rebuild, home)


def run_repair(action: Callable[..., Any], *args: Any) -> None:
    """Run a catalog repair; on success reopen the platform and show its summary on the next run."""
    report = attempt(action, *args)
    if report is not None:
        _platform.clear()  # the next run opens the repaired catalog
        st.session_state["catalog_repaired"] = report.summary()
        st.rerun()


def backend_caption() -> str:
    try:
        settings = Settings.from_env()
    except ChurnError as exc:
        return f"⚠️ {exc}"
    if settings.backend == "local":
        return f"Backend: **local** · state in `{settings.home}`"
    return f"Backend: **SageMaker** · {settings.region} · s3://{settings.bucket}/{settings.prefix}"


def attempt(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run a platform call; a user-caused failure becomes an st.error with its message, not a traceback."""
    try:
        return fn(*args, **kwargs)
    except ChurnError as exc:
        st.error(str(exc), icon=":material/block:")
        return None


def ok(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Like ``attempt`` for calls whose result does not matter: True when it worked."""
    try:
        fn(*args, **kwargs)
        return True
    except ChurnError as exc:
        st.error(str(exc), icon=":material/block:")
        return False
