"""Evaluation metrics and plots: exact values worked out by hand on tiny arrays, sklearn cross-checks."""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jobs.models import plots
from jobs.models.metrics import (
    calibration_bins,
    classification_metrics,
    expected_calibration_error,
    oracle_and_policy_truth,
    perfect_qini_curve,
    perfect_uplift_curve,
    policy_value,
    policy_value_ci,
    qini_auc_score,
    qini_curve,
    spearman,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
    uplift_error_variance,
)

approx = pytest.approx

# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

Y = np.array([1, 0, 1, 0, 1])
P = np.array([0.9, 0.8, 0.4, 0.2, 0.6])


def test_classification_metrics_by_hand() -> None:
    # threshold 0.5: predicted positive p in {0.9 (y=1), 0.8 (y=0), 0.6 (y=1)} -> tp=2, fp=1
    #                predicted negative p in {0.4 (y=1), 0.2 (y=0)}            -> fn=1, tn=1
    # AUC: pairs (pos, neg) with pos > neg: (.9,.8) (.9,.2) (.4,.2) (.6,.2) -> 4 of 3*2 = 2/3
    # ECE, 2 bins: [0, .5) holds p {.4, .2}, y {1, 0}: |0.5 - 0.3| = 0.2, share 2/5
    #              [.5, 1] holds p {.9, .8, .6}, y {1, 0, 1}: |2/3 - 2.3/3| = 0.1, share 3/5
    #              -> 0.4 * 0.2 + 0.6 * 0.1 = 0.14
    m = classification_metrics(Y, P, threshold=0.5, n_bins=2)
    assert m["auc"] == approx(2 / 3)
    assert m["log_loss"] == approx(-(math.log(0.9) + math.log(0.2) + math.log(0.4) + math.log(0.8) + math.log(0.6)) / 5)
    assert m["accuracy"] == approx(3 / 5)  # (tp + tn) / 5
    assert m["precision"] == approx(2 / 3)  # 2 / (2 + 1)
    assert m["recall"] == approx(2 / 3)  # 2 / (2 + 1)
    assert m["f1"] == approx(2 / 3)  # 2*2 / (2*2 + 1 + 1)
    assert m["npv"] == approx(1 / 2)  # tn / (tn + fn)
    assert m["lr_plus"] == approx(4 / 3)  # TPR 2/3 over FPR 1/2
    assert m["lr_minus"] == approx(2 / 3)  # FNR 1/3 over TNR 1/2
    assert m["ece"] == approx(0.14)
    assert (m["n"], m["positives"], m["base_rate"]) == (5, 3, approx(0.6))


def test_sample_weight_equals_duplicated_rows() -> None:
    # weight 2 on the first row (p=.9, y=1) -> tp=3, fp=1, fn=1, tn=1
    m = classification_metrics(Y, P, sample_weight=[2, 1, 1, 1, 1], n_bins=4)
    assert m["precision"] == approx(3 / 4)
    assert m["recall"] == approx(3 / 4)
    assert m["accuracy"] == approx(4 / 6)
    assert (m["n"], m["positives"]) == (6, 4)
    duplicated = classification_metrics(np.r_[Y, 1], np.r_[P, 0.9], n_bins=4)
    assert m == approx(duplicated)
    # zero weight removes a row
    dropped = classification_metrics(Y, P, sample_weight=[1, 1, 1, 1, 0], n_bins=4)
    assert dropped == approx(classification_metrics(Y[:4], P[:4], n_bins=4))


@pytest.mark.parametrize("weighted", [False, True])
def test_classification_metrics_match_sklearn(weighted: bool) -> None:
    from sklearn.metrics import f1_score, log_loss, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, y.size), 0, 1).round(2)  # rounded: many ties
    w = rng.uniform(0.1, 3.0, y.size) if weighted else None
    m = classification_metrics(y, p, threshold=0.4, sample_weight=w)
    labels = (p >= 0.4).astype(int)
    assert m["auc"] == approx(roc_auc_score(y, p, sample_weight=w))
    assert m["log_loss"] == approx(log_loss(y, p, sample_weight=w))
    assert m["precision"] == approx(precision_score(y, labels, sample_weight=w))
    assert m["recall"] == approx(recall_score(y, labels, sample_weight=w))
    assert m["f1"] == approx(f1_score(y, labels, sample_weight=w))


def test_calibration_bins_match_sklearn() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 500)
    y = (rng.uniform(0, 1, 500) < p).astype(int)
    table = calibration_bins(y, p, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    filled = table["weight"] > 0
    assert table["mean_y"][filled] == approx(prob_true)
    assert table["mean_p"][filled] == approx(prob_pred)
    # values on the edges: [a, b) bins, the last one closed, like np.histogram
    on_edges = p.round(1)
    counts = calibration_bins(y, on_edges, n_bins=10)["weight"]
    assert counts.tolist() == np.histogram(on_edges, bins=10, range=(0, 1))[0].tolist()
    assert calibration_bins([0, 1], [0.5, 0.0], n_bins=2)["weight"].tolist() == [1, 1]


def test_ece_puts_p_equal_one_in_last_bin() -> None:
    # p=1.0 and p=0.95 share the last bin: |mean y 0.5 - mean p 0.975| = 0.475
    # (a separate bin for p=1 would give 0.5*|0-1| + 0.5*|1-0.95| = 0.525)
    assert expected_calibration_error([0, 1], [1.0, 0.95], n_bins=10) == approx(0.475)
    assert expected_calibration_error([1], [1.0]) == 0.0
    # weights: 3 rows of y=0 at p=.1 and 1 row of y=1 at p=.1 -> one bin |0.25 - 0.1|
    assert expected_calibration_error([0, 1], [0.1, 0.1], sample_weight=[3, 1]) == approx(0.15)


def test_no_positives() -> None:
    # y all 0; predicted positive only p=.7 -> tp=0, fp=1, tn=2, fn=0
    m = classification_metrics([0, 0, 0], [0.2, 0.7, 0.1])
    assert math.isnan(m["auc"])
    assert math.isnan(m["recall"])  # no positives
    assert m["precision"] == 0.0  # 0 / (0 + 1)
    assert m["f1"] == 0.0  # 0 / (0 + 1 + 0)
    assert m["npv"] == 1.0  # 2 / 2
    assert math.isnan(m["lr_plus"]) and math.isnan(m["lr_minus"])  # TPR and FNR undefined
    assert (m["positives"], m["base_rate"]) == (0, 0)
    assert math.isfinite(m["log_loss"]) and math.isfinite(m["ece"])


def test_one_class_positive_and_no_predicted_positive() -> None:
    only_pos = classification_metrics([1, 1], [0.7, 0.3])
    assert math.isnan(only_pos["auc"]) and math.isnan(only_pos["lr_plus"])  # FPR undefined
    # mixed labels, nothing predicted positive: tp=fp=0, fn=1, tn=1
    none_pred = classification_metrics([1, 0], [0.3, 0.2])
    assert math.isnan(none_pred["precision"])
    assert none_pred["f1"] == 0.0  # 0 / (0 + 0 + 1)
    assert math.isnan(none_pred["lr_plus"])  # TPR 0, FPR 0 -> 0/0
    assert none_pred["lr_minus"] == 1.0  # FNR 1 / TNR 1


def test_all_predicted_positive_and_perfect() -> None:
    # tp=2, fp=1, tn=fn=0
    m = classification_metrics([1, 0, 1], [0.9, 0.6, 0.7])
    assert m["precision"] == approx(2 / 3) and m["recall"] == 1.0
    assert math.isnan(m["npv"])  # no predicted negatives
    assert m["lr_plus"] == 1.0  # TPR 1 / FPR 1
    assert math.isnan(m["lr_minus"])  # FNR 0 / TNR 0
    perfect = classification_metrics([1, 0], [0.9, 0.1])
    assert perfect["lr_plus"] == math.inf  # TPR 1, FPR 0
    assert perfect["lr_minus"] == 0.0  # FNR 0 / TNR 1
    assert perfect["auc"] == 1.0


def test_log_loss_clips_and_empty_input() -> None:
    m = classification_metrics([1, 0], [0.0, 1.0])
    assert m["log_loss"] == approx(-math.log(1e-15), rel=1e-4)  # 1 - (1 - 1e-15) is not exactly 1e-15 in floats
    empty = classification_metrics([], [])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("auc", "log_loss", "accuracy", "ece"))


@pytest.mark.parametrize(
    ("y", "p", "weight", "message"),
    [
        ([1, 0], [0.5], None, "length mismatch"),
        ([1, 2], [0.5, 0.5], None, "only 0 and 1"),
        ([1, 0], [0.5, 1.5], None, r"\[0, 1\]"),
        ([1, 0], [0.5, np.nan], None, "NaN"),
        ([1, 0], [0.5, 0.5], [1, -1], "non-negative"),
    ],
)
def test_classification_bad_input(y: list, p: list, weight: list | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, p, sample_weight=weight)


# ---------------------------------------------------------------------------------------------
# uplift (scikit-uplift definitions)
# ---------------------------------------------------------------------------------------------

# rows already in descending uplift order
U_Y = np.array([1, 0, 1, 1, 0, 1])
U_T = np.array([1, 0, 1, 0, 1, 0])
U_S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def test_qini_and_uplift_curves_by_hand() -> None:
    # top n: N_T, Y_T, N_C, Y_C -> qini Y_T - Y_C*N_T/N_C | uplift (Y_T/N_T - Y_C/N_C) * n
    # n=1: 1,1,0,0 -> 1         | (1 - 0) * 1 = 1
    # n=2: 1,1,1,0 -> 1         | (1 - 0) * 2 = 2
    # n=3: 2,2,1,0 -> 2         | (1 - 0) * 3 = 3
    # n=4: 2,2,2,1 -> 2 - 1     | (1 - 1/2) * 4 = 2
    # n=5: 3,2,2,1 -> 2 - 3/2   | (2/3 - 1/2) * 5 = 5/6
    # n=6: 3,2,3,2 -> 2 - 2     | (2/3 - 2/3) * 6 = 0
    x, q = qini_curve(U_Y, U_S, U_T)
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert q == approx([0, 1, 1, 2, 1, 0.5, 0])
    x, u = uplift_curve(U_Y, U_S, U_T)
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert u == approx([0, 1, 2, 3, 2, 5 / 6, 0])


def test_perfect_curves_by_hand() -> None:
    # perfect qini score y*t - y*(1-t) = [1, 0, 1, -1, 0, -1] -> groups of 2 (ties), cumulative:
    # n=2: rows 0,2 (treated responders) -> 2; n=4: + a treated and a control non-responder -> 2 - 0;
    # n=6: + two control responders -> 2 - 2 * 3/3 = 0
    x, q = perfect_qini_curve(U_Y, U_T)
    assert x.tolist() == [0, 2, 4, 6] and q == approx([0, 2, 2, 0])
    # without negative effects: overall gain 2 - 3 * 2/3 = 0 -> knee at (0, 0)
    x, q = perfect_qini_curve(U_Y, U_T, negative_effect=False)
    assert x == approx([0, 0, 6]) and q == approx([0, 0, 0])
    # control responders (2) > treated non-responders (1): score 2*(y == t) + y = [3, 2, 3, 1, 0, 1]
    # n=2 rows 0,2: (1 - 0)*2 = 2; n=3 + row 1: (1 - 0)*3 = 3; n=5 + rows 3,5: (1 - 2/3)*5 = 5/3; n=6: 0
    x, u = perfect_uplift_curve(U_Y, U_T)
    assert x.tolist() == [0, 2, 3, 5, 6] and u == approx([0, 2, 3, 5 / 3, 0])


def test_qini_and_auuc_scores_by_hand() -> None:
    # qini: model area 0.5+1+1.5+1.5+0.75+0.25 = 5.5, perfect area 2+4+2 = 8, random line to (6, 0): 0
    assert qini_auc_score(U_Y, U_S, U_T) == approx(5.5 / 8)
    # uplift: model area .5+1.5+2.5+2.5+17/12+5/12 = 53/6, perfect 2+2.5+14/3+5/6 = 10, random 0
    assert uplift_auc_score(U_Y, U_S, U_T) == approx(53 / 60)


def test_perfect_ranking_scores_one() -> None:
    # y=[1,0,0,1], t=[1,1,0,0]; ranking rows 0, 2, 1, 3 = treated responder, control non-responder,
    # treated non-responder, control responder (sklift's perfect uplift order: score 2*(y==t) + t = [3,1,2,0])
    # qini: n=1: 1; n=2: 1 - 0; n=3: 1 - 0; n=4: 1 - 1*2/2 = 0 -> area .5 + 1 + 1 + .5 = 3;
    # perfect qini (score [1, 0, 0, -1]) has (1, 1) (3, 1) (4, 0): area 3 too
    # uplift: n=1: 1*1; n=2: (1 - 0)*2; n=3: (1/2 - 0)*3; n=4: (1/2 - 1/2)*4 -> the perfect uplift curve itself
    y, t, best = np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0]), [4, 2, 3, 1]
    assert qini_auc_score(y, best, t) == approx(1.0)
    assert uplift_auc_score(y, best, t) == approx(1.0)
    assert qini_auc_score(y, [1, 3, 2, 4], t) < 0  # the reverse ranking
    # sklift's own test cases
    assert qini_auc_score([1, 1], [0.1, 0.3], [0, 1]) == approx(1.0)
    assert qini_auc_score([1, 1], [0.1, 0.3], [1, 0]) == approx(0.0)
    assert uplift_auc_score([1, 1], [0.1, 0.3], [1, 0]) == approx(-1.0)


def test_ties_use_distinct_thresholds() -> None:
    # scores tie in pairs: the curve has points only after each tie group
    # n=2: rows 0 (t1 y1), 1 (t0 y0) -> 1 - 0; n=4: N_T 2, Y_T 1, N_C 2, Y_C 0 -> 1
    x, q = qini_curve([1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0])
    assert x.tolist() == [0, 2, 4] and q == approx([0, 1, 1])


def test_no_responders_gives_nan_scores() -> None:
    y, t = np.zeros(4), np.array([1, 0, 1, 0])
    _, q = qini_curve(y, [4, 3, 2, 1], t)
    assert q == approx([0, 0, 0, 0, 0])
    assert math.isnan(qini_auc_score(y, [4, 3, 2, 1], t))
    assert math.isnan(uplift_auc_score(y, [4, 3, 2, 1], t))


@pytest.mark.parametrize(
    ("strategy", "k", "expected"),
    [
        # overall k=0.5: int(6*.5)=3 rows 0-2 -> treated y {1,1}, control y {0} -> 1 - 0
        ("overall", 0.5, 1.0),
        # overall k=2 rows 0-1 -> treated {1}, control {0} -> 1
        ("overall", 2, 1.0),
        # overall k=4 rows 0-3 -> treated {1,1}, control {0,1} -> 1 - 0.5
        ("overall", 4, 0.5),
        # overall k=0.99: int(5.94)=5 rows 0-4 -> treated {1,1,0}, control {0,1} -> 2/3 - 1/2
        ("overall", 0.99, 1 / 6),
        # by_group k=2: treated rows 0,2 {1,1}; control rows 1,3 {0,1} -> 1 - 0.5
        ("by_group", 2, 0.5),
        # by_group k=0.5: int(3*.5)=1 per group: treated row 0 {1}, control row 1 {0} -> 1
        ("by_group", 0.5, 1.0),
        # by_group k=0.99: int(2.97)=2 per group -> as k=2
        ("by_group", 0.99, 0.5),
    ],
)
def test_uplift_at_k_by_hand(strategy: str, k: float, expected: float) -> None:
    assert uplift_at_k(U_Y, U_S, U_T, strategy=strategy, k=k) == approx(expected)


@pytest.mark.parametrize(
    ("strategy", "k", "message"),
    [
        ("overall", 0.2, "control group has no rows in the top k"),  # int(1.2)=1: one treated row
        ("by_group", 0.2, "treatment group has no rows in the top k"),  # int(0.6)=0
        ("by_group", 4, "has only 3"),
        ("overall", 0, "out of range"),
        ("overall", 1.0, "out of range"),
        ("overall", 6, "out of range"),
        ("overall", True, "k must be"),
        ("best", 0.3, "strategy"),
    ],
)
def test_uplift_at_k_errors(strategy: str, k: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uplift_at_k(U_Y, U_S, U_T, strategy=strategy, k=k)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("y", "score", "t", "message"),
    [
        ([1, 0, 1], [1, 2, 3], [1, 1, 1], "no control rows"),
        ([1, 0, 1], [1, 2, 3], [0, 0, 0], "no treated rows"),
        ([1, 0, 1], [1, 2, 3], [0, 1, 2], "binary"),
        ([1, 0], [1, 2, 3], [0, 1, 1], "length mismatch"),
        ([1, 3, 1], [1, 2, 3], [0, 1, 1], "y_true must contain only 0 and 1"),
    ],
)
def test_uplift_bad_input(y: list, score: list, t: list, message: str) -> None:
    for fn in (qini_curve, uplift_curve, qini_auc_score, uplift_auc_score, uplift_at_k):
        with pytest.raises(ValueError, match=message):
            fn(y, score, t)


def test_qini_without_negative_effect_needs_non_negative_gain() -> None:
    # gain = Y_T - N_T * Y_C / N_C = 0 - 2 * 2/2 < 0
    with pytest.raises(ValueError, match="overall gain is negative"):
        qini_auc_score([0, 0, 1, 1], [4, 3, 2, 1], [1, 1, 0, 0], negative_effect=False)


# ---------------------------------------------------------------------------------------------
# off-policy evaluation
# ---------------------------------------------------------------------------------------------

R = np.array([1.0, 0.0, 2.0, 1.0])
A = np.array([0, 1, 1, 0])
PROP = np.array([0.5, 0.25, 0.25, 0.8])
PI = np.array([0, 0, 1, 1])
Q = np.array([[0.5, 1.0], [0.2, 0.4], [1.0, 1.5], [0.6, 0.9]])


def test_policy_value_by_hand() -> None:
    # matches rows 0 and 2: w = 1[a=pi]/p = [2, 0, 4, 0]
    # IPS = (2*1 + 4*2) / 4 = 2.5; SNIPS = 10 / (2 + 4)
    # DR rows: 0.5 + 2*(1 - 0.5) = 1.5 | 0.2 | 1.5 + 4*(2 - 1.5) = 3.5 | 0.9 -> 6.1 / 4
    v = policy_value(R, A, PROP, PI, q_hat=Q)
    assert v == approx({"ips": 2.5, "snips": 10 / 6, "dr": 1.525, "match_rate": 0.5})
    assert math.isnan(policy_value(R, A, PROP, PI)["dr"])


def test_dr_limits() -> None:
    no_match = policy_value(R, A, PROP, 1 - A, q_hat=Q)
    assert no_match["dr"] == approx(Q[np.arange(4), 1 - A].mean())  # the direct method
    assert no_match["ips"] == 0.0 and math.isnan(no_match["snips"]) and no_match["match_rate"] == 0.0
    zero_q = policy_value(R, A, PROP, PI, q_hat=np.zeros((4, 2)))
    assert zero_q["dr"] == approx(zero_q["ips"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"propensity": [0.5, 0.0, 0.5, 0.5]}, "propensity"),
        ({"action": [0, 1, 1]}, "length mismatch"),
        ({"action": [0, 1.5, 1, 0]}, "integer"),
        ({"q_hat": np.zeros((4, 1))}, "only 1 columns"),
        ({"q_hat": np.zeros((3, 2))}, "shape"),
    ],
)
def test_policy_value_bad_input(kwargs: dict, message: str) -> None:
    args = {"reward": R, "action": A, "propensity": PROP, "policy_action": PI, "q_hat": Q} | kwargs
    with pytest.raises(ValueError, match=message):
        policy_value(**args)


def _logged(n: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform logging over 3 actions; reward ~ N(action + 1, 1); policy picks action 2."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 3, n)
    q = np.tile([1.0, 2.0, 3.0], (n, 1)) + rng.normal(0, 0.3, (n, 3))
    return {
        "reward": action + 1.0 + rng.normal(0, 1, n),
        "action": action,
        "propensity": np.full(n, 1 / 3),
        "policy_action": np.full(n, 2),
        "q_hat": q,
    }


def test_bootstrap_contains_estimate_and_narrows() -> None:
    small = policy_value_ci(**_logged(300, 1), n_boot=200)
    large = policy_value_ci(**_logged(30_000, 2), n_boot=200)
    for ci in (small, large):
        for name in ("ips", "snips", "dr"):
            assert ci[f"{name}_lo"] <= ci[name] <= ci[f"{name}_hi"]
    for name in ("ips", "snips", "dr"):
        assert large[f"{name}_hi"] - large[f"{name}_lo"] < 0.3 * (small[f"{name}_hi"] - small[f"{name}_lo"])
        assert large[f"{name}_lo"] < 3.0 < large[f"{name}_hi"]  # true value of "always action 2" is 3
    assert policy_value_ci(**_logged(300, 1), n_boot=50, random_state=5) == policy_value_ci(
        **_logged(300, 1), n_boot=50, random_state=5
    )
    no_q = policy_value_ci(**{**_logged(300, 1), "q_hat": None}, n_boot=20)
    assert math.isnan(no_q["dr_lo"]) and math.isnan(no_q["dr_hi"])


def test_bootstrap_is_fast() -> None:
    data = _logged(50_000, 3)
    start = time.perf_counter()
    policy_value_ci(**data, n_boot=200)
    assert time.perf_counter() - start < 2.0


def test_oracle_and_policy_truth_by_hand() -> None:
    # policy values 3, 2, 0 -> 5/3; row maxima 3, 4, 5 -> 4; columns 5/3 and 10/3
    truth = oracle_and_policy_truth([[1, 3], [4, 2], [0, 5]], [1, 1, 0])
    assert truth == approx(
        {"policy": 5 / 3, "oracle": 4.0, "ratio": 5 / 12, "best_single": 10 / 3, "action_0": 5 / 3, "action_1": 10 / 3}
    )


def test_spearman() -> None:
    # rank differences 0, -1, 1, 0 -> 1 - 6*2 / (4*(16-1)) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------

RNG = np.random.default_rng(11)
PY = RNG.integers(0, 2, 200)
PP = np.clip(0.4 * PY + RNG.uniform(0, 0.6, 200), 0, 1)
PT = RNG.integers(0, 2, 200)

FIGURES = {
    "roc": lambda y, p, t: plots.roc_figure(y, p, "ROC"),
    "pr": lambda y, p, t: plots.pr_figure(y, p, "PR"),
    "calibration": lambda y, p, t: plots.calibration_figure(y, p, 10, "Calibration"),
    "confusion": lambda y, p, t: plots.confusion_figure(y, p, 0.5, "Confusion"),
    "qini": lambda y, p, t: plots.qini_figure(y, p - 0.5, t, "Qini"),
}
DATASETS = {
    "normal": (PY, PP, PT),
    "all_negative": (np.zeros(20), PP[:20], PT[:20]),
    "all_positive": (np.ones(20), PP[:20], PT[:20]),
    "all_treated": (PY[:20], PP[:20], np.ones(20)),
    "empty": (np.array([]), np.array([]), np.array([])),
}


def _check(figure: Figure) -> None:
    assert isinstance(figure, Figure) and len(figure.axes) >= 1
    assert isinstance(figure.canvas, FigureCanvasAgg)
    figure.savefig(io.BytesIO(), format="png", dpi=40)  # draws everything


# what the title must say for degenerate data; every other combination keeps the plain title
DEGENERATE_TITLES = {
    ("roc", "all_negative"): "ROC undefined: one class only (all 0)",
    ("roc", "all_positive"): "ROC undefined: one class only (all 1)",
    ("roc", "empty"): "ROC undefined: no rows",
    ("pr", "all_negative"): "PR undefined: no positives",
    ("pr", "all_positive"): "one class only (all 1)",
    ("pr", "empty"): "PR undefined: no rows",
    ("calibration", "all_negative"): "one class only (all 0)",
    ("calibration", "all_positive"): "one class only (all 1)",
    ("calibration", "empty"): "no rows",
    ("confusion", "all_negative"): "one class only (all 0)",
    ("confusion", "all_positive"): "one class only (all 1)",
    ("confusion", "empty"): "no rows",
    ("qini", "all_negative"): "Qini coefficient undefined",
    ("qini", "all_treated"): "Qini undefined: uplift metrics need both treatment groups: no control rows",
    ("qini", "empty"): "Qini undefined",
}
PLAIN_TITLES = {"roc": "ROC", "pr": "PR", "calibration": "Calibration", "confusion": "Confusion", "qini": "Qini"}


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("kind", FIGURES)
def test_figures(kind: str, data: str) -> None:
    figure = FIGURES[kind](*DATASETS[data])
    _check(figure)
    title = figure.axes[0].get_title()
    if (kind, data) in DEGENERATE_TITLES:
        assert title.startswith(PLAIN_TITLES[kind] + " (")
        assert DEGENERATE_TITLES[kind, data] in title
    else:
        assert title == PLAIN_TITLES[kind]


def test_importance_and_learning_curves() -> None:
    names = [f"f{i}" for i in range(40)]
    figure = plots.importance_figure(names, RNG.normal(size=40), "Importance", top=25)
    _check(figure)
    assert len(figure.axes[0].patches) == 25 and "top 25 of 40" in figure.axes[0].get_title()
    _check(plots.importance_figure([], [], "Importance"))
    history = {"loss": [0.9, 0.7, 0.6], "val_loss": [1.0, 0.8, 0.75], "auc": [0.6, 0.7, 0.72]}
    figure = plots.learning_curves_figure(history, "Training")
    _check(figure)
    assert len(figure.axes) == 2
    _check(plots.learning_curves_figure({}, "Training"))
    _check(plots.learning_curves_figure({"loss": []}, "Training"))


# ---------------------------------------------------------------------------------------------
# held-out error of the group-average uplift
# ---------------------------------------------------------------------------------------------


def test_uplift_error_variance_by_hand() -> None:
    # two bins by predicted uplift. bin 1 (rows 0-3): treated 1,1, control 0,0 -> observed 1.0, predicted
    # 0.1, residual 0.9, sampling variance 0. bin 2 (rows 4-7): treated 1,0, control 0,0 -> observed 0.5,
    # predicted 0.3, residual 0.2, sampling variance 0.25/2 + 0/2.
    y = [1, 1, 0, 0, 1, 0, 0, 0]
    treat = [1, 1, 0, 0, 1, 1, 0, 0]
    uplift = [0.1, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3]
    out = uplift_error_variance(y, uplift, treat, bins=2)
    assert out == approx({"bins": 2, "bias": 0.55, "sampling_var": 0.0625, "error_var": (0.81 + 0.04 - 0.125) / 2})
    # floored at 0 when the residuals are within sampling noise
    assert uplift_error_variance([1, 0, 1, 0], [0.0] * 4, [1, 1, 0, 0], bins=1)["error_var"] == 0.0
    # inverse-propensity weights: a treated row drawn with propensity 1/3 counts three times
    weighted = uplift_error_variance([1, 0, 0, 0], [0.0] * 4, [1, 1, 0, 0], [1 / 3, 1.0, 0.5, 0.5], bins=1)
    assert weighted["bias"] == approx(0.75)  # treated mean (3*1 + 1*0) / 4; control 0
    with pytest.raises(ValueError, match="propensity"):
        uplift_error_variance(y, uplift, treat, [0.0] * 8)


@pytest.mark.parametrize("offset", [0.0, 0.05])
def test_uplift_error_variance_finds_a_models_offset(offset: float) -> None:
    rng = np.random.default_rng(11)
    n = 200_000
    base = rng.uniform(0.05, 0.3, n)
    true_uplift = rng.uniform(0.0, 0.1, n)
    treat = rng.random(n) < 0.5
    y = (rng.random(n) < base + treat * true_uplift).astype(int)
    out = uplift_error_variance(y, true_uplift - offset, treat.astype(int), np.full(n, 0.5), bins=10)
    assert out["bias"] == approx(offset, abs=0.006)
    assert out["error_var"] == approx(offset**2, abs=0.0006)  # an exact model: no error beyond sampling
