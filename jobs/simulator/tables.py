"""Landing-zone representation of each table: columns, formats and the defects that fit it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.simulator.config import REGIONS
from jobs.simulator.dirt import TableSpec

LOCAL_TZ = "Europe/Berlin"  # the shop exports orders in its local time, with the UTC offset


def iso_utc_ms(ms: np.ndarray) -> np.ndarray:
    """Epoch ms -> ``2026-09-01T10:11:12.345Z``."""
    text = np.datetime_as_string(np.asarray(ms, dtype="int64").astype("datetime64[ms]"), unit="ms")
    return np.char.add(text.astype(str), "Z")


def iso_utc_s(ms: np.ndarray) -> np.ndarray:
    text = np.datetime_as_string(np.asarray(ms, dtype="int64").astype("datetime64[ms]"), unit="s")
    return np.char.add(text.astype(str), "Z")


def iso_local(ms: np.ndarray) -> np.ndarray:
    """Epoch ms -> shop-local time with its offset, e.g. ``2026-09-01T12:11:12+02:00``."""
    if len(ms) == 0:
        return np.zeros(0, dtype="<U25")
    utc = pd.DatetimeIndex(pd.to_datetime(np.asarray(ms, dtype="int64"), unit="ms", utc=True))
    local = utc.tz_convert(LOCAL_TZ).tz_localize(None)
    offset_h = ((local - utc.tz_localize(None)) // pd.Timedelta(hours=1)).to_numpy()
    text = np.datetime_as_string(local.to_numpy().astype("datetime64[s]"), unit="s").astype(str)
    suffix = np.where(offset_h >= 0, "+", "-")
    hours = np.char.zfill(np.abs(offset_h).astype(str), 2)
    return np.char.add(np.char.add(text, suffix), np.char.add(hours, ":00"))


def iso_date(ms: np.ndarray) -> np.ndarray:
    days = np.asarray(ms, dtype="int64").astype("datetime64[ms]").astype("datetime64[D]")
    return np.datetime_as_string(days, unit="D").astype(str)


def _one(fn: Any) -> Any:
    return lambda ms: str(fn(np.array([ms]))[0])


# --- defects per table ---------------------------------------------------------------------


def _customer_near_dup(row: dict[str, Any], rng: np.random.Generator) -> str:
    if row.get("email"):
        row["email"] = row["email"].upper()
        return "email"
    row["first_name"] = f" {row['first_name']}  "
    return "first_name"


def _customer_bad(row: dict[str, Any], rng: np.random.Generator) -> tuple[str, Any, str]:
    return "birth_year", str(rng.choice([1850, 1899, 2031, 2099])), "out_of_range"


def _product_near_dup(row: dict[str, Any], rng: np.random.Generator) -> str:
    row["category"] = f"{row['category'].upper()} "
    return "category"


def _product_bad(row: dict[str, Any], rng: np.random.Generator) -> tuple[str, Any, str]:
    if rng.random() < 0.6:
        return "price", -abs(float(row["price"])) - 0.01, "out_of_range"
    return "margin_rate", float(rng.choice([1.7, -0.4])), "out_of_range"


def _event_near_dup(row: dict[str, Any], rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        row["event_type"] = f" {row['event_type'].upper()}"
        return "event_type"
    row["ts"] = row["ts"].replace("T", " ").replace("Z", "+00:00")
    return "ts"


def _event_bad(row: dict[str, Any], rng: np.random.Generator) -> tuple[str, Any, str]:
    return "event_type", str(rng.choice(["teleport", "refund_request", "viewed!"])), "invalid_value"


def _order_near_dup(row: dict[str, Any], rng: np.random.Generator) -> str:
    row["ts"] = str(iso_utc_s(np.array([row["_ts_ms"]]))[0])
    return "ts"


def _order_bad(row: dict[str, Any], rng: np.random.Generator) -> tuple[str, Any, str]:
    if rng.random() < 0.5:
        return "amount", -round(float(row["amount"]) + 1.0, 2), "out_of_range"
    return "amount", round(float(row["amount"]) * 1000 + 1_000_000, 2), "out_of_range"


def _campaign_near_dup(row: dict[str, Any], rng: np.random.Generator) -> str:
    row["strategy"] = f" {row['strategy'].upper()}"
    return "strategy"


def _campaign_bad(row: dict[str, Any], rng: np.random.Generator) -> tuple[str, Any, str]:
    u = rng.random()
    if u < 0.6:
        return "propensity", float(rng.choice([0.0, -0.2, 1.5])), "out_of_range"
    return "strategy", str(rng.choice(["coupon_50", "sms_blast"])), "invalid_value"


def _fresh(col: str, fmt: str) -> Any:
    def apply(row: dict[str, Any], seq: int, ymd: str) -> None:
        row[col] = fmt.format(seq=seq, ymd=ymd, old=row[col])

    return apply


SPECS: dict[str, TableSpec] = {
    "customers": TableSpec(
        name="customers",
        fmt="csv",
        key=("customer_id",),
        columns=(
            "customer_id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "signup_date",
            "region",
            "channel",
            "birth_year",
            "gender",
            "updated_at",
        ),
        required=("signup_date",),
        optional=("region", "gender", "birth_year"),
        ts_col="signup_date",
        wrong_type={
            "birth_year": ("19x5", "unknown", "1984.5.1"),
            "signup_date": ("31/02/2026", "yesterday"),
        },
        bad_value=_customer_bad,
        near_dup=_customer_near_dup,
        fresh_key=_fresh("customer_id", "CX{ymd}{seq:05d}"),
    ),
    "products": TableSpec(
        name="products",
        fmt="jsonl",
        key=("product_id",),
        columns=("product_id", "name", "category", "price", "margin_rate", "is_active", "updated_at"),
        required=("category", "price"),
        optional=("name", "margin_rate"),
        ts_col="updated_at",
        wrong_type={"price": ("12,99 EUR", "n/a", "free"), "margin_rate": ("high",)},
        bad_value=_product_bad,
        near_dup=_product_near_dup,
        fresh_key=_fresh("product_id", "PX{ymd}{seq:05d}"),
    ),
    "events": TableSpec(
        name="events",
        fmt="csv",
        key=("event_id",),
        columns=("event_id", "customer_id", "ts", "event_type", "product_id", "session_id"),
        required=("customer_id", "ts", "event_type"),
        fk={"customer_id": "customers", "product_id": "products"},
        ts_col="ts",
        wrong_type={"ts": ("not-a-timestamp", "2026-13-45T25:61:00Z", "1693567890abc")},
        bad_value=_event_bad,
        near_dup=_event_near_dup,
        fresh_key=_fresh("event_id", "E{ymd}X{seq:07d}"),
    ),
    "orders": TableSpec(
        name="orders",
        fmt="jsonl",
        key=("order_id",),
        columns=("order_id", "customer_id", "ts", "amount", "discount", "currency", "items"),
        required=("customer_id", "ts", "amount"),
        optional=("discount",),
        fk={"customer_id": "customers", "items.product_id": "products"},
        ts_col="ts",
        wrong_type={"amount": ("12,5O", "twelve", "EUR 30"), "ts": ("tomorrow", "2026-02-30T12:00:00+01:00")},
        bad_value=_order_bad,
        near_dup=_order_near_dup,
        fresh_key=_fresh("order_id", "O{ymd}X{seq:06d}"),
    ),
    "campaign_log": TableSpec(
        name="campaign_log",
        fmt="parquet",
        key=("campaign_id", "customer_id"),
        columns=(
            "campaign_id",
            "customer_id",
            "ts",
            "strategy",
            "propensity",
            "is_holdout",
            "visited",
            "converted",
            "revenue",
            "updated_at",
        ),
        required=("ts", "strategy", "propensity"),
        fk={"customer_id": "customers"},
        ts_col="ts",
        bad_value=_campaign_bad,
        near_dup=_campaign_near_dup,
        fresh_key=_fresh("campaign_id", "{old}-X{seq:05d}"),
    ),
}

CAMPAIGN_LOG_SCHEMA = pa.schema(
    [
        ("campaign_id", pa.string()),
        ("customer_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("strategy", pa.string()),
        ("propensity", pa.float64()),
        ("is_holdout", pa.bool_()),
        ("visited", pa.bool_()),
        ("converted", pa.bool_()),
        ("revenue", pa.float64()),
        ("updated_at", pa.timestamp("ms", tz="UTC")),
    ]
)

#: epoch ms -> landing representation of each table's ``ts_col``
TS_FORMAT = {
    "customers": _one(iso_date),
    "products": _one(iso_utc_s),
    "events": _one(iso_utc_ms),
    "orders": _one(iso_local),
    "campaign_log": lambda ms: pd.Timestamp(ms, unit="ms", tz="UTC"),
}


def other_region(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A different region for each entry (customer moved)."""
    idx = np.searchsorted(np.array(sorted(REGIONS)), region)
    shift = rng.integers(1, len(REGIONS), size=len(region))
    return np.array(sorted(REGIONS))[(idx + shift) % len(REGIONS)]
