"""The dashboard's pages, defined once so any page can link to another."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]

_SPEC = [
    ("data", "Data", ":material/database:"),
    ("train", "Train", ":material/model_training:"),
    ("jobs", "Jobs", ":material/monitoring:"),
    ("models", "Models", ":material/inventory_2:"),
    ("planner", "Campaign planner", ":material/campaign:"),
    ("endpoints", "Endpoints", ":material/cloud_upload:"),
    ("predict", "Predict", ":material/person_search:"),
    ("batch", "Batch", ":material/batch_prediction:"),
    ("monitor", "Monitor", ":material/monitor_heart:"),
    ("settings", "Settings", ":material/settings:"),
]
_PAGES: dict[str, st.Page] = {}


def pages() -> dict[str, st.Page]:
    if not _PAGES:
        for key, title, icon in _SPEC:
            _PAGES[key] = st.Page(ROOT / "pages" / f"{key}.py", title=title, icon=icon, default=key == "data")
    return _PAGES


def page(key: str) -> st.Page:
    return pages()[key]


def link_to_follow(param: str, choices: list[str]) -> str | None:
    """The choice a link such as ``?model=NAME`` points at, the first time the page sees that link
    (so a picker the link set stays the user's afterwards); None otherwise or if it is not a choice."""
    linked = st.query_params.get(param)
    seen = f"_followed_link_{param}"
    if linked in choices and st.session_state.get(seen) != linked:
        st.session_state[seen] = linked
        return linked
    return None
