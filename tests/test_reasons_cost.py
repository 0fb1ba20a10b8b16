"""What top reasons cost (the Batch page's estimate): measured per model on this machine, cached per artifact, and
of the size the explanation really takes on customers' rows (its cost a row does not depend on their values)."""

from __future__ import annotations

import time

import numpy as np

from churn_core.data.sample import make_subscription_sample
from churn_core.paths import entry_module


def test_the_estimate_follows_the_model_and_matches_explaining_real_customers(train):
    data = make_subscription_sample(900, seed=12)  # an ID column, Yes/No categories, blanks, a Yes/No target
    p = train("subs", data, "subs-rf", algorithm="random_forest", n_estimators=40)  # deep trees
    train("subs-b", data, "subs-lr", algorithm="logistic_regression")

    forest, linear = p.reasons_cost("subs-rf"), p.reasons_cost("subs-lr")
    assert forest > 0 and linear > 0
    assert forest > 5 * linear, (forest, linear)  # every node of 40 deep trees against one product
    assert p.reasons_cost("subs-rf") == forest, "measured once per artifact, then remembered"

    model = p.models.loaded("subs-rf")  # the same work on 400 real customers, as a transform explains them
    explainer = entry_module("explanations").explainer_for(model)
    frame = p.read_customers(data).head(400)
    typed = entry_module("dataset_schema").typed_features(frame, model["schema"], "the customers")
    encoded = entry_module("fast_forest").preprocess(model["pipeline"], typed)
    started = time.perf_counter()
    contributions = explainer.contributions(encoded)
    per_row = (time.perf_counter() - started) / len(frame)
    assert np.isfinite(contributions).all()
    assert 0.2 < forest / per_row < 5, (forest, per_row)


def test_the_batch_page_estimates_what_reasons_cost_for_the_file(subs_rf):
    import re

    from tests.support.pages import open_page, texts
    from tests.support.transforms import customers

    at = open_page("batch")
    at.get("file_uploader")[0].set_value(("customers.csv", customers(500, seed=5), "text/csv")).run()
    assert not at.exception, at.exception
    workers = subs_rf.offers.default_transform_instances
    expected = (r"Top reasons with this model take about [\d.e+-]+ ms a customer on this machine: about [\d.]+ s "
                rf"for these 500 customers on {workers} workers?, on top of the plain scoring")
    assert re.search(expected, texts(at, "caption")), texts(at, "caption")
