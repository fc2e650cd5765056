"""Score and evaluate an imported data set with its ``@champion`` (``msp score|evaluate --dataset NAME``).

**Scoring** takes a file of customers with the data set's features (a new export; ids as the
mapping says) or, without one, the data set's held-out part; prices every strategy with the model
and the mapping's economics, applies the spending rule (:func:`jobs.datasets.train.decide`) and
replaces ``(dataset, run_date)`` in ``marketing.dataset_assignments`` (one row per customer) and
``marketing.dataset_forecast`` (one row per strategy), each atomically.

**Evaluation** values the champion on the held-out part (rows the model never fit): Qini, AUUC and
uplift@k per arm, the policy's IPS / SNIPS / DR value with bootstrap intervals against each single
strategy, and the targeted customers' incremental response rate and net incremental revenue;
replaces the run date's rows of that model version in ``marketing.model_metrics``
(``source = 'dataset:<name>'``).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jobs.datasets.data import DatasetError, load_frame, load_info, read_customers
from jobs.datasets.policy import incremental_value
from jobs.datasets.train import champion, decide, held_out_report, predictions, registered_name, today
from jobs.settings import Settings

log = logging.getLogger(__name__)


def _champion(settings: Settings, dataset: str) -> tuple[Any, str]:
    from jobs.training.train import configure_mlflow

    configure_mlflow(settings)
    found = champion(settings, dataset)
    if found is None:
        raise DatasetError(
            f"data set {dataset!r} has no @champion in {registered_name(settings, dataset)}: "
            f"run `msp train --dataset {dataset}` first"
        )
    return found


def score_dataset(settings: Settings, dataset: str, ds: str | None = None, file: Path | None = None) -> dict[str, Any]:
    """Assignments and forecast of the customers in ``file`` (default: the held-out part) in the warehouse."""
    import numpy as np
    import pandas as pd

    from jobs.warehouse import Warehouse

    ds = ds or today()
    info = load_info(settings, dataset)
    if file is not None:
        customers = read_customers(info, Path(file))
    else:
        frame = load_frame(info, settings.holdout_share)
        customers = frame[frame["split"] == "test"].reset_index(drop=True)
    model, version = _champion(settings, dataset)
    conv, rev = predictions(model, customers, info.strategies)
    gain = incremental_value(conv, rev, info.economics)
    actions = decide(gain, info)
    cost = np.asarray(info.costs())
    rows = np.arange(len(actions))
    name = registered_name(settings, dataset)
    now = datetime.now(UTC).replace(tzinfo=None)
    run_date = date.fromisoformat(ds)
    assignments = pd.DataFrame(
        {
            "dataset": dataset,
            "run_date": run_date,
            "customer_id": customers["customer_id"].astype(str).to_numpy(),
            "strategy": np.asarray(info.strategies, dtype=object)[actions],
            "p_convert_chosen": conv[rows, actions],
            "p_convert_control": conv[:, 0],
            "expected_incremental_value": gain[rows, actions],
            "expected_cost": cost[actions],
            "expected_incremental_profit": gain[rows, actions] - cost[actions],
            "model_name": name,
            "model_version": version,
            "scored_at": now,
        }
    )
    forecast = (
        assignments.assign(incremental=assignments["p_convert_chosen"] - assignments["p_convert_control"])
        .groupby("strategy", as_index=False)
        .agg(
            customers=("customer_id", "size"),
            expected_incremental_conversions=("incremental", "sum"),
            expected_incremental_value=("expected_incremental_value", "sum"),
            expected_cost=("expected_cost", "sum"),
            expected_incremental_profit=("expected_incremental_profit", "sum"),
        )
        .assign(dataset=dataset, run_date=run_date, model_name=name, model_version=version, created_at=now)
    )
    warehouse = Warehouse.from_settings(settings)
    where = {"dataset": dataset, "run_date": run_date}
    warehouse.replace("dataset_assignments", where, assignments)
    warehouse.replace("dataset_forecast", where, forecast)
    mix = assignments["strategy"].value_counts().to_dict()
    log.info("data set %s, %s: %d customers scored by %s v%s: %s", dataset, ds, len(assignments), name, version, mix)
    return {
        "dataset": dataset,
        "run_date": ds,
        "customers": len(assignments),
        "mix": {s: int(mix.get(s, 0)) for s in info.strategies},
        "expected_incremental_profit": float(assignments["expected_incremental_profit"].sum()),
        "expected_cost": float(assignments["expected_cost"].sum()),
        "model_name": name,
        "model_version": version,
    }


def write_metrics(settings: Settings, dataset: str, ds: str, version: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The finite ``metrics`` of the data set's model ``version`` replace its run date's rows in model_metrics."""
    import pandas as pd

    from jobs.warehouse import Warehouse

    finite = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    name = registered_name(settings, dataset)
    run_date = date.fromisoformat(ds)
    rows = pd.DataFrame(
        {
            "run_date": run_date,
            "model_name": name,
            "model_version": version,
            "metric": list(finite),
            "value": list(finite.values()),
            "segment": "all",
            "source": f"dataset:{dataset}",
            "recorded_at": datetime.now(UTC).replace(tzinfo=None),
        }
    )
    Warehouse.from_settings(settings).replace(
        "model_metrics", {"run_date": run_date, "model_name": name, "model_version": version}, rows
    )
    return finite


def evaluate_dataset(settings: Settings, dataset: str, ds: str | None = None) -> dict[str, Any]:
    """The champion's held-out figures, replaced in ``model_metrics`` for the run date; returns them."""
    ds = ds or today()
    info = load_info(settings, dataset)
    frame = load_frame(info, settings.holdout_share)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    model, version = _champion(settings, dataset)
    conv, rev = predictions(model, test, info.strategies)
    metrics, _ = held_out_report(conv, rev, test, info, settings.bootstrap_samples, figures=False)
    metrics["test_rows"] = float(len(test))
    finite = write_metrics(settings, dataset, ds, version, metrics)
    name = registered_name(settings, dataset)
    log.info(
        "data set %s: champion v%s on %d held-out rows: profit/customer %.4f [%.4f, %.4f], best single %.4f",
        dataset,
        version,
        len(test),
        finite.get("policy_profit_ips", math.nan),
        finite.get("policy_profit_ips_lo", math.nan),
        finite.get("policy_profit_ips_hi", math.nan),
        finite.get("best_single_profit_ips", math.nan),
    )
    return {"dataset": dataset, "run_date": ds, "model_name": name, "model_version": version, "metrics": finite}
