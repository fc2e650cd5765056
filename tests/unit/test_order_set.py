"""The order set on hand-made frames: every order, its point-in-time features and the campaign it is attributed to."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.training.dataset import attribute_orders


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ORDERS = "order_id string, customer_id string, ts timestamp, amount double, discount double"
LOG = "campaign_id string, customer_id string, ts timestamp, strategy string, converted boolean, updated_at timestamp"
FEATURES = "customer_id string, recency double, strategy_received map<string,double>, ds string"


@pytest.fixture(scope="module")
def rows(spark) -> dict[str, dict]:
    orders = spark.createDataFrame(
        [
            ("O1", "C1", ts("2026-10-05 10:00"), 80.0, 0.0),  # features of 10-01
            ("O2", "C1", ts("2026-10-12 10:00"), 60.0, 0.0),  # features of 10-10
            ("O3", "C2", ts("2026-09-30 10:00"), 50.0, 0.0),  # before the first feature date: left out
            ("O4", "C2", ts("2026-10-02 10:00"), 90.0, 9.0),  # in C2's coupon_10 window (sent 10-01 08:00)
            ("O5", "C1", ts("2026-10-11 10:00"), 70.0, 0.0),  # in C1's control window (no_action)
            ("O6", "C2", ts("2026-10-08 09:00"), 40.0, 0.0),  # one hour after C2's window closed
            ("O7", "C1", ts("2026-10-10 00:00"), 30.0, 0.0),  # on a feature date's first instant: that date's
        ],
        ORDERS,
    )
    log = spark.createDataFrame(
        [
            ("CMP-1", "C2", ts("2026-10-01 08:00"), "coupon_10", None, ts("2026-10-01 08:00")),
            ("CMP-1", "C2", ts("2026-10-01 08:00"), "coupon_10", True, ts("2026-10-08 02:00")),  # outcome version
            ("CMP-2", "C1", ts("2026-10-10 08:00"), "no_action", None, ts("2026-10-10 08:00")),
        ],
        LOG,
    )
    features = spark.createDataFrame(
        [
            ("C1", 1.0, {"coupon_10": 1.0}, "2026-10-01"),
            ("C2", 2.0, {}, "2026-10-01"),
            ("C1", 3.0, {}, "2026-10-10"),
            ("C2", 4.0, {}, "2026-10-10"),
        ],
        FEATURES,
    )
    out = attribute_orders(orders, log, features, attribution_days=7).collect()
    return {r["order_id"]: r.asDict() for r in out}


def test_every_order_after_the_first_feature_date_once(rows: dict) -> None:
    assert sorted(rows) == ["O1", "O2", "O4", "O5", "O6", "O7"]


def test_features_are_the_last_ones_on_or_before_the_order_day(rows: dict) -> None:
    assert {k: (r["feature_date"], r["recency"]) for k, r in rows.items()} == {
        "O1": ("2026-10-01", 1.0),
        "O2": ("2026-10-10", 3.0),
        "O4": ("2026-10-01", 2.0),
        "O5": ("2026-10-10", 3.0),
        "O6": ("2026-10-01", 2.0),
        "O7": ("2026-10-10", 3.0),
    }
    assert rows["O1"]["strategy_received"] == {"coupon_10": 1.0}  # the map features come along


def test_orders_in_an_attribution_window_carry_its_strategy(rows: dict) -> None:
    assert {k: r["strategy"] for k, r in rows.items()} == {
        "O1": "no_action",
        "O2": "no_action",  # 10-12 10:00 is inside CMP-2's window, whose strategy is the control
        "O4": "coupon_10",
        "O5": "no_action",
        "O6": "no_action",
        "O7": "no_action",
    }
    assert (rows["O4"]["order_value"], rows["O4"]["discount"]) == (90.0, 9.0)  # gross value; discount kept apart
