"""The platform handle shared by all sessions, and the one way pages show user errors."""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import streamlit as st

import churn_core
from churn_core import ChurnError
from churn_core.config import Settings

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _platform(backend: str, home: str, bucket: str, endpoint_url: str):
    return churn_core.connect(Settings.from_env())


def platform():
    """One Platform per configuration (the env decides; tests switch it per run)."""
    env = os.environ
    return _platform(env.get("CHURN_BACKEND", "local"), env.get("CHURN_HOME", ".churn"),
                     env.get("CHURN_S3_BUCKET", ""), env.get("AWS_ENDPOINT_URL", ""))


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
        st.error(str(exc), icon="🚫")
        return None


def ok(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Like ``attempt`` for calls whose result does not matter: True when it worked."""
    try:
        fn(*args, **kwargs)
        return True
    except ChurnError as exc:
        st.error(str(exc), icon="🚫")
        return False
