"""Decisions for a data set's customers and what they earned on held-out rows.

Pure functions on arrays (column 0 is the control):

- :func:`incremental_value`: the model's expected value of each strategy minus the control's, from
  conversion probabilities x the value per conversion, or from expected revenue;
- :func:`assign`: per customer the strategy of highest ``incremental value - (1 + lam) x cost``, or
  the control when none is positive. ``min_roi = r`` fixes ``lam = r`` (treat while the expected
  incremental profit per unit of cost is at least r); a budget finds the smallest ``lam`` whose
  spend fits it (bisection: spend falls as ``lam`` rises), the Lagrangian relaxation of the
  multiple-choice knapsack;
- :func:`policy_report`: the policy's off-policy value (IPS, SNIPS, DR with bootstrap intervals)
  in realised profit per customer, each single strategy given to everyone, and, among the
  customers the policy targets, the incremental response rate (IRR: treated minus control
  conversion rate, inverse-propensity weighted) and the net incremental revenue (NIR: value x
  incremental conversions among them, or their incremental revenue, minus the cost of contacting them).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from jobs.imports.campaign_log import EconomicsSpec

BISECTION_STEPS = 60


def incremental_value(p_convert: np.ndarray, revenue: np.ndarray, economics: EconomicsSpec) -> np.ndarray:
    """(n, K) expected value of each strategy minus the control's (column 0)."""
    value = revenue if economics.value_per_conversion is None else p_convert * economics.value_per_conversion
    return value - value[:, :1]


def realised_value(converted: np.ndarray, revenue: np.ndarray, economics: EconomicsSpec) -> np.ndarray:
    import numpy as np

    if economics.value_per_conversion is None:
        return np.asarray(revenue, dtype="float64")
    return np.asarray(converted, dtype="float64") * economics.value_per_conversion


def _choose(gain: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    import numpy as np

    net = gain - (1.0 + lam) * cost[None, :]
    net[:, 0] = 0.0
    best = np.argmax(net, axis=1)
    return np.where(net[np.arange(len(net)), best] > 0.0, best, 0)


def assign(gain: np.ndarray, cost: np.ndarray, budget: float | None = None, min_roi: float | None = None) -> np.ndarray:
    """Per row the chosen strategy index (see the module docstring); spend never exceeds ``budget``."""
    import numpy as np

    cost = np.asarray(cost, dtype="float64")
    if budget is not None and min_roi is not None:
        raise ValueError("give a budget or a min_roi, not both")
    if budget is None:
        return _choose(gain, cost, float(min_roi or 0.0))
    if budget < 0:
        raise ValueError(f"budget {budget} is negative")
    actions = _choose(gain, cost, 0.0)
    if cost[actions].sum() <= budget:
        return actions
    lo, hi = 0.0, 1.0
    while cost[_choose(gain, cost, hi)].sum() > budget:
        hi *= 2.0
        if hi > 1e12:  # no multiplier fits (every cost is zero would have fitted): treat nobody
            return np.zeros(len(gain), dtype=np.int64)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        if cost[_choose(gain, cost, mid)].sum() > budget:
            lo = mid
        else:
            hi = mid
    return _choose(gain, cost, hi)


def _rate(y: np.ndarray, w: np.ndarray) -> float:
    return float((w * y).sum() / w.sum()) if w.sum() > 0 else math.nan


def policy_report(
    actions: np.ndarray,
    logged: np.ndarray,
    propensity: np.ndarray,
    converted: np.ndarray,
    value: np.ndarray,
    cost: np.ndarray,
    q_profit: np.ndarray,
    strategies: tuple[str, ...],
    n_boot: int = 200,
) -> dict[str, float]:
    """Held-out figures of a policy (module docstring); ``q_profit`` is the model's (n, K) expected profit."""
    import numpy as np

    from jobs.models.metrics import policy_value, policy_value_ci

    cost = np.asarray(cost, dtype="float64")
    profit = value - cost[logged]
    value_ci = policy_value_ci(profit, logged, propensity, actions, q_profit, n_boot)
    out = {f"policy_profit_{k}": v for k, v in value_ci.items()}
    singles = {}
    for j, s in enumerate(strategies):
        single = policy_value(profit, logged, propensity, np.full(len(logged), j), q_profit)
        singles[s] = single["ips"]
        out[f"single_profit_ips__{s}"] = single["ips"]
    best = max(singles, key=singles.get)
    out["best_single_profit_ips"] = singles[best]
    out["policy_profit_gain_ips"] = out["policy_profit_ips"] - singles[best]
    out["targeted_share"] = float(np.mean(actions != 0))
    targeted = actions != 0
    w = 1.0 / propensity
    treated = targeted & (logged == actions)
    control = targeted & (logged == 0)
    out["irr"] = _rate(converted[treated], w[treated]) - _rate(converted[control], w[control])
    incremental = _rate(value[treated], w[treated]) - _rate(value[control], w[control])
    out["nir"] = incremental * targeted.sum() - cost[actions[targeted]].sum()
    out["nir_per_customer"] = out["nir"] / len(actions)
    return {**out, "best_single_strategy_index": float(strategies.index(best))}
