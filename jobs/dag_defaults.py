"""What every DAG of the platform shares: owner, failure alert, retries with back-off, the run-date param.

Imported by the DAG files at parse time, so it stays light: Airflow's SDK and :mod:`jobs.alerts`; the
Spark provider and the settings only in spark-submit mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jobs.alerts import task_failure_alert


def dag_default_args(
    owner: str = "data-eng",
    *,
    retries: int = 2,
    retry_delay: timedelta = timedelta(minutes=1),
    execution_timeout: timedelta = timedelta(hours=1),
    **extra: Any,
) -> dict[str, Any]:
    """``default_args`` of a DAG: every task alerts on failure (log + ``MSP_ALERT_WEBHOOK_URL``) and retries."""
    return {
        "owner": owner,
        "on_failure_callback": task_failure_alert,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "execution_timeout": execution_timeout,
        **extra,
    }


def date_param(description: str = "Run date (YYYY-MM-DD).") -> Any:
    """The ``ds`` param: a date, or null for the logical date (or today)."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], format="date", description=description)


#: what pydantic reads as true for a bool setting (``Settings.spark_submit``); the unit tests hold them equal
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


def spark_submit_mode() -> bool:
    """``Settings.spark_submit`` (``MSP_SPARK_SUBMIT``), read without importing the settings module.

    DAG files call this at parse time; importing pydantic-settings there would add ~0.1 s to every parse.
    """
    return os.environ.get("MSP_SPARK_SUBMIT", "").strip().lower() in _TRUE


def cron_schedules() -> bool:
    """``Settings.schedule_mode == "cron"`` (``MSP_SCHEDULE_MODE``), read without importing the settings."""
    return os.environ.get("MSP_SCHEDULE_MODE", "cron").strip().lower() != "assets"


def schedule(cron: str, assets: Any = None) -> Any:
    """A DAG's schedule: its nightly time (UTC) or its assets, whichever comes first.

    With ``MSP_SCHEDULE_MODE=assets`` the times are dropped: ``marketing_ingest`` runs only when
    triggered (REST API, CLI, an upstream system) and the other DAGs follow its asset events.
    """
    from airflow.timetables.trigger import CronTriggerTimetable

    if not cron_schedules():
        return assets
    timetable = CronTriggerTimetable(cron, timezone="UTC")
    if assets is None:
        return timetable
    from airflow.timetables.assets import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=timetable, assets=assets)


def spark_step(embedded: Callable[[], Any], *, task_id: str, step: str, **op_kwargs: Any) -> Any:
    """A Spark step's task: ``MspSparkSubmitOperator`` when ``MSP_SPARK_SUBMIT`` is on, else ``embedded()``.

    ``embedded`` builds the in-process ``@task``; ``op_kwargs`` go to the operator (``ds``, ``since``,
    ``table``, ``rebuild``: templated; ``outlets``, ...). See :mod:`jobs.operators`.
    """
    if not spark_submit_mode():
        return embedded()
    from jobs.operators import MspSparkSubmitOperator

    return MspSparkSubmitOperator(task_id=task_id, step=step, **op_kwargs)
