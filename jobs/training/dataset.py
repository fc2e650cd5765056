"""The training set: every campaign assignment with a closed outcome, joined to its point-in-time features.

A campaign sent on day d is joined to ``gold/features/ds=d`` (features from data strictly before
d), so no row sees its own outcome. The split into fit and held-out rows is a stable hash of
(campaign_id, customer_id): a row held out tonight is held out every night, which is what makes
the champion and the challenger comparable on the same held-out data.

The **order set** (``gold/order_set/ds=<ds>``) is what the order-value part of the hurdle model
learns from: every silver order before ``ds`` with its customer's features as of the last feature
date on or before the order's day (so built from data strictly before the order), its gross value
(``amount``) and the strategy it is attributed to: that of the latest campaign send whose attribution
window (``MSP_ATTRIBUTION_DAYS`` from the send) it fell in, ``no_action`` without one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.models.frame import STRATEGIES
from jobs.pipeline.lake import PipelineError, check_ds, layer_path, partition_path, read_upto, write_partitions
from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession


log = logging.getLogger(__name__)
OUTCOME_COLUMNS = ("campaign_id", "customer_id", "send_date", "strategy", "propensity", "is_holdout")
TARGETS = ("visited", "converted", "revenue")


def latest_outcomes(campaign_log: DataFrame, strategies: tuple[str, ...] = STRATEGIES) -> DataFrame:
    """Latest version per (campaign_id, customer_id) whose outcome is known, for the given strategies."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("campaign_id", "customer_id").orderBy(F.col("updated_at").desc_nulls_last())
    latest = campaign_log.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")
    return latest.where(F.col("converted").isNotNull() & F.col("strategy").isin(*strategies)).select(
        "campaign_id",
        "customer_id",
        F.to_date("ts").cast("string").alias("send_date"),
        "strategy",
        "propensity",
        F.coalesce("is_holdout", F.col("strategy") == "no_action").alias("is_holdout"),
        F.coalesce("visited", "converted").cast("int").alias("visited"),
        F.col("converted").cast("int").alias("converted"),
        F.coalesce("revenue", F.lit(0.0)).alias("revenue"),
    )


def join_features(outcomes: DataFrame, features: DataFrame, holdout_share: float) -> DataFrame:
    """Outcomes joined to the features of their send date, with a stable ``split`` column."""
    from pyspark.sql import functions as F

    feats = features.withColumnRenamed("ds", "send_date")
    joined = outcomes.join(feats, on=["customer_id", "send_date"], how="inner")
    bucket = F.pmod(F.xxhash64("campaign_id", "customer_id"), F.lit(10_000))
    return joined.withColumn("split", F.when(bucket < F.lit(round(holdout_share * 10_000)), "test").otherwise("train"))


def build_training_set(spark: SparkSession, settings: Settings, ds: str) -> dict[str, int]:
    """Replace ``gold/training_set/ds=<ds>`` (atomically, by Spark's commit) and return rows per split."""
    from pyspark.sql import functions as F

    ds = check_ds(ds)
    log_frame = read_upto(spark, layer_path(settings, "silver", "campaign_log"), ds)
    if log_frame is None:
        raise PipelineError("silver campaign_log has no partitions yet: run marketing_ingest first")
    features_root = layer_path(settings, "gold", "features")
    features = read_upto(spark, features_root, ds)
    if features is None:
        raise PipelineError(f"{features_root} is empty: build features first (msp features build --ds {ds})")
    outcomes = latest_outcomes(log_frame).where(F.col("send_date") <= F.lit(ds))
    frame = join_features(outcomes, features, settings.holdout_share).orderBy("campaign_id", "customer_id")
    counts = {r["split"]: r["n"] for r in frame.groupBy("split").count().withColumnRenamed("count", "n").collect()}
    missing = outcomes.join(features.withColumnRenamed("ds", "send_date"), ["customer_id", "send_date"], "left_anti")
    if (lost := missing.count()) > 0:
        log.warning("%d campaign rows have no features for their send date (built for other dates?)", lost)
    if not counts:
        raise PipelineError(f"no campaign outcome up to {ds} has features: nothing to train on")
    root = layer_path(settings, "gold", "training_set")
    write_partitions(spark, frame.coalesce(1).withColumn("ds", F.lit(ds)), root, [ds])
    log.info("training set %s: %s", ds, counts)
    return {"train": counts.get("train", 0), "test": counts.get("test", 0)}


def attribute_orders(
    orders: DataFrame, campaign_log: DataFrame, features: DataFrame, attribution_days: int, control: str = "no_action"
) -> DataFrame:
    """Orders joined to their customer's latest features on or before the order day and their campaign.

    ``features`` carries ``ds`` (its as-of date); an order on day t takes the features of the largest
    ``ds <= t``, which use data strictly before ``ds`` 00:00; orders before the first feature date drop
    out. Pure transform: no I/O (it reads the distinct feature dates, a small action).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    dates = sorted({r["ds"] for r in features.select(F.col("ds").cast("string").alias("ds")).distinct().collect()})
    if not dates:
        raise PipelineError("no feature dates: build features first")
    stamp = F.array(*[F.lit(d) for d in dates])
    day = F.to_date("ts").cast("string")
    orders = (
        orders.select("order_id", "customer_id", "ts", F.col("amount").alias("order_value"), "discount")
        .where(F.col("order_value") > 0)
        .withColumn("_fdate", F.try_element_at(F.filter(stamp, lambda d: d <= day), F.lit(-1)))
        .where(F.col("_fdate").isNotNull())
    )
    window = F.expr(f"INTERVAL {int(attribution_days)} DAYS")
    w = Window.partitionBy("campaign_id", "customer_id").orderBy(F.col("updated_at").desc_nulls_last())
    sends = (
        campaign_log.withColumn("_rank", F.row_number().over(w))
        .where("_rank = 1")
        .select("customer_id", F.col("ts").alias("_sent"), F.col("strategy").alias("_strategy"))
    )
    attributed = (
        orders.select("order_id", "customer_id", "ts")
        .join(sends, "customer_id")
        .where((F.col("_sent") <= F.col("ts")) & (F.col("ts") < F.col("_sent") + window))
        .groupBy("order_id")
        .agg(F.max_by("_strategy", "_sent").alias("strategy"))
    )
    feats = features.withColumn("_fdate", F.col("ds").cast("string")).drop("ds")
    return (
        orders.join(attributed, "order_id", "left")
        .withColumn("strategy", F.coalesce(F.col("strategy"), F.lit(control)))
        .join(feats, ["customer_id", "_fdate"], "inner")
        .withColumnRenamed("_fdate", "feature_date")
    )


def build_order_set(spark: SparkSession, settings: Settings, ds: str) -> int:
    """Replace ``gold/order_set/ds=<ds>`` with every order before ``ds`` (see the module docstring); its rows."""
    from pyspark.sql import functions as F

    ds = check_ds(ds)
    orders = read_upto(spark, layer_path(settings, "silver", "orders"), ds)
    log_frame = read_upto(spark, layer_path(settings, "silver", "campaign_log"), ds)
    features = read_upto(spark, layer_path(settings, "gold", "features"), ds)
    if orders is None or features is None:
        raise PipelineError("silver orders and gold features are needed for the order set: run ingest and features")
    if log_frame is None:  # a shop that never ran a campaign: every order is a control order
        schema = "campaign_id string, customer_id string, ts timestamp, strategy string, updated_at timestamp"
        log_frame = spark.createDataFrame([], schema)
    before = orders.where(F.col("ts") < F.lit(f"{ds}T00:00:00Z").cast("timestamp"))
    frame = attribute_orders(before, log_frame, features, settings.attribution_days).persist()
    try:
        rows = frame.count()
        if rows == 0:
            raise PipelineError(f"no order before {ds} has features: nothing to learn order values from")
        root = layer_path(settings, "gold", "order_set")
        write_partitions(spark, frame.coalesce(1).withColumn("ds", F.lit(ds)), root, [ds], rows={ds: rows})
    finally:
        frame.unpersist()
    log.info("order set %s: %d orders", ds, rows)
    return rows


def load_order_set(settings: Settings, ds: str) -> pd.DataFrame:
    """The written order set as pandas (one row per order)."""
    import pandas as pd

    path = partition_path(settings, "gold", "order_set", check_ds(ds))
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: build the training set first (msp train dataset --ds {ds})")
    return pd.read_parquet(path).sort_values("order_id").reset_index(drop=True)


def training_set_path(settings: Settings, ds: str) -> Path:
    return partition_path(settings, "gold", "training_set", check_ds(ds))


def load_training_set(settings: Settings, ds: str) -> pd.DataFrame:
    """The written training set as pandas (tens of thousands of rows; small enough for one process)."""
    import pandas as pd

    path = training_set_path(settings, ds)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: build the training set first (msp train dataset --ds {ds})")
    frame = pd.read_parquet(path)
    return frame.sort_values(["campaign_id", "customer_id"]).reset_index(drop=True)
