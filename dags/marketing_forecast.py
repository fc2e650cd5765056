"""
### marketing_forecast

The nightly sales forecast: daily orders and revenue per product category for the next 28 days.

1. **resolve_date**: the forecast origin D (param `ds`, else the triggering asset event's date, else
   the logical date, else today).
2. **forecast_sales**: reads silver `orders` (the 364 days before D, `ts` before D 00:00 UTC) and the
   latest `products` before D; per category and for the whole shop (`all`) fits ETS with an additive
   weekly season (statsmodels; the lower-AICc of no trend and damped trend), or a fallback for short
   series (seasonal naive, mean, zero); replaces run date D in `marketing.sales_forecast` (D .. D+27,
   point forecast and 80% prediction interval, model name). BI view: `v_sales_forecast_latest`.

Runs daily at 06:00 UTC and whenever silver orders are updated (`msp.silver.orders`). Rerunning a date
replaces its rows. A week without any silver orders partition before D fails the task without retry
(data not ingested yet). **Params**: `ds`. Code: `jobs/forecasting/`; docs/FORECAST.md.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, dag, task

from jobs.dag_defaults import dag_default_args, date_param, schedule

ORDERS = Asset(name="msp.silver.orders", uri="msp://lake/silver/orders", group="msp-silver")
FORECAST = Asset(name="msp.warehouse.sales_forecast", uri="msp://warehouse/sales_forecast", group="msp-warehouse")

default_args = dag_default_args()


@dag(
    dag_id="marketing_forecast",
    schedule=schedule("0 6 * * *", ORDERS),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "forecast", "statsmodels", "warehouse"],
    doc_md=__doc__,
    params={"ds": date_param("Forecast origin (YYYY-MM-DD); the history is the orders before it.")},
)
def marketing_forecast() -> None:
    @task
    def resolve_date(**context) -> str:
        """Forecast origin from params, else the triggering asset events', else the logical date, else today."""
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date

        return check_ds(partition_date(context))

    @task(outlets=[FORECAST])
    def forecast_sales(run_date: str, **context) -> dict:
        """Orders and revenue per category for the 28 days from the run date, into the warehouse."""
        from jobs.forecasting.sales import forecast_task
        from jobs.pipeline.tasks import stamp_outlets

        stamp_outlets(context, run_date)
        return forecast_task(run_date)

    forecast_sales(resolve_date())


marketing_forecast()
