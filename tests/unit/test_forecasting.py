"""Sales forecast: the model and its fallbacks, the daily history from order rows, the backtest scores."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pytest import approx

from jobs.forecasting.backtest import _scores
from jobs.forecasting.model import FORECAST_COLUMNS, fill_daily, forecast_sales, seasonal_naive, z_value
from jobs.forecasting.sales import daily_sales, order_lines

MONDAY = date(2026, 3, 2)
WEEK = np.array([10.0, 20, 30, 40, 50, 60, 70])
Z80 = 1.2815515655446004


def history(values: np.ndarray, category: str = "a", first: date = MONDAY, revenue_factor: float = 5.0) -> pd.DataFrame:
    days = [first + timedelta(days=i) for i in range(len(values))]
    return pd.DataFrame({"ds": days, "category": category, "orders": values, "revenue": values * revenue_factor})


def series(frame: pd.DataFrame, category: str, metric: str) -> pd.DataFrame:
    return frame[(frame["category"] == category) & (frame["metric"] == metric)].sort_values("horizon")


def test_a_perfectly_weekly_series_is_forecast_back_by_ets() -> None:
    out = forecast_sales(history(np.tile(WEEK, 6)), horizon=28)
    assert list(out.columns) == FORECAST_COLUMNS and len(out) == 2 * 28
    orders = series(out, "a", "orders")
    assert orders["target_date"].iloc[0] == MONDAY + timedelta(days=42)  # the day after the history
    assert orders["forecast"].to_numpy() == approx(np.tile(WEEK, 4), abs=0.05)
    assert series(out, "a", "revenue")["forecast"].to_numpy() == approx(5 * np.tile(WEEK, 4), abs=0.25)
    assert set(out["model_name"]) <= {"ets_ANA", "ets_AAdA"} and set(out["history_days"]) == {42}


def test_intervals_contain_the_point_and_widen_with_the_horizon() -> None:
    rng = np.random.default_rng(7)
    level = 100 + np.cumsum(rng.normal(0, 3, 70))  # a wandering level: uncertainty grows with the horizon
    out = forecast_sales(history(np.round(level + np.tile(WEEK, 10) + rng.normal(0, 5, 70))), horizon=28)
    for metric in ("orders", "revenue"):
        s = series(out, "a", metric)
        assert (s["lower"] <= s["forecast"]).all() and (s["forecast"] <= s["upper"]).all()
        width = (s["upper"] - s["lower"]).to_numpy()
        assert np.all(np.diff(width) >= -1e-9) and width[-1] > 1.2 * width[0]
    assert out["model_name"].str.startswith("ets_").all()


def test_a_short_series_falls_back_to_the_seasonal_naive_with_its_interval() -> None:
    # two weeks: lag-7 differences are +-1, so sigma = 1 and the half-width is z, then z*sqrt(2) in week 2
    wiggle = np.array([1.0, -1, 1, -1, 1, -1, 1])
    out = forecast_sales(history(np.concatenate([WEEK, WEEK + wiggle])), horizon=10, level=0.8)
    s = series(out, "a", "orders")
    assert set(s["model_name"]) == {"seasonal_naive"}
    assert s["forecast"].to_numpy() == approx(np.concatenate([WEEK + wiggle, (WEEK + wiggle)[:3]]))
    half = (s["upper"] - s["forecast"]).to_numpy()
    assert half == approx([Z80] * 7 + [Z80 * np.sqrt(2)] * 3)
    assert z_value(0.8) == approx(Z80)


def test_zero_history_and_unknown_categories_forecast_zero() -> None:
    frame = pd.concat([history(np.tile(WEEK, 2)), history(np.zeros(14), "silent")])
    out = forecast_sales(frame, horizon=7, categories=["new"])
    assert sorted(out["category"].unique()) == ["a", "new", "silent"]
    for category in ("new", "silent"):
        rows = out[out["category"] == category]
        assert len(rows) == 14 and set(rows["model_name"]) == {"zero"}
        assert (rows[["forecast", "lower", "upper"]].to_numpy() == 0).all() and set(rows["history_days"]) == {0}


def test_missing_days_count_as_zero_and_days_before_the_first_sale_are_dropped() -> None:
    rows = history(np.array([4.0, 6.0, 2.0, 8.0]))
    rows["ds"] = [MONDAY + timedelta(days=d) for d in (1, 2, 4, 5)]  # Monday (before the first sale) and day 3 missing
    grid = fill_daily(rows, MONDAY, MONDAY + timedelta(days=5))
    assert grid["orders"].tolist() == [0.0, 4.0, 6.0, 0.0, 2.0, 8.0]
    out = forecast_sales(rows, horizon=3)
    s = series(out, "a", "orders")
    assert set(s["model_name"]) == {"mean"} and set(s["history_days"]) == {5}  # Tuesday .. Saturday, one zero
    assert s["forecast"].tolist() == approx([4.0] * 3)  # (4 + 6 + 0 + 2 + 8) / 5
    sd = np.std([4, 6, 0, 2, 8], ddof=1)
    assert (s["upper"] - s["forecast"]).tolist() == approx([Z80 * sd * np.sqrt(1.2)] * 3)
    assert s["lower"].min() == 0.0  # clipped: sales cannot be negative
    assert s["target_date"].iloc[0] == MONDAY + timedelta(days=6)


def test_the_origin_cuts_the_history_and_validates_inputs() -> None:
    frame = history(np.tile(WEEK, 3))
    out = forecast_sales(frame, horizon=7, origin=MONDAY + timedelta(days=14))  # the third week is not seen
    assert series(out, "a", "orders")["forecast"].to_numpy() == approx(WEEK)
    assert seasonal_naive(np.tile(WEEK, 2), 3)[0] == approx(WEEK[:3])
    with pytest.raises(ValueError, match="horizon"):
        forecast_sales(frame, horizon=0)
    with pytest.raises(ValueError, match="level"):
        forecast_sales(frame, level=1.0)


def test_order_rows_become_daily_orders_and_revenue_per_category() -> None:
    item = pa.struct([("product_id", pa.string()), ("qty", pa.int32()), ("price", pa.float64())])
    table = pa.table(
        {
            "order_id": ["A", "B", "C", "D", "E"],
            "ts": pd.to_datetime(
                [
                    "2026-03-02T10:00Z",
                    "2026-03-03T01:30Z",
                    "2026-03-03T12:00Z",
                    "2026-03-03T13:00Z",
                    "2026-03-05T09:00Z",
                ]
            ),
            "amount": [100.0, 30.0, 20.0, 15.0, 99.0],
            "discount": [10.0, None, 0.0, 5.0, 0.0],
            "items": pa.array(
                [
                    [{"product_id": "p1", "qty": 1, "price": 60.0}, {"product_id": "p2", "qty": 2, "price": 20.0}],
                    [{"product_id": "p1", "qty": None, "price": 30.0}],
                    [],
                    [{"product_id": "p9", "qty": 1, "price": 15.0}],
                    [{"product_id": "p2", "qty": 1, "price": 99.0}],
                ],
                pa.list_(item),
            ),
        }
    )
    orders, lines = order_lines(table)
    assert orders["net"].tolist() == [90.0, 30.0, 20.0, 10.0, 99.0] and len(lines) == 5
    products = pd.DataFrame({"product_id": ["p1", "p2"], "category": ["x", "y"]})
    daily = daily_sales(orders, lines, products, MONDAY, MONDAY + timedelta(days=1))  # E (Thursday) is outside
    got = {(str(r.ds), r.category): (r.orders, round(r.revenue, 6)) for r in daily.itertuples()}
    assert got == {
        ("2026-03-02", "x"): (1.0, 54.0),  # 90 shared 60 : 40 over x and y
        ("2026-03-02", "y"): (1.0, 36.0),
        ("2026-03-02", "all"): (1.0, 90.0),
        ("2026-03-03", "x"): (1.0, 30.0),
        ("2026-03-03", "unknown"): (2.0, 30.0),  # C without items, D of a product not in the catalogue
        ("2026-03-03", "all"): (3.0, 60.0),
    }


def test_backtest_scores_are_the_hand_computed_mase_wape_and_weekly_mape() -> None:
    frame = pd.DataFrame(
        {
            "origin": MONDAY,
            "category": "a",
            "horizon": range(1, 9),
            "actual": [10.0, 10, 10, 10, 10, 10, 10, 0],
            "model": [12.0, 10, 10, 10, 10, 10, 10, 2],
            "scale": 2.0,
        }
    )
    scores = _scores(frame, "model")
    assert scores["mase"] == approx((2 + 2) / 8 / 2.0)
    assert scores["wape"] == approx(4 / 70)
    assert scores["weekly_mape"] == approx(2 / 70)  # week 2 totals 0 and is left out
