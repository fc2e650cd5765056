"""Nightly batch scoring: champion predictions -> expected profit -> optimised, randomised assignments.

``score(spark, settings, ds)``:

1. reads ``gold/features/ds=<ds>`` (features as of the run date);
2. resolves ``models:/<name>@champion`` to a version (recorded on every row) and predicts
   p_convert and expected net revenue under every strategy with ``mlflow.pyfunc.spark_udf``;
3. prices every (customer, strategy) with the strategy catalogue: expected cost, profit and
   incremental profit over ``no_action``, and eligibility;
4. solves the multiple-choice knapsack (budget, caps) on compact numeric arrays, then applies the
   random holdout and exploration; every assignment keeps its propensity and reason, and every
   model-chosen contact its top three reasons (jobs/scoring/reasons.py);
5. writes ``gold/assignments/ds=<ds>`` (Spark, atomic by partition) and returns the frames the
   publish step writes to the warehouse (assignments with recommendations, forecast).

Only a compact frame reaches the driver (customer id, segment, a handful of features and two
floats per strategy: about 150 bytes a customer), never the feature rows; the knapsack needs all
customers at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.pipeline.lake import PipelineError, check_ds, layer_path, partition_path, write_partitions
from jobs.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.scoring.catalogue import Catalogue

log = logging.getLogger(__name__)
SEGMENT_FEATURES = ("tenure_days", "days_since_last_event", "orders_90d")
RECOMMENDATION_STRATEGY = "email_recommendations"
#: the warehouse's strategy_assignments columns, in table order
ASSIGNMENT_COLUMNS = [
    "run_date",
    "customer_id",
    "strategy",
    "reason",
    "propensity",
    "p_convert_chosen",
    "p_convert_control",
    "expected_revenue",
    "expected_incremental_revenue",
    "expected_cost",
    "expected_profit",
    "expected_incremental_profit",
    "recommended_products",
    "segment",
    "model_name",
    "model_version",
    "scored_at",
    "model_strategy",
    "reasons",
    "reason_1",
    "reason_2",
    "reason_3",
]
ELIGIBILITY_FEATURES = (
    "has_email",
    "tenure_days",
    "days_since_last_purchase",
    "emails_received_90d",
    "campaigns_received",
)


@dataclass
class Champion:
    name: str
    version: str
    uri: str
    run_id: str | None = None


@dataclass
class ScoreResult:
    run_date: str
    champion: Champion
    customers: int
    mix: dict[str, dict[str, int]] = field(default_factory=dict)
    optimiser: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_champion(settings: Settings, family: str | None = None) -> Champion:
    """The version behind ``@champion`` now (pinned for the whole run, so a mid-run alias move cannot mix)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from jobs.training.train import configure_mlflow, model_name

    configure_mlflow(settings)
    name = model_name(settings, family or settings.scoring_model)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        raise PipelineError(f"{name} has no @champion: run marketing_train first ({exc})") from None
    return Champion(name, str(version.version), f"models:/{name}/{version.version}", version.run_id)


def segment_column() -> Any:
    """A small, stable customer segmentation for reporting (not a model input)."""
    from pyspark.sql import functions as F

    return (
        F.when(F.col("tenure_days") < 30, "new")
        .when(F.col("days_since_last_event") > 30, "dormant")
        .when(F.col("orders_90d") > 0, "buyer")
        .otherwise("browser")
    )


def predict(spark: SparkSession, features: DataFrame, champion: Champion, strategies: tuple[str, ...]) -> DataFrame:
    """Features + ``p_convert__<s>`` and ``exp_revenue__<s>`` for every strategy, via the champion's spark_udf."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from jobs.models.frame import FeatureSpec
    from jobs.models.pyfunc import output_columns

    local = mlflow.artifacts.download_artifacts(champion.uri)
    spec = FeatureSpec.from_json((Path(local) / "artifacts" / "feature_spec.json").read_text())
    flat = spec.spark_flatten(features)
    outputs = output_columns(strategies)
    schema = T.StructType([T.StructField(c, T.DoubleType()) for c in outputs])
    udf = mlflow.pyfunc.spark_udf(spark, champion.uri, result_type=schema, env_manager="local")
    scored = flat.withColumn("_pred", udf(F.struct(*[F.col(c) for c in spec.input_columns])))
    return scored.select(*[c for c in scored.columns if c != "_pred"], *[F.col(f"_pred.{c}").alias(c) for c in outputs])


def score(spark: SparkSession, settings: Settings, ds: str, catalogue: Catalogue | None = None) -> ScoreResult:
    """Score, optimise and write ``gold/assignments/ds=<ds>``; see the module docstring."""
    import numpy as np
    import pandas as pd
    from pyspark.sql import functions as F

    from jobs.scoring.catalogue import load_catalogue
    from jobs.scoring.optimiser import decide
    from jobs.scoring.reasons import with_reasons

    ds = check_ds(ds)
    catalogue = catalogue or load_catalogue(settings.strategy_catalogue)
    names = catalogue.names
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    path = partition_path(settings, "gold", "features", ds)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: build the features of {ds} first (msp features build --ds {ds})")
    features = spark.read.parquet(str(path)).withColumn("ds", F.lit(ds))
    champion = resolve_champion(settings)
    predicted = predict(spark, features, champion, names).withColumn("segment", segment_column())
    keep = ["customer_id", "segment", *ELIGIBILITY_FEATURES]
    p_cols = [f"p_convert__{s}" for s in names]
    r_cols = [f"exp_revenue__{s}" for s in names]
    predicted = predicted.select(*keep, *p_cols, *r_cols).persist()
    n = predicted.count()
    timings["predict"] = time.perf_counter() - t0
    if n == 0:
        raise PipelineError(f"gold/features/ds={ds} has no customers to score")

    # compact numeric arrays to the driver (float32 predictions, a handful of features)
    t = time.perf_counter()
    frame = predicted.toArrow().to_pandas()
    predicted.unpersist()
    p = frame[p_cols].to_numpy(dtype="float64")
    rev = frame[r_cols].to_numpy(dtype="float64")
    eligible = catalogue.eligibility_mask(frame)
    cost = catalogue.expected_cost(p, rev)
    profit = catalogue.expected_profit(p, rev)
    value = profit - profit[:, [0]]
    caps = catalogue.caps_for(n)
    budget = catalogue.budget_for(n)
    solution, assignment = decide(
        catalogue.objective(value, cost),
        cost,
        eligible,
        budget,
        caps,
        holdout_share=catalogue.holdout_share,
        explore_share=catalogue.explore_share,
        rng_seed=_seed(ds),
    )
    timings["optimise"] = time.perf_counter() - t
    rows = np.arange(n)
    chosen = assignment.strategy
    out = pd.DataFrame(
        {
            "row": rows,
            "strategy": np.asarray(names)[chosen],
            "reason": assignment.reason,
            "propensity": assignment.propensity,
            "p_convert_chosen": p[rows, chosen],
            "p_convert_control": p[:, 0],
            "expected_revenue": rev[rows, chosen],
            "expected_incremental_revenue": rev[rows, chosen] - rev[:, 0],
            "expected_cost": cost[rows, chosen],
            "expected_profit": profit[rows, chosen],
            "expected_incremental_profit": value[rows, chosen],
            "model_strategy": np.asarray(names)[assignment.model_choice],
        }
    )
    out.insert(0, "customer_id", frame["customer_id"].to_numpy())
    out.insert(1, "segment", frame["segment"].to_numpy())
    del frame
    t = time.perf_counter()
    assignments = spark.createDataFrame(out.drop(columns=["row"])).withColumns(
        {
            "run_date": F.lit(ds).cast("date"),
            "model_name": F.lit(champion.name),
            "model_version": F.lit(champion.version),
            "scored_at": F.current_timestamp(),
            "ds": F.lit(ds),
        }
    )
    assignments = with_reasons(assignments, features, champion.uri, catalogue.control)
    assignments = with_recommendations(spark, settings, assignments, ds, catalogue.recommendations_top_n)
    # ds is a literal and the recommendations join is one row per customer: n rows, no counting pass
    write_partitions(spark, assignments, layer_path(settings, "gold", "assignments"), [ds], rows={ds: n})
    timings["write_lake"] = time.perf_counter() - t
    mix = {
        s: {str(r): int(c) for r, c in out.loc[out["strategy"] == s, "reason"].value_counts().items()} for s in names
    }
    result = ScoreResult(
        ds,
        champion,
        n,
        mix,
        {
            "objective": solution.objective,
            "upper_bound": solution.upper_bound,
            "gap": solution.gap,
            "gap_share": solution.gap_share,
            "spent": float(out["expected_cost"].sum()),
            "budget": budget,
            "min_roi": catalogue.min_roi,
            "exact_lp": solution.exact_lp,
        },
        timings,
    )
    log.info(
        "scored %d customers with %s v%s: objective %.2f (LP bound %.2f, gap %.3f%%), spent %.2f of %.2f",
        n,
        champion.name,
        champion.version,
        solution.objective,
        solution.upper_bound,
        100 * solution.gap_share,
        result.optimiser["spent"],
        budget,
    )
    return result


def with_recommendations(
    spark: SparkSession, settings: Settings, assignments: DataFrame, ds: str, top_n: int
) -> DataFrame:
    """Add ``recommended_products`` (comma-separated ids) for customers assigned ``email_recommendations``."""
    from pyspark.sql import functions as F

    from jobs.pipeline.lake import read_upto
    from jobs.scoring.recommend import recommend

    silver = {t: read_upto(spark, layer_path(settings, "silver", t), ds) for t in ("events", "orders", "products")}
    if any(frame is None for frame in silver.values()):
        raise PipelineError("silver events, orders and products are needed for recommendations")
    targets = assignments.where(F.col("strategy") == RECOMMENDATION_STRATEGY).select("customer_id")
    recs = recommend(
        targets,
        silver["events"],
        silver["orders"],
        silver["products"],
        ds,
        top_n=top_n,
        method=settings.recommend_method,
        history_half=settings.recommend_history_half,
        price_band_weight=settings.recommend_price_band_weight,
    )
    recs = recs.select("customer_id", F.array_join("recommended_products", ",").alias("recommended_products"))
    return assignments.join(recs, "customer_id", "left")


def publish(spark: SparkSession, settings: Settings, ds: str, n_boot: int = 200) -> dict[str, int]:
    """Write ``gold/assignments/ds=<ds>`` and its forecast to the warehouse, each replacing the run date."""
    import numpy as np
    from pyspark.sql import functions as F

    from jobs.scoring.forecast import forecast
    from jobs.warehouse import Warehouse

    ds = check_ds(ds)
    path = partition_path(settings, "gold", "assignments", ds)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: score {ds} first")
    frame = spark.read.parquet(str(path)).withColumn("run_date", F.lit(ds).cast("date")).toArrow().to_pandas()
    if "model_strategy" not in frame.columns:  # scored before the column existed: the choice is unknown
        frame["model_strategy"] = None
    for column in ("reasons", "reason_1", "reason_2", "reason_3"):  # scored before the reasons
        if column not in frame.columns:
            frame[column] = None
    frame = frame[ASSIGNMENT_COLUMNS]
    fc = forecast(
        frame["strategy"].to_numpy(),
        frame["segment"].to_numpy(),
        frame["p_convert_chosen"].to_numpy(),
        frame["p_convert_control"].to_numpy(),
        frame["expected_revenue"].to_numpy(),
        (frame["expected_revenue"] - frame["expected_incremental_revenue"]).to_numpy(),
        frame["expected_cost"].to_numpy(),
        frame["expected_profit"].to_numpy(),
        frame["expected_incremental_profit"].to_numpy(),
        n_boot=n_boot,
        seed=_seed(ds),
    )
    fc.insert(0, "run_date", frame["run_date"].iloc[0])
    fc["model_name"] = frame["model_name"].iloc[0]
    fc["model_version"] = frame["model_version"].iloc[0]
    fc["created_at"] = frame["scored_at"].max()
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    written = warehouse.replace("strategy_assignments", {"run_date": ds}, frame)
    forecast_rows = warehouse.replace("campaign_forecast", {"run_date": ds}, fc)
    log.info("published %d assignments and %d forecast rows for %s", written, forecast_rows, ds)
    return {"assignments": int(written), "forecast": int(forecast_rows), "customers": int(np.asarray(len(frame)))}


def _seed(ds: str) -> int:
    """A per-run-date seed: reruns of a date draw the same holdout and exploration."""
    return int(ds.replace("-", ""))
