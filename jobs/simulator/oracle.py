"""What a night's assignments were truly worth, from the simulator's truth (``respond`` writes it).

``true_values`` turns the truth of every customer under every strategy into true incremental profit
and true expected cost with the strategy catalogue; ``against_oracle`` compares the assigned
strategies with the oracle, which solves the same knapsack (budget, caps, eligibility) on the true
values. Only the simulator knows the truth: a real shop measures against its holdout instead
(:mod:`jobs.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from jobs.scoring.catalogue import Catalogue


def true_values(truth_dir: Path, ds: str, customers: pd.Series, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """(true incremental profit, true expected cost), each (n, K) in catalogue order, rows as ``customers``."""
    path = truth_dir / "campaign_truth" / f"ds={ds}"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: `msp simulate respond` writes the truth of a run date")
    truth = pd.read_parquet(path)
    wide = truth.pivot_table(index="customer_id", columns="strategy", values=["p_convert", "expected_revenue"])
    p = wide["p_convert"].reindex(customers)[list(catalogue.names)].to_numpy()
    rev = wide["expected_revenue"].reindex(customers)[list(catalogue.names)].to_numpy()
    if np.isnan(p).any():
        raise ValueError(f"the truth of {ds} lacks some scored customers")
    return catalogue.incremental_profit(p, rev), catalogue.expected_cost(p, rev)


def against_oracle(
    assignments: pd.DataFrame, features: pd.DataFrame, truth_dir: Path, ds: str, catalogue: Catalogue
) -> dict[str, float]:
    """True incremental profit of the assigned strategies and of the budget-constrained oracle."""
    from jobs.scoring.optimiser import optimise

    frame = assignments.set_index("customer_id").loc[features["customer_id"]].reset_index()
    value, cost = true_values(truth_dir, ds, frame["customer_id"], catalogue)
    chosen = frame["strategy"].map({s: k for k, s in enumerate(catalogue.names)}).to_numpy()
    rows = np.arange(len(frame))
    eligible = catalogue.eligibility_mask(features)
    n = len(frame)
    oracle = optimise(
        catalogue.objective(value, cost), cost, eligible, catalogue.budget_for(n), catalogue.caps_for(n), 0
    )
    policy = float(value[rows, chosen].sum())
    oracle_value = float(value[rows, oracle.choice].sum())
    return {
        "policy": policy,
        "policy_spent": float(cost[rows, chosen].sum()),
        "oracle": oracle_value,
        "oracle_bound": float(oracle.upper_bound),
        "ratio_to_oracle": policy / oracle_value if oracle_value > 0 else float("nan"),
    }
