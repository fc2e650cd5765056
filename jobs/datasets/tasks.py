"""Task bodies of ``marketing_dataset`` (also what ``msp train|score|evaluate --dataset`` run)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jobs.settings import get_settings

log = logging.getLogger(__name__)


def fail_on_dataset_errors(fn, *args, **kwargs):
    """A data set that cannot be imported, trained or scored fails at once: a retry cannot fix it."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.imports.campaign_log import CampaignImportError

    try:
        return fn(*args, **kwargs)
    except (CampaignImportError, ValueError) as exc:  # DatasetError is a ValueError
        raise AirflowFailException(str(exc)) from exc


def import_task(file: str | None, mapping: str, dataset: str) -> dict[str, Any]:
    """``msp import campaign-log [FILE] --mapping MAPPING`` into the data set's landing root."""
    from jobs.datasets.data import dataset_root
    from jobs.imports.campaign_log import import_campaign_log, load_mapping, resolve_mapping

    spec = load_mapping(resolve_mapping(mapping))
    if spec.dataset != dataset:
        raise ValueError(f"mapping {mapping!r} imports the data set {spec.dataset!r}, not {dataset!r}")
    result = import_campaign_log(Path(file) if file else None, spec, dataset_root(get_settings(), dataset))
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}


def train_task(dataset: str, ds: str | None, tune: bool | None = None) -> dict[str, Any]:
    from jobs.datasets.train import train_dataset

    return train_dataset(get_settings(), dataset, ds, tune=tune)


def score_task(dataset: str, ds: str | None, file: str | None = None) -> dict[str, Any]:
    from jobs.datasets.score import score_dataset

    return score_dataset(get_settings(), dataset, ds, Path(file) if file else None)


def evaluate_task(dataset: str, ds: str | None) -> dict[str, Any]:
    from jobs.datasets.score import evaluate_dataset

    return evaluate_dataset(get_settings(), dataset, ds)
