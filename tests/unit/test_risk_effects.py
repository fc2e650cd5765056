"""Risk effects: each strategy's logit effect as a function of the cross-fitted baseline risk."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from jobs.models.calibration import logit, sigmoid
from jobs.models.risk_effects import RiskEffects

STRATEGIES = ("no_action", "email", "coupon")


def shop(n: int, effect: tuple[float, float], slope: tuple[float, float], seed: int = 0) -> tuple:
    """Rows with one informative feature x (the control's logit is -2.5 + x) and a noise feature; the
    strategies are drawn uniformly (propensity 1/3); strategy s shifts the logit by effect_s + slope_s * x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.8, n)
    X = np.c_[x, rng.normal(size=n)]
    arm = rng.integers(0, 3, n)
    shift = np.c_[np.zeros(n), effect[0] + slope[0] * x, effect[1] + slope[1] * x]
    y = (rng.random(n) < sigmoid(-2.5 + x + shift[np.arange(n), arm])).astype(float)
    return X, y, np.asarray(STRATEGIES)[arm], np.full(n, 3.0), shift


def test_effects_that_grow_with_the_risk_are_found() -> None:
    X, y, strategy, w, shift = shop(60_000, effect=(0.4, 0.3), slope=(0.5, -0.4))
    model = RiskEffects(strategies=STRATEGIES, n_estimators=200).fit(X, y, strategy, w)
    assert model.auc_ > 0.65
    learned = model.shift(X)
    assert learned[:, 0] == pytest.approx(0.0)
    # the risk score is the arms' mixture, not the control's logit: the shifts are compared where they act
    for k in (1, 2):
        assert spearmanr(learned[:, k], shift[:, k])[0] > 0.95
        assert np.mean(learned[:, k]) == pytest.approx(np.mean(shift[:, k]), abs=0.08)
    assert model.slope_used_[1] > 0.2 and model.slope_used_[2] < -0.15


def test_effects_of_pure_noise_are_shrunk_to_nothing() -> None:
    """No strategy changes anything: neither average effects nor slopes survive the joint test."""
    X, y, strategy, w, _ = shop(6_000, effect=(0.0, 0.0), slope=(0.0, 0.0), seed=3)
    model = RiskEffects(strategies=STRATEGIES, n_estimators=100).fit(X, y, strategy, w)
    assert np.all(model.effect_used_ == 0.0) and np.all(model.slope_used_ == 0.0)
    p = np.full((5, 3), 0.1)
    p[:, 0] = np.linspace(0.05, 0.3, 5)
    out = model.apply(p, X[:5])
    assert np.allclose(out, p[:, [0]])  # every strategy converts as the control: worth nothing to anyone


def test_apply_puts_the_shift_on_the_control_probability_worked_by_hand() -> None:
    X, y, strategy, w, _ = shop(3_000, effect=(0.5, 0.0), slope=(0.0, 0.0), seed=1)
    model = RiskEffects(strategies=STRATEGIES, n_estimators=50).fit(X, y, strategy, w)
    p = np.array([[0.2, 0.9, 0.9], [0.5, 0.1, 0.1]])
    shift = np.array([[0.0, np.log(2.0), -np.log(2.0)], [0.0, 0.0, np.log(3.0)]])
    out = model.apply(p, shift=shift)
    # odds 0.25 -> 0.5 and 0.125; odds 1 -> 1 and 3
    assert out == pytest.approx(np.array([[0.2, 1 / 3, 1 / 9], [0.5, 0.5, 0.75]]))


def test_cross_fitted_shifts_leave_each_rows_fold_out() -> None:
    X, y, strategy, w, _ = shop(9_000, effect=(0.6, 0.2), slope=(0.0, 0.0), seed=2)
    fold = np.arange(len(y)) % 3
    model = RiskEffects(strategies=STRATEGIES, n_estimators=50).fit(X, y, strategy, w, fold)
    crossed = model.cross_fitted_shift(y, strategy, w)
    _, arm, weights = model._checked(X, y, strategy, w)
    for k in range(3):
        mine = fold == k
        expected = model._coefficients(model.oof_, y, arm, weights, ~mine)
        by_hand = (
            expected["effect_used_"][None, :]
            + expected["slope_used_"][None, :]
            * (np.clip(model.oof_[mine], model.low_, model.high_) - model.center_)[:, None]
        )
        assert crossed[mine] == pytest.approx(by_hand)
    full = model._shift(model.oof_, model.effect_used_, model.slope_used_)
    assert not np.allclose(crossed, full)  # the folds' coefficients differ from the full fit's


def test_save_and_load_give_the_same_shifts(tmp_path) -> None:
    X, y, strategy, w, _ = shop(4_000, effect=(0.5, 0.3), slope=(0.3, 0.0), seed=4)
    model = RiskEffects(strategies=STRATEGIES, n_estimators=50).fit(X, y, strategy, w, feature_names=["x", "noise"])
    model.save(tmp_path / "effects")
    loaded = RiskEffects.load(tmp_path / "effects")
    assert loaded.shift(X[:100]) == pytest.approx(model.shift(X[:100]))
    assert loaded.summary() == pytest.approx(model.summary(), nan_ok=True)


def test_bad_input_is_refused_with_the_reason() -> None:
    X, y, strategy, w, _ = shop(200, effect=(0.1, 0.1), slope=(0.0, 0.0))
    with pytest.raises(ValueError, match="does not know: \\['sms'\\]"):
        RiskEffects(strategies=STRATEGIES).fit(X, y, np.where(strategy == "email", "sms", strategy), w)
    with pytest.raises(ValueError, match="weights must be positive"):
        RiskEffects(strategies=STRATEGIES).fit(X, y, strategy, np.zeros(len(y)))
    with pytest.raises(RuntimeError, match="not fitted"):
        RiskEffects(strategies=STRATEGIES).shift(X)
    assert logit(0.5) == pytest.approx(0.0)
