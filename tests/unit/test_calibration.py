"""Calibrated, shrunk uplift: values worked out by hand, recovered effects, and a pure-noise model shrunk away."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.models.calibration import (
    UpliftCalibrator,
    calibration_table,
    logit,
    shrink_jointly,
    sigmoid,
    weighted_logistic,
)


def test_joint_shrinkage_by_hand() -> None:
    from scipy.stats import chi2

    # 3 and 0 standard errors: chi-square 9 > 5.99 (2 df); tau^2 = (0.09 + 0) / 2 - 0.01 = 0.035
    assert shrink_jointly([0.3, 0.0], [0.1, 0.1]).tolist() == pytest.approx([0.3 * 0.035 / 0.045, 0.0])
    assert shrink_jointly([0.19], [0.1]).tolist() == [0.0]  # 1.9 standard errors: 3.61 < 3.84
    assert shrink_jointly([0.2], [0.1]).tolist() == pytest.approx([0.2 * 0.03 / 0.04])  # 4.0 > 3.84
    assert chi2.ppf(0.95, 1) == pytest.approx(3.841, abs=1e-3)
    # a weak effect beside strong ones is believed as far as they make it plausible
    weak = shrink_jointly([0.1, 0.5, 0.6], [0.1, 0.1, 0.1])
    tau2 = (0.01 + 0.25 + 0.36) / 3 - 0.01
    assert weak.tolist() == pytest.approx([v * tau2 / (tau2 + 0.01) for v in (0.1, 0.5, 0.6)])
    assert shrink_jointly([0.3, np.nan], [0.1, np.inf]).tolist() == pytest.approx([0.3 * 0.08 / 0.09, 0.0])


def test_weighted_logistic_with_offset_recovers_the_intercept_by_hand() -> None:
    # 100 rows at offset 0: 25 positives -> intercept logit(0.25); with offset 1 the intercept is logit(0.25) - 1
    y = np.r_[np.ones(25), np.zeros(75)]
    coef, se = weighted_logistic(np.zeros((100, 0)), y, np.ones(100), np.zeros(100))
    assert coef[0] == pytest.approx(np.log(0.25 / 0.75), abs=1e-6)  # (a 1e-6 ridge keeps Newton stable)
    assert se[0] == pytest.approx(1 / np.sqrt(100 * 0.25 * 0.75), rel=1e-6)  # Fisher information n p (1 - p)
    coef, _ = weighted_logistic(np.zeros((100, 0)), y, np.ones(100), np.ones(100))
    assert coef[0] == pytest.approx(np.log(1 / 3) - 1, abs=1e-6)
    # weights count rows: weight 2 on the positives is 50 of 125
    coef, _ = weighted_logistic(np.zeros((100, 0)), y, np.where(y == 1, 2.0, 1.0), np.zeros(100))
    assert coef[0] == pytest.approx(np.log(50 / 75), abs=1e-6)


def world(n: int, effect: float, true_spread: float, model_spread: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Two strategies logged 50/50; the model knows the control logit, predicts effect + model_spread * z,
    while the truth is effect + true_spread * z (z standard normal: the customers' differences)."""
    rng = np.random.default_rng(seed)
    eta0 = rng.normal(-2.5, 0.6, n)
    z = rng.normal(size=n)
    arm = (rng.random(n) < 0.5).astype(int)
    true_tau = effect + true_spread * z
    y = (rng.random(n) < sigmoid(eta0 + arm * true_tau)).astype(float)
    p = np.column_stack([sigmoid(eta0), sigmoid(eta0 + effect + model_spread * z)])
    return {"p": p, "y": y, "arm": arm, "w": np.full(n, 2.0), "true_tau": true_tau}


def test_a_calibrated_model_keeps_its_effects() -> None:
    w = world(60_000, effect=0.5, true_spread=0.4, model_spread=0.4)
    cal = UpliftCalibrator().fit(w["p"], w["y"], w["arm"], w["w"])
    assert cal.base_slope_ == pytest.approx(1.0, abs=0.1) and cal.base_intercept_ == pytest.approx(0.0, abs=0.05)
    assert abs(cal.effect_[1] - 0.5) < 3 * cal.effect_se_[1]
    assert cal.slope_[1] == pytest.approx(1.0, abs=3 * cal.slope_se_[1])
    assert cal.slope_used_[1] > 0.8  # well-supported differences between customers survive the shrinkage


def test_a_model_that_exaggerates_the_differences_is_narrowed() -> None:
    """The model predicts customer differences twice as wide as the truth: the calibration slope is about 0.5."""
    w = world(80_000, effect=0.5, true_spread=0.4, model_spread=0.8, seed=1)
    cal = UpliftCalibrator().fit(w["p"], w["y"], w["arm"], w["w"])
    assert cal.slope_[1] == pytest.approx(0.5, abs=3 * cal.slope_se_[1])
    after = logit(cal.transform(w["p"]))
    tau = after[:, 1] - after[:, 0]
    assert np.std(tau) == pytest.approx(0.4, rel=0.25)  # the spread of the calibrated effects is the truth's


@pytest.mark.parametrize("seed", [7, 10, 11])
def test_a_model_whose_uplift_is_pure_noise_is_shrunk_to_nothing_and_assigned_to_almost_nobody(seed: int) -> None:
    """True effect 0 for everyone; the model believes in +0.3 on average with customer differences of sd 0.5.

    The strategy is cheap (an e-mail, 0.02): any positive effect left would have it sent to everyone.
    (Seeds 10 and 11 draw a held-out effect of +1.2 and +1.1 standard errors: kept, shrunk, without
    the test that the effects are told from noise.)
    """
    from jobs.scoring.optimiser import optimise

    rng = np.random.default_rng(seed)
    n = 20_000
    eta0 = rng.normal(-2.5, 0.6, n)
    arm = (rng.random(n) < 0.5).astype(int)
    y = (rng.random(n) < sigmoid(eta0)).astype(float)  # the strategy does nothing
    p = np.column_stack([sigmoid(eta0), sigmoid(eta0 + 0.3 + 0.5 * rng.normal(size=n))])
    cal = UpliftCalibrator().fit(p, y, arm, np.full(n, 2.0))
    assert cal.slope_used_[1] == 0.0 and cal.effect_used_[1] == 0.0
    calibrated = cal.transform(p)
    assert np.abs(calibrated[:, 1] - calibrated[:, 0]).max() < 0.005  # was 0.3 on the logit scale, per customer

    def assigned(q: np.ndarray) -> int:
        """Customers the optimiser gives the strategy: order value 60, margin 0.35, contact cost 0.02."""
        value = 0.35 * 60.0 * (q - q[:, [0]])
        cost = np.column_stack([np.zeros(n), np.full(n, 0.02)])
        chosen = optimise(value, cost, np.ones((n, 2), dtype=bool), float("inf"), np.array([n, n]), 0)
        return int((chosen.choice == 1).sum())

    assert assigned(p) > 0.5 * n  # the raw model would contact most customers
    assert assigned(calibrated) < 0.01 * n


def test_four_strategies_of_pure_noise_keep_no_effect_one_real_effect_is_kept() -> None:
    rng = np.random.default_rng(12)
    n = 50_000
    eta0 = rng.normal(-2.5, 0.6, n)
    arm = rng.integers(0, 5, n)
    for real in (0.0, 0.5):  # every strategy noise; then strategy 2 truly shifts the logit by 0.5
        shift = np.where(arm == 2, real, 0.0)
        y = (rng.random(n) < sigmoid(eta0 + shift)).astype(float)
        p = np.column_stack([sigmoid(eta0)] + [sigmoid(eta0 + 0.3 + 0.4 * rng.normal(size=n)) for _ in range(4)])
        cal = UpliftCalibrator().fit(p, y, arm, np.full(n, 5.0))
        if real == 0.0:
            assert cal.effect_used_.tolist() == [0.0] * 5 and cal.slope_used_[1:].tolist() == [0.0] * 4
        else:
            assert cal.effect_used_[2] == pytest.approx(0.5, abs=3 * cal.effect_se_[2])
            # the noise strategies: shrunk, never enlarged, within noise (James-Stein pools one spread for all,
            # so beside a strong effect a noise estimate keeps most of its small size)
            noise = [1, 3, 4]
            assert np.all(np.abs(cal.effect_used_[noise]) <= np.abs(cal.effect_[noise]))
            assert np.all(np.abs(cal.effect_used_[noise]) < 3 * cal.effect_se_[noise])


def test_transform_and_persistence(tmp_path) -> None:
    w = world(20_000, effect=0.4, true_spread=0.3, model_spread=0.3, seed=3)
    cal = UpliftCalibrator().fit(w["p"], w["y"], w["arm"], w["w"])
    out = cal.transform(w["p"])
    assert out.shape == w["p"].shape and np.all((out > 0) & (out < 1))
    base = cal.base_center_ + cal.base_intercept_ + cal.base_slope_ * (logit(w["p"][:, 0]) - cal.base_center_)
    assert out[:, 0] == pytest.approx(sigmoid(base))
    cal.save(tmp_path / "c.json")
    again = UpliftCalibrator.load(tmp_path / "c.json")
    np.testing.assert_allclose(again.transform(w["p"]), out)
    summary = cal.summary(("no_action", "coupon"))
    assert summary["calib_effect_used__coupon"] == pytest.approx(cal.effect_used_[1])


def test_an_arm_without_enough_rows_keeps_no_effect() -> None:
    w = world(5_000, effect=0.5, true_spread=0.0, model_spread=0.2, seed=4)
    arm = np.where(np.arange(5_000) < 30, 1, 0)  # 30 rows of the strategy: below min_rows
    cal = UpliftCalibrator().fit(w["p"], w["y"], arm, w["w"])
    assert cal.effect_used_[1] == 0.0 and cal.slope_used_[1] == 0.0
    out = cal.transform(w["p"])
    np.testing.assert_allclose(out[:, 1], out[:, 0])


def test_bad_inputs_are_named() -> None:
    cal = UpliftCalibrator()
    with pytest.raises(ValueError, match=r"p must be \(n, K\)"):
        cal.fit(np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="y must be 0/1"):
        cal.fit(np.full((3, 2), 0.1), np.array([0, 2, 1]), np.zeros(3))
    with pytest.raises(ValueError, match="arm must index"):
        cal.fit(np.full((3, 2), 0.1), np.array([0, 1, 1]), np.array([0, 1, 2]))
    with pytest.raises(RuntimeError, match="not fitted"):
        cal.transform(np.full((3, 2), 0.1))


def test_the_calibration_table_bins_predicted_uplift_and_measures_it() -> None:
    w = world(40_000, effect=0.5, true_spread=0.4, model_spread=0.4, seed=5)
    cal = UpliftCalibrator().fit(w["p"], w["y"], w["arm"], w["w"])
    rows = calibration_table(w["p"], cal.transform(w["p"]), w["y"], w["arm"], w["w"], strategy=1, bins=5)
    assert len(rows) == 5 and sum(r["rows"] for r in rows) == 40_000
    predicted = [r["predicted_before"] for r in rows]
    assert predicted == sorted(predicted)
    # realised uplift rises with the predicted one, and each group's realised value is near its prediction
    assert rows[-1]["realised"] > rows[0]["realised"]
    assert all(abs(r["realised"] - r["predicted_before"]) < 4 * r["realised_se"] + 0.01 for r in rows)
