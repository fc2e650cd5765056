"""The hurdle model's value side on tiny inline data: factors by hand, shrinkage, persistence, and the composition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models.frame import FeatureSpec
from jobs.models.order_value import OrderValueModel

STRATEGIES = ("no_action", "coupon", "gift")


def orders(
    control: int = 400, coupon: int = 200, gift: int = 10, factor: float = 1.2, seed: int = 0
) -> tuple[np.ndarray, ...]:
    """One feature, 0 or 1: control orders are worth 50 or 200 by it; coupon orders ``factor`` x; gift orders few."""
    rng = np.random.default_rng(seed)
    n = control + coupon + gift
    x = rng.integers(0, 2, n).astype("float32")[:, None]
    strategy = np.array(["no_action"] * control + ["coupon"] * coupon + ["gift"] * gift)
    value = np.where(x[:, 0] > 0, 200.0, 50.0) * np.where(strategy == "coupon", factor, 1.0)
    return x, value, strategy


def test_base_and_strategy_factor_by_hand() -> None:
    x, y, s = orders()
    model = OrderValueModel(STRATEGIES, min_child_weight=1.0, learning_rate=0.3, min_orders=20).fit(x, y, s)
    v = model.predict(np.array([[0.0], [1.0]], dtype="float32"))
    assert v[:, 0] == pytest.approx([50.0, 200.0], rel=0.02)  # the base learns the feature
    # every coupon order is exactly 1.2x its base: the factor is exact (no spread, no shrinkage)
    assert v[:, 1] / v[:, 0] == pytest.approx([1.2, 1.2], rel=1e-3)
    assert model.log_factor_se_[1] < 1e-3
    # 10 gift orders are below min_orders: the gift keeps the control's value
    assert v[:, 2] == pytest.approx(v[:, 0])
    assert model.summary()["order_value_factor_used__coupon"] == pytest.approx(1.2, rel=1e-3)


def test_a_factor_that_is_noise_is_shrunk_away() -> None:
    """Coupon orders are the control's values times noise of mean 1 (+-50%): no effect is kept."""
    rng = np.random.default_rng(1)
    x, y, s = orders(coupon=60, gift=0, factor=1.0)
    y = np.where(s == "coupon", y * rng.uniform(0.5, 1.5, len(y)), y)
    model = OrderValueModel(STRATEGIES, min_child_weight=1.0, learning_rate=0.3, min_orders=20).fit(x, y, s)
    assert abs(model.log_factor_[1] - model.log_factor_[0]) < 3 * model.log_factor_se_[1]
    assert model.log_factor_used_[1] == model.log_factor_used_[0]  # not told from noise: the control's value


def test_persistence_and_errors(tmp_path) -> None:
    x, y, s = orders()
    model = OrderValueModel(STRATEGIES, min_child_weight=1.0, min_orders=20).fit(x, y, s, feature_names=["big"])
    model.save(tmp_path / "ov")
    again = OrderValueModel.load(tmp_path / "ov")
    np.testing.assert_allclose(again.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="must be positive"):
        OrderValueModel(STRATEGIES).fit(x, np.zeros(len(y)), s)
    with pytest.raises(ValueError, match="does not know"):
        OrderValueModel(STRATEGIES).fit(x, y, np.where(s == "gift", "sms", s))
    with pytest.raises(ValueError, match="too few"):
        OrderValueModel(STRATEGIES, min_orders=1000).fit(x, y, s)


def test_the_hurdle_is_conversion_times_order_value_times_one_minus_the_discount() -> None:
    """UpliftPredictor in hurdle mode: p (calibrated or not) x V x (1 - discount from the catalogue)."""
    from jobs.models.pyfunc import UpliftPredictor
    from jobs.models.xgb_uplift import XGBUpliftTLearner

    rng = np.random.default_rng(2)
    n = 600
    frame = pd.DataFrame({"f": rng.normal(size=n), "g": rng.normal(size=n)})
    spec = FeatureSpec(numeric=["f", "g"], sequence=None)
    X = spec.matrix(spec.flatten(frame))
    t = rng.choice(STRATEGIES, n)
    converted = (rng.random(n) < 0.3).astype(float)
    conv = XGBUpliftTLearner(STRATEGIES, n_estimators=20).fit(X, converted, t, np.full(n, 1 / 3))
    rev = XGBUpliftTLearner(STRATEGIES, objective="reg:tweedie", n_estimators=20).fit(X, rng.gamma(2, 20, n), t)
    value = OrderValueModel(STRATEGIES, min_orders=10).fit(X, rng.gamma(2, 30, n) + 1, t)
    direct = UpliftPredictor("xgboost", spec, conv, rev, order_value=value, discounts=[0.0, 0.1, 0.0])
    hurdle = direct.with_mode("hurdle")
    flat = spec.flatten(frame)
    p, r = hurdle.predict(flat)
    np.testing.assert_allclose(p, conv.predict(X))
    np.testing.assert_allclose(r, p * value.predict(X) * np.array([1.0, 0.9, 1.0]))
    _, r_direct = direct.predict(flat)
    np.testing.assert_allclose(r_direct, np.clip(rev.predict(X), 0, None))
    assert not np.allclose(r_direct, r)
