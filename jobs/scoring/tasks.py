"""Task bodies of ``marketing_score`` (also used by the CLI): thin wrappers over jobs.scoring."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from jobs.settings import get_settings
from jobs.training.tasks import fail_on_data_errors

log = logging.getLogger(__name__)


def features_for(ds: str, rebuild: bool = False) -> dict[str, int]:
    """gold/features for the run date only; reused when training built it from the same silver (see
    :func:`jobs.features.build.features_fresh`), unless ``rebuild``."""
    from jobs.features.build import build_features, features_fresh
    from jobs.spark import get_spark

    settings = get_settings()
    if not rebuild and (rows := features_fresh(settings, ds)) is not None:
        log.info("gold/features/ds=%s is newer than silver and the feature code: reused (%d rows)", ds, rows)
        return {ds: rows}
    return fail_on_data_errors(build_features, get_spark(settings, "msp-features"), settings, [ds])


def score_task(ds: str) -> dict[str, Any]:
    from jobs.scoring.score import score
    from jobs.spark import get_spark

    settings = get_settings()
    result = fail_on_data_errors(score, get_spark(settings, "msp-score", settings.scoring_driver_memory), settings, ds)
    out = asdict(result)
    log.info("strategy mix %s", out["mix"])
    return out


def publish_task(ds: str) -> dict[str, int]:
    """Publish the run to the warehouse, then audit it for disparities between customer groups."""
    from jobs.scoring.fairness import audit_run
    from jobs.scoring.score import publish
    from jobs.spark import get_spark

    settings = get_settings()
    spark = get_spark(settings, "msp-publish", settings.scoring_driver_memory)
    out = fail_on_data_errors(publish, spark, settings, ds)
    reports = fail_on_data_errors(audit_run, spark, settings, ds)
    out["fairness_alerts"] = sum(len(r.alerts) for r in reports)
    return out


def drift_task(ds: str) -> dict[str, Any]:
    """PSI of tonight's population and scores against the champion's training date (recorded; alerts)."""
    from jobs.monitoring.population import scoring_drift
    from jobs.spark import get_spark

    settings = get_settings()
    result = fail_on_data_errors(scoring_drift, get_spark(settings, "msp-drift"), settings, ds)
    return {"reference_date": result.reference_date, "alerted": result.alerted, "worst": result.worst()}


def quality_gate_task(ds: str) -> dict[str, str]:
    """Fail at once (no retry can fix data) when a critical data check of the inputs failed."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.quality.scoring_gate import check_scoring_inputs
    from jobs.quality.validate import QualityError

    try:
        return check_scoring_inputs(get_settings(), ds)
    except QualityError as exc:
        raise AirflowFailException(str(exc)) from exc
