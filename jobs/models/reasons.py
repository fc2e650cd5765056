"""Reasons per assignment: the features that most raise or lower a strategy's predicted conversion uplift.

A reason is a TreeSHAP contribution (``Booster.predict(..., pred_contribs=True)``) of the XGBoost
conversion model, differenced between the chosen strategy's head and the control's head, so it
explains the *uplift* of the chosen strategy over ``no_action``, not the level of conversion.

- T-learner with a shared base (:class:`~jobs.models.xgb_uplift.XGBUpliftTLearner`): a strategy's
  head is the base booster plus its correction booster (fitted on the base's margin), so a head's
  contributions are the base's plus its correction's. Each head's log-odds contributions are put on
  the probability scale at its own prediction (times ``p (1 - p)``, the slope of the logistic
  function there) and the control head's are subtracted from the chosen head's. Without the scaling
  the base would cancel; with it, a feature that raises the base rate also raises the uplift of a
  strategy that shifts the log-odds (the base term is weighted by ``p_s (1 - p_s) - p_c (1 - p_c)``).
  Each booster's bias (its expected value) is left out: the reasons say how this customer's uplift
  differs from that of an average customer, feature by feature.
- DR-learner (:class:`~jobs.models.xgb_uplift.XGBDRLearner`): the strategy's effect booster
  regresses the uplift itself, in probability units; its contributions are the reasons.

**Scale**: approximate probability points (pp) of P(convert) of the raw (uncalibrated) XGBoost
conversion model: ``p (1 - p)`` times a log-odds contribution is its first-order effect on the
probability, so the reasons are a linearisation at the customer's prediction, exact for small
contributions and an over- or understatement for large ones. The served model may calibrate the
probabilities afterwards (docs/MODELS.md); the reasons explain the XGBoost model before that step.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobs.models.frame import CONTROL

if TYPE_CHECKING:
    import numpy as np

    from jobs.models.frame import FeatureSpec
    from jobs.models.pyfunc import UpliftPredictor

log = logging.getLogger(__name__)

#: reasons kept per assignment
TOP_K = 3


def explainer(predictor: UpliftPredictor) -> tuple[FeatureSpec, Any] | None:
    """The feature spec and XGBoost conversion learner that explain ``predictor``; None for Keras.

    A fusion is explained by its XGBoost component (the blend's other half, Keras, has no tree
    contributions); a Keras predictor has no reasons.
    """
    if predictor.kind == "xgboost":
        return predictor.spec, predictor.conversion
    if predictor.kind == "fusion" and "xgboost" in predictor.components:
        component = predictor.components["xgboost"]
        return component.spec, component.conversion
    return None


def uplift_contributions(model: Any, X: Any, chosen: Sequence[str], control: str = CONTROL) -> np.ndarray:
    """(n, F) contributions of each feature to row i's conversion uplift of ``chosen[i]`` over ``control``, in pp.

    ``model`` is a fitted conversion T-learner or DR-learner; ``X`` its input matrix (columns in
    ``model.feature_names_`` order). Rows whose chosen strategy is the control get zeros.
    """
    import numpy as np
    import xgboost as xgb

    from jobs.models.xgb_uplift import XGBDRLearner

    X = np.asarray(X, dtype="float32")
    chosen = np.asarray(chosen).astype(str)
    if len(chosen) != len(X):
        raise ValueError(f"X has {len(X)} rows, chosen {len(chosen)}")
    out = np.zeros((len(X), X.shape[1]), dtype="float64")
    is_dr = isinstance(model, XGBDRLearner)
    if not is_dr and not model.objective.startswith("binary"):
        raise ValueError(f"reasons explain a conversion model (binary objective), not {model.objective!r}")
    for s in sorted(set(chosen) - {control}):
        if s not in model.strategies_:
            raise ValueError(f"strategy {s!r} is not one of the model's {model.strategies_}")
        rows = np.flatnonzero(chosen == s)
        data = xgb.DMatrix(X[rows], feature_names=model.feature_names_)
        if is_dr:
            if s in model.boosters_:  # a strategy without an effect booster has the control's probability
                contrib = model.boosters_[s].predict(
                    data, pred_contribs=True, iteration_range=(0, model.best_iteration_[s] + 1)
                )
                out[rows] = 100.0 * contrib[:, :-1]
            continue
        base = np.zeros((len(rows), X.shape[1]))
        if model.base_booster_ is not None:
            rounds = (0, model.base_iteration_ + 1)
            base = model.base_booster_.predict(data, pred_contribs=True, iteration_range=rounds)[:, :-1]
            data.set_base_margin(model._margin(data))  # the corrections start from the base's margin
        pp = np.zeros((len(rows), X.shape[1]))
        for name, sign in ((s, 1.0), (control, -1.0)):
            booster, rounds = model.boosters_[name], (0, model.best_iteration_[name] + 1)
            p = booster.predict(data, iteration_range=rounds)
            head = base + booster.predict(data, pred_contribs=True, iteration_range=rounds)[:, :-1]
            pp += sign * (p * (1.0 - p))[:, None] * head
        out[rows] = 100.0 * pp
    return out


def top_reasons(contributions: Any, X: Any, feature_names: Sequence[str], k: int = TOP_K) -> list[list[dict[str, Any]]]:
    """Per row, the ``k`` largest contributions by absolute value (zeros left out), largest first.

    Each reason is ``{"feature": name, "value": the row's value (None if missing), "contribution": pp}``.
    """
    import numpy as np

    contributions = np.asarray(contributions, dtype="float64")
    X = np.asarray(X, dtype="float64")
    if contributions.shape != X.shape or contributions.shape[1] != len(feature_names):
        raise ValueError(f"shapes differ: contributions {contributions.shape}, X {X.shape}, {len(feature_names)} names")
    k = min(k, contributions.shape[1])
    if k <= 0:
        return [[] for _ in range(len(X))]
    magnitude = np.abs(contributions)
    top = np.argpartition(-magnitude, k - 1, axis=1)[:, :k] if k < contributions.shape[1] else None
    out = []
    for i in range(len(X)):
        cols = top[i] if top is not None else np.arange(contributions.shape[1])
        cols = sorted(cols, key=lambda j: (-magnitude[i, j], j))[:k]
        out.append(
            [
                {
                    "feature": str(feature_names[j]),
                    "value": None if math.isnan(X[i, j]) else _plain_number(X[i, j]),
                    "contribution": round(float(contributions[i, j]), 4),
                }
                for j in cols
                if magnitude[i, j] > 0
            ]
        )
    return out


def format_reason(feature: str, value: float | None, contribution: float) -> str:
    """One reason in plain words: ``"recency_days 3: +0.80 pp"``, ``"region=north: -0.12 pp"``."""
    if "=" in feature and value in (0, 1):  # a one-hot level
        what = feature if value == 1 else f"not {feature}"
    elif value is None:
        what = f"{feature} missing"
    else:
        what = f"{feature} {_plain_number(value)}"
    return f"{what}: {contribution:+.2f} pp"


def reason_columns(reasons: Sequence[dict[str, Any]] | None, k: int = TOP_K) -> dict[str, str | None]:
    """The warehouse columns of one assignment: ``reasons`` (JSON) and ``reason_1`` .. ``reason_k`` (plain words)."""
    items = list(reasons or [])
    out: dict[str, str | None] = {"reasons": json.dumps(items, separators=(",", ":")) if reasons is not None else None}
    for j in range(k):
        out[f"reason_{j + 1}"] = (
            format_reason(items[j]["feature"], items[j]["value"], items[j]["contribution"]) if j < len(items) else None
        )
    return out


def mean_abs_contributions(model: Any, X: Any, control: str = CONTROL) -> dict[str, np.ndarray]:
    """Per strategy other than ``control``: the mean |contribution| (pp) of each feature over the rows of ``X``."""
    import numpy as np

    return {
        s: np.abs(uplift_contributions(model, X, [s] * len(X), control)).mean(axis=0)
        for s in model.strategies_
        if s != control
    }


def _plain_number(value: float) -> float | int:
    """An integer-valued float as an int (``3.0`` -> ``3``), others to 4 significant digits."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return int(value)
    return float(f"{value:.4g}")
