"""Cross-validated hyperparameter search for the XGBoost T-learner within a time budget.

Optuna's TPE sampler (seeded) proposes parameters; each trial fits the conversion T-learner on
k-1 folds and scores the inverse-propensity-weighted log loss of the logged strategy's prediction
on the held-out fold. Every trial is an MLflow child run of the training run, so the search is
browsable in the UI. The search stops at the trial limit or the time budget, whichever comes first.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def search_space(trial: Any) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 20.0, log=True),
    }


def cv_logloss(
    X: np.ndarray,
    y: np.ndarray,
    treatment: np.ndarray,
    propensity: np.ndarray,
    params: dict[str, Any],
    folds: int,
    seed: int,
    feature_names: list[str] | None = None,
) -> float:
    """Mean over folds of the IPW log loss of the logged strategy's conversion prediction."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from jobs.models.metrics import classification_metrics
    from jobs.models.xgb_uplift import XGBUpliftTLearner, ipw_weights

    strata = np.char.add(treatment.astype(str), y.astype(int).astype(str))
    losses = []
    for fit_idx, val_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, strata):
        model = XGBUpliftTLearner(**params).fit(
            X[fit_idx], y[fit_idx], treatment[fit_idx], propensity[fit_idx], feature_names=feature_names
        )
        pred = model.predict(X[val_idx])
        index = {s: j for j, s in enumerate(model.strategies_)}
        col = np.fromiter((index[t] for t in treatment[val_idx]), dtype=np.int64, count=len(val_idx))
        p = pred[np.arange(len(val_idx)), col]
        w = ipw_weights(propensity[val_idx], params.get("max_weight", 50.0))
        losses.append(classification_metrics(y[val_idx], p, sample_weight=w)["log_loss"])
    return float(np.mean(losses))


def tune_xgboost(
    X: np.ndarray,
    y: np.ndarray,
    treatment: np.ndarray,
    propensity: np.ndarray,
    base_params: dict[str, Any],
    budget_s: float,
    max_trials: int,
    folds: int = 3,
    seed: int = 0,
    feature_names: list[str] | None = None,
    log_to_mlflow: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(best parameters merged into ``base_params``, a summary of the search)."""
    import mlflow
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()

    def objective(trial: Any) -> float:
        params = {**base_params, **search_space(trial)}
        t0 = time.perf_counter()
        loss = cv_logloss(X, y, treatment, propensity, params, folds, seed, feature_names)
        if log_to_mlflow:
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                mlflow.log_params({k: v for k, v in params.items() if k != "strategies"})
                mlflow.log_metrics({"cv_ipw_logloss": loss, "trial_seconds": time.perf_counter() - t0})
                mlflow.set_tag("msp.role", "tuning_trial")
        return loss

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    # the base parameters are the first trial, so tuning can only keep or improve on them
    study.enqueue_trial(
        {
            k: base_params[k]
            for k in ("max_depth", "learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda")
        }
    )
    study.optimize(objective, n_trials=max_trials, timeout=budget_s, gc_after_trial=False)
    best = {**base_params, **study.best_params}
    summary = {
        "trials": len(study.trials),
        "best_cv_ipw_logloss": study.best_value,
        "baseline_cv_ipw_logloss": study.trials[0].value,
        "seconds": time.perf_counter() - started,
    }
    log.info(
        "tuning: %d trials in %.0f s, CV log loss %.5f (defaults %.5f)",
        summary["trials"],
        summary["seconds"],
        summary["best_cv_ipw_logloss"],
        summary["baseline_cv_ipw_logloss"],
    )
    return best, summary
