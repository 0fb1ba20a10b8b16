"""Issue 25, items 2, 4 and 5: no verdict without enough data (a stated minimum per statistic, the headline from
the same rows as the table), KS judged with the real sample sizes (recomputed with scipy on the full samples),
and each model's thresholds from its own constraints.json, editable per model with their history."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import ks_2samp

import churn_core
from churn_core import ValidationError
from churn_core.monitoring import drift
from churn_core.paths import entry_module
from tests.support.monitoring import MODEL, held_out


def test_four_customers_give_no_verdict_and_the_headline_agrees(drift_model):
    p = drift_model
    frame = held_out(p, 4)
    frame["MonthlyCharges"] = "999"  # a wild shift: still no verdict on 4 rows
    report = p.drift_report(data=frame, model=MODEL)
    assert report.attrs["n"] == 4 and report.attrs["verdict"] == "not enough data"
    assert not report["drifted"].any()
    psi = report[(report["feature"] == "MonthlyCharges") & (report["metric"] == "psi")].iloc[0]
    assert psi["verdict"] == f"not enough data (4 of {drift.MIN_SAMPLE['psi']} needed)"
    assert (report["verdict"].str.startswith("not enough data")).all()
    assert drift.verdict(report) == report.attrs["verdict"], "the banner's verdict is the table's"


def test_the_prediction_drifting_alone_makes_the_headline_drifted():
    rows = pd.DataFrame([
        {"feature": "tenure", "metric": "psi", "value": 0.01, "threshold": 0.2, "drifted": False, "n": 500,
         "verdict": "ok"},
        {"feature": entry_module("baseline").PREDICTION, "metric": "psi", "value": 6.8, "threshold": 0.2,
         "drifted": True, "n": 500, "verdict": "drifted"}])
    assert drift.verdict(rows).startswith("drift: ") and drift.drifted_features(rows) == []


def test_every_statistic_states_its_minimum():
    assert set(drift.MIN_SAMPLE) == {"psi", "ks", "linf", "missing_change", "unseen"}
    assert all(isinstance(n, int) and n >= 50 for n in drift.MIN_SAMPLE.values())


def test_ks_honours_its_threshold_with_the_real_sample_sizes(drift_model):
    p = drift_model
    frame = held_out(p, 1500)
    shifted = frame.copy()
    shifted["MonthlyCharges"] = (pd.to_numeric(frame["MonthlyCharges"]) * 1.05).round(2).astype(str)
    report = p.drift_report(data=shifted, model=MODEL, thresholds={"ks": 0.05, "psi": 100})
    ks = report[(report["feature"] == "MonthlyCharges") & (report["metric"] == "ks")].iloc[0]
    train = pd.to_numeric(p.read_dataset("subs", "train")["MonthlyCharges"], errors="coerce").dropna()
    full = ks_2samp(pd.to_numeric(shifted["MonthlyCharges"]), train)
    assert full.statistic > 0.05 and full.pvalue < drift.KS_SIGNIFICANCE, "scipy on the full samples: drifted"
    assert abs(ks["value"] - full.statistic) < 0.02, (ks["value"], full.statistic)
    assert ks["drifted"] and ks["verdict"] == "drifted", ks
    assert not report.loc[report["metric"] == "psi", "drifted"].any(), "psi's threshold 100 is honoured too"
    calm = p.drift_report(data=frame, model=MODEL, thresholds={"ks": 0.05})
    assert not calm.loc[(calm["feature"] == "MonthlyCharges") & (calm["metric"] == "ks"), "drifted"].any()
    n, m = 1500, len(train)
    assert drift.ks_pvalue(full.statistic, n, m) == pytest.approx(full.pvalue, rel=0.5, abs=1e-12)


def test_thresholds_are_the_models_own_and_editable_with_history(drift_model, monkeypatch):
    p = drift_model
    stored = p.set_drift_thresholds(MODEL)["thresholds"]
    monkeypatch.setitem(entry_module("baseline").THRESHOLDS, "psi", 0.0001)  # a later default never re-judges
    assert p.set_drift_thresholds(MODEL)["thresholds"]["psi"] == stored["psi"] == 0.2
    frame = held_out(p, 600)
    assert p.drift_report(data=frame, model=MODEL).attrs["verdict"] == "no drift"
    changed = p.set_drift_thresholds(MODEL, {"psi": 0.0001, "ks": 0.5}, note="stricter PSI for the audit")
    assert changed["thresholds"]["psi"] == 0.0001 and changed["thresholds"]["linf"] == stored["linf"]
    entry = changed["history"][0]
    assert entry["note"] == "stricter PSI for the audit" and entry["set_by"] and entry["set_at"] > 0
    again = churn_core.connect()  # kept in the catalog: a new dashboard reads the same
    assert again.set_drift_thresholds(MODEL)["thresholds"]["psi"] == 0.0001
    report = again.drift_report(data=frame, model=MODEL)
    assert report.attrs["verdict"].startswith("drift"), "the model's edited threshold is used"
    assert set(report.loc[report["metric"] == "psi", "threshold"]) == {0.0001}
    p.set_drift_thresholds(MODEL, {"psi": 0.2, "ks": stored["ks"]}, note="back")
    assert [h["note"] for h in p.set_drift_thresholds(MODEL)["history"]][:2] == ["back", "stricter PSI for the audit"]
    with pytest.raises(ValidationError, match="Unknown drift threshold"):
        p.set_drift_thresholds(MODEL, {"psii": 0.1})
    with pytest.raises(ValidationError, match="positive number"):
        p.set_drift_thresholds(MODEL, {"psi": -1})


def test_many_numeric_features_do_not_multiply_false_alarms():
    """Under no change, a report over ten numeric features says "drift" about as rarely as over one: the KS
    p-values of a report share one significance level (Bonferroni), not one level each."""
    import numpy as np

    rng = np.random.default_rng(3)
    features = [{"name": f"x{i}", "kind": "numeric"} for i in range(10)]
    train = pd.DataFrame({f["name"]: rng.gamma(2.0, 30.0, 5000) for f in features})
    stats = entry_module("baseline").statistics(train, features)
    only_ks = {"ks": 0.0, "psi": 1e9, "missing": 1.0}  # the p-value alone decides: the case it must guard
    alarms = sum(
        drift.report(stats, pd.DataFrame({f["name"]: rng.gamma(2.0, 30.0, 150) for f in features}),
                     overrides=only_ks).attrs["verdict"].startswith("drift")
        for _ in range(300))
    assert alarms <= 9, f"{alarms} of 300 reports on unchanged data said drift (1 % expected)"
