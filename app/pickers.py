"""Pickers that follow what the user just made.

A selectbox with a key keeps its own choice across reruns and ignores ``index``; so after a second
deploy the Endpoints page used to go on showing the first endpoint. ``shared_selectbox`` ties the
widget to one session-state entry that other actions (a deploy, a launch, a link) may set: when that
entry names another choice, the picker moves to it; when the user picks, the entry follows.
``approved_versions`` gives the version pickers their choices.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st


def shared_selectbox(label: str, choices: list[str], key: str, shared: str,
                     format_func: Callable[[str], str] = str, **kwargs) -> str | None:
    """A selectbox over ``choices`` whose value is ``st.session_state[shared]`` whenever that names a choice."""
    if not choices:
        return None
    wanted = st.session_state.get(shared)
    if wanted in choices and st.session_state.get(key) != wanted:
        st.session_state[key] = wanted
    elif key in st.session_state and st.session_state[key] not in choices:
        del st.session_state[key]  # the chosen item is gone (deleted elsewhere): start from the first

    def remember() -> None:
        st.session_state[shared] = st.session_state[key]

    value = st.selectbox(label, choices, key=key, on_change=remember, format_func=format_func, **kwargs)
    st.session_state[shared] = value
    return value


def approved_versions(p) -> dict:
    """Registry versions the approval rule lets serve, by ``"group:number"`` (what a ``?version=`` link names),
    newest first."""
    return {f"{v.group}:{v.version}": v for g in p.model_groups() for v in p.list_versions(g["name"])
            if not p.deploy_refusal(v)}
