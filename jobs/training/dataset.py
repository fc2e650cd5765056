"""The training set: every campaign assignment with a closed outcome, joined to its point-in-time features.

A campaign sent on day d is joined to ``gold/features/ds=d`` (features from data strictly before
d), so no row sees its own outcome. The split into fit and held-out rows is a stable hash of
(campaign_id, customer_id): a row held out tonight is held out every night, which is what makes
the champion and the challenger comparable on the same held-out data.
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
