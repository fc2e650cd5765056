"""Task bodies of ``marketing_train``: thin wrappers over the training modules for Airflow and the CLI."""

from __future__ import annotations

import json
import logging
from typing import Any

from jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)


def fail_on_data_errors(fn, *args, **kwargs):
    """Data problems (missing inputs, empty training sets) fail at once: a retry cannot fix them."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline.lake import PipelineError

    try:
        return fn(*args, **kwargs)
    except (PipelineError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc


def features_step(settings: Settings, ds: str, dates: list[str] | None = None) -> dict[str, int]:
    """gold/features for every campaign send date up to ``ds`` and for ``ds`` itself."""
    from jobs.features.build import build_features, feature_dates
    from jobs.spark import get_spark

    spark = get_spark(settings, "msp-features")
    return build_features(spark, settings, dates or feature_dates(spark, settings, ds))


def training_set_step(settings: Settings, ds: str) -> dict[str, int]:
    """gold/training_set (campaign outcomes x features) and gold/order_set (every order x features) of ``ds``."""
    from jobs.spark import get_spark
    from jobs.training.dataset import build_order_set, build_training_set

    spark = get_spark(settings, "msp-training-set")
    counts = build_training_set(spark, settings, ds)
    return {**counts, "orders": build_order_set(spark, settings, ds)}


def parse_params(value: Any) -> dict[str, Any]:
    """Model parameter overrides from a DAG param or CLI option (a dict or a JSON object string)."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, dict):
        return dict(value)
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"model parameter overrides must be a JSON object, got {value!r}")
    return parsed


def build_features_task(ds: str) -> dict[str, int]:
    return fail_on_data_errors(features_step, get_settings(), ds)


def build_training_set_task(ds: str) -> dict[str, int]:
    return fail_on_data_errors(training_set_step, get_settings(), ds)


def train_task(kind: str, ds: str, params: Any = None, tune: bool | None = None) -> dict[str, Any]:
    """Fit one family; skipped (not failed) when ``MSP_MODEL_FAMILIES`` leaves it out."""
    from jobs.training.train import train, train_fusion

    settings = get_settings()
    if kind not in settings.model_families:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"{kind} is not in MSP_MODEL_FAMILIES={settings.model_families}")
    if kind == "fusion":
        return fail_on_data_errors(train_fusion, settings, ds)
    return fail_on_data_errors(train, settings, kind, ds, parse_params(params), tune)


def promote_task(ds: str) -> dict[str, Any]:
    from jobs.training.registry import evaluate_and_promote

    return fail_on_data_errors(evaluate_and_promote, get_settings(), ds)
