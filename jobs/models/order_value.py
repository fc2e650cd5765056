"""The value side of the two-part (hurdle) effect model: E[gross order value | convert, strategy, x].

Expected net revenue of strategy s is ``P(convert | s, x) * V_s(x) * (1 - discount_s)``: the
conversion part comes from an uplift model, the discount from the strategy catalogue (known, never
learned), and ``V_s`` from here. Every order in silver is a training row (far more than the campaign
logs' converted rows), with its customer's features as of the last feature date before it and the
strategy of the campaign whose attribution window it fell in (``no_action`` for orders placed
without one, and for the control arm):

* **base**: an XGBoost gamma regression (log link) of the gross order value on the features, fit
  on the orders without a contacting strategy, with early stopping on a validation split;
* **strategy factor**: per strategy s, ``a_s = log(sum(y) / sum(base(x)))`` over the orders s
  brought (the maximum-likelihood intercept of a log-link model with the base as offset), with the
  delta-method standard error; the effects on order value, ``a_s - a_0``, are kept only when told
  from noise together and shrunk toward zero like the conversion effects
  (:func:`jobs.models.calibration.shrink_jointly`); a strategy without enough orders keeps the
  control's value.

``V_s(x) = base(x) * exp(a'_s)``. Targets are winsorised at ``cap_quantile`` so that a handful of
huge baskets cannot steer the fit.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from jobs.models.calibration import shrink_jointly
from jobs.models.frame import CONTROL, STRATEGIES

log = logging.getLogger(__name__)


def hist_booster_params(estimator: Any, objective: str, eval_metric: str) -> dict[str, Any]:
    """``xgboost.train`` parameters of a histogram booster from an estimator's hyperparameters
    (``learning_rate``, ``max_depth``, ``min_child_weight``, ``subsample``, ``colsample_bytree``,
    ``reg_lambda``, ``max_bin``, ``random_state``, ``n_jobs``; 0 threads means XGBoost's default)."""
    params: dict[str, Any] = {
        "objective": objective,
        "eta": estimator.learning_rate,
        "max_depth": estimator.max_depth,
        "min_child_weight": estimator.min_child_weight,
        "subsample": estimator.subsample,
        "colsample_bytree": estimator.colsample_bytree,
        "lambda": estimator.reg_lambda,
        "tree_method": "hist",
        "max_bin": estimator.max_bin,
        "seed": estimator.random_state,
        "eval_metric": eval_metric,
    }
    if estimator.n_jobs:
        params["nthread"] = estimator.n_jobs
    return params


class OrderValueModel(BaseEstimator):
    """Gross order value given conversion, per strategy (see the module docstring).

    ``fit(X, y, strategy)``: ``y`` the gross value of each order (> 0), ``strategy`` the strategy it
    is attributed to. ``predict(X)`` returns (n, K) in ``strategies_`` order. Fitted: ``booster_``,
    ``best_iteration_``, ``log_factor_`` / ``log_factor_se_`` / ``log_factor_used_`` (per strategy),
    ``orders_`` (rows per strategy), ``cap_``.
    """

    def __init__(
        self,
        strategies: Sequence[str] = STRATEGIES,
        control: str = CONTROL,
        n_estimators: int = 2000,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 20.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int = 40,
        validation_fraction: float = 0.2,
        level: float = 0.95,
        cap_quantile: float = 0.999,
        min_orders: int = 30,
        max_bin: int = 256,
        n_jobs: int = 0,
        random_state: int = 0,
    ) -> None:
        self.strategies = strategies
        self.control = control
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.level = level
        self.cap_quantile = cap_quantile
        self.min_orders = min_orders
        self.max_bin = max_bin
        self.n_jobs = n_jobs
        self.random_state = random_state

    def booster_params(self) -> dict[str, Any]:
        return hist_booster_params(self, "reg:gamma", "gamma-deviance")

    def fit(self, X: Any, y: Any, strategy: Any, feature_names: Sequence[str] | None = None) -> OrderValueModel:
        import xgboost as xgb

        X = np.asarray(X, dtype="float32")
        y = np.asarray(y, dtype="float64")
        strategy = np.asarray(strategy).astype(str)
        if not (len(X) == len(y) == len(strategy)):
            raise ValueError(f"X, y and strategy differ in length: {len(X)}, {len(y)}, {len(strategy)}")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("order values must be positive")
        names = tuple(self.strategies)
        if self.control not in names:
            raise ValueError(f"the control {self.control!r} is not among the strategies {names}")
        if unknown := sorted(set(strategy) - set(names)):
            raise ValueError(f"orders name strategies the model does not know: {unknown[:5]}")
        base_rows = strategy == self.control
        if base_rows.sum() < self.min_orders:
            raise ValueError(f"{int(base_rows.sum())} orders without a campaign: too few to learn order values")
        self.strategies_ = names
        self.feature_names_ = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(X.shape[1])]
        self.n_features_in_ = X.shape[1]
        self.cap_ = float(np.quantile(y, self.cap_quantile))
        y = np.minimum(y, self.cap_)

        rng = np.random.default_rng(self.random_state)
        valid = rng.random(len(y)) < self.validation_fraction

        def matrix(mask: np.ndarray) -> Any:
            return xgb.DMatrix(X[mask], label=y[mask], feature_names=self.feature_names_)

        evals = [(matrix(base_rows & valid), "valid")] if (base_rows & valid).any() else []
        self.booster_ = xgb.train(
            self.booster_params(),
            matrix(base_rows & ~valid),
            num_boost_round=self.n_estimators,
            evals=evals,
            early_stopping_rounds=self.early_stopping_rounds if evals else None,
            verbose_eval=False,
        )
        self.best_iteration_ = int(getattr(self.booster_, "best_iteration", self.n_estimators - 1))
        base = self._base(X)
        K = len(names)
        self.log_factor_ = np.zeros(K)
        self.log_factor_se_ = np.full(K, np.inf)
        self.orders_ = np.zeros(K, dtype=np.int64)
        for k, s in enumerate(names):
            rows = strategy == s
            self.orders_[k] = int(rows.sum())
            if rows.sum() < 2:
                continue
            ratio = y[rows] / base[rows]
            self.log_factor_[k] = math.log(y[rows].sum() / base[rows].sum())
            self.log_factor_se_[k] = float(ratio.std(ddof=1) / math.sqrt(rows.sum()) / ratio.mean())
        c = names.index(self.control)
        effects, ses = np.zeros(K), np.full(K, np.inf)
        for k, s in enumerate(names):
            if k == c:
                continue
            if self.orders_[k] < self.min_orders:
                log.warning("order value: %d orders of %s: it keeps the control's order value", self.orders_[k], s)
                continue
            effects[k] = self.log_factor_[k] - self.log_factor_[c]
            ses[k] = math.hypot(self.log_factor_se_[k], self.log_factor_se_[c])
        others = np.arange(K) != c
        kept = np.zeros(K)
        kept[others] = shrink_jointly(effects[others], ses[others], self.level)
        self.log_factor_used_ = self.log_factor_[c] + kept
        return self

    def _base(self, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        data = xgb.DMatrix(np.asarray(X, dtype="float32"), feature_names=self.feature_names_)
        return self.booster_.predict(data, iteration_range=(0, self.best_iteration_ + 1)).astype("float64")

    def predict(self, X: Any) -> np.ndarray:
        """(n, K) expected gross order value given conversion under every strategy."""
        self._check_fitted()
        X = np.asarray(X, dtype="float32")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        return self._base(X)[:, None] * np.exp(self.log_factor_used_)[None, :]

    def summary(self) -> dict[str, float]:
        """Flat metrics for MLflow: the factor of each strategy over the control's order value."""
        self._check_fitted()
        c = self.strategies_.index(self.control)
        out = {"order_value_base_iteration": float(self.best_iteration_)}
        for k, s in enumerate(self.strategies_):
            out[f"order_value_orders__{s}"] = float(self.orders_[k])
            if k != c:
                out[f"order_value_factor__{s}"] = math.exp(self.log_factor_[k] - self.log_factor_[c])
                out[f"order_value_factor_used__{s}"] = math.exp(self.log_factor_used_[k] - self.log_factor_used_[c])
        return out

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "booster.ubj"))
        meta = {
            "params": {**self.get_params(), "strategies": list(self.strategies_)},
            "strategies_": list(self.strategies_),
            "feature_names_": self.feature_names_,
            "best_iteration_": self.best_iteration_,
            "cap_": self.cap_,
            "log_factor_": self.log_factor_.tolist(),
            "log_factor_se_": [float(v) if math.isfinite(v) else None for v in self.log_factor_se_],
            "log_factor_used_": self.log_factor_used_.tolist(),
            "orders_": self.orders_.tolist(),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> OrderValueModel:
        import xgboost as xgb

        folder = Path(path)
        meta = json.loads((folder / "meta.json").read_text())
        model = cls(**meta["params"])
        model.strategies_ = tuple(meta["strategies_"])
        model.feature_names_ = meta["feature_names_"]
        model.n_features_in_ = len(model.feature_names_)
        model.best_iteration_ = int(meta["best_iteration_"])
        model.cap_ = float(meta["cap_"])
        model.log_factor_ = np.asarray(meta["log_factor_"], dtype="float64")
        model.log_factor_se_ = np.asarray([np.inf if v is None else v for v in meta["log_factor_se_"]], dtype="float64")
        model.log_factor_used_ = np.asarray(meta["log_factor_used_"], dtype="float64")
        model.orders_ = np.asarray(meta["orders_"], dtype=np.int64)
        model.booster_ = xgb.Booster()
        model.booster_.load_model(str(folder / "booster.ubj"))
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit first")
