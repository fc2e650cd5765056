"""The true value of a night's assignments, from the simulator's truth for that date.

``respond`` writes the truth of every customer under every strategy for the run date; the catalogue
turns it into true incremental profit. The oracle solves the same knapsack (budget, caps,
eligibility) on the true values; "best single" gives one strategy to randomly chosen eligible
customers until its budget or cap is used, for each strategy, and keeps the best.

Two more references say what the night's figure can be compared with:

* the *randomised oracle*: the oracle's values through the same randomised assignment
  (:func:`jobs.scoring.optimiser.decide`, same holdout and exploration shares and seed), since
  the platform must hold out and explore whatever it knows;
* the *feature ceiling*: the true incremental profit regressed on the scoring features
  themselves (every model input: numeric features, the map features one column per key, the
  categorical ones one-hot; noise-free targets, gradient boosting, two-fold cross-fitting), then
  optimised. No model that sees only these features and learns from noisy outcomes should beat it
  by much: it measures how much of the customers' latent traits the features reveal. It is given
  twice: as the optimiser's choice (``feature_ceiling``) and through the same randomised assignment
  as the night (``randomised_feature_ceiling``: the holdout and exploration every policy pays for).

Budgets are the catalogue's for the number of customers scored (``budget_for``); with ``min_roi`` every
knapsack here maximises the same objective the scoring run does (``Catalogue.objective``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.features.build import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from jobs.models.frame import FeatureSpec
from jobs.scoring.catalogue import Catalogue
from jobs.scoring.optimiser import decide, optimise
from jobs.simulator.oracle import against_oracle, true_values


def feature_matrix(features: pd.DataFrame) -> np.ndarray:
    """Every model input of the features, laid out as the models see them (NaN kept)."""
    spec = FeatureSpec.learn(features, list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES))
    return spec.matrix(spec.flatten(features)).astype("float64")


def feature_ceiling(
    value: np.ndarray,
    cost: np.ndarray,
    features: pd.DataFrame,
    catalogue: Catalogue,
    seed: int = 0,
    rng_seed: int | None = None,
) -> tuple[float, float]:
    """True value of the knapsack on the true incremental profit as predicted from the features (see above),
    as chosen and through the night's randomised assignment (seeded by ``rng_seed``; NaN when None)."""
    import xgboost as xgb

    X = feature_matrix(features)
    fold = np.random.default_rng(seed).random(len(X)) < 0.5
    predicted = np.zeros_like(value)
    for k in range(1, value.shape[1]):
        for train in (fold, ~fold):
            model = xgb.XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, n_jobs=2, random_state=seed)
            predicted[~train, k] = model.fit(X[train], value[train, k]).predict(X[~train])
    eligible = catalogue.eligibility_mask(features)
    n = len(X)
    objective = catalogue.objective(predicted, cost)
    budget, caps = catalogue.budget_for(n), catalogue.caps_for(n)
    chosen = optimise(objective, cost, eligible, budget, caps, control=0).choice
    rows = np.arange(n)
    randomised = float("nan")
    if rng_seed is not None:
        strategy = randomised_choice(objective, cost, eligible, catalogue, rng_seed)
        randomised = float(value[rows, strategy].sum())
    return float(value[rows, chosen].sum()), randomised


def randomised_choice(
    objective: np.ndarray, cost: np.ndarray, eligible: np.ndarray, catalogue: Catalogue, rng_seed: int
) -> np.ndarray:
    """Each customer's strategy under the night's randomised assignment (holdout, exploration) of ``objective``."""
    n = len(objective)
    _, assignment = decide(
        objective,
        cost,
        eligible,
        catalogue.budget_for(n),
        catalogue.caps_for(n),
        holdout_share=catalogue.holdout_share,
        explore_share=catalogue.explore_share,
        rng_seed=rng_seed,
    )
    return assignment.strategy


def policy_against_truth(
    assignments: pd.DataFrame, features: pd.DataFrame, truth_dir: Path, ds: str, catalogue: Catalogue, seed: int = 0
) -> dict[str, float]:
    frame = assignments.set_index("customer_id").loc[features["customer_id"]].reset_index()
    value, cost = true_values(truth_dir, ds, frame["customer_id"], catalogue)
    eligible = catalogue.eligibility_mask(features)
    rows = np.arange(len(frame))
    caps = catalogue.caps_for(len(frame))
    budget = catalogue.budget_for(len(frame))
    base = against_oracle(assignments, features, truth_dir, ds, catalogue)
    policy, oracle = base["policy"], base["oracle"]
    seed_of_night = int(ds.replace("-", ""))
    randomised = randomised_choice(catalogue.objective(value, cost), cost, eligible, catalogue, seed_of_night)
    randomised_oracle = float(value[rows, randomised].sum())
    ceiling, randomised_ceiling = feature_ceiling(value, cost, features, catalogue, seed, seed_of_night)
    rng = np.random.default_rng(seed)
    singles = {}
    for k, name in enumerate(catalogue.names):
        if k == 0:
            continue
        order = rng.permutation(np.flatnonzero(eligible[:, k]))
        budget_rows = np.searchsorted(np.cumsum(cost[order, k]), budget, side="right")
        take = order[: min(budget_rows, caps[k])]
        singles[name] = float(value[take, k].sum())
    best = max(singles, key=lambda s: singles[s])
    return {
        **base,
        "randomised_oracle": randomised_oracle,
        "ratio_to_randomised_oracle": policy / randomised_oracle if randomised_oracle > 0 else float("nan"),
        "feature_ceiling": ceiling,
        "feature_ceiling_to_oracle": ceiling / oracle if oracle > 0 else float("nan"),
        "ratio_to_feature_ceiling": policy / ceiling if ceiling > 0 else float("nan"),
        "randomised_feature_ceiling": randomised_ceiling,
        "ratio_to_randomised_feature_ceiling": policy / randomised_ceiling if randomised_ceiling > 0 else float("nan"),
        "best_single_strategy": best,
        "best_single": singles[best],
        "ratio_to_best_single": policy / singles[best] if singles[best] > 0 else float("inf"),
        **{f"single__{k}": v for k, v in singles.items()},
    }


def loss_decomposition(
    settings: Any, assignments: pd.DataFrame, features: pd.DataFrame, ds: str, catalogue: Catalogue
) -> dict[str, float]:
    """Where the model loses against the oracle, by the two parts of its expected revenue p x V x (1 - d).

    The model version that made the assignments predicts every customer again; then the optimiser (no
    holdout or exploration) runs on: the model itself (``deterministic``), the model's conversion with
    the true order value (``model_conversion``), and the true conversion with the model's order value,
    its expected revenue over its conversion (``model_order_value``). Each is given as a share of the
    oracle's true incremental profit: the part whose share stays low is where the loss is.
    """
    import mlflow.artifacts
    import mlflow.pyfunc

    from jobs.training.train import configure_mlflow

    configure_mlflow(settings)
    name, version = str(assignments["model_name"].iloc[0]), str(assignments["model_version"].iloc[0])
    uri = f"models:/{name}/{version}"
    local = Path(mlflow.artifacts.download_artifacts(uri))
    spec = FeatureSpec.from_json((local / "artifacts" / "feature_spec.json").read_text())
    out = mlflow.pyfunc.load_model(uri).predict(spec.flatten(features))  # the flat layout the signature has
    names = list(catalogue.names)
    p_m = out[[f"p_convert__{s}" for s in names]].to_numpy(dtype="float64")
    rev_m = out[[f"exp_revenue__{s}" for s in names]].to_numpy(dtype="float64")
    truth = pd.read_parquet(settings.truth / "campaign_truth" / f"ds={ds}")
    wide = truth.pivot_table(index="customer_id", columns="strategy", values=["p_convert", "expected_order_value"])
    p_t = wide["p_convert"].reindex(features["customer_id"])[names].to_numpy()
    eov_t = wide["expected_order_value"].reindex(features["customer_id"])[names].to_numpy()
    value, cost = true_values(settings.truth, ds, features["customer_id"], catalogue)
    keep = 1.0 - catalogue.discount_shares()[None, :]
    eligible = catalogue.eligibility_mask(features)
    n = len(features)
    rows = np.arange(n)
    budget, caps = catalogue.budget_for(n), catalogue.caps_for(n)
    best = optimise(catalogue.objective(value, cost), cost, eligible, budget, caps, 0).choice
    oracle = float(value[rows, best].sum())

    def share(p: np.ndarray, rev: np.ndarray) -> float:
        c = catalogue.expected_cost(np.clip(p, 0, 1), rev)
        v = catalogue.incremental_profit(np.clip(p, 0, 1), rev)
        chosen = optimise(catalogue.objective(v, c), c, eligible, budget, caps, 0)
        return float(value[rows, chosen.choice].sum()) / oracle if oracle > 0 else float("nan")

    implied_value = np.divide(rev_m, p_m, out=np.zeros_like(rev_m), where=p_m > 0)
    return {
        "deterministic_to_oracle": share(p_m, rev_m),
        "model_conversion_true_order_value_to_oracle": share(p_m, p_m * eov_t * keep),
        "true_conversion_model_order_value_to_oracle": share(p_t, p_t * implied_value),
    }
