"""Train, judge and promote uplift models on an imported data set (``msp train --dataset NAME``).

The same model families as the shop's nightly training (:mod:`jobs.training.train`): the XGBoost
conversion and revenue T-learners, with the same cross-validated hyperparameter search, and the
Keras multi-head network; on the data set's own features (:mod:`jobs.datasets.data`). Each family
is an MLflow run (tags ``msp.dataset``, ``msp.model_family``) whose model is registered as a version
of ``<prefix>_ds_<dataset>``; the version whose policy earns the most on the held-out rows
(off-policy, realised profit per customer, :mod:`jobs.datasets.policy`) gets ``@challenger``, and
becomes ``@champion`` when there is none yet or when it beats the champion on the same held-out rows.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.datasets.data import DatasetError, DatasetInfo, load_frame, load_info
from jobs.datasets.policy import assign, incremental_value, policy_report, realised_value
from jobs.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from jobs.models.pyfunc import UpliftPredictor
    from jobs.training.train import Prepared

log = logging.getLogger(__name__)
FAMILIES = ("xgboost", "keras")
#: the held-out figure the gate compares: the policy's realised profit per customer (IPS)
GATE_METRIC = "policy_profit_ips"


def registered_name(settings: Settings, dataset: str) -> str:
    return f"{settings.model_name_prefix}_ds_{dataset}"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def prepare_dataset(info: DatasetInfo, frame: pd.DataFrame, ds: str) -> Prepared:
    """Fit and held-out rows with the feature layout learned from the fit rows."""
    from jobs.models.frame import FeatureSpec
    from jobs.training.train import Prepared

    train = frame[frame["split"] == "train"].reset_index(drop=True)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    for part, rows in (("fit", train), ("held-out", test)):
        missing = sorted(set(info.strategies) - set(rows["strategy"]))
        if missing:
            raise DatasetError(f"data set {info.name!r}: the {part} rows have no customer in the arms {missing}")
    spec = FeatureSpec.learn(train, list(info.numeric), list(info.categorical))
    return Prepared(ds, frame, train, test, spec, spec.flatten(train), spec.flatten(test))


def decide(gain: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """The data set's spending rule applied to (n, K) expected incremental values."""
    import numpy as np

    econ = info.economics
    budget = None if econ.budget_per_customer is None else econ.budget_per_customer * len(gain)
    return assign(gain, np.asarray(info.costs()), budget=budget, min_roi=None if budget is not None else econ.min_roi)


def held_out_report(
    conv: np.ndarray, rev: np.ndarray, test: pd.DataFrame, info: DatasetInfo, n_boot: int, figures: bool = True
) -> tuple[dict[str, float], dict[str, Any]]:
    """Uplift metrics (Qini, AUUC, uplift@k per arm), off-policy values, and the data set's policy figures."""
    import numpy as np

    from jobs.training.evaluate import evaluate, logged_index

    evaluation = evaluate(test, conv, rev, info.strategies, n_boot, with_figures=figures)
    econ = info.economics
    cost = np.asarray(info.costs())
    gain = incremental_value(conv, rev, econ)
    actions = decide(gain, info)
    model_value = rev if econ.value_per_conversion is None else conv * econ.value_per_conversion
    report = policy_report(
        actions,
        logged_index(test, info.strategies),
        test["propensity"].to_numpy(dtype="float64"),
        test["converted"].to_numpy(dtype="float64"),
        realised_value(test["converted"].to_numpy(), test["revenue"].to_numpy(), econ),
        cost,
        model_value - cost[None, :],
        info.strategies,
        n_boot,
    )
    for j, s in enumerate(info.strategies):
        report[f"assigned_share__{s}"] = float(np.mean(actions == j))
    return {**evaluation.metrics, **report}, evaluation.figures


def predictions(model: Any, frame: pd.DataFrame, strategies: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(p_convert, expected revenue) in ``strategies`` order from a loaded pyfunc model, on typed customer rows.

    The rows are flattened with the model's own feature layout (what its signature describes).
    """
    spec = model.unwrap_python_model().predictor.spec
    out = model.predict(spec.flatten(frame))
    columns = [f"p_convert__{s}" for s in strategies] + [f"exp_revenue__{s}" for s in strategies]
    if missing := [c for c in columns if c not in out]:
        raise DatasetError(f"the model predicts other strategies than the data set's {strategies}: lacks {missing[:3]}")
    k = len(strategies)
    matrix = out[columns].to_numpy(dtype="float64")
    return matrix[:, :k], matrix[:, k:]


def _fit(kind: str, prep: Prepared, info: DatasetInfo, settings: Settings, tune: bool) -> UpliftPredictor:
    import mlflow

    from jobs.training.train import KERAS_DEFAULTS, XGB_DEFAULTS, fit_keras, fit_xgboost, tuned_xgboost_params

    if kind == "keras":
        params = {**KERAS_DEFAULTS, "strategies": info.strategies}
        mlflow.log_params({k: v for k, v in params.items() if k != "strategies"})
        return fit_keras(prep, params)
    params = {**XGB_DEFAULTS, "strategies": info.strategies}
    if tune:
        params = tuned_xgboost_params(prep, params, settings)
    mlflow.log_params({k: v for k, v in params.items() if k != "strategies"})
    return fit_xgboost(prep, params)


def _log_and_register(
    settings: Settings, info: DatasetInfo, prep: Prepared, predictor: UpliftPredictor, metrics: dict, figures: dict
) -> str:
    import mlflow
    from mlflow.models import infer_signature

    from jobs.models.pyfunc import UpliftPyfunc
    from jobs.training.train import _requirements

    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)})
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
    name = registered_name(settings, info.name)
    sample = prep.flat_test.head(200)
    signature = infer_signature(sample, predictor.predict_frame(sample).reset_index(drop=True))
    with tempfile.TemporaryDirectory(prefix="msp-dataset-model-") as tmp:
        model = mlflow.pyfunc.log_model(
            name="model",
            python_model=UpliftPyfunc(),
            artifacts=predictor.save(Path(tmp) / "artifacts"),
            signature=signature,
            input_example=prep.flat_test.head(5),
            registered_model_name=name,
            pip_requirements=_requirements(predictor.kind),
        )
    version = str(model.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in {
        "msp.dataset": info.name,
        "msp.ds": prep.ds,
        "msp.model_family": predictor.kind,
        f"msp.{GATE_METRIC}": f"{metrics[GATE_METRIC]:.6f}",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_registered_model(
        name,
        description=f"Uplift model of the imported data set {info.name!r} (strategies {', '.join(info.strategies)}): "
        "p_convert and expected revenue per strategy. `msp score --dataset` loads @champion.",
    )
    mlflow.set_tag("msp.model_version", version)
    return version


def champion(settings: Settings, dataset: str) -> tuple[Any, str] | None:
    """(the loaded @champion pyfunc model, its version), or None when the data set has none yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = registered_name(settings, dataset)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version
    except MlflowException:
        return None
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}"), str(version)


def _gate(settings: Settings, info: DatasetInfo, prep: Prepared, version: str, value: float) -> dict[str, Any]:
    """Point @champion at ``version`` when there is no champion or when ``version`` earns more on these rows."""

    def incumbent_value(model: Any) -> float:
        conv, rev = predictions(model, prep.test, info.strategies)
        metrics, _ = held_out_report(conv, rev, prep.test, info, settings.bootstrap_samples, figures=False)
        return metrics[GATE_METRIC]

    return _gate_alias(settings, info.name, version, value, incumbent_value)


def _gate_alias(
    settings: Settings, dataset: str, version: str, value: float, incumbent_value: Callable[[Any], float]
) -> dict[str, Any]:
    """@challenger -> ``version``; @champion too when there is none or when ``value`` beats the champion's
    ``incumbent_value(model)`` on the same held-out rows (a champion that cannot score them is replaced)."""
    import mlflow

    name = registered_name(settings, dataset)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "challenger", version)
    current = champion(settings, dataset)
    if current is None:
        reason = "first model of the data set"
        promote = True
    elif current[1] == version:
        return {"champion": version, "promoted": False, "reason": "already champion"}
    else:
        try:
            incumbent = incumbent_value(current[0])
        except (DatasetError, KeyError) as exc:  # the data set's arms or features changed since the champion
            incumbent, promote, reason = math.nan, True, f"the champion cannot score these rows ({exc})"
        else:
            promote = value > incumbent
            reason = f"held-out {value:.4f} vs champion v{current[1]} {incumbent:.4f}"
    if promote:
        client.set_registered_model_alias(name, "champion", version)
    log.info("data set %s: v%s %s: %s", dataset, version, "promoted" if promote else "not promoted", reason)
    champion_version = version if promote else current[1]  # type: ignore[index]
    return {"champion": champion_version, "promoted": promote, "reason": reason}


def train_dataset(
    settings: Settings,
    dataset: str,
    ds: str | None = None,
    families: tuple[str, ...] = FAMILIES,
    tune: bool | None = None,
) -> dict[str, Any]:
    """Fit every family, register each as a version, gate the best; returns versions, figures, the decision."""
    import mlflow

    from jobs.training.train import configure_mlflow

    if unknown := sorted(set(families) - set(FAMILIES)):
        raise DatasetError(f"unknown model families {unknown}; expected some of {FAMILIES}")
    ds = ds or today()
    info = load_info(settings, dataset)
    prep = prepare_dataset(info, load_frame(info, settings.holdout_share), ds)
    configure_mlflow(settings)
    tune = settings.tuning_budget_s > 0 if tune is None else tune
    fitted: dict[str, dict[str, Any]] = {}
    for kind in families:
        with mlflow.start_run(run_name=f"{dataset}-{kind}-{ds}") as run:
            mlflow.set_tags(
                {"msp.dataset": dataset, "msp.model_family": kind, "msp.ds": ds, "msp.role": "dataset_training"}
            )
            mlflow.log_params({"dataset": dataset, "train_rows": len(prep.train), "test_rows": len(prep.test)})
            predictor = _fit(kind, prep, info, settings, tune and kind == "xgboost")
            conv, rev = predictor.predict(prep.flat_test)
            metrics, figures = held_out_report(conv, rev, prep.test, info, settings.bootstrap_samples)
            version = _log_and_register(settings, info, prep, predictor, metrics, figures)
        fitted[kind] = {"version": version, "run_id": run.info.run_id, "metrics": metrics}
        log.info("data set %s: %s v%s, held-out %s %.4f", dataset, kind, version, GATE_METRIC, metrics[GATE_METRIC])
    best = max(fitted, key=lambda k: fitted[k]["metrics"][GATE_METRIC])
    decision = _gate(settings, info, prep, fitted[best]["version"], fitted[best]["metrics"][GATE_METRIC])
    keys = ("qini_mean", GATE_METRIC, f"{GATE_METRIC}_lo", f"{GATE_METRIC}_hi", "best_single_profit_ips", "irr", "nir")
    return {
        "dataset": dataset,
        "ds": ds,
        "model_name": registered_name(settings, dataset),
        "train_rows": len(prep.train),
        "test_rows": len(prep.test),
        "families": {k: {"version": v["version"], **{m: v["metrics"].get(m) for m in keys}} for k, v in fitted.items()},
        "challenger": fitted[best]["version"],
        **decision,
    }
