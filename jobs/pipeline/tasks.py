"""The bodies of the Airflow tasks: thin wrappers that map domain errors to Airflow's semantics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


def partition_date(context: dict[str, Any]) -> str:
    """``params.ds``, else the date the triggering asset events carry, else the logical date, else today.

    An asset-triggered run (train after ingest, score after a promotion) has no logical date: it
    takes the latest ``ds`` its upstream tasks stamped on their events (:func:`stamp_outlets`).
    """
    param = (context.get("params") or {}).get("ds")
    if param:
        return str(param)
    if triggered := triggering_ds(context):
        log.info("run date %s from the triggering asset events", triggered)
        return triggered
    logical = context.get("logical_date")
    if logical is not None:
        return logical.date().isoformat()
    today = datetime.now(UTC).date().isoformat()
    log.warning("run has no logical date and no ds param: using today, %s", today)
    return today


def triggering_ds(context: dict[str, Any]) -> str | None:
    """The latest ``ds`` in the extras of the run's triggering asset events (None when there is none)."""
    events = context.get("triggering_asset_events") or {}
    dates = [
        str(event.extra["ds"])
        for asset in events
        for event in events[asset]
        if isinstance(getattr(event, "extra", None), dict) and event.extra.get("ds")
    ]
    return max(dates) if dates else None


def stamp_outlets(context: dict[str, Any], ds: str, **extra: Any) -> None:
    """Put the run date (and ``extra``) on every asset event the task emits; downstream DAGs read it."""
    events = context.get("outlet_events")
    task = context.get("task")
    if events is None or task is None:
        return
    for outlet in getattr(task, "outlets", None) or []:
        events[outlet].extra = {"ds": ds, **extra}


def pull_sources(dates: dict[str, str]) -> dict[str, Any]:
    """Pull the tables listed in ``MSP_HTTP_TABLES`` from the REST API for every date of the run.

    A no-op when none are configured. Transient API failures raise (Airflow retries the task; the
    pull resumes from its checkpoint); pages land next to file exports and ingest reads both.
    """
    from jobs.pipeline.lake import ds_range
    from jobs.settings import get_settings
    from jobs.sources.http import HttpSourceConfig, pull

    settings = get_settings()
    if not settings.http_tables:
        log.info("no REST tables configured (MSP_HTTP_TABLES): nothing to pull")
        return {}
    config = HttpSourceConfig.from_settings(settings)
    pulled: dict[str, Any] = {}
    for table in settings.http_tables:
        for ds in ds_range(dates["ds"], dates["since"]):
            result = pull(table, ds, settings.landing, config)
            pulled.setdefault(table, {})[ds] = {"pages": result.total_pages, "records": result.total_records}
            log.info("pulled %s ds=%s: %d pages, %d records", table, ds, result.total_pages, result.total_records)
    return pulled


def run_step(step: str, table: str, dates: dict[str, str]) -> dict[str, Any]:
    """Run ``ingest`` or ``clean`` for a table; data errors fail at once (retrying cannot fix data)."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline.lake import PipelineError
    from jobs.pipeline.run import clean_step, ingest_step
    from jobs.quality.validate import QualityError
    from jobs.settings import get_settings

    settings = get_settings()
    fn = ingest_step if step == "ingest" else clean_step
    try:
        return fn(settings, table, dates["ds"], dates["since"])
    except (PipelineError, QualityError) as exc:
        raise AirflowFailException(str(exc)) from exc


def summarise(dates: dict[str, str]) -> dict[str, Any]:
    from jobs.pipeline.run import layer_counts, quarantine_reasons
    from jobs.quality.validate import docs_index
    from jobs.settings import get_settings

    settings = get_settings()
    counts = layer_counts(settings, dates["ds"], dates["since"])
    reasons = {t: dict(c) for t, c in quarantine_reasons(settings, dates["ds"], dates["since"]).items()}
    log.info("rows per layer %s..%s: %s", dates["since"], dates["ds"], counts)
    log.info("quarantine reasons: %s", reasons)
    return {"counts": counts, "quarantine": reasons, "data_docs": str(docs_index(settings))}
