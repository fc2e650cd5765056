"""Choosing between candidates on held-out rows: realised profit by hand, the catalogue policy off-policy,
the confident-winner rule, and the DR-learner recovering a known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.scoring.catalogue import load_catalogue
from jobs.training.candidates import Candidate, fold_of, judge, significant_winner
from jobs.training.evaluate import catalogue_policy, profit_policy_values, realised_profit

CATALOGUE = load_catalogue()  # no_action, email_recommendations, coupon_10, coupon_20, free_shipping


def test_realised_profit_of_each_logged_strategy_by_hand() -> None:
    test = pd.DataFrame(
        {
            "strategy": ["no_action", "email_recommendations", "coupon_10", "free_shipping", "sms"],
            "revenue": [100.0, 0.0, 90.0, 50.0, 10.0],
            "converted": [1, 0, 1, 1, 1],
        }
    )
    a, r = realised_profit(test, CATALOGUE)
    assert a.tolist() == [0, 1, 2, 4, -1]  # a strategy outside the catalogue: -1
    # margin 0.35 x revenue - contact - fulfilment if converted (free shipping: 0.02 and 4.90)
    assert r == pytest.approx([35.0, -0.02, 0.35 * 90 - 0.12, 0.35 * 50 - 0.02 - 4.90, 0.0])


def test_profit_policy_values_by_hand() -> None:
    """Two rows logged with propensity 0.5: the policy matches the first only."""
    test = pd.DataFrame(
        {
            "strategy": ["no_action", "email_recommendations"],
            "revenue": [100.0, 40.0],
            "converted": [1, 1],
            "propensity": [0.5, 0.5],
        }
    )
    q = np.zeros((2, 5))
    q[:, 0], q[:, 1] = 30.0, 10.0
    values = profit_policy_values(test, np.array([0, 0]), q, CATALOGUE, n_boot=20)
    # IPS: (35 / 0.5 + 0) / 2 = 35; DR: row 1: 30 + (35 - 30) / 0.5 = 40; row 2: 30 (no match) -> 35
    assert values["policy_profit_ips"] == pytest.approx(35.0)
    assert values["policy_profit_dr"] == pytest.approx(35.0)
    assert values["policy_profit_share__no_action"] == 1.0
    # everyone on the e-mail: row 2 matches: DR = (10 + 0) / 2 + (10 + (13.98 - 10) / 0.5) / 2
    email = profit_policy_values(test, np.array([1, 1]), q, CATALOGUE, n_boot=20)
    assert email["policy_profit_dr"] == pytest.approx((10.0 + 10.0 + (0.35 * 40 - 0.02 - 10.0) / 0.5) / 2)
    assert values["policy_profit_gain_dr"] == pytest.approx(0.0)  # the policy is the control


def test_the_catalogue_policy_respects_eligibility_budget_and_caps() -> None:
    n = 100
    test = pd.DataFrame(
        {
            "has_email": np.r_[np.ones(90), np.zeros(10)],
            "tenure_days": np.full(n, 400),
            "days_since_last_purchase": np.full(n, 30.0),
            "emails_received_90d": np.zeros(n),
            "contacts_30d": np.zeros(n),
        }
    )
    profit = np.zeros((n, 5))
    profit[:, 3] = 5.0  # coupon_20 the best for everyone (capped at 10%)
    profit[:, 1] = 1.0
    cost = np.tile([0.0, 0.02, 0.12, 0.12, 0.02], (n, 1))
    pi = catalogue_policy(test, profit, cost, CATALOGUE, per_customer := 0.125)
    assert (pi[90:] == 0).all()  # no e-mail address: only the control
    assert (pi == 3).sum() == 10  # the 10% cap of coupon_20
    assert (cost[np.arange(n), pi]).sum() <= per_customer * n + 1e-9
    assert set(pi[:90]) == {1, 3}


def test_a_confident_winner_is_needed_to_leave_the_default() -> None:
    rng = np.random.default_rng(0)
    default = rng.normal(1.0, 1.0, 5000)
    better = default + 0.2 + rng.normal(0, 0.5, 5000)  # +0.2 per row, noise 0.5: clearly better
    noisy = default + 0.01 + rng.normal(0, 3.0, 5000)  # +0.01 buried in noise
    best, stats = significant_winner([default, noisy, better])
    assert best == 2 and stats[2][1] > 0 and stats[1][1] < 0 < stats[1][2]
    best, _ = significant_winner([default, noisy])
    assert best == 0
    # with three alternatives the bar is higher than with one (Bonferroni)
    one = significant_winner([default, better])[1][1]
    three = significant_winner([default, noisy, noisy, better])[1][3]
    assert three[1] < one[1] and three[0] == pytest.approx(one[0])


def test_judge_keeps_the_default_unless_beaten_with_confidence() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    test = pd.DataFrame(
        {
            "strategy": rng.choice(["no_action", "email_recommendations"], n),
            "propensity": np.full(n, 0.5),
            "has_email": np.ones(n),
            "tenure_days": np.full(n, 400),
            "days_since_last_purchase": np.full(n, 30.0),
            "emails_received_90d": np.zeros(n),
            "contacts_30d": np.zeros(n),
        }
    )
    # the e-mail truly converts 10% against 5%, order value 100
    email = test["strategy"] == "email_recommendations"
    test["converted"] = (rng.random(n) < np.where(email, 0.10, 0.05)).astype(int)
    test["revenue"] = test["converted"] * 100.0
    strategies = CATALOGUE.names
    right = np.zeros((n, 5)) + 0.01
    right[:, 0], right[:, 1] = 0.05, 0.10  # knows the e-mail helps
    wrong = np.zeros((n, 5)) + 0.01
    wrong[:, 0], wrong[:, 1] = 0.10, 0.05  # believes it hurts
    revenue = lambda p: p * 100.0  # noqa: E731
    chosen = judge(
        [Candidate("wrong", wrong, revenue(wrong)), Candidate("right", right, revenue(right))],
        test,
        strategies,
        CATALOGUE,
        0.125,
        n_boot=20,
    )
    assert chosen.name == "right" and chosen.metrics["gain_over_default_lo"] > 0
    tie = judge(
        [Candidate("a", right, revenue(right)), Candidate("b", right * 1.001, revenue(right * 1.001))],
        test,
        strategies,
        CATALOGUE,
        0.125,
        n_boot=20,
    )
    assert tie.name == "a"  # the same policy: the default stays


def test_folds_are_stable_and_balanced() -> None:
    test = pd.DataFrame({"campaign_id": ["CMP-1"] * 1000, "customer_id": [f"C{i:05d}" for i in range(1000)]})
    fold = fold_of(test, 5)
    assert fold.tolist() == fold_of(test.iloc[::-1].reset_index(drop=True), 5)[::-1].tolist()
    assert np.bincount(fold, minlength=5).min() > 150


def test_the_dr_learner_recovers_a_heterogeneous_effect_from_a_non_uniform_log() -> None:
    """Conversion 0.05 + 0.10 x [x > 0] under the strategy; logged with propensities 0.8 / 0.2 by x."""
    from jobs.models.xgb_uplift import XGBDRLearner, XGBUpliftTLearner

    rng = np.random.default_rng(3)
    n = 40_000
    x = rng.normal(size=(n, 2)).astype("float32")
    e_treat = np.where(x[:, 1] > 0, 0.8, 0.2)  # the log favours the strategy where x1 > 0 (confounded by design)
    treat = rng.random(n) < e_treat
    t = np.where(treat, "coupon", "no_action")
    e = np.where(treat, e_treat, 1 - e_treat)
    p = 0.05 + treat * 0.10 * (x[:, 0] > 0)
    y = (rng.random(n) < p).astype(float)
    strategies = ("no_action", "coupon")
    base = XGBUpliftTLearner(strategies, n_estimators=200).fit(x, y, t, e)
    dr = XGBDRLearner(min_child_weight=50).fit(x, y, t, e, base)
    grid = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.0, 1.0], [1.0, 1.0]], dtype="float32")
    uplift = dr.predict(grid)[:, 1] - dr.predict(grid)[:, 0]
    assert uplift[[0, 2]] == pytest.approx([0.0, 0.0], abs=0.03)
    assert uplift[[1, 3]] == pytest.approx([0.10, 0.10], abs=0.03)
