"""Readable chart axes (issue 27): round lift ticks, a sensible empty variant chart, and captured values outside
the training range shown as such rather than lumped into the edge bin."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from app.charts import feature_shift_figure, gains_figure
from app.rollout_view import score_figure


def test_lift_reads_as_multiples_from_zero():
    gains = pd.DataFrame({"decile": range(1, 11), "cumulative_gain": [i / 10 for i in range(1, 11)],
                          "lift": [2.37, 1.8, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]})
    axis = gains_figure(gains).layout.yaxis2
    assert axis.rangemode == "tozero" and axis.tickformat == ".1f" and axis.ticksuffix == "×"


def test_an_endpoint_without_answers_has_a_zero_to_one_axis_and_says_why():
    ep = SimpleNamespace(variants=[{"variant": "a", "stats": {}}, {"variant": "b", "stats": {"scores": [0, 0]}}])
    fig = score_figure(ep)
    assert not fig.data and list(fig.layout.yaxis.range) == [0, 1]
    assert "No answers yet" in fig.layout.annotations[0].text


def test_captured_values_beyond_the_training_range_get_their_own_labelled_bars():
    buckets = [{"lower_bound": float(i), "upper_bound": float(i + 1), "count": 10} for i in range(10)]
    statistics = {"features": [{"name": "tenure", "numerical_statistics": {
        "distribution": {"kll": {"buckets": buckets}}}}]}
    captured = pd.DataFrame({"tenure": [0.5] * 6 + [25.0] * 3 + [-4.0]})
    fig = feature_shift_figure(statistics, captured, "tenure")
    bars = {bar.name: bar for bar in fig.data}
    assert bars["captured"].y[-1] == 0, "nothing above the range is lumped into the last bin"
    assert abs(sum(bars["captured"].y) - 0.6) < 1e-12
    above = next(b for name, b in bars.items() if name.startswith("above the training range"))
    below = next(b for name, b in bars.items() if name.startswith("below the training range"))
    assert abs(above.y[0] - 0.3) < 1e-12 and abs(below.y[0] - 0.1) < 1e-12 and above.x[0] > 10 > 0 > below.x[0]
