"""Campaign planner: from churn probabilities to whom to contact, at which threshold, for what profit."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.charts import calibration_figure, confusion_figure, gains_figure, profit_figure
from app.formatting import METRIC_LABELS, when
from app.navigation import link_to_follow, page
from app.service import attempt, gate, platform
from churn_core.training.hyperparameters import ALGORITHMS
from churn_core.decisions import campaign

p = platform()
st.title("Campaign planner")
st.caption("Whom to contact in a retention campaign: the threshold that maximises expected profit on the model's "
           "held-out customers (customers it never saw in training), and what that means in customers and money.")

models = p.job_names(limit=200, status="Completed")
if not models:
    st.info("No trained model yet: a Completed training job produces one.")
    st.page_link(page("train"), label="Go to Train", icon=":material/model_training:")
    st.stop()
if followed := link_to_follow("model", models):
    st.session_state["planner_model"] = followed
described = {m["name"]: m for m in p.list_models()}  # one read: each job's dataset and algorithm, in words


def model_words(name: str) -> str:
    m = described.get(name) or {}
    algorithm = ALGORITHMS.get(m.get("algorithm"), {}).get("label", m.get("algorithm") or "model")
    return f"{name} · {algorithm} on {m['dataset']}" if m.get("dataset") else name


model = st.selectbox("Model (training job)", models, key="planner_model", format_func=model_words)
# A threshold belongs to the model that serves it: the job's model until it is registered, then each version.
versions = {(v.group, v.version): v.label for v in reversed(p.versions_of_model(model))}
owner = st.selectbox("Threshold of", [*versions, model], key=f"planner_owner_{model}",
                     format_func=lambda o: f"{versions[o]} (registered version: endpoints serving it)" if o in versions
                     else f"model {o} (the job's model: endpoints deploying it as itself, later registrations)")
owner_label = versions.get(owner, model)
current = p.model_threshold(owner)
record = p.threshold_record(owner)
if done := st.session_state.pop("planner_done", None):
    st.success(done)
st.markdown(f"Current decision threshold of **{owner_label}**: **{current:.3f}**"
            + (f" · set {when(record['set_at'])} by {record['set_by']}" + (f": {record['note']}" if record.get("note")
                                                                             else "")
               if record.get("set_at") else " (the default)"))
if record.get("endpoints_behind"):
    st.warning(f"Still labelling at an older threshold of {owner_label}: {', '.join(record['endpoints_behind'])} "
               "(the update could not run then).", icon=":material/sync_problem:")
    if st.button("Update them now", key="planner_update_behind"):
        attempt(p.set_threshold, owner, current, "endpoints brought up to date")

y, proba = p.test_predictions(owner)
headline = st.container()  # the plan's figures, above its inputs: what the page is for, seen without scrolling
# The inputs are remembered per model (or version): this session's last plan, else the plan its threshold came from.
remembered = st.session_state.setdefault("planner_inputs", {})
owner_key = repr(owner)
start = {"offer_cost": campaign.DEFAULT_OFFER_COST, "customer_value": campaign.DEFAULT_CUSTOMER_VALUE,
         "save_rate": campaign.DEFAULT_SAVE_RATE, "budget": None, "customers": len(y), "budget_money": None}
start.update({k: v for k, v in (record.get("campaign") or {}).items() if k in start})
start.update(remembered.get(owner_key, {}))
with st.form(f"campaign_inputs_{owner_key}"):
    # Three a row (values stay readable at 1024 px). No min/max: a value out of range is refused with its reason.
    cols = st.columns(3)
    offer_cost = cols[0].number_input("Cost of one offer", value=float(start["offer_cost"]), step=1.0,
                                      help="What contacting one customer costs (the discount, the call).")
    value = cols[1].number_input("Value of a customer kept", value=float(start["customer_value"]), step=10.0,
                                 help="What keeping one customer who would have left is worth.")
    save_rate = cols[2].number_input("Churners the offer saves", value=float(start["save_rate"]), step=0.05,
                                     format="%.2f",
                                     help="Share of the contacted customers who would have left that the offer keeps "
                                          "(0 to 1).")
    base_cols = st.columns(3)
    customers = base_cols[0].number_input("Customer base (customers)", value=int(start["customers"] or len(y)),
                                          step=100, help="How many customers the campaign is for; counts, profit and "
                                                         "the budget scale to it. Default: the test split's size.")
    budget = base_cols[1].number_input("Budget (customers, optional)", value=start["budget"], step=10,
                                       placeholder="no limit", help="At most this many customers of the customer "
                                                                    "base contacted.")
    budget_money = base_cols[2].number_input("Budget (money, optional)", value=start["budget_money"], step=100.0,
                                             placeholder="no limit", help="At most this much spent on offers.")
    if st.form_submit_button("Plan the campaign", type="primary", **gate(p, "plan_campaign")):
        remembered[owner_key] = {"offer_cost": offer_cost, "customer_value": value, "save_rate": save_rate,
                                 "budget": budget, "customers": customers, "budget_money": budget_money}
st.caption(f"Defaults: an offer costs {campaign.DEFAULT_OFFER_COST:g}, a kept customer is worth "
           f"{campaign.DEFAULT_CUSTOMER_VALUE:g}, the offer saves {campaign.DEFAULT_SAVE_RATE:.0%} of the churners "
           "it reaches; change them to your campaign's figures.")

plan = attempt(p.plan_campaign, owner, offer_cost, value, save_rate, int(budget) if budget is not None else None,
               int(customers), budget_money)
if plan is None:  # an input was refused: its reason is shown above, and no plan for other values
    st.stop()
st.caption(f"Planned for **{owner_label}** on the held-out customers of {model}.")

cards = headline.columns(5)
cards[0].metric("Best threshold", f"{plan.threshold:.3f}")
cards[1].metric("Customers contacted", f"{plan.contacted:,} of {plan.customers:,}")
headline.caption(f"Threshold picked on {plan.picked_on}; figures measured on the test split's {plan.held_out:,} "
                 "customers" + (f", scaled to a base of {plan.customers:,}." if plan.scale != 1 else "."))
cards[2].metric("Churners caught (recall)", f"{plan.recall:.0%}")
cards[3].metric("Precision", f"{plan.precision:.0%}")
cards[4].metric("Expected profit", f"{plan.expected_profit:,.0f}")
st.info(plan.explain(), icon=":material/calculate:")

threshold = st.slider("Threshold to look at", 0.0, 1.0, plan.threshold, 0.001, format="%.3f",
                      key=f"planner_threshold_{model}_{plan.threshold!r}",
                      help="Move it to see the confusion matrix and figures at another threshold.")
at = campaign.figures_at(y, proba, threshold, offer_cost, value, save_rate, plan.scale)
st.markdown(f"At **{threshold:.3f}**: {at['contacted']:,.0f} of {plan.customers:,} customers contacted, "
            f"{at['caught']:,.0f} of {plan.churners:,} churners caught, expected profit "
            f"**{at['expected_profit']:,.0f}**.")

with st.expander("Or contact the riskiest k % of customers"):
    top = plan.top_k[plan.top_k["top_percent"].isin([5, 10, 20, 30, 50, 100])]
    st.dataframe(pd.DataFrame({
        "contact the riskiest": [f"{k} %" for k in top["top_percent"]],
        "customers contacted": (top["contacted"] * plan.scale).round().astype(int),
        "churners caught": (top["caught"] * plan.scale).round().astype(int),
        "expected profit": (top["expected_profit"] * plan.scale).round().astype(int)}),
        hide_index=True, width="stretch")
    st.caption("The same arithmetic with a share of customers instead of a threshold: useful when the campaign is "
               "sized by the call centre rather than by risk.")

left, right = st.columns(2)
left.plotly_chart(profit_figure(plan.curve, threshold, current), width="stretch")
right.plotly_chart(confusion_figure({"confusion_matrix": campaign.confusion_at(y, proba, threshold),
                                     "threshold": round(threshold, 3)}), width="stretch")
left.plotly_chart(gains_figure(campaign.gains_by_decile(y, proba)), width="stretch")
right.plotly_chart(calibration_figure(campaign.calibration(y, proba)), width="stretch")

note = st.text_input("Note (why this threshold)", key="planner_note", placeholder="e.g. Q1 retention campaign")
# The slider shows 3 decimals: at the plan's own value, the plan's exact threshold is stored (the headline's).
chosen = plan.threshold if threshold == float(round(plan.threshold, 3)) else threshold
if st.button(f"Use threshold {threshold:.3f} for {owner_label}", type="primary", key="use_threshold"):
    if attempt(p.set_threshold, owner, chosen, note.strip() or None, plan) is not None:
        behind = p.threshold_record(owner).get("endpoints_behind")
        st.session_state["planner_done"] = (
            f"**{owner_label}** now labels customers above {threshold:.3f} as likely to churn: the endpoints serving "
            "it (updated now, without downtime), batch transform output and the Predict page use it."
            + (f" Not updated yet: {', '.join(behind)}." if behind else ""))
        st.rerun()  # the header above shows the threshold now in force

st.divider()
st.subheader(f"{model} on new data")
st.caption("Upload customers whose outcome you know (e.g. last month's, with what they did) to see whether the model "
           "still holds: the same figures as on its test split, side by side.")
labelled = st.file_uploader("Labelled customers (CSV or Excel)", key="evaluate_upload",
                            help="The model's feature columns and the target column it was trained on, e.g. "
                                 "last month's customers with what they did.")
if labelled is not None:
    result = attempt(p.evaluate, model, labelled.getvalue())
    if result:
        st.markdown(f"**{model} on {labelled.name}** ({result['rows']:,} customers, threshold "
                    f"{result['threshold']:.3f})")
        names = ["roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss"]
        money = result["campaign"]
        st.dataframe({"metric": [METRIC_LABELS.get(n, n) for n in names] + ["Expected profit per 1,000 customers"],
                      f"on {labelled.name}": [result["metrics"].get(n) for n in names]
                      + [round(money["file"]["expected_profit"])],
                      "on its test split": [result["test_split_metrics"].get(n) for n in names]
                      + [round(money["test_split"]["expected_profit"]) if "test_split" in money else None]},
                     hide_index=True, width="stretch")
        inputs = money["inputs"]
        st.caption(f"Profit at threshold {result['threshold']:.3f} for an offer costing {inputs['offer_cost']:g}, a "
                   f"kept customer worth {inputs['customer_value']:g} and {inputs['save_rate']:.0%} of reached "
                   "churners saved (the campaign its threshold was planned for, else the defaults).")
        st.plotly_chart(confusion_figure({"confusion_matrix": result["confusion_matrix"],
                                          "threshold": round(result["threshold"], 3)}), width="stretch",
                        key="evaluate_confusion")
