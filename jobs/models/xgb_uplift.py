"""Multi-treatment T-learner on XGBoost with a shared base: one response model per strategy, IPW-weighted.

Why a T-learner (docs/MODELS.md has the longer argument): the effects differ in sign between
segments (an S-learner's shared trees tend to shrink such interactions to zero), and the policy
needs each strategy's *level* of response (conversion probability and revenue), not only a
contrast with control, to price coupons against their discount. A plain T-learner's uplift is the
difference of two independently noisy models; with a few thousand rows per strategy and rare
conversions that noise swamps the signal. So (``shared_base=True``) a base booster is first fit on
all strategies' rows, and each strategy's booster starts from the base's margin (XGBoost
``base_margin``) and learns only its own correction, with early stopping deciding how much of one
the data supports. Campaign logs are not uniformly randomised (control-heavy and channel-targeted
designs), so every row is weighted by 1 / propensity of its logged strategy: each arm then stands
for the whole population rather than for the customers that design favoured.

Two engines train the same boosters (``engine``): ``"local"`` calls ``xgboost.train`` in this
process; ``"spark"`` trains every booster with ``xgboost.spark`` on the active SparkSession's
executors (``num_workers`` barrier tasks per booster), with the same parameters, weights, base
margins, validation split and early stopping. Both end in plain ``xgboost.Booster`` objects, so
prediction, save and load do not depend on the engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sklearn.base import BaseEstimator

from jobs.models.frame import CONTROL, STRATEGIES

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("local", "spark")
#: how long the spark engine waits for executors to offer ``num_workers`` task slots
EXECUTOR_WAIT_S = 60.0
#: the spark engine gives each worker at least this many training (and validation) rows
MIN_ROWS_PER_WORKER = 50
#: xgboost.train parameter names -> the scikit-learn names that ``xgboost.spark`` estimators take
SPARK_PARAM_NAMES = {"eta": "learning_rate", "lambda": "reg_lambda", "alpha": "reg_alpha", "seed": "random_state"}


def ipw_weights(propensity: np.ndarray, max_weight: float = 50.0) -> np.ndarray:
    """1 / propensity, clipped at ``max_weight`` and scaled to mean 1 (stable learning rates)."""
    import numpy as np

    p = np.asarray(propensity, dtype="float64")
    if np.any(~np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
        raise ValueError("propensity must lie in (0, 1]")
    w = np.minimum(1.0 / p, max_weight)
    return w / w.mean()


def stratified_split(labels: np.ndarray, fraction: float, random_state: int) -> np.ndarray:
    """Boolean validation mask: ``fraction`` of each label's rows (at least one row per non-tiny label)."""
    import numpy as np

    rng = np.random.default_rng(random_state)
    mask = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        take = min(max(round(len(idx) * fraction), 1), len(idx) - 1) if len(idx) >= 4 else 0
        mask[rng.choice(idx, size=take, replace=False)] = True
    return mask


class XGBUpliftTLearner(BaseEstimator):
    """One XGBoost booster per strategy for a binary (conversion) or non-negative (revenue) response.

    ``fit(X, y, treatment, propensity=None)`` trains each strategy's booster on the rows that
    strategy was logged for, with early stopping on a stratified validation split of those rows.
    ``predict(X)`` returns an (n, K) array: the predicted response of every row under every
    strategy (column order ``strategies_``); ``predict_uplift`` subtracts the control column.

    ``engine="spark"`` trains each booster with ``xgboost.spark`` on ``num_workers`` Spark tasks of
    the active SparkSession (``fit`` raises if there is none); ``n_jobs`` is then ignored (each
    worker uses ``spark.task.cpus`` threads). ``trained_on_`` records ``"local"`` or the master URL,
    ``spark_workers_`` the Spark tasks each booster used (0 for local).
    """

    def __init__(
        self,
        strategies: Sequence[str] = STRATEGIES,
        objective: str = "binary:logistic",
        n_estimators: int = 600,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_child_weight: float = 5.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        reg_alpha: float = 0.0,
        early_stopping_rounds: int = 40,
        validation_fraction: float = 0.2,
        propensity_weighting: bool = True,
        max_weight: float = 50.0,
        shared_base: bool = True,
        correction_max_depth: int | None = 2,
        correction_min_child_weight: float | None = 50.0,
        tree_method: str = "hist",
        max_bin: int = 256,
        n_jobs: int = 0,
        random_state: int = 0,
        engine: str = "local",
        num_workers: int = 2,
    ) -> None:
        self.strategies = strategies
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.propensity_weighting = propensity_weighting
        self.max_weight = max_weight
        self.shared_base = shared_base
        self.correction_max_depth = correction_max_depth
        self.correction_min_child_weight = correction_min_child_weight
        self.tree_method = tree_method
        self.max_bin = max_bin
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.engine = engine
        self.num_workers = num_workers

    def booster_params(self) -> dict[str, Any]:
        """The parameters handed to ``xgboost.train`` (also what the benchmark's bare baseline uses)."""
        params: dict[str, Any] = {
            "objective": self.objective,
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "alpha": self.reg_alpha,
            "tree_method": self.tree_method,
            "max_bin": self.max_bin,
            "seed": self.random_state,
            "eval_metric": "logloss" if self.objective.startswith("binary") else "rmse",
        }
        if self.n_jobs:
            params["nthread"] = self.n_jobs
        if self.objective == "reg:tweedie":
            params["tweedie_variance_power"] = 1.5
        return params

    def fit(
        self,
        X: Any,
        y: Any,
        treatment: Any,
        propensity: Any = None,
        sample_weight: Any = None,
        feature_names: Sequence[str] | None = None,
    ) -> XGBUpliftTLearner:
        import numpy as np
        import xgboost as xgb

        X = np.asarray(X, dtype="float32")
        y = np.asarray(y, dtype="float64")
        treatment = np.asarray(treatment).astype(str)
        if not (len(X) == len(y) == len(treatment)):
            raise ValueError(f"X, y and treatment differ in length: {len(X)}, {len(y)}, {len(treatment)}")
        strategies = tuple(self.strategies)
        if unknown := sorted(set(treatment) - set(strategies)):
            raise ValueError(f"treatment names strategies the model does not know: {unknown[:5]}")
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
        if self.propensity_weighting and propensity is not None:
            weights = weights * ipw_weights(np.asarray(propensity), self.max_weight)
        if self.objective.startswith("binary") and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("a binary objective needs y in {0, 1}")
        if not self.objective.startswith("binary") and (y < 0).any():
            raise ValueError("the revenue response must be non-negative")

        spark = self._spark_session()
        self.strategies_ = strategies
        self.trained_on_ = "local" if spark is None else spark.sparkContext.master
        self.spark_workers_ = 0 if spark is None else self._spark_workers(spark)
        if spark is not None:
            log.info(
                "%s: boosters train with xgboost.spark on %s, up to %d workers each",
                self.objective,
                self.trained_on_,
                self.spark_workers_,
            )
        self.feature_names_ = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(X.shape[1])]
        self.n_features_in_ = X.shape[1]
        self.boosters_: dict[str, Any] = {}
        self.best_iteration_: dict[str, int] = {}
        self.n_rows_: dict[str, int] = {}
        self.fit_seconds_ = 0.0
        params = self.booster_params()
        started = time.perf_counter()
        margin = None
        self.base_booster_ = None
        if self.shared_base:
            self.base_booster_, self.base_iteration_ = self._train(xgb, params, X, y, weights, None, spark)
            margin = self._margin(xgb.DMatrix(X, feature_names=self.feature_names_))
        arm_params = dict(params)
        if self.shared_base and self.correction_max_depth is not None:
            arm_params["max_depth"] = self.correction_max_depth
        if self.shared_base and self.correction_min_child_weight is not None:
            arm_params["min_child_weight"] = self.correction_min_child_weight
        for s in strategies:
            rows = treatment == s
            if rows.sum() == 0:
                raise ValueError(f"no training rows for strategy {s!r}")
            arm_margin = None if margin is None else margin[rows]
            booster, best = self._train(xgb, arm_params, X[rows], y[rows], weights[rows], arm_margin, spark)
            self.boosters_[s] = booster
            self.best_iteration_[s] = best
            self.n_rows_[s] = int(rows.sum())
            log.debug("strategy %s: %d rows, best iteration %d", s, rows.sum(), best)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _spark_session(self) -> Any:
        """None for the local engine; the active SparkSession for the spark engine (or a clear error)."""
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.engine == "local":
            return None
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {self.num_workers}")
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError(
                "engine='spark' trains on the active SparkSession, and there is none in this thread: "
                "build one first (jobs.spark.get_spark(settings, ...)) or use engine='local'"
            )
        return spark

    def _train(
        self, xgb: Any, params: dict[str, Any], X: Any, y: Any, w: Any, margin: Any, spark: Any = None
    ) -> tuple[Any, int]:
        """One booster with early stopping on a stratified validation split of its rows."""
        import numpy as np

        strat = y > 0 if self.objective.startswith("binary") else np.zeros(len(y), dtype=bool)
        valid = stratified_split(strat, self.validation_fraction, self.random_state)
        if spark is not None:
            return self._train_spark(spark, params, X, y, w, margin, valid)
        names = self.feature_names_

        def matrix(mask: Any) -> Any:
            data = xgb.DMatrix(X[mask], label=y[mask], weight=w[mask], feature_names=names)
            if margin is not None:
                data.set_base_margin(margin[mask])
            return data

        dtrain = matrix(~valid)
        evals: list[tuple[Any, str]] = []  # only the validation split: a train-set loss is never read
        kwargs: dict[str, Any] = {}
        if valid.any():
            evals.append((matrix(valid), "valid"))
            kwargs["early_stopping_rounds"] = self.early_stopping_rounds
        rounds = self.n_estimators
        booster = xgb.train(params, dtrain, num_boost_round=rounds, evals=evals, verbose_eval=False, **kwargs)
        return booster, int(getattr(booster, "best_iteration", self.n_estimators - 1))

    def _train_spark(
        self, spark: Any, params: dict[str, Any], X: Any, y: Any, w: Any, margin: Any, valid: Any
    ) -> tuple[Any, int]:
        """The same booster trained by ``xgboost.spark`` on the session's executors.

        The rows go to Spark as a DataFrame built in the driver (pandas through Arrow): numeric
        feature columns, label, weight, the validation flag of the local path's split and the base
        margin. ``SparkXGBClassifier`` serves ``binary:logistic`` (it fixes that objective itself);
        every other objective goes through ``SparkXGBRegressor``, which passes it on unchanged.
        """
        import pandas as pd
        from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

        # Every worker needs training rows, and validation rows when there are any (xgboost.spark fails on
        # a partition without them). The validation rows are a random subset, so with MIN_ROWS_PER_WORKER
        # of each per worker an empty share is vanishingly unlikely; a small strategy uses fewer workers.
        n_valid = int(valid.sum())
        n_train = len(y) - n_valid
        workers = max(
            1, min(self.spark_workers_, n_train // MIN_ROWS_PER_WORKER, (n_valid or n_train) // MIN_ROWS_PER_WORKER)
        )

        columns = [f"f{i}" for i in range(X.shape[1])]  # Spark-safe names; the booster keeps the real ones
        frame = pd.DataFrame(X, columns=columns)
        frame["label"] = y
        frame["weight"] = w
        options: dict[str, Any] = {
            "features_col": columns,
            "label_col": "label",
            "weight_col": "weight",
            "feature_names": list(self.feature_names_),
            "num_workers": workers,
            "device": "cpu",
            "n_estimators": self.n_estimators,
            "verbose": False,
        }
        if n_valid:
            frame["is_valid"] = valid
            options["validation_indicator_col"] = "is_valid"
            options["early_stopping_rounds"] = self.early_stopping_rounds
        if margin is not None:
            frame["base_margin"] = margin
            options["base_margin_col"] = "base_margin"
        for key, value in params.items():
            if key != "nthread":  # xgboost.spark sets it from spark.task.cpus
                options[SPARK_PARAM_NAMES.get(key, key)] = value
        estimator_cls = SparkXGBRegressor
        if params["objective"] == "binary:logistic":
            estimator_cls = SparkXGBClassifier
            del options["objective"]
        model = estimator_cls(**options).fit(spark.createDataFrame(frame))
        booster = model.get_booster()
        return booster, int(getattr(booster, "best_iteration", self.n_estimators - 1))

    def _spark_workers(self, spark: Any) -> int:
        """``num_workers``, or fewer when the cluster offers fewer task slots after ``EXECUTOR_WAIT_S``.

        A barrier stage needs all its tasks running at once; asking for more slots than exist makes
        Spark retry the stage for minutes and then fail. Executors of a fresh cluster application
        register a few seconds after the session starts, hence the wait (once per fit; none for a
        local master, whose slots are fixed).
        """
        from xgboost.spark.utils import _get_max_num_concurrent_tasks

        sc = spark.sparkContext
        deadline = time.monotonic() + (0.0 if sc.master.startswith("local") else EXECUTOR_WAIT_S)
        while (slots := _get_max_num_concurrent_tasks(sc)) < self.num_workers and time.monotonic() < deadline:
            time.sleep(0.5)
        if slots < 1:
            raise RuntimeError(f"no Spark executor offers a task slot on {sc.master} after {EXECUTOR_WAIT_S:.0f} s")
        if slots < self.num_workers:
            log.warning(
                "%d XGBoost workers asked for, the cluster offers %d task slots: using %d",
                self.num_workers,
                slots,
                slots,
            )
        return min(self.num_workers, slots)

    def _margin(self, data: Any) -> Any:
        """The shared base's raw margin (log-odds or log-mean) for every row of ``data``."""
        return self.base_booster_.predict(data, output_margin=True, iteration_range=(0, self.base_iteration_ + 1))

    def predict(self, X: Any) -> np.ndarray:
        """(n, K) predicted response of every row under every strategy."""
        import numpy as np
        import xgboost as xgb

        self._check_fitted()
        X = np.asarray(X, dtype="float32")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        data = xgb.DMatrix(X, feature_names=self.feature_names_)
        if self.base_booster_ is not None:
            data.set_base_margin(self._margin(data))
        out = np.empty((len(X), len(self.strategies_)), dtype="float64")
        for j, s in enumerate(self.strategies_):
            out[:, j] = self.boosters_[s].predict(data, iteration_range=(0, self.best_iteration_[s] + 1))
        return out

    def predict_uplift(self, X: Any, control: str = CONTROL) -> np.ndarray:
        """(n, K) response under each strategy minus the response under ``control``."""
        pred = self.predict(X)
        return pred - pred[:, [self.strategies_.index(control)]]

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean total gain per feature over the strategies' boosters, normalised to sum 1."""
        import numpy as np

        self._check_fitted()
        total = np.zeros(len(self.feature_names_))
        index = {name: i for i, name in enumerate(self.feature_names_)}
        boosters = [*self.boosters_.values(), *([self.base_booster_] if self.base_booster_ is not None else [])]
        for booster in boosters:
            for name, gain in booster.get_score(importance_type="total_gain").items():
                total[index[name]] += gain
        return total / total.sum() if total.sum() > 0 else total

    def save(self, path: str | Path) -> None:
        """A folder with one UBJSON booster per strategy and meta.json."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for j, s in enumerate(self.strategies_):
            self.boosters_[s].save_model(str(folder / f"booster_{j}.ubj"))
        if self.base_booster_ is not None:
            self.base_booster_.save_model(str(folder / "booster_base.ubj"))
        meta = {
            "base_iteration_": getattr(self, "base_iteration_", None),
            "params": self.get_params(),
            "strategies_": list(self.strategies_),
            "feature_names_": self.feature_names_,
            "best_iteration_": self.best_iteration_,
            "n_rows_": self.n_rows_,
            "fit_seconds_": self.fit_seconds_,
            "trained_on_": self.trained_on_,
            "spark_workers_": self.spark_workers_,
        }
        meta["params"]["strategies"] = list(self.strategies_)
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> XGBUpliftTLearner:
        import xgboost as xgb

        folder = Path(path)
        meta = json.loads((folder / "meta.json").read_text())
        model = cls(**meta["params"])
        model.strategies_ = tuple(meta["strategies_"])
        model.feature_names_ = meta["feature_names_"]
        model.n_features_in_ = len(model.feature_names_)
        model.best_iteration_ = {k: int(v) for k, v in meta["best_iteration_"].items()}
        model.n_rows_ = meta["n_rows_"]
        model.fit_seconds_ = meta["fit_seconds_"]
        model.trained_on_ = meta.get("trained_on_", "local")  # absent in models saved before the spark engine
        model.spark_workers_ = int(meta.get("spark_workers_", 0))
        model.boosters_ = {}
        model.base_booster_ = None
        if (folder / "booster_base.ubj").exists():
            model.base_booster_ = xgb.Booster()
            model.base_booster_.load_model(str(folder / "booster_base.ubj"))
            model.base_iteration_ = int(meta["base_iteration_"])
        for j, s in enumerate(model.strategies_):
            booster = xgb.Booster()
            booster.load_model(str(folder / f"booster_{j}.ubj"))
            model.boosters_[s] = booster
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "boosters_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit first")


class XGBDRLearner(BaseEstimator):
    """DR-learner: effects regressed on doubly robust pseudo-outcomes, where logged propensities are known.

    Stage 1 cross-fits (``folds``) a conversion T-learner (``XGBUpliftTLearner`` with
    ``learner_params``) so that every training row has out-of-fold predictions ``mu_s(x)`` under
    every strategy. For strategy s against the control the pseudo-outcome of a row logged with
    strategy a and propensity e is

        phi_s = mu_s - mu_0 + 1[a = s] (y - mu_s) / e - 1[a = 0] (y - mu_0) / e

    (weights clipped at ``max_weight``), whose expectation given x is the conversion uplift of s
    whatever the logging policy, as long as e is right: so the platform's own nights (model,
    holdout and exploration rows with their recorded propensities) count beside the designed
    campaigns. Stage 2 fits one shallow, regularised XGBoost regression of ``phi_s`` on x per
    strategy, with early stopping on a validation split. ``predict(X)`` is the control's
    probability from ``base`` (the family's T-learner fitted on all rows) plus each strategy's
    regressed uplift, clipped to [1e-4, 1 - 1e-4]; the calibration downstream decides how much of
    its differences between customers to believe.
    """

    def __init__(
        self,
        learner_params: dict[str, Any] | None = None,
        folds: int = 2,
        max_weight: float = 50.0,
        max_stage1_rows: int = 400_000,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        max_depth: int = 2,
        min_child_weight: float = 200.0,
        reg_lambda: float = 10.0,
        subsample: float = 0.8,
        early_stopping_rounds: int = 50,
        validation_fraction: float = 0.2,
        random_state: int = 0,
    ) -> None:
        self.learner_params = learner_params
        self.folds = folds
        self.max_weight = max_weight
        self.max_stage1_rows = max_stage1_rows
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(
        self,
        X: Any,
        y: Any,
        treatment: Any,
        propensity: Any,
        base: XGBUpliftTLearner,
        feature_names: Sequence[str] | None = None,
    ) -> XGBDRLearner:
        import numpy as np
        import xgboost as xgb

        X = np.asarray(X, dtype="float32")
        y = np.asarray(y, dtype="float64")
        treatment = np.asarray(treatment).astype(str)
        e = np.asarray(propensity, dtype="float64")
        if np.any(~np.isfinite(e)) or np.any(e <= 0) or np.any(e > 1):
            raise ValueError("propensity must lie in (0, 1]")
        base._check_fitted()
        self.base_ = base
        self.strategies_ = tuple(base.strategies_)
        self.feature_names_ = list(feature_names) if feature_names is not None else list(base.feature_names_)
        params = {k: v for k, v in (self.learner_params or base.get_params()).items() if k != "strategies"}
        params = {**params, "strategies": self.strategies_, "engine": "local"}
        rng = np.random.default_rng(self.random_state)
        rows = np.arange(len(y))
        if len(rows) > self.max_stage1_rows:  # the pseudo-outcomes need out-of-fold predictions, not all rows
            rows = np.sort(rng.choice(rows, size=self.max_stage1_rows, replace=False))
        fold = rng.integers(0, self.folds, size=len(rows))
        mu = np.empty((len(rows), len(self.strategies_)))
        for f in range(self.folds):
            fit = rows[fold != f]
            model = XGBUpliftTLearner(**params)
            model.fit(X[fit], y[fit], treatment[fit], e[fit], feature_names=self.feature_names_)
            mu[fold == f] = model.predict(X[rows[fold == f]])
        index = {s: j for j, s in enumerate(self.strategies_)}
        a = np.fromiter((index[v] for v in treatment[rows]), dtype=np.int64, count=len(rows))
        w = np.minimum(1.0 / e[rows], self.max_weight)
        yy, c = y[rows], self.strategies_.index(CONTROL)
        self.boosters_: dict[str, Any] = {}
        self.best_iteration_: dict[str, int] = {}
        valid = rng.random(len(rows)) < self.validation_fraction
        booster_params = {
            "objective": "reg:squarederror",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "subsample": self.subsample,
            "tree_method": "hist",
            "seed": self.random_state,
        }
        for k, s in enumerate(self.strategies_):
            if k == c:
                continue
            phi = mu[:, k] - mu[:, c] + (a == k) * w * (yy - mu[:, k]) - (a == c) * w * (yy - mu[:, c])
            train = xgb.DMatrix(X[rows[~valid]], label=phi[~valid], feature_names=self.feature_names_)
            check = xgb.DMatrix(X[rows[valid]], label=phi[valid], feature_names=self.feature_names_)
            booster = xgb.train(
                booster_params,
                train,
                num_boost_round=self.n_estimators,
                evals=[(check, "valid")],
                early_stopping_rounds=self.early_stopping_rounds,
                verbose_eval=False,
            )
            self.boosters_[s] = booster
            self.best_iteration_[s] = int(getattr(booster, "best_iteration", self.n_estimators - 1))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(n, K) conversion probability: the base's control probability plus each strategy's regressed uplift."""
        import numpy as np
        import xgboost as xgb

        self._check_fitted()
        X = np.asarray(X, dtype="float32")
        control = self.base_.predict(X)[:, self.strategies_.index(CONTROL)]
        data = xgb.DMatrix(X, feature_names=self.feature_names_)
        out = np.repeat(control[:, None], len(self.strategies_), axis=1)
        for j, s in enumerate(self.strategies_):
            if s in self.boosters_:
                uplift = self.boosters_[s].predict(data, iteration_range=(0, self.best_iteration_[s] + 1))
                out[:, j] = control + uplift
        return np.clip(out, 1e-4, 1 - 1e-4)

    @property
    def feature_importances_(self) -> np.ndarray:
        """The base T-learner's (the effects' shallow regressions are not ranked)."""
        return self.base_.feature_importances_

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.base_.save(folder / "base")
        for j, s in enumerate(self.strategies_):
            if s in self.boosters_:
                self.boosters_[s].save_model(str(folder / f"effect_{j}.ubj"))
        meta = {
            "learner": "dr",
            "params": {**self.get_params(), "learner_params": None},
            "strategies_": list(self.strategies_),
            "feature_names_": self.feature_names_,
            "best_iteration_": self.best_iteration_,
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> XGBDRLearner:
        import xgboost as xgb

        folder = Path(path)
        meta = json.loads((folder / "meta.json").read_text())
        model = cls(**meta["params"])
        model.base_ = XGBUpliftTLearner.load(folder / "base")
        model.strategies_ = tuple(meta["strategies_"])
        model.feature_names_ = meta["feature_names_"]
        model.best_iteration_ = {k: int(v) for k, v in meta["best_iteration_"].items()}
        model.boosters_ = {}
        for j, s in enumerate(model.strategies_):
            if s in model.best_iteration_:
                booster = xgb.Booster()
                booster.load_model(str(folder / f"effect_{j}.ubj"))
                model.boosters_[s] = booster
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "boosters_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit first")


def load_conversion(path: str | Path) -> XGBUpliftTLearner | XGBDRLearner:
    """The conversion learner saved in ``path``: a T-learner, or a DR-learner (its meta says ``learner: dr``)."""
    meta = json.loads((Path(path) / "meta.json").read_text())
    return XGBDRLearner.load(path) if meta.get("learner") == "dr" else XGBUpliftTLearner.load(path)
