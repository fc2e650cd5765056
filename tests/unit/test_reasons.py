"""Reasons per assignment: TreeSHAP uplift contributions, the top three, and their plain words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.models.frame import STRATEGIES
from jobs.models.plots import contributions_figure
from jobs.models.reasons import (
    format_reason,
    mean_abs_contributions,
    reason_columns,
    top_reasons,
    uplift_contributions,
)
from jobs.models.xgb_uplift import XGBUpliftTLearner


@pytest.fixture(scope="module")
def one_feature_model() -> XGBUpliftTLearner:
    """coupon_20 adds 0.3 to P(convert) only where x1 > 0; x0 and x2 are noise, the base rate is flat."""
    rng = np.random.default_rng(3)
    n = 5000
    X = rng.normal(size=(n, 3))
    t = np.array(STRATEGIES)[rng.integers(0, len(STRATEGIES), size=n)]
    lift = np.where((t == "coupon_20") & (X[:, 1] > 0), 0.3, 0.0)
    y = (rng.random(n) < 0.1 + lift).astype(int)
    model = XGBUpliftTLearner(n_estimators=150, max_depth=3, learning_rate=0.1, random_state=0)
    return model.fit(X, y, t, np.full(n, 0.2), feature_names=["x0", "x1", "x2"])


def test_the_feature_behind_the_effect_is_the_first_reason_with_the_sign_of_its_effect(one_feature_model):
    X = np.array([[0.0, 1.5, 0.0], [0.0, -1.5, 0.0], [0.3, 1.5, -0.2]], dtype="float32")
    chosen = ["coupon_20", "coupon_20", "no_action"]
    contrib = uplift_contributions(one_feature_model, X, chosen)
    reasons = top_reasons(contrib, X, ["x0", "x1", "x2"])
    # x1 > 0: the uplift (about 0.3) is above the average uplift (about 0.15): x1 raises it
    assert reasons[0][0]["feature"] == "x1" and reasons[0][0]["contribution"] > 5.0
    assert reasons[0][0]["value"] == 1.5
    # x1 < 0: no uplift, below the average: x1 lowers it
    assert reasons[1][0]["feature"] == "x1" and reasons[1][0]["contribution"] < -5.0
    # the control explains no uplift over itself
    assert reasons[2] == [] and np.all(contrib[2] == 0.0)
    # the noise features matter far less than x1
    assert np.abs(contrib[:2, [0, 2]]).max() < 0.2 * np.abs(contrib[:2, 1]).min()


def test_top_reasons_order_by_magnitude_drop_zeros_and_keep_missing_values():
    contrib = np.array([[0.5, -2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.25]])
    X = np.array([[3.0, np.nan, 1.0, 0.125], [1.0, 2.0, 3.0, 4.0]])
    reasons = top_reasons(contrib, X, ["recency_days", "spend", "region=north", "share"])
    assert reasons[0] == [
        {"feature": "spend", "value": None, "contribution": -2.0},
        {"feature": "share", "value": 0.125, "contribution": 1.0},
        {"feature": "recency_days", "value": 3, "contribution": 0.5},
    ]
    assert reasons[1] == [{"feature": "share", "value": 4, "contribution": 0.25}]


def test_reasons_in_plain_words():
    assert format_reason("recency_days", 3, 0.8) == "recency_days 3: +0.80 pp"
    assert format_reason("open_rate", 0.4567, -0.123) == "open_rate 0.4567: -0.12 pp"
    assert format_reason("region=north", 1, 1.5) == "region=north: +1.50 pp"
    assert format_reason("region=north", 0, -0.5) == "not region=north: -0.50 pp"
    assert format_reason("days_since_last_purchase", None, 0.05) == "days_since_last_purchase missing: +0.05 pp"
    row = reason_columns([{"feature": "recency_days", "value": 3, "contribution": 0.8}])
    assert json.loads(row["reasons"]) == [{"feature": "recency_days", "value": 3, "contribution": 0.8}]
    assert row["reason_1"] == "recency_days 3: +0.80 pp" and row["reason_2"] is None and row["reason_3"] is None
    assert reason_columns(None) == {"reasons": None, "reason_1": None, "reason_2": None, "reason_3": None}


def test_the_training_summary_ranks_the_effects_feature_first_for_its_strategy_only(one_feature_model):
    X = np.random.default_rng(1).normal(size=(300, 3))
    means = mean_abs_contributions(one_feature_model, X)
    assert set(means) == set(STRATEGIES) - {"no_action"}
    assert np.argmax(means["coupon_20"]) == 1  # x1
    assert means["coupon_20"][1] > 5 * max(means[s].max() for s in means if s != "coupon_20")
    figure = contributions_figure(means, ["x0", "x1", "x2"], top=2)
    assert [ax.get_title() for ax in figure.axes] == list(means)
    assert [t.get_text() for t in figure.axes[list(means).index("coupon_20")].get_yticklabels()][-1] == "x1"
