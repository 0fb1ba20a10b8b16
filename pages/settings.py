"""Settings: the configuration in force (read-only: it comes from the environment) and a connection check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.formatting import status_words, when
from app.service import attempt, gate, platform, run_repair

p = platform()
st.title("Settings")
st.caption("Set these with environment variables before `make run` (see README and `.env.example`); "
           "the dashboard shows them but never changes them.")
settings_rows = pd.DataFrame([(k, str(v)) for k, v in p.settings.public_view().items()], columns=["setting", "value"])
st.table(settings_rows.set_index("setting"))  # a plain table wraps long names and paths instead of cutting them

if st.button("Check connection", type="primary"):
    checks = attempt(p.check_connection) or []
    for what, passed, detail in checks:
        (st.success if passed else st.error)(
            f"**{what}:** {detail}", icon=":material/check_circle:" if passed else ":material/block:"
        )

st.subheader("Drift alerts")
st.caption("A scheduled drift report that finds drift posts {\"text\": …} to this webhook (a Slack or Teams "
           "incoming webhook, or any http/https URL); empty: no alerts.")
alerts = attempt(p.alert_webhook) or {"webhook": ""}
with st.form("alert_webhook"):
    url = st.text_input("Alert webhook URL", value=alerts["webhook"], key="alert_webhook_url")
    save, test = st.columns(2)
    if save.form_submit_button("Save webhook", type="primary", **gate(p, "alert_webhook")):
        if attempt(p.alert_webhook, url) is not None:
            st.success("Alert webhook saved." if url.strip() else "Alert webhook removed: no alerts are sent.")
    if test.form_submit_button("Send a test alert", **gate(p, "alert_webhook")):
        if attempt(p.alert_webhook, url, True) is not None:
            st.success("Test alert delivered.")
st.subheader("Customer data")
retention = p.settings.data_retention_days
st.caption("Every place customer rows live, with size and age. "
           + (f"Data older than {retention:g} days is deleted (CHURN_DATA_RETENTION_DAYS), on connect."
              if retention else "No retention is set (CHURN_DATA_RETENTION_DAYS): data stays until deleted.")
           + " Delete a dataset with everything derived from it on the Data page.")
places = attempt(p.customer_data)
if places is not None and len(places):
    st.dataframe(places.assign(oldest=places["oldest"].map(lambda t: when(t.timestamp()))), hide_index=True,
                 width="stretch")
elif places is not None:
    st.caption("No customer data is kept.")

st.subheader("Catalog")
health = p.catalog_health()
if health.ok:
    backup = f"last backup {when(health.backup_at)} ({health.backup})" if health.backup else "no backup yet"
    st.success(f"**{health.path}** passes SQLite's integrity check · {backup}", icon=":material/verified:")
else:
    st.error(health.message, icon=":material/database:")
st.caption("A backup is made after changes, at most every minute, and kept only when it passes the integrity "
           "check. Restoring puts the last backup back and adds what was made after it; rebuilding reads every "
           "record the current file still gives up plus what is on disk. Both keep the old file next to it.")
cols = st.columns(3)
if cols[0].button("Back up now", key="catalog_backup_now", **gate(p, "backup_catalog")):
    made = attempt(p.backup_catalog)
    (st.success(f"Backed up to {made}.") if made else st.warning("No backup was made (another one is running, "
                                                                  "or the catalog failed its integrity check)."))
if cols[1].button("Restore the backup", key="catalog_restore",
                  **gate(p, "restore_catalog_backup", health.backup is None)):
    st.session_state["confirm_catalog"] = "restore"
if cols[2].button("Rebuild from disk", key="catalog_rebuild_page", **gate(p, "rebuild_catalog")):
    st.session_state["confirm_catalog"] = "rebuild"
pending = st.session_state.get("confirm_catalog")
if pending:
    st.warning(f"{'Restore the last backup' if pending == 'restore' else 'Rebuild the catalog from disk'}? The "
               "current catalog file is kept next to it as churn.db.damaged-<time>.")
    yes, no = st.columns(2)
    if yes.button("Yes, go ahead", type="primary", key="catalog_confirm"):
        st.session_state.pop("confirm_catalog", None)
        run_repair(p.restore_catalog_backup if pending == "restore" else p.rebuild_catalog)
    if no.button("Cancel", key="catalog_cancel"):
        st.session_state.pop("confirm_catalog", None)
        st.rerun()

st.subheader("Recent events")
events = p.events(limit=50)
if events:
    st.dataframe(
        pd.DataFrame(
            [{"at": when(e["at"]), "who": e.get("user") or "(system)", "kind": e["kind"], "name": e["name"],
              "event": status_words(e["message"])}
             for e in events]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("Nothing has happened yet.")
