"""A shop that only has orders: RFM features, a repeat-purchase propensity and value-based targeting.

``msp import orders FILE --mapping M`` lands one row per order (:mod:`jobs.imports.orders`); there
are no events, no campaigns and no customer attributes, so no strategy's *effect* can be learned.
What can be learned from orders alone, point in time:

- **features** (:func:`rfm_features`) at a cutoff, from the orders before it: recency, frequency,
  monetary value, tenure, average order value, mean days between orders, items per order, and the
  orders and spend of the last 30 / 90 / 365 days;
- **labels** (:func:`next_period`) from the ``horizon_days`` after the cutoff: whether the customer
  orders again, and what they spend.

Training (:func:`train_orders`) puts the cutoff ``horizon_days`` before the day after the last
order, fits an XGBoost repeat-purchase classifier and an XGBoost (Tweedie) next-period value
regressor on the fit customers (a stable hash of the id), and judges them on the held-out ones
against the classic RFM score in the same run: AUC of the repeat propensity and the share of the
next period's spend captured by the top 20 % (``value_capture_at_20``), the gate metric. Both
models are one MLflow pyfunc, a version of ``<prefix>_ds_<name>`` with ``@challenger`` /
``@champion`` as for campaign data sets. Scoring (:func:`score_orders`) computes the features at
the day after the last order, predicts, and contacts the customers of highest expected value by the
mapping's ``targeting`` rule: ``marketing.dataset_customer_value`` (one row per customer) and
``marketing.dataset_assignments`` (the contact strategy or no_action; the incremental columns are
null: without an experiment no effect is estimated).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.datasets.data import DatasetError, dataset_root, hashed_split
from jobs.imports.campaign_log import MANIFEST
from jobs.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from jobs.imports.orders import OrdersMapping

log = logging.getLogger(__name__)

FEATURES = (
    "recency_days",
    "tenure_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "mean_gap_days",
    "items_per_order",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "amount_90d",
    "amount_365d",
)
GATE_METRIC = "value_capture_at_20"
TOP_SHARE = 0.2
#: days of history a training cutoff needs before it, beyond the horizon
MIN_HISTORY_DAYS = 30


def is_orders_dataset(settings: Settings, name: str) -> bool:
    """Whether the imported data set ``name`` is an order history (``msp import orders``)."""
    manifest = dataset_root(settings, name) / MANIFEST
    if not manifest.is_file():
        return False
    return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == "orders"


def load_orders(settings: Settings, name: str) -> tuple[OrdersMapping, pd.DataFrame, dict[str, Any]]:
    """(the mapping, one row per order, the manifest) of an imported order history."""
    import pandas as pd

    from jobs.imports.orders import OrdersMapping

    root = dataset_root(settings, name)
    manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    path = root / "orders" / "orders.parquet"
    if not path.is_file():
        raise DatasetError(f"data set {name!r}: {path} is missing: run `msp import orders FILE --mapping M` again")
    missing = [table for table, present in manifest.get("tables", {}).items() if not present]
    if missing:
        log.info("data set %s has orders only; absent (not needed here): %s", name, ", ".join(missing))
    orders = pd.read_parquet(path)
    orders["ts"] = pd.to_datetime(orders["ts"])
    return OrdersMapping.model_validate(manifest["mapping"]), orders, manifest


def rfm_features(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per customer with an order before ``as_of``: :data:`FEATURES` from those orders only (index customer_id)."""
    import numpy as np
    import pandas as pd

    past = orders[orders["ts"] < as_of]
    g = past.groupby("customer_id")
    first, last, count = g["ts"].min(), g["ts"].max(), g.size()
    day = pd.Timedelta(days=1)

    def window(days: int, column: str | None) -> pd.Series:
        recent = past[past["ts"] >= as_of - pd.Timedelta(days=days)].groupby("customer_id")
        values = recent.size() if column is None else recent[column].sum()
        return values.reindex(count.index, fill_value=0).astype("float64")

    monetary = g["amount"].sum()
    quantity = g["quantity"].sum(min_count=1)
    out = pd.DataFrame(
        {
            "recency_days": (as_of - last) / day,
            "tenure_days": (as_of - first) / day,
            "frequency": count.astype("float64"),
            "monetary": monetary,
            "avg_order_value": monetary / count,
            "mean_gap_days": ((last - first) / day / (count - 1)).where(count > 1, np.nan),
            "items_per_order": quantity / count,
            "orders_30d": window(30, None),
            "orders_90d": window(90, None),
            "orders_365d": window(365, None),
            "amount_90d": window(90, "amount"),
            "amount_365d": window(365, "amount"),
        }
    )
    return out[list(FEATURES)].astype("float64")


def next_period(orders: pd.DataFrame, start: pd.Timestamp, days: int) -> pd.DataFrame:
    """Per customer ordering in ``[start, start + days)``: ``repeat`` (1) and ``value`` (their spend)."""
    import pandas as pd

    end = start + pd.Timedelta(days=days)
    window = orders[(orders["ts"] >= start) & (orders["ts"] < end)]
    value = window.groupby("customer_id")["amount"].sum()
    return value.to_frame("value").assign(repeat=1)


def rfm_score(features: pd.DataFrame) -> np.ndarray:
    """The classic RFM score, the baseline: recency, frequency and monetary quintiles summed (3 to 15)."""
    import numpy as np

    def quintile(values: pd.Series, ascending: bool) -> np.ndarray:
        ranks = values.rank(method="average", ascending=ascending, pct=True).to_numpy()
        return np.ceil(ranks * 5).clip(1, 5)

    return (
        quintile(features["recency_days"], ascending=False)  # recent is better
        + quintile(features["frequency"], ascending=True)
        + quintile(features["monetary"], ascending=True)
    )


def training_frame(orders: pd.DataFrame, horizon_days: int, name: str) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Features at ``cutoff`` = (day after the last order) - horizon, labels from the horizon after it."""
    import pandas as pd

    end = orders["ts"].max().normalize() + pd.Timedelta(days=1)
    cutoff = end - pd.Timedelta(days=horizon_days)
    span = (end - orders["ts"].min().normalize()).days
    if (cutoff - orders["ts"].min()).days < MIN_HISTORY_DAYS:
        raise DatasetError(
            f"data set {name!r}: the orders span {span} days; a {horizon_days}-day horizon needs at least "
            f"{horizon_days + MIN_HISTORY_DAYS} (lower targeting.horizon_days in the mapping)"
        )
    features = rfm_features(orders, cutoff)
    labels = next_period(orders, cutoff, horizon_days).reindex(features.index)
    frame = features.assign(
        repeat=labels["repeat"].fillna(0).astype("int64"), value=labels["value"].fillna(0.0).astype("float64")
    )
    return frame, cutoff


def value_capture(value: np.ndarray, score: np.ndarray, share: float = TOP_SHARE) -> float:
    """Share of the total ``value`` that the top ``share`` of customers by ``score`` hold (ties by order)."""
    import numpy as np

    total = float(np.sum(value))
    if total <= 0:
        return math.nan
    k = max(1, round(share * len(value)))
    top = np.argsort(-np.asarray(score, dtype="float64"), kind="stable")[:k]
    return float(np.sum(np.asarray(value)[top]) / total)


def held_out_metrics(frame: pd.DataFrame, p_repeat: np.ndarray, expected_value: np.ndarray) -> dict[str, float]:
    """The model against the RFM score and past spend on the same held-out customers."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    repeat, value = frame["repeat"].to_numpy(), frame["value"].to_numpy()
    baseline = rfm_score(frame)
    both = len(np.unique(repeat)) == 2
    out = {
        "repeat_auc": float(roc_auc_score(repeat, p_repeat)) if both else math.nan,
        "repeat_auc_rfm": float(roc_auc_score(repeat, baseline)) if both else math.nan,
        GATE_METRIC: value_capture(value, expected_value),
        f"{GATE_METRIC}_rfm": value_capture(value, baseline + 1e-6 * frame["monetary"].to_numpy()),
        f"{GATE_METRIC}_past_spend": value_capture(value, frame["monetary"].to_numpy()),
        "repeat_rate": float(np.mean(repeat)),
        "predicted_repeat_rate": float(np.mean(p_repeat)),
        "value_per_customer": float(np.mean(value)),
        "predicted_value_per_customer": float(np.mean(expected_value)),
        "test_rows": float(len(frame)),
    }
    return out


#: the RFM priors as monotone constraints: more recent, more frequent -> no less likely to order again
MONOTONE = {"recency_days": -1, "frequency": 1, "orders_30d": 1, "orders_90d": 1, "orders_365d": 1}


class OrderValueModel:
    """The repeat-purchase classifier and the next-period value regressor (XGBoost), on :data:`FEATURES`.

    Shallow trees under the RFM priors (:data:`MONOTONE`), each stopped early on a ``validation`` share
    of the fit customers: an order history of a few thousand customers overfits deeper, longer boosting
    (on the simulator's 3,300-customer history, 300 rounds of depth 4 ranked repeaters below the RFM score).
    """

    def __init__(
        self,
        max_rounds: int = 1000,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 20.0,
        validation: float = 0.2,
        seed: int = 0,
    ):
        self.max_rounds = max_rounds
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.validation = validation
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.max_rounds,
            "learning_rate": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "monotone_constraints": MONOTONE,
            "tree_method": "hist",
            "random_state": self.seed,
            "n_jobs": 2,
            "early_stopping_rounds": 30,
        }

    def fit(self, X: pd.DataFrame, repeat: np.ndarray, value: np.ndarray) -> OrderValueModel:
        import numpy as np
        from xgboost import XGBClassifier, XGBRegressor

        rows = X[list(FEATURES)]
        held = np.random.default_rng(self.seed).random(len(rows)) < self.validation
        repeat, value = np.asarray(repeat), np.asarray(value, dtype="float64")

        def fitted(model: Any, y: np.ndarray) -> Any:
            return model.fit(rows[~held], y[~held], eval_set=[(rows[held], y[held])], verbose=False)

        self.repeat_ = fitted(XGBClassifier(objective="binary:logistic", **self.params()), repeat)
        self.value_ = fitted(XGBRegressor(objective="reg:tweedie", **self.params()), value)
        self.rounds_ = {"repeat": self.repeat_.best_iteration + 1, "value": self.value_.best_iteration + 1}
        return self

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(P(orders again within the horizon), expected spend within the horizon)."""
        rows = X[list(FEATURES)]
        return self.repeat_.predict_proba(rows)[:, 1], self.value_.predict(rows).astype("float64")

    def save(self, folder: Path) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"repeat": folder / "repeat.json", "value": folder / "value.json"}
        self.repeat_.save_model(paths["repeat"])
        self.value_.save_model(paths["value"])
        return {k: str(v) for k, v in paths.items()}

    @classmethod
    def load(cls, repeat: str, value: str) -> OrderValueModel:
        from xgboost import XGBClassifier, XGBRegressor

        model = cls()
        model.repeat_, model.value_ = XGBClassifier(), XGBRegressor()
        model.repeat_.load_model(repeat)
        model.value_.load_model(value)
        return model


def _pyfunc_class() -> type:
    import mlflow.pyfunc
    import pandas as pd

    class OrderValuePyfunc(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: :data:`FEATURES` in, ``p_repeat`` and ``expected_value`` out."""

        def load_context(self, context: Any) -> None:
            self.model = OrderValueModel.load(context.artifacts["repeat"], context.artifacts["value"])

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
            p, v = self.model.predict(model_input)
            return pd.DataFrame({"p_repeat": p, "expected_value": v})

    return OrderValuePyfunc


def _registered(settings: Settings, name: str) -> str:
    from jobs.datasets.train import registered_name

    return registered_name(settings, name)


def _champion_predictions(settings: Settings, name: str, frame: pd.DataFrame) -> tuple[str, np.ndarray, np.ndarray]:
    from jobs.datasets.train import champion

    found = champion(settings, name)
    if found is None:
        raise DatasetError(f"data set {name!r} has no @champion: run `msp train --dataset {name}` first")
    model, version = found
    out = model.predict(frame[list(FEATURES)].reset_index(drop=True))
    return version, out["p_repeat"].to_numpy(dtype="float64"), out["expected_value"].to_numpy(dtype="float64")


def train_orders(settings: Settings, name: str, ds: str | None = None) -> dict[str, Any]:
    """Fit, register and gate the repeat-purchase and value models of an order history."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.datasets.train import _gate_alias, today
    from jobs.training.train import _requirements, configure_mlflow

    ds = ds or today()
    spec, orders, manifest = load_orders(settings, name)
    horizon = spec.targeting.horizon_days
    frame, cutoff = training_frame(orders, horizon, name)
    split = hashed_split(frame.index.to_series(), settings.holdout_share).to_numpy()
    fit, test = frame[split == "train"], frame[split == "test"]
    if fit["repeat"].nunique() < 2 or len(test) == 0:
        raise DatasetError(
            f"data set {name!r}: {len(fit)} fit customers with repeat labels {sorted(fit['repeat'].unique())} "
            f"and {len(test)} held out: too few to learn who orders again"
        )
    configure_mlflow(settings)
    with mlflow.start_run(run_name=f"{name}-orders-{ds}") as run:
        mlflow.set_tags({"msp.dataset": name, "msp.model_family": "orders_xgboost", "msp.ds": ds})
        model = OrderValueModel()
        mlflow.log_params(
            {
                "dataset": name,
                "cutoff": cutoff.date().isoformat(),
                "horizon_days": horizon,
                "train_rows": len(fit),
                "test_rows": len(test),
                **{k: v for k, v in model.params().items() if k != "monotone_constraints"},
            }
        )
        model.fit(fit, fit["repeat"].to_numpy(), fit["value"].to_numpy())
        mlflow.log_params({f"rounds_{k}": v for k, v in model.rounds_.items()})
        p, v = model.predict(test)
        metrics = held_out_metrics(test, p, v)
        mlflow.log_metrics({k: val for k, val in metrics.items() if math.isfinite(val)})
        sample = test[list(FEATURES)].head(200).reset_index(drop=True)
        with tempfile.TemporaryDirectory(prefix="msp-orders-model-") as tmp:
            artifacts = model.save(Path(tmp))
            logged = mlflow.pyfunc.log_model(
                name="model",
                python_model=_pyfunc_class()(),
                artifacts=artifacts,
                signature=infer_signature(sample, _pyfunc_frame(model, sample)),
                input_example=sample.head(5),
                registered_model_name=_registered(settings, name),
                pip_requirements=_requirements("xgboost"),
            )
        version = str(logged.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(_registered(settings, name), version, "msp.dataset", name)
    client.set_model_version_tag(_registered(settings, name), version, "msp.kind", "orders")

    def incumbent_value(current_model: Any) -> float:
        out = current_model.predict(test[list(FEATURES)].reset_index(drop=True))
        return held_out_metrics(test, out["p_repeat"].to_numpy(), out["expected_value"].to_numpy())[GATE_METRIC]

    decision = _gate_alias(settings, name, version, metrics[GATE_METRIC], incumbent_value)
    log.info(
        "data set %s (orders): v%s held out: repeat AUC %.3f (RFM %.3f), top-20%% value capture %.3f (RFM %.3f)",
        name,
        version,
        metrics["repeat_auc"],
        metrics["repeat_auc_rfm"],
        metrics[GATE_METRIC],
        metrics[f"{GATE_METRIC}_rfm"],
    )
    return {
        "dataset": name,
        "kind": "orders",
        "ds": ds,
        "cutoff": cutoff.date().isoformat(),
        "horizon_days": horizon,
        "model_name": _registered(settings, name),
        "train_rows": len(fit),
        "test_rows": len(test),
        "run_id": run.info.run_id,
        "version": version,
        "metrics": metrics,
        "absent_tables": [t for t, present in manifest.get("tables", {}).items() if not present],
        **decision,
    }


def _pyfunc_frame(model: OrderValueModel, rows: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    p, v = model.predict(rows)
    return pd.DataFrame({"p_repeat": p, "expected_value": v})


def target(expected_value: np.ndarray, spec: OrdersMapping) -> np.ndarray:
    """Boolean per customer: contacted by the mapping's rule, highest expected value first."""
    import numpy as np

    rule, amount = spec.targeting.rule
    n = len(expected_value)
    if rule == "min_value":
        return np.asarray(expected_value) >= amount
    k = math.floor(amount * n) if rule == "contact_share" else int(amount * n // spec.targeting.cost_per_contact)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.argsort(-np.asarray(expected_value), kind="stable")[: min(k, n)]] = True
    return chosen


def score_orders(settings: Settings, name: str, ds: str | None = None) -> dict[str, Any]:
    """Features at the day after the last order, the champion's predictions, value-based targeting -> warehouse."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from jobs.datasets.train import today
    from jobs.training.train import configure_mlflow
    from jobs.warehouse import Warehouse

    ds = ds or today()
    spec, orders, _ = load_orders(settings, name)
    as_of = orders["ts"].max().normalize() + pd.Timedelta(days=1)
    features = rfm_features(orders, as_of)
    configure_mlflow(settings)
    version, p, v = _champion_predictions(settings, name, features)
    contacted = target(v, spec)
    model_name, run_date = _registered(settings, name), date.fromisoformat(ds)
    now = datetime.now(UTC).replace(tzinfo=None)
    cost = np.where(contacted, spec.targeting.cost_per_contact, 0.0)
    null = np.full(len(p), np.nan)
    ids = features.index.astype(str).to_numpy()
    values = pd.DataFrame(
        {
            "dataset": name,
            "run_date": run_date,
            "customer_id": ids,
            "as_of": as_of.date(),
            "horizon_days": spec.targeting.horizon_days,
            "p_repeat": p,
            "expected_value": v,
            "rfm_score": rfm_score(features),
            "recency_days": features["recency_days"].to_numpy(),
            "frequency": features["frequency"].to_numpy(),
            "monetary": features["monetary"].to_numpy(),
            "targeted": contacted,
            "model_name": model_name,
            "model_version": version,
            "scored_at": now,
        }
    )
    assignments = pd.DataFrame(
        {
            "dataset": name,
            "run_date": run_date,
            "customer_id": ids,
            "strategy": np.where(contacted, spec.targeting.strategy, "no_action"),
            "p_convert_chosen": p,
            "p_convert_control": null,  # no experiment: no effect of the contact is estimated
            "expected_incremental_value": null,
            "expected_cost": cost,
            "expected_incremental_profit": null,
            "model_name": model_name,
            "model_version": version,
            "scored_at": now,
        }
    )
    warehouse = Warehouse.from_settings(settings)
    where = {"dataset": name, "run_date": run_date}
    warehouse.replace("dataset_customer_value", where, pa.Table.from_pandas(values, preserve_index=False))
    warehouse.replace("dataset_assignments", where, pa.Table.from_pandas(assignments, preserve_index=False))
    log.info(
        "data set %s (orders), %s: %d customers as of %s, %d contacted (expected value %.1f of %.1f)",
        name,
        ds,
        len(values),
        as_of.date(),
        int(contacted.sum()),
        float(v[contacted].sum()),
        float(v.sum()),
    )
    return {
        "dataset": name,
        "kind": "orders",
        "run_date": ds,
        "as_of": as_of.date().isoformat(),
        "customers": len(values),
        "contacted": int(contacted.sum()),
        "expected_value_contacted": float(v[contacted].sum()),
        "expected_value_all": float(v.sum()),
        "expected_cost": float(cost.sum()),
        "model_name": model_name,
        "model_version": version,
    }


def evaluate_orders(settings: Settings, name: str, ds: str | None = None) -> dict[str, Any]:
    """The champion on the held-out customers (against the RFM score) -> ``marketing.model_metrics``."""
    from jobs.datasets.score import write_metrics
    from jobs.datasets.train import today
    from jobs.training.train import configure_mlflow

    ds = ds or today()
    spec, orders, _ = load_orders(settings, name)
    frame, _cutoff = training_frame(orders, spec.targeting.horizon_days, name)
    test = frame[hashed_split(frame.index.to_series(), settings.holdout_share).to_numpy() == "test"]
    configure_mlflow(settings)
    version, p, v = _champion_predictions(settings, name, test)
    metrics = write_metrics(settings, name, ds, version, held_out_metrics(test, p, v))
    model_name = _registered(settings, name)
    return {
        "dataset": name,
        "kind": "orders",
        "run_date": ds,
        "model_name": model_name,
        "model_version": version,
        "metrics": metrics,
    }
