"""The XGBoost T-learner, the feature layout and the promotion rule on small synthetic data."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from jobs.models.frame import STRATEGIES, FeatureSpec
from jobs.models.xgb_uplift import XGBUpliftTLearner, ipw_weights, stratified_split
from jobs.training.registry import decide
from tests.conftest import ROOT


def synthetic(n: int = 6000, seed: int = 0, targeted: bool = False):
    """coupon_20 raises conversion only where x0 > 0; the other strategies do nothing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if targeted:  # a logging policy that favours coupon_20 where x1 > 0 (confounded with the base rate)
        p20 = np.where(X[:, 1] > 0, 0.6, 0.1)
        rest = (1 - p20) / 4
        probs = np.column_stack([rest, rest, rest, p20, rest])
    else:
        probs = np.full((n, 5), 0.2)
    cum = probs.cumsum(axis=1)
    arm = (rng.random(n)[:, None] > cum).sum(axis=1)
    t = np.array(STRATEGIES)[arm]
    propensity = probs[np.arange(n), arm]
    base = 1 / (1 + np.exp(-(-1.5 + 0.8 * X[:, 1])))
    lift = np.where((t == "coupon_20") & (X[:, 0] > 0), 0.25, 0.0)
    y = (rng.random(n) < np.clip(base + lift, 0, 1)).astype(int)
    return X, y, t, propensity


def test_init_only_stores_parameters_and_clone_works():
    model = XGBUpliftTLearner(max_depth=3, learning_rate=0.1)
    assert model.get_params()["max_depth"] == 3
    assert not hasattr(model, "boosters_")
    assert clone(model).get_params() == model.get_params()


def test_fit_returns_self_and_learns_the_heterogeneous_effect():
    X, y, t, p = synthetic()
    model = XGBUpliftTLearner(n_estimators=200, max_depth=3, random_state=1)
    assert model.fit(X, y, t, p) is model
    assert set(model.boosters_) == set(STRATEGIES)
    assert all(v >= 0 for v in model.best_iteration_.values())
    uplift = model.predict_uplift(X)[:, STRATEGIES.index("coupon_20")]
    assert uplift[X[:, 0] > 0].mean() > 0.15
    assert abs(uplift[X[:, 0] <= 0].mean()) < 0.07
    pred = model.predict(X)
    assert pred.shape == (len(X), 5) and np.all((pred > 0) & (pred < 1))
    assert model.feature_importances_.sum() == pytest.approx(1.0)


def test_propensity_weighting_corrects_a_targeted_logging_policy():
    """Under targeting, the unweighted coupon_20 arm over-represents x1 > 0 (high base rate); the
    weighted arm's mean prediction matches the population's true mean response under coupon_20."""
    X, y, t, p = synthetic(n=20000, seed=3, targeted=True)
    truth = (1 / (1 + np.exp(-(-1.5 + 0.8 * X[:, 1]))) + np.where(X[:, 0] > 0, 0.25, 0.0)).mean()
    arm = t == "coupon_20"
    naive = y[arm].mean()  # the logged arm's observed rate: biased upwards by the targeting
    weighted = np.average(y[arm], weights=ipw_weights(p[arm]))
    assert naive - truth > 0.05
    assert abs(weighted - truth) < 0.03


def test_save_and_load_round_trip(tmp_path):
    X, y, t, p = synthetic(n=2000)
    model = XGBUpliftTLearner(n_estimators=50).fit(X, y, t, p, feature_names=["a", "b", "c", "d"])
    model.save(tmp_path / "m")
    loaded = XGBUpliftTLearner.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)
    assert loaded.feature_names_ == ["a", "b", "c", "d"]


def test_revenue_objective_and_input_checks():
    X, y, t, p = synthetic(n=3000)
    revenue = y * np.random.default_rng(0).gamma(2.0, 30.0, size=len(y))
    model = XGBUpliftTLearner(objective="reg:tweedie", n_estimators=100).fit(X, revenue, t, p)
    pred = model.predict(X)
    assert pred.min() >= 0
    assert pred.mean() == pytest.approx(revenue.mean(), rel=0.25)
    with pytest.raises(ValueError, match="strategies the model does not know"):
        XGBUpliftTLearner().fit(X, y, np.where(t == "coupon_10", "coupon_99", t), p)
    with pytest.raises(ValueError, match=r"propensity must lie in \(0, 1\]"):
        XGBUpliftTLearner().fit(X, y, t, np.zeros(len(y)))
    with pytest.raises(ValueError, match="binary objective"):
        XGBUpliftTLearner().fit(X, revenue, t, p)
    with pytest.raises(RuntimeError, match="not fitted"):
        XGBUpliftTLearner().predict(X)


def test_engine_is_checked_when_fitting():
    X, y, t, p = synthetic(n=500)
    assert XGBUpliftTLearner().get_params()["engine"] == "local"
    with pytest.raises(ValueError, match="engine must be one of"):
        XGBUpliftTLearner(engine="dask").fit(X, y, t, p)
    with pytest.raises(ValueError, match="num_workers must be at least 1"):
        XGBUpliftTLearner(engine="spark", num_workers=0).fit(X, y, t, p)


def test_the_spark_engine_without_a_session_says_what_to_do():
    """In a fresh process (no SparkContext, none of this test run's sessions) fit stops before training."""
    code = textwrap.dedent(
        """
        from jobs.models.xgb_uplift import XGBUpliftTLearner
        from tests.unit.test_xgb_uplift import synthetic
        X, y, t, p = synthetic(n=500)
        model = XGBUpliftTLearner(engine="spark")
        try:
            model.fit(X, y, t, p)
        except RuntimeError as exc:
            print("ERROR", exc, "| fitted:", hasattr(model, "boosters_"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ERROR engine='spark' trains on the active SparkSession, and there is none" in done.stdout
    assert "jobs.spark.get_spark" in done.stdout and "fitted: False" in done.stdout


def test_ipw_weights_and_split():
    np.testing.assert_allclose(ipw_weights(np.array([0.5, 0.25, 0.001]), max_weight=10), np.array([2, 4, 10]) / 16 * 3)
    mask = stratified_split(np.array([0] * 10 + [1] * 10), 0.2, 0)
    assert mask[:10].sum() == 2 and mask[10:].sum() == 2


def test_feature_spec_flattens_gold_rows_and_survives_json():
    gold = pd.DataFrame(
        {
            "recency": [1.0, None],
            "region": ["north", None],
            "category_affinity": [[("books", 0.75), ("toys", 0.25)], None],
            "seq_tokens": ["3 4", None],
        }
    )
    spec = FeatureSpec.learn(gold, ["recency"], ["region"])
    assert spec.affinities == ["books", "toys"]
    assert spec.categorical == {"region": ["north"]}
    flat = spec.flatten(gold)
    assert list(flat.columns) == ["recency", "aff_books", "aff_toys", "region", "seq_tokens"]
    assert flat["aff_books"].tolist() == [0.75, 0.0]
    assert flat["region"].tolist() == ["north", "unknown"]
    assert flat["seq_tokens"].tolist() == ["3 4", ""]
    matrix = FeatureSpec.from_json(spec.to_json()).matrix(flat)
    assert matrix.shape == (2, 4)
    np.testing.assert_allclose(matrix[0], [1.0, 0.75, 0.25, 1.0])
    assert np.isnan(matrix[1, 0]) and matrix[1, 3] == 0.0
    # flattening a flat frame again changes nothing (scoring may pass either layout)
    pd.testing.assert_frame_equal(spec.flatten(flat), flat)


def test_feature_spec_lays_out_the_response_maps_and_reads_older_specs():
    gold = pd.DataFrame(
        {
            "recency": [1.0, 2.0],
            "strategy_received": [[("coupon_10", 2.0)], [("email_recommendations", 1.0), ("coupon_10", 1.0)]],
            "strategy_converted": [[("coupon_10", 1.0)], None],
        }
    )
    spec = FeatureSpec.learn(gold, ["recency"], [], sequence=None)
    assert spec.maps == {
        "strategy_received": ["coupon_10", "email_recommendations"],
        "strategy_converted": ["coupon_10"],
    }
    flat = spec.flatten(gold)
    assert list(flat.columns) == [
        "recency",
        "strategy_received__coupon_10",
        "strategy_received__email_recommendations",
        "strategy_converted__coupon_10",
    ]
    np.testing.assert_allclose(spec.matrix(flat), [[1.0, 2.0, 0.0, 1.0], [2.0, 1.0, 1.0, 0.0]])
    assert spec.matrix_columns == list(flat.columns)
    # a spec written before the map inputs existed has none and still lays frames out
    old = spec.to_json().replace('"maps"', '"_maps"')
    legacy = {k: v for k, v in __import__("json").loads(old).items() if k != "_maps"}
    assert FeatureSpec(**legacy).map_columns == []


def test_the_matrix_layout_survives_json_and_a_model_reorders_an_old_sorted_spec(tmp_path):
    """Keys out of alphabetical order (region before channel, received before converted) keep their order.

    Specs used to be written with sorted keys: a loaded XGBoost model then read the one-hot and map
    columns permuted. A model's own feature names restore the order of such a spec.
    """
    import json

    from jobs.models.pyfunc import UpliftPredictor

    rng = np.random.default_rng(0)
    n = 800
    gold = pd.DataFrame(
        {
            "recency": rng.normal(size=n),
            "region": rng.choice(["north", "south"], n),
            "channel": rng.choice(["app", "web"], n),
            "strategy_received": [[("coupon_10", float(v))] for v in rng.integers(0, 3, n)],
            "strategy_converted": [[("coupon_10", float(v))] for v in rng.integers(0, 2, n)],
        }
    )
    spec = FeatureSpec.learn(gold, ["recency"], ["region", "channel"], sequence=None)
    layout = ["recency", "strategy_received__coupon_10", "strategy_converted__coupon_10"]
    layout += ["region=north", "region=south", "channel=app", "channel=web"]
    assert spec.matrix_columns == layout
    assert FeatureSpec.from_json(spec.to_json()).matrix_columns == layout
    old = FeatureSpec.from_json(json.dumps(json.loads(spec.to_json()), sort_keys=True))
    assert old.matrix_columns != layout and old.aligned(layout).matrix_columns == layout
    with pytest.raises(ValueError, match="not the columns"):
        old.aligned(layout[:-1])

    flat = spec.flatten(gold)
    X = spec.matrix(flat)
    t = np.array(STRATEGIES)[rng.integers(0, len(STRATEGIES), n)]
    y = (rng.random(n) < np.where(flat["region"] == "north", 0.6, 0.1)).astype(int)
    params = {"n_estimators": 30, "early_stopping_rounds": 5}
    conv = XGBUpliftTLearner(**params).fit(X, y, t, feature_names=layout)
    rev = XGBUpliftTLearner(**params, objective="reg:tweedie").fit(X, y * 10.0, t, feature_names=layout)
    predictor = UpliftPredictor("xgboost", spec, conv, rev)
    expected = predictor.predict_frame(flat)
    predictor.save(tmp_path / "model")
    pd.testing.assert_frame_equal(UpliftPredictor.load_folder(tmp_path / "model").predict_frame(flat), expected)
    spec_file = tmp_path / "model" / "feature_spec.json"
    spec_file.write_text(json.dumps(json.loads(spec_file.read_text()), sort_keys=True))  # as older models were saved
    pd.testing.assert_frame_equal(UpliftPredictor.load_folder(tmp_path / "model").predict_frame(flat), expected)


def test_promotion_rule():
    assert decide(10.2, 10.0, 0.01)[0] is True
    assert decide(10.05, 10.0, 0.01)[0] is False
    assert "kept champion" in decide(9.0, 10.0, 0.01)[1]
    assert decide(-0.9, -1.0, 0.05)[0] is True  # margin is a share of the champion's magnitude
