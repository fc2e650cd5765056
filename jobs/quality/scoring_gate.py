"""The data-quality gate of scoring: a failed critical check in the data tonight's features read blocks the run.

Cleaning already refuses to write silver when a critical expectation fails, but the silver of the
day before is still there, so scoring would quietly run on stale data. This gate reads
``marketing.data_quality``: for every silver table, the latest check of a run date up to the
scoring date (a check is dated by the last day of the range it cleaned). If that check has a failed
critical expectation, scoring stops with an error naming the table, the expectation and the date;
a table never checked is logged as a warning (data loaded without the gate, e.g. an import).
"""

from __future__ import annotations

import logging
from datetime import date

from jobs.contracts import ORDER
from jobs.quality.suites import CRITICAL
from jobs.quality.validate import QualityError
from jobs.settings import Settings

log = logging.getLogger(__name__)


def check_scoring_inputs(settings: Settings, ds: str) -> dict[str, str]:
    """Raise :class:`QualityError` if the latest check up to ``ds`` of any silver table failed critically.

    Returns, per table, the run date of the check that was read ("unchecked" when there is none).
    """
    from jobs.warehouse import Warehouse

    day = date.fromisoformat(ds)
    wh = Warehouse.from_settings(settings)
    wh.migrate()
    schema = settings.warehouse_schema
    rows = wh.query(
        f"SELECT q.table_name, q.run_date, q.expectation, q.column_name, q.severity, q.success, "
        f"q.unexpected_count, q.element_count FROM {schema}.data_quality AS q "
        f"JOIN (SELECT table_name, max(run_date) AS run_date FROM {schema}.data_quality "
        f"WHERE run_date <= DATE '{day.isoformat()}' GROUP BY table_name) AS latest "
        "ON q.table_name = latest.table_name AND q.run_date = latest.run_date"
    )
    checked = {str(t): str(d)[:10] for t, d in zip(rows["table_name"], rows["run_date"], strict=True)}
    failed = rows[(rows["severity"] == CRITICAL) & ~rows["success"].astype(bool)]
    if len(failed):
        problems = "; ".join(
            f"silver.{r.table_name} checked on {str(r.run_date)[:10]}: {r.expectation}"
            f"{f' on {r.column_name}' if r.column_name else ''} failed ({r.unexpected_count} of {r.element_count})"
            for r in failed.itertuples()
        )
        raise QualityError(f"scoring {ds} is blocked by failed critical data checks: {problems}")
    for table in ORDER:
        if table not in checked:
            log.warning("silver.%s has no data-quality check up to %s: scoring reads it unchecked", table, ds)
    return {table: checked.get(table, "unchecked") for table in ORDER}
