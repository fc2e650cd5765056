"""Realised strategy effects on tiny hand-made frames and one seeded simulation: exact values, degenerate cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jobs.evaluation.effects import (
    REQUIRED_COLUMNS,
    policy_value,
    strategy_effects,
    two_proportion_test,
    welch_test,
)

Z = stats.norm.ppf(0.975)
COLUMNS = [c for c in REQUIRED_COLUMNS if c != "run_date"]
NA = None
ROWS = [
    # id, strategy, model_strategy, reason, segment, converted, revenue, clicked, cost, p_chosen, p_control, eir, eip
    ("c1", "coupon_20", "coupon_20", "model", "A", 1, 50.0, NA, 10.0, 0.5, 0.3, 4.0, 1.0),
    ("c2", "coupon_20", "coupon_20", "model", "A", 0, 0.0, NA, 2.0, 0.4, 0.3, 3.0, 1.0),
    ("c3", "coupon_20", "coupon_20", "model", "A", 1, 30.0, NA, 8.0, 0.6, 0.2, 5.0, 2.0),
    ("h1", "no_action", "coupon_20", "holdout", "A", 0, 0.0, NA, 0.0, 0.3, 0.3, 0.0, 0.0),
    ("h2", "no_action", "coupon_20", "holdout", "A", 1, 20.0, NA, 0.0, 0.3, 0.3, 0.0, 0.0),
    ("c4", "coupon_20", "coupon_20", "model", "B", 1, 40.0, NA, 9.0, 0.1, 0.6, -2.0, -3.0),
    ("c5", "coupon_20", "coupon_20", "model", "B", 0, 0.0, NA, 2.0, 0.1, 0.6, -2.0, -3.0),
    ("h3", "no_action", "coupon_20", "holdout", "B", 0, 0.0, NA, 0.0, 0.6, 0.6, 0.0, 0.0),
    ("e1", "email_recommendations", "email_recommendations", "model", "A", 1, 25.0, 1, 0.1, 0.3, 0.2, 1.0, 0.5),
    ("e2", "email_recommendations", "email_recommendations", "model", "A", 0, 0.0, 0, 0.1, 0.3, 0.2, 1.0, 0.5),
    ("h4", "no_action", "email_recommendations", "holdout", "A", 0, 0.0, NA, 0.0, 0.2, 0.2, 0.0, 0.0),
    ("h5", "no_action", "email_recommendations", "holdout", "A", 0, 0.0, NA, 0.0, 0.2, 0.2, 0.0, 0.0),
    ("f1", "free_shipping", "free_shipping", "model", "B", 0, 0.0, NA, 0.0, 0.2, 0.1, 1.0, np.nan),
    ("n1", "no_action", "no_action", "model", "B", 1, 10.0, NA, 0.0, 0.4, 0.4, 0.0, 0.0),
    ("x1", "coupon_20", "coupon_20", "explore", "A", 1, 1000.0, NA, 10.0, 0.5, 0.3, 4.0, 1.0),
    ("x2", "no_action", "coupon_20", "explore", "A", 0, 0.0, NA, 0.0, 0.3, 0.3, 0.0, 0.0),
]


def frame(rows: list[tuple] = ROWS) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.insert(0, "run_date", pd.Timestamp("2024-05-06"))
    out["clicked"] = pd.array(out["clicked"], dtype="Int64")
    return out


def proportion_by_hand(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float, float, float]:
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    pooled = (x1 + x0) / (n1 + n0)
    z = (p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return p1 - p0, p1 - p0 - Z * se, p1 - p0 + Z * se, 2 * stats.norm.sf(abs(z))


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = np.mean(a) - np.mean(b)
    return diff, diff - half, diff + half, stats.ttest_ind(a, b, equal_var=False).pvalue


def test_two_proportion_test_matches_the_formulas() -> None:
    r = two_proportion_test(30, 100, 20, 100)
    se = math.sqrt(0.3 * 0.7 / 100 + 0.2 * 0.8 / 100)
    z = 0.1 / math.sqrt(0.25 * 0.75 * (2 / 100))
    assert r.estimate == pytest.approx(0.10)
    assert r.se == pytest.approx(se)
    assert (r.lo, r.hi) == pytest.approx((0.10 - 1.959964 * se, 0.10 + 1.959964 * se))
    assert r.p_value == pytest.approx(2 * (1 - stats.norm.cdf(z)))
    assert r.p_value == pytest.approx(0.1025, abs=1e-4)  # z = 0.1 / 0.0612 = 1.633
    narrow = two_proportion_test(30, 100, 20, 100, level=0.5)
    assert narrow.hi - narrow.lo == pytest.approx(2 * stats.norm.ppf(0.75) * se)


def test_two_proportion_test_degenerate_cases() -> None:
    for args in ((0, 0, 5, 10), (3, 10, 0, 0)):
        r = two_proportion_test(*args)
        assert all(math.isnan(v) for v in (r.estimate, r.lo, r.hi, r.p_value))
    for args in ((0, 10, 0, 20), (10, 10, 20, 20)):
        r = two_proportion_test(*args)
        assert (r.estimate, r.lo, r.hi, r.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        two_proportion_test(11, 10, 0, 10)
    with pytest.raises(ValueError, match="level"):
        two_proportion_test(1, 10, 0, 10, level=1.0)


def test_welch_test_matches_scipy_and_the_satterthwaite_interval() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(1.0, 2.0, 40), rng.normal(0.0, 0.5, 25)
    r = welch_test(a, b)
    diff, lo, hi, p = welch_by_hand(list(a), list(b))
    assert r.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert (r.estimate, r.lo, r.hi, r.p_value) == pytest.approx((diff, lo, hi, p))
    assert r.se == pytest.approx(math.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 25))
    assert welch_test([*a, np.nan], b) == r  # missing values are dropped


def test_welch_test_degenerate_cases() -> None:
    r = welch_test([1.0], [1.0, 2.0])
    assert r.estimate == pytest.approx(-0.5)
    assert all(math.isnan(v) for v in (r.lo, r.hi, r.p_value, r.se))
    assert math.isnan(welch_test([], [1.0, 2.0]).estimate)
    same = welch_test([2.0, 2.0], [2.0, 2.0, 2.0])
    assert (same.estimate, same.lo, same.hi, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    apart = welch_test([3.0, 3.0], [2.0, 2.0])
    assert apart.estimate == 1.0
    assert all(math.isnan(v) for v in (apart.lo, apart.hi, apart.p_value))


def test_strategy_effects_keys_and_dtypes() -> None:
    out = strategy_effects(frame())
    assert list(zip(out["strategy"], out["segment"], strict=True)) == [
        ("coupon_20", "A"),
        ("coupon_20", "B"),
        ("coupon_20", "all"),
        ("email_recommendations", "A"),
        ("email_recommendations", "all"),
        ("free_shipping", "B"),
        ("free_shipping", "all"),
    ]
    assert (out["run_date"] == pd.Timestamp("2024-05-06")).all()
    assert out["run_date"].dtype == frame()["run_date"].dtype  # kept as given
    assert out["customers"].dtype == "int64"
    assert out["holdout_customers"].dtype == "int64"
    assert out["prediction_inside_interval"].dtype == "boolean"
    assert out["roi"].dtype == "float64"


def test_strategy_effects_every_column_of_one_row() -> None:
    out = strategy_effects(frame()).set_index(["strategy", "segment"])
    row = out.loc[("coupon_20", "A")]
    conv, conv_lo, conv_hi, conv_p = proportion_by_hand(2, 3, 1, 2)
    rev, rev_lo, rev_hi, rev_p = welch_by_hand([50, 0, 30], [0, 20])
    expected = {
        "customers": 3,
        "holdout_customers": 2,
        "conversion_rate": 2 / 3,
        "holdout_conversion_rate": 1 / 2,
        "revenue_per_customer": 80 / 3,
        "holdout_revenue_per_customer": 10.0,
        "incremental_conversion_rate": 1 / 6,
        "incremental_conversion_rate_lo": conv_lo,
        "incremental_conversion_rate_hi": conv_hi,
        "incremental_conversion_rate_p_value": conv_p,
        "incremental_revenue_per_customer": 80 / 3 - 10,
        "incremental_revenue_per_customer_lo": rev_lo,
        "incremental_revenue_per_customer_hi": rev_hi,
        "incremental_revenue_per_customer_p_value": rev_p,
        "incremental_conversions": 0.5,
        "incremental_conversions_lo": 3 * conv_lo,
        "incremental_conversions_hi": 3 * conv_hi,
        "incremental_revenue": 50.0,
        "incremental_revenue_lo": 3 * rev_lo,
        "incremental_revenue_hi": 3 * rev_hi,
        "cost": 20.0,
        "incremental_profit": 30.0,
        "roi": 1.5,
        "predicted_incremental_conversions": 0.7,
        "predicted_incremental_revenue": 12.0,
        "predicted_incremental_profit": 4.0,
    }
    assert conv == pytest.approx(1 / 6)
    assert rev == pytest.approx(80 / 3 - 10)
    for column, value in expected.items():
        assert row[column] == pytest.approx(value), column
    assert math.isnan(row["click_through_rate"])  # coupons send no e-mail
    assert conv_p == pytest.approx(2 * stats.norm.sf((1 / 6) / math.sqrt(0.6 * 0.4 * (1 / 3 + 1 / 2))))


def test_strategy_effects_other_rows_and_pooled_segments() -> None:
    out = strategy_effects(frame()).set_index(["strategy", "segment"])
    b = out.loc[("coupon_20", "B")]
    assert (b["customers"], b["holdout_customers"]) == (2, 1)
    # interval [-0.386, 2.386] incremental conversions; the model predicted -1.0
    assert b["incremental_conversions_lo"] == pytest.approx(2 * (0.5 - Z * math.sqrt(0.25 / 2)))
    assert b["predicted_incremental_conversions"] == pytest.approx(-1.0)
    # one holdout customer: revenue estimate only, no interval
    assert b["incremental_revenue"] == pytest.approx(40.0)
    assert math.isnan(b["incremental_revenue_lo"]) and math.isnan(b["incremental_revenue_per_customer_p_value"])
    assert b["roi"] == pytest.approx(29 / 11)

    pooled = out.loc[("coupon_20", "all")]
    _, lo, _, p = proportion_by_hand(3, 5, 1, 3)
    rev, rev_lo, _, rev_p = welch_by_hand([50, 0, 30, 40, 0], [0, 20, 0])
    assert (pooled["customers"], pooled["holdout_customers"]) == (5, 3)
    assert pooled["incremental_conversion_rate"] == pytest.approx(3 / 5 - 1 / 3)
    assert (pooled["incremental_conversion_rate_lo"], pooled["incremental_conversion_rate_p_value"]) == pytest.approx(
        (lo, p)
    )
    assert (pooled["incremental_revenue_per_customer"], pooled["incremental_revenue_per_customer_lo"]) == pytest.approx(
        (rev, rev_lo)
    )
    assert pooled["incremental_revenue_per_customer_p_value"] == pytest.approx(rev_p)
    assert (pooled["cost"], pooled["predicted_incremental_conversions"]) == pytest.approx((31.0, -0.3))
    assert pooled["predicted_incremental_profit"] == pytest.approx(-2.0)

    email = out.loc[("email_recommendations", "A")]
    assert email["click_through_rate"] == pytest.approx(0.5)
    assert email["incremental_revenue_per_customer_p_value"] == pytest.approx(
        stats.ttest_ind([25.0, 0.0], [0.0, 0.0], equal_var=False).pvalue
    )
    assert email["roi"] == pytest.approx((25.0 - 0.2) / 0.2)

    # no holdout customer for free shipping: no interval, so no verdict; zero cost, so no ROI
    free = out.loc[("free_shipping", "B")]
    assert (free["customers"], free["holdout_customers"]) == (1, 0)
    assert math.isnan(free["holdout_conversion_rate"]) and math.isnan(free["incremental_conversion_rate"])
    # coupon A inside, coupon B outside (predicted -1.0 below -0.386), free shipping without an interval
    assert out["prediction_inside_interval"].tolist() == [True, False, True, True, True, pd.NA, pd.NA]
    assert math.isnan(free["roi"])
    assert math.isnan(free["predicted_incremental_profit"])  # its only prediction is missing


def test_predicted_interval_by_hand() -> None:
    out = strategy_effects(frame()).set_index(["strategy", "segment"])
    # coupon A: treated c1..c3 predicted 0.5, 0.4, 0.6 (mean 0.5); holdout h1, h2 predicted control 0.3
    row = out.loc[("coupon_20", "A")]
    half = Z * 3 * math.sqrt(0.5 * 0.5 / 3 + 0.3 * 0.7 / 2)
    assert (row["predicted_incremental_conversions_lo"], row["predicted_incremental_conversions_hi"]) == pytest.approx(
        (0.7 - half, 0.7 + half)
    )
    assert row["realised_inside_predicted_interval"]  # realised 0.5
    # coupon B: predicted -1.0, realised +1.0 (1 of 2 treated converted, the one holdout did not)
    var_b = 0.1 * 0.9 / 2 + 0.6 * 0.4 / 1
    narrow = strategy_effects(frame(), level=0.5).set_index(["strategy", "segment"]).loc[("coupon_20", "B")]
    z50 = stats.norm.ppf(0.75)
    assert narrow["predicted_incremental_conversions_hi"] == pytest.approx(-1.0 + z50 * 2 * math.sqrt(var_b))
    assert not narrow["realised_inside_predicted_interval"]
    # the model's own error variance widens the predicted interval, never the realised one
    wide = strategy_effects(frame(), level=0.5, model_error_var=2.0).set_index(["strategy", "segment"])
    b = wide.loc[("coupon_20", "B")]
    assert b["predicted_incremental_conversions_hi"] == pytest.approx(-1.0 + z50 * 2 * math.sqrt(var_b + 2.0))
    assert b["realised_inside_predicted_interval"]
    assert b["incremental_conversions_hi"] == narrow["incremental_conversions_hi"]
    # free shipping has no holdout customer: no predicted interval, no verdict
    free = out.loc[("free_shipping", "B")]
    assert math.isnan(free["predicted_incremental_conversions_lo"])
    assert out["realised_inside_predicted_interval"].tolist() == [True, True, True, True, True, pd.NA, pd.NA]
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="model_error_var"):
            strategy_effects(frame(), model_error_var=bad)


def calibrated_cells(segments: int, per_segment: int, uplift: float, predicted_uplift: float) -> pd.DataFrame:
    """Many (strategy, segment) cells of a model that predicts ``predicted_uplift`` where the truth is ``uplift``."""
    rng = np.random.default_rng(7)
    n = segments * per_segment
    base = rng.uniform(0.05, 0.3, size=n)
    reason = rng.choice(["model", "holdout"], size=n, p=[0.7, 0.3])
    treated = reason == "model"
    converted = rng.random(n) < base + np.where(treated, uplift, 0.0)
    return pd.DataFrame(
        {
            "run_date": "2024-05-06",
            "customer_id": np.arange(n),
            "strategy": np.where(treated, "coupon_20", "no_action"),
            "model_strategy": "coupon_20",
            "reason": reason,
            "segment": np.repeat([f"s{i:03d}" for i in range(segments)], per_segment),
            "converted": converted.astype(int),
            "revenue": np.where(converted, 40.0, 0.0),
            "clicked": np.nan,
            "cost": np.where(treated, 1.0, 0.0),
            "p_convert_chosen": np.where(treated, base + predicted_uplift, base),
            "p_convert_control": base,
            "expected_incremental_revenue": 40.0 * predicted_uplift,
            "expected_incremental_profit": 40.0 * predicted_uplift - 1.0,
        }
    )


def test_predicted_intervals_cover_95_percent_of_a_calibrated_models_cells() -> None:
    out = strategy_effects(calibrated_cells(400, 300, 0.05, 0.05))
    cells = out.loc[out["segment"] != "all", "realised_inside_predicted_interval"].astype(bool)
    assert len(cells) == 400
    assert 0.92 <= cells.mean() <= 0.98  # 95% ± 2 binomial standard errors of 400 cells
    # a model that halves the uplift misses most cells, unless its known error is in the interval
    biased = calibrated_cells(400, 300, 0.08, 0.0)
    missed = strategy_effects(biased).query("segment != 'all'")["realised_inside_predicted_interval"].astype(bool)
    assert missed.mean() < 0.6
    honest = strategy_effects(biased, model_error_var=0.08**2)
    covered = honest.query("segment != 'all'")["realised_inside_predicted_interval"].astype(bool)
    assert covered.mean() > 0.9


def test_explore_rows_and_the_control_are_excluded() -> None:
    data = frame()
    out = strategy_effects(data)
    without_explore = strategy_effects(data[data["reason"] != "explore"].reset_index(drop=True))
    pd.testing.assert_frame_equal(out, without_explore)
    assert "no_action" not in set(out["strategy"])
    unpooled = strategy_effects(data, by=("run_date", "strategy"))
    assert list(unpooled["strategy"]) == ["coupon_20", "email_recommendations", "free_shipping"]
    assert list(unpooled["customers"]) == [5, 2, 1]
    empty = strategy_effects(data[data["reason"] == "holdout"])
    assert empty.empty and list(empty.columns) == list(out.columns)


def test_strategy_effects_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match=r"missing columns: clicked, cost$"):
        strategy_effects(frame().drop(columns=["cost", "clicked"]))
    bad = frame()
    bad.loc[0, "reason"] = "random"
    bad.loc[1, "reason"] = "Holdout"
    with pytest.raises(ValueError, match=r"unknown reason values: Holdout, random \("):
        strategy_effects(bad)
    with pytest.raises(ValueError, match="reserved"):
        strategy_effects(frame().assign(segment="all"))


def test_policy_value_by_hand() -> None:
    data = frame()
    model = data[data["reason"] == "model"]
    holdout = data[data["reason"] == "holdout"]
    a, b = model["revenue"] - model["cost"], holdout["revenue"] - holdout["cost"]
    diff, lo, hi, p = welch_by_hand(list(a), list(b))
    customers = int((data["reason"] != "holdout").sum())  # model and explore rows
    assert customers == 11
    value = policy_value(data)
    assert value["customers"] == customers
    assert (value["value"], value["lo"], value["hi"], value["p_value"]) == pytest.approx(
        (diff * customers, lo * customers, hi * customers, p)
    )
    with pytest.raises(ValueError, match="missing columns: cost"):
        policy_value(data.drop(columns=["cost"]))


def test_simulated_uplift_is_recovered() -> None:
    rng = np.random.default_rng(20240506)
    n = 20_000
    reason = rng.choice(["model", "holdout", "explore"], size=n, p=[0.6, 0.3, 0.1])
    treated = reason != "holdout"
    converted = rng.random(n) < np.where(treated, 0.15, 0.10)  # true uplift 0.05
    revenue = np.where(converted, 50.0, 0.0)
    data = pd.DataFrame(
        {
            "run_date": "2024-05-06",
            "customer_id": np.arange(n),
            "strategy": np.where(treated, "coupon_20", "no_action"),
            "model_strategy": "coupon_20",
            "reason": reason,
            "segment": rng.choice(["A", "B"], size=n),
            "converted": converted.astype(int),
            "revenue": revenue,
            "clicked": np.nan,
            "cost": np.where(treated, 1.0, 0.0),
            "p_convert_chosen": 0.15,
            "p_convert_control": 0.10,
            "expected_incremental_revenue": 2.5,
            "expected_incremental_profit": 1.5,
        }
    )
    out = strategy_effects(data)
    pooled = out[out["segment"] == "all"].iloc[0]
    assert pooled["run_date"] == "2024-05-06"
    assert pooled["customers"] == (reason == "model").sum()
    assert pooled["incremental_conversion_rate_lo"] <= 0.05 <= pooled["incremental_conversion_rate_hi"]
    assert abs(pooled["incremental_conversion_rate"] - 0.05) < 0.02
    assert pooled["incremental_conversion_rate_p_value"] < 1e-6
    assert pooled["incremental_revenue_per_customer_lo"] <= 2.5 <= pooled["incremental_revenue_per_customer_hi"]
    assert out["prediction_inside_interval"].tolist() == [True, True, True]
    value = policy_value(data)
    assert value["lo"] <= 1.5 * value["customers"] <= value["hi"]
