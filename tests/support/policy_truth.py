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
  themselves (noise-free targets, gradient boosting, two-fold cross-fitting), then optimised. No
  model that sees only these features and learns from noisy outcomes should beat it by much: it
  measures how much of the customers' latent traits the features reveal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jobs.features.build import AFFINITY_COLUMN, NUMERIC_FEATURES
from jobs.scoring.catalogue import Catalogue
from jobs.scoring.optimiser import decide, optimise
from jobs.simulator.oracle import against_oracle, true_values


def feature_matrix(features: pd.DataFrame) -> np.ndarray:
    """The numeric features and the category-affinity map (one column per category), NaN kept."""
    affinity = pd.DataFrame([dict(m) if m is not None else {} for m in features[AFFINITY_COLUMN]], index=features.index)
    numeric = features[list(NUMERIC_FEATURES)].astype("float64")
    return np.hstack([numeric.to_numpy(), affinity.reindex(sorted(affinity.columns), axis=1).to_numpy(dtype="float64")])


def feature_ceiling(
    value: np.ndarray, cost: np.ndarray, features: pd.DataFrame, catalogue: Catalogue, seed: int = 0
) -> float:
    """True value of the knapsack on the true incremental profit as predicted from the features (see above)."""
    import xgboost as xgb

    X = feature_matrix(features)
    fold = np.random.default_rng(seed).random(len(X)) < 0.5
    predicted = np.zeros_like(value)
    for k in range(1, value.shape[1]):
        for train in (fold, ~fold):
            model = xgb.XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, n_jobs=2, random_state=seed)
            predicted[~train, k] = model.fit(X[train], value[train, k]).predict(X[~train])
    eligible = catalogue.eligibility_mask(features)
    chosen = optimise(predicted, cost, eligible, catalogue.budget, catalogue.caps_for(len(X)), control=0).choice
    return float(value[np.arange(len(X)), chosen].sum())


def policy_against_truth(
    assignments: pd.DataFrame, features: pd.DataFrame, truth_dir: Path, ds: str, catalogue: Catalogue, seed: int = 0
) -> dict[str, float]:
    frame = assignments.set_index("customer_id").loc[features["customer_id"]].reset_index()
    value, cost = true_values(truth_dir, ds, frame["customer_id"], catalogue)
    eligible = catalogue.eligibility_mask(features)
    rows = np.arange(len(frame))
    caps = catalogue.caps_for(len(frame))
    base = against_oracle(assignments, features, truth_dir, ds, catalogue)
    policy, oracle = base["policy"], base["oracle"]
    _, randomised = decide(
        value,
        cost,
        eligible,
        catalogue.budget,
        caps,
        holdout_share=catalogue.holdout_share,
        explore_share=catalogue.explore_share,
        rng_seed=int(ds.replace("-", "")),
    )
    randomised_oracle = float(value[rows, randomised.strategy].sum())
    ceiling = feature_ceiling(value, cost, features, catalogue, seed)
    rng = np.random.default_rng(seed)
    singles = {}
    for k, name in enumerate(catalogue.names):
        if k == 0:
            continue
        order = rng.permutation(np.flatnonzero(eligible[:, k]))
        budget_rows = np.searchsorted(np.cumsum(cost[order, k]), catalogue.budget, side="right")
        take = order[: min(budget_rows, caps[k])]
        singles[name] = float(value[take, k].sum())
    best = max(singles, key=lambda s: singles[s])
    return {
        **base,
        "randomised_oracle": randomised_oracle,
        "ratio_to_randomised_oracle": policy / randomised_oracle if randomised_oracle > 0 else float("nan"),
        "feature_ceiling": ceiling,
        "feature_ceiling_to_oracle": ceiling / oracle if oracle > 0 else float("nan"),
        "best_single_strategy": best,
        "best_single": singles[best],
        "ratio_to_best_single": policy / singles[best] if singles[best] > 0 else float("inf"),
        **{f"single__{k}": v for k, v in singles.items()},
    }
