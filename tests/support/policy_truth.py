"""The true value of a night's assignments, from the simulator's truth for that date.

``respond`` writes the truth of every customer under every strategy for the run date; the catalogue
turns it into true incremental profit. The oracle solves the same knapsack (budget, caps,
eligibility) on the true values; "best single" gives one strategy to randomly chosen eligible
customers until its budget or cap is used, for each strategy, and keeps the best.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jobs.scoring.catalogue import Catalogue
from jobs.scoring.optimiser import optimise


def true_values(truth_dir: Path, ds: str, customers: pd.Series, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """(true incremental profit, true expected cost), each (n, K) in catalogue order, rows as ``customers``."""
    truth = pd.read_parquet(truth_dir / "campaign_truth" / f"ds={ds}")
    wide = truth.pivot_table(index="customer_id", columns="strategy", values=["p_convert", "expected_revenue"])
    p = wide["p_convert"].reindex(customers)[list(catalogue.names)].to_numpy()
    rev = wide["expected_revenue"].reindex(customers)[list(catalogue.names)].to_numpy()
    if np.isnan(p).any():
        raise ValueError(f"the truth of {ds} lacks some scored customers")
    return catalogue.incremental_profit(p, rev), catalogue.expected_cost(p, rev)


def policy_against_truth(
    assignments: pd.DataFrame, features: pd.DataFrame, truth_dir: Path, ds: str, catalogue: Catalogue, seed: int = 0
) -> dict[str, float]:
    frame = assignments.set_index("customer_id").loc[features["customer_id"]].reset_index()
    value, cost = true_values(truth_dir, ds, frame["customer_id"], catalogue)
    eligible = catalogue.eligibility_mask(features)
    index = {s: k for k, s in enumerate(catalogue.names)}
    chosen = frame["strategy"].map(index).to_numpy()
    rows = np.arange(len(frame))
    n = len(frame)
    caps = catalogue.caps_for(n)
    policy = float(value[rows, chosen].sum())
    spent = float(cost[rows, chosen].sum())
    oracle = optimise(value, cost, eligible, catalogue.budget, caps, control=0)
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
        "policy": policy,
        "policy_spent": spent,
        "oracle": float(oracle.objective),
        "oracle_bound": float(oracle.upper_bound),
        "ratio_to_oracle": policy / float(oracle.objective) if oracle.objective > 0 else float("nan"),
        "best_single_strategy": best,
        "best_single": singles[best],
        "ratio_to_best_single": policy / singles[best] if singles[best] > 0 else float("inf"),
        **{f"single__{k}": v for k, v in singles.items()},
    }
