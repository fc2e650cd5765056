"""Evaluation metrics on plain numpy arrays: classification, calibration, uplift and off-policy value.

Nothing here touches MLflow, Spark or pandas, so every function can be unit-tested on tiny inline
arrays. The uplift curves and scores reproduce scikit-uplift (``sklift.metrics``) exactly,
including its tie handling and its normalisation, without depending on the package.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

log = logging.getLogger(__name__)

LOG_LOSS_EPS = 1e-15
BOOTSTRAP_CHUNK = 2_000_000  # max elements of one bootstrap index block (bounds memory at ~16 MB)


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------


def _vector(values: ArrayLike, name: str, dtype: type = float) -> np.ndarray:
    """A 1-D array of ``dtype``, or a ValueError naming the argument."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    try:
        array = array.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"length mismatch: {lengths}")
    return next(iter(lengths.values()))


def _binary(values: ArrayLike, name: str) -> np.ndarray:
    """A float vector of 0/1 values (both classes need not be present)."""
    array = _vector(values, name)
    bad = ~np.isin(array, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must contain only 0 and 1, got e.g. {array[bad][:3].tolist()}")
    return array


def _probabilities(values: ArrayLike, name: str = "p") -> np.ndarray:
    array = _vector(values, name)
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got range [{array.min()}, {array.max()}]")
    return array


def _weights(sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    weight = _vector(sample_weight, "sample_weight")
    if len(weight) != n:
        raise ValueError(f"length mismatch: sample_weight has {len(weight)} rows, y_true has {n}")
    if weight.size and weight.min() < 0.0:
        raise ValueError("sample_weight must be non-negative")
    return weight


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero."""
    return float(numerator / denominator) if denominator != 0 else math.nan


def _likelihood_ratio(rate: float, other: float) -> float:
    """rate / other with the conventions inf (rate > 0, other == 0) and NaN (0/0 or undefined)."""
    if math.isnan(rate) or math.isnan(other):
        return math.nan
    if other == 0.0:
        return math.inf if rate > 0.0 else math.nan
    return rate / other


# ---------------------------------------------------------------------------------------------
# classification and calibration
# ---------------------------------------------------------------------------------------------


def _weighted_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Weighted ROC AUC (ties in ``p`` count one half, as in sklearn); NaN with one class."""
    pos, neg = float(np.sum(w * y)), float(np.sum(w * (1.0 - y)))
    if pos == 0.0 or neg == 0.0:
        return math.nan
    order = np.argsort(p, kind="mergesort")[::-1]
    p_sorted, y_sorted, w_sorted = p[order], y[order], w[order]
    ends = np.r_[np.flatnonzero(np.diff(p_sorted)), p_sorted.size - 1]
    tpr = np.r_[0.0, np.cumsum(w_sorted * y_sorted)[ends] / pos]
    fpr = np.r_[0.0, np.cumsum(w_sorted * (1.0 - y_sorted))[ends] / neg]
    return float(np.trapezoid(tpr, fpr))


def calibration_bins(
    y_true: ArrayLike, p: ArrayLike, n_bins: int = 10, sample_weight: ArrayLike | None = None
) -> dict[str, np.ndarray]:
    """Equal-width reliability table on [0, 1]: per bin ``edges`` (n_bins + 1), ``weight``, ``mean_p``, ``mean_y``.

    Bin ``b`` holds ``edges[b] <= p < edges[b + 1]`` and ``p == 1.0`` goes to the last bin, as in
    ``np.histogram`` (sklearn's ``calibration_curve`` closes bins on the right instead, so the two differ
    only for p exactly on an inner edge). Empty bins have weight 0 and NaN means.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, prob = _binary(y_true, "y_true"), _probabilities(p)
    n = _same_length(y_true=y, p=prob)
    w = _weights(sample_weight, n)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    index = np.searchsorted(edges[1:-1], prob, side="right")
    weight = np.bincount(index, weights=w, minlength=n_bins)
    sum_p = np.bincount(index, weights=w * prob, minlength=n_bins)
    sum_y = np.bincount(index, weights=w * y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(weight > 0, sum_p / weight, np.nan)
        mean_y = np.where(weight > 0, sum_y / weight, np.nan)
    return {"edges": edges, "weight": weight, "mean_p": mean_p, "mean_y": mean_y}


def expected_calibration_error(
    y_true: ArrayLike, p: ArrayLike, n_bins: int = 10, sample_weight: ArrayLike | None = None
) -> float:
    """ECE: sum over equal-width bins of (bin weight share) * |mean(y) - mean(p)|; NaN if total weight is 0."""
    table = calibration_bins(y_true, p, n_bins=n_bins, sample_weight=sample_weight)
    total = float(table["weight"].sum())
    if total == 0.0:
        return math.nan
    filled = table["weight"] > 0
    gaps = np.abs(table["mean_y"][filled] - table["mean_p"][filled])
    return float(np.sum(table["weight"][filled] / total * gaps))


def classification_metrics(
    y_true: ArrayLike,
    p: ArrayLike,
    threshold: float = 0.5,
    sample_weight: ArrayLike | None = None,
    n_bins: int = 10,
) -> dict[str, float]:
    """Threshold-free and thresholded metrics of predicted probabilities ``p`` for 0/1 labels.

    A row is predicted positive when ``p >= threshold``. With sample weights every metric uses the
    weighted confusion matrix (tp, fp, tn, fn are sums of weights), and ``n``, ``positives`` are
    weighted totals (plain counts without weights); ``base_rate = positives / n``.

    Conventions (nothing raises on degenerate data; bad input such as p outside [0, 1] does):
      * ``auc`` NaN when only one class has positive weight (ties in p count one half);
      * ``log_loss`` clips p to [1e-15, 1 - 1e-15] and is defined for one class;
      * ``precision`` NaN with no predicted positives, ``npv`` NaN with no predicted negatives,
        ``recall`` NaN with no positives, ``accuracy`` NaN only when the total weight is 0;
      * ``f1 = 2tp / (2tp + fp + fn)``: 0 when there are positives or predicted positives but no
        true positive, NaN only when there are neither;
      * ``lr_plus = TPR / FPR``: inf when FPR = 0 < TPR, NaN when FPR = TPR = 0 or either is undefined
        (one class); ``lr_minus = FNR / TNR`` likewise (inf when TNR = 0 < FNR);
      * ``ece`` from :func:`expected_calibration_error` with ``n_bins`` equal-width bins.
    """
    y, prob = _binary(y_true, "y_true"), _probabilities(p)
    n = _same_length(y_true=y, p=prob)
    w = _weights(sample_weight, n)
    predicted = prob >= threshold
    tp = float(np.sum(w[predicted] * y[predicted]))
    fp = float(np.sum(w[predicted] * (1.0 - y[predicted])))
    fn = float(np.sum(w[~predicted] * y[~predicted]))
    tn = float(np.sum(w[~predicted] * (1.0 - y[~predicted])))
    total, positives = tp + fp + fn + tn, tp + fn
    clipped = np.clip(prob, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    losses = -(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))
    tpr, fpr = _ratio(tp, tp + fn), _ratio(fp, fp + tn)
    fnr, tnr = _ratio(fn, tp + fn), _ratio(tn, fp + tn)
    return {
        "auc": _weighted_auc(y, prob, w),
        "log_loss": _ratio(float(np.sum(w * losses)), total),
        "accuracy": _ratio(tp + tn, total),
        "precision": _ratio(tp, tp + fp),
        "recall": tpr,
        "f1": _ratio(2.0 * tp, 2.0 * tp + fp + fn),
        "npv": _ratio(tn, tn + fn),
        "lr_plus": _likelihood_ratio(tpr, fpr),
        "lr_minus": _likelihood_ratio(fnr, tnr),
        "ece": expected_calibration_error(y, prob, n_bins=n_bins, sample_weight=w),
        "n": total,
        "positives": positives,
        "base_rate": _ratio(positives, total),
    }


# ---------------------------------------------------------------------------------------------
# uplift (scikit-uplift definitions)
#
# Conventions shared by every uplift function: y_true must be 0/1 (one class is allowed: the curves
# are then flat and the normalised scores NaN, where sklift raises); treatment must be 0/1 with both
# groups present, else ValueError naming the missing group (sklift raises too, less clearly).
# Curves are evaluated at each distinct score only, so tied rows enter together, as in sklift.
# ---------------------------------------------------------------------------------------------


def _uplift_inputs(
    y_true: ArrayLike, uplift: ArrayLike | None, treatment: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (y, uplift, treatment); treatment must be 0/1 with both groups present."""
    y = _binary(y_true, "y_true")
    score = np.zeros(len(y)) if uplift is None else _vector(uplift, "uplift")
    treat = _vector(treatment, "treatment")
    _same_length(y_true=y, uplift=score, treatment=treat)
    if not np.all(np.isin(treat, (0.0, 1.0))):
        raise ValueError(f"treatment must be binary 0/1, got values {np.unique(treat)[:5].tolist()}")
    n_treated = int(treat.sum())
    if n_treated == 0 or n_treated == len(treat):
        group = "no treated rows (treatment all 0)" if n_treated == 0 else "no control rows (treatment all 1)"
        raise ValueError(f"uplift metrics need both treatment groups: {group}")
    return y, score, treat


def _cumulative(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts at each distinct uplift threshold, best first: (n_all, n_treated, y_treated, n_control, y_control)."""
    order = np.argsort(uplift, kind="mergesort")[::-1]
    y, uplift, treatment = y[order], uplift[order], treatment[order]
    ends = np.r_[np.flatnonzero(np.diff(uplift)), uplift.size - 1]
    n_treated = np.cumsum(treatment)[ends]
    y_treated = np.cumsum(y * treatment)[ends]
    y_control = np.cumsum(y * (1.0 - treatment))[ends]
    n_all = ends + 1
    return n_all, n_treated, y_treated, n_all - n_treated, y_control


def _from_origin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepend (0, 0) unless the curve already starts there (as sklift does)."""
    if x.size == 0 or y[0] != 0 or x[0] != 0:
        return np.r_[0, x], np.r_[0.0, y]
    return x, y


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=float)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def uplift_curve(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """sklift's uplift curve: x = rows targeted (at each distinct score), y = (rate_T - rate_C) * x."""
    n_all, n_t, y_t, n_c, y_c = _cumulative(*_uplift_inputs(y_true, uplift, treatment))
    values = (_safe_divide(y_t, n_t) - _safe_divide(y_c, n_c)) * n_all
    return _from_origin(n_all, values)


def qini_curve(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """sklift's Qini curve: x = rows targeted, y = Y_T - Y_C * N_T / N_C (0 while no control row is in)."""
    n_all, n_t, y_t, n_c, y_c = _cumulative(*_uplift_inputs(y_true, uplift, treatment))
    values = y_t - y_c * _safe_divide(n_t, n_c)
    return _from_origin(n_all, values)


def perfect_uplift_curve(y_true: ArrayLike, treatment: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """sklift's optimum uplift curve: treated responders first, control responders last."""
    y, _, treat = _uplift_inputs(y_true, None, treatment)
    control_responders = np.sum((y == 1) & (treat == 0))
    treated_non_responders = np.sum((y == 0) & (treat == 1))
    summand = y if control_responders > treated_non_responders else treat
    return uplift_curve(y, 2.0 * (y == treat) + summand, treat)


def perfect_qini_curve(
    y_true: ArrayLike, treatment: ArrayLike, negative_effect: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """sklift's optimum Qini curve; without negative effects a rise at slope 1 to the overall gain, then flat."""
    if not isinstance(negative_effect, bool):
        raise TypeError(f"negative_effect must be bool, got {type(negative_effect).__name__}")
    y, _, treat = _uplift_inputs(y_true, None, treatment)
    if negative_effect:
        return qini_curve(y, y * treat - y * (1.0 - treat), treat)
    n_treated, n_control = treat.sum(), (1.0 - treat).sum()
    gain = float(y[treat == 1].sum() - n_treated * y[treat == 0].sum() / n_control)
    # sklift's own quirk, kept for parity: the x of the knee is the gain itself
    return np.array([0.0, gain, float(len(y))]), np.array([0.0, gain, gain])


def _normalised_area(actual: tuple[np.ndarray, np.ndarray], perfect: tuple[np.ndarray, np.ndarray]) -> float:
    """(area(actual) - area(baseline)) / (area(perfect) - area(baseline)); NaN when the denominator is 0."""
    x_perfect, y_perfect = perfect
    baseline = float(np.trapezoid([0.0, y_perfect[-1]], [0.0, x_perfect[-1]]))
    best = float(np.trapezoid(y_perfect, x_perfect)) - baseline
    model = float(np.trapezoid(actual[1], actual[0])) - baseline
    if best == 0.0:
        log.debug("uplift score undefined: the perfect curve has no area above the random line")
        return math.nan
    return model / best


def uplift_auc_score(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """sklift's normalised AUUC: model area over the random line divided by the perfect curve's; NaN if 0/0."""
    y, score, treat = _uplift_inputs(y_true, uplift, treatment)
    return _normalised_area(uplift_curve(y, score, treat), perfect_uplift_curve(y, treat))


def qini_auc_score(y_true: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, negative_effect: bool = True) -> float:
    """sklift's Qini coefficient: model Qini area over the random line divided by the perfect one's.

    NaN when the perfect curve has no area over the random line (e.g. no responder at all); ValueError
    with ``negative_effect=False`` and a negative overall gain (where sklift fails too).
    """
    y, score, treat = _uplift_inputs(y_true, uplift, treatment)
    perfect = perfect_qini_curve(y, treat, negative_effect=negative_effect)
    if not negative_effect and perfect[1][-1] < 0:
        # sklift fails here too (its auc() rejects the non-monotonic x of the knee)
        raise ValueError("qini_auc_score(negative_effect=False) is undefined when the overall gain is negative")
    return _normalised_area(qini_curve(y, score, treat), perfect)


def uplift_at_k(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    strategy: Literal["overall", "by_group"] = "overall",
    k: float = 0.3,
) -> float:
    """Response rate of treated minus control among the top ``k`` rows by uplift (sklift's definition).

    ``k`` is a share in (0, 1) (rows taken = ``int(share * size)``, truncated like sklift) or a row
    count in [1, n). ``"overall"`` takes the top k of all rows, then compares the two groups inside;
    ``"by_group"`` takes the top k of each group separately. Ties keep sklift's order (reversed stable
    sort). Raises ValueError when a group has no row in its top k.
    """
    y, score, treat = _uplift_inputs(y_true, uplift, treatment)
    if strategy not in ("overall", "by_group"):
        raise ValueError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")
    n = len(y)
    kind = np.asarray(k).dtype.kind
    if kind not in ("i", "u", "f"):
        raise ValueError(f"k must be a float share in (0, 1) or an int count, got {k!r}")
    if (kind == "f" and not 0.0 < k < 1.0) or (kind in "iu" and not 0 < k < n):
        raise ValueError(f"k={k} out of range: use a share in (0, 1) or a count in [1, {n - 1}]")
    order = np.argsort(score, kind="mergesort")[::-1]
    y_sorted, t_sorted = y[order], treat[order]
    if strategy == "overall":
        size = int(n * k) if kind == "f" else int(k)
        top_y, top_t = y_sorted[:size], t_sorted[:size]
        treated, control = top_y[top_t == 1], top_y[top_t == 0]
    else:
        n_treated, n_control = int(treat.sum()), int(n - treat.sum())
        take_t = int(n_treated * k) if kind == "f" else int(k)
        take_c = int(n_control * k) if kind == "f" else int(k)
        for group, take, size in (("treatment", take_t, n_treated), ("control", take_c, n_control)):
            if take > size:
                raise ValueError(f"k={k} asks for {take} rows of the {group} group, which has only {size}")
        treated, control = y_sorted[t_sorted == 1][:take_t], y_sorted[t_sorted == 0][:take_c]
    for group, rows in (("treatment", treated), ("control", control)):
        if rows.size == 0:
            raise ValueError(f"uplift_at_k(k={k}, strategy={strategy!r}): the {group} group has no rows in the top k")
    return float(treated.mean() - control.mean())


# ---------------------------------------------------------------------------------------------
# off-policy evaluation
# ---------------------------------------------------------------------------------------------


def _actions(values: ArrayLike, name: str, n_actions: int | None = None) -> np.ndarray:
    array = _vector(values, name)
    if not np.all(array == np.round(array)) or (array.size and array.min() < 0):
        raise ValueError(f"{name} must hold non-negative integer action indices")
    if n_actions is not None and array.size and array.max() >= n_actions:
        raise ValueError(f"{name} has action {int(array.max())} but q_hat has only {n_actions} columns")
    return array.astype(np.int64)


def _policy_terms(
    reward: ArrayLike,
    action: ArrayLike,
    propensity: ArrayLike,
    policy_action: ArrayLike,
    q_hat: ArrayLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-row (w*r, w, dr term) with w = 1[a = pi] / propensity; the dr term is None without q_hat."""
    r, prop = _vector(reward, "reward"), _vector(propensity, "propensity")
    q = None if q_hat is None else np.asarray(q_hat, dtype=float)
    if q is not None and (q.ndim != 2 or q.shape[0] != len(r)):
        raise ValueError(f"q_hat must have shape (n, K) = ({len(r)}, K), got {q.shape}")
    if q is not None and not np.all(np.isfinite(q)):
        raise ValueError("q_hat contains NaN or infinite values")
    n_actions = None if q is None else q.shape[1]
    a, pi = _actions(action, "action", n_actions), _actions(policy_action, "policy_action", n_actions)
    n = _same_length(reward=r, action=a, propensity=prop, policy_action=pi)
    if n == 0:
        raise ValueError("policy_value needs at least one logged row")
    if prop.min() <= 0.0 or prop.max() > 1.0:
        raise ValueError("propensity must lie in (0, 1]")
    w = (a == pi) / prop
    if q is None:
        return w * r, w, None
    rows = np.arange(n)
    return w * r, w, q[rows, pi] + w * (r - q[rows, a])


def policy_value(
    reward: ArrayLike,
    action: ArrayLike,
    propensity: ArrayLike,
    policy_action: ArrayLike,
    q_hat: ArrayLike | None = None,
) -> dict[str, float]:
    """Off-policy value of a deterministic policy from logged bandit data.

    IPS = mean(1[a=pi] r / p); SNIPS = sum(1[a=pi] r / p) / sum(1[a=pi] / p), NaN when no row matches;
    DR = mean(q_hat[pi] + 1[a=pi] / p * (r - q_hat[a])), NaN without ``q_hat``; ``match_rate`` = share
    of rows where the logged action is the policy's.
    """
    return _policy_point(*_policy_terms(reward, action, propensity, policy_action, q_hat))


def _policy_point(weighted_reward: np.ndarray, w: np.ndarray, dr_terms: np.ndarray | None) -> dict[str, float]:
    return {
        "ips": float(weighted_reward.mean()),
        "snips": _ratio(float(weighted_reward.sum()), float(w.sum())),
        "dr": math.nan if dr_terms is None else float(dr_terms.mean()),
        "match_rate": float(np.mean(w > 0)),
    }


def policy_value_ci(
    reward: ArrayLike,
    action: ArrayLike,
    propensity: ArrayLike,
    policy_action: ArrayLike,
    q_hat: ArrayLike | None = None,
    n_boot: int = 200,
    alpha: float = 0.05,
    random_state: int | None = 0,
) -> dict[str, float]:
    """:func:`policy_value` plus percentile-bootstrap bounds ``ips_lo/_hi``, ``snips_lo/_hi``, ``dr_lo/_hi``.

    Rows are resampled with replacement ``n_boot`` times (vectorised in index blocks); resamples where
    SNIPS is undefined are dropped from its quantiles. Bounds are NaN when the estimate is undefined.
    """
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    weighted_reward, w, dr_terms = _policy_terms(reward, action, propensity, policy_action, q_hat)
    result = _policy_point(weighted_reward, w, dr_terms)
    n = len(w)
    columns = np.column_stack([weighted_reward, w] + ([] if dr_terms is None else [dr_terms]))
    rng = np.random.default_rng(random_state)
    sums = np.empty((int(n_boot), columns.shape[1]))
    block = max(1, BOOTSTRAP_CHUNK // n)
    for start in range(0, int(n_boot), block):
        stop = min(int(n_boot), start + block)
        index = rng.integers(0, n, size=(stop - start, n))
        for j in range(columns.shape[1]):
            sums[start:stop, j] = columns[:, j][index].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = {
            "ips": sums[:, 0] / n,
            "snips": np.where(sums[:, 1] > 0, sums[:, 0] / sums[:, 1], np.nan),
            "dr": sums[:, 2] / n if dr_terms is not None else np.full(len(sums), np.nan),
        }
    for name, values in draws.items():
        finite = values[np.isfinite(values)]
        if math.isnan(result[name]) or finite.size == 0:
            result[f"{name}_lo"], result[f"{name}_hi"] = math.nan, math.nan
        else:
            lo, hi = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
            result[f"{name}_lo"], result[f"{name}_hi"] = float(lo), float(hi)
    return result


def oracle_and_policy_truth(true_value: ArrayLike, policy_action: ArrayLike) -> dict[str, float]:
    """True value of a policy against simulator truth ``true_value`` (n, K) of every action for every row.

    Keys: ``policy`` = mean of true_value[i, pi_i]; ``oracle`` = mean of the row maxima; ``action_<k>``
    = mean of column k (action k for everyone); ``best_single`` = the best of those; ``ratio`` =
    policy / oracle (NaN when the oracle value is 0).
    """
    truth = np.asarray(true_value, dtype=float)
    if truth.ndim != 2 or truth.shape[0] == 0 or truth.shape[1] == 0:
        raise ValueError(f"true_value must be a non-empty (n, K) array, got shape {truth.shape}")
    pi = _actions(policy_action, "policy_action", truth.shape[1])
    _same_length(true_value=truth, policy_action=pi)
    per_action = truth.mean(axis=0)
    policy = float(truth[np.arange(len(pi)), pi].mean())
    oracle = float(truth.max(axis=1).mean())
    out = {"policy": policy, "oracle": oracle, "ratio": _ratio(policy, oracle), "best_single": float(per_action.max())}
    out.update({f"action_{k}": float(value) for k, value in enumerate(per_action)})
    return out


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation (scipy); NaN with fewer than 2 rows or a constant input."""
    from scipy.stats import spearmanr

    x, y = _vector(a, "a"), _vector(b, "b")
    _same_length(a=x, b=y)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(spearmanr(x, y).statistic)


def uplift_error_variance(
    y_true: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    propensity: ArrayLike | None = None,
    bins: int = 5,
) -> dict[str, float]:
    """Out-of-sample error of the model's *group-average* uplift, beyond sampling noise.

    The rows (one strategy against the control, held out) are cut into ``bins`` equal-count groups by
    predicted uplift. In each group the observed uplift (inverse-propensity weighted means of treated
    and control, Hajek) is compared with the mean predicted uplift; the squared residual minus the
    observed uplift's sampling variance (Wald, with Kish effective counts) estimates the model's error
    variance for a group of customers, method-of-moments style, floored at 0:

    ``error_var = max(0, mean_b[(obs_b - pred_b)^2 - v_b])``.

    It is what a predicted interval of a group's realised uplift must add to the sampling variance so
    it also covers the model's own error (jobs.evaluation.effects). Returns ``error_var``, ``bias``
    (mean of obs - pred), ``sampling_var`` (mean of v_b) and ``bins`` (groups with both arms).
    """
    y, score, treat = _uplift_inputs(y_true, uplift, treatment)
    p = np.ones(len(y)) if propensity is None else _vector(propensity, "propensity")
    _same_length(y_true=y, propensity=p)
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError("propensity must lie in (0, 1]")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    w = 1.0 / p
    order = np.argsort(score, kind="mergesort")
    residuals, variances = [], []
    for part in np.array_split(order, bins):
        arms = []
        for arm in (1.0, 0.0):
            rows = part[treat[part] == arm]
            if rows.size < 2:
                break
            wr = w[rows]
            mean = float(np.sum(wr * y[rows]) / np.sum(wr))
            n_eff = float(np.sum(wr) ** 2 / np.sum(wr**2))
            arms.append((mean, mean * (1 - mean) / n_eff))
        if len(arms) < 2:
            continue
        (m1, v1), (m0, v0) = arms
        residuals.append(m1 - m0 - float(score[part].mean()))
        variances.append(v1 + v0)
    if not residuals:
        return {"error_var": math.nan, "bias": math.nan, "sampling_var": math.nan, "bins": 0.0}
    r, v = np.asarray(residuals), np.asarray(variances)
    return {
        "error_var": float(max(0.0, np.mean(r**2 - v))),
        "bias": float(r.mean()),
        "sampling_var": float(v.mean()),
        "bins": float(len(r)),
    }
