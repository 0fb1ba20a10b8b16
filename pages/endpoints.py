"""Endpoints: deploy a trained model, watch endpoints live (with what they would cost), delete and clean up."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import capture_view, rollout_view
from app.formatting import STATUS_HELP, duration_text, status_badge, status_label, status_words, when
from app.navigation import link_to_follow, page
from app.pickers import shared_selectbox
from app.pickers import approved_versions
from app.service import attempt, gate, platform
from churn_core.names import default_endpoint_name
from churn_core.endpoints.pricing import INSTANCE_TYPES, PRICE_REGION, PRICES_AS_OF, hourly_price

IDLE_WARNING_SECONDS = 15 * 60


def latency_text(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:.1f}"

p = platform()
st.title("Endpoints")

def forget_removed() -> None:
    """The "Removed: …" line stays until the next deploy or delete (runs before the page does)."""
    st.session_state.pop("removed", None)


if st.session_state.get("removed") is not None:
    removed = st.session_state["removed"]
    if removed:
        st.success("Removed: " + "; ".join(
            f"endpoint {r['endpoint']}, config {r['endpoint_config']}, deployed-model record {r['model']}"
            for r in removed) + ". The trained models are kept.")
    else:
        st.info("Nothing to remove: no endpoints exist.")

models = p.model_names()
approved = approved_versions(p)
linked_model = st.query_params.get("model")  # set by the Jobs page's "Deploy this model" link
linked_version = st.query_params.get("version")  # set by the Models page: "group:number"
# Opened for a link or when there is no endpoint yet, and then kept open for the session: an expander whose
# ``expanded`` changes between runs closes under the user's hands (it did right after the first deploy).
if linked_model or linked_version or not p.endpoint_names():
    st.session_state["deploy_open"] = True
with st.expander("Deploy a model", expanded=st.session_state.get("deploy_open", False)):
    sources = ["A trained model", "An approved registry version"]
    if followed_version := link_to_follow("version", list(approved)):
        st.session_state["deploy_source"] = sources[1]
        st.session_state["deploy_version_picker"] = followed_version
    by_version = st.radio("Deploy", sources, horizontal=True, key="deploy_source",
                          index=1 if linked_version or p.settings.require_approval else 0,
                          help="Only approved versions can be deployed when CHURN_REQUIRE_APPROVAL=1.") == sources[1]
    if by_version and not approved:
        st.info("No approved version yet: register and approve one on the Models page.")
        st.page_link(page("models"), label="Go to Models", icon=":material/inventory_2:")
    elif not by_version and not models:
        st.info("No trained model yet: a Completed training job produces one.")
        st.page_link(page("train"), label="Go to Train", icon=":material/model_training:")
    else:
        if by_version:
            chosen = st.selectbox("Approved version", list(approved), format_func=lambda k: approved[k].label,
                                  key="deploy_version_picker")
            model = approved[chosen].model
        else:
            if linked_model and linked_model not in models:
                st.warning(f"There is no trained model named {linked_model!r} (its job may not have completed); "
                           "pick one below.")
            if followed := link_to_follow("model", models):
                st.session_state["deploy_model_picker"] = followed
            model = st.selectbox("Model (from a completed job)", models, key="deploy_model_picker")
        with st.form("deploy"):
            endpoint_name = st.text_input("Endpoint name", value=default_endpoint_name(model))
            left, right = st.columns(2)
            default_type = p.settings.endpoint_instance_type
            instance_type = left.selectbox(
                "Instance type", INSTANCE_TYPES, index=INSTANCE_TYPES.index(default_type) if default_type in
                INSTANCE_TYPES else 0, format_func=lambda t: f"{t} (${hourly_price(t):.3f}/h on SageMaker)")
            count = right.number_input("Instance count", 1, 8, 1,
                                       help="On the local backend each instance is one worker process.")
            deploy = st.form_submit_button("Deploy", type="primary", on_click=forget_removed, **gate(p, "deploy"))
        if deploy:
            with st.spinner(f"Deploying {endpoint_name}…"):
                if by_version:
                    version = approved[chosen]
                    ep = attempt(p.deploy_version, version.group, version.version, endpoint_name.strip(),
                                 instance_type, int(count), wait=p.offers.quick_deploy, timeout=60)
                else:
                    ep = attempt(p.deploy, model, endpoint_name.strip(), instance_type, int(count),
                                 wait=p.offers.quick_deploy, timeout=60)
            if ep:
                st.query_params.pop("model", None)
                st.query_params.pop("version", None)
                st.session_state["selected_endpoint"] = ep.name
                if ep.status == "Failed":
                    st.error(f"{ep.name} failed: {ep.failure_reason}")
                else:
                    st.toast(f"{ep.name}: {status_words(ep.status).lower()}", icon=":material/rocket_launch:")
                    st.success(f"Endpoint **{ep.name}** is {status_words(ep.status).lower()}.")


names = p.endpoint_names()


@st.fragment(run_every=2)
def live_table() -> None:
    endpoints = attempt(p.list_endpoints)
    if endpoints is None:
        return
    if sorted(e.name for e in endpoints) != sorted(names):
        st.rerun()  # deployed or deleted elsewhere (another tab, the API): the picker and buttons must follow
    if not endpoints:
        st.info("No endpoints. Deploy a model above.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {  # what an analyst watches first; the long URL last (it is also shown in full below)
                    "name": e.name,
                    "status": status_label(e.status),
                    "invocations": e.invocations,
                    "latency ms": latency_text(e.stats.get("p50_latency_ms") or e.stats.get("avg_latency_ms")),
                    "est. cost (USD)": e.estimated_cost_usd,
                    "uptime": duration_text(e.uptime),
                    "idle": duration_text(e.idle_seconds) if e.status == "InService" else "—",
                    "model": e.model,
                    "deployed by": e.created_by or "—",
                    "instance": f"{e.instance_count} × {e.instance_type}",
                    "drift": p.drift_badge(e.name),
                    "URL": e.url,
                }
                for e in endpoints
            ]
        ),
        width="stretch",
        hide_index=True,
        column_config={
            "status": st.column_config.TextColumn(help=STATUS_HELP),
            "invocations": st.column_config.NumberColumn(help="Requests answered since the endpoint started"),
            "est. cost (USD)": st.column_config.NumberColumn(format="$%.4f", help="What the uptime would cost on "
                                                             "SageMaker (see the note below the table)"),
            "latency ms": st.column_config.TextColumn(help="median (local) or average (CloudWatch); — before the "
                                                      "first request"),
            "URL": st.column_config.TextColumn(width="small"),
        },
    )
    st.caption(
        f"Estimated cost = uptime × SageMaker on-demand price in {PRICE_REGION} (as of {PRICES_AS_OF}); "
        "real-time endpoints bill until deleted."
    )
    idle = [e for e in endpoints if e.status == "InService" and e.idle_seconds > IDLE_WARNING_SECONDS]
    if idle:
        st.warning(
            "Idle endpoints still bill on SageMaker; delete them if unused: "
            + "; ".join(
                f"**{e.name}** idle {duration_text(e.idle_seconds)} (${hourly_price(e.instance_type) or 0:.3f}/h "
                "per instance)"
                for e in idle[:5]
            )
            + (f"; and {len(idle) - 5} more" if len(idle) > 5 else "")
        )
    failed = [e for e in endpoints if e.status == "Failed"]
    if failed:
        st.error(
            "Failed: "
            + "; ".join(f"**{e.name}**: {e.failure_reason}" for e in failed[:5])
            + (f"; and {len(failed) - 5} more (see the table)" if len(failed) > 5 else "")
        )


st.subheader("Live endpoints")
live_table()

ep = None
if names:  # follows a deploy made on this page (or the Predict page's choice, or a ?endpoint= link)
    if followed_endpoint := link_to_follow("endpoint", names):
        st.session_state["selected_endpoint"] = followed_endpoint
    selected = shared_selectbox("Endpoint", names, "endpoint_picker", "selected_endpoint")
    ep = attempt(p.describe_endpoint, selected)
if ep:
    st.markdown(
        f"**{ep.name}** {status_badge(ep.status)} · model `{ep.model}` · created {when(ep.created_at)} · "
        f"restarts {ep.restarts}"
    )
    if ep.url:
        st.code(ep.url, language="text")
    snippets = attempt(p.client_snippets, ep.name)
    if snippets:
        st.markdown(
            "Call it from Python with the SageMaker runtime client, with a typical customer of this "
            "model's training data:"
        )
        st.code(snippets["python"], language="python", wrap_lines=True)
        st.code(snippets["curl"], language="bash", wrap_lines=True)
    if ep.status in ("InService", "Updating"):
        rollout_view.render(p, ep)
    if ep.status == "InService":
        st.markdown("**Data capture**")
        capture_view.render(p, ep)
    with st.expander("Log and events"):
        st.code(p.endpoint_log(ep.name, 40) or "(no log)", language="text")
        st.dataframe(
            pd.DataFrame([{"at": when(ev["at"]), "who": ev.get("user") or "(system)",
                           "event": status_words(ev["message"])}
                          for ev in p.events("endpoint", ep.name, 20)]),
            hide_index=True,
            width="stretch",
        )

    if st.button(f"Delete {ep.name}", key="delete_endpoint", on_click=forget_removed,
                 **gate(p, "delete_endpoint")):
        st.session_state["confirm"] = ("delete", ep.name)

st.divider()
if st.button(
    "Clean up all endpoints",
    key="cleanup_all",
    on_click=forget_removed,
    help="Deletes every endpoint this app created, with its endpoint config and deployed-model record; the "
         "trained models are kept.",
):
    st.session_state["confirm"] = ("cleanup", None)


def confirm_dialog(action: str, name: str | None) -> None:
    if action == "delete":
        ep = attempt(p.describe_endpoint, name)
        trained = f" **{ep.model}**" if ep else ""
        st.write(f"Delete endpoint **{name}**?")
        st.markdown(
            "- **Removed:** the endpoint, its endpoint config and its deployed-model record (SageMaker's *Model* "
            "resource made for this endpoint); its server stops and billing ends.\n"
            f"- **Kept:** the trained model{trained} with its metrics and files: deploy it again at any time."
        )
    else:
        listed = attempt(p.list_endpoints) or []
        st.write("This deletes every endpoint this app created. For each, the endpoint, its endpoint config and "
                 "its deployed-model record are removed; the trained models are kept and can be deployed again.")
        st.markdown(
            "\n".join(f"- **{e.name}** (config `{e.config}`, from trained model `{e.model}`)" for e in listed)
            or "- none recorded here; the backend is still asked for endpoints this app created"
        )
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", key="confirm_yes"):
        st.session_state.pop("confirm", None)
        if action == "delete":
            removed = attempt(p.delete_endpoint, name)
            removed_list = [removed] if removed else []
        else:
            removed_list = attempt(p.cleanup) or []
        st.session_state["removed"] = removed_list
        st.rerun()
    if no.button("Cancel", key="confirm_no"):
        st.session_state.pop("confirm", None)
        st.rerun()


if st.session_state.get("confirm"):
    action = st.session_state["confirm"][0]
    st.dialog("Delete endpoint" if action == "delete" else "Clean up all endpoints")(confirm_dialog)(
        *st.session_state["confirm"])
