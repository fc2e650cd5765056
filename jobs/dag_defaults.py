"""What every DAG of the platform shares: owner, failure alert, retries with back-off, the run-date param.

Imported by the DAG files at parse time, so it stays light: Airflow's SDK and :mod:`jobs.alerts` only.
"""

from __future__ import annotations

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
