"""``marketing_evaluate``: what every scoring run really earned, once its attribution window has closed.

For the run date r of ``gold/assignments`` the window is r .. r + ``attribution_days`` - 1; on day
``ds`` every run with r + ``attribution_days`` <= ds (and within ``evaluation_lookback_days`` of
that) is (re-)evaluated, so late outcomes are picked up and a rerun replaces, never duplicates:

1. the assignments of r (lake, with the model's choice for every customer) are joined to the
   realised outcomes: the latest version of each campaign row sent on r (silver ``campaign_log``,
   the version written when the window closed), and e-mail clicks in the window (silver events);
2. realised cost and profit come from the strategy catalogue (contact cost, fulfilment cost per
   converted order, margin on net revenue);
3. :func:`jobs.evaluation.effects.strategy_effects` compares, per strategy and segment, the customers
   the model gave the strategy with the holdout customers it would have given it;
4. ``marketing.strategy_effects`` and ``marketing.model_metrics`` (``source = 'evaluate'``) replace the
   run date's rows, and an MLflow run (experiment ``<mlflow_experiment>-evaluation``, one run per run
   date, reused on re-evaluation) records the figures against the model version that assigned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.pipeline.lake import PipelineError, check_ds, ds_range, layer_path, partition_path, read_range
from jobs.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from jobs.scoring.catalogue import Catalogue

log = logging.getLogger(__name__)
SOURCE = "evaluate"
CLICK_EVENT = "email_click"
#: outcomes must be known for at least this share of a run's assignments, else the run is not evaluated yet
MIN_OUTCOME_COVERAGE = 0.5
#: the coverage check: the realised effect of a (strategy, segment) cell inside its predicted interval
INSIDE = "realised_inside_predicted_interval"


@dataclass
class RunEvaluation:
    run_date: str
    model_name: str
    model_version: str
    customers: int
    with_outcome: int
    metrics: dict[str, float] = field(default_factory=dict)
    policy: dict[str, float] = field(default_factory=dict)
    effects: int = 0
    mlflow_run_id: str | None = None


def closed_runs(settings: Settings, ds: str) -> list[str]:
    """Run dates in gold/assignments whose attribution window has closed by ``ds``, within the lookback."""
    last = date.fromisoformat(check_ds(ds)) - timedelta(days=settings.attribution_days)
    first = last - timedelta(days=settings.evaluation_lookback_days)
    root = layer_path(settings, "gold", "assignments")
    runs = sorted(p.name.removeprefix("ds=") for p in root.glob("ds=*") if p.is_dir()) if root.is_dir() else []
    return [r for r in runs if first <= date.fromisoformat(r) <= last]


def realised(spark: SparkSession, settings: Settings, run_date: str, catalogue: Catalogue) -> pd.DataFrame:
    """One row per assignment of ``run_date``: predictions, the realised outcome, click, cost and margin."""
    import numpy as np
    from pyspark.sql import functions as F

    from jobs.training.dataset import latest_outcomes

    path = partition_path(settings, "gold", "assignments", run_date)
    if not path.is_dir():
        raise PipelineError(f"{path} does not exist: nothing was scored on {run_date}")
    assignments = spark.read.parquet(str(path))
    if "model_strategy" not in assignments.columns:
        raise PipelineError(
            f"{path} has no model_strategy column (scored before the closed loop existed): "
            "rescore the date to evaluate it"
        )
    close = (date.fromisoformat(run_date) + timedelta(days=settings.attribution_days)).isoformat()
    window = ds_range(close, since=run_date)
    log_frame = read_range(spark, layer_path(settings, "silver", "campaign_log"), window)
    if log_frame is None:
        raise PipelineError(f"silver campaign_log has no partition between {run_date} and {close}: ingest them first")
    outcomes = (
        latest_outcomes(log_frame, catalogue.names)
        .where(F.col("send_date") == F.lit(run_date))
        .select(
            "customer_id",
            F.col("strategy").alias("executed_strategy"),
            F.col("converted").cast("double").alias("converted"),
            F.col("revenue").cast("double").alias("revenue"),
        )
        .dropDuplicates(["customer_id"])
    )
    events = read_range(spark, layer_path(settings, "silver", "events"), window[:-1])
    start = F.to_timestamp(F.lit(run_date))
    end = F.to_timestamp(F.lit(close))
    clicks = (
        events.where((F.col("event_type") == CLICK_EVENT) & (F.col("ts") >= start) & (F.col("ts") < end))
        .select("customer_id")
        .distinct()
        .withColumn("clicked_any", F.lit(1.0))
        if events is not None
        else None
    )
    joined = assignments.join(outcomes, "customer_id", "left")
    if clicks is not None:
        joined = joined.join(clicks, "customer_id", "left")
    else:
        joined = joined.withColumn("clicked_any", F.lit(None).cast("double"))
    columns = [
        "customer_id",
        "strategy",
        "model_strategy",
        "reason",
        "propensity",
        "segment",
        "p_convert_chosen",
        "p_convert_control",
        "expected_incremental_revenue",
        "expected_incremental_profit",
        "model_name",
        "model_version",
        "executed_strategy",
        "converted",
        "revenue",
        "clicked_any",
    ]
    frame = joined.select(*columns).toArrow().to_pandas()
    frame.insert(0, "run_date", run_date)

    mismatched = frame["executed_strategy"].notna() & (frame["executed_strategy"] != frame["strategy"])
    if mismatched.any():
        log.warning(
            "%s: %d customers got a different strategy than assigned (e.g. %s): their outcomes are not counted",
            run_date,
            int(mismatched.sum()),
            frame.loc[mismatched, ["customer_id", "strategy", "executed_strategy"]].head(3).to_dict("records"),
        )
        frame.loc[mismatched, ["converted", "revenue"]] = np.nan
    index = np.array([catalogue.names.index(s) for s in frame["strategy"]])
    contact = np.array([s.cost_per_contact for s in catalogue.strategies])[index]
    fulfil = np.array([s.fulfilment_cost_per_order for s in catalogue.strategies])[index]
    known = frame["converted"].notna().to_numpy()
    frame["cost"] = np.where(known, contact + fulfil * frame["converted"].fillna(0).to_numpy(), np.nan)
    frame["margin_rate"] = catalogue.margin_rates()[index]
    emailed = np.array([s.contacts for s in catalogue.strategies])[index]
    # a click counts for customers the run e-mailed; for the others the rate does not apply
    frame["clicked"] = np.where(emailed & known, frame["clicked_any"].fillna(0.0).to_numpy(), np.nan)
    return frame.drop(columns=["clicked_any"])


def run_metrics(frame: pd.DataFrame, effects: pd.DataFrame, policy: dict[str, float]) -> dict[str, float]:
    """Model-level figures of one run: calibration, ranking, coverage and the policy's realised value."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    known = frame[frame["converted"].notna()]
    y = known["converted"].to_numpy(dtype=float)
    p = known["p_convert_chosen"].to_numpy(dtype=float)
    realised_rate = float(y.mean()) if len(y) else float("nan")
    predicted_rate = float(np.nanmean(p)) if len(p) else float("nan")
    inside = effects.loc[effects["segment"] != "all", INSIDE].dropna()
    return {
        "assignments": float(len(frame)),
        "outcome_coverage": float(len(known) / len(frame)) if len(frame) else 0.0,
        "realised_conversion_rate": realised_rate,
        "predicted_conversion_rate": predicted_rate,
        "calibration_ratio": predicted_rate / realised_rate if realised_rate > 0 else float("nan"),
        "realised_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) and not np.isnan(p).any() else float("nan"),
        "cells_inside_predicted_interval_share": float(inside.mean()) if len(inside) else float("nan"),
        "policy_incremental_profit": float(policy["value"]),
        "policy_incremental_profit_lo": float(policy["lo"]),
        "policy_incremental_profit_hi": float(policy["hi"]),
        "policy_incremental_profit_p_value": float(policy["p_value"]),
    }


def evaluate_run(
    spark: SparkSession, settings: Settings, run_date: str, catalogue: Catalogue | None = None
) -> RunEvaluation:
    """Measure one run date and replace its rows in the warehouse; log it to MLflow."""
    import pandas as pd

    from jobs.evaluation.effects import policy_value, strategy_effects
    from jobs.scoring.catalogue import load_catalogue
    from jobs.warehouse import Warehouse

    catalogue = catalogue or load_catalogue(settings.strategy_catalogue)
    frame = realised(spark, settings, run_date, catalogue)
    with_outcome = int(frame["converted"].notna().sum())
    if with_outcome < MIN_OUTCOME_COVERAGE * len(frame):
        raise PipelineError(
            f"run {run_date}: outcomes known for {with_outcome:,} of {len(frame):,} assignments "
            f"(below {MIN_OUTCOME_COVERAGE:.0%}): has the campaign_log of the window's close been ingested?"
        )
    model_name, model_version = str(frame["model_name"].iloc[0]), str(frame["model_version"].iloc[0])
    scored = frame[frame["converted"].notna()]
    error_var = model_error_var(settings, model_name, model_version)
    effects = strategy_effects(scored, control=catalogue.control, model_error_var=error_var)
    policy = policy_value(scored, control=catalogue.control)
    metrics = run_metrics(frame, effects, policy)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us")
    day = date.fromisoformat(run_date)
    effects["run_date"] = day  # the key column, as a date
    effects["model_name"], effects["model_version"], effects["evaluated_at"] = model_name, model_version, now
    metric_rows = pd.DataFrame(
        {
            "run_date": day,
            "model_name": model_name,
            "model_version": model_version,
            "metric": list(metrics),
            "value": list(metrics.values()),
            "segment": "all",
            "source": SOURCE,
            "recorded_at": now,
        }
    )
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    written = warehouse.replace("strategy_effects", {"run_date": day}, effects)
    warehouse.replace("model_metrics", {"run_date": day, "source": SOURCE}, metric_rows)
    result = RunEvaluation(
        run_date, model_name, model_version, len(frame), with_outcome, metrics, policy, effects=int(written)
    )
    result.mlflow_run_id = log_evaluation(settings, result, effects)
    log.info(
        "evaluated %s (%s v%s): %d of %d with outcome, policy incremental profit %.2f [%.2f, %.2f], "
        "%.0f%% of cells with the realised effect inside the predicted interval",
        run_date,
        model_name,
        model_version,
        with_outcome,
        len(frame),
        policy["value"],
        policy["lo"],
        policy["hi"],
        100 * metrics["cells_inside_predicted_interval_share"],
    )
    return result


def model_error_var(settings: Settings, name: str, version: str) -> float:
    """The ``uplift_error_var`` the model version's training run measured on held-out rows; 0 if unknown."""
    import math

    import mlflow

    from jobs.training.evaluate import UPLIFT_ERROR_METRIC
    from jobs.training.train import configure_mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    try:
        run_id = client.get_model_version(name, version).run_id
        value = client.get_run(run_id).data.metrics.get(UPLIFT_ERROR_METRIC) if run_id else None
    except mlflow.exceptions.MlflowException as exc:
        log.warning("%s v%s: no training run to read %s from (%s)", name, version, UPLIFT_ERROR_METRIC, exc)
        value = None
    if value is None or math.isnan(value):
        log.warning(
            "%s v%s has no %s: the predicted intervals hold sampling noise only (too narrow)",
            name,
            version,
            UPLIFT_ERROR_METRIC,
        )
        return 0.0
    log.info("%s v%s: held-out uplift error variance %.3g", name, version, value)
    return float(value)


def log_evaluation(settings: Settings, result: RunEvaluation, effects: pd.DataFrame) -> str:
    """One MLflow run per run date in ``<experiment>-evaluation``, tagged with the model version; reused on rerun."""
    import math
    import time

    import mlflow
    from mlflow.entities import Metric

    from jobs.training.train import configure_mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    name = f"{settings.mlflow_experiment}-evaluation"
    experiment = client.get_experiment_by_name(name)
    root = settings.path(settings.mlflow_artifact_root)  # beside the training runs' artifacts, not ./mlruns
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, root.as_uri())
    existing = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`msp.run_date` = '{result.run_date}' and tags.`msp.role` = 'evaluation'",
        max_results=1,
    )
    version = None
    try:
        version = client.get_model_version(result.model_name, result.model_version)
    except mlflow.exceptions.MlflowException:
        log.warning("%s v%s is not in the registry: logged without a link", result.model_name, result.model_version)
    tags = {
        "msp.role": "evaluation",
        "msp.run_date": result.run_date,
        "msp.model_name": result.model_name,
        "msp.model_version": result.model_version,
        "msp.training_run_id": (version.run_id or "") if version else "",
    }
    # the client API, not the fluent one: the fluent run would be checked against the training experiment
    run_id = existing[0].info.run_id if existing else None
    if run_id is None:
        run_id = client.create_run(experiment_id, tags=tags, run_name=f"evaluate-{result.run_date}").info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in result.metrics.items() if not math.isnan(v)])
    client.log_text(run_id, effects.to_csv(index=False), "strategy_effects.csv")
    client.set_terminated(run_id, status="FINISHED")
    if version is not None:
        client.set_model_version_tag(result.model_name, result.model_version, "msp.last_evaluated_run", result.run_date)
    return run_id


def evaluate(spark: SparkSession, settings: Settings, ds: str) -> list[RunEvaluation]:
    """Evaluate every run whose window closed by ``ds`` (see the module docstring); [] when none has."""
    from jobs.scoring.catalogue import load_catalogue

    runs = closed_runs(settings, ds)
    if not runs:
        log.info("no scoring run's attribution window (%d days) has closed by %s", settings.attribution_days, ds)
        return []
    catalogue = load_catalogue(settings.strategy_catalogue)
    return [evaluate_run(spark, settings, run_date, catalogue) for run_date in runs]


def summary(evaluations: list[RunEvaluation]) -> dict[str, Any]:
    """What the task returns (XCom) and the CLI prints."""
    return {
        e.run_date: {
            "model": f"{e.model_name} v{e.model_version}",
            "customers": e.customers,
            "with_outcome": e.with_outcome,
            "policy_incremental_profit": round(e.policy["value"], 2),
            "policy_incremental_profit_95": [round(e.policy["lo"], 2), round(e.policy["hi"], 2)],
            "cells_inside_predicted_interval_share": e.metrics["cells_inside_predicted_interval_share"],
            "mlflow_run_id": e.mlflow_run_id,
        }
        for e in evaluations
    }
