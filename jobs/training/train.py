"""Train one model family on the training set of a date, evaluate it on held-out rows, log and register it.

``train(settings, "xgboost" | "keras", ds)`` is the whole nightly step of one family:

1. load ``gold/training_set/ds=<ds>`` and learn the feature layout from its fit rows;
2. (XGBoost) search hyperparameters by cross-validation within the time budget, each trial a
   child run; fit the conversion and the revenue T-learners with inverse-propensity weights, on
   ``settings.xgboost_engine``: in this process, or with ``xgboost.spark`` on the executors of
   ``settings.spark_master`` (the tuning trials always run locally: many small fits within a time
   budget gain nothing from a Spark job per booster);
   (Keras) fit the multi-head network with its masked, propensity-weighted loss;
3. fit the order-value model on every order (``gold/order_set``) and calibrate the conversion
   effects on the held-out rows; judge the candidates "direct" (the family's revenue model) and
   "hurdle" (calibrated conversion x order value x (1 - discount)) by the off-policy profit of the
   catalogue policy each induces, and keep the better (:mod:`jobs.training.candidates`);
4. evaluate on the held-out rows (:mod:`jobs.training.evaluate`), log metrics, plots (the uplift
   calibration among them), the data profile, the training data's lineage, learning curves,
   feature importance and (XGBoost) the mean uplift contribution per feature and strategy;
5. log the model as an MLflow pyfunc with signature and input example, register it as
   ``<prefix>_<family>`` and point the alias ``challenger`` at the new version.

``train_fusion`` blends the two families' challengers (their conversion logits, weight chosen the
same way) into a third candidate, ``<prefix>_fusion``. Promotion to ``champion``, and the choice of
the model that serves, is a separate step (:mod:`jobs.training.registry`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.faults import MLFLOW_AFTER_REGISTER, fault_point
from jobs.models.frame import FeatureSpec
from jobs.settings import Settings
from jobs.training.dataset import load_training_set, training_set_path

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from jobs.models.pyfunc import UpliftPredictor

log = logging.getLogger(__name__)
KINDS = ("xgboost", "keras", "fusion")
#: families fitted from the training set (the fusion blends their challengers)
FITTED_KINDS = ("xgboost", "keras")
#: the blend weights on XGBoost the fusion tries
#: (the first, an equal blend, is the default: another replaces it only when it wins with confidence)
FUSION_WEIGHTS = (0.5, 0.0, 0.25, 0.75, 1.0)
CHALLENGER, CHAMPION = "challenger", "champion"
#: what the task returns and the demo prints
SUMMARY_METRICS = (
    "conv_auc",
    "conv_log_loss",
    "conv_ece",
    "qini_mean",
    "policy_dr",
    "policy_dr_lo",
    "policy_dr_hi",
    "best_single_dr",
    "policy_profit_dr",
    "policy_profit_dr_lo",
    "policy_profit_dr_hi",
    "policy_profit_gain_dr",
    "train_rows",
    "test_rows",
    "fit_seconds",
)

XGB_DEFAULTS: dict[str, Any] = {
    "n_estimators": 600,
    "learning_rate": 0.05,
    "max_depth": 4,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "early_stopping_rounds": 40,
    "validation_fraction": 0.2,
    "max_weight": 50.0,
    "random_state": 0,
}
KERAS_DEFAULTS: dict[str, Any] = {
    "seq_len": 20,
    "embed_dim": 32,
    "num_heads": 2,
    "ff_dim": 64,
    "tower_units": (128, 64),
    "head_units": 32,
    "dropout": 0.1,
    "learning_rate": 1e-3,
    "batch_size": 512,
    "max_epochs": 30,
    "patience": 4,
    "validation_fraction": 0.2,
    "random_state": 0,
}


#: the registered model scoring loads by default: the best family's champion, copied (jobs.training.registry)
SERVED = "policy"


def model_name(settings: Settings, kind: str) -> str:
    """``<prefix>_<family>``; the served model (``policy``) is ``<prefix>`` itself."""
    if kind == SERVED:
        return settings.model_name_prefix
    if kind not in KINDS:
        raise ValueError(f"unknown model family {kind!r}; expected one of {(*KINDS, SERVED)}")
    return f"{settings.model_name_prefix}_{kind}"


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the settings' store and experiment (created with the settings' artifact root)."""
    import mlflow

    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        root = settings.path(settings.mlflow_artifact_root)
        root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(settings.mlflow_experiment, artifact_location=root.as_uri())
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass
class Prepared:
    """The training set of a date split into fit and held-out rows, with the model input layout."""

    ds: str
    frame: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    spec: FeatureSpec
    flat_train: pd.DataFrame
    flat_test: pd.DataFrame

    def matrix(self, part: str) -> np.ndarray:
        return self.spec.matrix(self.flat_train if part == "train" else self.flat_test)


def prepare(settings: Settings, ds: str) -> Prepared:
    from jobs.features.build import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    frame = load_training_set(settings, ds)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    if train.empty or test.empty:
        raise ValueError(f"training set {ds} has {len(train)} fit and {len(test)} held-out rows: too few to train")
    spec = FeatureSpec.learn(train, list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES))
    return Prepared(ds, frame, train, test, spec, spec.flatten(train), spec.flatten(test))


def fit_xgboost(prep: Prepared, params: dict[str, Any], engine: str = "local", num_workers: int = 2) -> UpliftPredictor:
    """The conversion and revenue T-learners; ``engine="spark"`` trains them on the active SparkSession."""
    from jobs.models.pyfunc import UpliftPredictor
    from jobs.models.xgb_uplift import XGBUpliftTLearner

    params = {**params, "engine": engine, "num_workers": num_workers}
    X = prep.matrix("train")
    t = prep.train["strategy"].to_numpy()
    p = prep.train["propensity"].to_numpy()
    names = prep.spec.matrix_columns
    conv = XGBUpliftTLearner(**params).fit(X, prep.train["converted"].to_numpy(), t, p, feature_names=names)
    rev_params = {**params, "objective": "reg:tweedie"}
    rev = XGBUpliftTLearner(**rev_params).fit(X, prep.train["revenue"].to_numpy(), t, p, feature_names=names)
    return UpliftPredictor("xgboost", prep.spec, conv, rev)


def fit_keras(prep: Prepared, params: dict[str, Any]) -> UpliftPredictor:
    import pandas as pd

    from jobs.models.keras_uplift import KerasMultiHeadUplift
    from jobs.models.pyfunc import UpliftPredictor
    from jobs.models.xgb_uplift import ipw_weights

    X = pd.DataFrame(prep.matrix("train"), columns=prep.spec.matrix_columns)
    X[prep.spec.sequence] = prep.flat_train[prep.spec.sequence].to_numpy()
    model = KerasMultiHeadUplift(**params).fit(
        X,
        prep.train["converted"].to_numpy(),
        prep.train["strategy"].to_numpy(),
        sample_weight=ipw_weights(prep.train["propensity"].to_numpy()),
        revenue=prep.train["revenue"].to_numpy(),
    )
    return UpliftPredictor("keras", prep.spec, model)


def tuned_xgboost_params(prep: Prepared, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``params`` with the cross-validated search's best values (within the settings' budget); logs its summary."""
    import mlflow

    from jobs.training.tuning import tune_xgboost

    best, summary = tune_xgboost(
        prep.matrix("train"),
        prep.train["converted"].to_numpy(),
        prep.train["strategy"].to_numpy(),
        prep.train["propensity"].to_numpy(),
        params,
        settings.tuning_budget_s,
        settings.tuning_trials,
        settings.tuning_folds,
        seed=int(params.get("random_state", 0)),
        feature_names=prep.spec.matrix_columns,
    )
    mlflow.log_metrics({f"tuning_{k}": float(v) for k, v in summary.items()})
    return best


def importance(predictor: UpliftPredictor, prep: Prepared, rows: int = 3000, seed: int = 0) -> dict[str, float]:
    """Feature importance: total gain for XGBoost; for Keras the drop in AUC when a column is permuted."""
    import numpy as np
    import pandas as pd

    from jobs.models.metrics import classification_metrics

    names = prep.spec.matrix_columns
    if predictor.kind == "xgboost":
        return dict(zip(names, predictor.conversion.feature_importances_.tolist(), strict=True))
    if predictor.kind == "fusion":  # the blend's XGBoost part stands for it (a permutation pass would predict twice)
        gains = predictor.components["xgboost"].conversion.feature_importances_
        return dict(zip(predictor.components["xgboost"].spec.matrix_columns, gains.tolist(), strict=True))
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(prep.flat_test), size=min(rows, len(prep.flat_test)), replace=False)
    sample = prep.flat_test.iloc[idx].reset_index(drop=True)
    y = prep.test["converted"].to_numpy()[idx]
    col = prep.test["strategy"].map({s: j for j, s in enumerate(predictor.strategies)}).to_numpy()[idx]

    names = list(prep.spec.input_columns)
    frames = [sample]
    for name in names:
        shuffled = sample.copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        frames.append(shuffled)
    # one prediction for the sample and every permuted copy (each row is predicted on its own, so the values are
    # those of one call per column): per call, the Keras predict and the order-value and risk models cost more in
    # overhead than in rows (the demo's Keras challenger on a shared machine: 42 s -> 20-28 s, identical values)
    p_all = predictor.predict(pd.concat(frames, ignore_index=True))[0]
    n = len(sample)
    aucs = [classification_metrics(y, p_all[k * n : (k + 1) * n][np.arange(n), col])["auc"] for k in range(len(frames))]
    return {name: max(0.0, aucs[0] - auc) for name, auc in zip(names, aucs[1:], strict=True)}


def train(
    settings: Settings,
    kind: str,
    ds: str,
    params: dict[str, Any] | None = None,
    tune: bool | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, log and register one family; returns run id, version and key metrics."""
    import mlflow

    from jobs.models.plots import learning_curves_figure
    from jobs.training.candidates import hurdle_candidates
    from jobs.training.dataset import load_order_set

    if kind not in FITTED_KINDS:
        raise ValueError(f"train fits {FITTED_KINDS}; the fusion is train_fusion")
    name = model_name(settings, kind)
    prep = prepare(settings, ds)
    orders = load_order_set(settings, ds)
    configure_mlflow(settings)
    overrides = dict(params or {})
    tune = (kind == "xgboost" and settings.tuning_budget_s > 0) if tune is None else tune
    started = time.perf_counter()
    close_interrupted_runs(settings, kind, ds)
    with mlflow.start_run(run_name=f"{kind}-{ds}") as run:
        _log_inputs(prep, name, kind, ds, settings)
        if kind == "xgboost":
            final = {**XGB_DEFAULTS, **overrides}
            # where the final fit runs: settings, or a run's own override; never part of the tuning
            engine = str(final.pop("engine", settings.xgboost_engine)).strip().lower()
            workers = int(final.pop("num_workers", settings.xgboost_spark_workers))
            if tune:
                final = tuned_xgboost_params(prep, final, settings)
            mlflow.log_params({k: v for k, v in final.items()})
            mlflow.log_params({"xgboost_engine": engine, "xgboost_spark_workers": workers})
            mlflow.set_tag("msp.xgboost_engine", engine)
            if engine == "spark":
                from jobs.spark import get_spark

                spark = get_spark(settings, "msp-train-xgboost")
                mlflow.set_tag("msp.spark_master", spark.sparkContext.master)
            fit_started = time.perf_counter()
            predictor = fit_xgboost(prep, final, engine, workers)
            mlflow.log_metrics({f"best_iteration__{s}": v for s, v in predictor.conversion.best_iteration_.items()})
        else:
            final = {**KERAS_DEFAULTS, **overrides}
            mlflow.log_params(final)
            fit_started = time.perf_counter()
            predictor = fit_keras(prep, final)
            history = predictor.conversion.history_
            for key, values in history.items():
                for epoch, value in enumerate(values):
                    mlflow.log_metric(f"curve_{key}", float(value), step=epoch)
            mlflow.log_figure(learning_curves_figure(history, "Keras learning curves"), "plots/learning_curves.png")
            net = predictor.conversion
            mlflow.log_metrics({"epochs": net.n_epochs_, "best_epoch": net.best_epoch_})
        predictor, chosen, _, extra, figures = hurdle_candidates(settings, prep, predictor, orders)
        fit_seconds = time.perf_counter() - fit_started
        out = _evaluate_log_register(settings, kind, ds, prep, predictor, chosen, extra, figures, fit_seconds)
    return _summary(kind, name, run, out, started)


def train_fusion(settings: Settings, ds: str) -> dict[str, Any]:
    """Blend the XGBoost and Keras challengers' conversion logits; register ``<prefix>_fusion`` @challenger.

    The blend weight on XGBoost is chosen among :data:`FUSION_WEIGHTS` like the candidates of a
    family (cross-fitted calibration, off-policy profit of the induced catalogue policy); the blend
    is then calibrated on all held-out rows and priced with the XGBoost challenger's order-value model.
    """
    import mlflow

    from jobs.models.calibration import logit, sigmoid
    from jobs.models.pyfunc import UpliftPredictor
    from jobs.training.candidates import (
        Candidate,
        budget_per_customer,
        calibration_figures,
        catalogue_for,
        cross_fitted,
        discounts_for,
        fit_calibrator,
        fit_risk_effects,
        judge,
    )

    name = model_name(settings, "fusion")
    prep = prepare(settings, ds)
    configure_mlflow(settings)
    started = time.perf_counter()
    close_interrupted_runs(settings, "fusion", ds)
    components = {kind: load_registered(settings, kind, CHALLENGER) for kind in FITTED_KINDS}
    with mlflow.start_run(run_name=f"fusion-{ds}") as run:
        _log_inputs(prep, name, "fusion", ds, settings)
        versions = {k: v for k, (_, v) in components.items()}
        mlflow.log_params({f"component_{k}": f"{model_name(settings, k)}/{v}" for k, v in versions.items()})
        parts = {k: p for k, (p, _) in components.items()}
        fit_started = time.perf_counter()
        catalogue = catalogue_for(settings)
        template = UpliftPredictor(
            "fusion",
            parts["xgboost"].spec,
            order_value=parts["xgboost"].order_value,
            discounts=discounts_for(catalogue, parts["xgboost"].strategies),
            revenue_mode="hurdle",
            components=parts,
        )
        strategies = template.strategies
        # each component predicts the held-out rows once; the blends are mixtures of their logits
        a, b = (logit(parts[k].raw_conversion(prep.flat_test)) for k in FITTED_KINDS)
        effects, held_out_shift = fit_risk_effects(settings, prep, strategies)
        candidates, raw_by_name = [], {}
        for w in FUSION_WEIGHTS:
            raw = sigmoid(w * a + (1.0 - w) * b)
            p_cv = effects.apply(cross_fitted(raw, prep.test, strategies), shift=held_out_shift)
            label = f"w{w:g}"
            raw_by_name[label] = (w, raw)
            candidates.append(Candidate(label, p_cv, template.hurdle(p_cv, prep.flat_test)))
        per_customer = budget_per_customer(settings, catalogue, ds)
        best = judge(candidates, prep.test, strategies, catalogue, per_customer, settings.bootstrap_samples)
        weight, raw = raw_by_name[best.name]
        template.weight = weight
        template.calibrator = fit_calibrator(raw, prep.test, strategies)  # the calibrated control probability
        template.effects = effects
        mlflow.log_param("fusion_weight_xgboost", weight)
        extra: dict[str, float] = {
            **template.calibrator.summary(strategies),
            **effects.summary(),
            "fusion_weight_xgboost": weight,
        }
        if math.isfinite(per_customer):
            extra["budget_per_customer"] = per_customer
        for c in candidates:
            extra[f"candidate_policy_profit_dr__{c.name}"] = c.metrics["policy_profit_dr"]
        extra.update(best.metrics)
        figures = calibration_figures(raw, best.p, prep.test, strategies)
        fit_seconds = time.perf_counter() - fit_started
        out = _evaluate_log_register(settings, "fusion", ds, prep, template, best, extra, figures, fit_seconds)
    return _summary("fusion", name, run, out, started)


def load_registered(settings: Settings, kind: str, alias: str) -> tuple[UpliftPredictor, str]:
    """The predictor behind ``models:/<prefix>_<kind>@<alias>`` and its version."""
    import mlflow

    from jobs.models.pyfunc import UpliftPredictor

    name = model_name(settings, kind)
    version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
    return UpliftPredictor.load_folder(local / "artifacts"), str(version.version)


def _log_inputs(prep: Prepared, name: str, kind: str, ds: str, settings: Settings) -> None:
    """Tags, the training data's lineage (mlflow.data) and its profile."""
    import mlflow
    import mlflow.data

    from jobs.training.profile import profile_folder

    mlflow.set_tags({"msp.ds": ds, "msp.model_family": kind, "msp.registered_model": name, "msp.role": "training"})
    source = str(training_set_path(settings, ds))
    for part, frame in (("training", prep.train), ("evaluation", prep.test)):
        dataset = mlflow.data.from_pandas(
            frame.drop(columns=["category_affinity", "strategy_received", "strategy_converted"], errors="ignore"),
            source=source,
            name=f"training_set-{ds}-{part}",
            targets="converted",
        )
        mlflow.log_input(dataset, context=part)
    cache = settings.path(settings.data_root) / "_cache" / "profile" / f"ds={ds}"
    mlflow.log_artifacts(str(profile_folder(prep.frame, prep.spec.numeric, cache)), "profile")


def _evaluate_log_register(
    settings: Settings,
    kind: str,
    ds: str,
    prep: Prepared,
    predictor: UpliftPredictor,
    chosen: Any,
    extra: dict[str, float],
    extra_figures: dict[str, Any],
    fit_seconds: float,
) -> dict[str, Any]:
    """Held-out metrics of the chosen candidate, plots, importance, the model and its registration."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.models.plots import importance_figure
    from jobs.models.pyfunc import UpliftPyfunc
    from jobs.training.evaluate import evaluate

    name = model_name(settings, kind)
    evaluation = evaluate(prep.test, chosen.p, chosen.revenue, predictor.strategies, settings.bootstrap_samples)
    metrics = {**evaluation.metrics, **extra, "fit_seconds": fit_seconds, "train_rows": len(prep.train)}
    metrics["test_rows"] = len(prep.test)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    mlflow.log_param("revenue_mode", predictor.revenue_mode)
    mlflow.set_tag("msp.revenue_mode", predictor.revenue_mode)
    for path, fig in {**evaluation.figures, **extra_figures}.items():
        mlflow.log_figure(fig, path)
    imp = importance(predictor, prep)
    mlflow.log_dict(dict(sorted(imp.items(), key=lambda kv: -kv[1])), "feature_importance.json")
    fig = importance_figure(list(imp), list(imp.values()), f"Feature importance ({kind})")
    mlflow.log_figure(fig, "plots/feature_importance.png")
    if kind == "xgboost":
        _log_uplift_contributions(predictor, prep)

    sample = prep.flat_test.head(200)
    signature = infer_signature(sample, predictor.predict_frame(sample).reset_index(drop=True))
    with tempfile.TemporaryDirectory(prefix="msp-model-") as tmp:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=UpliftPyfunc(),
            artifacts=predictor.save(Path(tmp) / "artifacts"),
            signature=signature,
            input_example=prep.flat_test.head(5),
            registered_model_name=name,
            pip_requirements=_requirements(kind),
        )
    version = str(info.registered_model_version)
    fault_point(MLFLOW_AFTER_REGISTER)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "msp.ds", ds)
    client.set_model_version_tag(name, version, "msp.policy_dr", f"{metrics['policy_dr']:.6f}")
    client.set_model_version_tag(name, version, "msp.policy_profit_dr", f"{metrics['policy_profit_dr']:.6f}")
    client.set_model_version_tag(name, version, "msp.revenue_mode", predictor.revenue_mode)
    client.set_model_version_tag(name, version, "msp.model_family", kind)
    client.update_registered_model(
        name,
        description=f"{kind} multi-treatment uplift model of the Marketing Strategy Platform: p_convert and "
        "expected net revenue per strategy. Scoring loads the alias @champion.",
    )
    mlflow.set_tag("msp.model_version", version)
    return {"version": version, "metrics": metrics}


def _log_uplift_contributions(predictor: UpliftPredictor, prep: Prepared, rows: int = 2000) -> None:
    """Per strategy, the mean |TreeSHAP contribution| of each feature to its conversion uplift (held-out sample)."""
    import mlflow

    from jobs.models.plots import contributions_figure
    from jobs.models.reasons import explainer, mean_abs_contributions

    found = explainer(predictor)
    if found is None:
        return
    spec, model = found
    X = spec.matrix(prep.flat_test.head(rows))
    means = mean_abs_contributions(model, X)
    names = list(model.feature_names_)
    table = {s: dict(sorted(zip(names, v.tolist(), strict=True), key=lambda kv: -kv[1])) for s, v in means.items()}
    mlflow.log_dict(table, "uplift_contributions.json")
    mlflow.log_figure(contributions_figure(means, names), "plots/uplift_contributions.png")


def _summary(kind: str, name: str, run: Any, out: dict[str, Any], started: float) -> dict[str, Any]:
    seconds = time.perf_counter() - started
    metrics = out["metrics"]
    log.info(
        "%s v%s: AUC %.3f, Qini %.3f, held-out profit per customer (DR) %.4f, revenue policy %.3f in %.0f s",
        name,
        out["version"],
        metrics["conv_auc"],
        metrics["qini_mean"],
        metrics["policy_profit_dr"],
        metrics["policy_dr"],
        seconds,
    )
    return {
        "kind": kind,
        "model_name": name,
        "version": out["version"],
        "run_id": run.info.run_id,
        "seconds": seconds,
        "metrics": {k: metrics[k] for k in SUMMARY_METRICS},
    }


def close_interrupted_runs(settings: Settings, kind: str, ds: str) -> list[str]:
    """Mark runs of this family and date that a killed attempt left RUNNING as FAILED; returns their ids.

    A process killed mid-run (OOM, lost worker, ``MSP_FAULT``) never ends its MLflow run, which the UI
    then shows as running forever. Airflow does not run two attempts of one task at once, so when the
    next attempt starts, a RUNNING run with the same family and date is a dead one. Versions such a run
    registered keep no alias (the alias is set last) and get the tag ``msp.status=interrupted``, so
    nobody promotes them by mistake.
    """
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return []
    stale = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"attributes.status = 'RUNNING' and tags.`msp.role` = 'training' "
            f"and tags.`msp.model_family` = '{kind}' and tags.`msp.ds` = '{ds}'"
        ),
    )
    name = model_name(settings, kind)
    for run in stale:
        run_id = run.info.run_id
        client.set_tag(run_id, "msp.status", "interrupted")
        client.set_terminated(run_id, status="FAILED")
        for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            client.set_model_version_tag(name, version.version, "msp.status", "interrupted")
            log.warning("%s v%s is from interrupted run %s: tagged, never aliased", name, version.version, run_id)
        log.warning("training run %s (%s, %s) was left RUNNING by a killed attempt: marked FAILED", run_id, kind, ds)
    return [r.info.run_id for r in stale]


def _requirements(kind: str) -> list[str]:
    from importlib.metadata import version

    packages = ["mlflow", "pandas", "numpy", "scikit-learn", "xgboost"]
    if kind in ("keras", "fusion"):
        packages += ["tensorflow-cpu", "keras"]
    return [f"{p}=={version(p)}" for p in packages]
