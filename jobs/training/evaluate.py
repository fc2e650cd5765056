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
  given to everyone (DR) and the logging policy itself.
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
