"""
### marketing_score

Daily batch scoring: who gets which strategy tonight, and what it is expected to bring.

1. **check_data_quality**: blocks the run (fails at once) when the latest data-quality check up to the
   run date of any silver table has a failed critical expectation (`marketing.data_quality`).
2. **build_features**: `gold/features/ds=<ds>` (point in time; idempotent). Reused without
   recomputing when it is newer than every silver file it reads and the feature code (the nightly
   training built it); param `rebuild_features` forces the computation. With `MSP_SPARK_SUBMIT=true`
   (stack mode) a `SparkSubmitOperator` runs it on the connection's master (docs/DEPLOYMENT.md).
3. **score**: loads `models:/<name>@champion` (the version is pinned and recorded), predicts
   conversion and net revenue under every strategy with `mlflow.pyfunc.spark_udf`, prices them
   with the strategy catalogue (`jobs/scoring/strategies.yaml` or `MSP_STRATEGY_CATALOGUE`), solves
   the budget- and cap-constrained multiple-choice knapsack (gap to the LP bound logged), applies
   the random holdout and exploration (every row keeps its propensity and reason), adds
   co-occurrence recommendations for `email_recommendations`, and writes `gold/assignments/ds=…`.
4. **publish**: replaces the run date in the warehouse tables `strategy_assignments` and
   `campaign_forecast` (PostgreSQL: the assignments COPY-loaded into a new table that is swapped in as
   the run date's partition; the forecast through a staging table; each in one transaction). Then
   the fairness audit: contact, discount and expected-profit disparities between groups of customer
   attributes into `marketing.model_metrics` (`source = 'fairness'`); a ratio above
   `MSP_FAIRNESS_ALERT_RATIO` raises an alert without failing the run (docs/SCORING.md).
5. **drift** (beside publish): population stability index of every model input and of the control
   score against the champion's training date, into `marketing.feature_drift`; a column above
   `MSP_DRIFT_PSI_ALERT` raises an alert (log + `MSP_ALERT_WEBHOOK_URL`) without failing the run.

**Deadline**: `marketing_watchdog` checks at 08:00 UTC that tonight's assignments reached the warehouse.

Runs daily at 05:00 UTC and when a new champion is promoted or features are rebuilt. Rerunning a
date replaces it everywhere. **Params**: `ds` (default: logical date, or today).
Code: `jobs/scoring/`; docs/SCORING.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.dag_defaults import dag_default_args, date_param, schedule, spark_step

CHAMPION = Asset(name="msp.model.champion", uri="msp://mlflow/models/champion", group="msp-models")
ASSIGNMENTS = Asset(name="msp.gold.assignments", uri="msp://lake/gold/assignments", group="msp-gold")
WAREHOUSE = Asset(
    name="msp.warehouse.strategy_assignments", uri="msp://warehouse/strategy_assignments", group="msp-warehouse"
)

RUN_DATE = "{{ ti.xcom_pull(task_ids='resolve_date') }}"
default_args = dag_default_args(execution_timeout=timedelta(hours=2))


@dag(
    dag_id="marketing_score",
    schedule=schedule("0 5 * * *", CHAMPION),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "score", "spark", "mlflow", "warehouse"],
    doc_md=__doc__,
    params={
        "ds": date_param(),
        "rebuild_features": Param(False, type="boolean", description="Recompute the run date's features."),
    },
)
def marketing_score() -> None:
    @task
    def resolve_date(**context) -> str:
        """Run date from params, else the promotion's (triggering asset event), else the logical date, else today."""
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date

        return check_ds(partition_date(context))

    @task
    def check_data_quality(run_date: str) -> dict:
        """Stop on a failed critical data check of the inputs (no retry can fix the data)."""
        from jobs.scoring.tasks import quality_gate_task

        return quality_gate_task(run_date)

    @task
    def build_features(run_date: str, **context) -> dict:
        """gold/features/ds=<run date>; reused when tonight's training built it from the same silver."""
        from jobs.scoring.tasks import features_for

        return features_for(run_date, rebuild=bool(context["params"].get("rebuild_features")))

    @task(outlets=[ASSIGNMENTS])
    def score(run_date: str, **context) -> dict:
        """Champion predictions -> knapsack -> holdout/explore -> recommendations -> gold/assignments."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.scoring.tasks import score_task

        stamp_outlets(context, run_date)

        return score_task(run_date)

    @task(outlets=[WAREHOUSE])
    def publish(run_date: str, **context) -> dict:
        """gold/assignments + forecast -> warehouse (replace the run date in one transaction)."""
        from jobs.pipeline.tasks import stamp_outlets
        from jobs.scoring.tasks import publish_task

        stamp_outlets(context, run_date)

        return publish_task(run_date)

    @task
    def drift(run_date: str) -> dict:
        """PSI against the champion's training population; recorded, alerted above the threshold."""
        from jobs.scoring.tasks import drift_task

        return drift_task(run_date)

    run_date = resolve_date()
    scored = score(run_date)
    features = spark_step(  # a SparkSubmitOperator in spark-submit mode (stack)
        lambda: build_features(run_date),
        task_id="build_features",
        step="score_features",
        ds=RUN_DATE,
        rebuild="{{ params.rebuild_features }}",
    )
    run_date >> features
    check_data_quality(run_date) >> features >> scored >> [publish(run_date), drift(run_date)]


marketing_score()
