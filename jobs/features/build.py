"""Point-in-time customer features as of a date, from silver into ``gold/features/ds=<as_of>``.

Only data strictly before ``as_of`` 00:00 UTC is used: events and orders with ``ts < as_of``;
customers and products in their latest version (by ``updated_at``) among rows with
``ds < as_of``; campaign sends with ``ts < as_of`` and outcome values only from rows with
``updated_at < as_of``. A window of N days is ``as_of - N days <= ts < as_of``. A campaign sent on
day d is scored with the features as of d. :func:`compute_features` is the pure transform
(:func:`compute_features_many`: several dates in one pass), :func:`build_features` the job.
"""

from __future__ import annotations

import logging
import time
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.contracts import EVENT_TYPES
from jobs.pipeline.lake import PipelineError, check_ds, layer_path, partition_path, read_upto, write_partitions
from jobs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

#: events in the sequence feature (the most recent ones before as_of)
SEQ_LEN = 20
#: category hash buckets of a sequence token (bucket 0: event without product / category)
CATEGORY_BUCKETS = 16
TOKENS_PER_TYPE = CATEGORY_BUCKETS + 1
#: token ids are 1 .. VOCAB_SIZE - 1; 0 is reserved for padding
VOCAB_SIZE = 1 + len(EVENT_TYPES) * TOKENS_PER_TYPE
#: recency (days) of something that never happened before as_of
NEVER = 999.0
DAY_US = 86_400_000_000  # microseconds per day
#: exact type that money is summed in
MONEY = "decimal(24,6)"
#: event types that count towards the category affinity
AFFINITY_EVENTS = ("view", "add_to_cart", "purchase")

RECENCY_FEATURES = (
    "days_since_last_event",
    "days_since_last_purchase",
    "days_since_last_email_click",
    "days_since_last_contact",
)
#: numeric model inputs: recency is NEVER without history, ``age`` null when unknown, the rest 0 when nothing happened
NUMERIC_FEATURES = (
    *RECENCY_FEATURES,
    "orders_7d",
    "orders_30d",
    "orders_90d",
    "revenue_7d",
    "revenue_30d",
    "revenue_90d",
    "avg_order_value_90d",
    "items_90d",
    "items_per_order_90d",
    "discount_share_90d",
    "discounted_order_share_90d",
    "events_7d",
    "events_30d",
    "events_90d",
    "views_30d",
    "carts_30d",
    "purchases_30d",
    "searches_30d",
    "sessions_30d",
    "events_per_session_30d",
    "session_minutes_30d",
    "cart_abandonment_30d",
    "emails_received_90d",
    "email_opens_90d",
    "email_clicks_90d",
    "email_open_rate_90d",
    "email_click_rate_90d",
    "campaigns_received",
    "past_campaign_conversions",
    "contacts_30d",
    "affinity_concentration",
    "mean_price_viewed_90d",
    "tenure_days",
    "age",
    "has_email",
)
#: integer-valued features (the other numeric features are doubles)
COUNT_FEATURES = frozenset(
    {
        "orders_7d",
        "orders_30d",
        "orders_90d",
        "items_90d",
        "events_7d",
        "events_30d",
        "events_90d",
        "views_30d",
        "carts_30d",
        "purchases_30d",
        "searches_30d",
        "sessions_30d",
        "emails_received_90d",
        "email_opens_90d",
        "email_clicks_90d",
        "campaigns_received",
        "past_campaign_conversions",
        "contacts_30d",
        "tenure_days",
        "age",
        "has_email",
    }
)
#: string model inputs ('unknown' for a missing profile value, top_category 'none' without history)
CATEGORICAL_FEATURES = ("region", "channel", "gender", "top_category")
#: map<string, double>: category -> share of the customer's view/add_to_cart/purchase events in 90 days
AFFINITY_COLUMN = "category_affinity"
#: map<string,double> per past strategy: campaign sends of it whose outcome was known before as_of ...
RECEIVED_COLUMN = "strategy_received"
#: ... and how many of those converted within their attribution window (a customer's own past responses)
CONVERTED_COLUMN = "strategy_converted"
#: map-valued model inputs besides the affinity (one model column per key seen in training)
RESPONSE_COLUMNS = (RECEIVED_COLUMN, CONVERTED_COLUMN)
#: the last SEQ_LEN event tokens before as_of, oldest first, space-separated ('' without events)
SEQUENCE_COLUMN = "seq_tokens"
FEATURE_COLUMNS = (
    "customer_id",
    *NUMERIC_FEATURES,
    *CATEGORICAL_FEATURES,
    AFFINITY_COLUMN,
    *RESPONSE_COLUMNS,
    SEQUENCE_COLUMN,
    "ds",
)

SILVER_TABLES = ("customers", "products", "events", "orders", "campaign_log")
#: the silver columns the features read, per table
SILVER_COLUMNS = {
    "customers": (
        "customer_id",
        "signup_date",
        "region",
        "channel",
        "gender",
        "birth_year",
        "email_hash",
        "updated_at",
        "ds",
    ),
    "products": ("product_id", "category", "price", "updated_at", "ds"),
    "events": ("event_id", "customer_id", "ts", "event_type", "product_id", "session_id"),
    "orders": ("customer_id", "ts", "amount", "discount", "items"),
    "campaign_log": ("campaign_id", "customer_id", "ts", "strategy", "converted", "updated_at", "ds"),
}


def _at_dates(frame: DataFrame, dates: list[str]) -> DataFrame:
    """``frame`` once per as-of date: columns ``_as_of`` (ISO date) and ``_end`` (its 00:00 UTC) added."""
    from pyspark.sql import functions as F

    # the end is cast from text with an explicit zone (independent of the session's) inside the literal array,
    # where the optimiser folds it into a timestamp constant: cast after the explode, it parsed the text once
    # per exploded row (a fifth of the CPU of the demo's event features)
    stamps = F.array(
        *[F.struct(F.lit(d).alias("as_of"), F.lit(f"{d}T00:00:00Z").cast("timestamp").alias("end")) for d in dates]
    )
    return (
        frame.withColumn("_d", F.explode(stamps))
        .withColumn("_as_of", F.col("_d.as_of"))
        .withColumn("_end", F.col("_d.end"))
        .drop("_d")
    )


def _before(frame: DataFrame, dates: list[str]) -> DataFrame:
    """Rows of a fact table with ``ts`` before each as-of date, with ``_age`` = as_of - ts in microseconds."""
    from pyspark.sql import functions as F

    return (
        _at_dates(frame, dates)
        .where(F.col("ts") < F.col("_end"))
        .withColumn("_age", F.unix_micros(F.col("_end")) - F.unix_micros(F.col("ts")))
    )


def _within(days: int) -> Column:
    """``as_of - days <= ts`` (the rows already have ``ts < as_of``)."""
    from pyspark.sql import functions as F

    return F.col("_age") <= F.lit(days * DAY_US)


def _latest(frame: DataFrame, key: str, columns: list[str], dates: list[str]) -> DataFrame:
    """Per as-of date, the latest version of each key (by updated_at, then ds) among its rows with ds < as_of."""
    from pyspark.sql import functions as F

    latest = F.max_by(F.struct(*columns), F.struct("updated_at", "ds"))
    return (
        _at_dates(frame.withColumn("ds", F.col("ds").cast("string")), dates)
        .where(F.col("ds") < F.col("_as_of"))
        .groupBy("_as_of", key)
        .agg(latest.alias("_v"))
        .select("_as_of", key, *[F.col(f"_v.{c}").alias(c) for c in columns])
    )


def _token(event_type: Column, category: Column) -> Column:
    """1 + type_index * 17 + category bucket (0 without category, else 1 + pmod(xxhash64(category), 16))."""
    from pyspark.sql import functions as F

    type_index = reduce(
        lambda acc, item: acc.when(event_type == item[1], F.lit(item[0])),
        list(enumerate(EVENT_TYPES))[1:],
        F.when(event_type == EVENT_TYPES[0], F.lit(0)),
    )
    bucket = F.when(category.isNull(), F.lit(0)).otherwise(
        1 + F.pmod(F.xxhash64(category), F.lit(CATEGORY_BUCKETS)).cast("int")
    )
    return (1 + type_index * TOKENS_PER_TYPE + bucket).cast("int")


def _days(micros: Column) -> Column:
    from pyspark.sql import functions as F

    return micros / F.lit(float(DAY_US))


def _event_features(events: DataFrame, categories: DataFrame, dates: list[str]) -> DataFrame:
    """Recency, activity counts, e-mail engagement events, affinity and the token sequence: one aggregation."""
    from pyspark.sql import functions as F

    kind, cat = F.col("event_type"), F.col("category")
    past = _before(events.select("event_id", "customer_id", "ts", "event_type", "product_id"), dates).join(
        F.broadcast(categories), ["_as_of", "product_id"], "left"
    )
    browsed = _within(90) & kind.isin(*AFFINITY_EVENTS)

    def count(condition: Column) -> Column:
        return F.count(F.when(condition, F.lit(1)))

    last30, last90 = _within(30), _within(90)
    agg = past.groupBy("_as_of", "customer_id").agg(
        F.min("_age").alias("_last_event"),
        F.min(F.when(kind == "email_click", F.col("_age"))).alias("_last_click"),
        count(_within(7)).alias("events_7d"),
        count(last30).alias("events_30d"),
        count(last90).alias("events_90d"),
        count(last30 & (kind == "view")).alias("views_30d"),
        count(last30 & (kind == "add_to_cart")).alias("carts_30d"),
        count(last30 & (kind == "purchase")).alias("purchases_30d"),
        count(last30 & (kind == "search")).alias("searches_30d"),
        count(last90 & (kind == "email_open")).alias("email_opens_90d"),
        count(last90 & (kind == "email_click")).alias("email_clicks_90d"),
        F.collect_list(F.when(browsed, cat)).alias("_cats"),
        # exact decimal sum: a double's mean would depend on the order the rows are added in
        F.avg(F.when(browsed, F.col("price").cast(MONEY))).cast("double").alias("mean_price_viewed_90d"),
        # the tokens of the SEQ_LEN latest events, newest first (max_by with k sorts by the ordering, descending)
        F.max_by(_token(kind, cat), F.struct(F.col("ts"), F.col("event_id")), SEQ_LEN).alias("_seq"),
    )
    cats = F.col("_cats")
    distinct = F.array_sort(F.array_distinct(cats))

    def hits(category: Column) -> Column:
        return F.size(F.filter(cats, lambda x: x == category))

    affinity = F.map_from_entries(
        F.transform(distinct, lambda c: F.struct(c.alias("key"), (hits(c) / F.size(cats)).alias("value")))
    )
    # the most frequent category; ties go to the alphabetically first
    top = F.array_min(F.transform(distinct, lambda c: F.struct((-hits(c)).alias("n"), c.alias("category"))))
    # how focused the taste is: the top category's share (0 without browsing)
    concentration = F.when(F.size(cats) > 0, -top["n"] / F.size(cats))
    sequence = F.array_join(F.transform(F.reverse(F.col("_seq")), lambda t: t.cast("string")), " ")
    return agg.select(
        "_as_of",
        "customer_id",
        _days(F.col("_last_event")).alias("days_since_last_event"),
        _days(F.col("_last_click")).alias("days_since_last_email_click"),
        *[c for c in agg.columns if not c.startswith("_") and c != "customer_id"],
        affinity.alias(AFFINITY_COLUMN),
        concentration.alias("affinity_concentration"),
        top["category"].alias("top_category"),
        sequence.alias(SEQUENCE_COLUMN),
    )


def _session_features(events: DataFrame, dates: list[str]) -> DataFrame:
    """Sessions of the last 30 days (events with a session_id in the window), per customer."""
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    with_session = events.select("customer_id", "session_id", "ts", "event_type").where(F.col("session_id").isNotNull())
    sessions = (
        _before(with_session, dates)
        .where(_within(30))
        .groupBy("_as_of", "customer_id", "session_id")
        .agg(
            F.count("*").alias("n"),
            (F.max("_age") - F.min("_age")).alias("micros"),
            F.max(kind == "add_to_cart").alias("cart"),
            F.max(kind == "purchase").alias("purchase"),
        )
    )
    carts = F.count(F.when(F.col("cart"), F.lit(1)))
    abandoned = F.count(F.when(F.col("cart") & ~F.col("purchase"), F.lit(1)))
    # means from exact integer sums: the result does not depend on the order rows are added in
    return sessions.groupBy("_as_of", "customer_id").agg(
        F.count("*").alias("sessions_30d"),
        (F.sum("n") / F.count("*")).alias("events_per_session_30d"),
        (F.sum("micros") / F.count("*") / F.lit(60_000_000.0)).alias("session_minutes_30d"),
        F.coalesce(F.try_divide(abandoned, carts), F.lit(0.0)).alias("cart_abandonment_30d"),
    )


def _order_features(orders: DataFrame, dates: list[str]) -> DataFrame:
    """Purchase recency and RFM over 7, 30 and 90 days (revenue = amount - discount), one aggregation.

    Money is summed as decimal(24, 6): exact, so the sums do not depend on the order rows are added in.
    """
    from pyspark.sql import functions as F

    since = {n: _within(n) for n in (7, 30, 90)}
    amount = F.col("amount").cast(MONEY)
    discount = F.coalesce(F.col("discount"), F.lit(0.0)).cast(MONEY)
    net = amount - discount
    items = F.coalesce(F.expr("aggregate(items, 0, (acc, i) -> acc + coalesce(i.qty, 1))"), F.lit(0))

    def total(value: Column, n: int) -> Column:
        return F.sum(F.when(since[n], value).otherwise(F.lit(0)))

    agg = (
        _before(orders.select("customer_id", "ts", "amount", "discount", "items"), dates)
        .groupBy("_as_of", "customer_id")
        .agg(
            F.min("_age").alias("_last_order"),
            *[F.count(F.when(since[n], F.lit(1))).alias(f"orders_{n}d") for n in (7, 30, 90)],
            *[total(net, n).alias(f"revenue_{n}d") for n in (7, 30, 90)],
            total(items, 90).alias("items_90d"),
            F.count(F.when(since[90] & (discount > 0), F.lit(1))).alias("_discounted_90d"),
            total(discount, 90).alias("_discount_90d"),
            total(amount, 90).alias("_amount_90d"),
        )
    )
    return agg.select(
        "_as_of",
        "customer_id",
        _days(F.col("_last_order")).alias("days_since_last_purchase"),
        *[f"orders_{n}d" for n in (7, 30, 90)],
        *[F.col(f"revenue_{n}d").cast("double").alias(f"revenue_{n}d") for n in (7, 30, 90)],
        F.try_divide(F.col("revenue_90d").cast("double"), F.col("orders_90d")).alias("avg_order_value_90d"),
        "items_90d",
        F.try_divide(F.col("items_90d").cast("double"), F.col("orders_90d")).alias("items_per_order_90d"),
        F.try_divide(F.col("_discount_90d").cast("double"), F.col("_amount_90d").cast("double")).alias(
            "discount_share_90d"
        ),
        F.try_divide(F.col("_discounted_90d").cast("double"), F.col("orders_90d")).alias("discounted_order_share_90d"),
    )


def _campaign_features(campaign_log: DataFrame, dates: list[str]) -> DataFrame:
    """Past campaign assignments and the outcomes already written before as_of.

    Contacts are sends of any strategy but the control (``no_action``); a customer's past responses
    per strategy count only the sends whose outcome was written before as_of (a pending one says nothing).
    """
    from pyspark.sql import functions as F

    written = F.coalesce(F.col("updated_at"), F.col("ts"))
    latest = F.max_by(F.struct("_age", "strategy", "converted"), F.struct(written, F.col("ds").cast("string")))
    rows = campaign_log.select("campaign_id", "customer_id", "ts", "strategy", "converted", "updated_at", "ds")
    assignments = (
        _before(rows, dates)
        .where(written < F.col("_end"))
        .groupBy("_as_of", "customer_id", "campaign_id")
        .agg(latest.alias("v"))
    )
    contact = F.col("v.strategy") != "no_action"
    email_90d = contact & (F.col("v._age") <= F.lit(90 * DAY_US))
    known = F.col("v.converted").isNotNull()
    per_strategy = assignments.groupBy("_as_of", "customer_id", F.col("v.strategy").alias("strategy")).agg(
        F.count(F.when(known, F.lit(1))).cast("double").alias("received"),
        F.count(F.when(F.col("v.converted"), F.lit(1))).cast("double").alias("converted"),
    )
    responses = (
        per_strategy.where(F.col("received") > 0)
        .groupBy("_as_of", "customer_id")
        .agg(
            F.map_from_entries(F.collect_list(F.struct("strategy", "received"))).alias(RECEIVED_COLUMN),
            F.map_from_entries(F.collect_list(F.struct("strategy", "converted"))).alias(CONVERTED_COLUMN),
        )
    )
    counts = assignments.groupBy("_as_of", "customer_id").agg(
        F.count("*").alias("campaigns_received"),
        F.count(F.when(email_90d, F.lit(1))).alias("emails_received_90d"),
        F.count(F.when(contact & (F.col("v._age") <= F.lit(30 * DAY_US)), F.lit(1))).alias("contacts_30d"),
        F.count(F.when(F.col("v.converted"), F.lit(1))).alias("past_campaign_conversions"),
        _days(F.min(F.when(contact, F.col("v._age")))).alias("days_since_last_contact"),
    )
    return counts.join(responses, ["_as_of", "customer_id"], "left")


def compute_features(
    customers: DataFrame,
    products: DataFrame,
    events: DataFrame,
    orders: DataFrame,
    campaign_log: DataFrame,
    as_of: str,
) -> DataFrame:
    """One row per customer signed up before ``as_of``, with the features as of ``as_of`` 00:00 UTC (no I/O)."""
    return compute_features_many(customers, products, events, orders, campaign_log, [as_of])


def compute_features_many(
    customers: DataFrame,
    products: DataFrame,
    events: DataFrame,
    orders: DataFrame,
    campaign_log: DataFrame,
    dates: list[str],
) -> DataFrame:
    """The union of :func:`compute_features` over ``dates``, computed in one pass per source (no I/O)."""
    from pyspark.sql import functions as F

    dates = sorted({check_ds(d) for d in dates})
    if not dates:
        raise PipelineError("no as-of dates to compute features for")
    profile = _latest(
        customers,
        "customer_id",
        ["signup_date", "region", "channel", "gender", "birth_year", "email_hash"],
        dates,
    ).where(F.col("signup_date") < F.col("_as_of").cast("date"))
    categories = _latest(products, "product_id", ["category", "price"], dates)
    keys = ["_as_of", "customer_id"]
    frame = (
        profile.join(_event_features(events, categories, dates), keys, "left")
        .join(_session_features(events, dates), keys, "left")
        .join(_order_features(orders, dates), keys, "left")
        .join(_campaign_features(campaign_log, dates), keys, "left")
    )
    opens, clicks, received = (
        F.coalesce(F.col(c), F.lit(0)) for c in ("email_opens_90d", "email_clicks_90d", "emails_received_90d")
    )
    as_of_date = F.col("_as_of").cast("date")
    derived = {
        **{c: F.coalesce(F.col(c), F.lit(NEVER)) for c in RECENCY_FEATURES},
        "email_open_rate_90d": F.try_divide(opens, received),
        "email_click_rate_90d": F.try_divide(clicks, received),
        "tenure_days": F.datediff(as_of_date, F.col("signup_date")),
        "age": F.year(as_of_date) - F.col("birth_year"),
        "has_email": F.col("email_hash").isNotNull().cast("int"),
    }
    numeric = []
    for name in NUMERIC_FEATURES:
        value = derived.get(name, F.col(name))
        if name != "age" and name not in RECENCY_FEATURES:
            value = F.coalesce(value, F.lit(0))
        numeric.append(value.cast("int" if name in COUNT_FEATURES else "double").alias(name))
    categorical = [
        F.coalesce(F.col(c), F.lit("none" if c == "top_category" else "unknown")).alias(c) for c in CATEGORICAL_FEATURES
    ]
    return frame.select(
        "customer_id",
        *numeric,
        *categorical,
        *[
            F.coalesce(F.col(c), F.create_map().cast("map<string,double>")).alias(c)
            for c in (AFFINITY_COLUMN, *RESPONSE_COLUMNS)
        ],
        F.coalesce(F.col(SEQUENCE_COLUMN), F.lit("")).alias(SEQUENCE_COLUMN),
        F.col("_as_of").alias("ds"),
    )


def features_fresh(settings: Settings, ds: str) -> int | None:
    """Rows of ``gold/features/ds=<ds>`` when it is newer than its inputs, else None (build it).

    Newer means: every data file of the partition was written after the last change of any silver
    file of the tables the features read (any date: a late correction of an earlier day counts) and
    after this module's source (a changed feature definition). The nightly training builds the run
    date's features; the scoring DAG that follows reuses them instead of computing them again.
    """
    import pyarrow.parquet as pq

    part = partition_path(settings, "gold", "features", ds)
    files = sorted(part.glob("*.parquet")) if part.is_dir() else []
    if not files:  # a partition folder appears only at its job's commit: files here are complete
        return None
    built = min(f.stat().st_mtime for f in files)
    inputs = [Path(__file__)]
    for table in SILVER_TABLES:
        inputs += [f for f in layer_path(settings, "silver", table).rglob("*") if f.is_file()]
    if max(f.stat().st_mtime for f in inputs) >= built:
        return None
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def read_silver(spark: SparkSession, settings: Settings, ds: str) -> dict[str, DataFrame]:
    """The silver columns the features need, every partition up to ``ds``; a missing table is a PipelineError."""
    frames: dict[str, DataFrame] = {}
    for table in SILVER_TABLES:
        root = layer_path(settings, "silver", table)
        frame = read_upto(spark, root, ds)
        if frame is None:
            raise PipelineError(f"silver table {table!r} does not exist yet ({root}): run ingest and clean first")
        frames[table] = frame.select(*SILVER_COLUMNS[table])
    return frames


def campaign_dates(spark: SparkSession, settings: Settings, ds: str) -> list[str]:
    """The distinct send dates (UTC date of ``ts``) in silver campaign_log up to ``ds``."""
    from pyspark.sql import functions as F

    ds = check_ds(ds)
    root = layer_path(settings, "silver", "campaign_log")
    frame = read_upto(spark, root, ds)
    if frame is None:
        raise PipelineError(f"silver table 'campaign_log' does not exist yet ({root}): run ingest and clean first")
    sent = F.to_date("ts").cast("string")
    rows = frame.select(sent.alias("d")).where(F.col("d") <= F.lit(ds)).distinct().collect()
    return sorted(r["d"] for r in rows)


def feature_dates(spark: SparkSession, settings: Settings, ds: str) -> list[str]:
    """The campaign send dates up to ``ds`` and ``ds`` itself (the scoring date), sorted."""
    ds = check_ds(ds)
    return sorted({*campaign_dates(spark, settings, ds), ds})


def build_features(spark: SparkSession, settings: Settings, dates: list[str]) -> dict[str, int]:
    """Compute the features as of each date and replace those partitions of ``gold/features``; rows per date.

    Silver is read once up to the last date and every source is aggregated in one pass for all
    dates; the result is persisted so that counting and writing compute it only once.
    """
    from pyspark import StorageLevel

    if not dates:
        raise PipelineError("no dates to build features for")
    dates = sorted({check_ds(d) for d in dates})
    t0 = time.perf_counter()
    silver = read_silver(spark, settings, dates[-1])
    features = compute_features_many(**silver, dates=dates).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        total = features.count()
        t_compute = time.perf_counter() - t0
        rows = write_partitions(spark, features, layer_path(settings, "gold", "features"), dates)
    finally:
        features.unpersist()
    log.info(
        "features: %d date(s) %s..%s, %d rows: computed in %.1f s, written in %.1f s",
        len(dates),
        dates[0],
        dates[-1],
        total,
        t_compute,
        time.perf_counter() - t0 - t_compute,
    )
    return rows
