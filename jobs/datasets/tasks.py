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
    """``msp import campaign-log [FILE] --mapping MAPPING`` (or ``msp import orders`` for a mapping with
    ``kind: orders``) into the data set's landing root."""
    from jobs.datasets.data import dataset_root
    from jobs.imports.campaign_log import import_campaign_log, load_mapping, resolve_mapping
    from jobs.imports.orders import import_orders, is_orders_mapping, load_orders_mapping

    path = resolve_mapping(mapping)
    if is_orders_mapping(path):
        orders_spec = load_orders_mapping(path)
        if orders_spec.dataset != dataset:
            raise ValueError(f"mapping {mapping!r} imports the data set {orders_spec.dataset!r}, not {dataset!r}")
        if not file:
            raise ValueError(f"mapping {mapping!r} is an order history: give the file of orders")
        result: Any = import_orders(Path(file), orders_spec, dataset_root(get_settings(), dataset))
    else:
        spec = load_mapping(path)
        if spec.dataset != dataset:
            raise ValueError(f"mapping {mapping!r} imports the data set {spec.dataset!r}, not {dataset!r}")
        result = import_campaign_log(Path(file) if file else None, spec, dataset_root(get_settings(), dataset))
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}


def train_task(dataset: str, ds: str | None, tune: bool | None = None) -> dict[str, Any]:
    """A campaign data set's uplift models, or an order history's repeat and value models."""
    from jobs.datasets.orders import is_orders_dataset, train_orders
    from jobs.datasets.train import train_dataset

    settings = get_settings()
    if is_orders_dataset(settings, dataset):
        return train_orders(settings, dataset, ds)
    return train_dataset(settings, dataset, ds, tune=tune)


def score_task(dataset: str, ds: str | None, file: str | None = None) -> dict[str, Any]:
    from jobs.datasets.orders import is_orders_dataset, score_orders
    from jobs.datasets.score import score_dataset

    settings = get_settings()
    if is_orders_dataset(settings, dataset):
        if file:
            raise ValueError(f"data set {dataset!r} is an order history: it scores its own customers, not a file")
        return score_orders(settings, dataset, ds)
    return score_dataset(settings, dataset, ds, Path(file) if file else None)


def evaluate_task(dataset: str, ds: str | None) -> dict[str, Any]:
    from jobs.datasets.orders import evaluate_orders, is_orders_dataset
    from jobs.datasets.score import evaluate_dataset

    settings = get_settings()
    if is_orders_dataset(settings, dataset):
        return evaluate_orders(settings, dataset, ds)
    return evaluate_dataset(settings, dataset, ds)
