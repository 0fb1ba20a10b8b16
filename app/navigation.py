"""The dashboard's pages, defined once so any page can link to another."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]

_SPEC = [
    ("data", "Data", ":material/database:"),
    ("train", "Train", ":material/model_training:"),
    ("jobs", "Jobs", ":material/monitoring:"),
    ("endpoints", "Endpoints", ":material/cloud_upload:"),
    ("predict", "Predict", ":material/person_search:"),
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
