"""The nightly chain's deadline: tonight's assignments must be in the warehouse by a set time.

``marketing_watchdog`` runs this check on its own schedule, independently of the chain it watches: a
chain that is late, stuck, failed or never started all look the same from here (no rows for the run
date), and the check needs nothing but the warehouse. Airflow 3's own DAG-level deadline alerts
(``DeadlineAlert``) were the first choice; on Airflow 3.3.2 a DAG that declares one cannot be run with
``airflow dags test`` (``DagRun.update_state`` looks the alert up by a serialized dict instead of its id
and raises ``AttributeError: 'dict' object has no attribute 'hex'``), which the demo and the end-to-end
tests rely on.
"""

from __future__ import annotations

import logging
from datetime import date

from jobs.settings import Settings

log = logging.getLogger(__name__)


class DeadlineMissed(RuntimeError):
    """The run date's output is not where the business needs it."""


def check_published(settings: Settings, ds: str, table: str = "strategy_assignments") -> int:
    """Rows of run date ``ds`` in ``marketing.<table>``; raise :class:`DeadlineMissed` when there are none."""
    from jobs.settings import require_identifier
    from jobs.warehouse import Warehouse

    require_identifier(table, "table ")
    day = date.fromisoformat(ds)
    wh = Warehouse.from_settings(settings)
    wh.migrate()
    schema = settings.warehouse_schema
    found = wh.query(
        f"SELECT count(*) AS n, (SELECT max(run_date) FROM {schema}.{table}) AS latest "
        f"FROM {schema}.{table} WHERE run_date = DATE '{day.isoformat()}'"
    )
    rows, latest = int(found["n"].iloc[0]), found["latest"].iloc[0]
    if rows == 0:
        latest_text = str(latest)[:10] if latest is not None and str(latest) not in {"NaT", "None"} else "none"
        raise DeadlineMissed(
            f"deadline missed: no {schema}.{table} rows for run date {ds} (latest run date present: {latest_text}); "
            "check marketing_ingest, marketing_train and marketing_score for this date"
        )
    log.info("%s.%s has %d rows for %s: the nightly chain made its deadline", schema, table, rows, ds)
    return rows


def wait_published(settings: Settings, ds: str, grace_s: float, every_s: float = 60.0) -> int:
    """:func:`check_published`, looking again every ``every_s`` seconds for up to ``grace_s`` seconds."""
    import time

    give_up = time.monotonic() + grace_s
    while True:
        try:
            return check_published(settings, ds)
        except DeadlineMissed:
            left = give_up - time.monotonic()
            if left <= 0:
                raise
            log.warning("no assignments for %s yet: looking again in %.0f s", ds, min(every_s, left))
            time.sleep(min(every_s, left))
