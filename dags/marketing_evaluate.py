"""
### marketing_evaluate

The closed loop: what every scoring run really earned, once its attribution window has closed.

1. **evaluate**: for every run date r in `gold/assignments` with r + `MSP_ATTRIBUTION_DAYS` <= the run
   date (and within `MSP_EVALUATION_LOOKBACK_DAYS`), joins the assignments to the realised outcomes
   (silver `campaign_log`, the version written when the window closed) and e-mail clicks (silver
   events); per strategy and segment: conversion and click-through rate, revenue per customer, the
   incremental effect against the holdout customers the model would have given the strategy (95%
   interval and p-value: two-proportion test for conversion, Welch for revenue), cost, ROI, and the
   prediction next to it. Replaces the run date in `marketing.strategy_effects` and
   `marketing.model_metrics` (`source = 'evaluate'`); logs an MLflow run per run date in the
   `<experiment>-evaluation` experiment, tagged with the model version that assigned.

Runs daily at 07:00 UTC and whenever new campaign outcomes reach silver (`msp.silver.campaign_log`).
Rerunning a date replaces its rows. **Params**: `ds` (default: logical date, or today).
**Backfill**: `airflow backfill create --dag-id marketing_evaluate --from-date D1 --to-date D2T23:59:59
--max-active-runs 1` (runs overlap in what they replace; docs/EVALUATION.md).
Code: `jobs/evaluation/`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, dag, task

from jobs.dag_defaults import dag_default_args, date_param, schedule

OUTCOMES = Asset(name="msp.silver.campaign_log", uri="msp://lake/silver/campaign_log", group="msp-silver")
EFFECTS = Asset(name="msp.warehouse.strategy_effects", uri="msp://warehouse/strategy_effects", group="msp-warehouse")

default_args = dag_default_args()


@dag(
    dag_id="marketing_evaluate",
    schedule=schedule("0 7 * * *", OUTCOMES),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "evaluate", "spark", "mlflow", "warehouse"],
    doc_md=__doc__,
    params={"ds": date_param()},
)
def marketing_evaluate() -> None:
    @task
    def resolve_date(**context) -> str:
        """Run date from params, else the triggering asset events', else the logical date, else today."""
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date

        return check_ds(partition_date(context))

    @task(outlets=[EFFECTS])
    def evaluate(run_date: str, **context) -> dict:
        """Realised against predicted effects of every run whose window closed by the run date."""
        from jobs.evaluation.tasks import evaluate_task
        from jobs.pipeline.tasks import stamp_outlets

        stamp_outlets(context, run_date)
        return evaluate_task(run_date)

    evaluate(resolve_date())


marketing_evaluate()
