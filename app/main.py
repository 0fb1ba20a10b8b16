"""Streamlit entry: ``python -m streamlit run app/main.py`` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.navigation import pages  # noqa: E402
from app.service import account, backend_caption, show_catalog_damage  # noqa: E402
from churn_core.errors import CatalogDamagedError  # noqa: E402

st.set_page_config(page_title="Churn control plane", page_icon=":material/trending_down:", layout="wide")
st.html(f"<style>{(ROOT / 'app' / 'style.css').read_text()}</style>")  # style only: takes no room on the page
navigation = st.navigation(list(pages().values()))
with st.sidebar:
    st.caption(backend_caption())
account()  # who acts, in the sidebar; team mode: nothing but sign-in until someone has signed in
try:
    navigation.run()
except CatalogDamagedError as exc:  # found by a page after it opened the platform: its message, not a traceback
    show_catalog_damage(exc)
