"""
### marketing_watchdog

The nightly chain's deadline (ingest -> train -> score): at 08:00 UTC, tonight's strategy assignments
must be in the warehouse (`marketing.strategy_assignments` has rows for the run date).

1. **check_assignments_published**: counts the run date's rows; none means the chain is late, stuck,
   failed or never started. It looks again every minute for `grace_minutes` (default 15); then the
   task fails without retry and its failure alert (log + `MSP_ALERT_WEBHOOK_URL`) names the date and
   the latest run date present.

Independent of the DAGs it watches, so it fires whatever went wrong with them. Airflow 3's DAG-level
`DeadlineAlert` is not used: on Airflow 3.3.2 it breaks `airflow dags test` (see
`jobs/monitoring/deadline.py`). **Params**: `ds` (default: the logical date), `grace_minutes`.
Code: `jobs/monitoring/`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from jobs.dag_defaults import dag_default_args, date_param

default_args = dag_default_args(
    retries=1,  # for a warehouse that does not answer; a missed deadline fails at once
    retry_delay=timedelta(minutes=2),
    execution_timeout=timedelta(minutes=30),
)


@dag(
    dag_id="marketing_watchdog",
    schedule=CronTriggerTimetable("0 8 * * *", timezone="UTC"),
    start_date=datetime(2026, 9, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["msp", "monitoring", "deadline"],
    doc_md=__doc__,
    params={
        "ds": date_param(),
        "grace_minutes": Param(15, type="integer", minimum=0, maximum=25, description="Keep looking this long."),
    },
)
def marketing_watchdog() -> None:
    @task
    def check_assignments_published(**context) -> int:
        """Rows of tonight's assignments in the warehouse; fails (and alerts) when there are none in time."""
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.monitoring.deadline import DeadlineMissed, wait_published
        from jobs.pipeline.lake import check_ds
        from jobs.pipeline.tasks import partition_date
        from jobs.settings import get_settings

        grace = 60.0 * float(context["params"].get("grace_minutes") or 0)
        try:
            return wait_published(get_settings(), check_ds(partition_date(context)), grace)
        except DeadlineMissed as exc:
            raise AirflowFailException(str(exc)) from exc

    check_assignments_published()


marketing_watchdog()
