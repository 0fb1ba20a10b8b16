"""The platform handle shared by all sessions, and the one way pages show user errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

import streamlit as st

import churn_core
from churn_core import ChurnError
from churn_core.config import Settings

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _platform(config: tuple, _settings: Settings):
    """Cached by every field of the settings (``config``), so any changed setting opens a new platform."""
    return churn_core.connect(_settings)


def platform():
    """One Platform per configuration (the environment decides; tests switch it between runs).

    A configuration the platform cannot open (a bad CHURN_BACKEND, an unwritable CHURN_HOME) stops
    the page with its message instead of a traceback.
    """
    try:
        settings = Settings.from_env()
        return _platform(tuple(str(v) for v in dataclasses.astuple(settings)), settings)
    except ChurnError as exc:
        st.error(f"The dashboard cannot start with this configuration: {exc}", icon=":material/block:")
        st.stop()
    except OSError as exc:
        st.error(
            f"The state directory cannot be opened ({exc}). Set CHURN_HOME to a writable folder.",
            icon=":material/block:",
        )
        st.stop()


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
