"""Calibrated, shrunk uplift: what a model's per-strategy effects are worth on held-out outcomes.

An uplift model's predicted effects mix signal and noise. Spending a budget on predicted effects
that are noise loses money, so before the optimiser sees them the effects are recalibrated against
realised outcomes of rows the model never saw (inverse-propensity weighted, so each arm stands for
the whole population), and shrunk toward zero where the evidence is weak. On the logit scale, with
``eta_0(x)`` the model's control logit and ``tau_s(x) = eta_s(x) - eta_0(x)`` its effect of ``s``:

* **base**: on the held-out control rows, ``y ~ Bernoulli(sigmoid(a_0 + b_0 (eta_0 - c_0)))``
  (intercept and slope: Platt scaling of the control response);
* **effect of s**: on the held-out rows of s, with the calibrated base as offset,
  ``y ~ Bernoulli(sigmoid(base(x) + alpha_s + beta_s (tau_s(x) - t_s)))``: ``alpha_s`` is the
  average effect the outcomes support (``t_s`` centres the model's effects), ``beta_s`` the share
  of the model's effect *differences between customers* that the outcomes confirm (the calibration
  slope: 1 calibrated, 0 no signal, above 1 too timid);
* **shrinkage** (:func:`shrink_jointly`, once for the effects and once for the slopes, across the
  strategies): the coefficients are kept only when, together, they are told from noise (the sum of
  their squared z-scores passes a chi-square test at ``level``, 95%); then each is shrunk toward
  zero by the empirical-Bayes factor ``tau^2 / (tau^2 + se^2)``, where ``tau^2 = mean(theta^2) -
  mean(se^2)`` is the spread of the true coefficients the estimates imply (James-Stein across
  strategies). ``beta`` is clipped to ``[0, max_slope]``. The effect's standard error includes the
  base intercept's (the effect is a contrast with the calibrated control). A model whose uplift is
  pure noise keeps neither average effects nor differences between customers, so the optimiser gives
  its strategies to (almost) nobody, however cheap they are; real effects several standard errors
  strong keep most of their size, and a weak one is believed as far as the others make it plausible.

The calibrated probability is ``sigmoid(base(x) + alpha'_s + beta'_s (tau_s(x) - t_s))``; with
``heterogeneity=False`` the differences between customers are left out (``beta'_s = 0``): each
strategy's effect is its calibrated average on the logit scale, and customers differ only through
the base. That is the cautious default of training (:mod:`jobs.training.candidates`): the
heterogeneous calibration must win off-policy to be used. Both
weighted fits are Newton-Raphson on the weighted log-likelihood (weights scaled to mean 1 per
fit); the standard errors come from its Fisher information. :func:`calibration_table` gives the
plot's points: held-out rows in deciles of predicted uplift, each with its mean prediction before
and after calibration and its inverse-propensity-weighted realised uplift.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

log = logging.getLogger(__name__)
#: probabilities are clipped to this distance from 0 and 1 before taking logits
EPS = 1e-6


def logit(p: ArrayLike) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return np.log(q / (1 - q))


def sigmoid(z: ArrayLike) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype="float64"), -35, 35)))


def weighted_logistic(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray, ridge: float = 1e-6, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (intercept first) and standard errors of a weighted logistic fit with an offset."""
    n = len(y)
    Z = np.hstack([np.ones((n, 1)), np.asarray(X, dtype="float64").reshape(n, -1)])
    beta = np.zeros(Z.shape[1])
    H = np.eye(Z.shape[1])
    for _ in range(max_iter):
        mu = sigmoid(offset + Z @ beta)
        grad = Z.T @ (w * (y - mu)) - ridge * beta
        H = (Z * (w * mu * (1 - mu))[:, None]).T @ Z + ridge * np.eye(Z.shape[1])
        step = np.linalg.lstsq(H, grad, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    cov = np.linalg.pinv(H)
    return beta, np.sqrt(np.clip(np.diag(cov), 0.0, None))


def effect_metrics(prefix: str, strategies: Sequence[str], control_index: int, fitted: Any) -> dict[str, float]:
    """Flat MLflow metrics ``<prefix>_effect__<s>``, ``_se``, ``_used`` and the same for ``slope``, per treated arm.

    ``fitted`` carries the arrays ``effect_``, ``effect_se_``, ``effect_used_``, ``slope_``, ``slope_se_``,
    ``slope_used_`` indexed like ``strategies`` (the calibrator's and the risk effects' shrunk coefficients).
    """
    out: dict[str, float] = {}
    for k, s in enumerate(strategies):
        if k == control_index:
            continue
        for part in ("effect", "slope"):
            for suffix in ("", "_se", "_used"):
                out[f"{prefix}_{part}{suffix}__{s}"] = float(getattr(fitted, f"{part}{suffix}_")[k])
    return out


def shrink_jointly(theta: ArrayLike, se: ArrayLike, level: float = 0.95) -> np.ndarray:
    """Coefficients told from noise together, then shrunk toward zero (empirical Bayes across them).

    All are set to 0 unless ``sum((theta / se)^2)`` exceeds the chi-square quantile at ``level`` with
    one degree of freedom per coefficient; then ``theta * tau^2 / (tau^2 + se^2)`` with
    ``tau^2 = max(0, mean(theta^2) - mean(se^2))``. Non-finite entries count as absent (kept at 0).
    """
    from scipy.stats import chi2

    t = np.asarray(theta, dtype="float64")
    e = np.asarray(se, dtype="float64")
    out = np.zeros_like(t)
    ok = np.isfinite(t) & np.isfinite(e) & (e > 0)
    if not ok.any():
        return out
    statistic = float(np.sum((t[ok] / e[ok]) ** 2))
    if statistic < chi2.ppf(level, int(ok.sum())):
        return out
    tau2 = max(0.0, float(np.mean(t[ok] ** 2) - np.mean(e[ok] ** 2)))
    out[ok] = t[ok] * tau2 / (tau2 + e[ok] ** 2)
    return out


class UpliftCalibrator(BaseEstimator):
    """Recalibrate and shrink per-strategy conversion effects on held-out rows (see the module docstring).

    ``fit(p, y, arm, weights)``: ``p`` (n, K) predicted conversion under every strategy, ``arm`` the
    logged strategy's column, ``y`` 0/1 outcomes, ``weights`` inverse propensities. Fitted attributes:
    ``base_center_``, ``base_intercept_``, ``base_slope_``; per strategy (column order, control 0):
    ``tau_center_``, ``effect_``, ``effect_se_``, ``effect_used_``, ``slope_``, ``slope_se_``,
    ``slope_used_``, ``rows_``. ``transform(p)`` returns the calibrated (n, K) probabilities.
    """

    def __init__(
        self,
        control_index: int = 0,
        level: float = 0.95,
        max_slope: float = 1.5,
        min_rows: int = 50,
        heterogeneity: bool = True,
    ) -> None:
        self.control_index = control_index
        self.level = level
        self.max_slope = max_slope
        self.min_rows = min_rows
        self.heterogeneity = heterogeneity

    def fit(self, p: ArrayLike, y: ArrayLike, arm: ArrayLike, weights: ArrayLike | None = None) -> UpliftCalibrator:
        P = np.asarray(p, dtype="float64")
        if P.ndim != 2:
            raise ValueError(f"p must be (n, K), got shape {P.shape}")
        n, K = P.shape
        y = np.asarray(y, dtype="float64")
        arm = np.asarray(arm, dtype=np.int64)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype="float64")
        if not (len(y) == len(arm) == len(w) == n):
            raise ValueError(f"p, y, arm and weights differ in length: {n}, {len(y)}, {len(arm)}, {len(w)}")
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("y must be 0/1")
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("weights must be positive")
        if arm.size and (arm.min() < 0 or arm.max() >= K):
            raise ValueError(f"arm must index the {K} strategies")
        c = self.control_index
        eta = logit(P)
        eta0 = eta[:, c]
        tau = eta - eta0[:, None]

        ctrl = arm == c
        self.base_center_ = float(eta0[ctrl].mean()) if ctrl.any() else 0.0
        self.base_intercept_, self.base_slope_, base_se = 0.0, 1.0, 0.0
        if ctrl.sum() >= self.min_rows and 0 < y[ctrl].sum() < ctrl.sum():
            coef, se = weighted_logistic(
                (eta0[ctrl] - self.base_center_)[:, None],
                y[ctrl],
                w[ctrl] / w[ctrl].mean(),
                np.full(ctrl.sum(), self.base_center_),
            )
            self.base_intercept_, self.base_slope_ = float(coef[0]), float(max(coef[1], 0.0))
            base_se = float(se[0])
        else:
            log.warning("calibration: %d held-out control rows with both outcomes: base left as is", int(ctrl.sum()))
        base = self._base(eta0)

        self.tau_center_ = np.zeros(K)
        self.effect_, self.effect_se_, self.effect_used_ = np.zeros(K), np.full(K, np.inf), np.zeros(K)
        self.slope_, self.slope_se_, self.slope_used_ = np.zeros(K), np.full(K, np.inf), np.zeros(K)
        self.rows_ = np.bincount(arm, minlength=K).astype(np.int64)
        for k in range(K):
            if k == c:
                self.effect_se_[k] = self.slope_se_[k] = 0.0
                self.slope_[k] = self.slope_used_[k] = 1.0
                continue
            rows = arm == k
            if rows.sum() < self.min_rows or y[rows].sum() == 0 or y[rows].sum() == rows.sum():
                log.warning(
                    "calibration: strategy %d has %d held-out rows with both outcomes: no effect kept", k, rows.sum()
                )
                continue
            self.tau_center_[k] = float(tau[rows, k].mean())
            centred = tau[rows, k] - self.tau_center_[k]
            spread = centred.std() > 1e-9
            X = centred[:, None] if spread else np.zeros((int(rows.sum()), 0))
            coef, se = weighted_logistic(X, y[rows], w[rows] / w[rows].mean(), base[rows])
            self.effect_[k], self.effect_se_[k] = float(coef[0]), math.hypot(float(se[0]), base_se)
            if spread:
                self.slope_[k], self.slope_se_[k] = float(coef[1]), float(se[1])
        others = np.arange(K) != c
        self.effect_used_[others] = shrink_jointly(self.effect_[others], self.effect_se_[others], self.level)
        slopes = shrink_jointly(self.slope_[others], self.slope_se_[others], self.level)
        self.slope_used_[others] = np.clip(slopes, 0.0, self.max_slope)
        return self

    def _base(self, eta0: np.ndarray) -> np.ndarray:
        return self.base_center_ + self.base_intercept_ + self.base_slope_ * (eta0 - self.base_center_)

    def transform(self, p: ArrayLike) -> np.ndarray:
        """The calibrated (n, K) conversion probabilities."""
        self._check_fitted()
        P = np.asarray(p, dtype="float64")
        if P.ndim != 2 or P.shape[1] != len(self.effect_):
            raise ValueError(f"p must be (n, {len(self.effect_)}), got shape {P.shape}")
        c = self.control_index
        eta = logit(P)
        base = self._base(eta[:, c])
        tau = eta - eta[:, [c]]
        out = base[:, None] + self.effect_used_[None, :]
        if self.heterogeneity:
            out = out + self.slope_used_[None, :] * (tau - self.tau_center_[None, :])
        out[:, c] = base
        return sigmoid(out)

    def with_heterogeneity(self, heterogeneity: bool) -> UpliftCalibrator:
        """The same fitted calibration, with or without the differences between customers."""
        import copy

        other = copy.copy(self)
        other.heterogeneity = heterogeneity
        return other

    def summary(self, strategies: Sequence[str]) -> dict[str, float]:
        """Flat metrics for MLflow: ``calib_effect__<s>``, ``_se``, ``_used``, ``calib_slope__<s>``, ..."""
        self._check_fitted()
        out = {"calib_base_intercept": self.base_intercept_, "calib_base_slope": self.base_slope_}
        return out | effect_metrics("calib", strategies, self.control_index, self)

    # --- persistence: a JSON file of the fitted numbers ---
    _FITTED = (
        "base_center_",
        "base_intercept_",
        "base_slope_",
        "tau_center_",
        "effect_",
        "effect_se_",
        "effect_used_",
        "slope_",
        "slope_se_",
        "slope_used_",
        "rows_",
    )

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        data: dict[str, Any] = {"params": self.get_params()}
        for name in self._FITTED:
            value = getattr(self, name)
            data[name] = value.tolist() if isinstance(value, np.ndarray) else value
        Path(path).write_text(json.dumps(data, indent=2, allow_nan=True))

    @classmethod
    def load(cls, path: str | Path) -> UpliftCalibrator:
        data = json.loads(Path(path).read_text())
        model = cls(**data["params"])
        for name in cls._FITTED:
            value = data[name]
            setattr(model, name, np.asarray(value, dtype="float64") if isinstance(value, list) else float(value))
        model.rows_ = model.rows_.astype(np.int64)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "effect_used_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit first")


def calibration_table(
    before: np.ndarray,
    after: np.ndarray,
    y: np.ndarray,
    arm: np.ndarray,
    weights: np.ndarray,
    strategy: int,
    control: int = 0,
    bins: int = 10,
) -> list[dict[str, float]]:
    """Held-out rows of ``strategy`` and the control, in ``bins`` groups of predicted uplift (before).

    Per group: mean predicted uplift before and after calibration and the realised uplift (weighted
    means of the strategy's and the control's rows, Hajek), with its standard error.
    """
    pair = np.isin(arm, (strategy, control))
    up_before = before[pair, strategy] - before[pair, control]
    up_after = after[pair, strategy] - after[pair, control]
    yy, aa, ww = y[pair], arm[pair], weights[pair]
    out = []
    for part in np.array_split(np.argsort(up_before, kind="mergesort"), bins):
        means, variances = [], []
        for a in (strategy, control):
            rows = part[aa[part] == a]
            if rows.size < 2:
                break
            wr = ww[rows]
            m = float(np.sum(wr * yy[rows]) / np.sum(wr))
            means.append(m)
            variances.append(m * (1 - m) / (np.sum(wr) ** 2 / np.sum(wr**2)))
        if len(means) < 2:
            continue
        out.append(
            {
                "predicted_before": float(up_before[part].mean()),
                "predicted_after": float(up_after[part].mean()),
                "realised": means[0] - means[1],
                "realised_se": float(math.sqrt(sum(variances))),
                "rows": int(part.size),
            }
        )
    return out
