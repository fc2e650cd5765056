"""Held-out evaluation of an uplift model: response metrics, uplift metrics, off-policy value, plots.

Everything here is computed from the held-out rows and the model's two (n, K) predictions
(conversion probability and expected net revenue under every strategy):

- response quality on the logged arm: AUC, log loss, accuracy, precision, recall, F1, NPV, LR+,
  LR-, expected calibration error (``conv_*``), revenue RMSE;
- uplift per strategy against ``no_action``: Qini coefficient, AUUC, uplift@10% and @30%, and the
  error variance of the predicted group-average uplift beyond sampling noise (``uplift_error_var``,
  pooled over strategies: the model-error term of marketing_evaluate's predicted intervals);
- the induced policy (the strategy with the highest expected net revenue) valued off-policy with
  IPS, SNIPS and doubly robust estimators, with bootstrap intervals, next to each single strategy
  given to everyone (DR) and the logging policy itself;
- the **catalogue policy** (what the nightly optimiser would decide: incremental profit, costs,
  budget, caps, eligibility) valued off-policy in profit per customer (``policy_profit_*``): what the
  champion gate compares, with one outcome model shared by every candidate so that none grades itself
  (:func:`reference_outcome`: the candidate whose predictions fit the held-out profits best).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.models.frame import CONTROL

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from jobs.scoring.catalogue import Catalogue

log = logging.getLogger(__name__)
#: held-out variance of the model's group-average uplift error (see jobs.models.metrics.uplift_error_variance)
UPLIFT_ERROR_METRIC = "uplift_error_var"


@dataclass
class Evaluation:
    metrics: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)
    policy_action: Any = None


def logged_index(test: pd.DataFrame, strategies: tuple[str, ...]) -> np.ndarray:
    import numpy as np

    index = {s: j for j, s in enumerate(strategies)}
    unknown = sorted(set(test["strategy"]) - set(index))
    if unknown:
        raise ValueError(f"held-out rows name strategies the model does not know: {unknown}")
    return test["strategy"].map(index).to_numpy(dtype=np.int64)


def policy_values(
    test: pd.DataFrame,
    q_hat: np.ndarray,
    strategies: tuple[str, ...],
    reward: str = "revenue",
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """IPS / SNIPS / DR value of argmax(q_hat) with bootstrap bounds, plus each single strategy's DR value."""
    import numpy as np

    from jobs.models.metrics import policy_value, policy_value_ci

    r = test[reward].to_numpy(dtype="float64")
    a = logged_index(test, strategies)
    p = test["propensity"].to_numpy(dtype="float64")
    pi = np.argmax(q_hat, axis=1)
    out = {f"policy_{k}": v for k, v in policy_value_ci(r, a, p, pi, q_hat, n_boot=n_boot, random_state=seed).items()}
    singles = {}
    for j, s in enumerate(strategies):
        singles[s] = policy_value(r, a, p, np.full(len(r), j), q_hat)["dr"]
        out[f"single_dr__{s}"] = singles[s]
    best = max(singles, key=lambda s: singles[s])
    out["best_single_dr"] = singles[best]
    out["policy_gain_over_best_single"] = out["policy_dr"] - singles[best]
    out["logged_value"] = float(r.mean())
    for j, s in enumerate(strategies):
        out[f"policy_share__{s}"] = float(np.mean(pi == j))
    return out


def catalogue_frame(
    catalogue: Catalogue, strategies: tuple[str, ...], p: np.ndarray, rev: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model predictions in the catalogue's strategy order: (p, rev, expected profit), each (n, K)."""
    import numpy as np

    pc = catalogue.take_columns(p, strategies)
    rc = catalogue.take_columns(rev, strategies)
    return pc, rc, catalogue.expected_profit(np.clip(pc, 0.0, 1.0), rc)


def reference_outcome(test: pd.DataFrame, profits: list[np.ndarray], catalogue: Catalogue) -> int:
    """Which of several expected-profit predictions (n, K) is the doubly robust estimators' outcome model.

    The one that predicts the held-out rows' realised profit of their logged strategy best (least
    squared error): the outcome model does not bias a DR estimate, whatever it is, but a poor one
    makes it noisy, and comparing policies is a comparison of noisy estimates. The same one serves
    every policy compared, so no policy is graded by its own model.
    """
    import numpy as np

    a, r = realised_profit(test, catalogue)
    known = a >= 0
    rows = np.flatnonzero(known)
    errors = [float(np.mean((q[rows, a[rows]] - r[rows]) ** 2)) if rows.size else 0.0 for q in profits]
    return int(np.argmin(errors))


def catalogue_policy(
    test: pd.DataFrame, profit: np.ndarray, cost: np.ndarray, catalogue: Catalogue, budget_per_customer: float
) -> np.ndarray:
    """The strategy (catalogue column) the nightly optimiser would give each held-out row.

    The same knapsack as scoring (eligibility from the rows' features, caps, the objective with
    ``min_roi``), with the run's budget per customer times the held-out rows; no holdout or exploration.
    """
    from jobs.scoring.optimiser import optimise

    n = len(test)
    value = profit - profit[:, [catalogue.control_index]]
    budget = budget_per_customer * n if math.isfinite(budget_per_customer) else math.inf
    eligible = catalogue.eligibility_mask(test)
    return optimise(catalogue.objective(value, cost), cost, eligible, budget, catalogue.caps_for(n), control=0).choice


def realised_profit(test: pd.DataFrame, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out row: the logged strategy's catalogue column (-1 if not in the catalogue) and its
    realised profit: margin x net revenue - contact cost - fulfilment cost if converted."""
    import numpy as np

    index = {s: j for j, s in enumerate(catalogue.names)}
    a = test["strategy"].map(lambda s: index.get(s, -1)).to_numpy(dtype=np.int64)
    known = a >= 0
    margin = catalogue.margin_rates()
    contact = np.array([s.cost_per_contact for s in catalogue.strategies])
    fulfil = np.array([s.fulfilment_cost_per_order for s in catalogue.strategies])
    revenue = test["revenue"].to_numpy(dtype="float64")
    converted = test["converted"].to_numpy(dtype="float64")
    r = np.zeros(len(test))
    r[known] = margin[a[known]] * revenue[known] - contact[a[known]] - fulfil[a[known]] * converted[known]
    return a, r


def profit_policy_values(
    test: pd.DataFrame,
    policy: np.ndarray,
    q_ref: np.ndarray,
    catalogue: Catalogue,
    n_boot: int = 200,
    seed: int = 0,
    prefix: str = "policy_profit",
) -> dict[str, float]:
    """Off-policy profit per customer of the catalogue policy ``policy`` on held-out rows (IPS, SNIPS, DR
    with ``q_ref`` as the outcome model, bootstrap bounds), its DR gain over the control, and its mix.

    Rows whose logged strategy is not in the catalogue never match the policy (their DR term is q_ref's).
    """
    import numpy as np

    from jobs.models.metrics import policy_value, policy_value_ci

    a, r = realised_profit(test, catalogue)
    p = test["propensity"].to_numpy(dtype="float64")
    known = a >= 0
    # a strategy outside the catalogue is given an index no policy chooses, with a zero outcome-model term
    q = np.hstack([q_ref, np.zeros((len(q_ref), 1))])
    a_ext = np.where(known, a, q_ref.shape[1])
    r_ext = np.where(known, r, 0.0)
    values = policy_value_ci(r_ext, a_ext, p, policy, q, n_boot=n_boot, random_state=seed)
    out = {f"{prefix}_{k}": v for k, v in values.items() if k != "match_rate"}
    control = policy_value(r_ext, a_ext, p, np.full(len(r), catalogue.control_index), q)["dr"]
    out[f"{prefix}_gain_dr"] = out[f"{prefix}_dr"] - control
    for j, s in enumerate(catalogue.names):
        out[f"{prefix}_share__{s}"] = float(np.mean(policy == j))
    return out


def evaluate(
    test: pd.DataFrame,
    conversion: np.ndarray,
    revenue: np.ndarray,
    strategies: tuple[str, ...],
    n_boot: int = 200,
    seed: int = 0,
    with_figures: bool = True,
) -> Evaluation:
    """Every held-out metric of one model (see the module docstring), and its plots."""
    import numpy as np

    from jobs.models import metrics as M

    a = logged_index(test, strategies)
    rows = np.arange(len(test))
    y = test["converted"].to_numpy(dtype="int64")
    p_logged = conversion[rows, a]
    out: dict[str, float] = {f"conv_{k}": v for k, v in M.classification_metrics(y, p_logged).items()}
    rev_logged = revenue[rows, a]
    out["revenue_rmse"] = float(np.sqrt(np.mean((test["revenue"].to_numpy() - rev_logged) ** 2)))
    out["revenue_bias"] = float(np.mean(rev_logged - test["revenue"].to_numpy()))

    control = strategies.index(CONTROL)
    qinis: list[float] = []
    errors: list[float] = []
    for j, s in enumerate(strategies):
        if j == control:
            continue
        pair = np.isin(a, (j, control))
        treat = (a[pair] == j).astype(int)
        uplift = conversion[pair, j] - conversion[pair, control]
        if treat.min() == treat.max():
            log.warning("held-out rows lack %s or %s: no uplift metrics for %s", s, CONTROL, s)
            continue
        qini = M.qini_auc_score(y[pair], uplift, treat)
        error = M.uplift_error_variance(y[pair], uplift, treat, test["propensity"].to_numpy(dtype="float64")[pair])
        errors.append(error["error_var"])
        out[f"uplift_error_var__{s}"] = error["error_var"]
        out[f"uplift_bias__{s}"] = error["bias"]
        qinis.append(qini)
        out[f"qini__{s}"] = qini
        out[f"auuc__{s}"] = M.uplift_auc_score(y[pair], uplift, treat)
        for k in (0.1, 0.3):
            try:
                out[f"uplift_at_{int(k * 100)}__{s}"] = M.uplift_at_k(y[pair], uplift, treat, strategy="overall", k=k)
            except ValueError as exc:
                log.warning("uplift@%d%% for %s undefined: %s", int(k * 100), s, exc)
    out["qini_mean"] = float(np.mean(qinis)) if qinis else math.nan
    # pooled over strategies: the model-error term of the predicted intervals of marketing_evaluate
    known = [e for e in errors if not math.isnan(e)]
    out[UPLIFT_ERROR_METRIC] = float(np.mean(known)) if known else math.nan

    out.update(policy_values(test, revenue, strategies, "revenue", n_boot, seed))
    conv_policy = policy_values(test, conversion, strategies, "converted", n_boot, seed)
    keep = ("policy_ips", "policy_snips", "policy_dr")
    out.update({"conv_" + k: v for k, v in conv_policy.items() if k.startswith(keep)})

    evaluation = Evaluation(metrics=out, policy_action=np.argmax(revenue, axis=1))
    if with_figures:
        evaluation.figures = figures(test, conversion, strategies, y, p_logged, a)
    return evaluation


def figures(
    test: pd.DataFrame, conversion: np.ndarray, strategies: tuple[str, ...], y: Any, p_logged: Any, a: Any
) -> dict[str, Any]:
    import numpy as np

    from jobs.models import plots

    out = {
        "plots/roc.png": plots.roc_figure(y, p_logged, "ROC: conversion on the logged strategy"),
        "plots/pr.png": plots.pr_figure(y, p_logged, "Precision-recall: conversion"),
        "plots/calibration.png": plots.calibration_figure(y, p_logged, 10, "Calibration: conversion"),
        "plots/confusion.png": plots.confusion_figure(y, p_logged, 0.5, "Confusion matrix at 0.5"),
    }
    control = strategies.index(CONTROL)
    for j, s in enumerate(strategies):
        pair = np.isin(a, (j, control))
        treat = (a[pair] == j).astype(int)
        if j == control or treat.min() == treat.max():
            continue
        uplift = conversion[pair, j] - conversion[pair, control]
        out[f"plots/qini_{s}.png"] = plots.qini_figure(y[pair], uplift, treat, f"Qini: {s} vs {CONTROL}")
    return out


def truth_report(
    test: pd.DataFrame, truth: pd.DataFrame, conversion: np.ndarray, revenue: np.ndarray, strategies: tuple[str, ...]
) -> dict[str, float]:
    """Against simulator truth: Spearman of learned vs true uplift per strategy, and the true value of
    the induced policy against the oracle's and each single strategy's (for tests and benchmarks).

    ``truth`` has one row per (campaign_date, customer_id, strategy) with ``p_convert`` and
    ``expected_revenue`` (the simulator's ``campaign_truth``).
    """
    import numpy as np

    from jobs.models.metrics import oracle_and_policy_truth, spearman

    keys = test[["send_date", "customer_id"]].astype(str)
    wide = truth.assign(campaign_date=truth["campaign_date"].astype(str).str[:10]).pivot_table(
        index=["campaign_date", "customer_id"], columns="strategy", values=["p_convert", "expected_revenue"]
    )
    index = list(zip(keys["send_date"], keys["customer_id"], strict=True))
    true_p = wide["p_convert"].reindex(index)[list(strategies)].to_numpy()
    true_r = wide["expected_revenue"].reindex(index)[list(strategies)].to_numpy()
    if np.isnan(true_p).any():
        raise ValueError("truth lacks some held-out (send_date, customer_id) rows")
    control = strategies.index(CONTROL)
    out: dict[str, float] = {}
    for j, s in enumerate(strategies):
        if j == control:
            continue
        out[f"spearman_uplift__{s}"] = spearman(
            conversion[:, j] - conversion[:, control], true_p[:, j] - true_p[:, control]
        )
    value = oracle_and_policy_truth(true_r, np.argmax(revenue, axis=1))
    out["true_policy_value"] = value["policy"]
    out["true_oracle_value"] = value["oracle"]
    out["true_best_single_value"] = value["best_single"]
    out["true_policy_ratio"] = value["ratio"]
    base = true_r[:, control].mean()
    out["true_control_value"] = float(base)
    oracle_gain = value["oracle"] - base
    out["true_incremental_ratio"] = (value["policy"] - base) / oracle_gain if oracle_gain > 0 else math.nan
    return out


def truth_policy_report(
    test: pd.DataFrame,
    truth: pd.DataFrame,
    p: np.ndarray,
    rev: np.ndarray,
    strategies: tuple[str, ...],
    catalogue: Catalogue,
    per_customer: float,
) -> dict[str, float]:
    """Against simulator truth, on held-out rows: the true incremental profit per customer of the catalogue
    policy the model induces, of the oracle (the same knapsack on the truth) and of the best single
    strategy given to randomly chosen eligible rows within the same budget (for tests and benchmarks)."""
    import numpy as np

    keys = list(zip(test["send_date"].astype(str), test["customer_id"].astype(str), strict=True))
    wide = truth.assign(campaign_date=truth["campaign_date"].astype(str).str[:10]).pivot_table(
        index=["campaign_date", "customer_id"], columns="strategy", values=["p_convert", "expected_revenue"]
    )
    names = list(catalogue.names)
    true_p = wide["p_convert"].reindex(keys)[names].to_numpy()
    true_r = wide["expected_revenue"].reindex(keys)[names].to_numpy()
    if np.isnan(true_p).any():
        raise ValueError("truth lacks some held-out (send_date, customer_id) rows")
    value = catalogue.incremental_profit(true_p, true_r)
    true_cost = catalogue.expected_cost(true_p, true_r)
    rows = np.arange(len(test))
    pc, rc, profit = catalogue_frame(catalogue, strategies, p, rev)
    policy = catalogue_policy(test, profit, catalogue.expected_cost(np.clip(pc, 0, 1), rc), catalogue, per_customer)
    oracle = catalogue_policy(test, value, true_cost, catalogue, per_customer)
    eligible = catalogue.eligibility_mask(test)
    budget = per_customer * len(test) if math.isfinite(per_customer) else math.inf
    caps = catalogue.caps_for(len(test))
    rng = np.random.default_rng(0)
    singles = {}
    for k, name in enumerate(names):
        if k == catalogue.control_index:
            continue
        order = rng.permutation(np.flatnonzero(eligible[:, k]))
        take = order[: min(int(np.searchsorted(np.cumsum(true_cost[order, k]), budget, side="right")), caps[k])]
        singles[name] = float(value[take, k].sum()) / len(test)
    out = {
        "true_policy_profit": float(value[rows, policy].mean()),
        "true_oracle_profit": float(value[rows, oracle].mean()),
        "true_best_single_profit": max(singles.values()),
        "true_best_single": max(singles, key=lambda s: singles[s]),
    }
    out["true_policy_to_oracle"] = out["true_policy_profit"] / out["true_oracle_profit"]
    out["true_policy_to_best_single"] = out["true_policy_profit"] / out["true_best_single_profit"]
    return out
