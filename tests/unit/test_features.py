"""Point-in-time features on hand-made silver frames: every feature family, the windows' boundaries, no leakage."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jobs.contracts import EVENT_TYPES
from jobs.features.build import (
    AFFINITY_COLUMN,
    CATEGORICAL_FEATURES,
    CONVERTED_COLUMN,
    FEATURE_COLUMNS,
    NEVER,
    NUMERIC_FEATURES,
    RECEIVED_COLUMN,
    RESPONSE_COLUMNS,
    SEQ_LEN,
    SEQUENCE_COLUMN,
    VOCAB_SIZE,
    compute_features,
    compute_features_many,
)

AS_OF = "2026-10-01"
CUSTOMERS = (
    "customer_id string, email_hash string, phone_hash string, signup_date date, region string, channel string, "
    "birth_year int, gender string, updated_at timestamp, ds string"
)
PRODUCTS = "product_id string, category string, price double, updated_at timestamp, ds string"
EVENTS = "event_id string, customer_id string, ts timestamp, event_type string, product_id string, session_id string"
ORDERS = (
    "order_id string, customer_id string, ts timestamp, amount double, discount double, "
    "items array<struct<product_id: string, qty: int, price: double>>"
)
CAMPAIGN_LOG = (
    "campaign_id string, customer_id string, ts timestamp, strategy string, propensity double, "
    "is_holdout boolean, visited boolean, converted boolean, revenue double, updated_at timestamp, ds string"
)


def ts(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def customer(cid: str, signup: str, ds: str, region: str | None = "north", **kw) -> tuple:
    return (
        cid,
        kw.get("email_hash", f"h-{cid}"),
        None,
        date.fromisoformat(signup),
        region,
        kw.get("channel", "web"),
        kw.get("birth_year", 1990),
        kw.get("gender", "f"),
        ts(kw.get("updated_at", f"{ds} 01:00")),
        ds,
    )


def send(
    campaign: str, cid: str, sent: str, strategy: str, ds: str, outcome: bool | None = None, at: str = ""
) -> tuple:
    """An assignment row (outcome None) or an outcome row written at ``at``."""
    written = ts(at) if at else ts(sent)
    visited = None if outcome is None else outcome
    revenue = None if outcome is None else (30.0 if outcome else 0.0)
    return (campaign, cid, ts(sent), strategy, 0.2, strategy == "no_action", visited, outcome, revenue, written, ds)


def c2_event(i: int) -> tuple:
    """C2's i-th event: search, email_open, email_click in turn, one per hour from 2026-09-10 00:00."""
    kind = ("search", "email_open", "email_click")[i % 3]
    return (f"f{i:02d}", "C2", ts(f"2026-09-1{i // 24} {i % 24:02d}:00"), kind, None, None)


# C1: the busy customer; C2: long event history, no profile values; C3/C4: signed up on/after AS_OF; C5: quiet
BASE = {
    "customers": [
        customer("C1", "2025-01-01", "2026-09-01"),
        customer("C1", "2025-01-01", "2026-09-15", region="east"),
        customer("C1", "2025-01-01", "2026-10-01", region="south"),  # written on AS_OF: not visible yet
        customer("C2", "2026-03-01", "2026-09-01", region=None, email_hash=None, birth_year=None, gender=None),
        customer("C3", "2026-10-01", "2026-09-30"),
        customer("C4", "2026-10-05", "2026-10-05"),
        customer("C5", "2026-09-30", "2026-09-30", channel=None),
    ],
    "products": [
        ("P1", "books", 10.0, ts("2026-09-01 00:00"), "2026-09-01"),
        ("P2", "toys", 20.0, ts("2026-09-01 00:00"), "2026-09-01"),
        ("P3", "home", 30.0, ts("2026-09-01 00:00"), "2026-09-01"),
        ("P2", "garden", 20.0, ts("2026-10-01 00:00"), "2026-10-01"),  # category change on AS_OF: not visible
    ],
    "events": [
        ("e01", "C1", ts("2026-07-02 23:59:59"), "view", "P1", "S0"),  # 1 s before the 90-day window
        ("e02", "C1", ts("2026-07-03 00:00:00"), "view", "P1", "S0b"),  # first instant of the 90-day window
        ("e03", "C1", ts("2026-09-20 09:00:00"), "email_open", None, None),
        ("e04", "C1", ts("2026-09-20 09:05:00"), "email_click", None, None),
        ("e05", "C1", ts("2026-09-23 23:59:59"), "view", "P3", "S3"),  # 1 s before the 7-day window
        ("e06", "C1", ts("2026-09-24 00:00:00"), "search", None, "S2"),  # first instant of the 7-day window
        ("e07", "C1", ts("2026-09-24 00:02:00"), "view", "P2", "S2"),
        ("e08", "C1", ts("2026-09-24 00:05:00"), "add_to_cart", "P2", "S2"),  # S2: an abandoned cart
        ("e11", "C1", ts("2026-09-30 10:03:00"), "purchase", "P1", "S1"),
        ("e09", "C1", ts("2026-09-30 10:00:00"), "view", "P1", "S1"),
        ("e10", "C1", ts("2026-09-30 10:01:00"), "add_to_cart", "P1", "S1"),
        ("e12", "C1", ts("2026-10-01 00:00:00"), "view", "P1", "S4"),  # at AS_OF: excluded
        # C2: 25 e-mail / search events (listed newest first), one per hour from 2026-09-10 00:00
        *[c2_event(i) for i in reversed(range(25))],
    ],
    "orders": [
        ("o1", "C1", ts("2026-09-24 00:00:00"), 100.0, 10.0, [("P1", 1, 40.0), ("P2", 2, 30.0)]),  # 7-day edge
        ("o2", "C1", ts("2026-09-23 23:59:59"), 50.0, 0.0, [("P3", 1, 50.0)]),
        ("o3", "C1", ts("2026-07-03 00:00:00"), 20.0, None, [("P1", None, 20.0)]),  # 90-day edge, qty unknown
        ("o4", "C1", ts("2026-07-02 23:59:59"), 999.0, 0.0, [("P1", 1, 999.0)]),  # outside 90 days
        ("o5", "C1", ts("2026-10-01 00:00:00"), 500.0, 0.0, [("P1", 1, 500.0)]),  # at AS_OF: excluded
    ],
    "campaign_log": [
        send("CMP-20260601", "C1", "2026-06-01 08:00", "no_action", "2026-06-01"),
        send("CMP-20260908", "C1", "2026-09-08 08:00", "coupon_10", "2026-09-08"),
        send("CMP-20260908", "C1", "2026-09-08 08:00", "coupon_10", "2026-09-15", True, "2026-09-15 02:30"),
        send("CMP-20260922", "C1", "2026-09-22 08:00", "email_recommendations", "2026-09-22"),
        # the outcome is written on AS_OF: not visible yet
        send("CMP-20260922", "C1", "2026-09-22 08:00", "email_recommendations", "2026-10-01", True, "2026-10-01 02:30"),
        send("CMP-20261001", "C1", "2026-10-01 08:00", "coupon_20", "2026-10-01"),  # sent on AS_OF: not yet
    ],
}
SCHEMAS = {
    "customers": CUSTOMERS,
    "products": PRODUCTS,
    "events": EVENTS,
    "orders": ORDERS,
    "campaign_log": CAMPAIGN_LOG,
}
# data written after AS_OF: none of it may change the features as of AS_OF
LATER = {
    "customers": [
        customer("C1", "2025-01-01", "2026-10-02", region="west", birth_year=1970, email_hash=None),
        customer("C2", "2026-03-01", "2026-10-03", region="north", gender="x"),
        customer("C6", "2026-10-02", "2026-10-02"),
    ],
    "products": [
        ("P1", "garden", 12.0, ts("2026-10-02 00:00"), "2026-10-02"),
        ("P3", "toys", 30.0, ts("2026-10-03 00:00"), "2026-10-03"),
    ],
    "events": [
        ("x1", "C1", ts("2026-10-01 00:00:01"), "view", "P1", "S9"),
        ("x2", "C1", ts("2026-10-01 00:01:00"), "add_to_cart", "P1", "S9"),
        ("x3", "C5", ts("2026-10-02 10:00:00"), "email_click", None, None),
        ("x4", "C2", ts("2026-10-04 10:00:00"), "purchase", "P2", "S8"),
        ("x5", "C6", ts("2026-10-02 10:00:00"), "view", "P2", "S7"),
    ],
    "orders": [
        ("y1", "C1", ts("2026-10-01 00:00:01"), 80.0, 8.0, [("P1", 3, 26.67)]),
        ("y2", "C5", ts("2026-10-03 12:00:00"), 40.0, 0.0, [("P2", 1, 40.0)]),
    ],
    "campaign_log": [
        send(
            "CMP-20260922", "C1", "2026-09-22 08:00", "email_recommendations", "2026-10-02", False, "2026-10-02 02:30"
        ),
        send("CMP-20261001", "C5", "2026-10-01 08:00", "free_shipping", "2026-10-01"),
        send("CMP-20261001", "C5", "2026-10-01 08:00", "free_shipping", "2026-10-08", True, "2026-10-08 02:00"),
        send("CMP-20261015", "C2", "2026-10-15 08:00", "coupon_20", "2026-10-15"),
    ],
}


def frames(spark, *extra: dict) -> dict:
    return {
        name: spark.createDataFrame(BASE[name] + [r for more in extra for r in more.get(name, [])], schema)
        for name, schema in SCHEMAS.items()
    }


@pytest.fixture(scope="module")
def features(spark) -> dict[str, dict]:
    rows = compute_features(**frames(spark), as_of=AS_OF).collect()
    return {r["customer_id"]: r.asDict() for r in rows}


def bucket(spark, category: str) -> int:
    """The documented category bucket, evaluated by Spark SQL independently of the module."""
    return spark.sql(f"SELECT pmod(xxhash64('{category}'), 16) AS b").first()["b"]


def test_columns_and_one_row_per_customer_signed_up_before_as_of(spark, features: dict) -> None:
    frame = compute_features(**frames(spark), as_of=AS_OF)
    maps = (AFFINITY_COLUMN, *RESPONSE_COLUMNS)
    columns = ("customer_id", *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, *maps, SEQUENCE_COLUMN, "ds")
    assert tuple(frame.columns) == FEATURE_COLUMNS == columns
    assert sorted(features) == ["C1", "C2", "C5"]  # C3 signs up on AS_OF, C4 after it
    assert {r["ds"] for r in features.values()} == {AS_OF}
    types = dict(frame.dtypes)
    assert {types[c] for c in maps} == {"map<string,double>"} and types[SEQUENCE_COLUMN] == "string"
    assert {types[c] for c in NUMERIC_FEATURES} <= {"int", "double"}


def test_rfm_windows_include_their_first_instant_and_exclude_as_of(features: dict) -> None:
    c1 = features["C1"]
    assert (c1["orders_7d"], c1["orders_30d"], c1["orders_90d"]) == (1, 2, 3)
    assert (c1["revenue_7d"], c1["revenue_30d"], c1["revenue_90d"]) == (90.0, 140.0, 160.0)
    assert c1["avg_order_value_90d"] == pytest.approx(160.0 / 3)
    assert c1["items_90d"] == 5  # 1 + 2, 1, and 1 for an unknown quantity
    assert c1["items_per_order_90d"] == pytest.approx(5 / 3)
    assert c1["discount_share_90d"] == pytest.approx(10.0 / 170.0)
    assert c1["discounted_order_share_90d"] == pytest.approx(1 / 3)  # o1 had a discount; o3's unknown one is 0
    assert c1["days_since_last_purchase"] == 7.0


def test_recency_and_activity_counts(features: dict) -> None:
    c1 = features["C1"]
    assert c1["days_since_last_event"] == pytest.approx((14 * 60 - 3) / 1440)  # 2026-09-30 10:03
    assert c1["days_since_last_email_click"] == pytest.approx(10 + (14 * 60 + 55) / 1440)
    assert (c1["events_7d"], c1["events_30d"], c1["events_90d"]) == (6, 9, 10)
    assert (c1["views_30d"], c1["carts_30d"], c1["purchases_30d"], c1["searches_30d"]) == (3, 2, 1, 1)


def test_sessions_and_cart_abandonment(features: dict) -> None:
    c1 = features["C1"]
    assert c1["sessions_30d"] == 3  # S3 (1 event), S2 (3 events, cart abandoned), S1 (3 events, bought)
    assert c1["events_per_session_30d"] == pytest.approx(7 / 3)
    assert c1["session_minutes_30d"] == pytest.approx((0 + 5 + 3) / 3)
    assert c1["cart_abandonment_30d"] == 0.5
    c2 = features["C2"]  # events without a session id: no sessions, abandonment 0
    assert (c2["sessions_30d"], c2["events_per_session_30d"], c2["cart_abandonment_30d"]) == (0, 0.0, 0.0)


def test_email_engagement_and_past_campaigns(features: dict) -> None:
    c1 = features["C1"]
    assert c1["emails_received_90d"] == 2  # coupon_10 and email_recommendations; no_action is no e-mail
    assert (c1["email_opens_90d"], c1["email_clicks_90d"]) == (1, 1)
    assert (c1["email_open_rate_90d"], c1["email_click_rate_90d"]) == (0.5, 0.5)
    assert c1["campaigns_received"] == 3  # June holdout included; the send on AS_OF is not
    assert c1["past_campaign_conversions"] == 1  # the second outcome is written on AS_OF
    c2 = features["C2"]  # opens and clicks but no e-mail received: rates 0
    assert (c2["email_opens_90d"], c2["emails_received_90d"], c2["email_open_rate_90d"]) == (8, 0, 0.0)


def test_contacts_and_the_past_responses_per_strategy(features: dict) -> None:
    c1 = features["C1"]
    # contacts: coupon_10 on 09-08 and the e-mail on 09-22 08:00 (the June holdout contacts nobody)
    assert c1["days_since_last_contact"] == pytest.approx(8 + 16 / 24)
    assert c1["contacts_30d"] == 2
    # only sends whose outcome was written before AS_OF count: coupon_10 (converted); the e-mail's is not yet
    assert c1[RECEIVED_COLUMN] == {"coupon_10": 1.0} and c1[CONVERTED_COLUMN] == {"coupon_10": 1.0}
    c5 = features["C5"]
    assert (c5["days_since_last_contact"], c5["contacts_30d"]) == (NEVER, 0)
    assert c5[RECEIVED_COLUMN] == {} and c5[CONVERTED_COLUMN] == {}


def test_taste_concentration_and_the_prices_browsed(features: dict) -> None:
    c1 = features["C1"]
    assert c1["affinity_concentration"] == pytest.approx(4 / 7)  # books: 4 of 7 browsing events
    # list prices of the 90 days' view/cart/purchase events: P1 x4 (10), P3 (30), P2 x2 (20)
    assert c1["mean_price_viewed_90d"] == pytest.approx(110 / 7)
    c2 = features["C2"]  # searches and e-mail events only: nothing browsed
    assert (c2["affinity_concentration"], c2["mean_price_viewed_90d"]) == (0.0, 0.0)


def test_profile_uses_the_latest_version_before_as_of(features: dict) -> None:
    c1, c2, c5 = features["C1"], features["C2"], features["C5"]
    assert (c1["region"], c1["channel"], c1["gender"], c1["has_email"]) == ("east", "web", "f", 1)
    assert (c1["tenure_days"], c1["age"]) == (638, 36)
    assert (c2["region"], c2["gender"], c2["age"], c2["has_email"]) == ("unknown", "unknown", None, 0)
    assert (c5["channel"], c5["tenure_days"]) == ("unknown", 1)


def test_category_affinity_shares_and_top_category(features: dict) -> None:
    c1 = features["C1"]  # 90 days: books e02 e09 e10 e11, toys e07 e08 (as of AS_OF), home e05
    assert c1[AFFINITY_COLUMN] == pytest.approx({"books": 4 / 7, "toys": 2 / 7, "home": 1 / 7})
    assert c1["top_category"] == "books"
    assert features["C2"][AFFINITY_COLUMN] == {} and features["C2"]["top_category"] == "none"


def test_a_customer_without_history_gets_zeros_and_sentinels(features: dict) -> None:
    c5 = features["C5"]
    assert all(c5[c] == NEVER for c in ("days_since_last_event", "days_since_last_purchase", "days_since_last_contact"))
    counts = [c for c in NUMERIC_FEATURES if c not in {"tenure_days", "has_email", "age"} and "days_since" not in c]
    assert {c: c5[c] for c in counts} == dict.fromkeys(counts, 0)
    assert (c5[AFFINITY_COLUMN], c5["top_category"], c5[SEQUENCE_COLUMN]) == ({}, "none", "")
    assert (c5[RECEIVED_COLUMN], c5[CONVERTED_COLUMN]) == ({}, {})


def test_sequence_tokens_encode_type_and_category_oldest_first(spark, features: dict) -> None:
    def token(kind: str, category: str | None = None) -> int:
        return 1 + EVENT_TYPES.index(kind) * 17 + (0 if category is None else 1 + bucket(spark, category))

    expected = [
        token("view", "books"),  # e01: before the 90-day window but among the last 20 events
        token("view", "books"),
        token("email_open"),
        token("email_click"),
        token("view", "home"),
        token("search"),
        token("view", "toys"),
        token("add_to_cart", "toys"),
        token("view", "books"),
        token("add_to_cart", "books"),
        token("purchase", "books"),
    ]
    assert features["C1"][SEQUENCE_COLUMN] == " ".join(map(str, expected))
    assert (token("search"), token("email_open"), token("email_click")) == (52, 69, 86)


def test_sequence_keeps_the_last_twenty_events(features: dict) -> None:
    kinds = [(52, 69, 86)[i % 3] for i in range(25)]  # search, email_open, email_click, one per hour
    assert features["C2"][SEQUENCE_COLUMN] == " ".join(map(str, kinds[-SEQ_LEN:]))


def test_every_token_lies_in_the_vocabulary(spark) -> None:
    from pyspark.sql import functions as F

    from jobs.features.build import _token

    pairs = spark.createDataFrame(
        [(k, c) for k in EVENT_TYPES for c in (None, "books", "toys", "a", "électronique", "")],
        "event_type string, category string",
    )
    tokens = [r["t"] for r in pairs.select(_token(F.col("event_type"), F.col("category")).alias("t")).collect()]
    assert min(tokens) >= 1 and max(tokens) < VOCAB_SIZE == 103
    assert len(set(tokens)) > len(EVENT_TYPES)


def test_data_after_as_of_changes_nothing(spark) -> None:
    """The leakage test: later events, orders, profile and product versions, outcomes and sends are invisible."""
    before = sorted(compute_features(**frames(spark), as_of=AS_OF).collect())
    after = sorted(compute_features(**frames(spark, LATER), as_of=AS_OF).collect())
    assert after == before
    assert len(before) == 3
    # and the additions are real: as of a later date they do change the features
    later = {r["customer_id"]: r for r in compute_features(**frames(spark, LATER), as_of="2026-10-05").collect()}
    assert later["C1"]["region"] == "west" and later["C1"]["has_email"] == 0
    assert later["C5"]["campaigns_received"] == 1 and later["C5"]["orders_7d"] == 1
    assert "C6" in later and later["C1"]["past_campaign_conversions"] == 1  # CMP-20260922 ended not converted


def test_many_dates_in_one_pass_equal_the_union_of_single_dates(spark) -> None:
    data = frames(spark, LATER)
    dates = ["2026-09-24", AS_OF, "2026-10-05"]
    together = sorted(compute_features_many(**data, dates=dates).collect())
    one_by_one = sorted(r for d in dates for r in compute_features(**data, as_of=d).collect())
    assert together == one_by_one
    assert [r["ds"] for r in together].count("2026-10-05") == 5  # C1 .. C5 and C6


def test_as_of_must_be_a_date(spark) -> None:
    from jobs.pipeline.lake import PipelineError

    with pytest.raises(PipelineError, match="not a date"):
        compute_features(**frames(spark), as_of="yesterday")
