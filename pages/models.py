"""Models: the registry. Register trained models as versions, approve or reject them, move the
champion/challenger aliases, deploy an approved version, and read each version's lineage."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.formatting import METRIC_LABELS, count_text, threshold_text, when
from app.navigation import link_to_follow, page
from app.service import allowed, attempt, platform
from churn_core import ChurnError
from churn_core.training.hyperparameters import ALGORITHMS
from churn_core.registry.model_registry import ALIASES, APPROVED, PENDING, STATUS_WORDS

p = platform()
st.title("Models")
mode = ("Every deploy serves **an approved version** (CHURN_REQUIRE_APPROVAL=1)." if p.settings.require_approval
        else "A version serves once approved; a training job's model can also be deployed directly from Endpoints "
             "(set CHURN_REQUIRE_APPROVAL=1 to require approval for every deploy).")
st.caption(f"Registered versions of trained models, with their approval and aliases. {mode}")

completed = p.job_names(limit=200, status="Completed")
with st.expander("Register a trained model", expanded=not p.model_groups()):
    if not completed:
        st.info("No trained model yet: a Completed training job produces one.")
        st.page_link(page("train"), label="Go to Train", icon=":material/model_training:")
    else:
        if followed := link_to_follow("model", completed):
            st.session_state["register_model"] = followed
        with st.form("register"):
            model = st.selectbox("Trained model (training job)", completed, key="register_model")
            group = st.text_input("Model group", placeholder="the model's dataset name",
                                  help="Versions of one model group are numbered 1, 2, 3 … Leave empty for one "
                                       "group per dataset.")
            note = st.text_input("Note", placeholder="why this version (optional)")
            may_register, why_not = allowed(p, "register")
            registered = st.form_submit_button("Register version", type="primary", disabled=not may_register,
                                               help=why_not or None)
            if why_not:
                st.caption(why_not)
        if registered:
            version = attempt(p.register, model, group.strip() or None, note.strip() or None)
            if version:
                st.session_state["models_group"] = version.group
                st.session_state["models_version"] = version.version  # what you register is what you decide on next
                st.success(f"Registered **{version.label}** from {model}: {version.status_text}.")

groups = p.model_groups()
if not groups:
    st.info("No registered versions yet.")
    st.stop()

names = [g["name"] for g in groups]
wanted = st.session_state.get("models_group")
counts = {g["name"]: g["versions"] for g in groups}
group = st.selectbox("Model group", names, index=names.index(wanted) if wanted in names else 0,
                     format_func=lambda n: f"{n} ({count_text(counts[n], 'version')})")
st.session_state["models_group"] = group
versions = p.list_versions(group)

def metrics_in_force(v) -> dict:
    """The version's test-split metrics with the label-based ones (F1, precision, recall, accuracy) at its own
    threshold; as training measured them (at 0.5) when its held-out customers are gone."""
    try:
        return {**v.metrics, **p.evaluation((v.group, v.version))["at_threshold"]["metrics"]}
    except ChurnError:
        return v.metrics


st.dataframe(pd.DataFrame([{
    "version": f"v{v.version}", "aliases": ", ".join(v.aliases), "status": v.status_text, "training job": v.model,
    "algorithm": ALGORITHMS.get(v.algorithm, {}).get("label", v.algorithm),
    **{label: metrics.get(key) for key, label in METRIC_LABELS.items()},
    "threshold": threshold_text(v.threshold),  # the version's own: what an endpoint serving it labels at
    "registered": when(v.created_at), "note": v.note,
} for v in versions for metrics in [metrics_in_force(v)]]), width="stretch", hide_index=True,
    column_config={label: st.column_config.NumberColumn(format="%.3f") for label in METRIC_LABELS.values()})
st.caption("F1, precision, recall and accuracy at each version's own threshold (the threshold column); ROC AUC, PR AUC "
           "and log loss do not depend on it.")

labels = {v.version: v.label for v in versions}
if st.session_state.get("models_version") not in labels:  # another group was chosen
    st.session_state.pop("models_version", None)
number = st.selectbox("Version", list(labels), format_func=labels.get, key="models_version")
version = next(v for v in versions if v.version == number)
st.markdown(f"**{version.label}** · {version.status_text}"
            + (f" ({when(version.status_at)}: {version.status_note})" if version.status_note else "")
            + f" · trained by job `{version.model}` on dataset `{version.dataset}`")

decide, alias_col, deploy_col = st.columns(3)
with decide:
    st.markdown("**Approval**")
    if st.session_state.get("decision_note_for") != (group, number):  # a note is for one version: v2's never
        st.session_state.pop("decision_note", None)                   # carries over to v3
        st.session_state["decision_note_for"] = (group, number)
    decision_note = st.text_input("Note for the decision", key="decision_note", placeholder="what you checked")
    left, right = st.columns(2)
    may_decide, why_not = allowed(p, "approve")
    four_eyes = p.approval_refusal(version) if may_decide and version.status != APPROVED else ""
    if left.button("Approve", type="primary", disabled=version.status == APPROVED or not may_decide or bool(four_eyes),
                   key="approve", help=why_not or four_eyes or None):
        if attempt(p.approve, group, number, decision_note):
            st.session_state.pop("decision_note", None)
            st.rerun()
    if right.button("Reject", disabled=(version.status != PENDING and version.status != APPROVED) or not may_decide,
                    key="reject", help=why_not or None):
        if attempt(p.reject, group, number, decision_note):
            st.session_state.pop("decision_note", None)
            st.rerun()
    if why_not or four_eyes:
        st.caption(why_not or four_eyes)
with alias_col:
    st.markdown("**Aliases**")
    for alias in ALIASES:
        if alias in version.aliases:
            st.caption(f"This version is the **{alias}**.")
        elif st.button(f"Make {alias}", key=f"alias_{alias}", disabled=not may_decide, help=why_not or None):
            if attempt(p.set_alias, group, number, alias):
                st.rerun()
with deploy_col:
    st.markdown("**Deploy**")
    if refusal := p.deploy_refusal(version):
        st.caption(refusal)
    else:
        st.page_link(page("endpoints"), label=f"Deploy {version.label}", icon=":material/rocket_launch:",
                     query_params={"version": f"{group}:{number}"})

st.subheader("Lineage")
for row in p.lineage(group):
    served = "; ".join(f"{e['endpoint']} ({e['variant']}, {when(e['started_at'])} – "
                       f"{when(e['ended_at']) if e['ended_at'] else 'now'})" for e in row["endpoints"])
    decided = f"{STATUS_WORDS.get(row['status'], row['status'])} by"
    who = " · ".join(f"{what} {row[key]}" for what, key in (("trained by", "trained_by"),
                     ("registered by", "registered_by"), (decided, "status_by")) if row.get(key))
    deployed = sorted({e["deployed_by"] for e in row["endpoints"] if e.get("deployed_by")})
    who += f" · deployed by {', '.join(deployed)}" if deployed else ""
    st.markdown(f"- dataset **{row['dataset']}** (`{row['dataset_sha256'][:12]}…`) → job **{row['job']}** → "
                f"**{row['label']}** ({STATUS_WORDS.get(row['status'], row['status'])}) → {served or 'not deployed'}"
                + (f"  \n  {who}" if who else ""))

with st.expander("Audit trail"):
    events = [e for e in p.events("registry", limit=500)
              if e["name"] == group or e["name"].startswith(f"{group}/")]
    st.dataframe(pd.DataFrame([{"at": when(e["at"]), "who": e.get("user") or "(system)", "what": e["name"],
                                "event": e["message"]} for e in events]), hide_index=True, width="stretch")
