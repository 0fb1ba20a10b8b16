"""The Train page's *Tune* tab: start a tuning job from ranges, then follow its leaderboard live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.charts import tuning_hyperparameters_figure, tuning_progress_figure
from app.formatting import METRIC_LABELS, count_text, duration_text, status_badge, status_label, when
from app.navigation import link_to_follow, page
from app.service import attempt, ok
from churn_core.training.hyperparameters import ALGORITHMS, default_ranges

STRATEGIES = {"bayesian": "Bayesian (Optuna TPE)", "random": "Random"}


def chosen() -> bool:
    """Draw the Train page's *Launch | Tune* switch; True when *Tune* is chosen (a ``?tuning=`` link chooses it)."""
    if st.query_params.get("tuning") and "train_mode" not in st.session_state:
        st.session_state["train_mode"] = "Tune"
    mode = st.segmented_control("Mode", ["Launch", "Tune"], default="Launch", key="train_mode",
                                label_visibility="collapsed")
    return mode == "Tune"


def render(p, labels: dict[str, str]) -> None:
    """``labels``: dataset name → label, as the Launch tab shows them."""
    st.caption("A tuning job trains many models with hyperparameters picked from the ranges below and keeps the "
               "best by the objective. Each trial is an ordinary training job (Jobs page) named after the tuning job.")
    start_form(p, labels)
    st.divider()
    follow(p)


def _range_inputs(algorithm: str) -> dict:
    """One row per hyperparameter: tune it (with a range) or keep its default."""
    defaults = default_ranges(algorithm)
    ranges: dict = {}
    for param in ALGORITHMS[algorithm]["params"]:
        key = f"tune_{algorithm}_{param.name}"
        suggested = defaults.get(param.name)
        tune_box, *boxes = st.columns([1.3, 1, 1, 1])
        tuned = tune_box.checkbox(f"Tune {param.title}", value=suggested is not None, key=f"{key}_on",
                                  help=f"{param.help} Technical name: `{param.name}`.")
        if param.kind == "choice":
            chosen = boxes[0].multiselect(f"{param.title}: values", param.choices,
                                          default=list(suggested or param.choices), key=f"{key}_values",
                                          format_func=param.choice_text)
            if tuned:
                ranges[param.name] = list(chosen)
            continue
        spec = suggested if isinstance(suggested, dict) else {"min": param.low, "max": param.high}
        whole = param.kind in ("int", "optional_int")
        cast = int if whole else float
        low = boxes[0].number_input(f"{param.title}: from", min_value=cast(param.low), max_value=cast(param.high),
                                    value=cast(spec["min"]), step=1 if whole else None, format=None if whole else "%g",
                                    key=f"{key}_min")
        high = boxes[1].number_input(f"{param.title}: to", min_value=cast(param.low), max_value=cast(param.high),
                                     value=cast(spec["max"]), step=1 if whole else None, format=None if whole else "%g",
                                     key=f"{key}_max")
        scale = boxes[2].selectbox(f"{param.title}: scale", ["linear", "log"],
                                   index=1 if spec.get("scale") == "log" else 0, key=f"{key}_scale")
        if tuned:
            ranges[param.name] = {"min": low, "max": high, "scale": scale}
    return ranges


def start_form(p, labels: dict[str, str]) -> None:
    algorithm = st.radio("Algorithm to tune", list(ALGORITHMS), format_func=lambda a: ALGORITHMS[a]["label"],
                         horizontal=True, key="tune_algorithm")
    objectives = p.tuning_objectives()
    with st.form("start_tuning"):
        dataset = st.selectbox("Dataset", list(labels), format_func=labels.get, key="tune_dataset")
        st.markdown("**Ranges** · a hyperparameter you do not tune keeps its default")
        ranges = _range_inputs(algorithm)
        first, second, third = st.columns(3)
        objective = first.selectbox("Objective", list(objectives), format_func=objectives.get, key="tune_objective",
                                    help="ROC AUC, F1, PR AUC and expected profit are maximised; log loss is "
                                         "minimised.")
        strategy = second.radio("Strategy", list(STRATEGIES), format_func=STRATEGIES.get, horizontal=True,
                                key="tune_strategy", help="Bayesian learns from finished trials; random is a baseline.")
        seed = third.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="tune_seed",
                                  help="The same seed repeats a random search exactly.")
        first, second, third = st.columns(3)
        max_trials = first.number_input("Maximum trials", min_value=1, max_value=500, value=20, step=1,
                                        key="tune_max_trials")
        max_parallel = second.number_input("Trials at once", min_value=1, max_value=500,
                                           value=p.offers.tuning_parallel_default, step=1, key="tune_max_parallel",
                                           help="Locally, trials also wait for a free training slot (one per core).")
        max_minutes = third.number_input("Time limit (minutes, 0 = none)", min_value=0.0, value=0.0, step=1.0,
                                         key="tune_max_minutes")
        name = st.text_input("Tuning job name (optional)", key="tune_name", max_chars=32,
                             placeholder="automatic: tune-<algorithm>-<time>",
                             help="Up to 32 letters, digits and hyphens; trials are named <name>-001, -002, …")
        submitted = st.form_submit_button("Start tuning", type="primary")
    if submitted:
        tuning = attempt(p.start_tuning, dataset, ranges, objective=objective, max_trials=int(max_trials),
                         max_parallel=int(min(max_parallel, max_trials)), strategy=strategy, algorithm=algorithm,
                         name=name.strip() or None, seed=int(seed), max_seconds=max_minutes * 60 or None)
        if tuning:
            st.session_state["selected_tuning"] = tuning.name
            st.session_state.pop("tuning_picker", None)
            st.toast(f"Tuning job {tuning.name} started", icon=":material/tune:")
            st.success(f"Tuning job **{tuning.name}** is {status_label(tuning.status).lower()}: "
                       f"{count_text(tuning.max_trials, 'trial')}, {tuning.max_parallel} at once. Its leaderboard is "
                       "below.")


def leaderboard(trials: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Trials best first (those without an objective last), one column per tuned hyperparameter. ``objective`` is
    cross-validated on the training split (what trials are ranked by); ``test`` the winner's test-split score."""
    params = pd.DataFrame(list(trials["hyperparameters"]), index=trials.index).map(
        lambda v: "none" if v is None else v)
    scores = trials[["trial", "job", "status", "objective"] + (["test"] if "test" in trials else [])]
    table = pd.concat([scores, params, trials[["seconds", "best"]]], axis=1)
    return table.sort_values(["objective", "trial"], ascending=[not maximize, True], na_position="last")


def _highlight_best(row: pd.Series) -> list[str]:
    return ["background-color: rgba(44, 160, 44, 0.18); font-weight: 600" if row["best"] else ""] * len(row)


def follow(p) -> None:
    names = p.tuning_names()
    if not names:
        st.caption("No tuning job yet: start one above.")
        return
    if followed := link_to_follow("tuning", names):
        st.session_state["selected_tuning"] = followed
        st.session_state.pop("tuning_picker", None)
    wanted = st.session_state.get("selected_tuning")
    selected = st.selectbox("Tuning job", names, index=names.index(wanted) if wanted in names else 0,
                            key="tuning_picker")
    st.session_state["selected_tuning"] = selected
    current = attempt(p.describe_tuning, selected)
    if current:
        detail(p, selected, current.is_active)


def detail(p, name: str, was_active: bool) -> None:
    @st.fragment(run_every=1 if was_active else None)
    def live() -> None:
        tuning = attempt(p.describe_tuning, name)
        if tuning is None:
            return
        if was_active and not tuning.is_active:
            st.rerun()  # ended: redraw once without the timer
        objective = p.tuning_objectives().get(tuning.objective) or METRIC_LABELS.get(tuning.objective,
                                                                                      tuning.objective)
        maximize = tuning.direction == "maximize"
        st.subheader(f"{tuning.name}  {status_badge(tuning.status)}")
        if tuning.status == "Failed":
            st.error(f"**Failed:** {tuning.failure_reason}", icon=":material/error:")
        if tuning.note:
            st.caption(tuning.note)
        st.markdown(f"**{tuning.strategy}** search of **{tuning.algorithm}** on **{tuning.dataset}** · "
                    f"{'maximise' if maximize else 'minimise'} **{objective}** · started {when(tuning.created_at)} · "
                    f"duration **{duration_text(tuning.duration)}**")
        boxes = st.columns(5)
        boxes[0].metric("Completed", f"{tuning.trials_completed} of {tuning.max_trials}")
        boxes[1].metric("Running", tuning.trials_in_progress)
        boxes[2].metric("Failed", tuning.trials_failed)
        boxes[3].metric("Stopped", tuning.trials_stopped)
        boxes[4].metric(f"Best {objective}", "—" if tuning.best_objective is None else f"{tuning.best_objective:.4f}")
        if tuning.is_active and st.button("Stop tuning job", key=f"stop_tuning_{name}"):
            if ok(p.stop_tuning, name):
                st.toast(f"{name}: stopped; finished trials are kept")
                st.rerun()
        if tuning.best_job:
            deploy, register, jobs = st.columns([3, 1.3, 1.7])
            deploy.page_link(page("endpoints"), label=f"Deploy best ({tuning.best_job})",
                             icon=":material/rocket_launch:", query_params={"model": tuning.best_job})
            if register.button("Register best", key=f"register_best_{name}", icon=":material/inventory_2:"):
                note = f"best trial of tuning job {name}: {objective} {tuning.best_objective:.4f}"
                if version := attempt(p.register, tuning.best_job, note=note):
                    st.success(f"Registered **{version.label}** from {tuning.best_job}: {version.status_text}.")
                    st.page_link(page("models"), label="Open Models", icon=":material/inventory_2:")
            jobs.page_link(page("jobs"), label="Open best on Jobs", icon=":material/monitoring:",
                           query_params={"job": tuning.best_job})
        trials = attempt(p.tuning_trials, name)
        if trials is None or trials.empty:
            st.caption("No trial yet.")
            return
        table = leaderboard(trials, maximize)
        st.caption("Trials are ranked by the objective cross-validated inside each trial's training split; the test "
                   "split is kept for the winner's figure only (column test).")
        formats = {"objective": "{:.4f}", "test": "{:.4f}", "seconds": "{:.1f}"}
        st.dataframe(table.style.apply(_highlight_best, axis=1).format(formats, na_rep="—"),
                     width="stretch", hide_index=True,
                     column_config={"best": st.column_config.CheckboxColumn("best")})
        progress_tab, params_tab, log_tab = st.tabs(["Objective by trial", "Hyperparameters", "Log"])
        progress_tab.plotly_chart(tuning_progress_figure(trials, objective, maximize), width="stretch",
                                  key=f"tuning_progress_{name}")
        params_tab.plotly_chart(tuning_hyperparameters_figure(trials, objective, maximize), width="stretch",
                                key=f"tuning_params_{name}")
        log_tab.code(p.tuning_log(name, 80) or "(no log output yet)", language="text")

    live()
