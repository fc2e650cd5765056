"""The nightly sales forecast: silver orders -> daily history per category -> forecast -> warehouse.

A run date D forecasts D .. D + horizon - 1 from the orders with ``ts`` before D 00:00 UTC (the same
point-in-time rule as the features), over the last ``history_days`` days. Per day and category:

- ``orders``: orders with at least one item of the category (an order of two categories counts in both);
- ``revenue``: the order's net revenue (``amount - discount``) shared over its items by their value
  (``qty x price``); orders without items (or of products unknown to the catalogue) count as ``unknown``.

Category ``all`` is the shop's total: every order once, its whole net revenue. The categories are those
of the latest product versions before D (a category without any sale gets a forecast of 0). Silver is
read with pyarrow (a few columns of daily partitions; no Spark session is needed for this).

The rows replace the run date in ``marketing.sales_forecast`` in one transaction, so a rerun of D
replaces its rows and never duplicates them.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.forecasting.model import ALL, METRICS, forecast_sales
from jobs.pipeline.lake import PipelineError, check_ds, layer_path
from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

HORIZON = 28
HISTORY_DAYS = 364
LEVEL = 0.8
UNKNOWN = "unknown"
#: the warehouse table's columns, in table order
TABLE_COLUMNS = [
    "run_date",
    "target_date",
    "horizon",
    "category",
    "metric",
    "forecast",
    "lower",
    "upper",
    "interval_level",
    "model_name",
    "history_days",
    "created_at",
]


def order_lines(table: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(orders: ``order_id, ts, net``; lines: ``order_id, product_id, qty, price``) from order rows with ``items``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    orders = pd.DataFrame(
        {
            "order_id": table["order_id"].to_numpy(zero_copy_only=False),
            "ts": pd.to_datetime(table["ts"].to_pandas(), utc=True, format="ISO8601"),
            "net": (
                table["amount"].to_pandas().astype(float) - table["discount"].to_pandas().astype(float).fillna(0.0)
            ).to_numpy(),
        }
    )
    items = table["items"].combine_chunks() if isinstance(table["items"], pa.ChunkedArray) else table["items"]
    flat = pc.list_flatten(items)
    parents = pc.list_parent_indices(items).to_numpy()
    lines = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[parents],
            "product_id": flat.field("product_id").to_numpy(zero_copy_only=False),
            "qty": flat.field("qty").to_pandas().astype("float64").to_numpy(),
            "price": flat.field("price").to_pandas().astype("float64").to_numpy(),
        }
    )
    return orders, lines


def daily_sales(
    orders: pd.DataFrame, lines: pd.DataFrame, products: pd.DataFrame, start: date, end: date
) -> pd.DataFrame:
    """``ds, category, orders, revenue`` for the orders dated ``start .. end`` (UTC), with category ``all``."""
    import numpy as np
    import pandas as pd

    orders = orders.assign(ds=pd.to_datetime(orders["ts"], utc=True).dt.date)
    orders = orders[(orders["ds"] >= start) & (orders["ds"] <= end)]
    lines = lines[lines["order_id"].isin(orders["order_id"])]
    lines = lines.merge(products[["product_id", "category"]], on="product_id", how="left")
    lines["category"] = lines["category"].fillna(UNKNOWN)
    lines["value"] = lines["qty"].fillna(1.0) * lines["price"].fillna(0.0)
    bare = orders.loc[~orders["order_id"].isin(lines["order_id"]), ["order_id"]]
    lines = pd.concat([lines, bare.assign(category=UNKNOWN, value=0.0)], ignore_index=True)
    grouped = lines.groupby("order_id")["value"]
    total, count = grouped.transform("sum"), grouped.transform("size")
    lines["share"] = np.where(total > 0, lines["value"] / total.where(total > 0, 1.0), 1.0 / count)
    lines = lines.merge(orders[["order_id", "ds", "net"]], on="order_id")
    lines["revenue"] = lines["share"] * lines["net"]
    per_category = lines.groupby(["ds", "category"], as_index=False).agg(
        orders=("order_id", "nunique"), revenue=("revenue", "sum")
    )
    per_shop = orders.groupby("ds", as_index=False).agg(orders=("order_id", "nunique"), revenue=("net", "sum"))
    out = pd.concat([per_category, per_shop.assign(category=ALL)], ignore_index=True)
    return out.astype({"orders": "float64", "revenue": "float64"})[["ds", "category", *METRICS]]


def _files(root: Path, dates: list[str]) -> list[str]:
    found = []
    for ds in dates:
        folder = root / f"ds={ds}"
        if folder.is_dir():
            found += sorted(str(f) for f in folder.iterdir() if f.is_file() and not f.name.startswith((".", "_")))
    return found


def _days(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def latest_products(settings: Settings, origin: date) -> pd.DataFrame:
    """``product_id, category``: each product's latest version (``updated_at``) in partitions before ``origin``."""
    import pyarrow.dataset as pads

    root = layer_path(settings, "silver", "products")
    dates = sorted(p.name[3:] for p in root.glob("ds=*") if p.name[3:] < origin.isoformat()) if root.is_dir() else []
    files = _files(root, dates)
    if not files:
        raise PipelineError(f"silver products has no partition before {origin}: ingest and clean products first")
    frame = pads.dataset(files, format="parquet").to_table(columns=["product_id", "category", "updated_at"]).to_pandas()
    frame = frame.sort_values("updated_at", kind="stable", na_position="first")
    return frame.drop_duplicates("product_id", keep="last")[["product_id", "category"]].reset_index(drop=True)


def read_history(settings: Settings, origin: date, history_days: int = HISTORY_DAYS) -> tuple[pd.DataFrame, list[str]]:
    """(daily history ``origin - history_days .. origin - 1`` from silver, the catalogue's categories).

    Raises PipelineError when silver orders has no partition in the week before ``origin``: a week
    without any order is taken as data not ingested yet, not as a week of zero sales.
    """
    import pyarrow.dataset as pads

    start, end = origin - timedelta(days=history_days), origin - timedelta(days=1)
    root = layer_path(settings, "silver", "orders")
    if not _files(root, _days(origin - timedelta(days=7), end)):
        raise PipelineError(f"silver orders has no partition between {origin - timedelta(days=7)} and {end}")
    if not _files(root, [end.isoformat()]):
        log.warning("silver orders has no partition for %s: that day counts as a day without orders", end)
    # an order's ds is its UTC date; one day either side keeps a late or early partition's rows in range
    files = _files(root, _days(start - timedelta(days=1), origin))
    table = pads.dataset(files, format="parquet").to_table(columns=["order_id", "ts", "amount", "discount", "items"])
    orders, lines = order_lines(table)
    products = latest_products(settings, origin)
    daily = daily_sales(orders, lines, products, start, end)
    categories = sorted(set(products["category"].dropna()) | {ALL})
    log.info("sales history %s..%s: %d orders, %d categories", start, end, len(orders), len(categories) - 1)
    return daily, categories


def run_forecast(
    settings: Settings,
    ds: str,
    *,
    horizon: int = HORIZON,
    history_days: int = HISTORY_DAYS,
    level: float = LEVEL,
    publish: bool = True,
) -> pd.DataFrame:
    """Forecast ``ds .. ds + horizon - 1`` from silver; replace the run date in ``marketing.sales_forecast``."""
    import pandas as pd

    origin = date.fromisoformat(check_ds(ds))
    daily, categories = read_history(settings, origin, history_days)
    frame = forecast_sales(daily, horizon, origin=origin, level=level, categories=categories)
    frame.insert(0, "run_date", origin)
    frame["interval_level"] = level
    frame["created_at"] = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
    frame = frame[TABLE_COLUMNS]
    if publish:
        from jobs.warehouse import Warehouse

        Warehouse.from_settings(settings).replace("sales_forecast", {"run_date": origin}, frame)
    return frame


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    """What a run wrote: rows, models used, and the shop's point forecast summed over the horizon."""
    shop = frame[frame["category"] == ALL].groupby("metric")["forecast"].sum()
    return {
        "run_date": str(frame["run_date"].iloc[0]) if len(frame) else None,
        "rows": len(frame),
        "categories": int(frame["category"].nunique()),
        "models": {str(k): int(v) for k, v in frame.groupby("model_name")["metric"].count().items()},
        "shop_total": {str(m): round(float(v), 2) for m, v in shop.items()},
    }


def forecast_task(ds: str) -> dict[str, Any]:
    """Task body of ``marketing_forecast`` (and ``msp forecast sales``): run, write, summarise."""
    from jobs.settings import get_settings
    from jobs.training.tasks import fail_on_data_errors

    return summary(fail_on_data_errors(run_forecast, get_settings(), ds))
