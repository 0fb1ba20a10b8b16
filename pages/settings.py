"""Settings: the configuration in force (read-only: it comes from the environment) and a connection check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.service import attempt, platform
from app.widgets import status_words, when

p = platform()
st.title("Settings")
st.caption("Set these with environment variables before `make run` (see README and `.env.example`); "
           "the dashboard shows them but never changes them.")
settings_rows = pd.DataFrame([(k, str(v)) for k, v in p.settings.public_view().items()], columns=["setting", "value"])
st.dataframe(settings_rows, hide_index=True, width="stretch", height=35 * (len(settings_rows) + 1) + 3)

if st.button("Check connection", type="primary"):
    checks = attempt(p.check_connection) or []
    for what, passed, detail in checks:
        (st.success if passed else st.error)(
            f"**{what}:** {detail}", icon=":material/check_circle:" if passed else ":material/block:"
        )

st.subheader("Recent events")
events = p.events(limit=50)
if events:
    st.dataframe(
        pd.DataFrame(
            [{"at": when(e["at"]), "kind": e["kind"], "name": e["name"], "event": status_words(e["message"])}
             for e in events]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("Nothing has happened yet.")
