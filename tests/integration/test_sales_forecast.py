"""The sales forecast from silver Parquet into the real PostgreSQL: a rerun of an origin replaces its rows."""

from __future__ import annotations

import logging
import secrets
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.forecasting.sales import run_forecast
from jobs.settings import get_settings
from jobs.warehouse import Warehouse

FIRST, ORIGIN = date(2026, 3, 1), date(2026, 3, 22)  # three weeks of history: the seasonal-naive fallback
ITEM = pa.struct([("product_id", pa.string()), ("qty", pa.int32()), ("price", pa.float64())])


def write_silver(lake: Path, extra_on_last_day: int = 0) -> None:
    """Silver products (x, y, and z never sold) and orders: 1 + weekday orders of x a day, one of y on Sundays."""
    products = pa.table(
        {
            "product_id": ["p1", "p2", "p3"],
            "category": ["x", "y", "z"],
            "updated_at": pa.array([None] * 3, pa.timestamp("us", "UTC")),
        }
    )
    folder = lake / "silver/products/ds=2026-02-28"
    folder.mkdir(parents=True)
    pq.write_table(products, folder / "part-0.parquet")
    for i in range((ORIGIN - FIRST).days):
        day = FIRST + timedelta(days=i)
        n = 1 + day.weekday() + (extra_on_last_day if i == (ORIGIN - FIRST).days - 1 else 0)
        items = [[{"product_id": "p1", "qty": 1, "price": 10.0}] for _ in range(n)]
        if day.weekday() == 6:
            items.append([{"product_id": "p2", "qty": 1, "price": 40.0}])
        folder = lake / f"silver/orders/ds={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "order_id": [f"O{day}-{k}" for k in range(len(items))],
                "ts": pa.array([f"{day}T12:00:00Z"] * len(items)).cast(pa.timestamp("us", "UTC")),
                "amount": pa.array([sum(i["price"] for i in it) for it in items]),
                "discount": pa.array([0.0] * len(items)),
                "items": pa.array(items, pa.list_(ITEM)),
            }
        )
        pq.write_table(table, folder / "part-0.parquet")


@pytest.fixture
def postgres_home(msp_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    schema = f"t_{secrets.token_hex(6)}"
    monkeypatch.setenv("MSP_WAREHOUSE_URL", postgres_url)
    monkeypatch.setenv("MSP_WAREHOUSE_SCHEMA", schema)
    get_settings.cache_clear()
    return Warehouse(postgres_url, schema)


def cli(*args: str) -> tuple[int, str]:
    handlers = list(logging.getLogger().handlers)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:  # the CLI's log handler writes to CliRunner's stderr, closed afterwards: leave no such handler
        logging.getLogger().handlers[:] = handlers
    return result.exit_code, result.output


def test_a_rerun_of_the_same_origin_replaces_its_rows_in_postgres(postgres_home: Warehouse) -> None:
    wh, lake = postgres_home, get_settings().lake
    write_silver(lake)
    code, output = cli("forecast", "sales", "--ds", str(ORIGIN))
    assert code == 0, output
    key = "run_date, category, metric, target_date"
    first = wh.query(f"SELECT {key}, forecast FROM {wh.schema}.sales_forecast ORDER BY {key}")
    assert len(first) == 4 * 2 * 28  # x, y, z and all; orders and revenue; 28 days
    # Saturday 2026-03-21 had 6 orders of x: the seasonal naive says 6 on Saturday 2026-03-28
    sat = first[(first["category"] == "all") & (first["metric"] == "orders")]
    assert float(sat.loc[sat["target_date"] == date(2026, 3, 28), "forecast"].iloc[0]) == pytest.approx(6.0)

    shutil.rmtree(lake / "silver")  # the Saturday is corrected: 3 more orders
    write_silver(lake, extra_on_last_day=3)
    run_forecast(get_settings(), str(ORIGIN))
    second = wh.query(f"SELECT {key}, forecast, lower, upper, model_name FROM {wh.schema}.sales_forecast")
    assert len(second) == len(first) and not second.duplicated(["run_date", "category", "metric", "target_date"]).any()
    sat = second[(second["category"] == "all") & (second["metric"] == "orders")]
    assert float(sat.loc[sat["target_date"] == date(2026, 3, 28), "forecast"].iloc[0]) == pytest.approx(9.0)
    z = second[second["category"] == "z"]
    assert set(z["model_name"]) == {"zero"} and (z["forecast"] == 0).all()
    assert set(second["model_name"]) == {"seasonal_naive", "zero"}
    assert (second["lower"] <= second["forecast"]).all() and (second["forecast"] <= second["upper"]).all()
    latest = wh.query(f"SELECT category, orders, revenue FROM {wh.schema}.v_sales_forecast_latest")
    assert len(latest) == 4 * 28
    y_sunday = latest[latest["category"] == "y"]["revenue"].max()
    assert float(y_sunday) == pytest.approx(40.0)  # one order of 40 every Sunday

    # the week 03-15 .. 03-21 earned 110 + 10 + 20 + 30 + 40 + 50 + 90 = 350: the seasonal naive's next 7 days
    campaigns = pd.DataFrame(
        {
            "run_date": ORIGIN,
            "strategy": "coupon_10",
            "segment": ["new", "buyer"],
            "customers": [10, 20],
            "expected_incremental_revenue": [14.0, 21.0],
            "model_name": "m",
            "model_version": "1",
            "created_at": pd.Timestamp("2026-03-22 05:00"),
        }
    )
    wh.replace("campaign_forecast", {"run_date": ORIGIN}, campaigns)
    share = wh.query(f"SELECT * FROM {wh.schema}.v_campaign_revenue_share").iloc[0]
    assert (share["strategy"], int(share["customers"])) == ("coupon_10", 30)
    assert float(share["forecast_revenue_7d"]) == pytest.approx(350.0)
    assert float(share["share_of_forecast_revenue"]) == pytest.approx(35 / 350)


def test_an_origin_without_orders_in_the_week_before_fails_with_a_clear_message(postgres_home: Warehouse) -> None:
    write_silver(get_settings().lake)
    code, output = cli("forecast", "sales", "--ds", "2026-04-10")
    assert code == 2 and "no partition between 2026-04-03 and 2026-04-09" in output
